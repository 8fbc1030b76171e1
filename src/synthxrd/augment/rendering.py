"""Rendering: line lists drawn on each pattern's measurement grid, background, noise, resampling.

Stages 5-8 of :mod:`synthxrd.augment` (profile sampling, measurement grid, background, counting
noise), :func:`render` and :func:`augmented_patterns`, and the reflection window they need
(:func:`reflection_window`).
"""

from __future__ import annotations

import math

import numpy as np

from synthxrd.augment.config import AugmentConfig, _doublet_ratio
from synthxrd.augment.lines import _check_inputs, line_list
from synthxrd.augment.parameters import AugmentParameters, draw_parameters
from synthxrd.simulate import _profiles
from synthxrd.simulate.common import DEFAULT_WAVELENGTH, WINDOW_SIGMAS, Grid, resolve_wavelength
from synthxrd.simulate.pattern import ReflectionBatch, patterns, reflections
from synthxrd.simulate.physics import FWHM_TO_SIGMA, same_d_two_theta, scherrer_fwhm
from synthxrd.structure import CrystalBatch

__all__ = ["MIN_WINDOW_FWHM", "TAIL_MARGIN_CAP_DEG", "TAIL_TOL", "add_counting_noise", "augmented_patterns",
           "reflection_window", "render", "render_with"]

#: A line's Lorentzian is evaluated out to where it falls below this fraction of the pattern's
#: strongest line height, within [MIN_WINDOW_FWHM, window_fwhm] FWHM (its area is kept exactly).
TAIL_TOL = 1e-6
MIN_WINDOW_FWHM = 5.0
#: :func:`augmented_patterns` computes reflections up to this far (degrees) beyond the grid for
#: Lorentzian tails (besides shifts and the K-alpha2 offset); farther tails are left out.
TAIL_MARGIN_CAP_DEG = 10.0


