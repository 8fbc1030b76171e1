"""Reference library of known structures: reflections in a wavelength-independent form.

Per structure the library keeps its id (file stem), reduced formula, elements, spglib space group,
conventional lattice parameters and its reflections as ``(d, |F|^2 m, hkl)``: d-spacing (Å), the
squared structure-factor modulus times the multiplicity (equivalent reflections summed, Friedel mates
included) and the Miller indices of the strongest contributor. The peaks at any wavelength follow
exactly (:meth:`ReferenceLibrary.peaks`):

    2 theta = 2 arcsin(lambda / 2d),   I = |F|^2 m (1 + cos^2 2theta) / (sin^2 theta cos theta),

which is :func:`synthxrd.simulate.peaks` (and pymatgen's ``XRDCalculator``) up to the library's
trimming: reflections with d < ``d_min`` and those weaker than ``min_intensity`` times the strongest
peak at Cu K-alpha1 are not stored.

The file is one ``.npz`` (``numpy.load(allow_pickle=False)``) with a JSON metadata string: format
version, source, symprec, d_min, min_intensity, package version, failures. Optional arrays (files
without them read as empty): ``minerals`` (the CIF's ``_chemical_name_mineral``), ``references``
(database code and publication of the CIF), ``prototypes`` (the prototype proxy of
:func:`synthxrd.split.prototype_label`, so that a prototype split's test part can be left out of
any library), ``groups`` (row of the first entry of each set of
duplicates, :meth:`ReferenceLibrary.merge`) and ``mass_factors`` (Hill & Howard's Z M V / N of each
entry, :func:`mass_factor`: what turns a refined scale into a weight fraction; NaN where unknown, e.g.
libraries built before it was stored).

Libraries compose: :meth:`ReferenceLibrary.merge` puts several into one (ids kept unique, duplicates
across them marked) and :meth:`ReferenceLibrary.load` takes several paths. The default library
(``ReferenceLibrary.load()``) is the Materials Project structures merged with the minerals of the
AMCSD (:data:`DEFAULT_LIBRARIES`).
"""

from __future__ import annotations

import json
import math
import re
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import numpy as np

from synthxrd.errors import ConfigError, DataError, StructureError
from synthxrd.match.search import element_mask, search
from synthxrd.simulate.common import DEFAULT_WAVELENGTH
from synthxrd.wyckoff import N_SPACEGROUPS

__all__ = [
    "LIBRARY_FORMAT_VERSION",
    "DEFAULT_D_MIN",
    "DEFAULT_MIN_INTENSITY",
    "DEFAULT_MAX_PEAKS",
    "SHIPPED_LIBRARY",
    "SHIPPED_LIBRARIES",
    "DEFAULT_LIBRARIES",
    "DUPLICATE_LENGTH_TOLERANCE",
    "DUPLICATE_ANGLE_TOLERANCE",
    "cif_provenance",
    "cell_mass",
    "absolute_f2",
    "mass_factor",
    "duplicate_groups",
    "LibraryEntry",
    "ReferenceLibrary",
    "structure_reflections",
    "element_mask",
]

#: Layout of the ``.npz`` file; :meth:`ReferenceLibrary.load` refuses any other.
LIBRARY_FORMAT_VERSION = 1
#: Smallest d-spacing stored (Å): Cu K-alpha1 reaches d = 1.09 Å at 90 degrees 2theta, 0.87 Å at
#: 125 degrees. Chosen by measurement (docs/search_match.md).
DEFAULT_D_MIN = 0.9
#: Reflections weaker than this fraction of the strongest (at Cu K-alpha1) are dropped: invisible in
#: a measured pattern and a large share of the file. Chosen by measurement (docs/search_match.md).
DEFAULT_MIN_INTENSITY = 5e-3
#: At most this many reflections per structure, the strongest at Cu K-alpha1 (as a powder
#: diffraction file card lists the strongest lines): the search is as accurate with 64 as with all
#: (docs/search_match.md), and the 46,627-structure library fits in 22 MB.
DEFAULT_MAX_PEAKS = 64
#: The shipped libraries by name, relative to the package's ``resources`` folder: the Materials
#: Project's experimentally observed structures (CC-BY 4.0) and the AMCSD's minerals (docs/search_match.md).
SHIPPED_LIBRARIES = {"mp": ("library", "mp_experimental.npz"), "amcsd": ("library", "amcsd.npz")}
#: The Materials Project library alone (the default before the AMCSD was added).
SHIPPED_LIBRARY = SHIPPED_LIBRARIES["mp"]
#: The shipped libraries searched as one by default (``ReferenceLibrary.load()``, ``library="default"``).
DEFAULT_LIBRARIES = ("mp", "amcsd")
#: Two entries are one phase (duplicates) when formula and space group are equal and the conventional
#: cell lengths agree to this relative tolerance (DFT cells are 1-3 % off measured ones)...
DUPLICATE_LENGTH_TOLERANCE = 0.03
#: ... and the angles to this many degrees.
DUPLICATE_ANGLE_TOLERANCE = 2.0
#: Reflections whose |g| agree to this relative precision are one peak (equivalent reflections
#: differ by ~1e-15; pymatgen merges within 1e-5 degrees 2theta, i.e. ~1e-7 relative at 30 degrees).
_SAME_G = 1e-7
#: Mantissa bits of |F|^2 m kept in a saved library (see :meth:`ReferenceLibrary.save`).
_F2_MASK = 0xFFFFF000
_ARRAYS = ("ids", "formulas", "spacegroups", "lattices", "elements", "offsets", "d", "f2", "hkl")
#: Per-entry arrays a library file may hold; absent ones read as empty (older files, MP CIFs).
_OPTIONAL = ("minerals", "references", "prototypes", "groups", "mass_factors")
#: The optional per-entry string arrays.
_TEXTS = ("minerals", "references", "prototypes")
#: Arrays a saved library holds byte-shuffled (:func:`_pack_float32`), with whether consecutive values
#: are differenced first (d falls within each entry: its bit patterns change little from one to the next).
_PACKED = {"d": True, "f2": False}


