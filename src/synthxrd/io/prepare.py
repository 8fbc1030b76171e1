"""A measured pattern as a trained network sees it: convert the wavelength, resample onto the grid.

:func:`convert_wavelength` moves a 2theta axis to another wavelength by Bragg's law; :func:`resample`
puts a pattern onto the model's 2theta grid; :func:`clean_patterns` takes away background and noise
(as search-match compares patterns, and as a network with ``InputSpec.clean`` sees them);
:func:`load_for_model` reads a file
(:func:`~synthxrd.io.read_pattern`) and does both, then normalises. Grid and default wavelength come
from :mod:`synthxrd.simulate.common`, the same constants the simulator uses.

One pipeline from a file to what the model and the library see:

1. :func:`read_measured`: read, refuse neutron/synchrotron data unless a wavelength is given, choose
   the wavelength (the file's, else the caller's, else Cu K-alpha1 with a note), trim constant
   padding. ``synthxrd library search`` stops here (the search works on the file's own axis), and so
   does realism's reading of manifests (then :func:`convert_wavelength` and its window);
2. :func:`to_grid`: :func:`convert_wavelength` to the model's wavelength and :func:`resample` onto the
   grid (also :meth:`synthxrd.predict.Predictor.identify` for arrays);
3. :func:`load_for_model`: both, clipped and normalised, for :meth:`~synthxrd.predict.Predictor.predict_file`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthxrd.errors import DataError
from synthxrd.io._common import GAP_FACTOR, MIN_POINTS, PatternWarning
from synthxrd.io.read import NOT_LABORATORY, missing_wavelength, read_pattern
from synthxrd.simulate.common import DEFAULT_WAVELENGTH, Grid, resolve_wavelength

__all__ = ["clean_patterns", "convert_wavelength", "load_for_model", "read_measured", "MeasuredPattern", "to_grid",
           "resample", "peak_significance", "has_peaks",
           "integer_like", "no_peaks_error", "pattern_peak_significance", "background_and_noise",
           "MIN_PEAK_SIGNIFICANCE", "PEAK_BACKGROUND_DEG", "MAD_TO_SIGMA"]

#: Width in degrees 2theta of the local quadratic background of :func:`peak_significance`: what is
#: narrower stands out of it (Bragg peaks, also the ~5 degree wide reflections of nanometre crystallites),
#: what varies more slowly is background (slopes, curvature, amorphous humps of FWHM ~10 degrees).
PEAK_BACKGROUND_DEG = 5.0
#: Noise sigmas by which the strongest point of a pattern must rise above its background for the pattern
#: to have a peak. Noise alone reaches about 4.5-6 sigma over 8501 points (the largest of that many
#: normal deviates); the measured patterns in synthxrd's development sets have 15 and more.
MIN_PEAK_SIGNIFICANCE = 8.0
#: Least noise assumed, as a fraction of the background: a noise-free pattern (a simulated background)
#: has peaks only where they rise more than MIN_PEAK_SIGNIFICANCE x this above it.
NOISE_FLOOR = 0.01
#: Gaussian smoothing (degrees) before the test: a peak spans several points, noise does not.
PEAK_SMOOTH_DEG = 0.05
#: Median absolute deviation -> standard deviation of Gaussian noise, 1 / Phi^-1(3/4) (Rousseeuw &
#: Croux, J. Am. Stat. Assoc. 88 (1993) 1273): the one robust noise scale of the package.
MAD_TO_SIGMA = 1.4826


def convert_wavelength(two_theta, from_wavelength: float | str, to_wavelength: float | str
                       ) -> tuple[np.ndarray, np.ndarray]:
    """2theta of the same d-spacings at another wavelength (Bragg's law).

    sin(theta') = sin(theta) * lambda' / lambda, since d = lambda / (2 sin theta) is fixed. Only the
    positions move: intensities are not corrected for the change of the Lorentz-polarisation factor,
    of absorption or of peak widths with angle.

    Parameters
    ----------
    two_theta : (N,) degrees.
    from_wavelength, to_wavelength : Angstrom or line names (``"CuKa1"``, ``"MoKa1"``).

    Returns
    -------
    two_theta_new : (M,) float64 degrees, the converted angles of the points kept (M = mask.sum()),
        in the original order (increasing stays increasing).
    mask : (N,) bool, False for points with no equivalent, sin(theta') >= 1 (possible only when
        converting to a longer wavelength); select the intensities with ``intensity[mask]``.

    Examples
    --------
    >>> tt, keep = convert_wavelength([28.443, 150.0], "CuKa1", "MoKa1")   # Si (111): d = 3.1355 A
    >>> [round(float(t), 2) for t in tt], keep.tolist()
    ([12.99, 52.81], [True, True])
    >>> convert_wavelength([20.0, 100.0], 1.5406, 2.2897)[1].tolist()      # Cu -> Cr: 100 deg is lost
    [True, False]
    """
    lam_from = resolve_wavelength(from_wavelength)
    lam_to = resolve_wavelength(to_wavelength)
    tt = np.asarray(two_theta, dtype=np.float64)
    if tt.ndim != 1:
        raise DataError(f"convert_wavelength: two_theta must be 1-D, got shape {tt.shape}")
    sin_new = np.sin(np.radians(tt) / 2.0) * (lam_to / lam_from)
    mask = np.isfinite(sin_new) & (np.abs(sin_new) < 1.0)
    return 2.0 * np.degrees(np.arcsin(sin_new[mask])), mask


def resample(two_theta, intensity, grid: Grid = Grid()) -> tuple[np.ndarray, np.ndarray]:
    """A measured pattern on the model's 2theta grid, with the grid points it covers.

    Where the measurement is finer than the grid (median step < grid step) each grid value is the
    average of the measured pattern over the grid cell ``[g - h/2, g + h/2]`` (h the grid step),
    computed exactly as the integral of the piecewise-linear interpolant divided by the cell width:
    a box filter, so noise and features narrower than a cell are averaged rather than aliased, and
    the integrated intensity is kept. Where the measurement is as coarse as the grid or coarser, the
    value is the linear interpolation at g (averaging would only blunt peak tips further). Grid points
    outside the measured range, or inside a gap larger than :data:`~synthxrd.io.GAP_FACTOR` median
    steps, are 0 and not covered.

    Parameters
    ----------
    two_theta : (N,) degrees, strictly increasing, N >= 2.
    intensity : (N,) finite values.
    grid : the target grid (default: 5-90 degrees, 8501 points).

    Returns
    -------
    values : (grid.n,) float64, 0 where not covered.
    covered : (grid.n,) bool; ``covered.mean()`` is the coverage fraction.
    """
    x = np.asarray(two_theta, dtype=np.float64)
    y = np.asarray(intensity, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise DataError(f"resample: two_theta {x.shape} and intensity {y.shape} must be 1-D of equal length >= 2")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise DataError("resample: two_theta and intensity must be finite (found NaN/inf)")
    steps = np.diff(x)
    if not (steps > 0).all():
        raise DataError("resample: two_theta must be strictly increasing")
    g = grid.values()
    h = grid.step
    eps = 1e-6 * h  # grid points within rounding noise of the first/last measured angle count as inside
    covered = (g >= x[0] - eps) & (g <= x[-1] + eps)
    median_step = float(np.median(steps))
    for k in np.flatnonzero(steps > max(GAP_FACTOR * median_step, h)):
        covered &= ~((g > x[k]) & (g < x[k + 1]))
    if median_step < h:
        lo = np.clip(g - h / 2.0, x[0], x[-1])
        hi = np.clip(g + h / 2.0, x[0], x[-1])
        width = hi - lo
        antiderivative = _linear_antiderivative(x, y)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where(width > 0, (antiderivative(hi) - antiderivative(lo)) / width, np.interp(g, x, y))
    else:
        values = np.interp(g, x, y)
    return np.where(covered, values, 0.0), covered


@dataclass(frozen=True)
class MeasuredPattern:
    """A measured pattern file as read for the model or the library (:func:`read_measured`).

    Attributes
    ----------
    two_theta, intensity : (M,) float64 on the file's own axis (degrees 2theta), constant padding trimmed.
    wavelength : Angstrom: the file's, else the caller's, else Cu K-alpha1 (``notes`` says so).
    metadata : that of :func:`~synthxrd.io.read_pattern` (``wavelength_source`` is ``"assumed"`` when
        Cu K-alpha1 was assumed).
    trimmed_padding : (start, end) points of constant padding removed.
    notes : what was assumed, one line each, naming the file (the caller warns or prints them).
    """

    two_theta: np.ndarray
    intensity: np.ndarray
    wavelength: float
    metadata: dict[str, Any]
    trimmed_padding: tuple[int, int]
    notes: tuple[str, ...]


def read_measured(path: str | Path, *, wavelength: float | str | None = None, action: str = "predict",
                  refuse_other_radiation: bool = True) -> MeasuredPattern:
    """Read a measured pattern for the model or the library: the first step of every file pipeline.

    :func:`~synthxrd.io.read_pattern` (``wavelength`` is used only where the file states none);
    neutron and synchrotron patterns (``metadata["radiation"]``) are a :class:`DataError` unless
    ``wavelength`` is given or ``refuse_other_radiation`` is False (the model and the library are
    X-ray; ``action`` names what the user would do anyway: ``"predict"``, ``"search"``); a file
    with no wavelength is read as Cu K-alpha1 with a note; constant padding at the ends is trimmed
    (:data:`~synthxrd.io.PADDING_MIN_RUN`) unless fewer than ``MIN_POINTS`` points would remain.
    """
    path_str = str(path)
    two_theta, intensity, meta = read_pattern(path, wavelength=wavelength)
    if refuse_other_radiation and meta["radiation"] in NOT_LABORATORY and wavelength is None:
        stated = f"; the file states {meta['wavelength']:g} A" if meta["wavelength"] else ""
        raise DataError(f"{path_str}: {meta['radiation']} data ({meta.get('radiation_evidence')}): the model and "
                        f"the reference library are X-ray; give --wavelength to {action} anyway{stated}")
    lam = meta["wavelength"]
    notes: list[str] = []
    if lam is None:  # the laboratory default, said in one line rather than refused
        lam = DEFAULT_WAVELENGTH
        meta["wavelength_source"] = "assumed"
        notes.append(f"{path_str}: {missing_wavelength(meta)}; assumed Cu K-alpha1 ({lam} Å) "
                     "(give --wavelength if it was measured otherwise)")
    lead, trail = meta["constant_edges"]
    if lead or trail:
        keep = slice(lead, two_theta.size - trail)
        if two_theta[keep].size >= MIN_POINTS:
            two_theta, intensity = two_theta[keep], intensity[keep]
        else:
            lead = trail = 0
    return MeasuredPattern(two_theta, intensity, float(lam), meta, (int(lead), int(trail)), tuple(notes))


def to_grid(two_theta, intensity, wavelength: float | str, *, model_wavelength: float | str = DEFAULT_WAVELENGTH,
            grid: Grid = Grid(), source: str = "") -> tuple[np.ndarray, np.ndarray, int]:
    """Pattern(s) measured at ``wavelength`` on the model's grid at ``model_wavelength``.

    :func:`convert_wavelength` (points with no equivalent dropped), then :func:`resample` of each row.

    Parameters
    ----------
    two_theta : (M,) degrees. intensity : (M,) or (N, M).
    source : prefix of error messages (a file name), if any.

    Returns
    -------
    values : (grid.n,) or (N, grid.n) float64 (not normalised, not clipped).
    covered : (grid.n,) bool, the grid points inside the measured range.
    n_dropped : points with no equivalent 2theta below 180 degrees at the model wavelength.
    """
    prefix = f"{source}: " if source else ""
    tt = np.asarray(two_theta, np.float64)
    y = np.asarray(intensity, np.float64)
    lam, lam_model = resolve_wavelength(wavelength), resolve_wavelength(model_wavelength)
    n_dropped = 0
    if not math.isclose(lam, lam_model, rel_tol=1e-9):
        tt, mask = convert_wavelength(tt, lam, lam_model)
        y = y[..., mask]
        n_dropped = int((~mask).sum())
        if tt.size < 2:
            raise DataError(f"{prefix}at the model wavelength {lam_model} A no point of the pattern "
                            f"(measured at {lam} A) has an equivalent 2theta below 180 degrees")
    rows = np.atleast_2d(y)
    values = np.empty((len(rows), grid.n))
    covered = np.zeros(grid.n, bool)
    for i, row in enumerate(rows):
        values[i], covered = resample(tt, row, grid)
        if not covered.any():
            raise DataError(f"{prefix}the measured range {tt[0]:.3f}-{tt[-1]:.3f} degrees 2theta (at {lam_model} A) "
                            f"does not overlap the model grid {grid.start}-{grid.stop} degrees")
    return (values[0] if y.ndim == 1 else values), covered, n_dropped


def load_for_model(
    path: str | Path,
    *,
    wavelength: float | str | None = None,
    model_wavelength: float | str = DEFAULT_WAVELENGTH,
    grid: Grid = Grid(),
) -> tuple[np.ndarray, dict[str, Any]]:
    """A measured pattern as the model sees it: on the grid, at the model's wavelength, max 1.

    Steps: :func:`read_measured` (neutron and synchrotron patterns refused unless ``wavelength`` is
    given; the wavelength is the file's, else ``wavelength``, else Cu K-alpha1 with a
    :class:`PatternWarning` naming the assumption, or the header line it could not read; constant
    padding trimmed); :func:`to_grid` (:func:`convert_wavelength` to ``model_wavelength``, points
    with no equivalent dropped; :func:`resample` onto ``grid``); negative values clipped to 0;
    divided by the maximum over the covered points.

    Returns
    -------
    intensity : (grid.n,) float32 in [0, 1], maximum 1, 0 where not covered.
    info : dict with ``coverage`` (fraction of grid points covered), ``coverage_mask`` ((grid.n,)
        bool), ``covered_range`` (first and last covered grid 2theta, or None), ``wavelength`` (of
        the file, Angstrom), ``wavelength_source``, ``model_wavelength``, ``converted`` (bool),
        ``n_dropped`` (points with no equivalent at the model wavelength), ``trimmed_padding``
        ((start, end) points), ``method`` (``"cell-average"`` or ``"linear"``), ``n_clipped``
        (grid values < 0 set to 0), ``scale`` (the maximum divided by), ``counts`` (the values read
        are whole numbers: :func:`integer_like`), ``warnings`` and
        ``metadata`` (that of :func:`~synthxrd.io.read_pattern`).
    """
    path_str = str(path)
    measured = read_measured(path, wavelength=wavelength)
    two_theta, intensity, lam, meta = measured.two_theta, measured.intensity, measured.wavelength, measured.metadata
    warn = list(measured.notes)
    lam_model = resolve_wavelength(model_wavelength)
    converted = not math.isclose(lam, lam_model, rel_tol=1e-9)
    values, covered, n_dropped = to_grid(two_theta, intensity, lam, model_wavelength=lam_model, grid=grid,
                                         source=path_str)
    if converted:  # the points that reached the grid (the resampling method, whole-number counts)
        two_theta, mask = convert_wavelength(two_theta, lam, lam_model)
        intensity = intensity[mask]
    n_clipped = int((values < 0).sum())
    values = np.maximum(values, 0.0)
    scale = float(values[covered].max())
    if not scale > 0:
        raise DataError(f"{path_str}: no positive intensity within the model grid {grid.start}-{grid.stop} degrees")
    coverage = float(covered.mean())
    if coverage < 0.25:
        warn.append(f"{path_str}: the pattern covers only {100 * coverage:.0f} % of the model grid "
                    f"{grid.start}-{grid.stop} degrees")
    for message in warn:
        warnings.warn(message, PatternWarning, stacklevel=2)
    lead, trail = measured.trimmed_padding
    g = grid.values()[covered]
    info = {
        "coverage": coverage,
        "coverage_mask": covered,
        "covered_range": (float(g[0]), float(g[-1])),
        "wavelength": lam,
        "wavelength_source": meta["wavelength_source"],
        "model_wavelength": lam_model,
        "converted": converted,
        "n_dropped": n_dropped,
        "trimmed_padding": (int(lead), int(trail)),
        "method": "cell-average" if float(np.median(np.diff(two_theta))) < grid.step else "linear",
        "n_clipped": n_clipped,
        "scale": scale,
        "counts": bool(integer_like(intensity)[0]),
        "warnings": meta["warnings"] + warn,
        "metadata": meta,
    }
    return (values / scale).astype(np.float32), info


def peak_significance(intensity, step: float, *, counts=False) -> np.ndarray:
    """How far the strongest point of each pattern rises above its background, in noise sigmas.

    1. noise: a Gaussian filter of sigma :data:`PEAK_SMOOTH_DEG` (a matched filter of a peak's width);
    2. background: a local quadratic (Savitzky-Golay filter over :data:`PEAK_BACKGROUND_DEG`) fitted
       again and again with the points above it by more than one noise sigma clipped, so that it runs
       under the peaks (iterative polynomial clipping; Lieber & Mahadevan-Jansen, Appl. Spectrosc. 57
       (2003) 1363). A slope or a parabola is followed exactly, an exponential or a broad hump to well
       within the noise, so that no residue of the background is taken for a peak;
    3. noise sigma: 1.4826 x the median absolute residual (most points are no peak); for ``counts``
       (integer intensities: Poisson noise), where larger, sigma proportional to sqrt(background) with
       the factor fitted alike on the upper half of the background (smoothing and resampling change
       it); at least :data:`NOISE_FLOOR` of the background (noise-free input).

    Parameters
    ----------
    intensity : (M,) or (N, M) on a uniform 2theta axis, in any unit (the result does not depend on it).
    step : the axis step in degrees.
    counts : bool or (N,) bool, whether the pattern was measured as counts (:func:`integer_like` of the
        values as read, before any resampling).

    Returns
    -------
    (N,) float64 (N = 1 for one pattern): the largest (pattern - background) / sigma; 0 for a pattern
    that is flat. A pattern has peaks when this is at least :data:`MIN_PEAK_SIGNIFICANCE`
    (:func:`has_peaks`).
    """
    y, background, sigma = background_and_noise(intensity, step, counts=counts)
    scale = np.abs(y).max(axis=1, keepdims=True)
    if y.shape[1] < 5:
        return np.zeros(len(y))
    top = ((y - background) / np.where(sigma > 0, sigma, 1.0)).max(axis=1)
    return np.where(scale[:, 0] > 0, np.maximum(top, 0.0), 0.0)


def background_and_noise(intensity, step: float, *, counts=False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The smoothed pattern, its background and its noise sigma per point, as :func:`peak_significance`
    estimates them (steps 1-3 there; also the peak finder's, :mod:`synthxrd.peaks`).

    Parameters are those of :func:`peak_significance`. Returns three (N, M) float64 arrays: the pattern
    after the Gaussian filter of :data:`PEAK_SMOOTH_DEG`, the background under it and the noise sigma
    (> 0 wherever the pattern is not all zero). Patterns of fewer than 5 points are returned with
    background 0 and sigma 1. :class:`DataError` for non-finite intensities.
    """
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import savgol_filter

    y = np.array(np.atleast_2d(intensity), np.float64)
    if not np.isfinite(y).all():
        raise DataError("peak_significance: intensities must be finite")
    n = y.shape[1]
    if n < 5:
        return y, np.zeros_like(y), np.ones_like(y)
    if PEAK_SMOOTH_DEG / step >= 0.3:
        y = gaussian_filter1d(y, PEAK_SMOOTH_DEG / step, axis=1, mode="nearest")
    window = min(max(5, int(round(PEAK_BACKGROUND_DEG / step)) | 1), n if n % 2 else n - 1)

    def fit(values):
        return savgol_filter(values, window, 2, axis=1, mode="interp")

    def noise(residual):
        return MAD_TO_SIGMA * np.median(np.abs(residual), axis=1, keepdims=True)

    background = fit(y)
    for _ in range(20):  # the clipped points settle in a few rounds; 20 leave no change worth a peak
        background = fit(np.minimum(y, background + noise(y - background)))
    residual = y - background
    scale = np.abs(y).max(axis=1, keepdims=True)
    level = np.sqrt(np.maximum(background, 0.0))  # counting noise grows as sqrt(background)
    upper = (level >= np.median(level, axis=1, keepdims=True)) & (level > 0)  # counts well above zero
    ratio = np.where(upper, np.abs(residual), np.nan) / np.where(upper, level, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row with no such point: no counting noise
        gain = np.nan_to_num(np.nanmedian(ratio, axis=1, keepdims=True))
    counting = np.where(np.broadcast_to(np.asarray(counts, bool), (len(y),))[:, None], MAD_TO_SIGMA * gain * level,
                        0.0)
    sigma = np.maximum(np.maximum(noise(residual), counting),
                       np.maximum(NOISE_FLOOR * np.abs(background), 1e-9 * scale))
    return y, background, sigma


def has_peaks(intensity, step: float, *, counts=False) -> np.ndarray:
    """(N,) bool: whether each pattern has a peak that stands out of its noise (:func:`peak_significance`
    >= :data:`MIN_PEAK_SIGNIFICANCE`). A pattern without one gets no space group."""
    return peak_significance(intensity, step, counts=counts) >= MIN_PEAK_SIGNIFICANCE


def no_peaks_error(source: str, significance: float) -> DataError:
    """The error of a pattern without peaks (``source`` names it): a background alone gets no answer."""
    return DataError(f"{source}: no peaks found: nothing rises {MIN_PEAK_SIGNIFICANCE:g} noise sigmas above the "
                     f"background (at most {significance:.1f}); no space group is given")


def pattern_peak_significance(two_theta, intensity) -> float:
    """:func:`peak_significance` of a pattern as read (any 2theta axis): on a uniform grid over its own
    range at its median step (:func:`resample`), counts when its values are whole numbers."""
    tt = np.asarray(two_theta, np.float64)
    y = np.asarray(intensity, np.float64)
    step = float(np.median(np.diff(tt)))
    grid = Grid(float(tt[0]), float(tt[-1]), max(2, int(round((tt[-1] - tt[0]) / step)) + 1))
    values, covered = resample(tt, y, grid)
    return float(peak_significance(values[covered], grid.step, counts=integer_like(y))[0])


def integer_like(intensity) -> np.ndarray:
    """(N,) bool: whether each pattern's values are whole numbers >= 0 (counts, as most files hold)."""
    y = np.atleast_2d(np.asarray(intensity, np.float64))
    return ((y >= 0) & (np.abs(y - np.round(y)) < 1e-6)).all(axis=1)


def _linear_antiderivative(x: np.ndarray, y: np.ndarray):
    """F(t) = integral from x[0] to t of the piecewise-linear interpolant of (x, y), for t in [x0, xN]."""
    dx = np.diff(x)
    cumulative = np.concatenate(([0.0], np.cumsum(0.5 * (y[1:] + y[:-1]) * dx)))
    slope = np.diff(y) / dx

    def antiderivative(t: np.ndarray) -> np.ndarray:
        k = np.clip(np.searchsorted(x, t, side="right") - 1, 0, x.size - 2)
        d = t - x[k]
        return cumulative[k] + y[k] * d + 0.5 * slope[k] * d * d
    return antiderivative


def clean_patterns(y: np.ndarray, step: float, *, smooth_deg: float = 0.05, background_window_deg: float = 3.0,
                   noise_sigmas: float = 1.5) -> np.ndarray:
    """Patterns (N, M) on a uniform 2theta axis of ``step`` degrees with background and noise taken
    away, each row divided by its maximum (rows with nothing left are 0).

    1. noise: a Gaussian filter of sigma ``smooth_deg`` (skipped below 0.3 grid steps);
    2. background: a rolling minimum over ``background_window_deg`` followed by a moving average of
       the same width (an envelope from below, like a rolling-ball filter; Sonneveld & Visser,
       J. Appl. Cryst. 8 (1975) 1-7), subtracted where it lies below the pattern;
    3. noise floor: median + ``noise_sigmas`` x 1.4826 MAD of each row subtracted (most points
       are no peak, so median and MAD measure the baseline and its noise), then clipped at 0.

    A stage with its parameter 0 is skipped. The same function prepares measured patterns for
    search-match (:func:`synthxrd.match.search.prepare`) and network inputs of a model trained
    with ``InputSpec.clean``, so that synthetic and measured patterns reach the network alike.
    """
    from scipy.ndimage import gaussian_filter1d, minimum_filter1d, uniform_filter1d

    out = np.array(np.atleast_2d(y), np.float64)
    if smooth_deg > 0 and smooth_deg / step >= 0.3:
        out = gaussian_filter1d(out, smooth_deg / step, axis=1, mode="nearest")
    if background_window_deg > 0:
        w = max(3, int(round(background_window_deg / step)) | 1)
        if w < out.shape[1]:
            background = uniform_filter1d(minimum_filter1d(out, w, axis=1, mode="nearest"), w, axis=1, mode="nearest")
            out -= np.minimum(background, out)
    if noise_sigmas > 0:
        median = np.median(out, axis=1, keepdims=True)
        mad = np.median(np.abs(out - median), axis=1, keepdims=True)
        out -= median + noise_sigmas * MAD_TO_SIGMA * mad
    np.clip(out, 0.0, None, out=out)
    peak = out.max(axis=1, keepdims=True)
    return np.divide(out, peak, out=np.zeros_like(out), where=peak > 0)