def add_counting_noise(values: np.ndarray, counts: np.ndarray, sigma: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
    """``Poisson(counts * values) / counts + sigma * N(0, 1)`` per point (counts <= 0: no Poisson).

    ``values``, ``counts`` and ``sigma`` broadcast together (e.g. a flat scan and per-point values);
    negative values count as 0 counts.
    """
    values = np.asarray(values, np.float64)
    counts = np.broadcast_to(np.asarray(counts, np.float64), values.shape)
    sigma = np.broadcast_to(np.asarray(sigma, np.float64), values.shape)
    poisson = counts > 0
    if poisson.all():
        out = rng.poisson(np.maximum(values, 0.0) * counts) / counts
    else:
        out = values.copy()
        if poisson.any():
            c = counts[poisson]
            out[poisson] = rng.poisson(np.maximum(values[poisson], 0.0) * c) / c
    gauss = sigma > 0
    if gauss.all():
        out += sigma * rng.standard_normal(out.shape)
    elif gauss.any():
        out[gauss] += sigma[gauss] * rng.standard_normal(int(gauss.sum()))
    return out


def render_with(
    crystals: CrystalBatch,
    refl: ReflectionBatch,
    params: AugmentParameters,
    rng: np.random.Generator,
    *,
    grid: Grid = Grid(),
    wavelength: float | str = DEFAULT_WAVELENGTH,
) -> np.ndarray:
    """Render N patterns with given parameters (``rng`` only for the noise); see :func:`render`."""
    lines = line_list(crystals, refl, params, grid=grid, wavelength=wavelength)
    n = len(crystals)
    out = np.zeros((n, grid.n), np.float32)
    if n == 0:
        return out
    p = params
    starts = np.ascontiguousarray(p.measured_start, np.float64)
    steps = np.ascontiguousarray(p.measured_step, np.float64)
    points = np.ascontiguousarray(p.measured_points, np.int64)
    point_offsets = np.zeros(n + 1, np.int64)
    point_offsets[1:] = np.cumsum(points)
    flat = np.zeros(int(point_offsets[-1]))
    peak = _profiles.render_lines(lines.center, lines.intensity, lines.fwhm, lines.eta, lines.offsets, starts,
                                  steps, point_offsets, float(p.window_fwhm), TAIL_TOL, MIN_WINDOW_FWHM, flat)
    f64 = (lambda a: np.ascontiguousarray(a, np.float64))
    _profiles.add_background(
        flat, starts, steps, point_offsets, peak, grid.start, grid.stop, f64(p.background_weights),
        f64(p.bump_center), f64(p.bump_fwhm), f64(p.bump_height), f64(p.hump_center), f64(p.hump_fwhm),
        f64(p.hump_height),
    )
    if np.any(p.peak_counts > 0) or np.any(p.noise_sigma > 0):
        flat = add_counting_noise(flat, np.repeat(p.peak_counts, points), np.repeat(p.noise_sigma, points), rng)
    same_grid = (np.all(points == grid.n) and np.all(starts == grid.start) and np.all(steps == grid.step))
    if same_grid:
        values = flat.reshape(n, grid.n)
    else:
        values = np.zeros((n, grid.n))
        _profiles.resample_uniform(flat, starts, steps, point_offsets, grid.start, grid.step, values)
    tt = refl.two_theta
    inside = np.concatenate(([0], np.cumsum((tt >= grid.start) & (tt <= grid.stop))))
    values[inside[refl.offsets[1:]] == inside[refl.offsets[:-1]]] = 0.0  # no reflection on the grid
    np.maximum(values, 0.0, out=values)
    top = values.max(axis=1, keepdims=True)
    np.divide(values, top, out=values, where=top > 0)
    out[:] = values
    return out


def render(
    crystals: CrystalBatch,
    refl: ReflectionBatch,
    config: AugmentConfig,
    rng: np.random.Generator,
    *,
    grid: Grid = Grid(),
    wavelength: float | str = DEFAULT_WAVELENGTH,
) -> np.ndarray:
    """Augmented patterns of a batch: (N, grid.n) float32, each row in [0, 1] with maximum 1.

    Parameters
    ----------
    crystals : the batch (its lattices orient the texture).
    refl : :func:`synthxrd.simulate.reflections` of ``crystals`` at ``wavelength``, over a window
        that covers the grid plus shifts, the K-alpha2 offset and profile tails
        (:func:`reflection_window`).
    config : which effects, and the ranges of their random parameters.
    rng : the only source of randomness (parameters by :func:`draw_parameters`, then noise).
    grid : the model grid.
    wavelength : of the reflections (Angstrom or a line name); K-alpha1 of the anode.
    """
    _check_inputs(crystals, refl)
    params = draw_parameters(config, len(crystals), rng, grid=grid, wavelength=wavelength)
    return render_with(crystals, refl, params, rng, grid=grid, wavelength=wavelength)



def reflection_window(config: AugmentConfig, grid: Grid = Grid(), wavelength: float | str = DEFAULT_WAVELENGTH
                      ) -> tuple[float, float]:
    """2theta window (degrees) of the reflections that :func:`render` needs for ``config`` on ``grid``.

    The grid widened by the largest peak shift, the K-alpha2 offset at the low end, and
    min(window_fwhm x largest FWHM, :data:`TAIL_MARGIN_CAP_DEG`) for the Lorentzian tails (the
    FWHM bound of the config's extreme values at the top of the range), or 7 sigma if no line
    can have a Lorentzian part.
    """
    lam = resolve_wavelength(wavelength)
    c = config
    shift = max(abs(v) for v in c.zero_shift_deg) if c.zero_shift else 0.0
    if c.displacement:
        shift += math.degrees(2.0 * max(abs(v) for v in c.displacement_mm) / c.goniometer_radius_mm[0])
    ratio = _doublet_ratio(c.anode, lam) if c.kalpha2 else None
    sep = 0.0
    if ratio is not None:
        sep = float(same_d_two_theta(grid.start, 1.0, ratio)) - grid.start  # the K-alpha2 line of grid.start
    theta = math.radians(min(grid.stop + TAIL_MARGIN_CAP_DEG, 178.0) / 2.0)
    t, cos = math.tan(theta), math.cos(theta)
    h_sample = scherrer_fwhm(lam * (ratio or 1.0), c.size_nm[0], cos)
    h_sample += math.degrees(4.0 * c.strain_epsilon[1] * t) if c.strain else 0.0
    h_inst = 0.0
    if c.instrument:
        h_inst = math.sqrt(c.caglioti_u[1] * t * t + abs(min(c.caglioti_v[0], 0.0)) * t + max(c.caglioti_v[1], 0.0) * t
                           + c.caglioti_w[1]) + c.lorentz_x[1] * t + c.lorentz_y[1] / cos
    lorentzian = (c.lorentzian and c.lorentz_fraction[1] > 0.0) or (
        c.instrument and (c.lorentz_x[1] > 0.0 or c.lorentz_y[1] > 0.0))
    if lorentzian:  # TCH: H <= H_G + H_L
        tail = min(c.window_fwhm * (h_inst + 2.0 * h_sample), TAIL_MARGIN_CAP_DEG)
    else:  # Gaussian lines end at 7 sigma = 2.97 FWHM
        tail = min(WINDOW_SIGMAS * FWHM_TO_SIGMA * (h_inst + h_sample), TAIL_MARGIN_CAP_DEG)
    return max(grid.start - shift - sep - tail, 0.0), min(grid.stop + shift + tail, 180.0)


def augmented_patterns(
    crystals: CrystalBatch,
    config: AugmentConfig | None,
    rng: np.random.Generator,
    *,
    grid: Grid = Grid(),
    wavelength: float | str = DEFAULT_WAVELENGTH,
) -> np.ndarray:
    """Reflections over :func:`reflection_window`, then :func:`render`; (N, grid.n) float32.

    ``config=None`` gives the plain Gaussian-Scherrer patterns of :func:`synthxrd.simulate.patterns`.
    """
    if config is None:
        return patterns(crystals, rng=rng, grid=grid, wavelength=wavelength)
    refl = reflections(crystals, wavelength=wavelength, two_theta_range=reflection_window(config, grid, wavelength))
    return render(crystals, refl, config, rng, grid=grid, wavelength=wavelength)

