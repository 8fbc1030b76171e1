"""How measured powder patterns look, and whether augmented synthetic patterns look the same.

Per-pattern statistics (:func:`measure`, one :class:`PatternStats` per pattern), each a small pure
function of a pattern sampled on a uniform 2theta axis (``two_theta`` in degrees, ascending;
``intensity`` in any units, only ratios are reported). b is the background (a lower envelope,
below), m = b + 1.28 sigma the mean level the noise scatters around, and H the height of the
strongest point above it, ``H = max(y) - m(2theta_max)``.

=====================  ==========================================================================
statistic              definition
=====================  ==========================================================================
start, stop            first and last 2theta of the covered range: the points from the first to
                       the last non-zero intensity (:func:`covered_slice`), degrees
step                   median spacing of the scan points, degrees (:func:`scan_step`)
noise                  sigma / H, sigma = 1.4826 MAD(r) / sqrt(2/3) of the high-pass residual
                       r_i = y_i - (y_(i-1) + y_i + y_(i+1)) / 3 (:func:`noise_sigma`)
background_level       median of the background b over the covered range / H
background_low, _high  mean of b over the first and the last third of the range / H
background_curvature   (mean of b over the middle third - (low + high) / 2) / H: > 0 a hump
n_peaks                visible peaks: local maxima higher than m + t and more prominent than t,
                       t = max(k sigma, 1e-3 H), k = :data:`VISIBLE_K` = 5 (:func:`visible_peaks`)
fwhm_median            median FWHM (degrees) of the :data:`FWHM_MAX_PEAKS` strongest isolated peaks
                       higher than m + :data:`FWHM_MIN_SNR` sigma, at half height above m; their
                       (2theta, FWHM) pairs are kept in ``peak_two_theta``/``peak_fwhm``
                       (:func:`peak_fwhm`)
=====================  ==========================================================================

The background b (:func:`background_curve`) is a lower envelope: the :data:`BACKGROUND_QUANTILE`
(10 %) quantile of the intensities in blocks of about :data:`BACKGROUND_BLOCK_DEG` (2 degrees),
interpolated linearly between the block centres. It ignores the peaks as long as they cover less
than 90 % of a block, and it lies :data:`ENVELOPE_Z` = 1.28 sigma below the mean background where
the noise is Gaussian; the background statistics report b (the same for every source, so the
comparison is fair; patterns whose background was subtracted and clipped at 0, like RRUFF's, give
b ~ 0), peaks are measured from m = b + 1.28 sigma (else noise 3.7 sigma above the mean, one
point in 10^4, would count as peaks).

The noise residual is the pattern minus its 3-point moving average: for white noise of standard
deviation sigma, var(r) = (2/3) sigma^2, and smooth signal (background, peaks much wider than a
step) leaves ~ nothing; the MAD ignores the few points where sharp peaks do leak in. With
Poisson noise sigma is that of the typical (background) point, the noise floor.

Sources (:func:`load_npz_patterns`, :func:`load_manifest_patterns`, :func:`synthetic_patterns`)
are measured where the network would see them: at the model wavelength (Cu K-alpha1), within the
model grid's window (5-90 degrees; a measured scan reaching 160 degrees is cut at 90), negative
intensities clipped to 0 (as :func:`synthxrd.io.load_for_model` and the renderer do), constant
padding at the ends trimmed; but on their own scan points, so that the noise of a coarse scan is
not hidden by the interpolation onto the model grid. A synthetic pattern of
:func:`synthxrd.augment.augmented_patterns` is simulated on its own scan (start, step drawn per
pattern, stage 6 of :mod:`synthxrd.augment`) and then resampled onto the model grid;
:func:`scan_view` takes the model-grid value nearest to each scan point (exact where a scan point
is a grid point; for steps between 1 and 2 grid steps the neighbouring scan point leaks in with a
weight <= 1/2, lowering the measured noise by up to 30 %; scans finer than the grid are measured
on the grid, where the box average has lowered their noise by sqrt(grid step / step)).

:func:`compare` summarises each statistic per source (median, 1/5/95/99 % quantiles) and checks
that the 5-95 % range of every measured source lies inside the 1-99 % range of the synthetic one;
:func:`format_report` prints it and :func:`plot_report` draws it (``synthxrd realism``).

References
----------
Median absolute deviation as a robust scale (1.4826 = 1/Phi^-1(3/4)): P. J. Rousseeuw, C. Croux,
J. Am. Stat. Assoc. 88 (1993) 1273-1283. Noise from a second difference: F. Stoehr et al., "DER_SNR",
ASP Conf. Ser. 394 (2008) 505. Limit of detection 3-5 sigma: IUPAC Compendium ("Gold Book"),
"detection limit".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from synthxrd.errors import ConfigError, DataError
from synthxrd.simulate.common import Grid

__all__ = [
    "MIN_POINTS",
    "MAD_TO_SIGMA",
    "BACKGROUND_BLOCK_DEG",
    "BACKGROUND_QUANTILE",
    "ENVELOPE_Z",
    "VISIBLE_K",
    "VISIBLE_MIN_FRACTION",
    "FWHM_MIN_SNR",
    "FWHM_MAX_PEAKS",
    "INTENSITY_RESOLUTION",
    "Statistic",
    "STATISTICS",
    "XRED_VARIANTS",
    "PatternStats",
    "SyntheticPatterns",
    "Summary",
    "Report",
    "check_pattern",
    "covered_slice",
    "scan_step",
    "noise_sigma",
    "background_curve",
    "background_shape",
    "visible_peaks",
    "peak_fwhm",
    "measure",
    "Scan",
    "measure_scans",
    "scan_view",
    "load_npz_patterns",
    "load_manifest_patterns",
    "render_synthetic",
    "synthetic_patterns",
    "measure_synthetic",
    "compare",
    "format_report",
    "plot_report",
    "report_payload",
]

#: A pattern needs at least this many covered points (a peak list or a truncated file is no pattern).
MIN_POINTS = 10
#: MAD -> standard deviation of a normal distribution: 1 / Phi^-1(3/4).
MAD_TO_SIGMA = 1.4826
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
#: Log-scale plots draw relative intensities (background, noise) below this value at it.
_LOG_FLOOR = 1e-5
#: Manifest variants of the XRED patterns measured by default (not the resampled copies).
XRED_VARIANTS = ("raw", "background_removed")

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
    """The realism statistics of one pattern (see the module docstring for the formulas).

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


