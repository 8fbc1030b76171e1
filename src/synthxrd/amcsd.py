"""The American Mineralogist Crystal Structure Database (AMCSD) read from its SQLite form.

The AMCSD (R. T. Downs & M. Hall-Wallace, "The American Mineralogist Crystal Structure Database",
American Mineralogist 88, 247-250 (2003)) holds measured crystal structures of minerals as published.
Its trimmed 2021 release (9,275 structures of 4,118 minerals) ships as an SQLite file,
``larixite/amcsd_cif1.db``, inside the MIT-licensed ``larixite`` wheel on PyPI (M. Newville,
M. Rovezzi). This module reads that file with Python's :mod:`sqlite3` alone and turns each row into
a CIF text that :func:`synthxrd.structure.parse_cif` reads like any other CIF, so the statistics, the
reference library and the validation sets take an AMCSD database wherever they take a folder of
CIFs (:func:`synthxrd.stats.iter_cif_texts` detects it by content).

What a row holds, and how it is read (schema of ``larixite.amcsd_utils``):

* the cell (``a``, ..., ``gamma`` as text, standard uncertainties dropped);
* the symmetry operators (``spacegroups.symmetry_xyz``, a JSON list), written out explicitly;
* the sites: labels (``atoms_sites``, JSON), fractional coordinates, occupancies and U_iso, each a
  base64 string of little-endian int32 values x 4e6 (``encode_farray``); "?" and "." are stored as 2
  and 3 (out of range), here read as "unknown": occupancy 1, no U_iso, and a coordinate so stored
  fails the row;
* the elements of the formula (table ``cif_elements``). The element of a site is taken from these,
  not from its label alone: the label's letters are matched against the formula's elements
  (longest symbol first, case-insensitive: ``Ob1`` is O, ``CA`` is Ca, ``Si2`` is Si), ``D`` is
  deuterium (H) and ``Wat``/``OW`` water oxygen (O); a label naming no element of the formula falls
  back to the element its own letters spell (``Fe`` of a formula that omits it);
* the mineral name, the publication (authors, journal, volume, pages, year) and the AMCSD code,
  written as ``_chemical_name_mineral``, ``_journal_*`` and ``_database_code_amcsd`` so that a
  library keeps them.

Ids are ``amcsd-`` and the 7-digit AMCSD code (``amcsd-0000003``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from synthxrd.errors import DataError

__all__ = ["AMCSD_CITATION", "UnreadableText", "is_amcsd", "iter_amcsd", "amcsd_size", "site_element", "ID_PREFIX"]

#: How to cite the database (shown by ``synthxrd library info`` and written into libraries built from it).
AMCSD_CITATION = ("R. T. Downs and M. Hall-Wallace, The American Mineralogist Crystal Structure Database, "
                  "American Mineralogist 88, 247-250 (2003)")
#: Prefix of the ids of AMCSD structures.
ID_PREFIX = "amcsd-"
#: Scale of the integer-encoded coordinate arrays (``larixite.amcsd_utils.farray_scale``).
_FARRAY_SCALE = 4.0e6
#: What ``encode_farray`` stores for "?" and "." (out of range of a fractional coordinate).
_UNKNOWN = (2.0, 3.0)
_SQLITE_MAGIC = b"SQLite format 3\x00"
_REQUIRED_COLUMNS = {"id", "mineral_id", "spacegroup_id", "publication_id", "formula", "a", "b", "c", "alpha",
                     "beta", "gamma", "atoms_sites", "atoms_x", "atoms_y", "atoms_z", "atoms_occupancy"}
#: Site labels of water oxygen (``Wat1``, ``OW2``) and deuterium.
_WATER = re.compile(r"^(wat|ow)", re.I)
_LETTERS = re.compile(r"[A-Za-z]+")


class UnreadableText(str):
    """The "CIF text" of a database row that cannot be written as one: an empty text that every CIF
    reader refuses, carrying the reason (``.reason``) that :func:`synthxrd.pool.outcomes` reports."""

    def __new__(cls, reason: str):
        obj = super().__new__(cls, "")
        obj.reason = reason
        return obj

    def __reduce__(self):  # to worker processes and back with its reason
        return (UnreadableText, (self.reason,))


def is_amcsd(path: str | Path) -> bool:
    """True for an SQLite file with the AMCSD's ``cif`` table (as in ``larixite``'s ``amcsd_cif1.db``)."""
    p = Path(path)
    try:
        if not p.is_file():
            return False
        with open(p, "rb") as fh:
            if fh.read(16) != _SQLITE_MAGIC:
                return False
        return _REQUIRED_COLUMNS <= _columns(p)
    except (OSError, sqlite3.Error):
        return False


def _connect(path: Path) -> sqlite3.Connection:
    """Read-only connection (the database is never written)."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def _columns(path: Path) -> set[str]:
    with _connect(path) as con:
        return {row[1] for row in con.execute("PRAGMA table_info(cif)")}


