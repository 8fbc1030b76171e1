"""Kinematic powder-diffraction physics on plain numpy arrays.

These functions are the readable reference of the simulator and the test oracle of the numba
kernels in :mod:`synthxrd.simulate._kernels`. They follow pymatgen's ``XRDCalculator``
(De Graef & McHenry, *Structure of Materials*, 2nd ed., Cambridge 2012, ch. 11-12):

1. Reciprocal-lattice points g = (h, k, l) with 2 sin(theta)/lambda = |g| inside the 2theta window
   (crystallographic reciprocal lattice, no 2 pi).
2. Atomic scattering factor f(s) = Z - 41.78214 s^2 sum_i a_i exp(-b_i s^2), s = |g|/2.
3. Structure factor F(g) = sum_j f_j(s) occ_j exp(2 pi i g.r_j) exp(-B_j s^2).
4. I = |F|^2 (1 + cos^2 2theta) / (sin^2 theta cos theta)  (Lorentz-polarisation).

Neglected: anomalous dispersion (f is real, so Friedel's law I(g) = I(-g) holds exactly and only
one half-space is enumerated, intensities doubled), absorption, extinction, thermal motion unless
a Debye-Waller B is given.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "DEFAULT_WAVELENGTH",
    "FORM_FACTOR_PREFACTOR",
    "TWO_THETA_TOL",
    "SCALED_INTENSITY_TOL",
    "reciprocal_metric",
    "g_range",
    "two_theta_of_g",
    "form_factors",
    "lorentz_polarization",
    "enumerate_hkl",
    "reflection_intensities",
    "merge_peaks",
    "gaussian_profile",
    "SCHERRER_K",
    "FWHM_TO_SIGMA",
    "scherrer_fwhm",
    "same_d_two_theta",
    "debye_waller_factor",
    "displacement_shift",
    "march_dollase",
    "line_fwhm_eta",
    "pseudo_voigt",
]

#: Cu K-alpha1 in Angstrom, the default wavelength everywhere (simulation, the model's grid, a pattern
#: file that names none, refinement, search): the one place this number is typed (re-exported by
#: :mod:`synthxrd.simulate.common`). The wavelength table's ``CuKa1``, 1.54056, is pymatgen's value
#: of the same line, used where a file names the anode.
DEFAULT_WAVELENGTH = 1.5406

#: 41.78214 = 4 pi^2 / ... constant of the four-Gaussian fit convention used by pymatgen
#: (f(s) = Z - 41.78214 s^2 sum a_i exp(-b_i s^2)); kept verbatim so results agree exactly.
FORM_FACTOR_PREFACTOR = 41.78214
#: Peaks whose 2theta round to the same multiple of this value (degrees) are one peak, as in
#: pymatgen: symmetry-equivalent reflections differ only by floating-point noise.
TWO_THETA_TOL = 1e-5
#: Peaks with intensity <= this fraction of the maximum are dropped (pymatgen's 1e-3 on a 0-100
#: scale): systematic absences leave ~1e-30 of numerical noise, not zero.
SCALED_INTENSITY_TOL = 1e-5


def reciprocal_metric(lattice: np.ndarray) -> np.ndarray:
    """Metric tensor G* = (A A^T)^-1 of the crystallographic reciprocal lattice.

    Parameters
    ----------
    lattice : (3, 3) float array, rows are the lattice vectors a, b, c in Angstrom.

    Returns
    -------
    (3, 3) float array in 1/Angstrom^2, so that |g_hkl|^2 = 1/d^2 = (h k l) G* (h k l)^T.
    """
    lattice = np.asarray(lattice, dtype=np.float64)
    return np.linalg.inv(lattice @ lattice.T)


def g_range(two_theta_range: tuple[float, float], wavelength: float) -> tuple[float, float]:
    """|g| limits (1/Angstrom) of a 2theta window (degrees) by Bragg's law |g| = 2 sin(theta)/lambda."""
    lo, hi = (2.0 * np.sin(np.radians(t / 2.0)) / wavelength for t in two_theta_range)
    return float(lo), float(hi)


def two_theta_of_g(g: np.ndarray, wavelength: float) -> np.ndarray:
    """Bragg angle 2theta in degrees of reflections with |g| = 1/d (1/Angstrom)."""
    return np.degrees(2.0 * np.arcsin(np.clip(wavelength * np.asarray(g) / 2.0, -1.0, 1.0)))


