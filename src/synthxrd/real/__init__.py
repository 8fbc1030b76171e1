"""Real crystals for the training stream: a set built once from the statistics part of a split, and
symmetry-preserving perturbations applied every time a crystal is drawn.

The reference (Schopmans et al. 2023, docs/architecture.md) compares training on synthetic crystals with training
on real ones ("direct" training); here both can be mixed in one batch (:mod:`synthxrd.data`). The real
crystals come only from the **statistics** part of a prototype split (:mod:`synthxrd.split`), so the
structure types of the test part stay unseen.

Building (:func:`build_real_set`) reads each CIF of the statistics part exactly as
:mod:`synthxrd.validation` reads the test part (:func:`synthxrd.validation.worker.read_labelled`): the
sites of :func:`synthxrd.structure.parse_cif`, label = :func:`synthxrd.stats.analyze_sites` of them at
the statistics' ``symprec`` (0.1), crystal = the cell as read (original cell, all atoms, one scatterer
row per species and site). It keeps crystals whose label is a class
(default ``Statistics.represented(min_count)``, min_count 50), with at most ``max_sites`` (100)
asymmetric-unit sites and a conventional-cell volume of at most ``max_volume`` (7000 Å^3): what the
generator can make. One HDF5 file (:mod:`synthxrd.dataset` layout, crystals and labels, no patterns)
plus the group ``/real``::

    /real/ids (N,) str          /real/n_sites (N,) i8      /real/conventional_volume (N,) f8
    /real/ordered (N,) bool     /real/failure_ids (F,) str /real/failure_reasons (F,) str
    attrs["metadata"]: kind = "synthxrd.real_set", format_version, source (path, fingerprint), split
    (path, sha256, counts), statistics (path, format_version, sha256, symprec), classes, filters,
    counts, class_counts, failure reasons, build time, synthxrd and spglib versions

A set of the shipped split's statistics part and of the AMCSD minerals of no held-out prototype ships
in the package in a compact form (:mod:`synthxrd.real.compact`: ``RealCrystals.load()`` or
``load("shipped")``, numpy alone); ``synthxrd train`` mixes it in by default (``real_fraction`` 0.5).

Perturbing (:func:`perturb`, :class:`PerturbConfig`) makes each draw of a real crystal a slightly
different crystal of the **same space group**, so that its label stays right:

1. substitution: with probability ``substitution`` per element, all atoms of that element become a
   neighbour in its group of :data:`SUBSTITUTION_GROUPS` (chemically similar, e.g. Na -> K, Se -> Te)
   that the crystal does not already contain (two species never merge, so no symmetry is gained);
2. coordinate jitter, on the **free parameters** only: the symmetry operations ``(W, t)`` of the crystal
   are found by spglib at ``symprec`` on its cell (all operations of its space group, taken from
   spglib's database and carried into the cell's basis, so a supercell keeps them too); per orbit, a
   Gaussian displacement (``jitter`` Å per Cartesian component) of the representative atom is averaged
   over its site-symmetry group (the operations that map it onto itself) and carried to every atom
   ``j = g(rep)`` of the orbit as ``W_g delta``. The displacement field is thus exactly equivariant:
   atoms on special positions move only along their free directions, those on general positions by the
   full amplitude;
3. lattice strain: ``F = s (1 + eps)`` with ``s ~ U(1 - isotropic_strain, 1 + isotropic_strain)`` and a
   symmetric Gaussian ``eps`` (``anisotropic_strain`` per component); the strained metric
   ``G = L F F^T L^T`` (``L`` rows a, b, c) is averaged over the point group, ``mean_W W^T G W``, which
   makes every operation an exact isometry again (for a cubic crystal only the isotropic part of
   ``eps`` survives, for a monoclinic one all four free metric parameters change); the new lattice is
   the one with that metric closest to ``L F`` (Cholesky factor, then an orthogonal Procrustes
   rotation).

A crystal for which spglib finds no symmetry gets only the isotropic strain and the substitution; one
whose atoms cannot be mapped onto each other by the operations found gets no jitter (never an
unsymmetrised displacement). The symmetry analysis (~10 ms per crystal) is cached per process by the
crystal's content (:data:`SYMMETRY_CACHE_SIZE`); then a perturbation costs ~0.2 ms.

Measured on the set of the shipped split (MP, 30,620 crystals; 300 + 1,000 random crystals, 3 draws
each, default config): spglib (0.1) on the perturbed crystal differs from the label in 2 of 3,900
draws (0.05 %), both pseudo-symmetric crystals whose group becomes a supergroup at symprec 0.105-0.15.
"""


from __future__ import annotations

from synthxrd.real.crystals import (
    FORMAT_VERSION,
    KIND,
    MAX_SITES,
    MAX_VOLUME,
    RealCrystals,
    build_real_set,
    read_failures,
)
from synthxrd.real.compact import SHIPPED_NAME, load_compact, save_compact, shipped_path
from synthxrd.real.shipped import build_shipped_set
from synthxrd.real.perturbation import SUBSTITUTION_GROUPS, PerturbConfig, perturb, substitution_candidates

__all__ = [
    "KIND",
    "FORMAT_VERSION",
    "MAX_SITES",
    "MAX_VOLUME",
    "SUBSTITUTION_GROUPS",
    "RealCrystals",
    "PerturbConfig",
    "build_real_set",
    "perturb",
    "substitution_candidates",
    "read_failures",
    "SHIPPED_NAME",
    "shipped_path",
    "build_shipped_set",
    "load_compact",
    "save_compact",
]
