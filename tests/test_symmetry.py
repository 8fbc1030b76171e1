"""Extinction groups derived from the symmetry operations, checked against ITA's reflection conditions."""

from __future__ import annotations

import numpy as np
import pytest

from synthxrd import symmetry
from synthxrd.symmetry import (
    CRYSTAL_SYSTEMS,
    absent_mask,
    absent_reflections,
    crystal_system_index,
    extinction_group,
    extinction_group_table,
    extinction_groups,
    hkl_box,
    is_absent,
    members,
    n_extinction_groups,
    point_group_order_table,
)
from synthxrd.wyckoff import space_group


def same(*numbers: int) -> bool:
    return len({extinction_group(n) for n in numbers}) == 1


def test_every_group_has_an_id_and_ids_are_contiguous():
    ids = [extinction_group(n) for n in range(1, 231)]
    groups = extinction_groups()
    assert sorted(set(ids)) == list(range(1, n_extinction_groups() + 1)) == sorted(groups)
    assert sorted(n for m in groups.values() for n in m) == list(range(1, 231))
    assert extinction_group_table()[1:].tolist() == ids
    # ids follow the smallest member, so they are reproducible
    assert [min(m) for _, m in sorted(groups.items())] == sorted(min(m) for m in groups.values())
    assert n_extinction_groups() == 112  # crystal-system convention (108 with trigonal + hexagonal pooled)


def test_deterministic():
    first = extinction_groups()
    symmetry._groups.cache_clear()
    symmetry._absent_box.cache_clear()
    assert extinction_groups() == first


@pytest.mark.parametrize("numbers", [
    (1, 2),                                  # P1, P-1: no conditions
    (3, 6, 10),                              # P2, Pm, P2/m
    (7, 13),                                 # Pc, P2/c
    (9, 15),                                 # Cc, C2/c
    (16, 25, 47),                            # P222, Pmm2, Pmmm
    (23, 24, 44, 71),                        # I222, I2_12_12_1 (I hides the screws), Imm2, Immm
    (36, 63),                                # Cmc2_1, Cmcm
    (75, 81, 83, 89, 99, 111, 115, 123),     # P4 ... P4/mmm
    (76, 78, 91, 95),                        # P4_1, P4_3, P4_122, P4_322: 00l l = 4n
    (146, 148, 155, 160, 166),               # R3 ... R-3m
    (161, 167),                              # R3c, R-3c
    (173, 176, 182),                         # P6_3, P6_3/m, P6_322
    (186, 190, 194),                         # P6_3mc, P-62c, P6_3/mmc
    (195, 200, 207, 215, 221),               # P23 ... Pm-3m
    (196, 202, 209, 216, 225),               # F23, Fm-3, F432, F-43m, Fm-3m
    (197, 199, 204, 211, 217, 229),          # I23, I2_13, Im-3, I432, I-43m, Im-3m
    (203, 227),                              # Fd-3, Fd-3m
])
def test_same_extinction_group(numbers):
    assert same(*numbers)
    assert set(numbers) <= set(members(extinction_group(numbers[0])))


@pytest.mark.parametrize("a, b", [
    (13, 14),    # P2/c vs P2_1/c (0k0: k = 2n)
    (3, 4),      # P2 vs P2_1
    (3, 5),      # P2 vs C2
    (62, 63),    # Pnma vs Cmcm
    (43, 70),    # Fdd2 vs Fddd
    (169, 173),  # P6_1 (l = 6n) vs P6_3 (l = 2n)
    (171, 144),  # P6_2 (l = 3n) vs P3_1 (l = 3n): same absences, different crystal systems
    (143, 168),  # P3 vs P6: no conditions in either, different crystal systems
    (225, 227),  # Fm-3m vs Fd-3m
    (225, 226),  # Fm-3m vs Fm-3c
    (229, 230),  # Im-3m vs Ia-3d
    (146, 143),  # R3 (hexagonal axes: -h + k + l = 3n) vs P3
])
def test_different_extinction_groups(a, b):
    assert extinction_group(a) != extinction_group(b)


