"""Per-space-group statistics of a crystal-structure collection (the generator's input).

A collection of CIFs (a folder or a tar archive) is analysed structure by structure with spglib: space
group, conventional standard cell, Wyckoff letter and species of every symmetry-distinct site, atomic
volume and denseness factor. The raw per-structure records are stored in one ``.npz`` file (no
pickles: ``numpy.load(path, allow_pickle=False)`` reads it) together with a JSON metadata string; the
probability tables the generator samples from are derived from the records when asked for, so that
every number can be traced back to the structures that produced it.

Per structure (see :class:`StructureRecord`):

1. The cell is read from the CIF. P1 CIFs with full occupancies (e.g. the Materials Project files,
   written by pymatgen) go through a light line parser; any other CIF (symmetry operations, partial
   occupancies, quoted values, several data blocks, ...) falls back to pymatgen's ``CifParser``.
2. ``spglib.get_symmetry_dataset(cell, symprec)`` (default angle tolerance). Sites with the same
   species (and occupancies) get the same spglib type; a partially occupied site is one type per
   distinct species-occupancy combination.
3. The conventional standard cell is spglib's ``std_lattice``/``std_types``; every atom of it is
   mapped to its orbit (``equivalent_atoms``) and Wyckoff letter (``wyckoffs``, spglib's default
   setting, the same letters as :mod:`synthxrd.wyckoff`) through ``std_mapping_to_primitive`` and
   ``mapping_to_primitive``. The multiplicity of an orbit is its number of atoms in the conventional
   cell; it is checked against the Wyckoff table.
4. ``V_atoms = sum over atoms of the conventional cell of occ * (4/3) pi r^3`` with
   ``r = (r_covalent + r_vdW) / 2`` (see :func:`atomic_radii`), and the denseness factor
   ``f = V / V_atoms`` with ``V`` the conventional-cell volume.

Derived tables (methods of :class:`Statistics`), per space group ``sg``:

- ``n_elements(sg)``: number of distinct elements per structure;
- ``elements(sg)``: for each element, the number of structures that contain it (normalised);
- ``repetitions(sg)``: number of asymmetric-unit sites occupied by an element, one value per
  (structure, element) pair;
- ``wyckoff(sg)``: number of asymmetric-unit sites on each Wyckoff letter (each site counted once,
  whatever its species);
- ``asymmetric_sites(sg)``: number of asymmetric-unit sites per structure;
- ``lattice_samples(system)``, ``density_samples()``: samples for the generator's KDEs.

Space groups with few or no structures: every per-group table takes ``pooled=`` —
``"none"`` (default, only this group; :class:`~synthxrd.errors.DataError` if it has no structure),
``"crystal_system"``, ``"all"`` or ``"auto"`` (this group if it has at least ``min_count`` structures,
else its crystal system if that has any, else all structures). Wyckoff letters cannot be pooled over
groups: ``wyckoff(sg, pooled="auto")`` of a group without structures is uniform over its positions.

References
----------
.. [1] H. Schopmans, P. Reiser, P. Friederich, "Neural networks trained on synthetically generated
   crystals can extract structural information from ICSD powder X-ray diffractograms",
   Digital Discovery 2, 1414 (2023), doi:10.1039/D3DD00071K.
.. [2] A. Togo, K. Shinohara, I. Tanaka, "Spglib: a software library for crystal symmetry search",
   Sci. Technol. Adv. Mater. Meth. 4, 2384822 (2024), doi:10.1080/27660400.2024.2384822.
.. [3] B. Cordero et al., "Covalent radii revisited", Dalton Trans. 2008, 2832,
   doi:10.1039/B801115J.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import sys
import tarfile
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property, lru_cache
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

from synthxrd.errors import ConfigError, DataError, StructureError
from synthxrd.pool import Outcome, chunked, imap_bounded, outcomes

if TYPE_CHECKING:
    from synthxrd.split import Split

__all__ = [
    "FORMAT_VERSION",
    "DEFAULT_SYMPREC",
    "REPRESENTED_MIN_COUNT",
    "CRYSTAL_SYSTEMS",
    "StructureRecord",
    "Statistics",
    "atomic_radii",
    "atomic_volumes",
    "crystal_system_of",
    "analyze",
    "analyze_cif",
    "parse_cif",
    "analyze_sites",
    "map_cifs",
    "iter_cif_texts",
    "compute_records",
    "compute",
    "default_workers",
]

FloatArray: TypeAlias = NDArray[np.float64]
IntArray: TypeAlias = NDArray[np.int64]

#: Layout of the ``.npz`` file; :meth:`Statistics.load` refuses any other.
FORMAT_VERSION = 1
#: spglib distance tolerance in Å; 0.1 is what the ICSD-style analyses (and the mp_experimental
#: index) use: DFT-relaxed or refined structures are slightly off their ideal positions.
DEFAULT_SYMPREC = 0.1
#: A space group with at least this many structures is "represented" (a class of the network).
REPRESENTED_MIN_COUNT = 50
#: Largest atomic number with radii (and X-ray scattering coefficients in synthxrd): Cf.
Z_MAX = 98
#: Shipped statistics, relative to the package's ``resources`` folder.
DEFAULT_RESOURCE = ("statistics", "default.npz")
#: Structures per task sent to a worker process (amortises inter-process overhead).
CHUNK_SIZE = 64
#: Per-site occupancy sums above 1 + this mean overlapping atoms (a broken cell), not disorder.
_OCCUPANCY_TOL = 1e-3
#: Occupancies are rounded to this many digits to decide whether two sites have the same species.
_OCCUPANCY_DIGITS = 4

#: Crystal systems and their space-group number ranges (ITA).
CRYSTAL_SYSTEMS: Mapping[str, tuple[int, int]] = MappingProxyType({
    "triclinic": (1, 2),
    "monoclinic": (3, 15),
    "orthorhombic": (16, 74),
    "tetragonal": (75, 142),
    "trigonal": (143, 167),
    "hexagonal": (168, 194),
    "cubic": (195, 230),
})
POOLING = ("none", "crystal_system", "all", "auto")

_ARRAYS = ("ids", "spacegroups", "lattices", "volumes", "n_atoms", "v_atoms", "site_offsets",
           "site_orbit", "site_wyckoff", "site_multiplicity", "site_z", "site_occupancy", "radii")


# --------------------------------------------------------------------------------------------------
# Radii and crystal systems


@lru_cache(maxsize=1)
def atomic_radii() -> FloatArray:
    """Mean atomic radius ``r = (r_covalent + r_vdW) / 2`` in Å, indexed by atomic number.

    Returns
    -------
    numpy.ndarray
        (99,) float64, read-only; entry ``Z`` for Z = 1 (H) .. 98 (Cf), entry 0 is NaN.

    Notes
    -----
    Covalent radii: ``ase.data.covalent_radii`` (Cordero et al. 2008 [3]_; Bk and Cf are not in that
    paper and carry ASE's placeholder 2.0 Å). Van der Waals radii: pymatgen
    ``Element.van_der_waals_radius`` (CRC Handbook, 91st ed.; Bondi and later). The same choice of
    ``(covalent + vdW) / 2`` as the reference implementation of Schopmans et al.; the table actually
    used is also stored in every statistics file (``Statistics.radii``).
    """
    from ase.data import covalent_radii
    from pymatgen.core.periodic_table import Element

    radii = np.full(Z_MAX + 1, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for z in range(1, Z_MAX + 1):
            radii[z] = 0.5 * (float(covalent_radii[z]) + float(Element.from_Z(z).van_der_waals_radius))
    radii.setflags(write=False)
    return radii


def atomic_volumes(radii: FloatArray | None = None) -> FloatArray:
    """Sphere volumes ``(4/3) pi r^3`` in Å^3 indexed by atomic number (default radii: :func:`atomic_radii`)."""
    r = atomic_radii() if radii is None else np.asarray(radii, np.float64)
    return 4.0 / 3.0 * np.pi * r**3


def _crystal_system_table() -> np.ndarray:
    table = np.empty(231, dtype=object)
    table[0] = ""
    for name, (lo, hi) in CRYSTAL_SYSTEMS.items():
        table[lo:hi + 1] = name
    return table


_SYSTEM_OF_SG = tuple(_crystal_system_table())  # immutable lookup, index = SG number


def crystal_system_of(spacegroup: int) -> str:
    """Crystal system (triclinic .. cubic) of space group ``spacegroup`` (1..230)."""
    if not isinstance(spacegroup, (int, np.integer)) or not 1 <= int(spacegroup) <= 230:
        raise ConfigError(f"space group number must be an integer 1..230, got {spacegroup!r}")
    return _SYSTEM_OF_SG[int(spacegroup)]


# --------------------------------------------------------------------------------------------------
# Per-structure analysis


@dataclass(frozen=True, eq=False)
class StructureRecord:
    """What :func:`analyze` keeps of one structure.

    Site arrays have one row per (asymmetric-unit site, species): an ordered site is one row, a
    site shared by two elements is two rows with the same ``site_orbit``.

    Attributes
    ----------
    id : str
        Identifier, the CIF file stem (e.g. ``'mp-1234'``).
    spacegroup : int
        ITA number found by spglib (1..230).
    lattice : numpy.ndarray
        (6,) float64: a, b, c (Å) and alpha, beta, gamma (degrees) of the conventional standard cell.
    volume : float
        Conventional-cell volume, Å^3.
    n_atoms : int
        Sites in the conventional cell (a partially occupied site counts once).
    v_atoms : float
        ``sum occ (4/3) pi r^3`` over the conventional cell, Å^3.
    site_orbit : numpy.ndarray
        (m,) int32, index 0..n_sites-1 of the asymmetric-unit site of each row (non-decreasing).
    site_wyckoff : numpy.ndarray
        (m,) ``<U1`` Wyckoff letter.
    site_multiplicity : numpy.ndarray
        (m,) int32, number of the site's atoms in the conventional cell.
    site_z : numpy.ndarray
        (m,) int16 atomic number.
    site_occupancy : numpy.ndarray
        (m,) float64 in (0, 1].
    """

    id: str
    spacegroup: int
    lattice: FloatArray
    volume: float
    n_atoms: int
    v_atoms: float
    site_orbit: np.ndarray
    site_wyckoff: np.ndarray
    site_multiplicity: np.ndarray
    site_z: np.ndarray
    site_occupancy: np.ndarray

    @property
    def n_sites(self) -> int:
        """Number of asymmetric-unit (symmetry-distinct) sites."""
        return int(self.site_orbit[-1]) + 1 if len(self.site_orbit) else 0

    @property
    def denseness(self) -> float:
        """Denseness factor ``V / V_atoms``."""
        return self.volume / self.v_atoms


def _lattice_parameters(matrix: FloatArray) -> FloatArray:
    """(a, b, c, alpha, beta, gamma) of a lattice with rows a, b, c."""
    lengths = np.linalg.norm(matrix, axis=1)
    a, b, c = matrix

    def angle(u, v, nu, nv):
        return math.degrees(math.acos(max(-1.0, min(1.0, float(u @ v) / (nu * nv)))))

    return np.array([*lengths, angle(b, c, lengths[1], lengths[2]), angle(a, c, lengths[0], lengths[2]),
                     angle(a, b, lengths[0], lengths[1])])


def _lattice_from_parameters(a, b, c, alpha, beta, gamma) -> FloatArray:
    """Lattice rows from cell parameters (a along x, b in the xy plane)."""
    ca, cb, cg = (math.cos(math.radians(t)) for t in (alpha, beta, gamma))
    sg = math.sin(math.radians(gamma))
    cy = (ca - cb * cg) / sg
    cz2 = 1.0 - cb * cb - cy * cy
    if cz2 <= 0 or min(a, b, c) <= 0:
        raise StructureError(f"impossible cell parameters {a, b, c, alpha, beta, gamma}")
    return np.array([[a, 0.0, 0.0], [b * cg, b * sg, 0.0], [c * cb, c * cy, c * math.sqrt(cz2)]])


def spglib_dataset(lattice, positions, types, symprec: float, angle_tolerance: float):
    """spglib's symmetry dataset of a cell; :class:`StructureError` where spglib fails or finds none."""
    import spglib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # spglib 2.x deprecation chatter about its error handling
        try:
            dataset = spglib.get_symmetry_dataset((lattice, positions, types), symprec=symprec,
                                                  angle_tolerance=angle_tolerance)
        except Exception as exc:  # SpglibError once the new error handling is the default
            raise StructureError(f"spglib: {exc}") from None
        if dataset is None:
            raise StructureError(f"spglib found no symmetry ({spglib.get_error_message()})")
    return dataset


def analyze_sites(identifier: str, lattice: FloatArray, positions: FloatArray,
                  species: Sequence[tuple[tuple[int, float], ...]], *, symprec: float = DEFAULT_SYMPREC,
                  angle_tolerance: float = -1.0, volumes: FloatArray | None = None) -> StructureRecord:
    """Core of :func:`analyze`: one position and one species tuple ((Z, occ), ...) per site
    (as :func:`parse_cif` returns them)."""
    from synthxrd.wyckoff import space_group

    volumes = atomic_volumes() if volumes is None else volumes
    if len(species) == 0:
        raise StructureError("the structure has no atoms")
    kinds: dict[tuple, int] = {}
    types = np.array([kinds.setdefault(sp, len(kinds)) for sp in species], np.int32)
    kind_list = list(kinds)
    for sp in kind_list:
        if sum(o for _, o in sp) > 1 + _OCCUPANCY_TOL:
            raise StructureError(f"site occupancies sum to {sum(o for _, o in sp):.4g} > 1 "
                                 "(overlapping atoms?)")
        for z, _ in sp:
            if not 1 <= z <= Z_MAX or not np.isfinite(volumes[z]):
                raise StructureError(f"element Z={z} has no atomic radius (covered: H..Cf, Z = 1-{Z_MAX})")
    ds = spglib_dataset(lattice, positions, types, symprec, angle_tolerance)

    n_input = len(types)
    mapping = np.asarray(ds.mapping_to_primitive)
    first_input = np.full(mapping.max() + 1, -1, np.int64)
    first_input[mapping[::-1]] = np.arange(n_input)[::-1]  # first input atom of each primitive atom
    std_rep = first_input[np.asarray(ds.std_mapping_to_primitive)]
    if np.any(std_rep < 0):
        raise StructureError("spglib: conventional cell maps to an unknown primitive atom")
    equivalent = np.asarray(ds.crystallographic_orbits)  # orbits of the idealised structure
    orbit_of_std = equivalent[std_rep]
    reps, multiplicities = np.unique(orbit_of_std, return_counts=True)
    std_types = np.asarray(ds.std_types)
    if np.any(std_types != types[std_rep]):
        raise StructureError("spglib: conventional-cell types differ from the input types")

    sg = space_group(int(ds.number))
    wyckoffs = ds.wyckoffs
    # canonical site order, independent of the order of the atoms in the file: Wyckoff letter
    # ('a' first, general position last), then species
    rank = {w.letter: k for k, w in enumerate(reversed(sg.wyckoff_positions))}
    order = sorted(range(len(reps)), key=lambda k: (rank.get(wyckoffs[reps[k]], len(rank)),
                                                     kind_list[types[reps[k]]]))
    orbit, letters, mult, zs, occs = [], [], [], [], []
    v_atoms = 0.0
    for k, (rep, m) in enumerate((int(reps[j]), int(multiplicities[j])) for j in order):
        letter = wyckoffs[rep]
        expected = sg.position(letter).multiplicity
        if expected != m:
            raise StructureError(f"spglib: site {rep} on Wyckoff {m}{letter} of space group {sg.number}, "
                                 f"whose multiplicity is {expected}")
        for z, occ in kind_list[types[rep]]:
            orbit.append(k)
            letters.append(letter)
            mult.append(m)
            zs.append(z)
            occs.append(occ)
            v_atoms += m * occ * volumes[z]
    std_lattice = np.asarray(ds.std_lattice, np.float64)
    return StructureRecord(
        id=identifier,
        spacegroup=int(ds.number),
        lattice=_lattice_parameters(std_lattice),
        volume=float(abs(np.linalg.det(std_lattice))),
        n_atoms=int(len(std_types)),
        v_atoms=float(v_atoms),
        site_orbit=np.array(orbit, np.int32),
        site_wyckoff=np.array(letters, "<U1"),
        site_multiplicity=np.array(mult, np.int32),
        site_z=np.array(zs, np.int16),
        site_occupancy=np.array(occs, np.float64),
    )


def _sites_from_rows(positions: FloatArray, numbers: np.ndarray, occupancies: FloatArray):
    """Group scatterer rows (one per species) that share a position into sites."""
    unique, inverse = np.unique(np.round(np.asarray(positions, np.float64), 10), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    species: list[list[tuple[int, float]]] = [[] for _ in range(len(unique))]
    for row, site in enumerate(inverse.tolist()):
        species[site].append((int(numbers[row]), round(float(occupancies[row]), _OCCUPANCY_DIGITS)))
    return unique, [tuple(sorted(s)) for s in species]


def analyze(structure: Any, *, id: str = "", symprec: float = DEFAULT_SYMPREC,
            angle_tolerance: float = -1.0) -> StructureRecord:
    """Analyse one structure (pymatgen ``Structure``, ASE ``Atoms``, CIF path or ``Crystal``).

    Parameters
    ----------
    structure : StructureLike
        Anything :func:`synthxrd.structure.to_crystal` accepts. Species rows at the same position
        form one (partially occupied) site.
    id : str
        Identifier stored in the record.
    symprec, angle_tolerance : float
        spglib tolerances (Å, degrees; -1 is spglib's default angle handling).

    Raises
    ------
    StructureError
        If the structure cannot be read or spglib fails.
    """
    from synthxrd.structure import to_crystal

    crystal = to_crystal(structure)
    positions, species = _sites_from_rows(crystal.frac_coords, crystal.numbers, crystal.occupancies)
    return analyze_sites(id, crystal.lattice, positions, species, symprec=symprec,
                          angle_tolerance=angle_tolerance, volumes=atomic_volumes())


# --------------------------------------------------------------------------------------------------
# CIF reading


@lru_cache(maxsize=1)
def _symbol_to_z() -> dict[str, int]:
    from ase.data import atomic_numbers

    return {s: z for s, z in atomic_numbers.items() if 1 <= z <= Z_MAX and s != "X"}


_ELEMENT_RE = re.compile(r"^([A-Z][a-z]?)")
_NUMBER_RE = re.compile(r"\(\d+\)$")
_IDENTITY = {"x,y,z", "+x,+y,+z"}
_CELL_TAGS = ("_cell_length_a", "_cell_length_b", "_cell_length_c",
              "_cell_angle_alpha", "_cell_angle_beta", "_cell_angle_gamma")
_P1_SYMBOLS = {"p1", "p 1"}


def _number(token: str) -> float:
    return float(_NUMBER_RE.sub("", token))


def _parse_simple_p1(text: str):
    """Light reader for P1 CIFs with fully occupied sites; ``None`` means "use pymatgen".

    Returns ``(lattice, positions, species)`` or ``None`` when the file has anything this reader
    does not handle (symmetry operations other than the identity, partial occupancies, quotes or
    text fields in the atom loop, several data blocks, missing cell parameters).
    """
    lines = text.splitlines()
    n = len(lines)
    i = 0
    n_data = 0
    scalars: dict[str, str] = {}
    atom_loop: tuple[list[str], list[str]] | None = None
    symops: list[str] | None = None
    while i < n:
        s = lines[i].strip()
        if not s or s[0] == "#":
            i += 1
            continue
        low = s.lower()
        if low.startswith("data_"):
            n_data += 1
            if n_data > 1:
                return None
            i += 1
        elif low.startswith("loop_"):
            tags = []
            i += 1
            while i < n:
                t = lines[i].strip()
                if t.startswith("_"):
                    tags.append(t.split()[0].lower())
                    i += 1
                elif not t or t[0] == "#":
                    i += 1
                else:
                    break
            rows = []
            skip = bool(tags) and tags[0].startswith("_geom_")
            while i < n:
                t = lines[i].strip()
                if t and t[0] != "#":
                    if t[0] == "_" or t[:5].lower() in ("loop_", "data_"):
                        break
                    if t[0] == ";":
                        return None  # multi-line text field inside a loop
                    if not skip:
                        rows.append(t)
                i += 1
            if "_atom_site_fract_x" in tags:
                if atom_loop is not None:
                    return None
                atom_loop = (tags, rows)
            elif "_symmetry_equiv_pos_as_xyz" in tags or "_space_group_symop_operation_xyz" in tags:
                symops = rows
        elif s[0] == "_":
            parts = s.split(None, 1)
            if len(parts) == 1:
                # value on the following line(s), possibly a ';' text field: skip it
                i += 1
                while i < n and not lines[i].strip():
                    i += 1
                if i < n and lines[i].startswith(";"):
                    i += 1
                    while i < n and not lines[i].startswith(";"):
                        i += 1
                    i += 1
                elif i < n:
                    scalars[parts[0].lower()] = lines[i].strip()
                    i += 1
                continue
            scalars[parts[0].lower()] = parts[1].strip()
            i += 1
        elif s[0] == ";":
            i += 1
            while i < n and not lines[i].startswith(";"):
                i += 1
            i += 1
        else:
            return None
    if atom_loop is None:
        return None
    # symmetry: the identity only
    if symops is not None:
        for row in symops:
            op = row.replace("'", "").replace('"', "").replace(" ", "").lower()
            if op not in _IDENTITY and not (op[:1].isdigit() and op.lstrip("0123456789") in _IDENTITY):
                return None
    else:
        hm = (scalars.get("_symmetry_space_group_name_h-m") or scalars.get("_space_group_name_h-m_alt") or "")
        if hm.strip("'\" ").lower() not in _P1_SYMBOLS:
            return None
    try:
        cell = [_number(scalars[tag]) for tag in _CELL_TAGS]
    except (KeyError, ValueError):
        return None
    tags, rows = atom_loop
    if any("'" in r or '"' in r for r in rows):
        return None
    tokens = " ".join(rows).split()
    ntag = len(tags)
    if ntag == 0 or len(tokens) % ntag:
        return None
    col = {t: k for k, t in enumerate(tags)}
    try:
        ix, iy, iz = col["_atom_site_fract_x"], col["_atom_site_fract_y"], col["_atom_site_fract_z"]
    except KeyError:
        return None
    isym = col.get("_atom_site_type_symbol", col.get("_atom_site_label"))
    iocc = col.get("_atom_site_occupancy")
    if isym is None:
        return None
    table = _symbol_to_z()
    positions = []
    species = []
    for start in range(0, len(tokens), ntag):
        row = tokens[start:start + ntag]
        m = _ELEMENT_RE.match(row[isym])
        if m is None or m.group(1) not in table:
            return None
        try:
            if iocc is not None and abs(_number(row[iocc]) - 1.0) > 1e-6:
                return None
            positions.append((_number(row[ix]), _number(row[iy]), _number(row[iz])))
        except ValueError:
            return None
        species.append(((table[m.group(1)], 1.0),))
    if not positions:
        return None
    lattice = _lattice_from_parameters(*cell)
    return lattice, np.array(positions), species


def _read_cif_pymatgen(text: str):
    from pymatgen.io.cif import CifParser

    from synthxrd.structure import to_crystal

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structures = CifParser.from_str(text).parse_structures(primitive=False)
    except Exception as exc:  # pymatgen raises many types on malformed input
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StructureError(f"malformed CIF ({reason})") from None
    if not structures:
        raise StructureError("no structure could be read from this CIF")
    crystal = to_crystal(structures[0])
    positions, species = _sites_from_rows(crystal.frac_coords, crystal.numbers, crystal.occupancies)
    return crystal.lattice, positions, species


def parse_cif(text: str):
    """The (first) structure of a CIF given as text: ``(lattice, positions, species)``.

    ``lattice`` (3, 3) rows a, b, c in Å; ``positions`` (n, 3) fractional; ``species`` one tuple
    ``((Z, occupancy), ...)`` per site. P1 files with full occupancies take the light line parser,
    anything else pymatgen's ``CifParser``.

    Raises
    ------
    StructureError
        If the CIF cannot be read (message without the file name).
    """
    parsed = _parse_simple_p1(text)
    return _read_cif_pymatgen(text) if parsed is None else parsed


def analyze_cif(text: str, *, id: str = "", symprec: float = DEFAULT_SYMPREC,
                angle_tolerance: float = -1.0, volumes: FloatArray | None = None) -> StructureRecord:
    """Analyse the (first) structure of a CIF given as text; see the module docstring.

    Raises
    ------
    StructureError
        If the CIF cannot be read or its symmetry cannot be analysed (message without the id).
    """
    lattice, positions, species = parse_cif(text)
    return analyze_sites(id, lattice, positions, species, symprec=symprec, angle_tolerance=angle_tolerance,
                          volumes=atomic_volumes() if volumes is None else volumes)


# --------------------------------------------------------------------------------------------------
# Sources and parallel computation

_BOND_LOOP_RE = re.compile(r"^[ \t]*loop_[ \t]*\r?\n[ \t]*_geom_", re.M | re.I)
_AFTER_BOND_RE = re.compile(r"^[ \t]*(?:data_|loop_|_(?!geom_))", re.M | re.I)


def _strip_trailing_bond_loop(text: str) -> str:
    """Cut a ``_geom_*`` loop that ends the file (pymatgen/MP files: most of their bytes)."""
    m = _BOND_LOOP_RE.search(text)
    if m is None or _AFTER_BOND_RE.search(text, m.end()) is not None:
        return text
    return text[: m.start()]


def _is_tar(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2"))


def iter_cif_texts(source: str | Path, *, ids: Iterable[str] | None = None) -> Iterator[tuple[str, str]]:
    """Yield ``(id, cif_text)`` for every ``*.cif`` in a folder (recursively, sorted), a tar archive
    (streamed, member order) or a single CIF file; ``id`` is the file stem.

    Parameters
    ----------
    source : path
    ids : iterable of str, optional
        Only these ids (the others are not even decoded).

    Raises
    ------
    DataError
        If ``source`` does not exist, is not a folder/tar/CIF, or the archive is corrupt.
    """
    path = Path(source)
    wanted = None if ids is None else set(ids)
    if path.is_dir():
        for f in sorted(path.rglob("*"), key=lambda p: str(p.relative_to(path))):
            if f.is_file() and f.suffix.lower() == ".cif" and (wanted is None or f.stem in wanted):
                yield f.stem, _strip_trailing_bond_loop(f.read_text(errors="replace"))
    elif path.is_file() and _is_tar(path):
        try:
            with tarfile.open(path, "r|*") as tf:
                for member in tf:
                    name = Path(member.name)
                    if not member.isfile() or name.suffix.lower() != ".cif":
                        continue
                    if wanted is not None and name.stem not in wanted:
                        continue
                    handle = tf.extractfile(member)
                    if handle is None:
                        continue
                    yield name.stem, _strip_trailing_bond_loop(handle.read().decode("utf-8", errors="replace"))
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DataError(f"{path}: cannot read the archive ({exc})") from None
    elif path.is_file() and path.suffix.lower() == ".cif":
        if wanted is None or path.stem in wanted:
            yield path.stem, _strip_trailing_bond_loop(path.read_text(errors="replace"))
    elif not path.exists():
        raise DataError(f"{path}: no such file or folder")
    else:
        raise DataError(f"{path}: not a folder of CIFs, a CIF or a tar archive "
                        "(.tar, .tar.gz, .tgz, .tar.xz, .tar.bz2)")




def _analyze_one(identifier: str, text: str, **options) -> StructureRecord:
    return analyze_cif(text, id=identifier, **options)


def default_workers() -> int:
    """CPU cores available to this process (:func:`synthxrd.config.available_cores`)."""
    from synthxrd.config import available_cores

    return available_cores()


def map_cifs(source: str | Path, analyse: Callable[[str, str], Any], *, workers: int | None = None,
             ids: Iterable[str] | None = None, progress: bool = True, desc: str = "stats") -> list[Outcome]:
    """``analyse(id, cif_text)`` of every CIF of ``source`` (see :func:`iter_cif_texts`), in parallel.

    The main process streams the files and sends chunks of :data:`CHUNK_SIZE` CIF texts to
    ``workers`` processes (``workers=1``: everything in this process); at most ``4 * workers`` chunks
    are in flight, so memory stays bounded for any collection. ``analyse`` must be picklable (a
    module-level function or a ``functools.partial`` of one). Returns ``(id, result, None)`` per CIF,
    or ``(id, None, reason)`` where ``analyse`` raised (never fatal), in completion order.
    """
    from functools import partial

    work = partial(outcomes, analyse=analyse)
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    texts = iter_cif_texts(source, ids=ids)
    total = None
    path = Path(source)
    if path.is_dir():
        total = sum(1 for f in path.rglob("*.cif") if f.is_file())
    elif ids is not None:
        total = len(set(ids))
    bar = _progress(total, progress, desc)
    results: list[Any] = []
    try:
        for out in imap_bounded(work, ((chunk,) for chunk in chunked(texts, CHUNK_SIZE)), workers=workers):
            results.extend(out)
            bar.update(len(out))
    finally:
        bar.close()
    return results


def compute_records(source: str | Path, *, symprec: float = DEFAULT_SYMPREC, angle_tolerance: float = -1.0,
                    workers: int | None = None, ids: Iterable[str] | None = None,
                    progress: bool = True) -> tuple[list[StructureRecord], list[tuple[str, str]]]:
    """Analyse every CIF of ``source`` (see :func:`iter_cif_texts`), in parallel (:func:`map_cifs`).

    A CIF that cannot be read or analysed becomes a failure ``(id, reason)``, never an exception.

    Returns
    -------
    records : list of StructureRecord, sorted by id
    failures : list of (id, reason), sorted by id
    """
    from functools import partial

    _check_symprec(symprec)
    analyse = partial(_analyze_one, symprec=symprec, angle_tolerance=angle_tolerance, volumes=atomic_volumes())
    results = map_cifs(source, analyse, workers=workers, ids=ids, progress=progress)
    results.sort(key=lambda r: r[0])
    records = [r for _, r, _ in results if r is not None]
    failures = [(i, reason) for i, r, reason in results if r is None]
    return records, failures


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int | None, enabled: bool, desc: str = "stats"):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="CIF", desc=desc, file=sys.stderr, mininterval=1.0)


def _check_symprec(symprec: float) -> None:
    if not (isinstance(symprec, (int, float)) and math.isfinite(symprec) and symprec > 0):
        raise ConfigError(f"symprec must be a positive number (Å), got {symprec!r}")


def compute(source: str | Path, *, symprec: float = DEFAULT_SYMPREC, workers: int | None = None,
            ids: Iterable[str] | None = None, progress: bool = True,
            metadata: Mapping[str, Any] | None = None) -> Statistics:
    """Statistics of every CIF in ``source``: :func:`compute_records` then :meth:`Statistics.from_records`."""
    start = time.perf_counter()
    records, failures = compute_records(source, symprec=symprec, workers=workers, ids=ids, progress=progress)
    extra = {"wall_time_s": round(time.perf_counter() - start, 2)}
    extra.update(metadata or {})
    return Statistics.from_records(records, source=str(source), symprec=symprec, failures=failures,
                                   metadata=extra)


# --------------------------------------------------------------------------------------------------
# The statistics container


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


def _package_version() -> str:
    from synthxrd import __version__

    return __version__


@dataclass(frozen=True, eq=False)
class Statistics:
    """Raw per-structure records of a collection and the tables derived from them.

    Build with :meth:`from_records` or :func:`compute`, read with :meth:`load`, write with
    :meth:`save`. Arrays are read-only; derived tables are computed on first use and cached in the
    instance.

    Attributes
    ----------
    ids : numpy.ndarray
        (n,) ``<U`` structure ids, sorted.
    spacegroups : numpy.ndarray
        (n,) int64 ITA numbers.
    lattices : numpy.ndarray
        (n, 6) float64 conventional-cell a, b, c (Å), alpha, beta, gamma (degrees).
    volumes : numpy.ndarray
        (n,) float64 conventional-cell volumes, Å^3.
    n_atoms : numpy.ndarray
        (n,) int64 sites in the conventional cell.
    v_atoms : numpy.ndarray
        (n,) float64 atomic-volume sums, Å^3.
    site_offsets : numpy.ndarray
        (n + 1,) int64; structure ``i`` owns site rows ``site_offsets[i]:site_offsets[i + 1]``.
    site_orbit, site_wyckoff, site_multiplicity, site_z, site_occupancy : numpy.ndarray
        (m,) site rows as in :class:`StructureRecord`.
    radii : numpy.ndarray
        (99,) float64 radii (Å) used for ``v_atoms`` (:func:`atomic_radii` at creation time).
    metadata : Mapping
        Read-only: ``format_version``, ``source``, ``symprec``, ``angle_tolerance``,
        ``package_version``, ``spglib_version``, ``created``, ``n_structures``, ``n_failures``,
        ``failures`` (list of ``{"id", "reason"}``), ``split`` (``None`` or file, part, counts), ...
    """

    ids: np.ndarray
    spacegroups: np.ndarray
    lattices: np.ndarray
    volumes: np.ndarray
    n_atoms: np.ndarray
    v_atoms: np.ndarray
    site_offsets: np.ndarray
    site_orbit: np.ndarray
    site_wyckoff: np.ndarray
    site_multiplicity: np.ndarray
    site_z: np.ndarray
    site_occupancy: np.ndarray
    radii: np.ndarray
    metadata: Mapping[str, Any]
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.ids)
        m = len(self.site_z)
        shapes = {
            "spacegroups": (n,), "lattices": (n, 6), "volumes": (n,), "n_atoms": (n,), "v_atoms": (n,),
            "site_offsets": (n + 1,), "site_orbit": (m,), "site_wyckoff": (m,), "site_multiplicity": (m,),
            "site_occupancy": (m,), "radii": (Z_MAX + 1,),
        }
        for name, shape in shapes.items():
            if np.shape(getattr(self, name)) != shape:
                raise DataError(f"statistics: {name} has shape {np.shape(getattr(self, name))}, expected {shape}")
        offsets = self.site_offsets
        if offsets[0] != 0 or offsets[-1] != m or np.any(np.diff(offsets) < 1):
            raise DataError("statistics: site_offsets must rise strictly from 0 to the number of site rows")
        if n and (self.spacegroups.min() < 1 or self.spacegroups.max() > 230):
            raise DataError("statistics: space-group numbers outside 1..230")
        for name in _ARRAYS:
            object.__setattr__(self, name, _readonly(getattr(self, name)))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    # ---- construction, files ------------------------------------------------------------------

    @classmethod
    def from_records(cls, records: Iterable[StructureRecord], *, source: str = "", symprec: float = DEFAULT_SYMPREC,
                     angle_tolerance: float = -1.0, failures: Iterable[tuple[str, str]] = (),
                     radii: FloatArray | None = None, metadata: Mapping[str, Any] | None = None) -> Statistics:
        """Pack :class:`StructureRecord` objects (any order; sorted by id here) into statistics.

        Parameters
        ----------
        records : iterable of StructureRecord
        source : str
            Where the structures came from (recorded in the metadata).
        symprec, angle_tolerance : float
            The spglib tolerances the records were made with (recorded).
        failures : iterable of (id, reason)
        radii : (99,) array, optional
            Radii the records' ``v_atoms`` used (default :func:`atomic_radii`).
        metadata : mapping, optional
            Extra JSON-serialisable entries.

        Raises
        ------
        DataError
            If two records share an id.
        """
        import spglib

        recs = sorted(records, key=lambda r: r.id)
        ids = [r.id for r in recs]
        if len(set(ids)) != len(ids):
            dup = next(i for k, i in enumerate(ids) if k and ids[k - 1] == i)
            raise DataError(f"statistics: two structures have the id {dup!r}")
        fails = sorted((str(i), str(r)) for i, r in failures)
        meta = {
            "format_version": FORMAT_VERSION,
            "kind": "synthxrd.statistics",
            "source": str(source),
            "symprec": float(symprec),
            "angle_tolerance": float(angle_tolerance),
            "package_version": _package_version(),
            "spglib_version": getattr(spglib, "__version__", "unknown"),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "n_structures": len(recs),
            "n_failures": len(fails),
            "failures": [{"id": i, "reason": r} for i, r in fails],
            "radii": "r = (covalent + van der Waals) / 2; covalent: ase.data.covalent_radii (Cordero 2008), "
                     "vdW: pymatgen Element.van_der_waals_radius (CRC Handbook)",
            "split": None,
        }
        meta.update(metadata or {})
        sizes = np.array([len(r.site_z) for r in recs], np.int64)
        offsets = np.zeros(len(recs) + 1, np.int64)
        offsets[1:] = np.cumsum(sizes)

        def cat(name: str, dtype) -> np.ndarray:
            return (np.concatenate([getattr(r, name) for r in recs]).astype(dtype) if recs
                    else np.zeros(0, dtype))

        return cls(
            ids=np.array(ids, dtype=str) if ids else np.zeros(0, "<U1"),
            spacegroups=np.array([r.spacegroup for r in recs], np.int64),
            lattices=np.array([r.lattice for r in recs], np.float64).reshape(-1, 6),
            volumes=np.array([r.volume for r in recs], np.float64),
            n_atoms=np.array([r.n_atoms for r in recs], np.int64),
            v_atoms=np.array([r.v_atoms for r in recs], np.float64),
            site_offsets=offsets,
            site_orbit=cat("site_orbit", np.int32),
            site_wyckoff=cat("site_wyckoff", "<U1"),
            site_multiplicity=cat("site_multiplicity", np.int32),
            site_z=cat("site_z", np.int16),
            site_occupancy=cat("site_occupancy", np.float64),
            radii=np.array(atomic_radii() if radii is None else radii, np.float64),
            metadata=meta,
        )

    @classmethod
    def load(cls, path: str | Path | None = None) -> Statistics:
        """Read statistics written by :meth:`save`; ``None``: the statistics shipped in the package.

        The file is read with ``numpy.load(..., allow_pickle=False)``: nothing in it is executed.

        Raises
        ------
        DataError
            If the file is missing, not a statistics file, or of another ``format_version``.
        """
        if path is None:
            resource = files("synthxrd").joinpath("resources", *DEFAULT_RESOURCE)
            label = f"shipped statistics ({'/'.join(DEFAULT_RESOURCE)})"
            try:
                data = resource.read_bytes()
            except OSError as exc:
                raise DataError(f"{label}: cannot read ({exc}); rebuild with "
                                "scripts/build_default_statistics.sh") from None
            return cls._from_npz(io.BytesIO(data), label)
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no such statistics file")
        with open(path, "rb") as fh:
            return cls._from_npz(fh, str(path))

    @classmethod
    def _from_npz(cls, fh, label: str) -> Statistics:
        try:
            with np.load(fh, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"{label}: not a statistics .npz file ({exc})") from None
        if "metadata" not in arrays:
            raise DataError(f"{label}: no 'metadata' entry; not a synthxrd statistics file")
        try:
            meta = json.loads(str(arrays.pop("metadata")))
        except ValueError as exc:
            raise DataError(f"{label}: metadata is not JSON ({exc})") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise DataError(f"{label}: format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}; "
                            "recompute it with `synthxrd stats`")
        missing = [k for k in _ARRAYS if k not in arrays]
        if missing:
            raise DataError(f"{label}: missing arrays {missing}")
        return cls(**{k: arrays[k] for k in _ARRAYS}, metadata=meta)

    def save(self, path: str | Path) -> Path:
        """Write to ``path`` (``.npz``, compressed) atomically: a temporary file, then a rename."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {k: getattr(self, k) for k in _ARRAYS}
        arrays["metadata"] = np.array(json.dumps(dict(self.metadata), sort_keys=True))
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez_compressed(fh, **arrays)
            os.chmod(tmp, 0o644)  # mkstemp creates 0600
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    # ---- metadata ---------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """``format_version`` of the file layout."""
        return int(self.metadata["format_version"])

    @property
    def source(self) -> str:
        return str(self.metadata.get("source", ""))

    @property
    def symprec(self) -> float:
        return float(self.metadata["symprec"])

    @property
    def package_version(self) -> str:
        """synthxrd version that computed the records."""
        return str(self.metadata.get("package_version", ""))

    @property
    def n_structures(self) -> int:
        return len(self.ids)

    @property
    def failures(self) -> list[dict[str, str]]:
        """Structures of the source that could not be analysed: ``{"id", "reason"}``."""
        return list(self.metadata.get("failures", []))

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (f"Statistics(n_structures={self.n_structures}, source={self.source!r}, symprec={self.symprec}, "
                f"split={self.metadata.get('split')!r})")

    # ---- subsets ----------------------------------------------------------------------------

    def subset(self, keep: np.ndarray | Iterable[str], *, metadata: Mapping[str, Any] | None = None) -> Statistics:
        """The statistics of some structures: a boolean mask over ``ids`` or an iterable of ids
        (ids not present are ignored). ``metadata`` entries are added to the copy's metadata."""
        if isinstance(keep, np.ndarray) and keep.dtype == bool:
            keep_arr = keep
        else:
            keep_arr = np.isin(self.ids, np.array([str(k) for k in keep], dtype=str))
        if keep_arr.shape != self.ids.shape:
            raise ConfigError(f"subset mask has shape {keep_arr.shape}, expected {self.ids.shape}")
        rows = np.repeat(keep_arr, np.diff(self.site_offsets))
        sizes = np.diff(self.site_offsets)[keep_arr]
        offsets = np.zeros(len(sizes) + 1, np.int64)
        offsets[1:] = np.cumsum(sizes)
        meta = dict(self.metadata)
        meta.update(metadata or {})
        meta["n_structures"] = int(keep_arr.sum())
        return type(self)(
            ids=self.ids[keep_arr], spacegroups=self.spacegroups[keep_arr], lattices=self.lattices[keep_arr],
            volumes=self.volumes[keep_arr], n_atoms=self.n_atoms[keep_arr], v_atoms=self.v_atoms[keep_arr],
            site_offsets=offsets, site_orbit=self.site_orbit[rows], site_wyckoff=self.site_wyckoff[rows],
            site_multiplicity=self.site_multiplicity[rows], site_z=self.site_z[rows],
            site_occupancy=self.site_occupancy[rows], radii=self.radii, metadata=meta,
        )

    def restrict(self, split: Split | str | Path, part: str = "statistics") -> Statistics:
        """The structures of one part of a prototype split (a :class:`~synthxrd.split.Split` or a
        split CSV path); the split file, part and counts are recorded in ``metadata["split"]``.

        Raises
        ------
        ConfigError
            If ``part`` is not a part of the split.
        """
        from synthxrd.split import PARTS, Split, read_split

        sp = split if isinstance(split, Split) else read_split(split)
        if part not in PARTS:
            raise ConfigError(f"split part must be one of {', '.join(PARTS)}, got {part!r}")
        ids = sp.ids_of(part)
        keep = np.isin(self.ids, ids)
        info = {"file": sp.path or "", "part": part, "sha256": sp.sha256, "n_in_split_part": int(len(ids)),
                "n_kept": int(keep.sum()), **{k: sp.metadata.get(k) for k in ("seed", "test_fraction")}}
        return self.subset(keep, metadata={"split": info})

    # ---- per-structure derived arrays (cached) -------------------------------------------------

    @cached_property
    def _row_structure(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.ids)), np.diff(self.site_offsets))

    @cached_property
    def _orbit_first_row(self) -> np.ndarray:
        """Boolean over site rows: first row of each asymmetric-unit site."""
        s, o = self._row_structure, self.site_orbit
        first = np.ones(len(s), bool)
        first[1:] = (s[1:] != s[:-1]) | (o[1:] != o[:-1])
        return first

    @cached_property
    def n_sites(self) -> np.ndarray:
        """(n,) int64 number of asymmetric-unit sites per structure."""
        return _readonly(np.bincount(self._row_structure[self._orbit_first_row], minlength=len(self.ids)))

    @cached_property
    def _element_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(structure, Z, number of sites with Z) for every distinct (structure, element) pair."""
        keys = self._row_structure.astype(np.int64) * 256 + self.site_z.astype(np.int64)
        uniq, counts = np.unique(keys, return_counts=True)
        return uniq // 256, uniq % 256, counts

    @cached_property
    def n_elements_per_structure(self) -> np.ndarray:
        """(n,) int64 number of distinct elements per structure."""
        return _readonly(np.bincount(self._element_pairs[0], minlength=len(self.ids)))

    @property
    def denseness(self) -> np.ndarray:
        """(n,) float64 denseness factors ``V / V_atoms``."""
        return self.volumes / self.v_atoms

    @cached_property
    def crystal_systems(self) -> np.ndarray:
        """(n,) crystal-system names of the structures."""
        return np.array([_SYSTEM_OF_SG[s] for s in range(231)], dtype="<U12")[self.spacegroups]

    # ---- space groups -----------------------------------------------------------------------

    def spacegroup_counts(self) -> np.ndarray:
        """(231,) int64: number of structures per space group; index = ITA number, index 0 unused (0)."""
        if "sg_counts" not in self._cache:
            self._cache["sg_counts"] = _readonly(np.bincount(self.spacegroups, minlength=231))
        return self._cache["sg_counts"]

    def represented(self, min_count: int = REPRESENTED_MIN_COUNT) -> np.ndarray:
        """Sorted ITA numbers of the space groups with at least ``min_count`` structures."""
        return np.flatnonzero(self.spacegroup_counts() >= max(1, int(min_count))).astype(np.int64)

    def spacegroup_prior(self, spacegroups: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Probabilities of ``spacegroups`` proportional to their structure counts.

        Parameters
        ----------
        spacegroups : sequence of int, optional
            ITA numbers; default :meth:`represented` (the classes).

        Returns
        -------
        numpy.ndarray
            float64 aligned with ``spacegroups``, summing to 1.

        Raises
        ------
        DataError
            If none of the groups has a structure.
        """
        sgs = self.represented() if spacegroups is None else np.asarray(
            [self._check_sg(s) for s in spacegroups], np.int64)
        counts = self.spacegroup_counts()[sgs].astype(np.float64)
        if counts.sum() == 0:
            raise DataError(f"statistics ({self.source}): no structures in space groups {sgs.tolist()}")
        return counts / counts.sum()

    @staticmethod
    def _check_sg(sg: object) -> int:
        if isinstance(sg, (int, np.integer)) and not isinstance(sg, bool) and 1 <= int(sg) <= 230:
            return int(sg)
        raise ConfigError(f"space group number must be an integer 1..230, got {sg!r}")

    def _mask(self, sg: int | None, pooled: str, min_count: int) -> np.ndarray:
        """Boolean mask over structures that a per-group table of ``sg`` uses."""
        if pooled not in POOLING:
            raise ConfigError(f"pooled must be one of {', '.join(POOLING)}, got {pooled!r}")
        if pooled == "all":
            return np.ones(len(self.ids), bool)
        sg = self._check_sg(sg)
        own = self.spacegroups == sg
        if pooled == "none":
            if not own.any():
                raise DataError(f"statistics ({self.source}): no structures in space group {sg}; "
                                "use pooled='crystal_system', 'all' or 'auto'")
            return own
        system = self.crystal_systems == _SYSTEM_OF_SG[sg]
        if pooled == "crystal_system":
            if not system.any():
                raise DataError(f"statistics ({self.source}): no {_SYSTEM_OF_SG[sg]} structures; use pooled='all'")
            return system
        if own.sum() >= max(1, min_count):  # auto
            return own
        return system if system.any() else np.ones(len(self.ids), bool)

    def _cached(self, key: tuple, compute) -> Any:
        if key not in self._cache:
            value = compute()
            for v in value if isinstance(value, tuple) else (value,):
                if isinstance(v, np.ndarray):
                    v.setflags(write=False)
            self._cache[key] = value
        return self._cache[key]

    @staticmethod
    def _distribution(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vals, counts = np.unique(values, return_counts=True)
        return vals.astype(np.int64), counts / counts.sum()

    # ---- per-group tables -------------------------------------------------------------------

    def n_elements(self, sg: int | None, *, pooled: str = "none", min_count: int = 1):
        """Distribution of the number of distinct elements per structure.

        Parameters
        ----------
        sg : int
            ITA number (ignored with ``pooled="all"``).
        pooled : {"none", "crystal_system", "all", "auto"}
            Which structures to count; see the module docstring.
        min_count : int
            With ``pooled="auto"``: fewest structures of ``sg`` to use the group alone.

        Returns
        -------
        values : (k,) int64 ascending
        probs : (k,) float64 summing to 1
        """
        def compute():
            return self._distribution(self.n_elements_per_structure[self._mask(sg, pooled, min_count)])
        return self._cached(("n_elements", sg, pooled, min_count), compute)

    def elements(self, sg: int | None, *, pooled: str = "none", min_count: int = 1):
        """How often each element occurs: number of structures of the group that contain it, normalised.

        Returns
        -------
        z : (k,) int64 atomic numbers, ascending
        probs : (k,) float64, ``count(structures containing z) / sum over elements of that count``
        """
        def compute():
            struct, z, _ = self._element_pairs
            mask = self._mask(sg, pooled, min_count)
            return self._distribution(z[mask[struct]])
        return self._cached(("elements", sg, pooled, min_count), compute)

    def repetitions(self, sg: int | None, *, pooled: str = "none", min_count: int = 1):
        """Number of asymmetric-unit sites an element occupies, one value per (structure, element).

        Returns
        -------
        values : (k,) int64 ascending (>= 1)
        probs : (k,) float64
        """
        def compute():
            struct, _, reps = self._element_pairs
            mask = self._mask(sg, pooled, min_count)
            return self._distribution(reps[mask[struct]])
        return self._cached(("repetitions", sg, pooled, min_count), compute)

    def asymmetric_sites(self, sg: int | None, *, pooled: str = "none", min_count: int = 1):
        """Number of asymmetric-unit sites per structure, as counts.

        Returns
        -------
        values : (k,) int64 ascending
        counts : (k,) int64 number of structures with that many sites
        """
        def compute():
            vals, counts = np.unique(self.n_sites[self._mask(sg, pooled, min_count)], return_counts=True)
            return vals.astype(np.int64), counts.astype(np.int64)
        return self._cached(("asymmetric_sites", sg, pooled, min_count), compute)

    def wyckoff_counts(self, sg: int, *, pooled: str = "none"):
        """Occupied asymmetric-unit sites per Wyckoff letter of ``sg`` (each site counted once).

        Returns
        -------
        letters : (k,) ``<U1``, all positions of the group in :mod:`synthxrd.wyckoff` order
            (general position first, ``'a'`` last)
        counts : (k,) int64
        """
        from synthxrd.wyckoff import space_group

        sg = self._check_sg(sg)
        if pooled not in ("none", "auto"):
            raise ConfigError(f"Wyckoff letters cannot be pooled over space groups: pooled must be 'none' or "
                              f"'auto', got {pooled!r}")

        def compute():
            letters = np.array([w.letter for w in space_group(sg).wyckoff_positions], "<U1")
            own = self.spacegroups == sg
            if not own.any() and pooled == "none":
                raise DataError(f"statistics ({self.source}): no structures in space group {sg}; "
                                "use pooled='auto' for uniform Wyckoff probabilities")
            rows = own[self._row_structure] & self._orbit_first_row
            observed = self.site_wyckoff[rows]
            counts = np.array([(observed == letter).sum() for letter in letters], np.int64)
            if counts.sum() != rows.sum():
                bad = sorted(set(observed.tolist()) - set(letters.tolist()))
                raise DataError(f"statistics: Wyckoff letters {bad} are not positions of space group {sg}")
            return letters, counts
        return self._cached(("wyckoff_counts", sg, pooled), compute)

    def wyckoff(self, sg: int, *, pooled: str = "none"):
        """Occupation frequency of each Wyckoff position of ``sg``.

        Parameters
        ----------
        sg : int
        pooled : {"none", "auto"}
            ``"auto"``: uniform over the positions if the group has no structures.

        Returns
        -------
        letters : (k,) ``<U1`` in :mod:`synthxrd.wyckoff` order (general position first)
        probs : (k,) float64 (zeros for letters never seen), summing to 1
        """
        def compute():
            letters, counts = self.wyckoff_counts(sg, pooled=pooled)
            if counts.sum() == 0:
                return letters.copy(), np.full(len(letters), 1.0 / len(letters))
            return letters.copy(), counts / counts.sum()
        return self._cached(("wyckoff", sg, pooled), compute)

    # ---- samples for KDEs -------------------------------------------------------------------

    def lattice_samples(self, crystal_system: str) -> np.ndarray:
        """Conventional-cell shapes of one crystal system (or ``"all"``).

        Returns
        -------
        numpy.ndarray
            (n, 6) float64: a, b, c divided by V^(1/3), then alpha, beta, gamma in degrees.

        Raises
        ------
        ConfigError
            If ``crystal_system`` is not a crystal-system name or "all".
        """
        if crystal_system != "all" and crystal_system not in CRYSTAL_SYSTEMS:
            raise ConfigError(f"crystal system must be one of {', '.join(CRYSTAL_SYSTEMS)} or 'all', "
                              f"got {crystal_system!r}")

        def compute():
            mask = (np.ones(len(self.ids), bool) if crystal_system == "all"
                    else self.crystal_systems == crystal_system)
            lat = self.lattices[mask].copy()
            lat[:, :3] /= np.cbrt(self.volumes[mask])[:, None]
            return lat
        return self._cached(("lattice", crystal_system), compute)

    def density_samples(self) -> np.ndarray:
        """(n, 2) float64 of (V_atoms in Å^3, denseness factor V / V_atoms) over all structures."""
        return self._cached(("density",), lambda: np.column_stack([self.v_atoms, self.denseness]))

    def summary(self, top: int = 10) -> dict[str, Any]:
        """Headline numbers: structures, failures, represented groups, the ``top`` groups by count."""
        counts = self.spacegroup_counts()
        order = np.argsort(-counts, kind="stable")[:top]
        return {
            "n_structures": self.n_structures,
            "n_failures": int(self.metadata.get("n_failures", 0)),
            "n_spacegroups": int((counts > 0).sum()),
            "n_represented": int(len(self.represented())),
            "top_spacegroups": [(int(s), int(counts[s])) for s in order if counts[s] > 0],
        }
