"""The one parser of wavelengths that pattern files state in text headers, and of what radiation they hold.

Every text reader passes its header lines to :func:`scan_header` and its result to :func:`apply_header`;
binary readers that keep the tube in fields of their own (XRDML, RAW, BRML, RASX) call
:func:`~synthxrd.io._common.record_tube` with those fields, and :func:`anode_lines` where a file names
only the anode. The forms read, each with the format that writes it:

- Bruker UXD (DIFFRAC-plus XCH *User's Manual*, appendix "UXD file format"): ``_WL1=1.540600``,
  ``_WL2=``, ``_WL3=`` (K-alpha1, K-alpha2, K-beta), ``_WLRATIO=0.5``, ``_ANODE='Co'``;
- Rigaku ASC (RINT/PDXL ASCII export): ``*WAVE_LENGTH1 = 1.54059``, ``*WAVE_LENGTH2``,
  ``*TARGET = 29`` (symbol or atomic number), ``*XRAY_CHAR = K-ALPHA``;
- Rigaku RAS (SmartLab Studio, PDXL): ``*HW_XG_WAVE_LENGTH_ALPHA1 "1.540593"``, ``ALPHA2``,
  ``BETA``, ``*HW_XG_TARGET_NAME "Cu"``, ``*MEAS_COND_XG_WAVE_TYPE "Ka1"``;
- RRUFF ``##WAVELENGTH=1.541838`` and any ``Wavelength: 0.15406 nm`` or ``lambda=`` line (nm and
  pm converted);
- line names in any header (``Cu Ka1``, ``Co K-alpha``, ``Mo Ka``): the anode's line;
- a title's number followed by ``A``, ``Å`` or ``Angstrom`` (GSAS: ``PbSO4 1.909A neutron data``).

A line name without 1 or 2 (``Cu Ka``, ``K-ALPHA``) gives K-alpha1 of the anode, as the XRDML, RAW
and BRML readers do (the simulator models K-alpha1; the K-alpha average is kept in
``metadata["kalpha_average"]``). An anode with no stated wavelength gives the anode's K-alpha1,
K-alpha2 and ratio from the package's wavelength table (``resources/wavelengths.json``). A line
that names a wavelength whose value cannot be read (``*WAVE_LENGTH1 = ?``) is kept in
``metadata["wavelength_unreadable"]``, so that the assumption made later says so instead of "the
file states no wavelength".

The radiation (``metadata["radiation"]``) is ``"neutron"`` or ``"synchrotron"`` where a header says
so (``neutron``, ``_diffrn_radiation_probe neutron``, ``synchrotron``, ``beamline``), else
``"x-ray"`` where the file names a tube (anode or K-alpha lines), else None. The model and the
reference library are X-ray: :func:`~synthxrd.io.load_for_model` refuses neutron and synchrotron
patterns unless a wavelength is given explicitly.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files

from synthxrd.io._common import record_tube
from synthxrd.simulate.common import wavelengths

__all__ = ["HeaderWavelength", "anode_lines", "anode_name", "anodes", "apply_header", "kalpha2_ratios", "scan_header",
           "wavelength_in"]

#: Atomic numbers of the anodes of laboratory tubes (Rigaku ASC gives ``*TARGET = 29``).
ANODE_NUMBERS = {24: "Cr", 26: "Fe", 27: "Co", 29: "Cu", 42: "Mo", 47: "Ag"}
#: A number followed by this, in a title, is a wavelength only within these bounds (Angstrom):
#: a title holds other numbers with units (``10 A``, a current), so only a plausible value is taken.
TITLE_WAVELENGTH_RANGE = (0.3, 3.0)


@lru_cache(maxsize=1)
def kalpha2_ratios() -> dict[str, float]:
    """K-alpha2 / K-alpha1 intensity ratio per anode (``kalpha2_ratio`` of the wavelength table)."""
    doc = json.loads(files("synthxrd.resources").joinpath("wavelengths.json").read_text())
    return dict(doc.get("kalpha2_ratio", {}))


@lru_cache(maxsize=1)
def anodes() -> tuple[str, ...]:
    """The anodes whose K-alpha lines the wavelength table holds (``("Cu", "Mo", ...)``)."""
    return tuple(name[:-3] for name in wavelengths() if name.endswith("Ka1"))


def anode_lines(anode: str) -> tuple[float, float, float | None, float] | None:
    """K-alpha1, K-alpha2, their ratio and the K-alpha average of an anode, from the wavelength table.

    ``anode`` is an element symbol (any case, quotes and blanks ignored) or its atomic number; None
    for an anode the table does not hold.

    >>> anode_lines("'Co'")
    (1.78896, 1.79285, 0.5, 1.79026)
    >>> anode_lines("29")[0], anode_lines("W")
    (1.54056, None)
    """
    name = anode_name(anode)
    if name is None:
        return None
    table = wavelengths()
    return table[f"{name}Ka1"], table[f"{name}Ka2"], kalpha2_ratios().get(name), table[f"{name}Ka"]


def anode_name(anode: str) -> str | None:
    """The element symbol of an anode given by symbol or atomic number, if the wavelength table holds its lines.

    >>> anode_name("29"), anode_name("'co'"), anode_name("W")
    ('Cu', 'Co', None)
    """
    name = anode.strip().strip("'\"").strip()
    try:
        name = ANODE_NUMBERS.get(int(float(name)), name)
    except (ValueError, OverflowError):  # a symbol, or no finite number
        pass
    name = name[:1].upper() + name[1:].lower()
    return name if f"{name}Ka1" in wavelengths() else None


@dataclass
class HeaderWavelength:
    """What the header lines of a text file say about the radiation (filled by :func:`scan_header`).

    Attributes
    ----------
    alpha1, alpha2, beta, ratio : keyed tube values (Angstrom; ratio K-alpha2/K-alpha1), or None.
    value : a single stated wavelength (Angstrom), or None.
    anode : the anode named (``"Cu"``), or None.
    line : ``"alpha1"``, ``"alpha"`` or ``"beta"`` where a line is named (``*XRAY_CHAR``), else None.
    where : ``"header line N: 'text'"`` of the line that gave the wavelength (or the anode).
    unreadable : the first line that names a wavelength whose value cannot be read, or None.
    radiation : ``"neutron"``, ``"synchrotron"``, ``"x-ray"`` or None; ``radiation_evidence`` the line.
    sources : ``"header line N: 'text'"`` of each value found, by attribute name (``"alpha1"``, ...).
    """

    alpha1: float | None = None
    alpha2: float | None = None
    beta: float | None = None
    ratio: float | None = None
    value: float | None = None
    anode: str | None = None
    line: str | None = None
    where: str | None = None
    unreadable: str | None = None
    radiation: str | None = None
    radiation_evidence: str | None = None
    sources: dict = field(default_factory=dict)


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
#: Keyed forms: (regular expression for the key, role). The value is the rest of the line.
_KEYED = [
    (re.compile(r"^_WL1\s*=", re.I), "alpha1"),
    (re.compile(r"^_WL2\s*=", re.I), "alpha2"),
    (re.compile(r"^_WL3\s*=", re.I), "beta"),
    (re.compile(r"^_WLRATIO\s*=", re.I), "ratio"),
    (re.compile(r"^_ANODE\s*=", re.I), "anode"),
    (re.compile(r"^\*WAVE_LENGTH1\s*=", re.I), "alpha1"),
    (re.compile(r"^\*WAVE_LENGTH2\s*=", re.I), "alpha2"),
    (re.compile(r"^\*TARGET\s*=", re.I), "anode"),
    (re.compile(r"^\*XRAY_CHAR\s*=", re.I), "line"),
    (re.compile(r"^\*HW_XG_WAVE_LENGTH_ALPHA1\b", re.I), "alpha1"),
    (re.compile(r"^\*HW_XG_WAVE_LENGTH_ALPHA2\b", re.I), "alpha2"),
    (re.compile(r"^\*HW_XG_WAVE_LENGTH_BETA\b", re.I), "beta"),
    (re.compile(r"^\*HW_XG_TARGET_NAME\b", re.I), "anode"),
    (re.compile(r"^\*MEAS_COND_XG_WAVE_TYPE\b", re.I), "line"),
]
_WAVELENGTH_RE = re.compile(
    r"(?:wave\s*-?\s*length|lambda|\u03bb)[^\n]{0,24}?"          # the keyword, then up to 24 characters
    r"(?<![\w.])((?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"         # a number that is not part of a word
    r"\s*(nm|pm)?(?![\w.])", re.I)
_WAVELENGTH_WORD = re.compile(r"\b(?:wave\s*-?\s*length|lambda)\b|\u03bb", re.I)
_LINE_NAME_RE = re.compile(r"\b(Cu|Co|Mo|Fe|Cr|Ag)\s*-?\s*K\s*[-_ ]?\s*(?:alpha|a|\u03b1)\s*([12])?(?![a-z])", re.I)
#: A number with a decimal point and an Angstrom unit: ``1.909A`` (no blank: ``2.5 A`` may be an ampere or a
#: slit), ``1.5406 Å``, ``0.71 Angstrom``.
_ANGSTROM_RE = re.compile(r"(?<![\w.])(\d+\.\d+)(?:A|\s*(?:\u00c5|\u212b|Angstroms?))(?![\w])")
_NEUTRON_RE = re.compile(r"\bneutrons?\b|_diffrn_radiation_(?:probe|type)\s+'?neutron", re.I)
_SYNCHROTRON_RE = re.compile(r"\bsynchrotron\b|\bbeam\s*line\b", re.I)


def wavelength_in(line: str) -> float | None:
    """The wavelength (Angstrom) one free-text header line states, or None.

    A number after ``wavelength``/``lambda`` (Angstrom; ``nm`` and ``pm`` are converted), else a
    line name such as ``Cu Ka1`` looked up in the wavelength table (``Cu Ka``: K-alpha1), else a
    number between 0.3 and 3 followed by ``A`` (no blank between), ``Å`` or ``Angstrom`` (a title's
    ``1.909A``).

    >>> wavelength_in("# Wavelength: 0.15406 nm"), wavelength_in("Mo K-alpha1 tube")
    (1.5406, 0.7093)
    >>> wavelength_in("PbSO4  Cu Ka X-ray data"), wavelength_in("CPD RRRR   PbSO4 1.909A neutron data")
    (1.54056, 1.909)
    >>> wavelength_in("LaB6 0.45 Angstrom"), wavelength_in("tube 2.5 A, slit 1.0 mm")
    (0.45, None)
    """
    m = _WAVELENGTH_RE.search(line)
    if m:
        value = float(m.group(1)) * {"nm": 10.0, "pm": 0.01}.get((m.group(2) or "").lower(), 1.0)
        if 0.05 < value < 10.0:
            return value
    named = _line_name(line)
    if named is not None:
        return named[0]
    m = _ANGSTROM_RE.search(line)
    if m and TITLE_WAVELENGTH_RANGE[0] <= float(m.group(1)) <= TITLE_WAVELENGTH_RANGE[1]:
        return float(m.group(1))
    return None


def _line_name(line: str) -> tuple[float, str, str] | None:
    """(wavelength, anode, which) of a line name in ``line`` (``Cu Ka`` gives K-alpha1, which ``"alpha"``)."""
    m = _LINE_NAME_RE.search(line)
    if not m:
        return None
    anode = m.group(1)[:1].upper() + m.group(1)[1:].lower()
    table = wavelengths()
    which = m.group(2) or ""
    value = table.get(f"{anode}Ka{which or '1'}")
    return (value, anode, f"alpha{which}") if value is not None else None


def _value(text: str) -> float | None:
    """The first number of a header value (quotes and trailing comments ignored), or None."""
    m = re.search(_NUMBER, text.strip().strip("'\""))
    if not m:
        return None
    v = float(m.group(0))
    return v if math.isfinite(v) else None


def scan_header(lines, first_line: int = 1, *, line_numbers=None) -> HeaderWavelength:
    """What ``lines`` (the header lines of a text file, the first numbered ``first_line``) state.

    ``line_numbers`` gives each line's number where the lines are not consecutive.

    Keyed forms (table of the module docstring) are read from every line; the first free-text
    wavelength (:func:`wavelength_in`) is kept as ``value``. The line numbers go into ``where``.

    >>> h = scan_header(["_WL_UNIT='A'", "_WL1=1.540600", "_WL2=1.544390", "_WLRATIO=0.500000", "_ANODE='Cu'"])
    >>> h.alpha1, h.alpha2, h.ratio, h.anode, h.where
    (1.5406, 1.54439, 0.5, 'Cu', "header line 2: '_WL1=1.540600'")
    >>> scan_header(['*HW_XG_TARGET_NAME "Co"']).anode, scan_header(["*WAVE_LENGTH1 = ?"]).unreadable
    ('Co', "header line 1: '*WAVE_LENGTH1 = ?'")
    """
    h = HeaderWavelength()
    nm_unit = False
    numbered = zip(line_numbers, lines) if line_numbers is not None else enumerate(lines, first_line)
    for ln, raw in numbered:
        s = raw.strip().lstrip("!#;% ").strip()
        if not s:
            continue
        where = f"header line {ln}: {s[:60]!r}"
        if h.radiation_evidence is None:
            if _NEUTRON_RE.search(s):
                h.radiation, h.radiation_evidence = "neutron", where
            elif _SYNCHROTRON_RE.search(s):
                h.radiation, h.radiation_evidence = "synchrotron", where
        if re.match(r"^_WL_UNIT\s*=\s*'?nm", s, re.I):
            nm_unit = True
        keyed = next(((rx.match(s), r) for rx, r in _KEYED if rx.match(s)), None)
        if keyed is not None:
            m, role = keyed
            rest = s[m.end():].lstrip(" \t=").split("#", 1)[0].strip()
            if role == "anode":
                if rest.strip("'\" ") and h.anode is None:
                    h.anode = rest.strip("'\" ")
                    h.sources.setdefault("anode", where)
            elif role == "line":
                text = rest.strip("'\" ").upper().replace("-", "").replace(" ", "").replace("_", "")
                h.line = ("beta" if "BETA" in text or text.endswith("KB") else
                          "alpha1" if text.endswith(("ALPHA1", "KA1")) else
                          "alpha" if text.endswith(("ALPHA", "KA", "ALPHA12", "KA12")) else h.line)
            else:
                v = _value(rest)
                if v is None or v <= 0:
                    if h.unreadable is None and role != "ratio":
                        h.unreadable = where
                elif getattr(h, role) is None:
                    setattr(h, role, v)
                    h.sources.setdefault(role, where)
            continue
        if h.value is None:
            v = wavelength_in(s)
            if v is not None:
                h.value = v
                h.sources["value"] = where
                named = _line_name(s)
                if named is not None and not _WAVELENGTH_RE.search(s):
                    h.anode = h.anode or named[1]
                    h.line = h.line or named[2]
                    h.sources.setdefault("anode", where)
            elif h.unreadable is None and _WAVELENGTH_WORD.search(s) and not re.search(r"\d", s):
                h.unreadable = where
    if nm_unit:
        h.alpha1, h.alpha2, h.beta = (None if v is None else 10.0 * v for v in (h.alpha1, h.alpha2, h.beta))
    h.where = h.sources.get("alpha1") or h.sources.get("value") or h.sources.get("anode")
    if h.radiation is None and (h.anode or h.alpha1 or h.line):
        h.radiation = "x-ray"
    return h


def apply_header(h: HeaderWavelength, meta: dict) -> None:
    """Put what :func:`scan_header` found into ``meta`` (``wavelength``, ``kalpha*``, ``radiation``, ...).

    Order: keyed K-alpha1 (with K-alpha2 and ratio where given); else a named line or anode
    (``Cu Ka``, ``_ANODE='Co'``) with the anode's lines from the wavelength table; else a single
    stated value. K-beta where the header names the K-beta line. Nothing found but a wavelength named
    unreadably: ``meta["wavelength_unreadable"]``.
    """
    table = anode_lines(h.anode) if h.anode else None
    if h.anode:
        meta["anode"] = anode_name(h.anode) or h.anode
    if h.radiation:
        meta["radiation"] = h.radiation
        meta["radiation_evidence"] = h.radiation_evidence
    if h.alpha1 is not None:
        alpha2, ratio = h.alpha2, h.ratio
        if ratio is None and table is not None and alpha2 is not None:
            ratio = table[2]
        average = (h.alpha1 + ratio * alpha2) / (1 + ratio) if alpha2 is not None and ratio is not None else None
        record_tube(meta, h.alpha1, alpha2, ratio, average, h.sources["alpha1"])
    elif table is not None and (h.value is None or h.sources.get("value") == h.sources.get("anode")):
        record_tube(meta, *table, f"{h.sources['anode']} ({h.anode} from the wavelength table)")
    elif h.value is not None:
        meta["wavelength"], meta["wavelength_source"] = h.value, h.sources["value"]
    if h.line == "beta" and h.beta is not None:
        meta["wavelength"], meta["wavelength_source"] = h.beta, f"{h.sources['beta']}: K-beta"
    if meta.get("wavelength") is None and h.unreadable:
        meta["wavelength_unreadable"] = h.unreadable