# ------------------------------------------------------------------------------------------------
# Sources


@dataclass(frozen=True)
class Scan:
    """One measured pattern as :func:`measure` takes it.

    Attributes
    ----------
    name : where it came from (file and row, or sample id and variant).
    two_theta : (n,) float64 degrees at the model wavelength, ascending.
    intensity : (n,) float64 >= 0.
    """

    name: str
    two_theta: np.ndarray = field(repr=False)
    intensity: np.ndarray = field(repr=False)


def _window(name: str, two_theta: np.ndarray, intensity: np.ndarray, grid: Grid) -> Scan:
    """The points inside the model grid's window, negative intensities clipped to 0."""
    inside = (two_theta >= grid.start - 1e-9) & (two_theta <= grid.stop + 1e-9)
    return Scan(name, two_theta[inside], np.maximum(intensity[inside], 0.0))


def measure_scans(scans: Iterable[Scan]) -> list[PatternStats]:
    """:func:`measure` of each scan (errors name the scan)."""
    return [measure(s.two_theta, s.intensity, where=s.name) for s in scans]


def load_npz_patterns(path: str | Path, *, grid: Grid = Grid(), rows: Sequence[int] | None = None) -> list[Scan]:
    """Measured patterns of an NPZ file with ``two_theta`` (n,) and ``patterns`` (N, n) (the layout of
    ``rruff_dev300.npz``: Cu K-alpha, already on a 0.01 degree grid), as scans named
    ``<file>[<row>]`` within the grid's window, negative values clipped to 0. ``rows`` selects
    patterns (default all).

    Raises
    ------
    DataError
        Missing or unreadable file, missing key, shapes that do not fit.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("two_theta", "patterns") if k not in data.files]
            if missing:
                raise DataError(f"{path}: no array {missing[0]!r} (found: {', '.join(data.files) or 'nothing'}); "
                                "expected two_theta (n,) and patterns (N, n)")
            two_theta = np.asarray(data["two_theta"], np.float64)
            patterns = np.asarray(data["patterns"], np.float64)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read it as NPZ ({exc})") from None
    if two_theta.ndim != 1 or patterns.ndim != 2 or patterns.shape[1] != two_theta.size:
        raise DataError(f"{path}: two_theta {two_theta.shape} and patterns {patterns.shape} do not fit "
                        "(expected (n,) and (N, n))")
    selected = range(len(patterns)) if rows is None else rows
    out = []
    for i in selected:
        if not 0 <= int(i) < len(patterns):
            raise ConfigError(f"{path}: row {i} out of range (0..{len(patterns) - 1})")
        out.append(_window(f"{path.name}[{int(i)}]", two_theta, patterns[int(i)], grid))
    return out


def _manifest_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line, row) of a manifest CSV with a ``pattern_path`` column (no labels needed)."""
    import csv

    if not path.is_file():
        raise DataError(f"{path}: no such manifest file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(enumerate(reader, 2))
            columns = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the manifest ({exc})") from None
    if "pattern_path" not in columns:
        raise DataError(f"{path}: no column 'pattern_path' (found: {', '.join(columns) or 'nothing'})")
    return rows


def load_manifest_patterns(path: str | Path, *, variants: Iterable[str] | None = XRED_VARIANTS, grid: Grid = Grid(),
                           wavelength: float | str | None = None) -> dict[str, list[Scan]]:
    """Measured patterns of a manifest CSV, grouped by variant, as scans named
    ``<sample_id> <variant>`` (or the pattern path).

    The CSV (the layout of ``experimental/manifest.csv``) needs a ``pattern_path`` column (relative
    to the CSV's folder, or absolute); an optional ``variant`` column selects the rows of
    ``variants`` (None: every row; rows without a variant form the group "all") and an optional
    ``wavelength_A`` column gives the wavelength where the file states none. Each file is read
    with :func:`synthxrd.io.read_pattern`; constant padding at the ends is trimmed, 2theta
    converted to the model wavelength ``wavelength`` (default Cu K-alpha1) from the file's, else
    the manifest's, else Cu K-alpha1, and restricted to the grid's window; negative intensities are
    clipped to 0.

    Raises
    ------
    DataError
        Missing or malformed manifest, a file that cannot be read (naming it and the manifest
        line), or no row of the variants.
    """
    import warnings

    from synthxrd.io import PatternWarning, convert_wavelength, read_pattern
    from synthxrd.simulate.common import DEFAULT_WAVELENGTH, resolve_wavelength

    path = Path(path)
    lam_model = resolve_wavelength(DEFAULT_WAVELENGTH if wavelength is None else wavelength)
    wanted = None if variants is None else tuple(variants)
    out: dict[str, list[Scan]] = {}
    for line, row in _manifest_rows(path):
        variant = (row.get("variant") or "").strip() or "all"
        if wanted is not None and variant not in wanted:
            continue
        rel = (row.get("pattern_path") or "").strip()
        if not rel:
            raise DataError(f"{path}: line {line}: empty pattern_path")
        file = Path(rel) if Path(rel).is_absolute() else path.parent / rel
        lam_text = (row.get("wavelength_A") or "").strip()
        try:
            lam_row = float(lam_text) if lam_text else None
        except ValueError:
            raise DataError(f"{path}: line {line}: wavelength_A {lam_text!r} is not a number (Angstrom)") from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PatternWarning)
            try:
                x, y, meta = read_pattern(file)
            except DataError as exc:
                raise DataError(f"{path}: line {line}: {exc}") from None
        lead, trail = meta.get("constant_edges", (0, 0))
        if (lead or trail) and x.size - lead - trail >= MIN_POINTS:
            x, y = x[lead:x.size - trail], y[lead:y.size - trail]
        lam = meta.get("wavelength") or lam_row or lam_model
        if not math.isclose(lam, lam_model, rel_tol=1e-9):
            x, mask = convert_wavelength(x, lam, lam_model)
            y = y[mask]
        scan = _window(f"{(row.get('sample_id') or rel).strip()} {variant}", x, y, grid)
        if scan.two_theta.size < MIN_POINTS:
            raise DataError(f"{file}: fewer than {MIN_POINTS} points within the model window "
                            f"{grid.start}-{grid.stop} degrees 2theta")
        out.setdefault(variant, []).append(scan)
    if not out:
        raise DataError(f"{path}: no row of the variants {', '.join(wanted or ())}")
    return out


