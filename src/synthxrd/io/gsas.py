"""GSAS constant-wavelength powder data (``.gsa``, ``.gsas``, ``.fxye``).

Reference: A. C. Larson & R. B. Von Dreele, *General Structure Analysis System (GSAS)*, Los Alamos
National Laboratory Report LAUR 86-748 (2004), "GSAS standard powder data file".

The first ``BANK`` line ``BANK ibank nchan nrec CONST start step 0 0 type`` (start and step in
centidegrees) with type ``STD`` (fixed records of ten ``(I2,F6.0)`` fields; the counter number is
ignored), ``ESD`` (five ``(F8.0,F8.0)`` intensity/esd pairs per record) or ``FXYE`` (free-format
2theta in centidegrees, intensity, esd). ``ALT`` records and time-of-flight banks (``RALF``,
``SLOG``) are refused; of several banks only the first is read (``metadata["n_banks"]``). GSAS data
files do not hold the wavelength (it is in the instrument parameter file); a header line that
names one (``Wavelength 1.5406``, ``Cu Ka``, a title's ``1.909A``) is used, read by
:mod:`synthxrd.io.wavelength` (which also marks a title saying ``neutron`` as neutron data).
"""

from __future__ import annotations

import re

import numpy as np

from synthxrd.errors import DataError
from synthxrd.io._common import Source, numbers
from synthxrd.io.wavelength import apply_header, scan_header

__all__ = ["bank_index", "is_gsas", "read_gsas"]

_BANK_RE = re.compile(r"^BANK\s+\d+\s+\d+\s+\d+\s+\S+")
#: Lines searched for the first BANK line.
_BANK_SEARCH_LINES = 200
_RECORD_TYPES = ("STD", "ESD", "ALT", "FXYE")
_CONSTANT_BINNING = ("CONST", "CONS")


def bank_index(lines: list[str]) -> int | None:
    """Index of the first ``BANK ibank nchan nrec ...`` line among the first 200 lines, or None."""
    for i, line in enumerate(lines[:_BANK_SEARCH_LINES]):
        if _BANK_RE.match(line):
            return i
    return None


def is_gsas(source: Source) -> bool:
    """A ``BANK ibank nchan nrec binning`` line within the first 200 lines."""
    return bank_index(source.lines) is not None


def read_gsas(source: Source, meta: dict):
    """2theta, intensity and line numbers of the first bank of a GSAS file (see module docstring)."""
    path, lines = source.path, source.lines
    first = bank_index(lines)
    banks = [i for i, line in enumerate(lines) if line.startswith("BANK")]
    meta["n_banks"] = len(banks)
    if len(banks) > 1:
        meta["warnings"].append(f"{path}: {len(banks)} banks; only the first is read")
    before = [s.strip() for s in lines[:first] if s.strip()]
    meta["header"] = bool(before)
    meta["header_lines"] = before[:20]
    meta["title"] = before[0] if before else None
    apply_header(scan_header(lines[:first]), meta)
    nchan, kind, start, step = _bank_line(lines[first], first + 1, path)
    meta["gsas_type"] = kind
    end = next((i for i in banks if i > first), len(lines))
    body = [(i + 1, lines[i]) for i in range(first + 1, end) if lines[i].strip() and not lines[i].startswith("#")]
    xs, values, lines_of = _records(body, kind, path)
    if kind == "FXYE":
        return np.array(xs), np.array(values), np.array(lines_of)
    if len(values) < nchan:
        raise DataError(f"{path}: the BANK line declares {nchan} points, the data hold {len(values)}")
    return start + step * np.arange(nchan), np.array(values[:nchan]), np.array(lines_of[:nchan])


def _bank_line(line: str, lineno: int, path: str) -> tuple[int, str, float, float]:
    """Point count, record type, start and step (degrees) of a constant-wavelength BANK line."""
    tokens = line.split()
    start = step = None
    try:
        nchan = int(tokens[2])
        binning = tokens[4].upper()
        kind = tokens[-1].upper() if tokens[-1].upper() in _RECORD_TYPES else "STD"
        if binning in _CONSTANT_BINNING:
            start, step = float(tokens[5]) / 100.0, float(tokens[6]) / 100.0
    except (IndexError, ValueError):
        raise DataError(f"{path}: line {lineno}: cannot read the BANK line {line[:60]!r}") from None
    if binning not in _CONSTANT_BINNING:
        raise DataError(f"{path}: line {lineno}: GSAS bank binning {binning!r} (time-of-flight) is not supported; "
                        f"only constant-wavelength CONST/CONS banks")
    if kind == "ALT":
        raise DataError(f"{path}: line {lineno}: the GSAS ALT record format is not supported; "
                        f"export as FXYE, STD or .xy")
    return nchan, kind, start, step


def _records(body: list[tuple[int, str]], kind: str, path: str) -> tuple[list[float], list[float], list[int]]:
    """2theta (FXYE only), intensities and line numbers of the data records ``(line number, text)``."""
    lines_of: list[int] = []
    values: list[float] = []
    xs: list[float] = []
    for ln, s in body:
        try:
            if kind == "FXYE":
                row = numbers(s)
                if len(row) < 2:
                    raise ValueError
                xs.append(row[0] / 100.0)
                values.append(row[1])
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
    return xs, values, lines_of