def _pack_float32(values, *, delta: bool) -> np.ndarray:
    """(4, N) uint8: the little-endian bytes of float32 ``values`` as four planes (the byte shuffle of
    HDF5 and Blosc), of the differences of consecutive bit patterns (modulo 2^32) with ``delta``.
    Lossless; deflate compresses the slowly varying high bytes far better (d 9.3 -> 6.9 MB and f2
    6.2 -> 4.9 MB for the shipped MP library)."""
    bits = np.ascontiguousarray(values, np.float32).view(np.uint32)
    if delta:
        bits = np.diff(bits, prepend=np.uint32(0))  # unsigned: wraps modulo 2^32, undone by cumsum
    return bits.astype("<u4").view(np.uint8).reshape(-1, 4).T.copy()


def _unpack_float32(planes: np.ndarray, *, delta: bool) -> np.ndarray:
    """The float32 values of :func:`_pack_float32`'s planes, bit for bit."""
    bits = np.ascontiguousarray(np.asarray(planes, np.uint8).T).view("<u4").ravel().astype(np.uint32)
    if delta:
        bits = np.cumsum(bits, dtype=np.uint32)
    return bits.view(np.float32)


# --------------------------------------------------------------------------------------------------
# one structure


def _cu_intensities(d: np.ndarray, f2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Peak intensities f2 x LP at Cu K-alpha1 (the reference of the trimming) and where they exist
    (d >= lambda / 2); 0 elsewhere."""
    from synthxrd.simulate.physics import lorentz_polarization

    visible = d >= DEFAULT_WAVELENGTH / 2
    cu = np.zeros(len(d))
    cu[visible] = f2[visible] * lorentz_polarization(np.arcsin(DEFAULT_WAVELENGTH / (2 * d[visible])))
    return cu, visible


def structure_reflections(crystal, *, d_min: float = DEFAULT_D_MIN, min_intensity: float = DEFAULT_MIN_INTENSITY,
                          max_peaks: int | None = DEFAULT_MAX_PEAKS):
    """Merged reflections of one crystal with d >= ``d_min``: ``(d, f2, hkl)``, sorted by decreasing d.

    Computed with :func:`synthxrd.simulate.reflections` at a wavelength that reaches ``d_min``; the
    intensities ``2 |F|^2 LP`` are divided by the Lorentz-polarisation factor LP at that wavelength
    and reflections with the same |g| (to :data:`_SAME_G`) summed, so ``f2 = |F|^2 m``. ``f2`` is
    scaled so that the strongest peak at Cu K-alpha1 (f2 x LP) is 1; peaks below ``min_intensity``
    of it are dropped, and all but the ``max_peaks`` strongest (None: no limit). ``hkl`` is that of
    the strongest reflection in each merged peak.
    """
    from synthxrd.simulate import reflections
    from synthxrd.simulate.physics import lorentz_polarization
    from synthxrd.structure import CrystalBatch

    # any lambda < 2 d_min reaches every d >= d_min; dividing by LP at it makes f2 wavelength-free
    lam = min(DEFAULT_WAVELENGTH, 1.9 * d_min)
    top = math.degrees(2 * math.asin(min(1.0, lam / (2 * d_min))))
    bottom = math.degrees(2 * math.asin(lam / (2 * 200.0)))  # d <= 200 Å
    refl = reflections(CrystalBatch.from_crystals([crystal]), wavelength=lam, two_theta_range=(bottom, top))
    theta = np.radians(refl.two_theta) / 2
    g = 2 * np.sin(theta) / lam
    f2 = refl.intensity / lorentz_polarization(theta)
    order = np.argsort(g, kind="stable")
    g, f2, hkl = g[order], f2[order], refl.hkl[order]
    if len(g) == 0:
        return np.zeros(0), np.zeros(0), np.zeros((0, 3), np.int64)
    new = np.ones(len(g), bool)
    new[1:] = np.diff(g) > _SAME_G * g[1:]
    group = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    f2_sum = np.add.reduceat(f2, starts)
    g_peak = g[starts]
    # strongest contributor of each group: order within groups by intensity
    hkl_peak = hkl[np.lexsort((-f2, group))[starts]]  # groups are contiguous: first row = strongest
    d = 1.0 / g_peak
    cu, visible = _cu_intensities(d, f2_sum)
    scale = cu.max() if cu.max() > 0 else f2_sum.max()
    if not scale > 0:
        return np.zeros(0), np.zeros(0), np.zeros((0, 3), np.int64)
    f2_sum = f2_sum / scale
    keep = ((cu / scale >= min_intensity) | ~visible) & (f2_sum > 0)
    if max_peaks is not None and keep.sum() > max_peaks:
        strongest = np.argsort(-np.where(keep, cu + 1e-30 * f2_sum, -1.0), kind="stable")[:max_peaks]
        keep = np.zeros_like(keep)
        keep[strongest] = True
    order = np.argsort(-d[keep], kind="stable")
    return d[keep][order], f2_sum[keep][order], hkl_peak[keep][order]


def cell_mass(crystal) -> float:
    """Mass of a crystal's cell contents Z M (atomic mass units): sum of occupancy x atomic mass
    (pymatgen's IUPAC masses) over every scatterer of the cell."""
    from pymatgen.core.periodic_table import Element

    from synthxrd.structure import to_crystal

    c = to_crystal(crystal)
    masses = {int(z): float(Element.from_Z(int(z)).atomic_mass) for z in np.unique(c.numbers)}
    return float(sum(masses[int(z)] * float(o) for z, o in zip(c.numbers, c.occupancies)))


def absolute_f2(crystal, d_min: float) -> tuple[np.ndarray, np.ndarray]:
    """(d, |F|^2 m) of a crystal's reflections with d >= ``d_min``, equal |g| merged, not normalised
    (as :func:`structure_reflections` computes them before its normalisation)."""
    from synthxrd.simulate import reflections
    from synthxrd.simulate.physics import lorentz_polarization
    from synthxrd.structure import CrystalBatch, to_crystal

    lam = min(DEFAULT_WAVELENGTH, 1.9 * d_min)
    top = math.degrees(2 * math.asin(min(1.0, lam / (2 * d_min))))
    bottom = math.degrees(2 * math.asin(lam / (2 * 200.0)))
    refl = reflections(CrystalBatch.from_crystals([to_crystal(crystal)]), wavelength=lam,
                       two_theta_range=(bottom, top))
    theta = np.radians(refl.two_theta) / 2
    g = 2 * np.sin(theta) / lam
    f2 = refl.intensity / lorentz_polarization(theta)
    if len(g) == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(g, kind="stable")
    g, f2 = g[order], f2[order]
    new = np.ones(len(g), bool)
    new[1:] = np.diff(g) > _SAME_G * g[1:]
    starts = np.flatnonzero(new)
    return 1.0 / g[starts], np.add.reduceat(f2, starts)


def mass_factor(crystal, *, normalisation: str = "library", d_min: float = DEFAULT_D_MIN) -> float:
    """Hill & Howard's Q = Z M V / N of a crystal (:mod:`synthxrd.mixture`): cell mass (u) x cell
    volume (Angstrom^3) over the normalisation N of its reference intensities, so that a refined scale
    S on them gives the phase's mass as S Q (up to a factor common to all phases).

    Parameters
    ----------
    crystal : ``Crystal``, pymatgen ``Structure``, ASE ``Atoms`` or CIF path.
    normalisation : ``"library"`` (N = strongest |F|^2 m LP at Cu K-alpha1, as
        :func:`structure_reflections` normalises) or ``"crystal"`` (N = strongest |F|^2 m, as
        :func:`synthxrd.refine.phase_from_crystal` normalises).
    d_min : reflections with d >= d_min (Angstrom) are considered for N.
    """
    from synthxrd.structure import to_crystal

    if normalisation not in ("library", "crystal"):
        raise ConfigError(f"mass_factor: normalisation must be 'library' or 'crystal', got {normalisation!r}")
    c = to_crystal(crystal)
    d, f2 = absolute_f2(c, d_min)
    if len(d) == 0:
        raise StructureError(f"mass_factor: no reflection with d >= {d_min} Angstrom")
    if normalisation == "crystal":
        n = float(f2.max())
    else:
        cu, _ = _cu_intensities(d, f2)
        n = float(cu.max())
    if not n > 0:
        raise StructureError("mass_factor: the crystal has no reflection intensity")
    return cell_mass(c) * abs(float(np.linalg.det(c.lattice))) / n


_CIF_ITEM = r"^[ \t]*{tag}[ \t]+(?:'([^'\n]*)'|\"([^\"\n]*)\"|([^\s'\"]+))"
_DATABASE_CODES = (("_database_code_amcsd", "AMCSD"), ("_cod_database_code", "COD"), ("_database_code_icsd", "ICSD"))


def _cif_item(text: str, tag: str) -> str:
    """The single-line value of ``tag`` in a CIF text ("" if absent, ``?`` or ``.``)."""
    m = re.search(_CIF_ITEM.format(tag=re.escape(tag)), text, re.M | re.I)
    value = "" if m is None else next(g for g in m.groups() if g is not None).strip()
    return "" if value in ("?", ".") else value


def cif_provenance(text: str) -> tuple[str, str]:
    """(mineral name, reference) of a CIF: ``_chemical_name_mineral``, and the database code
    (AMCSD, COD or ICSD) with the journal, volume, first page and year, e.g.
    ``"AMCSD 0000071; American Mineralogist 40, 580 (1955)"``; empty strings where absent."""
    mineral = _cif_item(text, "_chemical_name_mineral")
    parts = [f"{name} {code}" for tag, name in _DATABASE_CODES if (code := _cif_item(text, tag))]
    journal = _cif_item(text, "_journal_name_full") or _cif_item(text, "_journal_name_abbrev")
    if journal:
        volume, page, year = (_cif_item(text, f"_journal_{t}") for t in ("volume", "page_first", "year"))
        parts.append(journal + (f" {volume}" if volume else "") + (f", {page}" if page else "")
                     + (f" ({year})" if year else ""))
    return mineral, "; ".join(parts)


def _entry_from_cif(identifier: str, text: str, *, symprec: float, d_min: float, min_intensity: float,
                    max_peaks: int | None):
    from synthxrd import stats
    from synthxrd.structure import parse_cif, reduced_formula

    from synthxrd.split import prototype_label

    sites = parse_cif(text)
    with warnings.catch_warnings():  # pymatgen's notes on noble gases without electronegativity
        warnings.simplefilter("ignore", UserWarning)
        record = stats.analyze_sites(identifier, *sites, symprec=symprec)
        crystal = sites.to_crystal()
        formula = reduced_formula(crystal)
    d, f2, hkl = structure_reflections(crystal, d_min=d_min, min_intensity=min_intensity, max_peaks=max_peaks)
    if len(d) == 0:
        raise StructureError(f"no reflection with d >= {d_min} Å")
    try:
        q = mass_factor(crystal, d_min=d_min)
    except (StructureError, ValueError):  # a weight fraction is optional for an entry
        q = math.nan
    return (identifier, formula, record.spacegroup, record.lattice,
            element_mask(crystal.numbers), d, f2, hkl, *cif_provenance(text),
            prototype_label(record.spacegroup, record.site_z, record.site_multiplicity, record.site_occupancy,
                            record.site_orbit, record.site_wyckoff), q)


def duplicate_groups(formulas: np.ndarray, spacegroups: np.ndarray, lattices: np.ndarray, *,
                     length_tolerance: float = DUPLICATE_LENGTH_TOLERANCE,
                     angle_tolerance: float = DUPLICATE_ANGLE_TOLERANCE) -> np.ndarray:
    """(N,) int32 row of the first entry of each entry's phase: entries with the same formula and
    space group whose lengths a, b, c agree within ``length_tolerance`` (relative) and angles within
    ``angle_tolerance`` degrees of that first entry; an entry like no earlier one starts a phase."""
    groups = np.arange(len(formulas), dtype=np.int32)
    by_key: dict[tuple[str, int], list[int]] = {}
    for i, key in enumerate(zip(formulas.tolist(), spacegroups.tolist())):
        by_key.setdefault(key, []).append(i)
    lat = np.asarray(lattices, np.float64)
    for rows in by_key.values():
        heads: list[int] = []
        for i in rows:
            for h in heads:
                if (np.all(np.abs(lat[i, :3] / lat[h, :3] - 1) <= length_tolerance)
                        and np.all(np.abs(lat[i, 3:] - lat[h, 3:]) <= angle_tolerance)):
                    groups[i] = h
                    break
            else:
                heads.append(i)
    return groups


def _assemble(entries: list[tuple], failures: list, metadata: dict[str, Any]) -> ReferenceLibrary:
    """A library of ``_entry_from_cif`` tuples (sorted by id), with ``failures`` in its metadata."""
    entries = sorted(entries, key=lambda e: e[0])
    failures = sorted(failures, key=lambda f: f[0])
    offsets = np.zeros(len(entries) + 1, np.int64)
    offsets[1:] = np.cumsum([len(e[5]) for e in entries])
    column = lambda k, dtype: np.array([e[k] for e in entries], dtype=dtype)  # noqa: E731
    return ReferenceLibrary(
        column(0, str), column(1, str), column(2, np.int16), column(3, np.float32), column(4, np.uint64), offsets,
        np.concatenate([e[5] for e in entries]).astype(np.float32),
        np.concatenate([e[6] for e in entries]).astype(np.float32),
        np.concatenate([e[7] for e in entries]).astype(np.int16),
        dict(metadata, n_structures=len(entries), n_failures=len(failures), failures=failures),
        column(8, str), column(9, str), None, column(10, str),
        np.array([e[11] if len(e) > 11 else math.nan for e in entries], np.float64))


def _resume(checkpoint: str | Path | None, settings: dict[str, Any]) -> tuple[list[tuple], list]:
    """Entries and failures of a build's checkpoint file (nothing if there is none)."""
    if checkpoint is None or not Path(checkpoint).is_file():
        return [], []
    lib = ReferenceLibrary.load(checkpoint)
    if lib.metadata.get("partial") != settings:
        raise DataError(f"{checkpoint}: a checkpoint of another build ({lib.metadata.get('partial')}); "
                        "remove it to start afresh")
    entries = [(str(lib.ids[i]), str(lib.formulas[i]), int(lib.spacegroups[i]), lib.lattices[i], lib.elements[i],
                *(getattr(lib, k)[lib.offsets[i]:lib.offsets[i + 1]] for k in ("d", "f2", "hkl")),
                str(lib.minerals[i]), str(lib.references[i]), str(lib.prototypes[i]), float(lib.mass_factors[i]))
               for i in range(len(lib))]
    return entries, [list(f) for f in lib.metadata.get("failures", [])]


def _regroup(groups: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``groups`` of the library of ``rows`` (increasing): each row's phase head among the kept rows
    (its first kept member)."""
    rows = np.asarray(rows, np.int64)
    old = groups[rows]
    first_kept: dict[int, int] = {}
    out = np.empty(len(rows), np.int32)
    for new, head in enumerate(old.tolist()):
        out[new] = first_kept.setdefault(head, new)
    return out


# --------------------------------------------------------------------------------------------------
# the library


@dataclass(frozen=True)
class LibraryEntry:
    """One known structure of a :class:`ReferenceLibrary`.

    Attributes
    ----------
    id : str, file stem of its CIF.
    formula : str, reduced formula (pymatgen's ``reduced_formula``).
    spacegroup : int, ITA number found by spglib at the library's ``symprec``.
    lattice : (6,) float64 a, b, c (Å), alpha, beta, gamma (degrees) of the conventional standard cell.
    d : (P,) float64 d-spacings, Å, decreasing; f2 : (P,) float64 |F|^2 m (strongest Cu peak = 1);
    hkl : (P, 3) int64 strongest contributor of each peak (indices of the cell as read).
    mineral : str, mineral name ("" if none); reference : str, database code and publication ("" if none).
    """

    id: str
    formula: str
    spacegroup: int
    lattice: np.ndarray
    d: np.ndarray
    f2: np.ndarray
    hkl: np.ndarray
    mineral: str = ""
    reference: str = ""


@dataclass(frozen=True, eq=False)
class ReferenceLibrary:
    """Known structures with their reflections, searchable by powder pattern (:meth:`search`).

    Build one from a folder or tar archive of CIFs with :meth:`build` (or ``synthxrd library build``);
    :meth:`load` without a path gives the library shipped with synthxrd (the 46,627 experimentally
    observed Materials Project structures of ``mp_experimental``, CC-BY 4.0).

    Attributes
    ----------
    ids, formulas : (N,) str. spacegroups : (N,) int16. lattices : (N, 6) float32.
    elements : (N, 2) uint64 element bit sets (:func:`element_mask`).
    offsets : (N + 1,) int64; entry i owns rows offsets[i]:offsets[i + 1] of:
    d : (R,) float32 Å, decreasing within an entry; f2 : (R,) float32; hkl : (R, 3) int16.
    metadata : JSON-compatible dict (format_version, source, symprec, d_min, min_intensity,
        package_version, failures, ...).
    minerals, references, prototypes : (N,) str, mineral name, provenance and prototype proxy ("" where
        unknown); default all "".
    groups : (N,) int32, row of the first entry of the same phase (:meth:`merge`); default each its own.
    mass_factors : (N,) float64 Hill & Howard's Z M V / N of each entry (:func:`mass_factor`; a refined
        scale times it is proportional to the phase's mass); NaN where unknown (default all NaN).
    """

    ids: np.ndarray
    formulas: np.ndarray
    spacegroups: np.ndarray
    lattices: np.ndarray
    elements: np.ndarray
    offsets: np.ndarray
    d: np.ndarray
    f2: np.ndarray
    hkl: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    minerals: np.ndarray | None = None
    references: np.ndarray | None = None
    groups: np.ndarray | None = None
    prototypes: np.ndarray | None = None
    mass_factors: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.ids)
        q = np.full(n, np.nan) if self.mass_factors is None else np.asarray(self.mass_factors, np.float64)
        if q.shape != (n,):
            raise DataError(f"{self.label}: inconsistent library arrays (corrupt file?)")
        object.__setattr__(self, "mass_factors", q)
        for name in _TEXTS:
            value = getattr(self, name)
            object.__setattr__(self, name, np.full(n, "", dtype="<U1") if value is None else np.asarray(value, str))
        groups = np.arange(n, dtype=np.int32) if self.groups is None else np.asarray(self.groups, np.int32)
        object.__setattr__(self, "groups", groups)
        if (any(getattr(self, name).shape != (n,) for name in _TEXTS) or groups.shape != (n,)
                or (n and (groups.min() < 0 or groups.max() >= n or np.any(groups[groups] != groups)))):
            raise DataError(f"{self.label}: inconsistent library arrays (corrupt file?)")
        r = int(self.offsets[-1]) if len(self.offsets) else -1
        shapes_ok = (len(self.formulas) == n and self.spacegroups.shape == (n,) and self.lattices.shape == (n, 6)
                     and self.elements.shape == (n, 2) and self.offsets.shape == (n + 1,) and self.d.shape == (r,)
                     and self.f2.shape == (r,) and self.hkl.shape == (r, 3))
        if not shapes_ok or (n and (np.any(np.diff(self.offsets) < 1) or self.offsets[0] != 0)):
            raise DataError(f"{self.label}: inconsistent library arrays (corrupt file?)")
        if n and (self.spacegroups.min() < 1 or self.spacegroups.max() > N_SPACEGROUPS or not np.all(self.d > 0)
                  or not np.all(np.isfinite(self.f2))):
            raise DataError(f"{self.label}: library values out of range (corrupt file?)")

    # ---- basics ---------------------------------------------------------------------------------

    @property
    def label(self) -> str:
        return str(self.metadata.get("path") or self.metadata.get("source") or "library")

    @property
    def d_min(self) -> float:
        return float(self.metadata.get("d_min", DEFAULT_D_MIN))

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (f"ReferenceLibrary({len(self)} structures, {len(self.d)} reflections, d >= {self.d_min} Å, "
                f"source={self.metadata.get('source', '')!r})")

    @cached_property
    def _index(self) -> dict[str, int]:
        return {str(k): i for i, k in enumerate(self.ids)}

    @cached_property
    def fingerprint(self) -> str:
        """``sha256:`` + hex digest of the ids, space groups and reflections (offsets, d, f2): what a
        fusion rule fitted against this library is bound to. Cheap (tens of ms for the default library)
        and independent of file names and metadata."""
        import hashlib

        h = hashlib.sha256()
        h.update("\n".join(map(str, self.ids.tolist())).encode())
        for array, dtype in ((self.spacegroups, np.int16), (self.offsets, np.int64), (self.d, np.float32),
                             (self.f2, np.float32)):
            h.update(np.ascontiguousarray(array, dtype).tobytes())
        return "sha256:" + h.hexdigest()

    @property
    def lineage(self) -> tuple[str, ...]:
        """Fingerprints of this library and of the libraries it was selected from (:meth:`select`,
        :meth:`without_part`), nearest first: a rule bound to the whole library also serves a part
        of it (the structures left out are the "unknown" case it was fitted for)."""
        return (self.fingerprint, *self.metadata.get("subset_of", ()))

    @cached_property
    def phase_minerals(self) -> np.ndarray:
        """(N,) str mineral name of each entry, or else of another entry of its phase (``groups``)."""
        named: dict[int, str] = {}
        for g, name in zip(self.groups.tolist(), self.minerals.tolist()):
            if name and g not in named:
                named[g] = name
        pairs = zip(self.groups.tolist(), self.minerals.tolist())
        return np.array([m or named.get(g, "") for g, m in pairs], dtype=str)

    def index(self, id: str) -> int:
        """Row of the structure ``id``; :class:`KeyError` naming it if absent."""
        try:
            return self._index[str(id)]
        except KeyError:
            raise KeyError(f"{id!r} is not in {self.label}") from None

    def entry(self, key: int | str) -> LibraryEntry:
        """The structure at row ``key`` or with id ``key``."""
        i = self.index(key) if isinstance(key, str) else int(key)
        a, b = self.offsets[i], self.offsets[i + 1]
        return LibraryEntry(str(self.ids[i]), str(self.formulas[i]), int(self.spacegroups[i]),
                            self.lattices[i].astype(np.float64), self.d[a:b].astype(np.float64),
                            self.f2[a:b].astype(np.float64), self.hkl[a:b].astype(np.int64),
                            str(self.minerals[i]), str(self.references[i]))

    def peaks(self, key: int | str, *, wavelength: float | str = DEFAULT_WAVELENGTH,
              two_theta_range: tuple[float, float] = (5.0, 90.0)) -> tuple[np.ndarray, np.ndarray]:
        """Peaks of one structure at ``wavelength``: (2theta degrees increasing, intensity max 1),
        as :func:`synthxrd.simulate.peaks` (up to the library's trimming)."""
        from synthxrd.simulate.common import check_range, resolve_wavelength
        from synthxrd.simulate.physics import lorentz_polarization

        lam = resolve_wavelength(wavelength)
        lo, hi = check_range(two_theta_range)
        e = self.entry(key)
        s = lam / (2 * e.d)
        ok = s <= 1
        tt = np.degrees(2 * np.arcsin(s[ok]))
        inside = (tt >= lo) & (tt <= hi)
        tt = tt[inside]
        intensity = e.f2[ok][inside] * lorentz_polarization(np.radians(tt) / 2)
        order = np.argsort(tt, kind="stable")
        tt, intensity = tt[order], intensity[order]
        if len(intensity):
            intensity = intensity / intensity.max()
        return tt, intensity

    def select(self, keep) -> ReferenceLibrary:
        """A library of the rows ``keep`` (boolean mask or indices), e.g. without some prototypes."""
        rows = np.arange(len(self))[np.asarray(keep)] if np.asarray(keep).dtype != bool else np.flatnonzero(keep)
        counts = np.diff(self.offsets)[rows]
        take = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in rows]) if len(rows) \
            else np.zeros(0, np.int64)
        offsets = np.zeros(len(rows) + 1, np.int64)
        offsets[1:] = np.cumsum(counts)
        meta = dict(self.metadata, n_selected=len(rows), subset_of=list(self.lineage))
        return ReferenceLibrary(self.ids[rows], self.formulas[rows], self.spacegroups[rows], self.lattices[rows],
                                self.elements[rows], offsets, self.d[take], self.f2[take], self.hkl[take], meta,
                                self.minerals[rows], self.references[rows], _regroup(self.groups, rows),
                                self.prototypes[rows], self.mass_factors[rows])

    def without_part(self, split, part: str = "test") -> ReferenceLibrary:
        """The library without the structures of a prototype split's ``part``: the split's ids, and
        every entry whose prototype proxy (``prototypes``) is one of that part's prototypes, so that
        a structure type held out of training is held out of every source of the library (an AMCSD
        mineral of a test prototype as well as the MP structure). ``metadata["held_out"]`` records it."""
        ids = split.ids_of(part)
        by_id = np.isin(self.ids, ids)
        by_type = np.isin(self.prototypes, split.prototypes_of(part)) & (self.prototypes != "")
        held = self.select(~(by_id | by_type))
        held.metadata["held_out"] = {"split": split.path or "shipped", "part": part,
                                     "n_removed": int((by_id | by_type).sum()), "n_removed_by_prototype":
                                     int((by_type & ~by_id).sum())}
        return held

    def trimmed(self, *, d_min: float | None = None, min_intensity: float | None = None,
                max_peaks: int | None = None) -> ReferenceLibrary:
        """The same library with fewer reflections: d >= ``d_min`` and at least ``min_intensity`` of
        each structure's strongest peak at Cu K-alpha1 (as :meth:`build` with these values would give,
        when they are no looser than this library's), and at most the ``max_peaks`` strongest (at Cu
        K-alpha1) per structure. Structures left without reflections are dropped."""
        d_min = self.d_min if d_min is None else float(d_min)
        cut = float(self.metadata.get("min_intensity", 0.0)) if min_intensity is None else float(min_intensity)
        if d_min < self.d_min or cut < float(self.metadata.get("min_intensity", 0.0)):
            raise ConfigError(f"trimmed: d_min={d_min} and min_intensity={cut} must be no looser than the library's "
                              f"({self.d_min}, {self.metadata.get('min_intensity')})")
        d = self.d.astype(np.float64)
        cu, visible = _cu_intensities(d, self.f2.astype(np.float64))
        in_range = d >= d_min
        entry = np.repeat(np.arange(len(self)), np.diff(self.offsets))
        top = np.zeros(len(self))
        np.maximum.at(top, entry[in_range], cu[in_range])
        f2 = self.f2 / np.where(top > 0, top, 1.0)[entry]
        keep = in_range & ((cu >= cut * top[entry]) | ~visible) & (f2 > 0)
        if max_peaks is not None:
            if int(max_peaks) < 1:
                raise ConfigError(f"trimmed: max_peaks must be >= 1, got {max_peaks}")
            rank = np.empty(len(keep), np.int64)  # rank of each reflection by Cu intensity within its entry
            order = np.lexsort((-np.where(keep, cu + 1e-30 * f2, -1.0), entry))
            rank[order] = np.arange(len(order)) - self.offsets[entry[order]]
            keep &= rank < int(max_peaks)
        counts = np.bincount(entry[keep], minlength=len(self))
        rows = np.flatnonzero(counts > 0)
        offsets = np.zeros(len(rows) + 1, np.int64)
        offsets[1:] = np.cumsum(counts[rows])
        meta = dict(self.metadata, d_min=d_min, min_intensity=cut, max_peaks=max_peaks, n_structures=len(rows),
                    trimmed_from={"d_min": self.d_min, "min_intensity": self.metadata.get("min_intensity"),
                                  "max_peaks": self.metadata.get("max_peaks")})
        return ReferenceLibrary(self.ids[rows], self.formulas[rows], self.spacegroups[rows], self.lattices[rows],
                                self.elements[rows], offsets, self.d[keep], f2[keep].astype(np.float32),
                                self.hkl[keep], meta, self.minerals[rows], self.references[rows],
                                _regroup(self.groups, rows), self.prototypes[rows],
                                self.mass_factors[rows] / np.where(top[rows] > 0, top[rows], 1.0))

    # ---- build, save, load ----------------------------------------------------------------------

    @classmethod
    def build(cls, source: str | Path, *, symprec: float = 0.1, d_min: float = DEFAULT_D_MIN,
              min_intensity: float = DEFAULT_MIN_INTENSITY, max_peaks: int | None = DEFAULT_MAX_PEAKS,
              workers: int | None = None, ids: Iterable[str] | None = None, progress: bool = True,
              checkpoint: str | Path | None = None, checkpoint_every_s: float = 60.0) -> ReferenceLibrary:
        """Library of every CIF in ``source``: a folder (searched recursively: a COD tree, an ICSD
        export), a tar archive, one CIF, or an AMCSD SQLite database (:mod:`synthxrd.amcsd`).

        Streamed and parallel over ``workers`` processes (default: the cores available), with a
        progress bar. A CIF that cannot be read or analysed is reported in ``metadata["failures"]``
        (id, reason) and skipped, never fatal. With ``checkpoint`` (a file path), what is done is
        saved there every ``checkpoint_every_s`` seconds (a library file with the settings in its
        metadata), and a later build with the same source and settings continues from it, skipping
        the structures it holds; the caller removes it once the library is saved.

        Raises
        ------
        DataError
            No structure at all could be used; a checkpoint of another source or other settings.
        """
        from synthxrd import __version__, stats

        if not (isinstance(d_min, (int, float)) and 0.3 <= d_min <= 10):
            raise ConfigError(f"d_min must be between 0.3 and 10 Å, got {d_min!r}")
        if not (isinstance(min_intensity, (int, float)) and 0 <= min_intensity < 1):
            raise ConfigError(f"min_intensity must be in [0, 1), got {min_intensity!r}")
        if max_peaks is not None and not (isinstance(max_peaks, int) and max_peaks >= 1):
            raise ConfigError(f"max_peaks must be a positive integer or None, got {max_peaks!r}")
        if not (isinstance(symprec, (int, float)) and math.isfinite(symprec) and symprec > 0):
            raise ConfigError(f"symprec must be a positive number (Å), got {symprec!r}")
        from synthxrd.amcsd import AMCSD_CITATION, is_amcsd

        start = time.perf_counter()
        settings = {"source": str(Path(source).resolve()), "symprec": float(symprec), "d_min": float(d_min),
                    "min_intensity": float(min_intensity), "max_peaks": max_peaks}
        metadata = {"format_version": LIBRARY_FORMAT_VERSION, "source": str(source), **{
            k: v for k, v in settings.items() if k != "source"}, "package_version": __version__}
        if is_amcsd(source):
            metadata["citation"] = AMCSD_CITATION
        entries, failures = _resume(checkpoint, settings)
        done = {e[0] for e in entries} | {f[0] for f in failures}
        analyse = partial(_entry_from_cif, symprec=float(symprec), d_min=float(d_min),
                          min_intensity=float(min_intensity), max_peaks=max_peaks)
        last = time.perf_counter()

        def collect(outcomes) -> None:
            nonlocal last
            for i, e, reason in outcomes:
                (entries.append(e) if e is not None else failures.append([i, reason]))
            if checkpoint is not None and time.perf_counter() - last >= checkpoint_every_s and entries:
                _assemble(entries, failures, dict(metadata, partial=settings)).save(checkpoint, overwrite=True)
                last = time.perf_counter()

        stats.map_cifs(source, analyse, workers=workers, ids=ids, skip=done, progress=progress, desc="library",
                       on_chunk=collect)
        if not entries:
            first = f" (first failure: {failures[0][0]}: {failures[0][1]})" if failures else ""
            raise DataError(f"{source}: no structure could be used for a library{first}")
        if np.abs(np.concatenate([e[7] for e in entries])).max() > np.iinfo(np.int16).max:
            raise DataError(f"{source}: Miller indices beyond {np.iinfo(np.int16).max} (cell too large)")
        metadata.update(created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        wall_time_s=round(time.perf_counter() - start, 1))
        if done:
            metadata["resumed_with"] = len(done)
        return _assemble(entries, failures, metadata)

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the library as a compressed ``.npz`` (atomically; refuses an existing file unless ``overwrite``).

        ``f2`` is stored to 12 significant bits (relative precision 4.9e-4); ``d`` and ``f2`` are stored
        byte-shuffled (:func:`_pack_float32`, lossless), which older versions of synthxrd cannot read."""
        from synthxrd.files import atomic_write, check_new

        path = Path(path)
        check_new([path], overwrite=overwrite)
        meta = {k: v for k, v in self.metadata.items() if k != "path"}
        arrays = {name: getattr(self, name) for name in _ARRAYS}
        arrays.update({name: getattr(self, name) for name in _TEXTS if getattr(self, name).any()})
        if np.any(self.groups != np.arange(len(self))):
            arrays["groups"] = self.groups
        if np.any(np.isfinite(self.mass_factors)):  # float32: a weight fraction needs no more
            arrays["mass_factors"] = np.asarray(self.mass_factors, np.float32)
        # |F|^2 m to 12 significant bits (relative 4.9e-4): the zero low bytes compress, the values
        # stay float32 and exact to what a powder intensity can be compared with
        arrays["f2"] = (np.asarray(self.f2, np.float32).view(np.uint32) & np.uint32(_F2_MASK)).view(np.float32)
        for name, delta in _PACKED.items():  # byte-shuffled, lossless (the files shipped stay under 20 MB)
            arrays[f"{name}_packed"] = _pack_float32(arrays.pop(name), delta=delta)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, metadata=np.array(json.dumps(meta)), **arrays)

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | Path | Sequence[str | Path] | None = None) -> ReferenceLibrary:
        """Read a library file; a shipped library by name (``"mp"``, ``"amcsd"``, :data:`SHIPPED_LIBRARIES`);
        several of either (a sequence, or names and paths joined by ``+``: ``"amcsd+mine.npz"``),
        merged into one (:meth:`merge`); ``None`` or ``"default"``: the default library,
        :data:`DEFAULT_LIBRARIES` merged.

        Raises
        ------
        DataError
            Missing, corrupt or foreign file, or a format version this synthxrd does not read.
        """
        if path is None or (isinstance(path, str) and path == "default"):
            default = cls.load(list(DEFAULT_LIBRARIES))
            default.metadata["path"] = "default"
            return default
        elif isinstance(path, str) and "+" in path and not Path(path).is_file():
            path = [p for p in path.split("+") if p]  # "mp+mine.npz": several, searched as one
        if not isinstance(path, (str, Path)):
            parts = [cls.load(p) for p in path]
            if not parts:
                raise DataError("no library given")
            return parts[0] if len(parts) == 1 else cls.merge(*parts)
        if isinstance(path, str) and path in SHIPPED_LIBRARIES:
            resource = files("synthxrd").joinpath("resources", *SHIPPED_LIBRARIES[path])
            if not resource.is_file():
                raise DataError(f"the {path!r} reference library is not shipped with this installation; "
                                "build one with `synthxrd library build SOURCE --out FILE`")
            with as_file(resource) as file:
                return cls._read(file, f"shipped:{path}")
        p = Path(path)
        if not p.is_file():
            known = ", ".join(sorted(SHIPPED_LIBRARIES))
            raise DataError(f"{p}: no such library file (shipped libraries: default, {known})")
        return cls._read(p, str(p))

    @classmethod
    def _read(cls, file: Path, label: str) -> ReferenceLibrary:
        import zipfile

        try:
            with np.load(file, allow_pickle=False) as npz:
                missing = [k for k in ("metadata", *_ARRAYS)
                           if k not in npz.files and f"{k}_packed" not in npz.files]
                if missing:
                    raise DataError(f"{label}: not a synthxrd reference library (missing {', '.join(missing)})")
                meta = json.loads(str(npz["metadata"]))
                arrays = {k: npz[k] for k in (*_ARRAYS, *_OPTIONAL) if k in npz.files}
                arrays.update({k: _unpack_float32(npz[f"{k}_packed"], delta=delta) for k, delta in _PACKED.items()
                               if f"{k}_packed" in npz.files})
        except DataError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"{label}: cannot read the reference library ({reason})") from None
        if meta.get("format_version") != LIBRARY_FORMAT_VERSION:
            raise DataError(f"{label}: library format version {meta.get('format_version')!r}; this synthxrd "
                            f"reads version {LIBRARY_FORMAT_VERSION} (rebuild it with `synthxrd library build`)")
        meta["path"] = label
        return cls(metadata=meta, **arrays)

    @classmethod
    def merge(cls, *libraries: ReferenceLibrary, length_tolerance: float = DUPLICATE_LENGTH_TOLERANCE,
              angle_tolerance: float = DUPLICATE_ANGLE_TOLERANCE) -> ReferenceLibrary:
        """One library of several, searched with one ranking.

        Entries keep their order (the first library's first). Ids stay unique: an id that an earlier
        library already holds is prefixed with its library's name (the file stem, e.g.
        ``amcsd:amcsd-0000003``). Duplicates, the same phase in several entries (same reduced formula
        and space group, conventional cell lengths within ``length_tolerance`` (relative) and angles
        within ``angle_tolerance`` degrees of the group's first entry), are kept and marked in
        ``groups``: the search returns the best-scoring entry of each phase once.

        Raises
        ------
        ConfigError
            No library, or libraries built with different ``d_min`` (their reflections would not compare).
        """
        if not libraries:
            raise ConfigError("merge: no library given")
        d_mins = {lib.d_min for lib in libraries}
        if len(d_mins) > 1:
            raise ConfigError(f"merge: libraries with different d_min ({sorted(d_mins)} Å) cannot be searched as one")
        ids: list[str] = []
        seen: set[str] = set()
        for lib in libraries:
            name = Path(str(lib.metadata.get("path") or lib.metadata.get("source") or "library")).stem
            name = name.split(":")[-1]
            for i in lib.ids.tolist():
                new = i if i not in seen else f"{name}:{i}"
                k = 2
                while new in seen:
                    new, k = f"{name}{k}:{i}", k + 1
                seen.add(new)
                ids.append(new)
        offsets = np.concatenate([[0], np.cumsum(np.concatenate([np.diff(lib.offsets) for lib in libraries]))])
        cat = {name: np.concatenate([getattr(lib, name) for lib in libraries])
               for name in ("formulas", "spacegroups", "lattices", "elements", "d", "f2", "hkl", *_TEXTS,
                            "mass_factors")}
        sources = [{k: lib.metadata.get(k) for k in ("path", "source", "n_structures", "citation", "created",
                                                      "package_version") if lib.metadata.get(k) is not None}
                   | {"n_structures": len(lib)} for lib in libraries]
        first = libraries[0].metadata
        meta = {"format_version": LIBRARY_FORMAT_VERSION, "source": " + ".join(str(s.get("path") or s.get("source"))
                                                                              for s in sources),
                "merged": sources, "symprec": first.get("symprec"), "d_min": libraries[0].d_min,
                "min_intensity": max(float(lib.metadata.get("min_intensity", 0.0)) for lib in libraries),
                "max_peaks": first.get("max_peaks"), "n_structures": len(ids),
                "duplicates": {"length_tolerance": length_tolerance, "angle_tolerance": angle_tolerance}}
        groups = duplicate_groups(cat["formulas"], cat["spacegroups"], cat["lattices"],
                                  length_tolerance=length_tolerance, angle_tolerance=angle_tolerance)
        meta["duplicates"]["n_duplicates"] = int(np.sum(groups != np.arange(len(groups))))
        return cls(np.array(ids, dtype=str), cat["formulas"], cat["spacegroups"], cat["lattices"].astype(np.float32),
                   cat["elements"], offsets.astype(np.int64), cat["d"], cat["f2"], cat["hkl"], meta,
                   cat["minerals"], cat["references"], groups, cat["prototypes"], cat["mass_factors"])

    # ---- search ---------------------------------------------------------------------------------

    def search(self, two_theta, intensities, *, k: int = 10, wavelength: float | str | None = None,
               elements: Sequence[str] | str | None = None, only_elements: bool = False,
               settings=None, refine=False) -> list[list]:
        """Best-matching structures of each pattern; see :func:`synthxrd.match.search.search`
        (``refine=True``: the best candidates refined and re-ranked, :func:`synthxrd.match.rerank.rerank`)."""

        return search(self, two_theta, intensities, k=k, wavelength=wavelength, elements=elements,
                      only_elements=only_elements, settings=settings, refine=refine)
