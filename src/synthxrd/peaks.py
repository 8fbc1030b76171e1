"""Peak tables of measured powder patterns: 2theta, d, height, FWHM of every peak that stands out of the noise.

For users' peak tables, for indexing and as starting values of a refinement. numpy and scipy only (no
torch, no numba): this is the inference side, next to :mod:`synthxrd.io`, whose readers it uses.

1. read: :func:`synthxrd.io.read_pattern` (any supported format; a file's own wavelength wins); a
   non-uniform 2theta axis is put on a uniform one at its median step (:func:`synthxrd.io.resample`);
2. background and noise: :func:`synthxrd.io.prepare.background_and_noise`, the same estimate that
   decides whether a pattern has peaks at all before a prediction (a Gaussian filter of
   :data:`~synthxrd.io.prepare.PEAK_SMOOTH_DEG`, a clipped local quadratic background, robust and
   counting noise);
3. peaks: local maxima of the smoothed background-free pattern (:func:`scipy.signal.find_peaks`) that
   rise ``min_prominence`` noise sigmas above the background and above the valleys to their neighbours
   (prominence);
4. per peak: the position by a parabola through the three highest points of the smoothed pattern, the
   height as the background-free raw intensity there, the full width at half maximum above the
   background (:func:`scipy.signal.peak_widths`) of the smoothed pattern with the smoothing taken out in quadrature
   (exact for a Gaussian peak), and d from Bragg's law, d = lambda / (2 sin theta).

Not done: no profile fit (positions and widths are those of the points, to a fraction of a step), no
K-alpha2 stripping (at high angle a K-alpha1/K-alpha2 doublet gives two peaks or one with a shoulder), no
hkl. Peaks closer than about two smoothing widths (0.1 degrees) merge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthxrd.errors import DataError

__all__ = ["PeakTable", "find_peaks", "read_peaks", "DEFAULT_MIN_PROMINENCE"]

#: Noise sigmas by which a peak must rise above the background and above the valleys beside it. Noise
#: alone reaches about 4.5-6 sigma somewhere in 8,501 points (the largest of that many normal deviates),
#: so a threshold below that lists noise.
DEFAULT_MIN_PROMINENCE = 6.0
#: FWHM of a Gaussian in units of its sigma, 2 sqrt(2 ln 2).
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class PeakTable:
    """The peaks of one pattern, sorted by 2theta.

    Attributes
    ----------
    two_theta : (P,) float64, degrees.
    d : (P,) float64, Angstrom (NaN without a wavelength).
    height : (P,) float64, intensity above the background at the peak, in the file's units.
    relative : (P,) float64, height in percent of the highest peak.
    fwhm : (P,) float64, degrees, full width at half maximum.
    significance : (P,) float64, prominence in noise sigmas.
    wavelength : Angstrom, or None when neither the file nor the caller gave one.
    source : the file (or "array").
    """

    two_theta: np.ndarray
    d: np.ndarray
    height: np.ndarray
    relative: np.ndarray
    fwhm: np.ndarray
    significance: np.ndarray
    wavelength: float | None
    source: str = "array"

    def __len__(self) -> int:
        return len(self.two_theta)

    def rows(self) -> list[dict[str, float]]:
        """One dict per peak (JSON types; a missing d is None)."""
        return [{"two_theta": float(t), "d": None if not math.isfinite(d) else float(d), "height": float(h),
                 "relative": float(r), "fwhm": float(w), "significance": float(s)}
                for t, d, h, r, w, s in zip(self.two_theta, self.d, self.height, self.relative, self.fwhm,
                                            self.significance)]

    def to_dict(self) -> dict:
        return {"source": self.source, "wavelength": self.wavelength, "n_peaks": len(self), "peaks": self.rows()}

    def format(self) -> str:
        """A plain-text table, one peak a line."""
        head = f"{'2theta':>9}{'d (A)':>9}{'height':>12}{'I/Imax %':>10}{'FWHM':>8}{'sigmas':>8}"
        lines = [head, "-" * len(head)]
        for r in self.rows():
            d = f"{r['d']:>9.4f}" if r["d"] is not None else f"{'-':>9}"
            lines.append(f"{r['two_theta']:>9.3f}{d}{r['height']:>12.4g}{r['relative']:>10.1f}{r['fwhm']:>8.3f}"
                         f"{r['significance']:>8.1f}")
        return "\n".join(lines)


def find_peaks(two_theta, intensity, *, wavelength: float | None = None,
               min_prominence: float = DEFAULT_MIN_PROMINENCE, counts: bool | None = None,
               source: str = "array") -> PeakTable:
    """The peaks of one pattern (see the module docstring for the method).

    Parameters
    ----------
    two_theta : (M,) degrees, strictly increasing (a non-uniform axis is resampled at its median step).
    intensity : (M,) finite values, background allowed.
    wavelength : Angstrom, for d; None gives d = NaN.
    min_prominence : noise sigmas a peak must rise above background and neighbouring valleys (> 0).
    counts : whether the values are counts (Poisson noise); None: whether they are whole numbers >= 0.
    source : named in error messages and in the result.

    Raises
    ------
    DataError
        Arrays of different shapes, fewer than 5 points, non-finite values, or an axis that is not increasing.
    """
    from scipy.signal import find_peaks as _local_maxima
    from scipy.signal import peak_widths

    from synthxrd.io import integer_like, resample
    from synthxrd.io.prepare import PEAK_SMOOTH_DEG, background_and_noise
    from synthxrd.simulate.common import Grid

    x = np.asarray(two_theta, np.float64)
    y = np.asarray(intensity, np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise DataError(f"{source}: 2theta and intensity must be two columns of equal length, got shapes "
                        f"{x.shape} and {y.shape}")
    if x.size < 5:
        raise DataError(f"{source}: {x.size} points, a peak table needs at least 5")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise DataError(f"{source}: {int((~np.isfinite(x) | ~np.isfinite(y)).sum())} value(s) are NaN or infinite")
    steps = np.diff(x)
    if (steps <= 0).any():
        raise DataError(f"{source}: 2theta must increase, but does not after {x[np.argmax(steps <= 0)]:g}")
    if not (isinstance(min_prominence, (int, float)) and math.isfinite(min_prominence) and min_prominence > 0):
        raise DataError(f"{source}: min_prominence must be a positive number of noise sigmas, got {min_prominence!r}")
    if counts is None:
        counts = bool(integer_like(y)[0])
    step = float(np.median(steps))
    if np.abs(steps - step).max() > 0.01 * step:  # not uniform: onto the median step
        grid = Grid(float(x[0]), float(x[-1]), max(5, int(round((x[-1] - x[0]) / step)) + 1))
        y, covered = resample(x, y, grid)
        x, step = grid.values(), grid.step
        y[~covered] = np.median(y[covered]) if covered.any() else 0.0
    smooth, background, sigma = (a[0] for a in background_and_noise(y, step, counts=counts))
    residual = smooth - background
    noise = float(np.median(sigma))
    idx, props = _local_maxima(residual, height=min_prominence * sigma, prominence=min_prominence * noise)
    if idx.size == 0:
        return PeakTable(*(np.zeros(0) for _ in range(6)), wavelength=wavelength, source=source)
    # position: vertex of the parabola through the highest point and its neighbours
    i = np.clip(idx, 1, len(x) - 2)
    left, mid, right = residual[i - 1], residual[i], residual[i + 1]
    curvature = left - 2.0 * mid + right
    shift = np.where(curvature < 0, 0.5 * (left - right) / np.where(curvature < 0, curvature, -1.0), 0.0)
    position = x[0] + (i + np.clip(shift, -0.5, 0.5)) * step
    raw = y - background
    height = raw[np.clip(np.rint(i + shift).astype(int), 0, len(x) - 1)]
    height = np.maximum(height, residual[i])  # the smoothed top where noise dips the raw point
    # at half the height above the background (not half the prominence: a shoulder's prominence is small)
    top = residual[idx]
    widths = peak_widths(residual, idx, rel_height=0.5,
                         prominence_data=(top, props["left_bases"], props["right_bases"]))[0] * step
    smoothing = _FWHM_PER_SIGMA * PEAK_SMOOTH_DEG if PEAK_SMOOTH_DEG / step >= 0.3 else 0.0
    fwhm = np.sqrt(np.maximum(widths**2 - smoothing**2, step**2))
    d = (wavelength / (2.0 * np.sin(np.radians(position / 2.0))) if wavelength
         else np.full(len(position), np.nan))
    relative = 100.0 * height / height.max() if height.max() > 0 else np.zeros_like(height)
    return PeakTable(position, d, height, relative, fwhm, props["prominences"] / noise, wavelength=wavelength,
                     source=source)


def read_peaks(path: str | Path, *, wavelength: float | str | None = None,
               min_prominence: float = DEFAULT_MIN_PROMINENCE) -> PeakTable:
    """:func:`find_peaks` of a measured pattern file, read by :func:`synthxrd.io.read_pattern`.

    ``wavelength`` (Angstrom or a line name such as ``"CuKa1"``) is used where the file states none; a
    file without one and no argument gives d = NaN. :class:`DataError` naming the file for an unreadable
    or unusable file.
    """
    from synthxrd.io import read_pattern

    tt, y, meta = read_pattern(path, wavelength=wavelength)
    lam = meta.get("wavelength")
    if lam is None and wavelength is not None:
        from synthxrd.simulate.common import resolve_wavelength

        lam = resolve_wavelength(wavelength)
    return find_peaks(tt, y, wavelength=lam, min_prominence=min_prominence, source=str(path))