def amcsd_size(path: str | Path) -> int:
    """Number of structures in the database."""
    with _connect(Path(path)) as con:
        return int(con.execute("SELECT count(*) FROM cif").fetchone()[0])


def _number(text) -> float:
    """A cell value as stored ("5.93", "5.930(2)", "5,93"); NaN if unreadable."""
    s = str(text).strip().split("(")[0].rstrip(",;")
    if "," in s and "." not in s:
        s = s.replace(",", ".")
    try:
        return float(s)
    except ValueError:
        return math.nan


def _farray(text) -> np.ndarray | None:
    """Decode an ``encode_farray`` string; None where the column is empty ("0" or NULL)."""
    if text in (None, "0", 0, "", "None"):
        return None
    raw = base64.b64decode(text)
    return np.frombuffer(raw, dtype="<i4").astype(np.float64) / _FARRAY_SCALE


def _unknown(values: np.ndarray) -> np.ndarray:
    return np.isclose(values[:, None], np.array(_UNKNOWN)[None], atol=1e-5).any(axis=1)


def site_element(label: str, elements: Iterable[str]) -> str | None:
    """The element of a site from its label and the elements of the formula (module docstring).

    >>> site_element("Ob1", ["Si", "O", "Na"]), site_element("Wat2", ["W", "O", "H"]), site_element("D1", ["H", "O"])
    ('O', 'O', 'H')
    >>> site_element("CA", ["C", "Ca", "O"]), site_element("M1", ["Mg", "Fe", "O"])
    ('Ca', None)
    """
    from synthxrd.structure import scattering_table

    letters = _LETTERS.match(label.strip())
    token = letters.group(0) if letters else ""
    if _WATER.match(token):
        return "O"
    elements = list(elements)
    best = None
    for el in elements:
        if token.lower().startswith(el.lower()) and (best is None or len(el) > len(best)):
            best = el
    if best is not None:
        return best
    if token[:1] in ("D", "d") and "H" in elements:
        return "H"
    known = scattering_table()[0]
    for n in (2, 1):  # the label's own element, if its letters spell one
        symbol = token[:n].capitalize()
        if len(token) >= n and symbol in known:
            return symbol
    return None


#: Refined occupancies of one site that sum to at most this are scaled to 1 (a refinement's excess
#: within its uncertainty: 1.01 for a fully occupied site); larger sums are left for the reader to refuse.
OCCUPANCY_EXCESS = 0.1


def _refined_occupancies(xyz: np.ndarray, occ: np.ndarray) -> np.ndarray:
    """Occupancies of rows at the same position (to 1e-4) that sum to 1-1.1 scaled to sum to 1, as
    pymatgen's ``CifParser(occupancy_tolerance=1.1)`` does; others unchanged."""
    occ = occ.copy()
    keys = np.round(np.mod(xyz, 1.0) * 1e4).astype(np.int64)
    _, site, = np.unique(keys, axis=0, return_inverse=True)[:2]
    site = site.ravel()
    totals = np.bincount(site, weights=occ)
    scale = np.where((totals > 1.0) & (totals <= 1.0 + OCCUPANCY_EXCESS), 1.0 / np.where(totals > 0, totals, 1), 1.0)
    return occ * scale[site]


def _quote(text: str) -> str:
    """A CIF text field: a quoted string if it fits on one line without both quote kinds, else ;-text."""
    text = " ".join(str(text).split())
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return f"\n;\n{text}\n;"


def _tables(con: sqlite3.Connection):
    elements: dict[int, list[str]] = defaultdict(list)
    for cif_id, el in con.execute("SELECT cif_id, element FROM cif_elements"):
        elements[int(cif_id)].append(str(el))
    minerals = dict(con.execute("SELECT id, name FROM minerals"))
    groups = {i: (hm, ops) for i, hm, ops in con.execute("SELECT id, hm_notation, symmetry_xyz FROM spacegroups")}
    authors: dict[int, list[str]] = defaultdict(list)
    for pub, name in con.execute("SELECT pa.publication_id, a.name FROM publication_authors pa "
                                 "JOIN authors a ON a.id = pa.author_id ORDER BY pa.rowid"):
        authors[int(pub)].append(str(name))
    publications = {row[0]: row[1:] for row in con.execute(
        "SELECT id, journalname, volume, year, page_first, page_last FROM publications")}
    return elements, minerals, groups, authors, publications