@dataclass(frozen=True)
class SyntheticPatterns:
    """Synthetic patterns on the model grid and the scan each was simulated on.

    Attributes
    ----------
    patterns : (N, grid.n) float32, as :func:`synthxrd.augment.augmented_patterns` returns them
        (a row of a crystal without reflection on the grid is all 0; :func:`synthetic_patterns`
        never returns one).
    scan_start, scan_step : (N,) float64 degrees, the simulated scan (grid start and step without
        augmentation).
    grid : the model grid.
    replaced : crystals drawn again (generation failed, or no reflection on the grid).
    """

    patterns: np.ndarray
    scan_start: np.ndarray
    scan_step: np.ndarray
    grid: Grid
    replaced: int = 0


def render_synthetic(crystals, config, rng: np.random.Generator, *, grid: Grid = Grid()) -> SyntheticPatterns:
    """Patterns of a :class:`~synthxrd.structure.CrystalBatch` with the scan of each.

    With an :class:`~synthxrd.augment.AugmentConfig` they are exactly those of
    :func:`synthxrd.augment.augmented_patterns` for the same ``rng`` (its two steps,
    :func:`~synthxrd.augment.draw_parameters` then :func:`~synthxrd.augment.render_with` over
    :func:`~synthxrd.augment.reflection_window`, are called here so that the scan of each pattern
    is known); with ``config=None`` the ideal Gaussian-Scherrer patterns of
    :func:`synthxrd.simulate.patterns` on the grid. Rows of crystals without a reflection on the
    grid are all 0 (see :attr:`SyntheticPatterns.patterns`).
    """
    from synthxrd import augment, simulate

    if config is not None and not isinstance(config, augment.AugmentConfig):
        raise ConfigError(f"realism: expected an AugmentConfig or None, got {type(config).__name__}")
    if config is None:
        out = simulate.patterns(crystals, rng=rng, grid=grid, allow_empty=True)
        return SyntheticPatterns(out, np.full(len(out), grid.start), np.full(len(out), grid.step), grid)
    refl = simulate.reflections(crystals, two_theta_range=augment.reflection_window(config, grid))
    params = augment.draw_parameters(config, len(crystals), rng, grid=grid)
    out = augment.render_with(crystals, refl, params, rng, grid=grid)
    return SyntheticPatterns(out, np.asarray(params.measured_start, np.float64),
                             np.asarray(params.measured_step, np.float64), grid)


