"""Text columns (``.xy``, ``.xye``, ``.dat``, ``.txt``, ``.csv``, ``.asc``, any extension) and RRUFF files.

``columns``
    Text with 2theta and intensity in the first two columns, separated by spaces, tabs, commas or
    semicolons; with ``;`` or a tab as separator a decimal comma is accepted (``10,02;123,5``).
    Further columns (an esd) are ignored. Blank lines and comment lines (starting with ``#``, ``!``,
    ``;``, ``%``, ``//``) are skipped anywhere; text lines (column titles, instrument settings) are
    accepted only before the data, and so are lines holding a single number (a point count, a
    wavelength). Once the data have started, a line that is not numbers is an error that names the
    line. A wavelength is taken from header and comment lines by :mod:`synthxrd.io.wavelength`
    (``# Wavelength: 1.5406``, nm converted; ``_WL1=``, ``*WAVE_LENGTH1``; a line name such as
    ``Cu Ka1``). UTF-8, UTF-16 (with BOM) and Latin-1; NUL bytes that pad a title are dropped.
``rruff``
    RRUFF text files (https://rruff.info): the same columns, with ``##KEY=value`` header lines (kept
    in ``metadata["fields"]``; ``##WAVELENGTH=1.541838`` gives the wavelength) and data ending at
    ``##END=``.

A first column titled ``d`` or ``q`` (the last header line before the data) is refused: d-spacings
or Q, not 2theta.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

from synthxrd.errors import DataError
from synthxrd.io._common import COMMENT_PREFIXES, FIELD_SPLIT, Source, numbers
from synthxrd.io.wavelength import apply_header, scan_header

__all__ = ["is_rruff", "read_columns", "read_rruff"]

_TRAILING_COMMENT = re.compile(r"\s[#!]")
_NOT_PLAIN = re.compile(r"[^0-9eE+\-.,\s]")
_D_TITLE = re.compile(r"^(d|d[-_ ]?spacings?|dspacings?)\s*([(\[].*)?$", re.I)
_Q_TITLE = re.compile(r"^q\s*([(\[].*)?$", re.I)


def is_rruff(source: Source) -> bool:
    """A line (leading blanks ignored) starts with ``##``: RRUFF's ``##KEY=value`` header or ``##END=``."""
    return any(line.lstrip().startswith("##") for line in source.lines)


def read_columns(source: Source, meta: dict):
    """2theta, intensity and the line number of each point of a text-columns file (see module docstring)."""
    return _read_table(source.lines, source.path, meta)[:3]


def read_rruff(source: Source, meta: dict):
    """As :func:`read_columns`, with the ``##KEY=value`` header lines in ``meta["fields"]``."""
    two_theta, intensity, line_numbers, fields = _read_table(source.lines, source.path, meta)
    meta["fields"] = fields
    return two_theta, intensity, line_numbers


def _read_table(lines: list[str], path: str, meta: dict):
    """The first two columns, line numbers and ``##`` fields; header lines and wavelength into ``meta``."""
    rows: list[list[float]] = []
    row_lines: list[int] = []
    header: list[tuple[int, str]] = []  # text lines and lone numbers before the data
    comments: list[tuple[int, str]] = []
    fields: dict[str, str] = {}
    n_lines = 0
    table = None
    for lineno, raw in enumerate(lines, 1):
        s = raw.strip()
        if not s:
            continue
        n_lines += 1
        if s.startswith("##"):
            key, _, value = s[2:].partition("=")
            if key.strip().upper() == "END":
                break
            fields[key.strip()] = value.strip()
            comments.append((lineno, s))
            continue
        if s.startswith(COMMENT_PREFIXES):
            comments.append((lineno, s))
            continue
        try:
            values = numbers(_TRAILING_COMMENT.split(s, maxsplit=1)[0])
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
    _header_wavelength(before, meta)
    return table[:, 0], table[:, 1], line_numbers, fields


def _header_wavelength(before: list[tuple[int, str]], meta: dict) -> None:
    """The wavelength and radiation that the numbered header lines state (:mod:`synthxrd.io.wavelength`)."""
    apply_header(scan_header([t for _, t in before], line_numbers=[ln for ln, _ in before]), meta)


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


def _try_numbers(s: str) -> list[float]:
    try:
        return numbers(s)
    except ValueError:
        return []


def _check_column_titles(before: list[tuple[int, str]], n_columns: int, path: str) -> None:
    """Refuse a first column titled d or q (the last header line before the data)."""
    if not before:
        return
    lineno, line = before[-1]
    line = line.lstrip("#!;%/ ").strip()
    tokens = [t.strip() for t in (FIELD_SPLIT.split(line) if (";" in line or "\t" in line) else line.split(","))]
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
