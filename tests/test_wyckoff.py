"""Tests of synthxrd.wyckoff against spglib and pyxtal, for every position of all 230 groups."""

from __future__ import annotations

import numpy as np
import pytest
import spglib

from synthxrd.errors import ConfigError
from synthxrd.wyckoff import crystal_system, hermann_mauguin, orbit, project, space_group

pyxtal_symmetry = pytest.importorskip("pyxtal.symmetry")

# spglib 2.x warns on every call while its old error handling is on; not our concern here.
pytestmark = pytest.mark.filterwarnings("ignore:Set OLD_ERROR_HANDLING:DeprecationWarning")

NUMBERS = range(1, 231)
SYMPREC = 1e-5

# Generic cell parameters (a, b, c in Å; alpha, beta, gamma in degrees) per crystal system: no
# accidental metric symmetry beyond what the system requires.
CELL_PARAMETERS = {
    "triclinic": (5.1, 6.3, 7.7, 83.0, 97.0, 104.0),
    "monoclinic": (5.1, 6.3, 7.7, 90.0, 103.0, 90.0),  # unique axis b
    "orthorhombic": (5.1, 6.3, 7.7, 90.0, 90.0, 90.0),
    "tetragonal": (5.1, 5.1, 7.7, 90.0, 90.0, 90.0),
    "trigonal": (5.1, 5.1, 7.7, 90.0, 90.0, 120.0),  # hexagonal axes, also for R groups
    "hexagonal": (5.1, 5.1, 7.7, 90.0, 90.0, 120.0),
    "cubic": (5.1, 5.1, 5.1, 90.0, 90.0, 90.0),
}


def lattice(system: str) -> np.ndarray:
    """(3, 3) lattice, rows a, b, c (a along x, b in the xy plane) for a crystal system."""
    a, b, c, *angles = CELL_PARAMETERS[system]
    cos_al, cos_be, cos_ga = np.cos(np.radians(angles))
    sin_ga = np.sin(np.radians(angles[2]))
    cx = cos_be
    cy = (cos_al - cos_be * cos_ga) / sin_ga
    cz = np.sqrt(1 - cx**2 - cy**2)
    return np.array([[a, 0, 0], [b * cos_ga, b * sin_ga, 0], [c * cx, c * cy, c * cz]])


def spglib_dataset(sg, orbits: list[np.ndarray]):
    """spglib's dataset of a cell holding each orbit as its own atom type."""
    positions = np.vstack(orbits)
    types = np.repeat(np.arange(1, len(orbits) + 1), [len(o) for o in orbits])
    cell = (lattice(sg.crystal_system), positions, types)
    return spglib.get_symmetry_dataset(cell, symprec=SYMPREC)


# ---------------------------------------------------------------------------------------------
# Tables against pyxtal and spglib's database


@pytest.mark.parametrize("number", NUMBERS)
def test_positions_match_pyxtal(number):
    expected = [(w.letter, w.multiplicity) for w in pyxtal_symmetry.Group(number).Wyckoff_positions]
    sg = space_group(number)
    assert [(w.letter, w.multiplicity) for w in sg.wyckoff_positions] == expected


@pytest.mark.parametrize("number", NUMBERS)
def test_operations_match_spglib_default_setting(number):
    sg = space_group(number)
    default_hall = min(h for h in range(1, 531) if spglib.get_spacegroup_type(h).number == number)
    assert sg.hall_number == default_hall
    database = spglib.get_symmetry_from_database(sg.hall_number)
    assert len(sg.rotations) == len(database["rotations"]) == sg.wyckoff_positions[0].multiplicity
    assert sg.symbol == spglib.get_spacegroup_type(sg.hall_number).international_short


# ---------------------------------------------------------------------------------------------
# Every Wyckoff position: orbit size, and spglib's space group, letter and site symmetry


@pytest.mark.parametrize("number", NUMBERS)
def test_every_position_against_spglib(number):
    rng = np.random.default_rng(number)
    sg = space_group(number)
    general = sg.wyckoff_positions[0]
    # Two general orbits of other atom types pin the symmetry to exactly sg (one orbit alone can
    # have more, e.g. a single atom in P1 is centrosymmetric).
    background = [orbit(sg, project(general, rng.random(3))) for _ in range(2)]
    for wp in sg.wyckoff_positions:
        sites = orbit(sg, project(wp, rng.random(3)))
        assert len(sites) == wp.multiplicity, wp.letter
        dataset = spglib_dataset(sg, [sites, *background])
        assert dataset.number == number, wp.letter
        assert dataset.hall_number == sg.hall_number, wp.letter
        assert set(dataset.wyckoffs[: len(sites)]) == {wp.letter}
        assert set(dataset.site_symmetry_symbols[: len(sites)]) == {wp.site_symmetry}