def synthetic_patterns(n: int, config, rng: np.random.Generator, *, statistics: str | Path | None = None,
                       grid: Grid = Grid(), max_rounds: int = 100) -> SyntheticPatterns:
    """``n`` non-empty patterns of generated crystals, as the training stream makes them.

    Crystals come from :class:`synthxrd.generate.Generator` (``statistics``, None: the shipped
    ones; default :class:`~synthxrd.generate.GeneratorConfig`), one at a time, a failed draw
    redrawn (as :class:`synthxrd.data.BatchMaker`), and are rendered by :func:`render_synthetic`;
    patterns of crystals without a reflection on the grid are replaced by new crystals (counted in
    ``replaced``).
    """
    from synthxrd.generate import GenerationError, Generator, GeneratorConfig
    from synthxrd.stats import Statistics
    from synthxrd.structure import CrystalBatch

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"realism: number of synthetic patterns must be an integer >= 1, got {n!r}")
    generator = Generator(Statistics.load(statistics), GeneratorConfig())
    parts: list[SyntheticPatterns] = []
    have = replaced = 0
    for _ in range(max_rounds):
        crystals = []
        while len(crystals) < n - have:
            try:
                crystals.append(generator.sample_batch(1, rng))
            except GenerationError:
                replaced += 1
        batch = render_synthetic(CrystalBatch.concatenate(crystals), config, rng, grid=grid)
        ok = batch.patterns.max(axis=1) > 0
        replaced += int((~ok).sum())
        parts.append(SyntheticPatterns(batch.patterns[ok], batch.scan_start[ok], batch.scan_step[ok], grid))
        have += int(ok.sum())
        if have >= n:
            break
    else:
        raise DataError(f"realism: fewer than {n} non-empty synthetic patterns after {max_rounds} rounds")
    return SyntheticPatterns(np.concatenate([p.patterns for p in parts])[:n],
                             np.concatenate([p.scan_start for p in parts])[:n],
                             np.concatenate([p.scan_step for p in parts])[:n], grid, replaced)


