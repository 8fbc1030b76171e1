"""Read one measured pattern: recognise its format from the table, read it, check it.

Checks made on every pattern (each failure is a :class:`~synthxrd.errors.DataError` that names the
file, and for text files the line): the file exists and is not empty; it holds numeric data with at
least two columns and at least :data:`~synthxrd.io.MIN_POINTS` points; no NaN or infinite values;
2theta strictly increasing -- a scan recorded from high to low angle is flipped
(``metadata["reversed"]``), but a scan that goes back and forth or repeats an angle is refused rather
than sorted, because that means concatenated or corrupt scans; every 2theta in (0, 180) degrees. A
descending axis that ends below :data:`~synthxrd.io.LOW_ANGLE_LIMIT` is refused (a d-spacing list);
an ascending axis that ends below that limit only gives a :class:`~synthxrd.io.PatternWarning` (it
may be Q or d, or a genuine synchrotron scan). Negative intensities (after a background subtraction)
are kept and counted (``metadata["n_negative"]``); :func:`~synthxrd.io.load_for_model` clips them to
zero.

The wavelength in ``metadata["wavelength"]`` is K-alpha1 where a file states K-alpha1 and K-alpha2
separately (XRDML, RAW, BRML): the simulator models K-alpha1 only (docs/architecture.md), and the K-alpha2
component of a measured peak is its shoulder on the high-angle side, not a shift of the peak; the
average, K-alpha2 and the ratio are in ``kalpha_average``, ``kalpha2``, ``kalpha2_ratio``. A file
that states one value (RRUFF's ``##WAVELENGTH``, a header line) gives that value. Text headers are
read by the one parser of :mod:`synthxrd.io.wavelength` (UXD ``_WL1``/``_ANODE``, Rigaku
``*WAVE_LENGTH1`` and ``*HW_XG_WAVE_LENGTH_ALPHA1``, titles, line names); ``metadata["radiation"]``
says ``"neutron"`` or ``"synchrotron"`` where the file does, with a :class:`~synthxrd.io.PatternWarning`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from synthxrd.errors import DataError
from synthxrd.io._common import (
    LOW_ANGLE_LIMIT,
    MAX_PATTERN_BYTES,
    MIN_POINTS,
    NEGATIVE_WARNING_SHARE,
    PADDING_MIN_RUN,
    WAVELENGTH_MISMATCH,
    PatternWarning,
    Source,
    UnknownFormat,
)
from synthxrd.io.formats import detect_format, supported_formats
from synthxrd.simulate.common import resolve_wavelength

__all__ = ["NOT_LABORATORY", "missing_wavelength", "read_pattern"]

#: Radiations other than a laboratory X-ray tube, with what that means for the model and library
#: (load_for_model refuses them unless a wavelength is given explicitly).
NOT_LABORATORY = {
    "neutron": "the model and the reference library are X-ray (neutron intensities follow scattering lengths, "
               "not form factors): treat the answer with care",
    "synchrotron": "the model and the reference library are laboratory X-ray (trained on Cu K-alpha1 patterns): "
                   "treat the answer with care",
}


def read_pattern(path: str | Path, *, wavelength: float | str | None = None, max_bytes: int = MAX_PATTERN_BYTES
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read a measured powder pattern and check it.

    Parameters
    ----------
    path : file in one of the formats of :data:`~synthxrd.io.FORMATS` (recognised from the content).
    wavelength : Angstrom or a line name (``"CuKa1"``); used only where the file states none
        (``metadata["wavelength_source"] == "argument"``). A file's own wavelength wins; if the
        argument differs from it by more than 1 % a :class:`PatternWarning` says it was ignored.
    max_bytes : larger files are refused (default :data:`~synthxrd.io.MAX_PATTERN_BYTES`, 256 MiB);
        only regular files are read (not a FIFO or a device, which could block or never end).

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
        Missing, empty, unreadable or unsupported file, or data failing a check (see the docstring
        of :mod:`synthxrd.io.read`).
    ConfigError
        ``wavelength`` is neither a value in Angstrom nor a known line name.
    """
    path_str = str(path)
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path_str}: no such file")
    if path.is_dir():
        raise DataError(f"{path_str}: is a directory, not a pattern file")
    if not path.is_file():
        raise DataError(f"{path_str}: not a regular file (a pipe or a device); save the pattern to a file first")
    size = path.stat().st_size
    if size > max_bytes:
        raise DataError(f"{path_str}: {size / 2**20:.0f} MiB is more than a pattern file holds (limit "
                        f"{max_bytes / 2**20:.0f} MiB; read_pattern(max_bytes=...) raises it)")
    data = path.read_bytes()
    if not data.strip():
        raise DataError(f"{path_str}: the file is empty")
    meta: dict[str, Any] = {"format": None, "source": path_str, "wavelength": None, "wavelength_source": None,
                            "header": False, "header_lines": [], "n_columns": 2, "warnings": []}
    two_theta, intensity, lines_of = _read_source(Source(path_str, data), meta)
    two_theta, intensity = _check(two_theta, intensity, path_str, meta, lines_of)
    meta.setdefault("radiation", None)
    if meta["radiation"] in NOT_LABORATORY:
        meta["warnings"].append(f"{path_str}: {meta['radiation']} data ({meta.get('radiation_evidence')}); "
                                f"{NOT_LABORATORY[meta['radiation']]}")
    _apply_wavelength_argument(meta, wavelength, path_str)
    for message in meta["warnings"]:
        warnings.warn(message, PatternWarning, stacklevel=2)
    return two_theta, intensity, meta


