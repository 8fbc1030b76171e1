"""Per-space-group statistics of a crystal-structure collection (the generator's input).

A collection of CIFs (a folder or a tar archive) is analysed structure by structure with spglib: space
group, conventional standard cell, Wyckoff letter and species of every symmetry-distinct site, atomic
volume and denseness factor. The raw per-structure records are stored in one ``.npz`` file (no
pickles: ``numpy.load(path, allow_pickle=False)`` reads it) together with a JSON metadata string; the
probability tables the generator samples from are derived from the records when asked for, so that
every number can be traced back to the structures that produced it.

Modules: :mod:`~synthxrd.stats.analysis` (one structure -> one record), :mod:`~synthxrd.stats.collection`
(a folder or tar of CIFs, analysed in worker processes), :mod:`~synthxrd.stats.statistics` (the
:class:`Statistics` container and its tables); everything public is importable from ``synthxrd.stats``.
A prototype split of the statistics is :mod:`synthxrd.split` (which imports this package, never the
other way round).

Per structure (see :class:`StructureRecord`):

1. The sites of the cell are read from the CIF by :func:`synthxrd.structure.parse_cif` (gemmi's CIF
   parser; symmetry operations applied, disordered sites merged as pymatgen's ``CifParser`` does).
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

from synthxrd.stats.analysis import (
    DEFAULT_SYMPREC,
    Z_MAX,
    StructureRecord,
    analyze,
    analyze_cif,
    analyze_sites,
    atomic_radii,
    atomic_volumes,
    parse_cif,
    spacegroup_number,
    spglib_dataset,
)
from synthxrd.stats.collection import (
    CHUNK_SIZE,
    check_symprec,
    compute,
    compute_records,
    default_workers,
    iter_cif_texts,
    map_cifs,
    progress_bar,
    source_fingerprint,
)
from synthxrd.stats.statistics import (
    DEFAULT_RESOURCE,
    FORMAT_VERSION,
    POOLING,
    RECORD_ARRAYS,
    REPRESENTED_MIN_COUNT,
    Statistics,
)
from synthxrd.symmetry import crystal_system as crystal_system_of

__all__ = [
    "FORMAT_VERSION",
    "DEFAULT_SYMPREC",
    "REPRESENTED_MIN_COUNT",
    "CRYSTAL_SYSTEMS",
    "POOLING",
    "RECORD_ARRAYS",
    "StructureRecord",
    "Statistics",
    "atomic_radii",
    "atomic_volumes",
    "crystal_system_of",
    "analyze",
    "analyze_cif",
    "parse_cif",
    "analyze_sites",
    "spglib_dataset",
    "spacegroup_number",
    "map_cifs",
    "iter_cif_texts",
    "compute_records",
    "compute",
    "default_workers",
    "progress_bar",
    "source_fingerprint",
    "check_symprec",
    "CHUNK_SIZE",
    "DEFAULT_RESOURCE",
    "Z_MAX",
]


def __getattr__(name: str):
    """``CRYSTAL_SYSTEMS``: :func:`synthxrd.symmetry.crystal_system_ranges` (name -> first and last ITA
    number), computed from the Wyckoff tables on first use (PEP 562), not when the package is imported."""
    if name == "CRYSTAL_SYSTEMS":
        from synthxrd.symmetry import crystal_system_ranges

        return crystal_system_ranges()
    raise AttributeError(f"module 'synthxrd.stats' has no attribute {name!r}")
