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
]

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