def scan_view(row, grid: Grid, start: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic pattern on its own scan points: the model-grid value nearest to each scan point
    ``start + k step`` inside the covered range (see the module docstring for the small bias);
    scans as fine as the grid or finer are returned on the grid (covered range only)."""
    y = np.asarray(row, np.float64)
    g = grid.values()
    covered = covered_slice(y)
    lo, hi = g[covered.start], g[covered.stop - 1]
    if step <= grid.step * (1.0 + 1e-9):
        return g[covered], y[covered]
    k0 = math.ceil((lo - start) / step - 1e-9)
    nodes = start + step * np.arange(k0, math.floor((hi - start) / step + 1e-9) + 1)
    index = np.clip(np.rint((nodes - grid.start) / grid.step).astype(np.int64), covered.start, covered.stop - 1)
    return nodes, y[index]


def measure_synthetic(synthetic: SyntheticPatterns) -> list[PatternStats]:
    """:func:`measure` of every synthetic pattern on its scan (:func:`scan_view`), step = scan step.
    The covered range reported is that of the model grid (the scan window clipped to the grid).
    All-zero rows (crystals without reflection on the grid) are skipped."""
    out = []
    for i, row in enumerate(synthetic.patterns):
        if not np.any(row):
            continue
        x, y = scan_view(row, synthetic.grid, float(synthetic.scan_start[i]), float(synthetic.scan_step[i]))
        stats = measure(x, y, step=float(synthetic.scan_step[i]), where=f"synthetic pattern {i}")
        covered = covered_slice(row)
        g = synthetic.grid.values()
        out.append(replace(stats, start=float(g[covered.start]), stop=float(g[covered.stop - 1])))
    return out


# ------------------------------------------------------------------------------------------------
# Comparison


@dataclass(frozen=True)
class Summary:
    """One statistic of one source: ``n`` finite values, their median and 1/5/95/99 % quantiles
    (NaN when n = 0)."""

    statistic: str
    source: str
    n: int
    median: float
    p1: float
    p5: float
    p95: float
    p99: float


@dataclass(frozen=True)
class Report:
    """Summaries of every statistic and source, and the checks.

    Attributes
    ----------
    summaries : one :class:`Summary` per (statistic, source), in :data:`STATISTICS` order.
    inside : (statistic, measured source) -> whether the measured 5-95 % range lies inside the
        synthetic 1-99 % range (None when either has no finite value).
    synthetic : name of the synthetic source.
    """

    summaries: tuple[Summary, ...]
    inside: dict[tuple[str, str], bool | None]
    synthetic: str

    def summary(self, statistic: str, source: str) -> Summary:
        for s in self.summaries:
            if s.statistic == statistic and s.source == source:
                return s
        raise KeyError((statistic, source))

    @property
    def all_inside(self) -> bool:
        """Every check with values passed."""
        return all(v for v in self.inside.values() if v is not None)


def _summary(statistic: str, source: str, values: np.ndarray) -> Summary:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return Summary(statistic, source, 0, *([math.nan] * 5))
    q = np.percentile(v, [50, 1, 5, 95, 99])
    return Summary(statistic, source, int(v.size), *(float(t) for t in q))


def compare(stats: Mapping[str, Sequence[PatternStats]], *, synthetic: str = "synthetic") -> Report:
    """Summaries per statistic and source, and whether each measured source's 5-95 % range lies
    inside the 1-99 % range of the source named ``synthetic``: p1 <= p5 + atol and
    p95 <= p99 + atol, atol the statistic's tolerance (:data:`INTENSITY_RESOLUTION` for
    intensities relative to the strongest peak, else 0)."""
    if synthetic not in stats:
        raise ConfigError(f"realism: no source named {synthetic!r} among {', '.join(stats)}")
    summaries, inside = [], {}
    for stat in STATISTICS:
        name, tol = stat.name, stat.atol
        by_source = {src: _summary(name, src, np.array([s.value(name) for s in rows], np.float64))
                     for src, rows in stats.items()}
        summaries.extend(by_source.values())
        syn = by_source[synthetic]
        for src, summ in by_source.items():
            if src == synthetic:
                continue
            inside[(name, src)] = None if not (summ.n and syn.n) else bool(syn.p1 <= summ.p5 + tol
                                                                          and summ.p95 <= syn.p99 + tol)
    return Report(tuple(summaries), inside, synthetic)


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return "n/a"
    return "0" if v == 0 else f"{v:.3g}"


def format_report(report: Report) -> str:
    """The report as a text table: per statistic and source the median and 5-95 % range, the
    synthetic 1-99 % range, and for measured sources whether they lie inside it."""
    sources = list(dict.fromkeys(s.source for s in report.summaries))
    width = max(len(s) for s in sources)
    lines = []
    for stat in STATISTICS:
        name, label, unit = stat.name, stat.label, stat.unit
        syn = report.summary(name, report.synthetic)
        lines.append(f"{name} ({label}{', ' + unit if unit else ''})")
        for src in sources:
            s = report.summary(name, src)
            rng = f"[{_fmt(s.p5)}, {_fmt(s.p95)}]"
            if src == report.synthetic:
                tail = f"1-99 % [{_fmt(syn.p1)}, {_fmt(syn.p99)}]"
            else:
                ok = report.inside.get((name, src))
                tail = "inside" if ok else ("n/a" if ok is None else "OUTSIDE")
            lines.append(f"  {src:<{width}}  n {s.n:>4}  median {_fmt(s.median):>9}  5-95 % {rng:<22} {tail}")
    checks = [v for v in report.inside.values() if v is not None]
    lines.append(f"measured 5-95 % inside synthetic 1-99 %: {sum(checks)} of {len(checks)} "
                 + ("(all)" if report.all_inside else "(not all)"))
    return "\n".join(lines)


def report_payload(report: Report, stats: Mapping[str, Sequence[PatternStats]],
                   names: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """JSON-ready dict: summaries, checks and every pattern's statistics per source (with its name
    where ``names`` gives one)."""
    def row(i: int, src: str, s: PatternStats) -> dict[str, Any]:
        out: dict[str, Any] = {"name": names[src][i]} if names and src in names else {}
        out.update({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in asdict(s).items()})
        return out

    return _finite_or_none({
        "synthetic": report.synthetic,
        "all_inside": report.all_inside,
        "tolerances": {st.name: st.atol for st in STATISTICS},
        "summaries": [asdict(s) for s in report.summaries],
        "inside": [{"statistic": k[0], "source": k[1], "inside": v} for k, v in report.inside.items()],
        "patterns": {src: [row(i, src, s) for i, s in enumerate(rows)] for src, rows in stats.items()},
    })


def _finite_or_none(value: Any) -> Any:
    """``value`` with NaN and infinite floats replaced by None (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def plot_report(path: str | Path, report: Report, stats: Mapping[str, Sequence[PatternStats]], *,
                title: str = "", dpi: int = 100) -> Path:
    """Write a PNG (atomically) with one panel per statistic: box plots per source (box 25-75 %,
    whiskers 5-95 %, median line) over the synthetic 1-99 % range (shaded), and one panel of FWHM
    against 2theta (every measured peak, a dot per peak). On log axes, relative intensities below
    1e-5 (a background of 0) are drawn at 1e-5."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from synthxrd.files import atomic_write

    sources = list(stats)
    colours = {src: f"C{i}" for i, src in enumerate(sources)}
    n_panels = len(STATISTICS) + 1
    cols = 4
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows), dpi=dpi, constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, stat in zip(axes, STATISTICS):
        name, label, unit, log = stat.name, stat.label, stat.unit, stat.log
        floor = _LOG_FLOOR if stat.atol > 0 else 0.0  # relative intensities: 0 is a value, drawn at the floor
        data, names = [], []
        for src in sources:
            v = np.array([s.value(name) for s in stats[src]], np.float64)
            v = v[np.isfinite(v)]
            if log:
                v = np.maximum(v, floor)[np.maximum(v, floor) > 0]
            data.append(v if v.size else np.array([np.nan]))
            names.append(f"{src.replace(' ', chr(10))}\n(n={v.size})")
        syn = report.summary(name, report.synthetic)
        if syn.n and (not log or syn.p99 > 0):
            ax.axhspan(max(syn.p1, floor) if log else syn.p1, syn.p99, color="0.85", zorder=0)
        bp = ax.boxplot(data, whis=(5, 95), showfliers=True, patch_artist=True,
                        flierprops={"markersize": 2, "alpha": 0.4}, medianprops={"color": "k"})
        for patch, src in zip(bp["boxes"], sources):
            patch.set_facecolor(colours[src])
            patch.set_alpha(0.6)
        ax.set_xticks(range(1, len(sources) + 1), names, fontsize=7)
        if log:
            ax.set_yscale("log")
        ax.set_title(label + (f" ({unit})" if unit else ""), fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    ax = axes[len(STATISTICS)]
    for src in sources:
        tt = np.concatenate([s.peak_two_theta for s in stats[src]] or [np.zeros(0)])
        fw = np.concatenate([s.peak_fwhm for s in stats[src]] or [np.zeros(0)])
        ax.scatter(tt, fw, s=3, alpha=0.35, color=colours[src], label=f"{src} ({tt.size} peaks)", lw=0)
    ax.set_yscale("log")
    ax.set_xlabel("2theta (deg)", fontsize=8)
    ax.set_title("FWHM of isolated peaks (deg) vs 2theta", fontsize=9)
    ax.legend(fontsize=6, markerscale=3)
    ax.grid(alpha=0.3)
    for ax in axes[n_panels:]:
        ax.set_axis_off()
    if n_panels < axes.size:
        checks = [v for v in report.inside.values() if v is not None]
        axes[n_panels].text(0.0, 0.5, "grey band: synthetic 1-99 %\nbox: 25-75 %, whiskers: 5-95 %, line: median\n"
                            "log axes: relative intensities < 1e-5\n(a background of 0) drawn at 1e-5\n\n"
                            f"measured 5-95 % inside synthetic 1-99 %:\n{sum(checks)} of {len(checks)}",
                            fontsize=8, va="center", transform=axes[n_panels].transAxes)
    if title:
        fig.suptitle(title, fontsize=10)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