def form_factors(z: np.ndarray, a: np.ndarray, b: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """Atomic scattering factors f_e(s) for elements e at s^2 = (sin(theta)/lambda)^2.

    Parameters
    ----------
    z : (E,) atomic numbers; a, b : (E, 4) fit coefficients; s2 : (M,) in 1/Angstrom^2.

    Returns
    -------
    (M, E) array f = Z - 41.78214 s^2 sum_i a_i exp(-b_i s^2).
    """
    s2 = np.asarray(s2, dtype=np.float64)[:, None, None]
    return z[None, :] - FORM_FACTOR_PREFACTOR * s2[:, :, 0] * np.sum(a[None] * np.exp(-b[None] * s2), axis=2)


def lorentz_polarization(theta: np.ndarray) -> np.ndarray:
    """Lorentz-polarisation factor (1 + cos^2 2theta) / (sin^2 theta cos theta), theta in radians."""
    return (1.0 + np.cos(2.0 * theta) ** 2) / (np.sin(theta) ** 2 * np.cos(theta))


def enumerate_hkl(lattice: np.ndarray, g_min: float, g_max: float) -> tuple[np.ndarray, np.ndarray]:
    """All reflections of one Friedel half-space with g_min <= |g| <= g_max (brute-force box).

    The half-space is h > 0, or h = 0 and k > 0, or h = k = 0 and l > 0, as in pymatgen.
    |h| <= g_max |a| bounds the box, since h = g . a.

    Returns
    -------
    hkl : (M, 3) int64 and g : (M,) float64 (1/Angstrom), unsorted.
    """
    lattice = np.asarray(lattice, dtype=np.float64)
    bounds = np.floor(g_max * np.linalg.norm(lattice, axis=1) + 1e-9).astype(int)
    axes = [np.arange(-n, n + 1) for n in bounds]
    hkl = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    h, k, l = hkl.T
    hkl = hkl[(h > 0) | ((h == 0) & (k > 0)) | ((h == 0) & (k == 0) & (l > 0))]
    g = np.sqrt(np.einsum("mi,ij,mj->m", hkl, reciprocal_metric(lattice), hkl))
    keep = (g >= g_min) & (g <= g_max)
    return hkl[keep].astype(np.int64), g[keep]


def reflection_intensities(
    hkl: np.ndarray,
    g: np.ndarray,
    frac_coords: np.ndarray,
    z: np.ndarray,
    occupancies: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    debye_waller: np.ndarray,
    wavelength: float,
) -> np.ndarray:
    """Lorentz-polarised intensities 2 |F|^2 LP of half-space reflections (factor 2: Friedel mate).

    Parameters
    ----------
    hkl : (M, 3) Miller indices; g : (M,) |g| in 1/Angstrom.
    frac_coords : (n, 3) fractional coordinates of the scatterers; z : (n,) atomic numbers;
    occupancies : (n,); a, b : (n, 4) form-factor coefficients of each scatterer;
    debye_waller : (n,) isotropic B in Angstrom^2 (0 = none).
    """
    s2 = (np.asarray(g) / 2.0) ** 2
    f = form_factors(np.asarray(z, np.float64), a, b, s2) * np.exp(-np.outer(s2, debye_waller))
    phase = np.exp(2j * np.pi * (np.asarray(hkl, np.float64) @ np.asarray(frac_coords).T))
    structure_factor = np.sum(f * occupancies[None, :] * phase, axis=1)
    theta = np.arcsin(np.clip(wavelength * np.asarray(g) / 2.0, -1.0, 1.0))
    return 2.0 * np.abs(structure_factor) ** 2 * lorentz_polarization(theta)


def merge_peaks(
    hkl: np.ndarray, g: np.ndarray, intensity: np.ndarray, wavelength: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Merge reflections into peaks exactly as pymatgen's ``XRDCalculator`` does.

    Reflections are sorted by (|g|, -h, -k, -l); those whose 2theta round to the same multiple of
    ``TWO_THETA_TOL`` form one peak at the 2theta and d of the first of them. Peaks with
    intensity <= ``SCALED_INTENSITY_TOL`` of the strongest are dropped; the rest are normalised to
    a maximum of 1. The reported hkl is that of the strongest contributing reflection.

    Returns
    -------
    two_theta (P,) degrees, intensity (P,) max 1, d (P,) Angstrom, hkl (P, 3) int64.
    """
    if len(g) == 0:
        empty = np.zeros(0)
        return empty, empty, empty, np.zeros((0, 3), np.int64)
    order = np.lexsort((-hkl[:, 2], -hkl[:, 1], -hkl[:, 0], g))
    hkl, g, intensity = hkl[order], g[order], intensity[order]
    two_theta = two_theta_of_g(g, wavelength)
    keys = np.round(two_theta / TWO_THETA_TOL).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    summed = np.add.reduceat(intensity, starts)
    run = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(g)]))
    strongest = np.lexsort((np.arange(len(g)), -intensity, run))[starts]
    keep = summed / summed.max() * 100.0 > SCALED_INTENSITY_TOL * 100.0
    return (
        two_theta[starts][keep],
        summed[keep] / summed[keep].max(),
        1.0 / g[starts][keep],
        hkl[strongest][keep],
    )


#: Scherrer shape factor for spherical crystallites (Langford & Wilson 1978).
SCHERRER_K = 0.9
#: Gaussian sigma per full width at half maximum, 1 / (2 sqrt(2 ln 2)).
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def scherrer_fwhm(wavelength, size_nm, cos_theta=1.0, k=SCHERRER_K):
    """Scherrer line width in degrees 2theta: FWHM = (180/pi) K lambda / (tau cos theta), tau = 10 size_nm.

    lambda and tau in Angstrom (Scherrer, Nachr. Ges. Wiss. Goettingen 1918, 98; Langford & Wilson,
    J. Appl. Cryst. 11 (1978) 102). The one definition of the width: plain arithmetic, so it takes
    floats, numpy arrays and torch tensors, and the numba kernels compile this very function.
    """
    return (180.0 / math.pi) * k * wavelength / (10.0 * size_nm * cos_theta)


def gaussian_profile(
    two_theta: np.ndarray, intensity: np.ndarray, crystallite_size_nm: float, wavelength: float,
    grid: np.ndarray, scherrer_k: float = SCHERRER_K,
) -> np.ndarray:
    """Sum of area-normalised Scherrer-broadened Gaussians evaluated on every grid point.

    FWHM(2theta, rad) = K lambda / (tau cos theta) (Scherrer 1918; Langford & Wilson, J. Appl.
    Cryst. 11 (1978) 102), sigma = FWHM / (2 sqrt(2 ln 2)), tau in nm (x10 to Angstrom).
    O(peaks x grid): the readable oracle of the windowed kernel.
    """
    sigma = FWHM_TO_SIGMA * scherrer_fwhm(wavelength, crystallite_size_nm, np.cos(np.radians(two_theta) / 2),
                                          scherrer_k)
    x = np.asarray(grid)[None, :] - np.asarray(two_theta)[:, None]
    gauss = np.exp(-(x**2) / (2.0 * sigma[:, None] ** 2)) / (sigma[:, None] * np.sqrt(2.0 * np.pi))
    return np.asarray(intensity) @ gauss


# ------------------------------------------------------------------------------------------------
# Sample and instrument effects of a laboratory scan (the numpy references of the compiled kernels
# in :mod:`synthxrd.simulate._profiles`, used by :mod:`synthxrd.augment`; angles in degrees 2theta,
# wavelengths in Angstrom).


def _default_wavelength(wavelength: float | None) -> float:
    """``wavelength``, or :data:`DEFAULT_WAVELENGTH` (Cu K-alpha1) for None."""
    return DEFAULT_WAVELENGTH if wavelength is None else wavelength


def same_d_two_theta(two_theta: np.ndarray, lambda1: float, lambda2: float) -> np.ndarray:
    """2theta at ``lambda2`` of the d-spacing that diffracts at ``two_theta`` for ``lambda1`` (Bragg).

    sin(theta2) = sin(theta1) lambda2/lambda1 (J. A. Bearden, Rev. Mod. Phys. 39 (1967) 78 for the
    K-alpha lines). A d-spacing without a Bragg angle at ``lambda2`` (sin(theta2) > 1) gives 180.
    """
    s = np.sin(np.radians(np.asarray(two_theta, np.float64) / 2.0)) * lambda2 / lambda1
    return np.degrees(2.0 * np.arcsin(np.clip(s, -1.0, 1.0)))


def debye_waller_factor(two_theta: np.ndarray, b: float, wavelength: float | None = None) -> np.ndarray:
    """Intensity factor exp(-2 B s^2), s = sin(theta)/lambda (B in Angstrom^2).

    Isotropic B (B. T. M. Willis, A. W. Pryor, *Thermal Vibrations in Crystallography*, Cambridge
    1975); ``wavelength`` None is Cu K-alpha1 (``DEFAULT_WAVELENGTH``).
    """
    s = np.sin(np.radians(np.asarray(two_theta, np.float64) / 2.0)) / _default_wavelength(wavelength)
    return np.exp(-2.0 * b * s * s)


def displacement_shift(two_theta: np.ndarray, displacement_mm: float, radius_mm: float) -> np.ndarray:
    """Peak shift (degrees 2theta) of a sample displaced by s: -(180/pi) 2 s cos(theta) / R.

    s > 0: sample surface below the goniometer axis (peaks move to lower angles); R the goniometer
    radius (H. P. Klug, L. E. Alexander, *X-Ray Diffraction Procedures*, 2nd ed., Wiley 1974, ch. 5).
    """
    return -np.degrees(2.0 * displacement_mm * np.cos(np.radians(np.asarray(two_theta, np.float64) / 2.0)) / radius_mm)


def march_dollase(cos_alpha: np.ndarray, r: float | np.ndarray) -> np.ndarray:
    """March-Dollase factor P = (r^2 cos^2 alpha + sin^2 alpha / r)^(-3/2) (Dollase 1986, eq. 9).

    Normalised: the mean of P over all directions (uniform on the sphere) is 1 for every r > 0
    (W. A. Dollase, J. Appl. Cryst. 19 (1986) 267-272).
    """
    c2 = np.clip(np.asarray(cos_alpha, np.float64) ** 2, 0.0, 1.0)
    r = np.asarray(r, np.float64)
    return (r * r * c2 + (1.0 - c2) / r) ** -1.5


def line_fwhm_eta(two_theta, wavelength: float | None = None, *, size_nm: float, strain: float = 0.0,
                  u: float = 0.0, v: float = 0.0, w: float = 0.0, x: float = 0.0, y: float = 0.0,
                  xi: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(FWHM in degrees, eta) of the Thompson-Cox-Hastings pseudo-Voigt at ``two_theta`` (degrees).

    H_G^2 = U tan^2 + V tan + W + (1 - xi)^2 (H_size^2 + H_strain^2), H_L = X tan + Y/cos + xi (H_size +
    H_strain); H_size = (180/pi) 0.9 lambda/(tau cos theta), H_strain = (180/pi) 4 eps tan theta;
    H^5 = H_G^5 + 2.69269 H_G^4 H_L + 2.42843 H_G^3 H_L^2 + 4.47163 H_G^2 H_L^3 + 0.07842 H_G H_L^4 + H_L^5,
    eta = 1.36603 q - 0.47719 q^2 + 0.11116 q^3 with q = H_L/H (TCH 1987, eqs. 3-4: P. Thompson,
    D. E. Cox, J. B. Hastings, J. Appl. Cryst. 20 (1987) 79-83). ``wavelength`` None is Cu K-alpha1.
    """
    theta = np.radians(np.asarray(two_theta, np.float64) / 2.0)
    t, c = np.tan(theta), np.cos(theta)
    h_size = scherrer_fwhm(_default_wavelength(wavelength), size_nm, c)
    h_strain = np.degrees(4.0 * strain * t)
    hg = np.sqrt(np.maximum(u * t * t + v * t + w + (1.0 - xi) ** 2 * (h_size**2 + h_strain**2), 0.0))
    hl = x * t + y / c + xi * (h_size + h_strain)
    h = (hg**5 + 2.69269 * hg**4 * hl + 2.42843 * hg**3 * hl**2 + 4.47163 * hg**2 * hl**3
         + 0.07842 * hg * hl**4 + hl**5) ** 0.2
    q = hl / h
    return h, np.clip(1.36603 * q - 0.47719 * q * q + 0.11116 * q**3, 0.0, 1.0)


def pseudo_voigt(x: np.ndarray, center: float, fwhm: float, eta: float) -> np.ndarray:
    """Area-1 pseudo-Voigt eta L + (1 - eta) G of FWHM ``fwhm``, untruncated.

    G = (2/H) sqrt(ln2/pi) exp(-4 ln2 (x - c)^2 / H^2), L = (2/(pi H)) / (1 + 4 (x - c)^2 / H^2).
    """
    d = (np.asarray(x, np.float64) - center) / fwhm
    g = 2.0 / fwhm * math.sqrt(math.log(2.0) / math.pi) * np.exp(-4.0 * math.log(2.0) * d * d)
    lor = 2.0 / (math.pi * fwhm) / (1.0 + 4.0 * d * d)
    return eta * lor + (1.0 - eta) * g
