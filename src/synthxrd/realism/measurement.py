"""Per-pattern statistics: noise, background, visible peaks and their widths of one pattern.

Pure functions of a (2theta, intensity) pair; the formulas are in the docstring of
:mod:`synthxrd.realism`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from synthxrd.errors import DataError
from synthxrd.io._common import MIN_POINTS  # a peak list or a truncated file is no pattern
from synthxrd.io.prepare import MAD_TO_SIGMA

__all__ = ["MIN_POINTS", "MAD_TO_SIGMA", "BACKGROUND_BLOCK_DEG", "BACKGROUND_QUANTILE", "ENVELOPE_Z", "VISIBLE_K",
           "VISIBLE_MIN_FRACTION", "FWHM_MIN_SNR", "FWHM_MAX_PEAKS", "INTENSITY_RESOLUTION", "Statistic", "STATISTICS",
           "PatternStats", "check_pattern", "covered_slice", "scan_step", "noise_sigma", "background_curve",
           "background_shape", "visible_peaks", "peak_fwhm", "measure"]

#: sqrt(var(r) / sigma^2) of the 3-point high-pass residual r = y - moving_average_3(y) of white noise.
_RESIDUAL_SCALE = math.sqrt(2.0 / 3.0)
#: Width (degrees) of the blocks whose low quantile is the background: wider than a cluster of
#: peaks, narrower than the background's variations (augment: bumps of FWHM >= 3 degrees).
BACKGROUND_BLOCK_DEG = 2.0
#: Quantile of each block taken as background (a lower envelope that ignores peaks covering < 90 %).
BACKGROUND_QUANTILE = 0.1
#: The envelope lies this many sigma below the mean background under Gaussian noise,
#: -Phi^-1(BACKGROUND_QUANTILE); peaks and H are measured from envelope + ENVELOPE_Z sigma.
ENVELOPE_Z = -NormalDist().inv_cdf(BACKGROUND_QUANTILE)
#: A visible peak rises more than VISIBLE_K sigma above the background and above its neighbourhood
#: (prominence): in Gaussian noise P = 2.9e-7 per point, 0.03 false peaks in 10^5 points.
VISIBLE_K = 5.0
#: ... and more than this fraction of H (noise-free patterns: peaks < 0.1 % are invisible on a plot).
VISIBLE_MIN_FRACTION = 1e-3
#: FWHMs are measured on visible peaks at least this many sigma above the background (the half
#: maximum then lies >= 5 sigma above it, so the crossings are not noise).
FWHM_MIN_SNR = 10.0
#: FWHMs of at most this many of the strongest isolated peaks are kept per pattern.
FWHM_MAX_PEAKS = 10
#: A peak is isolated when no other visible peak lies within its half-maximum interval widened by
#: this many FWHM on each side (a resolved K-alpha2 line, or a neighbour, disqualifies it).
_ISOLATION_FWHM = 1.0

#: Tolerance of the range check for statistics relative to the strongest peak: half a unit of
#: RRUFF's integer intensities (scaled to a maximum of 1000), so RRUFF's 0 means < 5e-4 and is
#: matched by a synthetic background of 3e-4; invisible on a linear plot of the pattern.
INTENSITY_RESOLUTION = 5e-4


@dataclass(frozen=True)
class Statistic:
    """A compared statistic: field of :class:`PatternStats`, label, unit, log scale in plots, and
    the absolute tolerance of the range check."""

    name: str
    label: str
    unit: str = ""
    log: bool = False
    atol: float = 0.0


#: Every statistic compared, in report order.
STATISTICS: tuple[Statistic, ...] = (
    Statistic("noise", "noise sigma / peak height", log=True, atol=INTENSITY_RESOLUTION),
    Statistic("background_level", "background level / peak height", log=True, atol=INTENSITY_RESOLUTION),
    Statistic("background_low", "background, first third / peak", log=True, atol=INTENSITY_RESOLUTION),
    Statistic("background_high", "background, last third / peak", log=True, atol=INTENSITY_RESOLUTION),
    Statistic("background_curvature", "background curvature / peak", atol=INTENSITY_RESOLUTION),
    Statistic("fwhm_median", "median FWHM of isolated peaks", "deg", log=True),
    Statistic("n_peaks", "visible peaks", log=True),
    Statistic("start", "2theta start", "deg"),
    Statistic("stop", "2theta stop", "deg"),
    Statistic("step", "2theta step", "deg", log=True),
)


@dataclass(frozen=True)
class PatternStats:
    """The realism statistics of one pattern (formulas in the docstring of :mod:`synthxrd.realism`).

    Attributes
    ----------
    start, stop : covered 2theta range, degrees.
    step : median scan step, degrees.
    noise : noise standard deviation / H (H: strongest peak height above the background).
    background_level : median background / H.
    background_low, background_high : mean background over the first / last third of the range / H.
    background_curvature : (mean over the middle third - mean of low and high) / H.
    n_peaks : number of visible peaks.
    fwhm_median : median of ``peak_fwhm`` (degrees), NaN when no peak qualified.
    peak_two_theta, peak_fwhm : (k,) float64 position and FWHM (degrees) of the measured peaks,
        strongest first (k <= :data:`FWHM_MAX_PEAKS`).
    """

    start: float
    stop: float
    step: float
    noise: float
    background_level: float
    background_low: float
    background_high: float
    background_curvature: float
    n_peaks: int
    fwhm_median: float
    peak_two_theta: np.ndarray = field(repr=False)
    peak_fwhm: np.ndarray = field(repr=False)

    def value(self, name: str) -> float:
        """The scalar statistic ``name`` (a field of :data:`STATISTICS`) as a float."""
        return float(getattr(self, name))


# ------------------------------------------------------------------------------------------------
# Per-pattern statistics (pure functions)


def check_pattern(two_theta, intensity, *, where: str = "pattern") -> tuple[np.ndarray, np.ndarray]:
    """``two_theta``, ``intensity`` as float64 arrays after the checks every statistic relies on.

    Raises
    ------
    DataError
        Not 1-D of equal length, fewer than :data:`MIN_POINTS` points, NaN or infinite values,
        2theta not strictly increasing, or no positive intensity. The message starts with ``where``.
    """
    x = np.asarray(two_theta, dtype=np.float64)
    y = np.asarray(intensity, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise DataError(f"{where}: two_theta {x.shape} and intensity {y.shape} must be 1-D of equal length")
    if x.size < MIN_POINTS:
        raise DataError(f"{where}: {x.size} points; a pattern needs at least {MIN_POINTS}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise DataError(f"{where}: NaN or infinite values ({int((~np.isfinite(y)).sum())} in the intensity)")
    if not (np.diff(x) > 0).all():
        raise DataError(f"{where}: two_theta must be strictly increasing")
    if not (y > 0).any():
        raise DataError(f"{where}: no positive intensity (an empty pattern)")
    return x, y


def covered_slice(intensity) -> slice:
    """The points from the first to the last non-zero intensity: what was measured (outside a
    synthetic scan window, or outside a measured range resampled onto a grid, the pattern is 0)."""
    nonzero = np.flatnonzero(np.asarray(intensity) != 0)
    if nonzero.size == 0:
        raise DataError("pattern: no non-zero intensity (an empty pattern)")
    return slice(int(nonzero[0]), int(nonzero[-1]) + 1)


def scan_step(two_theta) -> float:
    """Median spacing of the 2theta points, degrees."""
    return float(np.median(np.diff(np.asarray(two_theta, np.float64))))


def noise_sigma(intensity, axis: int = -1) -> np.ndarray | float:
    """Robust noise standard deviation of a pattern (or of each row of an array).

    sigma = 1.4826 MAD(r) / sqrt(2/3), with the high-pass residual r_i = y_i - (y_(i-1) + y_i +
    y_(i+1)) / 3 over the interior points and MAD(r) = median |r - median(r)|. Unbiased for white
    Gaussian noise on a signal that is locally linear over three points (Stoehr et al. 2008).
    """
    y = np.moveaxis(np.asarray(intensity, np.float64), axis, -1)
    if y.shape[-1] < 3:
        raise DataError(f"noise: need at least 3 points, got {y.shape[-1]}")
    r = y[..., 1:-1] - (y[..., :-2] + y[..., 1:-1] + y[..., 2:]) / 3.0
    mad = np.median(np.abs(r - np.median(r, axis=-1, keepdims=True)), axis=-1)
    sigma = MAD_TO_SIGMA * mad / _RESIDUAL_SCALE
    return float(sigma) if np.ndim(sigma) == 0 else sigma


def background_curve(two_theta, intensity, *, block_deg: float = BACKGROUND_BLOCK_DEG,
                     quantile: float = BACKGROUND_QUANTILE) -> np.ndarray:
    """Lower envelope b of a pattern: the ``quantile`` of the intensities in consecutive blocks of
    about ``block_deg`` degrees (at least 5 points each), linear between the block centres and
    constant beyond the first and last centre. (n,) float64."""
    x = np.asarray(two_theta, np.float64)
    y = np.asarray(intensity, np.float64)
    span = float(x[-1] - x[0])
    n_blocks = int(max(1, min(round(span / block_deg), x.size // 5)))
    bounds = np.linspace(0, x.size, n_blocks + 1).round().astype(np.int64)
    lengths = np.diff(bounds)
    # quantile of each block at once: pad the blocks to equal length with +inf (sorted last), sort
    # each row and interpolate between order statistics (numpy's default "linear" quantile)
    width = int(lengths.max())
    rows = np.full((n_blocks, width), np.inf)
    cols = np.arange(x.size) - np.repeat(bounds[:-1], lengths)
    rows[np.repeat(np.arange(n_blocks), lengths), cols] = y
    rows.sort(axis=1)
    pos = quantile * (lengths - 1)
    below = np.floor(pos).astype(np.int64)
    above = np.minimum(below + 1, lengths - 1)
    block = np.arange(n_blocks)
    levels = rows[block, below] + (pos - below) * (rows[block, above] - rows[block, below])
    centres = np.add.reduceat(x, bounds[:-1]) / lengths
    return np.interp(x, centres, levels)


def background_shape(background, height: float) -> tuple[float, float, float, float]:
    """(level, low, high, curvature) of a background curve relative to the peak height H:
    median(b)/H, mean(b) over the first and the last third of the points /H, and
    (mean over the middle third - (low + high)/2)/H."""
    b = np.asarray(background, np.float64) / height
    thirds = np.array_split(b, 3)
    low, mid, high = (float(t.mean()) for t in thirds)
    return float(np.median(b)), low, high, mid - 0.5 * (low + high)


def visible_peaks(intensity, background, sigma: float, height: float, *, k: float = VISIBLE_K) -> np.ndarray:
    """Indices of the visible peaks: local maxima (:func:`scipy.signal.find_peaks`) with
    y > m + t and prominence > t, t = max(k sigma, :data:`VISIBLE_MIN_FRACTION` H), m the
    ``background`` (:func:`measure` passes the mean level, envelope + 1.28 sigma)."""
    from scipy.signal import find_peaks

    y = np.asarray(intensity, np.float64)
    t = max(k * float(sigma), VISIBLE_MIN_FRACTION * float(height))
    peaks, _ = find_peaks(y, height=np.asarray(background, np.float64) + t, prominence=t)
    return peaks


def peak_fwhm(two_theta, intensity, background, peaks, sigma: float, *, min_snr: float = FWHM_MIN_SNR,
              max_peaks: int = FWHM_MAX_PEAKS) -> tuple[np.ndarray, np.ndarray]:
    """(2theta, FWHM) in degrees of the strongest isolated peaks, strongest first.

    For each visible peak p higher than m + ``min_snr`` sigma (m the ``background``;
    :func:`measure` passes the mean level), the half-maximum level is m(p) + (y(p) - m(p))/2 and
    its crossings left and right of p are interpolated linearly (:func:`scipy.signal.peak_widths`
    with the prominence measured from m). A peak counts when no other visible peak lies within its
    crossings widened by one FWHM on each side and the crossings lie inside the pattern. At most
    ``max_peaks`` peaks.
    """
    from scipy.signal import peak_widths

    x = np.asarray(two_theta, np.float64)
    y = np.asarray(intensity, np.float64)
    b = np.asarray(background, np.float64)
    peaks = np.asarray(peaks, np.int64)
    empty = (np.zeros(0), np.zeros(0))
    if peaks.size == 0:
        return empty
    strong = peaks[y[peaks] - b[peaks] > min_snr * float(sigma)]
    if strong.size == 0:
        return empty
    prominence = y[strong] - b[strong]
    n = y.size
    bases = (np.zeros(strong.size, np.intp), np.full(strong.size, n - 1, np.intp))
    _, _, left, right = peak_widths(y, strong, rel_height=0.5, prominence_data=(prominence, *bases))
    index = np.arange(n, dtype=np.float64)
    x_left, x_right = np.interp(left, index, x), np.interp(right, index, x)
    fwhm = x_right - x_left
    x_all = x[peaks]
    lo, hi = x_left - _ISOLATION_FWHM * fwhm, x_right + _ISOLATION_FWHM * fwhm
    neighbours = ((x_all[None, :] >= lo[:, None]) & (x_all[None, :] <= hi[:, None])).sum(axis=1) - 1
    inside = (left > 0) & (right < n - 1) & (fwhm > 0)
    keep = np.flatnonzero((neighbours == 0) & inside)
    keep = keep[np.argsort(-prominence[keep], kind="stable")][:max_peaks]
    return x[strong[keep]], fwhm[keep]


def measure(two_theta, intensity, *, step: float | None = None, where: str = "pattern") -> PatternStats:
    """All statistics of one pattern, over its covered range (:func:`covered_slice`).

    Parameters
    ----------
    two_theta : (n,) degrees, strictly increasing, uniform or nearly so (a measured scan).
    intensity : (n,) finite, >= 0 expected (clip negative values first, as the model input does).
    step : the scan step when it is known better than from ``two_theta`` (a synthetic scan viewed
        on the model grid); default the median spacing of the covered points.
    where : names the pattern in error messages.

    Raises
    ------
    DataError
        See :func:`check_pattern`; also when fewer than :data:`MIN_POINTS` points are covered or
        the strongest point does not rise above the background.
    """
    x, y = check_pattern(two_theta, intensity, where=where)
    covered = covered_slice(y)
    x, y = x[covered], y[covered]
    if x.size < MIN_POINTS:
        raise DataError(f"{where}: only {x.size} covered (non-zero) points; a pattern needs {MIN_POINTS}")
    sigma = noise_sigma(y)
    b = background_curve(x, y)
    mean = b + ENVELOPE_Z * sigma  # the background the peaks rise from (the noise is around it)
    top = int(np.argmax(y))
    height = float(y[top] - mean[top])
    if not height > 0:
        raise DataError(f"{where}: the strongest point does not rise above the background (a flat pattern)")
    level, low, high, curvature = background_shape(b, height)
    peaks = visible_peaks(y, mean, sigma, height)
    centres, widths = peak_fwhm(x, y, mean, peaks, sigma)
    return PatternStats(
        start=float(x[0]), stop=float(x[-1]), step=scan_step(x) if step is None else float(step),
        noise=sigma / height, background_level=level, background_low=low, background_high=high,
        background_curvature=curvature, n_peaks=int(peaks.size),
        fwhm_median=float(np.median(widths)) if widths.size else math.nan,
        peak_two_theta=centres, peak_fwhm=widths,
    )