def _row_text(row: dict, elements: list[str], mineral: str | None, group, authors: list[str], publication) -> str:
    """The CIF text of one AMCSD row; :class:`ValueError` naming the field when it cannot be written."""
    code = f"{int(row['id']):07d}"
    cell = [_number(row[k]) for k in ("a", "b", "c", "alpha", "beta", "gamma")]
    if not all(math.isfinite(v) and v > 0 for v in cell):
        raise ValueError(f"cell {[row[k] for k in ('a', 'b', 'c', 'alpha', 'beta', 'gamma')]} is not readable")
    if group is None:
        raise ValueError(f"space group {row['spacegroup_id']} is not in the spacegroups table")
    hm, ops_json = group
    ops = json.loads(ops_json)
    labels = json.loads(row["atoms_sites"]) if row["atoms_sites"] not in (None, "0", "<missing>") else []
    if not labels:
        raise ValueError("no atom sites")
    xyz = [_farray(row[k]) for k in ("atoms_x", "atoms_y", "atoms_z")]
    if any(v is None or len(v) != len(labels) for v in xyz):
        raise ValueError(f"{len(labels)} site labels but coordinates of another length")
    if any(_unknown(v).any() for v in xyz):
        raise ValueError("a site coordinate is stored as unknown ('?')")
    occ = _farray(row["atoms_occupancy"])
    occ = np.ones(len(labels)) if occ is None or len(occ) != len(labels) else np.where(_unknown(occ), 1.0, occ)
    occ = _refined_occupancies(np.stack(xyz, axis=1), occ)
    u_iso = _farray(row.get("atoms_u_iso"))
    if u_iso is not None and (len(u_iso) != len(labels) or _unknown(u_iso).any()):
        u_iso = None
    symbols = []
    for label in labels:
        el = site_element(str(label), elements)
        if el is None:
            raise ValueError(f"site label {label!r} names no element of the formula {row['formula']!r}")
        symbols.append(el)
    lines = ["data_amcsd_" + code, f"_database_code_amcsd {code}"]
    if mineral and mineral != "<missing>":
        lines.append(f"_chemical_name_mineral {_quote(mineral)}")
    lines.append(f"_chemical_formula_sum {_quote(row['formula'])}")
    if publication is not None:
        journal, volume, year, first, last = publication
        if authors:
            lines += ["loop_", "_publ_author_name", *(_quote(a) for a in authors)]
        lines.append(f"_journal_name_full {_quote(journal)}")
        for tag, value in (("volume", volume), ("year", year), ("page_first", first), ("page_last", last)):
            if value not in (None, "", "<missing>"):
                lines.append(f"_journal_{tag} {_quote(value)}")
    for tag, value in zip(("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma"), cell):
        lines.append(f"_cell_{tag} {value!r}")
    lines.append(f"_symmetry_space_group_name_H-M {_quote(str(hm).split('%var')[0])}")
    lines += ["loop_", "_symmetry_equiv_pos_as_xyz", *(f"'{op}'" for op in ops)]
    lines += ["loop_", "_atom_site_label", "_atom_site_type_symbol", "_atom_site_fract_x", "_atom_site_fract_y",
              "_atom_site_fract_z", "_atom_site_occupancy"]
    if u_iso is not None:
        lines.append("_atom_site_U_iso_or_equiv")
    for i, (label, el) in enumerate(zip(labels, symbols)):
        site = f"{_quote(label)} {el} {xyz[0][i]:.6f} {xyz[1][i]:.6f} {xyz[2][i]:.6f} {occ[i]:.6f}"
        lines.append(site + (f" {u_iso[i]:.6f}" if u_iso is not None else ""))
    return "\n".join(lines) + "\n"


def iter_amcsd(path: str | Path, *, ids: Iterable[str] | None = None,
               skip: Iterable[str] | None = None) -> Iterator[tuple[str, str]]:
    """Yield ``(id, cif_text)`` for every structure of an AMCSD SQLite database, in AMCSD-code order.

    A row that cannot be written as a CIF (unreadable cell, a site whose element cannot be told) is
    yielded as an :class:`UnreadableText` with the reason, reported as a failure like a malformed
    CIF. ``ids`` keeps only these ids, ``skip`` leaves these out.

    Raises
    ------
    DataError
        The file is not an AMCSD database or cannot be read.
    """
    p = Path(path)
    if not is_amcsd(p):
        raise DataError(f"{p}: not an AMCSD SQLite database (no 'cif' table with the AMCSD's columns)")
    wanted = None if ids is None else set(ids)
    unwanted = set(skip or ())
    try:
        with _connect(p) as con:
            elements, minerals, groups, authors, publications = _tables(con)
            con.row_factory = sqlite3.Row
            for row in con.execute("SELECT * FROM cif ORDER BY id"):
                identifier = f"{ID_PREFIX}{int(row['id']):07d}"
                if (wanted is not None and identifier not in wanted) or identifier in unwanted:
                    continue
                row = dict(row)
                try:
                    yield identifier, _row_text(row, elements.get(int(row["id"]), []),
                                                minerals.get(row["mineral_id"]), groups.get(row["spacegroup_id"]),
                                                authors.get(row["publication_id"], []),
                                                publications.get(row["publication_id"]))
                except (ValueError, TypeError, KeyError, json.JSONDecodeError, binascii.Error) as exc:
                    yield identifier, UnreadableText(f"AMCSD row {row['id']}: {exc}")
    except sqlite3.Error as exc:
        raise DataError(f"{p}: cannot read the AMCSD database ({exc})") from None
