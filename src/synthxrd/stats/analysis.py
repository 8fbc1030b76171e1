"""One structure -> one :class:`StructureRecord`: space group, conventional cell, Wyckoff sites, volumes.

The reading and analysis half of :mod:`synthxrd.stats` (see its docstring for the steps); the
structure collection is walked by :mod:`synthxrd.stats.collection`, the records are tabulated by
:class:`synthxrd.stats.statistics.Statistics`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

from synthxrd.errors import StructureError
from synthxrd.structure import Sites, Species, crystal_sites, lattice_parameters, parse_cif, site_kind, site_types

__all__ = [
    "DEFAULT_SYMPREC",
    "Z_MAX",
    "StructureRecord",
    "atomic_radii",
    "atomic_volumes",
    "spglib_dataset",
    "spacegroup_number",
    "analyze_sites",
    "analyze",
    "analyze_cif",
    "parse_cif",
]

FloatArray: TypeAlias = NDArray[np.float64]

#: spglib distance tolerance in Å; 0.1 is what the ICSD-style analyses (and the mp_experimental
#: index) use: DFT-relaxed or refined structures are slightly off their ideal positions.
DEFAULT_SYMPREC = 0.1
#: Largest atomic number with radii (and X-ray scattering coefficients in synthxrd): Cf.
Z_MAX = 98
#: Per-site occupancy sums above 1 + this mean overlapping atoms (a broken cell), not disorder.
_OCCUPANCY_TOL = 1e-3


@lru_cache(maxsize=1)
def atomic_radii() -> FloatArray:
    """Mean atomic radius ``r = (r_covalent + r_vdW) / 2`` in Å, indexed by atomic number.

    Returns
    -------
    numpy.ndarray
        (99,) float64, read-only; entry ``Z`` for Z = 1 (H) .. 98 (Cf), entry 0 is NaN.

    Notes
    -----
    Covalent radii: ``ase.data.covalent_radii`` (Cordero et al. 2008; Bk and Cf are not in that
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


def spacegroup_number(lattice, positions, types, symprec: float = DEFAULT_SYMPREC) -> int:
    """spglib's ITA number of a cell at ``symprec`` (default angle tolerance); 0 where spglib fails or
    finds no symmetry (a label to compare, never an exception)."""
    try:
        return int(spglib_dataset(lattice, positions, types, symprec, -1.0).number)
    except StructureError:
        return 0


def analyze_sites(identifier: str, lattice: FloatArray, positions: FloatArray, species: Sequence[Species], *,
                  symprec: float = DEFAULT_SYMPREC, angle_tolerance: float = -1.0,
                  volumes: FloatArray | None = None) -> StructureRecord:
    """Core of :func:`analyze`: one position and one species tuple ((Z, occ), ...) per site
    (a :class:`~synthxrd.structure.Sites`, as :func:`~synthxrd.structure.parse_cif` returns it)."""
    from synthxrd.wyckoff import space_group

    volumes = atomic_volumes() if volumes is None else volumes
    if len(species) == 0:
        raise StructureError("the structure has no atoms")
    types = site_types(species)
    kind_list: list[Species] = []
    for t, sp in zip(types.tolist(), species):
        if t == len(kind_list):
            kind_list.append(site_kind(sp))
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
        lattice=lattice_parameters(std_lattice),
        volume=float(abs(np.linalg.det(std_lattice))),
        n_atoms=int(len(std_types)),
        v_atoms=float(v_atoms),
        site_orbit=np.array(orbit, np.int32),
        site_wyckoff=np.array(letters, "<U1"),
        site_multiplicity=np.array(mult, np.int32),
        site_z=np.array(zs, np.int16),
        site_occupancy=np.array(occs, np.float64),
    )


def analyze(structure: Any, *, id: str = "", symprec: float = DEFAULT_SYMPREC,
            angle_tolerance: float = -1.0) -> StructureRecord:
    """Analyse one structure (pymatgen ``Structure``, ASE ``Atoms``, CIF path or ``Crystal``).

    Parameters
    ----------
    structure : StructureLike
        Anything :func:`synthxrd.structure.to_crystal` accepts; its sites are those of
        :func:`synthxrd.structure.crystal_sites` (a CIF path: as :func:`~synthxrd.structure.parse_cif`
        reads it).
    id : str
        Identifier stored in the record.
    symprec, angle_tolerance : float
        spglib tolerances (Å, degrees; -1 is spglib's default angle handling).

    Raises
    ------
    StructureError
        If the structure cannot be read or spglib fails.
    """
    sites = structure if isinstance(structure, Sites) else crystal_sites(structure)
    return analyze_sites(id, *sites, symprec=symprec, angle_tolerance=angle_tolerance, volumes=atomic_volumes())


def analyze_cif(text: str, *, id: str = "", symprec: float = DEFAULT_SYMPREC,
                angle_tolerance: float = -1.0, volumes: FloatArray | None = None) -> StructureRecord:
    """Analyse the (first) structure of a CIF given as text (:func:`~synthxrd.structure.parse_cif`).

    Raises
    ------
    StructureError
        If the CIF cannot be read or its symmetry cannot be analysed (message without the id).
    """
    return analyze_sites(id, *parse_cif(text), symprec=symprec, angle_tolerance=angle_tolerance,
                         volumes=atomic_volumes() if volumes is None else volumes)