def missing_wavelength(meta: dict) -> str:
    """Why ``meta`` has no wavelength, in words: the file states none, or names one that cannot be read."""
    if meta.get("wavelength_unreadable"):
        return f"the file names a wavelength that cannot be read ({meta['wavelength_unreadable']})"
    return "the file states no wavelength"


def _read_source(source: Source, meta: dict):
    """2theta, intensity and line numbers (or None) from the reader of the format the file is in."""
    try:
        fmt = detect_format(source)
        if fmt.read is None:
            raise DataError(f"{source.path}: {fmt.title}: not read: {fmt.description}")
        meta["format"] = fmt.name
        return fmt.read(source, meta)
    except UnknownFormat as exc:
        raise DataError(f"{exc}; supported: {supported_formats()}{exc.advice}") from None


def _where(i: int, lines_of: np.ndarray | None) -> str:
    """Where point i is: its line in a text file, else its number."""
    return f"line {int(lines_of[i])}" if lines_of is not None else f"point {i + 1}"


def _check(two_theta, intensity, path: str, meta: dict, lines_of: np.ndarray | None):
    """The checks of the module docstring; the points (flipped if descending) and summary keys in ``meta``."""
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
    negative = int((y < 0).sum())
    if negative > NEGATIVE_WARNING_SHARE * n:
        meta["warnings"].append(
            f"{path}: {negative} of {n} intensities are below zero (a subtracted background or an offset?); "
            "the model sees them as 0")
    median = float(np.median(steps))
    meta.update(
        n_points=int(n),
        step=median,
        step_uniform=bool(np.all(np.abs(steps - median) <= 0.01 * median)),
        two_theta_range=(float(x[0]), float(x[-1])),
        n_negative=negative,
        min_intensity=float(y.min()),
        max_intensity=float(y.max()),
        constant_edges=_constant_edges(y),
    )
    return x, y


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
    """Use ``wavelength`` where the file states none; warn where it contradicts the file's by > 1 %."""
    if wavelength is None:
        return
    given = resolve_wavelength(wavelength)
    if meta["wavelength"] is None:
        meta["wavelength"] = given
        meta["wavelength_source"] = "argument"
    elif abs(meta["wavelength"] - given) > WAVELENGTH_MISMATCH * given:
        meta["warnings"].append(f"{path}: the file states the wavelength {meta['wavelength']} A "
                                f"({meta['wavelength_source']}); the wavelength argument {wavelength!r} is ignored")

