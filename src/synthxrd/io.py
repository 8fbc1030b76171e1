"""Measured powder patterns: read files, convert the wavelength, resample onto the model grid.

:func:`read_pattern` reads one measured pattern and checks it; :func:`convert_wavelength` moves its
2theta axis to another wavelength by Bragg's law; :func:`resample` puts it onto the model's 2theta grid;
:func:`load_for_model` does all three and normalises, giving the array a trained network expects.

Formats (detected from the content, the extension only breaks ties; ``metadata["format"]``):

``columns``
    Text with 2theta and intensity in the first two columns (``.xy``, ``.xye``, ``.dat``, ``.txt``,
    ``.csv``, ``.asc``, any extension), separated by spaces, tabs, commas or semicolons; with ``;``
    or a tab as separator a decimal comma is accepted (``10,02;123,5``). Further columns (an esd)
    are ignored. Blank lines and comment lines (starting with ``#``, ``!``, ``;``, ``%``, ``//``)
    are skipped anywhere; text lines (column titles, instrument settings) are accepted only before
    the data, and so are lines holding a single number (a point count, a wavelength). Once the data
    have started, a line that is not numbers is an error that names the line. A wavelength is taken
    from a header or comment line such as ``# Wavelength: 1.5406`` (Angstrom; ``nm`` is converted)
    or, failing that, from a line name such as ``Cu Ka1``. UTF-8, UTF-16 (with BOM) and Latin-1.
``rruff``
    RRUFF text files: the same columns, with ``##KEY=value`` header lines (kept in
    ``metadata["fields"]``; ``##WAVELENGTH=1.541838`` gives the wavelength) and data ending at
    ``##END=``.
``xrdml``
    PANalytical XRDML (XML, schema 1.x and 2.x), read with :mod:`xml.etree`. The 2theta axis comes
    from ``<positions axis="2Theta">`` (``startPosition``/``endPosition``, evenly spaced over the
    points, or ``listPositions``). ``<intensities>`` are taken as stored (already corrected for the
    beam attenuator); raw ``<counts>`` are multiplied by ``beamAttenuationFactors`` or
    ``commonBeamAttenuationFactor``. Per-point ``countingTimes`` that vary are divided out (counts/s).
    Only the first ``<scan>`` is read (``metadata["n_scans"]`` says how many there are).
``bruker_raw``
    Bruker DIFFRAC-plus ``RAW1.01`` (binary, little endian), as documented in *DIFFRAC plus
    XCH V.5.0 Release 2002, User's Manual, Appendix A* (layout as read by xylib): 712-byte file header
    (range count at byte 12, anode at 608, float64 K-alpha average/alpha1/alpha2/beta/ratio at
    616/624/632/640/648), then per range a 304-byte header (point count at +4, 2theta start at +16,
    step at +176, time per step at +192, supplementary-header length at +256), the supplementary
    headers and float32 counts. Only the first range is read (``metadata["n_ranges"]``). The older
    ``RAW``/``RAW2`` and the undocumented ``RAW4.00`` are refused with a :class:`DataError` that
    says to export the scan as ``.xy``.
``brml``
    Bruker ``.brml`` (a zip archive): the first ``RawData*.xml``; 2theta from the ``TwoTheta``
    scan axis (``Start``/``Increment``) or from the ``<Datum>`` column that the ``RawDataView`` of
    ``TwoTheta`` names, intensity from the last ``<Datum>`` column; tube wavelengths from
    ``WaveLengthAlpha1/Alpha2/Ratio/Average``. Steps marked -9999 (not measured) are dropped.
``gsas``
    GSAS constant-wavelength powder data (``.gsa``, ``.gsas``, ``.fxye``): the first ``BANK`` line
    ``BANK ibank nchan nrec CONST start step 0 0 type`` (start and step in centidegrees) with type
    ``STD`` (fixed records of ten ``(I2,F6.0)`` fields; the counter number is ignored), ``ESD`` (five
    ``(F8.0,F8.0)`` intensity/esd pairs per record) or ``FXYE`` (free-format 2theta in centidegrees,
    intensity, esd). ``ALT`` records and time-of-flight banks (``RALF``, ``SLOG``) are refused.
    GSAS data files do not hold the wavelength (it is in the instrument parameter file).

Not supported (a clear :class:`DataError`): Rigaku ``.ras``, Bruker ``RAW4.00`` and v1/v2 RAW,
Stoe and Philips binary files, spreadsheets (``.xlsx``).

Checks made on every pattern (each failure is a :class:`~synthxrd.errors.DataError` that names the
file, and for text files the line): the file exists and is not empty; it holds numeric data with at
least two columns and at least :data:`MIN_POINTS` points; no NaN or infinite values; 2theta strictly
increasing -- a scan recorded from high to low angle is flipped (``metadata["reversed"]``), but a scan
that goes back and forth or repeats an angle is refused rather than sorted, because that means
concatenated or corrupt scans; every 2theta in (0, 180) degrees. A first column titled ``d`` or
``q`` is refused (d-spacings or Q, not 2theta), and so is a descending axis that ends below
:data:`LOW_ANGLE_LIMIT` (a d-spacing list); an ascending axis that ends below that limit only gives a
:class:`PatternWarning` (it may be Q or d, or a genuine synchrotron scan). Negative intensities
(after a background subtraction) are kept and counted (``metadata["n_negative"]``);
:func:`load_for_model` clips them to zero.

The wavelength in ``metadata["wavelength"]`` is K-alpha1 where a file states K-alpha1 and K-alpha2
separately (XRDML, RAW, BRML): the simulator models K-alpha1 only (DESIGN.md), and the K-alpha2
component of a measured peak is its shoulder on the high-angle side, not a shift of the peak; the
average, K-alpha2 and the ratio are in ``kalpha_average``, ``kalpha2``, ``kalpha2_ratio``. A file
that states one value (RRUFF's ``##WAVELENGTH``, a header line) gives that value.
"""

