"""Bruker UXD (``.uxd``): the text export of DIFFRAC-plus XCH and DIFFRAC.SUITE.

Reference: *DIFFRAC plus XCH V.5.0, User's Manual* (Bruker AXS 2002), appendix "UXD file format";
the layout as read by xylib (``xylib/uxd.cpp``, LGPL). Header lines ``_KEY=value`` (``_WL1``,
``_WL2``, ``_WLRATIO``, ``_ANODE`` for the tube; ``_START``, ``_STEPSIZE`` per range), comment lines
starting with ``;``. The data of a range follow one of the keys

- ``_2THETACOUNTS``, ``_2THETACPS``, ``_2THETA``: two columns, 2theta and intensity;
- ``_COUNTS``, ``_CPS``: intensities only, several per line; 2theta is ``_START + i _STEPSIZE``
  (``_START`` and ``_STEPSIZE`` of the range, else of the file header).

The first range is read (``metadata["n_ranges"]``). ``_CPS`` and ``_2THETACPS`` are counts per
second (``metadata["intensity_unit"]``).
"""

from __future__ import annotations

import re

import numpy as np

from synthxrd.errors import DataError
from synthxrd.io._common import Source, numbers, text_start
from synthxrd.io.wavelength import apply_header, scan_header

__all__ = ["is_uxd", "read_uxd"]

#: Data-block keys: two columns (2theta, intensity) or intensities only.
_XY_KEYS = ("_2THETACOUNTS", "_2THETACPS", "_2THETA")
_Y_KEYS = ("_COUNTS", "_CPS")
_KEY_LINE = re.compile(r"^(_[A-Z0-9_]+)\s*(?:=\s*(.*))?$", re.I)


def is_uxd(source: Source) -> bool:
    """Text with ``_KEY=value`` lines: ``_FILEVERSION`` or ``_WL1``, and a data key (``_COUNTS``, ``_2THETACOUNTS``)."""
    head = text_start(source.data)
    return (head[:1] in (b";", b"_") and (b"_FILEVERSION" in head or b"_WL1" in head)
            and any(k.encode() in head for k in _XY_KEYS + _Y_KEYS))


def read_uxd(source: Source, meta: dict):
    """2theta, intensity and line numbers of the first range of a UXD file (see module docstring)."""
    path, lines = source.path, source.lines
    blocks = [i for i, line in enumerate(lines) if line.strip().upper() in _XY_KEYS + _Y_KEYS]
    if not blocks:
        raise DataError(f"{path}: Bruker UXD: no data block (_COUNTS, _CPS, _2THETACOUNTS or _2THETACPS)")
    meta["n_ranges"] = len(blocks)
    if len(blocks) > 1:
        meta["warnings"].append(f"{path}: {len(blocks)} ranges; only the first is read")
    first = blocks[0]
    header = lines[:first]
    meta["header"] = True
    meta["header_lines"] = [s.strip() for s in header if s.strip()][:20]
    apply_header(scan_header(header), meta)
    fields: dict[str, tuple[int, str]] = {}
    for ln, line in enumerate(header, 1):
        m = _KEY_LINE.match(line.strip())
        if m:
            fields[m.group(1).upper()] = (ln, (m.group(2) or "").strip().strip("'"))  # the last (the range's) wins
    key = lines[first].strip().upper()
    meta["intensity_unit"] = "counts/s" if key.endswith("CPS") else "counts"
    values, lines_of = [], []
    for i in range(first + 1, len(lines)):
        s = lines[i].strip()
        if not s or s.startswith(";"):
            if values and s.startswith(";"):
                break
            continue
        if s.startswith("_"):
            break
        try:
            row = numbers(s)
        except ValueError:
            raise DataError(f"{path}: line {i + 1}: cannot read {s[:60]!r} as UXD {key} data") from None
        values.append(row)
        lines_of.append(i + 1)
    if not values:
        raise DataError(f"{path}: line {first + 1}: the {key} block holds no data")
    if key in _XY_KEYS:
        for row, ln in zip(values, lines_of):
            if len(row) < 2:
                raise DataError(f"{path}: line {ln}: {key} data need 2theta and intensity, the line holds {len(row)} "
                                f"value(s)")
        table = np.array([r[:2] for r in values], dtype=np.float64)
        return table[:, 0], table[:, 1], np.array(lines_of)
    start, step = (_field(fields, k, path) for k in ("_START", "_STEPSIZE"))
    y = np.array([v for row in values for v in row], dtype=np.float64)
    line_numbers = np.array([ln for row, ln in zip(values, lines_of) for _ in row])
    return start + step * np.arange(y.size), y, line_numbers


def _field(fields: dict, key: str, path: str) -> float:
    """The number of header key ``key``; DataError naming the key when absent or not a number."""
    if key not in fields:
        raise DataError(f"{path}: Bruker UXD: no {key} line before the {'counts'} (2theta of _COUNTS data come from "
                        f"_START and _STEPSIZE)")
    ln, value = fields[key]
    try:
        return float(value)
    except ValueError:
        raise DataError(f"{path}: line {ln}: UXD {key} is {value[:40]!r}, not a number") from None
