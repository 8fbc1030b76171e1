"""Validation sets built once and cached: synthetic crystals and real crystals of unseen structure types.

The reference method (Schopmans et al. 2023, docs/architecture.md) validates every epoch on crystals of the
test part of a prototype split, i.e. of structure types the generator's statistics never saw, and on
synthetic crystals drawn like the training data. Seven sets can be built from a structure collection
(folder or tar of CIFs), the split (:mod:`synthxrd.split`) and the class list (the space groups
represented in the statistics, ``Statistics.represented(50)``); the first five are built by default
(:data:`DEFAULT_SETS`), the two gap sets on request:

``random``
    ``n_random`` crystals of :class:`~synthxrd.generate.Generator` on the statistics, prior restricted
    to the classes, fixed seed (the training distribution). Label: the intended space group.
``calibration``
    Calibration-part crystals with the filters of ``match``. What checkpoints are selected and
    temperatures fitted on (docs/architecture.md, "Evaluation protocol"); empty for a split without
    a calibration part (:func:`synthxrd.split.with_calibration`).
``match``
    Test-part crystals (reported only, never used to choose or fit anything) with at most
    ``max_sites`` (100) asymmetric-unit sites, a conventional-cell
    volume ``V <= max_volume`` (7000 Å^3) and a label among the classes (what the generator can make).
``all``
    Every test-part crystal whose label is a class.
``match_pure``
    ``match`` without partially occupied sites (every occupancy >= 1 - 1e-3).
``match_random_coords``
    Every ``match`` crystal with the free coordinates of its Wyckoff positions redrawn uniformly, as
    the generator places atoms; lattice, space group and the occupation of the Wyckoff positions
    (letter, element, occupancy per asymmetric-unit site) kept (:func:`synthxrd.gap.randomize_coordinates`).
``match_random_lattice``
    Every ``match`` crystal with its lattice redrawn as the generator draws lattices of its space group
    (volume from the generator's volume model for its atoms, parameters from its lattice KDE, the
    crystal-system constraints kept); fractional coordinates kept (:func:`synthxrd.gap.randomize_lattice`).

The two gap sets reproduce the analysis of the gap between synthetic and ICSD accuracy of the
reference (:mod:`synthxrd.gap`). They work on spglib's conventional standard cell of the crystal at
``symprec`` (idealised), draw from a generator seeded with ``(seed, hash of the id, set)`` and use the
generator of the statistics (default config). A crystal whose randomization fails stays in ``match``
and is missing from that set; the manifest counts the failures by reason.

Labels of real crystals are recomputed with spglib at ``symprec`` 0.1 (the tolerance of the
statistics, :data:`synthxrd.stats.DEFAULT_SYMPREC`) on the cell as read by
:func:`synthxrd.structure.parse_cif`. The manifest records how often
that label differs from (a) spglib at a strict tolerance (``strict_symprec``, 1e-3), (b) the
``spacegroup`` column of the collection's ``index.csv`` when there is one next to the source, and
(c) the space group encoded in the split's prototype (``"<sg>|<formula>|<wyckoff>"``); for ``random``
and the gap sets (labelled with the original crystal's group, the intended one), how often spglib
(0.1) finds another group than the intended one.

Patterns: :func:`synthxrd.simulate.patterns` of the crystals as read (the original cell, all atoms),
default grid (5-90 deg, 8501 points) and Cu Ka1; the crystallite size of a real crystal is drawn from
U(20, 100) nm by a generator seeded with ``(seed, hash of its id)``, so it does not depend on the number
of workers or on which sets are built (a gap crystal has the size of its original); the random set uses
one seeded stream per chunk of :data:`RANDOM_CHUNK` crystals (:mod:`synthxrd.validation.synthetic`, the
definition the trainer's own ``random`` set uses too).

Files in the cache folder::

    manifest.json      what was built from what (see :class:`Manifest`), written last
    <set>.h5           synthxrd.dataset HDF5 (crystals, spacegroups, patterns, two_theta, metadata)
                       plus /validation/ids and per-crystal extras (crystallite_size_nm, ...)

:func:`ensure_validation_sets` reuses the folder when its manifest matches the request (source path
and fingerprint, split hash, statistics hash, classes, seed, n_random, filters, synthxrd version, the
requested sets, files present with their recorded sizes) and rebuilds it otherwise. Both take a
:class:`ValidationRequest` (or its fields as keywords). The cache is read with
:func:`load_validation_sets` of :mod:`synthxrd.dataset` (re-exported here), so that evaluation never
imports this package.

Modules: :mod:`~synthxrd.validation.request` (options and their resolution),
:mod:`~synthxrd.validation.synthetic` (the random set), :mod:`~synthxrd.validation.worker` (one CIF,
one random chunk), :mod:`~synthxrd.validation.build` (the pool, files and manifest).
"""

from __future__ import annotations

from synthxrd.dataset import MANIFEST, Manifest, ValidationSet, load_validation_sets
from synthxrd.dataset import VALIDATION_FORMAT_VERSION as FORMAT_VERSION
from synthxrd.structure import parse_cif as read_cif_sites
from synthxrd.validation.build import build_validation_sets, ensure_validation_sets
from synthxrd.validation.request import (
    DEFAULT_N_RANDOM,
    DEFAULT_SETS,
    GAP_SETS,
    MAX_SITES,
    MAX_VOLUME,
    RANDOM_CHUNK,
    SET_NAMES,
    SET_PARTS,
    STRICT_SYMPREC,
    ValidationRequest,
)
from synthxrd.validation.synthetic import random_set

__all__ = [
    "SET_NAMES",
    "DEFAULT_SETS",
    "GAP_SETS",
    "SET_PARTS",
    "MANIFEST",
    "FORMAT_VERSION",
    "DEFAULT_N_RANDOM",
    "MAX_SITES",
    "MAX_VOLUME",
    "STRICT_SYMPREC",
    "RANDOM_CHUNK",
    "Manifest",
    "ValidationSet",
    "ValidationRequest",
    "read_cif_sites",
    "random_set",
    "build_validation_sets",
    "load_validation_sets",
    "ensure_validation_sets",
]