from __future__ import annotations

import io as _stdio
import math
import re
import struct
import warnings
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from synthxrd.errors import DataError
from synthxrd.simulate.common import DEFAULT_WAVELENGTH, Grid, resolve_wavelength

__all__ = [
    "MIN_POINTS",
    "LOW_ANGLE_LIMIT",
    "PatternWarning",
    "read_pattern",
    "convert_wavelength",
    "resample",
    "load_for_model",
]

#: Fewer points than this are no pattern (a peak list, a truncated file).
MIN_POINTS = 10
#: Degrees 2theta. A whole axis below this looks like d-spacings (Angstrom) or Q (1/Angstrom): with
#: Cu K-alpha, 2theta < 15 degrees holds no more than d > 5.9 Angstrom, while d and Q values of a
#: powder pattern are typically 0.5-10.
LOW_ANGLE_LIMIT = 15.0
#: A run of at least this many identical, non-zero intensities at either end of a pattern is padding
#: (e.g. XRED's resampled RRUFF90/Experiment10 files repeat the first measured value down to 10
#: degrees); counting statistics make such runs impossible in measured data. load_for_model trims it.
PADDING_MIN_RUN = 20
#: A step larger than this many median steps is a gap in the measurement (e.g. between two ranges);
#: grid points inside a gap are not covered.
GAP_FACTOR = 10.0
#: Relative difference above which a wavelength given as argument is reported as contradicting the
#: file's (1 % separates anodes, and is larger than K-alpha1 vs the K-alpha average: 0.08 % for Cu).
WAVELENGTH_MISMATCH = 0.01
#: Bigger XML members of a .brml zip are refused (a zip bomb, or no powder scan).
MAX_XML_BYTES = 512 * 2**20

_COMMENT_PREFIXES = ("#", "!", ";", "%", "//")
_SUPPORTED = ("text columns (.xy, .xye, .dat, .txt, .csv), RRUFF, PANalytical .xrdml, Bruker RAW1.01 .raw, "
              "Bruker .brml, GSAS .gsa/.fxye")


class PatternWarning(UserWarning):
    """A pattern was read, but something about it is doubtful (also listed in ``metadata["warnings"]``)."""


# --------------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------------

