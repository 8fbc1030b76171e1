"""Stage parameters: the random parameters of N patterns, drawn from an :class:`AugmentConfig`.

:func:`draw_parameters` draws every parameter of stages 1-10 of :mod:`synthxrd.augment` in a fixed
sequence, so that switching a component off does not change the others' parameters for one seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from synthxrd.augment.config import AugmentConfig, Range, _doublet_ratio
from synthxrd.errors import ConfigError
from synthxrd.simulate.common import DEFAULT_WAVELENGTH, Grid, resolve_wavelength, wavelengths
from synthxrd.simulate.physics import same_d_two_theta

__all__ = ["AugmentParameters", "draw_parameters"]

#: The 2theta ranges of the amorphous hump are given for this line (Cu K-alpha1 of the wavelength table).
HUMP_REFERENCE_LINE = "CuKa1"


@dataclass(frozen=True)
class AugmentParameters:
    """The random parameters of N patterns (arrays of length N unless noted); disabled components
    hold their neutral value. Built by :func:`draw_parameters`; edit with ``dataclasses.replace``.

    Attributes
    ----------
    size_nm, strain_epsilon, caglioti_u/v/w (deg^2), lorentz_x/y (deg), lorentz_fraction (xi):
        profile; kalpha2_ratio (0 = one line); zero_shift_deg; displacement_mm; radius_mm;
        texture_r (1 = none) and texture_direction (N, 3) reciprocal-lattice indices;
        debye_waller_b (A^2); impurity_index (-1 = none), impurity_fraction;
        background_weights (N, degree + 1), bump_center/fwhm/height (N, bumps) degrees and relative
        heights, hump_center/fwhm/height; peak_counts (0 = no Poisson noise), noise_sigma;
        measured_start, measured_step (degrees), measured_points (int, number of scan points);
        lambda_ratio: lambda2/lambda1 (scalar); window_fwhm: Lorentzian window (scalar);
        detection_limit (None or 0: every line drawn).
    """

    size_nm: np.ndarray
    strain_epsilon: np.ndarray
    caglioti_u: np.ndarray
    caglioti_v: np.ndarray
    caglioti_w: np.ndarray
    lorentz_x: np.ndarray
    lorentz_y: np.ndarray
    lorentz_fraction: np.ndarray
    kalpha2_ratio: np.ndarray
    zero_shift_deg: np.ndarray
    displacement_mm: np.ndarray
    radius_mm: np.ndarray
    texture_r: np.ndarray
    texture_direction: np.ndarray
    debye_waller_b: np.ndarray
    impurity_index: np.ndarray
    impurity_fraction: np.ndarray
    background_weights: np.ndarray
    bump_center: np.ndarray
    bump_fwhm: np.ndarray
    bump_height: np.ndarray
    hump_center: np.ndarray
    hump_fwhm: np.ndarray
    hump_height: np.ndarray
    peak_counts: np.ndarray
    noise_sigma: np.ndarray
    measured_start: np.ndarray
    measured_step: np.ndarray
    measured_points: np.ndarray
    lambda_ratio: float = 1.0
    window_fwhm: float = 30.0
    detection_limit: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.size_nm)


def _directions(max_index: int) -> np.ndarray:
    """Primitive reciprocal-lattice directions with |indices| <= max_index, one of each +-pair."""
    r = np.arange(-max_index, max_index + 1)
    hkl = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    first = np.array([next((v for v in row if v != 0), 0) for row in hkl])
    gcd = np.gcd.reduce(np.abs(hkl), axis=1)
    return hkl[(first > 0) & (gcd == 1)].astype(np.float64)


def draw_parameters(
    config: AugmentConfig,
    n: int,
    rng: np.random.Generator,
    *,
    grid: Grid = Grid(),
    wavelength: float | str = DEFAULT_WAVELENGTH,
) -> AugmentParameters:
    """Draw the parameters of ``n`` patterns from ``config`` (vectorised; a fixed sequence of draws,
    so switching a component off does not change the others' parameters for the same seed)."""
    if not isinstance(config, AugmentConfig):
        raise ConfigError(f"augment: expected an AugmentConfig, got {type(config).__name__}")
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"augment: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    lam = resolve_wavelength(wavelength)
    c = config

    def uni(rng_range: Range, on: bool = True, neutral: float = 0.0) -> np.ndarray:
        values = rng.uniform(rng_range[0], rng_range[1], n)
        return values if on else np.full(n, neutral)

    def log_uni(rng_range: Range, on: bool = True, neutral: float = 0.0) -> np.ndarray:
        values = np.exp(rng.uniform(math.log(rng_range[0]), math.log(rng_range[1]), n))
        return values if on else np.full(n, neutral)

    def chance(p: float, on: bool) -> np.ndarray:
        hit = rng.random(n) < p
        return hit & on

    # 1. profile
    size = uni(c.size_nm)
    u = uni(c.caglioti_u, c.instrument)
    v = uni(c.caglioti_v, c.instrument)
    w = uni(c.caglioti_w, c.instrument)
    v = np.maximum(v, -np.sqrt(u * w))  # H_inst^2 >= 3/4 W > 0 for every angle
    x = uni(c.lorentz_x, c.instrument)
    y = uni(c.lorentz_y, c.instrument)
    eps = uni(c.strain_epsilon, c.strain)
    xi = uni(c.lorentz_fraction, c.lorentzian)
    # 2. doublet
    ratio = _doublet_ratio(c.anode, lam) if c.kalpha2 else None
    k2 = np.where(chance(c.kalpha2_probability, ratio is not None), uni(c.kalpha2_ratio), 0.0)
    # 3. shifts
    zero = uni(c.zero_shift_deg, c.zero_shift)
    disp = uni(c.displacement_mm, c.displacement)
    radius = uni(c.goniometer_radius_mm, True)
    # 4. texture
    textured = chance(c.texture_probability, c.texture)
    tex_r = np.where(textured, uni(c.texture_r), 1.0)
    candidates = _directions(c.texture_max_index)
    tex_dir = candidates[rng.integers(0, len(candidates), n)]
    # 5. Debye-Waller
    dw_b = uni(c.debye_waller_b, c.debye_waller)
    # 8. impurity
    has_imp = chance(c.impurity_probability, c.impurity and n > 1)
    imp_frac = np.where(has_imp, uni(c.impurity_fraction), 0.0)
    imp_index = np.where(has_imp, (np.arange(n) + 1) % max(n, 1), -1).astype(np.int64)
    # 6. background
    level = uni(c.background_level, c.background)
    weights = rng.random((n, c.background_degree + 1))
    weights = weights / np.maximum(weights.max(axis=1, keepdims=True), 1e-12) * level[:, None]
    n_bumps = rng.integers(0, c.background_bumps + 1, n)
    bump_center = rng.uniform(grid.start, grid.stop, (n, c.background_bumps))
    bump_fwhm = rng.uniform(*c.background_bump_fwhm, (n, c.background_bumps))
    bump_height = rng.random((n, c.background_bumps)) * level[:, None]
    bump_height[np.arange(c.background_bumps)[None, :] >= n_bumps[:, None]] = 0.0
    hump = chance(c.amorphous_probability, c.background and c.amorphous)
    hump_center = _hump_two_theta(uni(c.amorphous_center), lam)
    hump_fwhm = uni(c.amorphous_fwhm)
    hump_height = np.where(hump, uni(c.amorphous_height), 0.0)
    # 7. noise
    log_counts = rng.uniform(math.log(c.noise_peak_counts[0]), math.log(c.noise_peak_counts[1]), n)
    counts = np.exp(log_counts) if c.noise else np.zeros(n)
    sigma = uni(c.noise_gaussian_sigma, c.noise)
    # 9. measurement
    cropped = chance(c.crop_probability, c.crop)
    start = np.where(cropped, np.maximum(uni(c.crop_start), grid.start), grid.start)
    stop = np.where(cropped, np.minimum(uni(c.crop_end), grid.stop), grid.stop)
    step = log_uni(c.crop_step, c.crop, grid.step)
    too_short = stop - start < 10.0 * step
    start = np.where(too_short, grid.start, start)
    stop = np.where(too_short, grid.stop, stop)
    points = np.ceil((stop - start) / step - 1e-9).astype(np.int64) + 1  # the scan reaches stop
    if not c.crop:
        start, step, points = np.full(n, grid.start), np.full(n, grid.step), np.full(n, grid.n, np.int64)
    # 10. detection limit: drawn last and only when on, so that the draws of configs without it
    # (parameters and the noise drawn after them) stay those of earlier versions
    detect = np.where(chance(c.detection_probability, True), log_uni(c.detection_limit), 0.0) if c.detection else None
    return AugmentParameters(
        size_nm=size, strain_epsilon=eps, caglioti_u=u, caglioti_v=v, caglioti_w=w, lorentz_x=x, lorentz_y=y,
        lorentz_fraction=xi, kalpha2_ratio=k2, zero_shift_deg=zero, displacement_mm=disp, radius_mm=radius,
        texture_r=tex_r, texture_direction=tex_dir, debye_waller_b=dw_b, impurity_index=imp_index,
        impurity_fraction=imp_frac, background_weights=weights, bump_center=bump_center, bump_fwhm=bump_fwhm,
        bump_height=bump_height, hump_center=hump_center, hump_fwhm=hump_fwhm, hump_height=hump_height,
        peak_counts=counts, noise_sigma=sigma, measured_start=start, measured_step=step, measured_points=points,
        lambda_ratio=1.0 if ratio is None else ratio, window_fwhm=float(c.window_fwhm), detection_limit=detect,
    )



def _hump_two_theta(two_theta_cu: np.ndarray, wavelength: float) -> np.ndarray:
    """2theta at ``wavelength`` of the d-spacing that diffracts at ``two_theta_cu`` for Cu K-alpha1."""
    return same_d_two_theta(two_theta_cu, wavelengths()[HUMP_REFERENCE_LINE], wavelength)
