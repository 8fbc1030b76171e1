"""Systematic absences and extinction groups of the 230 space groups (pure numpy).

A powder pattern shows the lattice metric and which reflections are systematically absent, not
the point group: space groups with the same crystal system and the same absences give the same peak
positions. Such a set of groups is an *extinction group*; summing a network's space-group
probabilities over it gives what a powder pattern can really decide.

Absences are derived from the symmetry operations of :mod:`synthxrd.wyckoff` (spglib's default
setting of each ITA number: unique axis b and cell choice 1 for monoclinic groups, hexagonal axes for
the rhombohedral groups), not from a table. The structure factor of one atom in the general
position is ``F(h) = sum_g exp(2 pi i h.(R_g x + t_g))`` (centring translations included). Grouping
the operations by ``h R_g`` shows that ``F(h)`` vanishes for every (generic) ``x`` exactly when the
operations with ``h R_g = h`` (the stabiliser of ``h``, a group) have a non-trivial character
``g -> exp(2 pi i h.t_g)``, i.e. when some ``g`` with ``h R_g = h`` has ``h.t_g`` not an integer. That is
the reflection condition of ITA: integral (centring), zonal (glide planes) and serial (screw axes)
conditions all come out of it. Translations of the tables are multiples of 1/12 or 1/8, so the test
is exact up to a tolerance of 1e-6.

Conventions (documented choices)
--------------------------------
* Reflections are tested in the box ``|h|, |k|, |l| <= HKL_MAX`` (8): every reflection condition of
  the 230 types has a period dividing 2, 3, 4 or 6 in an index or a sum of two indices, so this box
  separates all of them (e.g. 6_1 ``00l: l = 6n`` from 6_3 ``l = 2n``, d glides ``h + k = 4n``).
* Two space groups are in the same extinction group iff they have the same **crystal system** (not
  lattice family) and the same absent set in that box. Trigonal groups stay apart from hexagonal ones
  even where their absences agree (P3 and P6 both have none), because the networks and the labels
  of this package use crystal systems; rhombohedral groups (hexagonal axes, obverse setting) differ
  from the primitive trigonal ones by the R centring (``-h + k + l = 3n``).
* Only the standard setting of each ITA number is used, so orthorhombic groups whose conditions are
  related by an axis permutation are different extinction groups (as in ITA's tables, which list
  every setting). With these conventions there are :func:`n_extinction_groups` = 112 groups (108
  when trigonal and hexagonal groups are pooled into one lattice family; 80 distinct absent sets
  when the crystal system is ignored altogether).
* Ids are 1.. in the order of the smallest ITA number of each group, so they are deterministic.

Examples
--------
>>> extinction_group(3) == extinction_group(6) == extinction_group(10)     # P2, Pm, P2/m
True
>>> extinction_group(13) == extinction_group(14)                           # P2/c, P2_1/c
False
>>> [int(n) for n in members(extinction_group(225))]                       # Fm-3m
[196, 202, 209, 216, 225]
>>> is_absent(14, (0, 1, 0)), is_absent(14, (0, 2, 0)), is_absent(14, (1, 0, 1))
(True, False, True)

References
----------
.. [1] International Tables for Crystallography, Vol. A, 6th ed. (2016), section 1.6.4
   (reflection conditions) and Table 1.6.4.25 (extinction symbols / possible space groups).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType

import numpy as np

from synthxrd.wyckoff import crystal_system, space_group

__all__ = [
    "HKL_MAX",
    "CRYSTAL_SYSTEMS",
    "crystal_system",
    "crystal_system_index",
    "crystal_system_table",
    "crystal_system_ranges",
    "point_group_order_table",
    "hkl_box",
    "absent_mask",
    "absent_reflections",
    "is_absent",
    "extinction_group",
    "extinction_groups",
    "extinction_group_table",
    "members",
    "n_extinction_groups",
]

#: Half-width of the hkl box the absences are compared in.
HKL_MAX = 8
#: Crystal systems in the order of :func:`crystal_system_index` (ascending ITA numbers). The crystal system
#: of each space group is that of the Wyckoff tables (:func:`crystal_system`, from
#: ``resources/wyckoff.json.gz``): this module is the one place the rest of synthxrd takes crystal
#: systems from (names, order, per-group index and table, ITA ranges).
CRYSTAL_SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic")
_TOL = 1e-6


def crystal_system_index(sg: int) -> int:
    """Index of the crystal system of space group ``sg`` in :data:`CRYSTAL_SYSTEMS` (0 triclinic .. 6 cubic)."""
    return CRYSTAL_SYSTEMS.index(crystal_system(sg))


@lru_cache(maxsize=1)
def crystal_system_table() -> np.ndarray:
    """(231,) int64: crystal-system index of every ITA number (index 0 unused, -1), read-only."""
    table = np.full(231, -1, np.int64)
    for n in range(1, 231):
        table[n] = crystal_system_index(n)
    table.setflags(write=False)
    return table


@lru_cache(maxsize=1)
def point_group_order_table() -> np.ndarray:
    """(231,) int64: order of the point group of every ITA number, read-only (index 0 unused, 0).

    The number of distinct rotation parts of the group's operations (centring translations share
    them): 1 for P1, 4 for P2_1/c and C2/c, 8 for mmm, 16 for 4/mmm, 24 for 6/mmm and m-3, 48 for m-3m.
    """
    table = np.zeros(231, np.int64)
    for n in range(1, 231):
        table[n] = len({r.tobytes() for r in np.asarray(space_group(n).rotations, np.int64)})
    table.setflags(write=False)
    return table


@lru_cache(maxsize=1)
def crystal_system_ranges() -> Mapping[str, tuple[int, int]]:
    """Read-only ``{crystal system: (first, last ITA number)}`` in :data:`CRYSTAL_SYSTEMS` order.

    >>> crystal_system_ranges()["tetragonal"]
    (75, 142)
    """
    table = crystal_system_table()
    out = {}
    for k, name in enumerate(CRYSTAL_SYSTEMS):
        numbers = np.flatnonzero(table == k)
        if numbers.size == 0 or numbers[-1] - numbers[0] + 1 != numbers.size:
            raise ValueError(f"Wyckoff tables: the {name} space groups are not one range of ITA numbers")
        out[name] = (int(numbers[0]), int(numbers[-1]))
    return MappingProxyType(out)


@lru_cache(maxsize=4)
def hkl_box(hkl_max: int = HKL_MAX) -> np.ndarray:
    """(M, 3) int64: every hkl with ``|h|, |k|, |l| <= hkl_max`` except 000, in lexicographic order."""
    r = np.arange(-hkl_max, hkl_max + 1)
    h = np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)
    h = h[np.any(h != 0, axis=1)]
    h.setflags(write=False)
    return h


def _absent(sg: int, hkl: np.ndarray) -> np.ndarray:
    """(M,) bool: h is systematically absent iff an operation (R, t) of the group (x' = R x + t) has
    h R = h and h.t not an integer (ITA Vol. A, section 1.6.3). Only operations with a fractional t
    can extinguish, and h R = h depends on R alone, so it is computed once per distinct rotation."""
    info = space_group(sg)
    t = info.translations
    fractional_t = np.any(np.abs(t - np.round(t)) > _TOL, axis=1)
    if not fractional_t.any():
        return np.zeros(len(hkl), bool)
    rotations, which = np.unique(info.rotations[fractional_t].reshape(-1, 9), axis=0, return_inverse=True)
    h = np.asarray(hkl, np.float64)  # small integers: exact in float64, and matmul runs on BLAS
    stabilises = np.all(h @ rotations.reshape(-1, 3, 3).astype(np.float64) == h, axis=2)  # (rotations, M)
    phase = h @ t[fractional_t].T  # (M, n): h.t
    fractional = np.abs(phase - np.round(phase)) > _TOL
    return np.any(stabilises[which.ravel()].T & fractional, axis=1)


@lru_cache(maxsize=None)
def _absent_box(sg: int, hkl_max: int) -> np.ndarray:
    mask = _absent(sg, hkl_box(hkl_max))
    mask.setflags(write=False)
    return mask


def absent_mask(sg: int, hkl_max: int = HKL_MAX) -> np.ndarray:
    """(M,) bool aligned with :func:`hkl_box`: which reflections of the box ``sg`` systematically extinguishes."""
    return _absent_box(space_group(sg).number, int(hkl_max))


def absent_reflections(sg: int, hkl_max: int = HKL_MAX) -> np.ndarray:
    """(K, 3) int64: the systematically absent hkl of space group ``sg`` in the box ``|h|,|k|,|l| <= hkl_max``."""
    return hkl_box(int(hkl_max))[absent_mask(sg, hkl_max)]


def is_absent(sg: int, hkl) -> bool | np.ndarray:
    """Whether reflection(s) ``hkl`` ((3,) or (M, 3) integers) are systematically absent in ``sg``."""
    h = np.asarray(hkl)
    if h.shape[-1:] != (3,) or h.ndim > 2 or not np.all(h == np.round(h)):
        raise ValueError(f"hkl must be integer triples of shape (3,) or (M, 3), got {h.shape}")
    out = _absent(space_group(sg).number, np.atleast_2d(h).astype(np.int64))
    return bool(out[0]) if h.ndim == 1 else out


@lru_cache(maxsize=1)
def _groups() -> tuple[np.ndarray, dict[int, tuple[int, ...]]]:
    keys: dict[tuple[int, bytes], int] = {}
    table = np.zeros(231, np.int64)
    groups: dict[int, list[int]] = {}
    for n in range(1, 231):  # ascending, so ids follow the smallest member
        key = (crystal_system_index(n), np.packbits(absent_mask(n)).tobytes())
        gid = keys.setdefault(key, len(keys) + 1)
        table[n] = gid
        groups.setdefault(gid, []).append(n)
    table.setflags(write=False)
    return table, {g: tuple(m) for g, m in groups.items()}


def extinction_group(sg: int) -> int:
    """Id (1..:func:`n_extinction_groups`) of the extinction group of space group ``sg``."""
    return int(_groups()[0][space_group(sg).number])


def extinction_groups() -> dict[int, tuple[int, ...]]:
    """Every extinction group: id -> ITA numbers of its members (ascending), ids ascending."""
    return dict(_groups()[1])


def extinction_group_table() -> np.ndarray:
    """(231,) int64 read-only: extinction-group id of every ITA number (index 0 unused, 0)."""
    return _groups()[0]


def members(gid: int) -> tuple[int, ...]:
    """ITA numbers of extinction group ``gid``."""
    groups = _groups()[1]
    if gid not in groups:
        raise ValueError(f"extinction group id must be 1..{len(groups)}, got {gid!r}")
    return groups[gid]


def n_extinction_groups() -> int:
    """Number of extinction groups (with the conventions of this module)."""
    return len(_groups()[1])