def read_pattern(path: str | Path, *, wavelength: float | str | None = None
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read a measured powder pattern and check it.

    Parameters
    ----------
    path : file in one of the formats of this module's docstring (detected from the content).
    wavelength : Angstrom or a line name (``"CuKa1"``); used only where the file states none
        (``metadata["wavelength_source"] == "argument"``). A file's own wavelength wins; if the
        argument differs from it by more than 1 % a :class:`PatternWarning` says it was ignored.

    Returns
    -------
    two_theta : (N,) float64 degrees, strictly increasing, in (0, 180).
    intensity : (N,) float64, as stored in the file (counts, or arbitrary units).
    metadata : dict with at least ``format``, ``source`` (the path), ``wavelength`` (Angstrom or
        None), ``wavelength_source`` (where it came from, or None), ``n_points``, ``step`` (median
        2theta step), ``step_uniform`` (all steps within 1 % of the median), ``two_theta_range``
        (first, last), ``header`` (whether header or comment lines were found), ``header_lines``
        (up to 20 of them), ``n_columns``, ``reversed``, ``n_negative``, ``min_intensity``,
        ``max_intensity``, ``constant_edges`` (lengths of constant non-zero runs at the start and
        end, padding), ``warnings``; format-specific keys such as ``kalpha1``, ``kalpha2``,
        ``kalpha2_ratio``, ``kalpha_average``, ``counting_time`` (s), ``n_scans``, ``n_ranges``,
        ``fields`` (RRUFF).

    Raises
    ------
    DataError
        Missing, empty, unreadable or unsupported file, or data failing a check (see module docstring).
    ConfigError
        ``wavelength`` is neither a value in Angstrom nor a known line name.
    """
    path_str = str(path)
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path_str}: no such file")
    if path.is_dir():
        raise DataError(f"{path_str}: is a directory, not a pattern file")
    data = path.read_bytes()
    if not data.strip():
        raise DataError(f"{path_str}: the file is empty")
    meta: dict[str, Any] = {"format": None, "source": path_str, "wavelength": None, "wavelength_source": None,
                            "header": False, "header_lines": [], "n_columns": 2, "warnings": []}
    ext = path.suffix.lower()
    # each reader returns 2theta, intensity and, for text formats, the line number of each point
    if data[:4] == b"PK\x03\x04":
        two_theta, intensity, lines_of = _read_brml(data, path_str, ext, meta)
    elif data[:4] in (b"RAW1", b"RAW ", b"RAW2", b"RAW4") and b"\0" in data[:1024]:
        two_theta, intensity, lines_of = _read_bruker_raw(data, path_str, meta)
    else:
        text = _decode(data, path_str, ext)
        head = text.lstrip()[:4096]
        if head.startswith("<"):
            two_theta, intensity, lines_of = _read_xrdml(data, path_str, meta)
        elif _gsas_bank_index(text.splitlines()) is not None:
            two_theta, intensity, lines_of = _read_gsas(text, path_str, meta)
        elif "*RAS_" in head:
            raise DataError(f"{path_str}: Rigaku RAS files are not supported; export the scan as .xy")
        else:
            two_theta, intensity, lines_of = _read_columns(text, path_str, meta)
    two_theta, intensity = _check(two_theta, intensity, path_str, meta, lines_of)
    _apply_wavelength_argument(meta, wavelength, path_str)
    for message in meta["warnings"]:
        warnings.warn(message, PatternWarning, stacklevel=2)
    return two_theta, intensity, meta


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
    outside the measured range, or inside a gap larger than :data:`GAP_FACTOR` median steps, are 0
    and not covered.

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


def load_for_model(
    path: str | Path,
    *,
    wavelength: float | str | None = None,
    model_wavelength: float | str = DEFAULT_WAVELENGTH,
    grid: Grid = Grid(),
) -> tuple[np.ndarray, dict[str, Any]]:
    """A measured pattern as the model sees it: on the grid, at the model's wavelength, max 1.

    Steps: :func:`read_pattern`; the wavelength is the file's, else ``wavelength``, else Cu K-alpha1
    (the laboratory default, with a :class:`PatternWarning` naming the assumption); constant padding at the ends is trimmed
    (:data:`PADDING_MIN_RUN`); :func:`convert_wavelength` to ``model_wavelength`` (points with no
    equivalent dropped); :func:`resample` onto ``grid``; negative values clipped to 0; divided by
    the maximum over the covered points.

    Returns
    -------
    intensity : (grid.n,) float32 in [0, 1], maximum 1, 0 where not covered.
    info : dict with ``coverage`` (fraction of grid points covered), ``coverage_mask`` ((grid.n,)
        bool), ``covered_range`` (first and last covered grid 2theta, or None), ``wavelength`` (of
        the file, Angstrom), ``wavelength_source``, ``model_wavelength``, ``converted`` (bool),
        ``n_dropped`` (points with no equivalent at the model wavelength), ``trimmed_padding``
        ((start, end) points), ``method`` (``"cell-average"`` or ``"linear"``), ``n_clipped``
        (grid values < 0 set to 0), ``scale`` (the maximum divided by), ``warnings`` and
        ``metadata`` (that of :func:`read_pattern`).
    """
    path_str = str(path)
    two_theta, intensity, meta = read_pattern(path, wavelength=wavelength)
    lam = meta["wavelength"]
    warn: list[str] = []
    if lam is None:  # the laboratory default, said in one line rather than refused
        lam = DEFAULT_WAVELENGTH
        meta["wavelength_source"] = "assumed"
        warn.append(f"{path_str}: the file states no wavelength; assumed Cu K-alpha1 ({lam} Å) "
                    "(give --wavelength if it was measured otherwise)")
    lam_model = resolve_wavelength(model_wavelength)
    lead, trail = meta["constant_edges"]
    if lead or trail:
        keep = slice(lead, two_theta.size - trail)
        if two_theta[keep].size >= MIN_POINTS:
            two_theta, intensity = two_theta[keep], intensity[keep]
        else:
            lead = trail = 0
    converted = not math.isclose(lam, lam_model, rel_tol=1e-9)
    n_dropped = 0
    if converted:
        two_theta, mask = convert_wavelength(two_theta, lam, lam_model)
        intensity = intensity[mask]
        n_dropped = int((~mask).sum())
        if two_theta.size < 2:
            raise DataError(f"{path_str}: at the model wavelength {lam_model} A no point of the pattern "
                            f"(measured at {lam} A) has an equivalent 2theta below 180 degrees")
    values, covered = resample(two_theta, intensity, grid)
    if not covered.any():
        raise DataError(f"{path_str}: the measured range {two_theta[0]:.3f}-{two_theta[-1]:.3f} degrees 2theta "
                        f"(at {lam_model} A) does not overlap the model grid {grid.start}-{grid.stop} degrees")
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
        "warnings": meta["warnings"] + warn,
        "metadata": meta,
    }
    return (values / scale).astype(np.float32), info


# --------------------------------------------------------------------------------------------------
# checks shared by all formats
# --------------------------------------------------------------------------------------------------

def _where(i: int, lines_of: np.ndarray | None) -> str:
    return f"line {int(lines_of[i])}" if lines_of is not None else f"point {i + 1}"


def _check(two_theta, intensity, path: str, meta: dict, lines_of: np.ndarray | None):
    x = np.asarray(two_theta, dtype=np.float64)
    y = np.asarray(intensity, dtype=np.float64)
    n = x.size
    if n < MIN_POINTS:
        raise DataError(f"{path}: only {n} data point{'s' if n != 1 else ''}; a pattern needs at least {MIN_POINTS}")
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: {_where(i, lines_of)}: non-finite value (2theta {x[i]}, intensity {y[i]}); "
                        f"{int(bad.sum())} point(s) hold NaN or inf")
    steps = np.diff(x)
    meta["reversed"] = False
    if (steps < 0).all():
        if x[0] < LOW_ANGLE_LIMIT:
            raise DataError(f"{path}: the first column decreases from {x[0]:g} to {x[-1]:g}: these look like "
                            f"d-spacings (Angstrom), not 2theta; convert them to 2theta = 2 asin(lambda / 2d)")
        x, y = x[::-1].copy(), y[::-1].copy()
        meta["reversed"] = True
        if lines_of is not None:
            lines_of = lines_of[::-1]
        steps = np.diff(x)
    elif not (steps > 0).all():
        i = int(np.flatnonzero(steps <= 0)[0])
        if steps[i] == 0:
            problem = f"2theta {x[i + 1]:g} repeats the value of {_where(i, lines_of)}"
        else:
            problem = f"2theta goes back from {x[i]:g} ({_where(i, lines_of)}) to {x[i + 1]:g}"
        raise DataError(f"{path}: {_where(i + 1, lines_of)}: {problem}; a measured scan must be strictly "
                        f"increasing (or decreasing): split or sort concatenated scans first")
    if x[0] <= 0 or x[-1] >= 180:
        hint = ("" if x[-1] < 180 else
                "; values of 180 or more are no 2theta in degrees (channel numbers? centidegrees?)")
        raise DataError(f"{path}: 2theta runs from {x[0]:g} to {x[-1]:g}; every value must lie in (0, 180) "
                        f"degrees{hint}")
    if x[-1] < LOW_ANGLE_LIMIT:
        meta["warnings"].append(
            f"{path}: all 2theta values are below {LOW_ANGLE_LIMIT:g} degrees ({x[0]:g}-{x[-1]:g}); if the first "
            f"column holds d-spacings (Angstrom) or Q (1/Angstrom), convert it to 2theta first")
    median = float(np.median(steps))
    meta.update(
        n_points=int(n),
        step=median,
        step_uniform=bool(np.all(np.abs(steps - median) <= 0.01 * median)),
        two_theta_range=(float(x[0]), float(x[-1])),
        n_negative=int((y < 0).sum()),
        min_intensity=float(y.min()),
        max_intensity=float(y.max()),
        constant_edges=_constant_edges(y),
    )
    return x, y


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


def _constant_edges(y: np.ndarray) -> tuple[int, int]:
    """Lengths of the runs of one repeated non-zero value at the start and end (>= PADDING_MIN_RUN)."""
    def run(v: np.ndarray) -> int:
        if v[0] == 0:
            return 0
        tol = 1e-9 * max(abs(float(v[0])), 1e-300)
        differs = np.abs(v - v[0]) > tol
        length = int(np.argmax(differs)) if differs.any() else v.size
        return length if length >= PADDING_MIN_RUN else 0
    lead, trail = run(y), run(y[::-1])
    if lead + trail > y.size:  # entirely constant: no measured data to keep, report once
        trail = 0
    return lead, trail


def _apply_wavelength_argument(meta: dict, wavelength, path: str) -> None:
    if wavelength is None:
        return
    given = resolve_wavelength(wavelength)
    if meta["wavelength"] is None:
        meta["wavelength"] = given
        meta["wavelength_source"] = "argument"
    elif abs(meta["wavelength"] - given) > WAVELENGTH_MISMATCH * given:
        meta["warnings"].append(f"{path}: the file states the wavelength {meta['wavelength']} A "
                                f"({meta['wavelength_source']}); the wavelength argument {wavelength!r} is ignored")


def _tube(meta: dict, alpha1, alpha2, ratio, average, source: str) -> None:
    """Record tube wavelengths; metadata['wavelength'] is K-alpha1 (see module docstring)."""
    def ok(v):
        return v is not None and math.isfinite(v) and 0.01 < v < 100
    meta["kalpha1"] = float(alpha1) if ok(alpha1) else None
    meta["kalpha2"] = float(alpha2) if ok(alpha2) else None
    meta["kalpha2_ratio"] = float(ratio) if ratio is not None and math.isfinite(ratio) and ratio >= 0 else None
    meta["kalpha_average"] = float(average) if ok(average) else None
    if meta["kalpha1"] is not None:
        meta["wavelength"], meta["wavelength_source"] = meta["kalpha1"], f"{source}: K-alpha1"
    elif meta["kalpha_average"] is not None:
        meta["wavelength"], meta["wavelength_source"] = meta["kalpha_average"], f"{source}: K-alpha average"


# --------------------------------------------------------------------------------------------------
# text columns and RRUFF
# --------------------------------------------------------------------------------------------------

def _decode(data: bytes, path: str, ext: str) -> str:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    if b"\0" in data[:8192]:
        raise DataError(f"{path}: binary file of an unsupported format{f' ({ext})' if ext else ''}; "
                        f"supported: {_SUPPORTED}; export the scan as .xy")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


_NUMBER_SPLIT = re.compile(r"[,\s]+")
_FIELD_SPLIT = re.compile(r"[;\t]")


def _numbers(s: str) -> list[float]:
    """The numbers of one data line; ValueError if any field is not a number."""
    if ";" in s or "\t" in s:
        tokens = []
        for part in _FIELD_SPLIT.split(s):
            part = part.strip()
            if part.count(",") == 1 and "." not in part and " " not in part:
                part = part.replace(",", ".")  # decimal comma, possible only with ; or tab separators
            tokens.extend(t for t in _NUMBER_SPLIT.split(part) if t)
    else:
        tokens = [t for t in _NUMBER_SPLIT.split(s) if t]
    return [float(t) for t in tokens]


_WAVELENGTH_RE = re.compile(
    r"(?:wave\s*-?\s*length|lambda|\u03bb)[^\n]{0,24}?"          # the keyword, then up to 24 characters
    r"(?<![\w.])((?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"         # a number that is not part of a word
    r"\s*(nm|pm)?(?![\w.])", re.I)
_LINE_NAME_RE = re.compile(r"\b(Cu|Co|Mo|Fe|Cr|Ag)\s*-?\s*K\s*[-_ ]?\s*(?:alpha|a|\u03b1)\s*([12])?(?![a-z])", re.I)
_D_TITLE = re.compile(r"^(d|d[-_ ]?spacings?|dspacings?)\s*([(\[].*)?$", re.I)
_Q_TITLE = re.compile(r"^q\s*([(\[].*)?$", re.I)


def _wavelength_in(line: str) -> float | None:
    m = _WAVELENGTH_RE.search(line)
    if m:
        value = float(m.group(1)) * {"nm": 10.0, "pm": 0.01}.get((m.group(2) or "").lower(), 1.0)
        if 0.05 < value < 10.0:
            return value
    m = _LINE_NAME_RE.search(line)
    if m:
        try:
            return resolve_wavelength(f"{m.group(1)}Ka{m.group(2) or ''}")
        except Exception:  # noqa: BLE001 - a name not in the table is no wavelength
            return None
    return None


_TRAILING_COMMENT = re.compile(r"\s[#!]")
_NOT_PLAIN = re.compile(r"[^0-9eE+\-.,\s]")


def _plain_block(lines: list[str], first: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Fast path: lines[first:] as one table when they are plain numbers (else None: read line by line)."""
    numbered = []
    for j, line in enumerate(lines[first:], first + 1):
        s = line.strip()
        if s:
            if s.upper().startswith("##END"):  # RRUFF end of data
                break
            numbered.append((j, line))
    body = [line for _, line in numbered]
    if _NOT_PLAIN.search("\n".join(body)):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            table = np.loadtxt(body, delimiter="," if "," in body[0] else None, ndmin=2, dtype=np.float64)
    except (ValueError, Warning):
        return None
    if table.shape[1] < 2:
        return None
    return table, np.array([j for j, _ in numbered])


def _read_columns(text: str, path: str, meta: dict):
    lines = text.splitlines()
    rows: list[list[float]] = []
    row_lines: list[int] = []
    header: list[tuple[int, str]] = []  # text lines and lone numbers before the data
    comments: list[tuple[int, str]] = []
    fields: dict[str, str] = {}
    rruff = False
    n_lines = 0
    table = None
    for lineno, raw in enumerate(lines, 1):
        s = raw.strip()
        if not s:
            continue
        n_lines += 1
        if s.startswith("##"):
            rruff = True
            key, _, value = s[2:].partition("=")
            if key.strip().upper() == "END":
                break
            fields[key.strip()] = value.strip()
            comments.append((lineno, s))
            continue
        if s.startswith(_COMMENT_PREFIXES):
            comments.append((lineno, s))
            continue
        try:
            values = _numbers(_TRAILING_COMMENT.split(s, maxsplit=1)[0])
        except ValueError:
            values = None
        if not rows:
            if values is None or len(values) < 2:
                header.append((lineno, s))
                continue
            fast = _plain_block(lines, lineno - 1)
            if fast is not None:
                table, line_numbers = fast
                row_lines = [lineno]
                break
        elif values is None:
            raise DataError(f"{path}: line {lineno}: cannot read {s[:60]!r} as numbers "
                            f"(the data start at line {row_lines[0]})")
        rows.append(values)
        row_lines.append(lineno)
    meta["format"] = "rruff" if rruff else "columns"
    if rruff:
        meta["fields"] = fields
    before = [t for t in sorted(header + comments) if not row_lines or t[0] < row_lines[0]]
    meta["header"] = bool(before)
    meta["header_lines"] = [t for _, t in before[:20]]
    if table is None:
        if not rows:
            if any(len(_try_numbers(t)) == 1 for _, t in header):
                raise DataError(f"{path}: only one column of numbers; a pattern needs 2theta and intensity columns")
            raise DataError(f"{path}: no numeric data found ({n_lines} non-blank line{'s' if n_lines != 1 else ''}, "
                            f"none of them two or more numbers)")
        counts = [len(r) for r in rows]
        if len(rows) > 2 and counts[0] != counts[1] and all(c == counts[1] for c in counts[2:]):
            before.append((row_lines[0], lines[row_lines[0] - 1].strip()))  # e.g. "start step stop"
            rows, row_lines, counts = rows[1:], row_lines[1:], counts[1:]
            meta["header"] = True
            meta["header_lines"].append(before[-1][1])
        for ln, c in zip(row_lines, counts):
            if c != counts[0]:
                raise DataError(f"{path}: line {ln}: {c} column{'s' if c != 1 else ''} where the data have "
                                f"{counts[0]} (from line {row_lines[0]})")
        table, line_numbers = np.array(rows, dtype=np.float64), np.array(row_lines)
    meta["n_columns"] = int(table.shape[1])
    _check_column_titles(before, table.shape[1], path)
    for ln, t in before:
        lam = _wavelength_in(t)
        if lam is not None:
            meta["wavelength"], meta["wavelength_source"] = lam, f"header line {ln}: {t[:60]!r}"
            break
    return table[:, 0], table[:, 1], line_numbers


def _try_numbers(s: str) -> list[float]:
    try:
        return _numbers(s)
    except ValueError:
        return []


def _check_column_titles(before: list[tuple[int, str]], n_columns: int, path: str) -> None:
    """Refuse a first column titled d or q (the last header line before the data)."""
    if not before:
        return
    lineno, line = before[-1]
    line = line.lstrip("#!;%/ ").strip()
    tokens = [t.strip() for t in (_FIELD_SPLIT.split(line) if (";" in line or "\t" in line) else line.split(","))]
    if len(tokens) == 1:
        tokens = line.split()
    tokens = [t for t in tokens if t]
    if not tokens or len(tokens) > n_columns + 2:
        return
    first = tokens[0]
    if _D_TITLE.match(first):
        raise DataError(f"{path}: line {lineno}: the first column is titled {first!r}: d-spacings (Angstrom), "
                        f"not 2theta; convert them to 2theta = 2 asin(lambda / 2d)")
    if _Q_TITLE.match(first):
        raise DataError(f"{path}: line {lineno}: the first column is titled {first!r}: Q, not 2theta; "
                        f"convert it to 2theta = 2 asin(Q lambda / 4 pi)")


# --------------------------------------------------------------------------------------------------
# PANalytical XRDML
# --------------------------------------------------------------------------------------------------

def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(elem, name: str):
    return [c for c in elem if _local(c.tag) == name]


def _first(elem, name: str):
    for e in elem.iter():
        if _local(e.tag) == name:
            return e
    return None


def _floats(elem, path: str, what: str) -> np.ndarray:
    try:
        return np.array((elem.text or "").split(), dtype=np.float64)
    except ValueError:
        raise DataError(f"{path}: <{what}> holds values that are not numbers") from None


def _float_of(elem, path: str, what: str) -> float | None:
    if elem is None or not (elem.text or "").strip():
        return None
    try:
        return float(elem.text)
    except ValueError:
        raise DataError(f"{path}: <{what}> is {elem.text.strip()[:40]!r}, not a number") from None


def _parse_xml(data: bytes | str, path: str, what: str):
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise DataError(f"{path}: {what} is not well-formed XML ({exc})") from None


def _read_xrdml(data: bytes, path: str, meta: dict):
    root = _parse_xml(data, path, "the file")
    if _local(root.tag) != "xrdMeasurements":
        raise DataError(f"{path}: XML with root <{_local(root.tag)}>, not a PANalytical XRDML file "
                        f"(<xrdMeasurements>); supported: {_SUPPORTED}")
    meta["format"] = "xrdml"
    if "}" in root.tag:
        meta["xrdml_namespace"] = root.tag[1:].split("}")[0]
    scans = [s for s in root.iter() if _local(s.tag) == "scan"]
    if not scans:
        raise DataError(f"{path}: the XRDML file holds no <scan>")
    meta["n_scans"] = len(scans)
    if len(scans) > 1:
        meta["warnings"].append(f"{path}: {len(scans)} scans; only the first is read")
    used = _first(root, "usedWavelength")
    if used is not None:
        k1 = _float_of(_first(used, "kAlpha1"), path, "kAlpha1")
        k2 = _float_of(_first(used, "kAlpha2"), path, "kAlpha2")
        kb = _float_of(_first(used, "kBeta"), path, "kBeta")
        ratio = _float_of(_first(used, "ratioKAlpha2KAlpha1"), path, "ratioKAlpha2KAlpha1")
        unit = (_first(used, "kAlpha1").get("unit", "Angstrom") if _first(used, "kAlpha1") is not None else "Angstrom")
        factor = 10.0 if unit.lower() in ("nm", "nanometer", "nanometre") else 1.0
        k1, k2, kb = (None if v is None else v * factor for v in (k1, k2, kb))
        average = (k1 + ratio * k2) / (1 + ratio) if None not in (k1, k2, ratio) else None
        intended = used.get("intended", "")
        meta["intended_wavelength"] = intended or None
        meta["kbeta"] = kb
        _tube(meta, k1, k2, ratio, average, "xrdml")
        if "beta" in intended.lower() and kb is not None:
            meta["wavelength"], meta["wavelength_source"] = kb, "xrdml: K-beta (intended)"
    scan = scans[0]
    meta["scan_axis"] = scan.get("scanAxis")
    points = _first(scan, "dataPoints")
    if points is None:
        raise DataError(f"{path}: the first <scan> has no <dataPoints>")
    values_elem = _first(points, "intensities")
    raw_counts = values_elem is None
    if raw_counts:
        values_elem = _first(points, "counts")
    if values_elem is None:
        raise DataError(f"{path}: the first scan has neither <intensities> nor <counts>")
    y = _floats(values_elem, path, _local(values_elem.tag))
    meta["intensity_element"] = _local(values_elem.tag)
    if raw_counts:
        factors = _first(points, "beamAttenuationFactors")
        common = _float_of(_first(points, "commonBeamAttenuationFactor"), path, "commonBeamAttenuationFactor")
        if factors is not None:
            f = _floats(factors, path, "beamAttenuationFactors")
            if f.size != y.size:
                raise DataError(f"{path}: {f.size} beamAttenuationFactors for {y.size} counts")
            y = y * f
            meta["attenuation_applied"] = True
        elif common is not None and common != 1:
            y = y * common
            meta["attenuation_applied"] = True
    tt_elem = None
    for positions in _children(points, "positions"):
        if positions.get("axis", "").replace(" ", "").lower() == "2theta":
            tt_elem = positions
            break
    if tt_elem is None:
        raise DataError(f"{path}: the first scan has no <positions axis=\"2Theta\">")
    listed = _first(tt_elem, "listPositions")
    if listed is not None:
        x = _floats(listed, path, "listPositions")
        if x.size != y.size:
            raise DataError(f"{path}: {x.size} listPositions for {y.size} intensities")
    else:
        start = _float_of(_first(tt_elem, "startPosition"), path, "startPosition")
        end = _float_of(_first(tt_elem, "endPosition"), path, "endPosition")
        if start is None or end is None:
            common_pos = _float_of(_first(tt_elem, "commonPosition"), path, "commonPosition")
            if common_pos is not None:
                raise DataError(f"{path}: 2Theta stays at {common_pos:g} degrees in this scan "
                                f"(scan axis {meta['scan_axis']}); it is no 2theta scan")
            raise DataError(f"{path}: 2Theta positions give neither startPosition/endPosition nor listPositions")
        x = np.linspace(start, end, y.size)
    times = _first(points, "countingTimes")
    common_time = _float_of(_first(points, "commonCountingTime"), path, "commonCountingTime")
    if times is not None:
        t = _floats(times, path, "countingTimes")
        if t.size == y.size and np.all(t > 0) and not np.allclose(t, t[0]):
            y = y / t
            meta["intensity_unit"] = "counts/s"
        meta["counting_time"] = float(np.median(t)) if t.size else None
    else:
        meta["counting_time"] = common_time
    return x, y, None


# --------------------------------------------------------------------------------------------------
# Bruker RAW1.01 and BRML
# --------------------------------------------------------------------------------------------------

_RAW_FILE_HEADER = 712
_RAW_RANGE_HEADER = 304


def _read_bruker_raw(data: bytes, path: str, meta: dict):
    meta["format"] = "bruker_raw"
    if data[:7] != b"RAW1.01":
        version = data[:8].split(b"\0")[0].decode("ascii", "replace").strip() or "?"
        raise DataError(f"{path}: Bruker RAW version {version!r} is not supported (only RAW1.01); "
                        f"export the scan as .xy")
    if len(data) < _RAW_FILE_HEADER:
        raise DataError(f"{path}: Bruker RAW1.01 file truncated ({len(data)} bytes, the header alone has "
                        f"{_RAW_FILE_HEADER})")
    status, n_ranges = struct.unpack_from("<II", data, 8)
    meta["file_status"] = {1: "done", 2: "active", 3: "aborted", 4: "interrupted"}.get(status, str(status))
    meta["anode"] = data[608:612].split(b"\0")[0].decode("ascii", "replace").strip() or None
    average, alpha1, alpha2, _beta, ratio = struct.unpack_from("<5d", data, 616)
    meta["n_ranges"] = int(n_ranges)
    if n_ranges < 1:
        raise DataError(f"{path}: the Bruker RAW1.01 file holds no data range")
    if n_ranges > 1:
        meta["warnings"].append(f"{path}: {n_ranges} ranges; only the first is read")
    pos = _RAW_FILE_HEADER
    if len(data) < pos + _RAW_RANGE_HEADER:
        raise DataError(f"{path}: Bruker RAW1.01 file truncated in the header of range 1")
    header_len, steps = struct.unpack_from("<II", data, pos)
    if header_len != _RAW_RANGE_HEADER:
        raise DataError(f"{path}: range 1 has a header of {header_len} bytes, RAW1.01 has {_RAW_RANGE_HEADER}")
    (start_2theta,) = struct.unpack_from("<d", data, pos + 16)
    (step,) = struct.unpack_from("<d", data, pos + 176)
    (time_per_step,) = struct.unpack_from("<f", data, pos + 192)
    (used_lambda,) = struct.unpack_from("<d", data, pos + 240)
    (supplementary,) = struct.unpack_from("<I", data, pos + 256)
    begin = pos + header_len + supplementary
    if len(data) < begin + 4 * steps:
        raise DataError(f"{path}: range 1 declares {steps} points but the file ends after "
                        f"{max(0, (len(data) - begin) // 4)}")
    y = np.frombuffer(data, dtype="<f4", count=steps, offset=begin).astype(np.float64)
    x = start_2theta + step * np.arange(steps, dtype=np.float64)
    _tube(meta, alpha1, alpha2, ratio, average, "RAW1.01 header")
    if meta["wavelength"] is None and 0.01 < used_lambda < 100:
        meta["wavelength"], meta["wavelength_source"] = float(used_lambda), "RAW1.01 range 1: used lambda"
    meta["counting_time"] = float(time_per_step)
    if status in (2, 3, 4):
        meta["warnings"].append(f"{path}: the measurement was {meta['file_status']}, not completed")
    return x, y, None


def _read_brml(data: bytes, path: str, ext: str, meta: dict):
    meta["format"] = "brml"
    try:
        archive = zipfile.ZipFile(_stdio.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise DataError(f"{path}: broken zip archive ({exc})") from None
    with archive:
        def key(name: str):
            return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]
        raw = sorted((n for n in archive.namelist() if re.search(r"(^|/)RawData\d*\.xml$", n)), key=key)
        if not raw:
            what = "a spreadsheet (.xlsx)" if ext in (".xlsx", ".xlsm", ".ods") else "not a Bruker .brml"
            raise DataError(f"{path}: zip archive without RawData*.xml ({what}); supported: {_SUPPORTED}")
        meta["n_ranges"] = len(raw)
        if len(raw) > 1:
            meta["warnings"].append(f"{path}: {len(raw)} RawData files (ranges); only {raw[0]} is read")

        def read(name: str) -> bytes:
            if archive.getinfo(name).file_size > MAX_XML_BYTES:
                raise DataError(f"{path}: {name} is larger than {MAX_XML_BYTES // 2**20} MiB")
            return archive.read(name)

        root = _parse_xml(read(raw[0]), path, raw[0])
        tube_root = root if _first(root, "WaveLengthAlpha1") is not None else None
        if tube_root is None:
            for name in archive.namelist():
                if name.lower().endswith(".xml") and name != raw[0] and "measurementcontainer" in name.lower():
                    candidate = _parse_xml(read(name), path, name)
                    if _first(candidate, "WaveLengthAlpha1") is not None:
                        tube_root = candidate
                        break
    routes = [r for r in root.iter() if _local(r.tag) == "DataRoute" and _first(r, "Datum") is not None]
    if not routes:
        raise DataError(f"{path}: {raw[0]} holds no <Datum> measurement points")
    route = routes[0]
    start = increment = None
    for axis in route.iter():
        if _local(axis.tag) == "ScanAxisInfo" and "twotheta" in (
                axis.get("AxisId", "") + axis.get("AxisName", "")).lower().replace("2", "two"):
            start = _float_of(_first(axis, "Start"), path, "Start")
            increment = _float_of(_first(axis, "Increment"), path, "Increment")
            break
    tt_column = None
    for view in route.iter():
        if _local(view.tag) == "RawDataView" and view.get("Start") is not None and any(
                "twotheta" in v.lower() for k, v in view.attrib.items() if k != "Start"):
            try:
                tt_column = int(view.get("Start"))
            except ValueError:
                pass
            break
    rows = []
    for datum in route.iter():
        if _local(datum.tag) == "Datum":
            try:
                rows.append([float(v) for v in (datum.text or "").split(",") if v.strip()])
            except ValueError:
                raise DataError(f"{path}: <Datum> {(datum.text or '')[:60]!r} is not comma-separated numbers") from None
    width = min(len(r) for r in rows)
    if width < 1 or any(len(r) != len(rows[0]) for r in rows):
        raise DataError(f"{path}: the <Datum> rows have different numbers of values")
    table = np.array(rows, dtype=np.float64)
    y = table[:, -1]
    if tt_column is None and width >= 5:
        tt_column = 2  # time, absorber factor, 2theta, theta, counts
    if tt_column is not None and tt_column < width - 1:
        x = table[:, tt_column]
        if start is not None and increment:
            expected = start + increment * np.arange(len(rows))
            if not np.allclose(x, expected, atol=abs(increment) / 2):
                x = expected
    elif start is not None and increment:
        x = start + increment * np.arange(len(rows))
    else:
        raise DataError(f"{path}: no TwoTheta scan axis (Start/Increment) and no 2theta column in <Datum>")
    if width >= 5 and not np.allclose(table[:, 1], 1.0):
        meta["warnings"].append(f"{path}: absorber factors other than 1 in <Datum> column 2 were not applied")
    measured = y != -9999
    if not measured.all():
        meta["warnings"].append(f"{path}: {int((~measured).sum())} steps marked -9999 (not measured) dropped")
        x, y = x[measured], y[measured]
    if tube_root is not None:
        def value(name):
            e = _first(tube_root, name)
            try:
                return float(e.get("Value")) if e is not None and e.get("Value") is not None else None
            except ValueError:
                return None
        _tube(meta, value("WaveLengthAlpha1"), value("WaveLengthAlpha2"), value("WaveLengthRatio"),
              value("WaveLengthAverage"), "brml tube")
    return x, y, None


# --------------------------------------------------------------------------------------------------
# GSAS
# --------------------------------------------------------------------------------------------------

_BANK_RE = re.compile(r"^BANK\s+\d+\s+\d+\s+\d+\s+\S+")


def _gsas_bank_index(lines: list[str]) -> int | None:
    for i, line in enumerate(lines[:200]):
        if _BANK_RE.match(line):
            return i
    return None


def _read_gsas(text: str, path: str, meta: dict):
    meta["format"] = "gsas"
    lines = text.splitlines()
    first = _gsas_bank_index(lines)
    banks = [i for i, line in enumerate(lines) if line.startswith("BANK")]
    meta["n_banks"] = len(banks)
    if len(banks) > 1:
        meta["warnings"].append(f"{path}: {len(banks)} banks; only the first is read")
    before = [s.strip() for s in lines[:first] if s.strip()]
    meta["header"] = bool(before)
    meta["header_lines"] = before[:20]
    meta["title"] = before[0] if before else None
    for ln, s in enumerate(lines[:first], 1):
        lam = _wavelength_in(s)
        if lam is not None:
            meta["wavelength"], meta["wavelength_source"] = lam, f"header line {ln}: {s.strip()[:60]!r}"
            break
    tokens = lines[first].split()
    bank_line = first + 1
    try:
        nchan = int(tokens[2])
        bintyp = tokens[4].upper()
        kind = tokens[-1].upper() if tokens[-1].upper() in ("STD", "ESD", "ALT", "FXYE") else "STD"
        if bintyp in ("CONST", "CONS"):
            start, step = float(tokens[5]) / 100.0, float(tokens[6]) / 100.0
    except (IndexError, ValueError):
        raise DataError(f"{path}: line {bank_line}: cannot read the BANK line {lines[first][:60]!r}") from None
    meta["gsas_type"] = kind
    if bintyp not in ("CONST", "CONS"):
        raise DataError(f"{path}: line {bank_line}: GSAS bank binning {bintyp!r} (time-of-flight) is not supported; "
                        f"only constant-wavelength CONST/CONS banks")
    if kind == "ALT":
        raise DataError(f"{path}: line {bank_line}: the GSAS ALT record format is not supported; "
                        f"export as FXYE, STD or .xy")
    end = next((i for i in banks if i > first), len(lines))
    body = [(i + 1, lines[i]) for i in range(first + 1, end) if lines[i].strip() and not lines[i].startswith("#")]
    lines_of: list[int] = []
    values: list[float] = []
    xs: list[float] = []
    for ln, s in body:
        try:
            if kind == "FXYE":
                numbers = _numbers(s)
                if len(numbers) < 2:
                    raise ValueError
                xs.append(numbers[0] / 100.0)
                values.append(numbers[1])
                lines_of.append(ln)
            else:
                s = s.rstrip("\r\n").ljust(80)
                for k in range(10 if kind == "STD" else 5):
                    field = s[8 * k: 8 * k + 8] if kind == "STD" else s[16 * k: 16 * k + 8]
                    number = field[2:] if kind == "STD" else field
                    if not field.strip():
                        continue
                    values.append(float(number))
                    lines_of.append(ln)
        except ValueError:
            raise DataError(f"{path}: line {ln}: cannot read {s.strip()[:60]!r} as GSAS {kind} data") from None
    if kind == "FXYE":
        return np.array(xs), np.array(values), np.array(lines_of)
    if len(values) < nchan:
        raise DataError(f"{path}: the BANK line declares {nchan} points, the data hold {len(values)}")
    return start + step * np.arange(nchan), np.array(values[:nchan]), np.array(lines_of[:nchan])