@pytest.mark.parametrize("number", [1, 14, 62, 148, 166, 194, 227, 230])
def test_general_position_alone_has_the_space_group(number):
    sg = space_group(number)
    rng = np.random.default_rng(7)
    # Two general orbits of different atom types (one orbit of P1 would be P-1).
    sites = [orbit(sg, rng.random(3)) for _ in range(2)]
    assert spglib_dataset(sg, sites).number == number


# ---------------------------------------------------------------------------------------------
# Module behaviour


def test_dof_and_fixed_positions():
    rng = np.random.default_rng(0)
    for number in NUMBERS:
        for wp in space_group(number).wyckoff_positions:
            assert wp.dof == np.linalg.matrix_rank(wp.P)
            if wp.dof == 0:
                np.testing.assert_allclose(project(wp, rng.random(3)), project(wp, rng.random(3)))


def test_ita_order():
    for number in NUMBERS:
        positions = space_group(number).wyckoff_positions
        assert positions[-1].letter == "a"
        assert positions[0].site_symmetry == "1"
        assert all(a.multiplicity >= b.multiplicity for a, b in zip(positions, positions[1:]))


def test_project_batch_and_range():
    wp = space_group(191).position("i")  # 1/2, 0, z of P6/mmm
    points = np.random.default_rng(1).random((5, 3)) * 10 - 5
    out = project(wp, points)
    assert out.shape == (5, 3)
    assert np.all((out >= 0) & (out < 1))
    np.testing.assert_allclose(out, [project(wp, x) for x in points])


def test_orbit_is_periodic_aware():
    sg = space_group(2)  # P-1: x and -x
    assert len(orbit(sg, [1e-9, 0.5, 0.0])) == 1  # -1e-9 wraps next to 1, still the same point
    assert len(orbit(sg, [0.1, 0.2, 0.3])) == 2
    out = orbit(space_group(229), [0.0, 0.0, 0.0])
    assert out.shape == (2, 3) and np.all((out >= 0) & (out < 1))


@pytest.mark.parametrize(
    ("number", "symbol", "system", "centring"),
    [
        (1, "P1", "triclinic", "P"),
        (14, "P2_1/c", "monoclinic", "P"),
        (15, "C2/c", "monoclinic", "C"),
        (62, "Pnma", "orthorhombic", "P"),
        (141, "I4_1/amd", "tetragonal", "I"),
        (166, "R-3m", "trigonal", "R"),
        (194, "P6_3/mmc", "hexagonal", "P"),
        (227, "Fd-3m", "cubic", "F"),
    ],
)
def test_symbols_and_systems(number, symbol, system, centring):
    assert hermann_mauguin(number) == symbol
    assert crystal_system(number) == system
    assert space_group(number).centring == centring


def test_origin_choice_one_and_hexagonal_axes():
    sg = space_group(227)  # origin choice 1: -43m at the origin, -3m at 1/8, 1/8, 1/8
    assert [0.0, 0.0, 0.0] in orbit(sg, sg.position("a").p).tolist()
    assert [0.125, 0.125, 0.125] in orbit(sg, sg.position("c").p).tolist()
    assert len(space_group(166).rotations) == 36  # R-3m on hexagonal axes: 12 ops x 3 centrings


def test_tables_are_read_only_and_cached():
    sg = space_group(225)
    assert space_group(np.int64(225)) is sg
    with pytest.raises(ValueError):
        sg.rotations[0, 0, 0] = 5
    with pytest.raises(ValueError):
        sg.wyckoff_positions[0].p[0] = 0.5


@pytest.mark.parametrize("bad", [0, 231, -3, "abc", 14.0, True, None])
def test_bad_space_group_number(bad):
    with pytest.raises(ConfigError, match=f"got {bad!r}"):
        space_group(bad)
    with pytest.raises(ConfigError, match=f"got {bad!r}"):
        crystal_system(bad)


def test_bad_letter_and_point():
    with pytest.raises(ConfigError, match=r"no Wyckoff position 'j'.*letters: abcdefghi"):
        space_group(2).position("j")
    with pytest.raises(ConfigError, match=r"shape \(3,\)"):
        orbit(space_group(1), [0.1, 0.2])
