"""Crystal structures as plain arrays, the one CIF reader, and adapters from pymatgen and ASE.

The simulator works on :class:`Crystal` (one structure) and :class:`CrystalBatch` (many structures
packed into flat arrays with offsets, the form the generator produces and the batched simulator
takes). :class:`Sites` is a cell as a list of sites, each with its species ``((Z, occupancy), ...)``:
the form the CIF reader returns and the symmetry analyses (spglib) take.

Every CIF goes through :func:`parse_cif` (gemmi's CIF parser, https://gemmi.readthedocs.io):
statistics, validation and real crystal sets, the reference library, :func:`to_crystal` of a path and
:func:`read_cif`. What it reads of the first data block with atom sites:

* the cell (``_cell_length_*``, ``_cell_angle_*``; standard uncertainties ignored); lattice rows a, b, c
  with a along x and b in the xy plane (:func:`lattice_from_parameters`);
* the atom sites (``_atom_site_fract_*``, ``_atom_site_type_symbol`` or else the label, optional
  ``_atom_site_occupancy``); charges and labels are dropped (``"O2-"`` is O);
* the symmetry operations ``_symmetry_equiv_pos_as_xyz`` / ``_space_group_symop_operation_xyz``, or
  else those of the space group named by its Hall symbol, H-M symbol or number; none of them: P1.

As pymatgen's ``CifParser`` (the reference the tests compare with), every site is expanded by all
operations, coordinates are wrapped into [0, 1), and images closer than :data:`SITE_TOLERANCE` (in each
fractional coordinate) are one site: images of one atom are dropped, atoms of different rows become one
disordered site whose species are summed per element. Not supported: several structures in one file
(the first is read), modulated or magnetic CIFs, ``_atom_site_aniso_*`` (ignored), Cartesian coordinates.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Union

import numpy as np

try:
    from numba import njit
except ImportError:  # e.g. a GPU node with torch but no numba: validation runs as plain Python
    def njit(*args, **kwargs):
        return args[0] if args and callable(args[0]) else (lambda f: f)

from synthxrd._cif import (
    OCCUPANCY_DIGITS,
    SITE_TOLERANCE,
    Species,
    lattice_from_parameters,
    lattice_parameters,
    read_cif_text,
    site_kind,
)
from synthxrd.errors import StructureError
from synthxrd.wyckoff import N_SPACEGROUPS

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "Crystal",
    "CrystalBatch",
    "Sites",
    "Species",
    "StructureLike",
    "SITE_TOLERANCE",
    "OCCUPANCY_DIGITS",
    "to_crystal",
    "parse_cif",
    "read_cif",
    "write_cif",
    "crystal_sites",
    "site_rows",
    "site_kind",
    "site_types",
    "lattice_parameters",
    "lattice_from_parameters",
    "element_z",
    "scattering_table",
    "reduced_formula",
]

StructureLike = Union["Crystal", Any, str, Path]
"""A :class:`Crystal`, a pymatgen ``Structure``, an ASE ``Atoms`` or the path of a CIF file."""



@lru_cache(maxsize=1)
def scattering_table() -> tuple[dict[str, int], np.ndarray, np.ndarray]:
    """Form-factor coefficients shipped with the package (pymatgen's fit, see resources).

    Returns
    -------
    symbol_to_z : dict element symbol -> atomic number (symbols with coefficients only).
    a, b : (Zmax+1, 4) float arrays; row Z holds the coefficients of element Z (row 0 unused).
    """
    doc = json.loads(files("synthxrd.resources").joinpath("scattering_factors.json").read_text())
    elements = doc["elements"]
    z_max = max(v["Z"] for v in elements.values())
    a = np.zeros((z_max + 1, 4))
    b = np.zeros((z_max + 1, 4))
    for entry in elements.values():
        a[entry["Z"]] = entry["a"]
        b[entry["Z"]] = entry["b"]
    return {sym: v["Z"] for sym, v in elements.items()}, a, b


def element_z(symbol: str, *, source: str = "structure") -> int:
    """Atomic number of an element symbol that has X-ray scattering coefficients.

    Raises
    ------
    StructureError
        If the symbol is not an element covered by the form-factor table (e.g. a dummy species).
    """
    table = scattering_table()[0]
    if symbol not in table:
        raise StructureError(
            f"{source}: element {symbol!r} has no X-ray scattering coefficients "
            f"(covered: H..Cf, Z = 1-{max(table.values())})"
        )
    return table[symbol]


@dataclass(frozen=True)
class Crystal:
    """One crystal as arrays; every scatterer (species on a site) is one row.

    Attributes
    ----------
    lattice : (3, 3) float64, rows are a, b, c in Angstrom.
    frac_coords : (n, 3) float64 fractional coordinates.
    numbers : (n,) int64 atomic numbers.
    occupancies : (n,) float64 in (0, 1]; a partially occupied site contributes one row per species.
    """

    lattice: np.ndarray
    frac_coords: np.ndarray
    numbers: np.ndarray
    occupancies: np.ndarray

    def __post_init__(self) -> None:
        _coerce(self, ("lattice", "frac_coords", "occupancies"), ("numbers",), "crystal")
        _check_arrays(self.lattice[None], self.frac_coords, self.numbers, self.occupancies, self.offsets, "crystal")

    @property
    def offsets(self) -> np.ndarray:
        """(2,) int64: [0, n], so that one crystal is a batch of one."""
        return np.array([0, len(self.numbers)], np.int64)


@dataclass(frozen=True)
class CrystalBatch:
    """N crystals packed into flat arrays.

    Attributes
    ----------
    lattices : (N, 3, 3) float64 in Angstrom, rows a, b, c.
    frac_coords : (M, 3) float64, all scatterers of all crystals, crystal after crystal.
    numbers : (M,) int64 atomic numbers.
    occupancies : (M,) float64.
    offsets : (N + 1,) int64; crystal i owns rows offsets[i]:offsets[i + 1].
    spacegroups : (N,) int64 ITA numbers (labels, e.g. the intended group of generated crystals), or None.
    """

    lattices: np.ndarray
    frac_coords: np.ndarray
    numbers: np.ndarray
    occupancies: np.ndarray
    offsets: np.ndarray
    spacegroups: np.ndarray | None = None

    def __post_init__(self) -> None:
        ints = ("numbers", "offsets") if self.spacegroups is None else ("numbers", "offsets", "spacegroups")
        _coerce(self, ("lattices", "frac_coords", "occupancies"), ints, "batch")
        _check_arrays(self.lattices, self.frac_coords, self.numbers, self.occupancies, self.offsets, "batch")
        if self.spacegroups is not None and (self.spacegroups.shape != (len(self.lattices),) or (
                len(self.spacegroups) and (self.spacegroups.min() < 1 or self.spacegroups.max() > N_SPACEGROUPS))):
            raise StructureError(f"batch: spacegroups must be {len(self.lattices)} ITA numbers 1-230")

    def __len__(self) -> int:
        return len(self.lattices)

    def __getitem__(self, i: int) -> Crystal:
        a, b = self.offsets[i], self.offsets[i + 1]
        return Crystal(self.lattices[i], self.frac_coords[a:b], self.numbers[a:b], self.occupancies[a:b])

    @classmethod
    def concatenate(cls, batches: Sequence[CrystalBatch]) -> CrystalBatch:
        """One batch holding the crystals of ``batches`` in order (labels kept if all have them)."""
        if not batches:
            return cls.from_crystals([])
        shift = np.cumsum([0] + [b.offsets[-1] for b in batches[:-1]])
        offsets = np.concatenate([[0]] + [b.offsets[1:] + s for b, s in zip(batches, shift)])
        labels = None if any(b.spacegroups is None for b in batches) else np.concatenate([b.spacegroups for b in batches])
        return cls(*(np.concatenate([getattr(b, name) for b in batches])
                     for name in ("lattices", "frac_coords", "numbers", "occupancies")), offsets, spacegroups=labels)

    @classmethod
    def from_crystals(cls, crystals: Sequence[StructureLike]) -> CrystalBatch:
        """Pack structures (anything :func:`to_crystal` accepts) into one batch."""
        cs = [to_crystal(c) for c in crystals]
        offsets = np.zeros(len(cs) + 1, np.int64)
        offsets[1:] = np.cumsum([len(c.numbers) for c in cs])
        cat = (lambda name, shape: np.concatenate([getattr(c, name) for c in cs]) if cs else np.zeros(shape))
        return cls(
            np.array([c.lattice for c in cs]).reshape(-1, 3, 3),
            cat("frac_coords", (0, 3)),
            cat("numbers", (0,)).astype(np.int64),
            cat("occupancies", (0,)),
            offsets,
        )


_KINDS = {"f": "float", "i": "integer"}


def _coerce(obj, float_fields: tuple[str, ...], int_fields: tuple[str, ...], what: str) -> None:
    """Turn the fields of a frozen array dataclass into C-contiguous float64 / int64 arrays.

    Integer fields must already hold integers: 26.7 is never silently truncated to 26.
    """
    for name in float_fields:
        try:
            object.__setattr__(obj, name, np.ascontiguousarray(getattr(obj, name), dtype=np.float64))
        except (TypeError, ValueError):
            raise StructureError(f"{what}: {name} must be numeric, got {getattr(obj, name)!r:.80}") from None
    for name in int_fields:
        arr = np.asarray(getattr(obj, name))
        if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.dtype.kind == "f"):
            raise StructureError(f"{what}: {name} must hold integers, got dtype {arr.dtype}")
        object.__setattr__(obj, name, np.ascontiguousarray(arr, dtype=np.int64))


def _check_arrays(lattices, frac, numbers, occupancies, offsets, what: str) -> None:
    """Validate shapes, dtypes and values once (the kernels trust their input); ~10 us."""
    for name, arr, kind in (("lattices", lattices, "f"), ("frac_coords", frac, "f"), ("numbers", numbers, "i"),
                            ("occupancies", occupancies, "f"), ("offsets", offsets, "i")):
        if not isinstance(arr, np.ndarray) or arr.dtype.kind != kind or not arr.flags.c_contiguous:
            raise StructureError(f"{what}: {name} must be a C-contiguous numpy array of {_KINDS[kind]}s, "
                                 f"got {type(arr).__name__} {getattr(arr, 'dtype', '')}")
    n, m = len(lattices), len(numbers)
    if lattices.shape != (n, 3, 3) or frac.shape != (m, 3) or occupancies.shape != (m,) or offsets.shape != (n + 1,):
        raise StructureError(
            f"{what}: inconsistent shapes lattices {lattices.shape} (expected (N, 3, 3)), frac_coords {frac.shape} "
            f"(expected ({m}, 3)), occupancies {occupancies.shape}, offsets {offsets.shape} (expected ({n + 1},))"
        )
    n_table = len(scattering_table()[1])
    code, index = _validate(lattices, frac, numbers, occupancies, offsets, n_table)
    if code:
        raise StructureError(f"{what}: " + {
            1: f"offsets must rise from 0 to {m}, got {offsets[:5]}...{offsets[-2:]}",
            2: "lattice, fractional coordinates and occupancies must be finite (found NaN/inf)",
            3: f"atomic number {numbers[index] if m else '?'} has no X-ray scattering coefficients "
               f"(accepted 1-{n_table - 1})",
            4: f"occupancies must lie in (0, 1], got {occupancies[index] if m else '?'}",
            5: f"lattice {index} is singular (cell volume < 1e-3 A^3)",
        }[code])


@njit(cache=True)
def _validate(lattices, frac, numbers, occupancies, offsets, n_table):
    """One pass over the arrays: (error code, index), code 0 = valid. ~1 us instead of ~25 us of numpy calls."""
    n = lattices.shape[0]
    m = numbers.shape[0]
    if n > 0 and (offsets[0] != 0 or offsets[n] != m):
        return 1, 0
    for i in range(n):
        if offsets[i + 1] < offsets[i]:
            return 1, i
    total = np.sum(lattices) + np.sum(frac) + np.sum(occupancies)
    if not np.isfinite(total):
        return 2, 0
    for j in range(m):
        if numbers[j] < 1 or numbers[j] >= n_table:
            return 3, j
        if not (0.0 < occupancies[j] <= 1.0 + 1e-6):
            return 4, j
    for i in range(n):
        a = lattices[i]
        vol = (a[0, 0] * (a[1, 1] * a[2, 2] - a[1, 2] * a[2, 1]) - a[0, 1] * (a[1, 0] * a[2, 2] - a[1, 2] * a[2, 0])
               + a[0, 2] * (a[1, 0] * a[2, 1] - a[1, 1] * a[2, 0]))
        if abs(vol) < 1e-3:
            return 5, i
    return 0, 0


# --------------------------------------------------------------------------------------------------
# Sites: a cell as symmetry-analysis input


class Sites(NamedTuple):
    """A cell as a list of sites (what :func:`parse_cif` and :func:`crystal_sites` return).

    Attributes
    ----------
    lattice : (3, 3) float64, rows a, b, c in Å.
    positions : (s, 3) float64 fractional coordinates, one row per site.
    species : tuple of s :data:`Species` ``((Z, occupancy), ...)``, sorted by Z, occupancies rounded
        to :data:`OCCUPANCY_DIGITS` decimals (a disordered site has several pairs).
    """

    lattice: np.ndarray
    positions: np.ndarray
    species: tuple[Species, ...]

    def to_crystal(self) -> Crystal:
        """The :class:`Crystal` with one scatterer row per (site, species), sites in order."""
        return Crystal(self.lattice, *site_rows(self.positions, self.species))


def site_rows(positions: np.ndarray, species: Sequence[Species]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scatterer row per (site, species): ``(frac_coords (m, 3), numbers (m,), occupancies (m,))``.

    The inverse of :func:`crystal_sites`: rows of one site are consecutive and share its position.
    """
    counts = np.array([len(s) for s in species], np.int64)
    frac = np.repeat(np.asarray(positions, np.float64).reshape(-1, 3), counts, axis=0)
    numbers = np.array([z for s in species for z, _ in s], np.int64)
    occupancies = np.array([o for s in species for _, o in s], np.float64)
    return frac, numbers, occupancies


def site_types(species: Sequence[Species]) -> np.ndarray:
    """spglib types of sites: sites with the same :func:`site_kind` share a type.

    Returns
    -------
    (s,) int32, types numbered by first appearance.
    """
    kinds: dict[Species, int] = {}
    return np.array([kinds.setdefault(site_kind(s), len(kinds)) for s in species], np.int32)


def crystal_sites(crystal: StructureLike) -> Sites:
    """The sites of a structure: its scatterer rows grouped by position (to 1e-10), in order of first row.

    For a CIF path, the sites :func:`parse_cif` reads (nothing is grouped twice). The inverse of
    :func:`site_rows`: ``crystal_sites(Sites(...).to_crystal())`` gives the same sites in the same order.
    """
    if isinstance(crystal, (str, Path)):
        return _read_sites(Path(crystal))
    crystal = to_crystal(crystal)
    key = np.round(crystal.frac_coords, 10)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # unique position j is the rank[j]-th to appear
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    species: list[list[tuple[int, float]]] = [[] for _ in range(len(order))]
    for row, site in enumerate(rank[inverse.reshape(-1)].tolist()):
        species[site].append((int(crystal.numbers[row]), float(crystal.occupancies[row])))
    return Sites(crystal.lattice, crystal.frac_coords[first[order]], tuple(site_kind(s) for s in species))


def parse_cif(text: str) -> Sites:
    """The sites of the (first) structure of a CIF given as text (see the module docstring).

    Raises
    ------
    StructureError
        ``"malformed CIF (reason)"`` when the text is no CIF or lacks the cell, the atom sites or
        readable symmetry; when an element has no X-ray scattering coefficients (H..Cf are covered) or
        the structure has no atoms. The message does not name the file (see :func:`read_cif`).
    """
    return Sites(*read_cif_text(text, _cif_element))


def _cif_element(symbol: str) -> int:
    return element_z(symbol, source="CIF")


def _read_sites(path: Path) -> Sites:
    """:func:`parse_cif` of a file, errors naming it."""
    if not path.is_file():
        raise StructureError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise StructureError(f"{path}: cannot read ({exc})") from None
    try:
        return parse_cif(text)
    except StructureError as exc:
        raise StructureError(f"{path}: {str(exc).replace('CIF: ', '', 1)}") from None


def read_cif(path: str | Path):
    """The (first) structure of a CIF file as a pymatgen ``Structure``, read by :func:`parse_cif`.

    One site per CIF site (a disordered site has several species), lattice of
    :func:`lattice_from_parameters`.

    Raises
    ------
    StructureError
        Naming the file and the problem (missing, unreadable, malformed, no atoms, unknown element).
    """
    from pymatgen.core import Element, Lattice, Structure

    sites = _read_sites(Path(path))
    species = [{Element.from_Z(z): o for z, o in s} for s in sites.species]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure(Lattice(sites.lattice), species, sites.positions)


def write_cif(path: str | Path, crystal: Crystal) -> Path:
    """Write ``crystal`` as a P1 CIF (pymatgen ``CifWriter``; one site per scatterer, with its occupancy),
    atomically. Returns the path written."""
    from pymatgen.core import Element, Lattice, Structure
    from pymatgen.io.cif import CifWriter

    from synthxrd.files import write_text

    species = [int(z) if o == 1.0 else {Element.from_Z(int(z)): float(o)}
               for z, o in zip(crystal.numbers, crystal.occupancies)]
    structure = Structure(Lattice(crystal.lattice), species, crystal.frac_coords)
    with warnings.catch_warnings():  # noble gases: pymatgen warns that it has no electronegativity to sort by
        warnings.filterwarnings("ignore", message="No Pauling electronegativity", category=UserWarning)
        text = str(CifWriter(structure))
    return write_text(path, text)


def to_crystal(structure: StructureLike, *, source: str | None = None) -> Crystal:
    """Convert a pymatgen ``Structure``, ASE ``Atoms``, CIF path or :class:`Crystal` to a :class:`Crystal`.

    Partially occupied sites give one scatterer per species, with its occupancy (as pymatgen); a CIF
    is read by :func:`parse_cif`.
    """
    if isinstance(structure, Crystal):
        return structure
    if isinstance(structure, (str, Path)):
        return _read_sites(Path(structure)).to_crystal()
    label = source or type(structure).__name__
    if hasattr(structure, "get_scaled_positions") and hasattr(structure, "cell"):  # ASE Atoms
        symbols = structure.get_chemical_symbols()
        numbers = np.array([element_z(s, source=label) for s in symbols], np.int64)
        frac = np.asarray(structure.get_scaled_positions(wrap=False), np.float64)
        occ = np.ones(len(numbers))
        lattice = np.asarray(structure.cell[:], np.float64)
    elif hasattr(structure, "lattice") and hasattr(structure, "sites"):  # pymatgen Structure
        rows = []
        for site in structure.sites:
            for species, occupancy in site.species.items():
                symbol = getattr(species, "symbol", str(species))
                rows.append((element_z(symbol, source=label), occupancy, site.frac_coords))
        numbers = np.array([r[0] for r in rows], np.int64)
        occ = np.array([r[1] for r in rows], np.float64)
        frac = np.array([r[2] for r in rows], np.float64).reshape(-1, 3)
        lattice = np.asarray(structure.lattice.matrix, np.float64)
    else:
        raise StructureError(
            f"{label}: cannot use an object of type {type(structure).__name__} as a structure "
            "(expected a pymatgen Structure, an ASE Atoms, a CIF path or a synthxrd Crystal)"
        )
    if len(numbers) == 0:
        raise StructureError(f"{label}: the structure has no atoms")
    try:
        return Crystal(lattice, frac, numbers, occ)
    except StructureError as exc:
        raise StructureError(str(exc).replace("crystal:", f"{label}:", 1)) from None


def reduced_formula(crystal: Crystal) -> str:
    """pymatgen's ``Composition.reduced_formula`` of a crystal's scatterers (occupancies summed)."""
    from pymatgen.core import Composition, Element

    counts: dict[Element, float] = {}
    for z, occupancy in zip(crystal.numbers.tolist(), crystal.occupancies.tolist()):
        element = Element.from_Z(int(z))
        counts[element] = counts.get(element, 0.0) + occupancy
    return Composition(counts).reduced_formula