@pytest.mark.parametrize("sg, hkl, absent", [
    (14, (0, 1, 0), True), (14, (0, 2, 0), False), (14, (1, 0, 1), True), (14, (1, 0, 2), False),
    (14, (1, 1, 1), False),
    (225, (1, 0, 0), True), (225, (1, 1, 0), True), (225, (1, 1, 1), False), (225, (2, 0, 0), False),
    (229, (1, 0, 0), True), (229, (1, 1, 0), False), (229, (2, 1, 1), False),
    (227, (2, 0, 0), True), (227, (4, 0, 0), False), (227, (0, 2, 4), True), (227, (0, 2, 2), False),
    (227, (2, 2, 2), False),  # absent in diamond only because of the special position 8a
    (166, (1, 0, 0), True), (166, (1, 0, 1), False), (166, (0, 0, 3), False), (166, (0, 0, 1), True),
    (169, (0, 0, 3), True), (169, (0, 0, 6), False), (173, (0, 0, 3), True), (173, (0, 0, 2), False),
    (62, (0, 1, 1), False), (62, (0, 1, 2), True), (62, (0, 1, 0), True), (62, (1, 1, 0), True),
    (62, (2, 1, 0), False),  # Pnma: 0kl k+l=2n, hk0 h=2n
])
def test_reflection_conditions(sg, hkl, absent):
    assert is_absent(sg, hkl) is absent


def test_absent_sets_basic_properties():
    assert absent_reflections(1).shape == (0, 3)
    assert absent_reflections(221).shape == (0, 3)
    box = hkl_box()
    for sg in (14, 62, 167, 206, 230):
        mask = absent_mask(sg)
        assert mask.shape == (len(box),)
        # Friedel: hkl absent iff -h-k-l absent
        index = {tuple(h): i for i, h in enumerate(box.tolist())}
        assert all(mask[index[tuple(-h)]] == m for h, m in zip(box[::97], mask[::97]))
    assert is_absent(225, np.array([[1, 0, 0], [2, 0, 0]])).tolist() == [True, False]
    with pytest.raises(ValueError):
        is_absent(225, (1, 0))


@pytest.mark.parametrize("sg", range(1, 231))
def test_analytic_rule_matches_structure_factors(sg):
    """Absent iff |sum_g exp(2 pi i h.(R_g x + t_g))| = 0 for generic x (three random points)."""
    info = space_group(sg)
    hkl = hkl_box(4)
    rng = np.random.default_rng(sg)
    zero = np.ones(len(hkl), bool)
    for x in rng.random((3, 3)):
        pos = info.rotations @ x + info.translations  # (n, 3)
        f = np.exp(2j * np.pi * hkl @ pos.T).sum(axis=1)
        zero &= np.abs(f) < 1e-6 * len(pos)
    assert np.array_equal(zero, absent_mask(sg, 4))


def test_crystal_system_index():
    assert [crystal_system_index(n) for n in (1, 3, 16, 75, 143, 168, 195)] == list(range(7))
    assert CRYSTAL_SYSTEMS[crystal_system_index(166)] == "trigonal"
    for gid, numbers in extinction_groups().items():
        assert len({crystal_system_index(n) for n in numbers}) == 1, gid


def test_point_group_order_against_spglib():
    """|P| of every ITA number = distinct rotations of spglib's database operations of its first setting."""
    spglib = pytest.importorskip("spglib")
    table = point_group_order_table()
    seen = set()
    for hall in range(1, 531):
        number = spglib.get_spacegroup_type(hall).number
        if number in seen:
            continue
        seen.add(number)
        rotations = spglib.get_symmetry_from_database(hall)["rotations"]
        assert table[number] == len({r.tobytes() for r in np.asarray(rotations, np.int64)}), number
    assert len(seen) == 230 and table[0] == 0 and not table.flags.writeable
    assert [table[n] for n in (1, 2, 14, 62, 139, 166, 191, 221)] == [1, 2, 4, 8, 16, 12, 24, 48]


def test_docstring_examples():
    import doctest

    result = doctest.testmod(symmetry, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
