"""Tests of synthxrd.gap: real crystals with randomized Wyckoff coordinates or lattices."""

from __future__ import annotations

import doctest
from collections import Counter
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

import synthxrd.gap as gap
from synthxrd import stats, wyckoff
from synthxrd.errors import ConfigError, StructureError
from synthxrd.generate import Generator
from synthxrd.structure import lattice_parameters, to_crystal
from synthxrd.stats import spacegroup_number as _spglib_number

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:spglib")

EXAMPLES = Path(str(files("synthxrd") / "resources" / "examples"))
DATA = Path(__file__).parent / "data"
# crystals with free Wyckoff coordinates (corundum 12c z / 18e x, WO3 8 x 4e, wurtzite 2b z, rutile 4f x)
FREE = ["Al2O3_corundum", "WO3_monoclinic", "ZnO_wurtzite", "TiO2_rutile"]
FIXED = ["NaCl", "CsCl", "Si", "SrTiO3"]  # every site on a 0-DOF position
CRYSTALS = [EXAMPLES / f"{n}.cif" for n in FREE + FIXED] + [DATA / "partial_occupancy.cif",
                                                            DATA / "partial_occupancy_hexagonal.cif"]


@pytest.fixture(scope="module")
def analysed():
    return {p.stem: (gap.wyckoff_crystal(to_crystal(p)), stats.analyze_cif(p.read_text(), symprec=0.1))
            for p in CRYSTALS}


@pytest.fixture(scope="module")
def generator():
    return Generator()


def parameters(lattice):
    return lattice_parameters(np.asarray(lattice))


def invariant(crystal, number, tol=1e-6):
    """Every operation of space group ``number`` (the table's setting) maps the crystal onto itself."""
    positions, species = gap.crystal_sites(crystal)
    types = gap.site_types(species)
    sg = wyckoff.space_group(number)
    for rot, trans in zip(sg.rotations, sg.translations):
        images = positions @ rot.T + trans
        diff = images[:, None, :] - positions[None, :, :]
        same = np.abs(diff - np.round(diff)).max(axis=-1) < tol
        if not np.all((same & (types[:, None] == types[None, :])).any(axis=1)):
            return False
    return True


def metric_invariant(lattice, number, tol=1e-8):
    """R^T G R = G for every rotation of the group: the lattice obeys the crystal-system constraints."""
    g = lattice @ lattice.T
    rots = wyckoff.space_group(number).rotations.astype(float)
    return np.allclose(np.einsum("nji,jk,nkl->nil", rots, g, rots), g, atol=tol * np.abs(g).max())


def composition(crystal):
    out = Counter()
    for z, occ in zip(crystal.numbers.tolist(), crystal.occupancies.tolist()):
        out[z] += occ
    return {z: round(v, 6) for z, v in out.items()}


def test_doctests():
    result = doctest.testmod(gap, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_wyckoff_crystal_agrees_with_statistics(analysed):
    for name, (w, record) in analysed.items():
        assert w.spacegroup == record.spacegroup, name
        assert w.n_sites == record.n_sites
        first = np.r_[True, record.site_orbit[1:] != record.site_orbit[:-1]]
        assert list(w.letters) == record.site_wyckoff[first].tolist()
        assert w.multiplicities.tolist() == record.site_multiplicity[first].tolist()
        assert len(w.frac_coords) == record.n_atoms
        np.testing.assert_allclose(parameters(w.lattice), record.lattice, atol=1e-6)
        assert invariant(w.to_crystal(), w.spacegroup)  # std cell in the setting of the Wyckoff tables
    w, _ = analysed["partial_occupancy"]
    assert w.species == (((12, 0.55), (28, 0.4)), ((8, 1.0),)) and w.letters == ("a", "b")


def test_crystal_sites_inverts_rows():
    text = (DATA / "partial_occupancy.cif").read_text()
    from synthxrd.structure import site_rows as _rows
    from synthxrd.validation import read_cif_sites

    lattice, positions, species = read_cif_sites(text)
    frac, numbers, occ = _rows(positions, species)
    from synthxrd.structure import Crystal

    pos2, species2 = gap.crystal_sites(Crystal(lattice, frac, numbers, occ))
    np.testing.assert_array_equal(pos2, positions)
    assert species2 == [tuple(s) for s in species]
    assert gap.site_types([((8, 1.0),), ((12, 0.55), (28, 0.4)), ((28, 0.40001), (12, 0.55))]).tolist() == [0, 1, 1]


def test_randomize_coordinates_keeps_group_lattice_composition(analysed):
    same, total = 0, 0
    for name, (w, record) in analysed.items():
        for seed in range(4):
            new = gap.randomize_coordinates(w, record.spacegroup, np.random.default_rng(seed))
            # the symmetry of the intended group is there exactly: spglib can only find it or a supergroup
            assert invariant(new, record.spacegroup), (name, seed)
            np.testing.assert_array_equal(new.lattice, w.lattice)
            np.testing.assert_allclose(parameters(new.lattice), record.lattice, atol=1e-6)
            assert composition(new) == composition(w.to_crystal())
            found = _spglib_number(new.lattice, *_sites_types(new), 0.1)
            total += 1
            same += found == record.spacegroup
            if found == record.spacegroup:  # same Wyckoff letters and multiplicities
                again = gap.wyckoff_crystal(new)
                assert sorted(zip(again.letters, again.multiplicities.tolist())) == \
                    sorted(zip(w.letters, w.multiplicities.tolist()))
    print(f"randomized coordinates: spglib(0.1) = intended group for {same}/{total}")
    assert same / total >= 0.9


def _sites_types(crystal):
    positions, species = gap.crystal_sites(crystal)
    return positions, gap.site_types(species)


def test_randomize_coordinates_changes_free_coordinates_only(analysed):
    for name in FREE:
        w, record = analysed[name]
        new = gap.randomize_coordinates(w, record.spacegroup, np.random.default_rng(1))
        old = w.to_crystal()
        assert new.frac_coords.shape == old.frac_coords.shape
        assert not np.allclose(np.sort(new.frac_coords, axis=0), np.sort(old.frac_coords, axis=0), atol=1e-3), name
    def points(c):
        return sorted(zip(c.numbers.tolist(), map(tuple, np.round(c.frac_coords % 1.0, 8) % 1.0)))

    for name in FIXED:
        w, record = analysed[name]
        new = gap.randomize_coordinates(w, record.spacegroup, np.random.default_rng(1))
        assert points(new) == points(w.to_crystal()), name  # 0-DOF positions: the same points


def test_randomize_coordinates_reproducible(analysed):
    w, record = analysed["WO3_monoclinic"]
    a = gap.randomize_coordinates(w, 14, np.random.default_rng(7))
    b = gap.randomize_coordinates(to_crystal(EXAMPLES / "WO3_monoclinic.cif"), 14, np.random.default_rng(7))
    c = gap.randomize_coordinates(w, 14, np.random.default_rng(8))
    for field in ("lattice", "frac_coords", "numbers", "occupancies"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.frac_coords, c.frac_coords)


def test_randomize_coordinates_keeps_partial_occupancies(analysed):
    w, _ = analysed["partial_occupancy_hexagonal"]
    new = gap.randomize_coordinates(w, w.spacegroup, np.random.default_rng(0))
    assert sorted(set(zip(new.numbers.tolist(), new.occupancies.tolist()))) == \
        sorted({(z, o) for s in w.species for z, o in s})
    assert composition(new) == composition(w.to_crystal())


def test_randomize_lattice(analysed, generator):
    same, total = 0, 0
    cfg = generator.config
    for name, (w, record) in analysed.items():
        for seed in range(3):
            new = gap.randomize_lattice(w, record.spacegroup, np.random.default_rng(seed), generator=generator)
            np.testing.assert_array_equal(new.frac_coords, w.to_crystal().frac_coords)
            np.testing.assert_array_equal(new.numbers, w.to_crystal().numbers)
            np.testing.assert_array_equal(new.occupancies, w.to_crystal().occupancies)
            assert metric_invariant(new.lattice, record.spacegroup), (name, seed)
            assert invariant(new, record.spacegroup)
            a, b, c, al, be, ga = parameters(new.lattice)
            system = w.crystal_system
            if system in ("tetragonal", "trigonal", "hexagonal", "cubic"):
                assert a == pytest.approx(b)
            if system == "cubic":
                assert a == pytest.approx(c)
            if system in ("trigonal", "hexagonal"):
                assert (al, be, ga) == pytest.approx((90, 90, 120))
            elif system != "triclinic":
                assert (al, ga) == pytest.approx((90, 90)) and (system == "monoclinic" or be == pytest.approx(90))
            volume = abs(np.linalg.det(new.lattice))
            assert cfg.min_volume_per_atom * len(w.frac_coords) <= volume <= cfg.max_volume
            assert not np.allclose(parameters(new.lattice), record.lattice, atol=1e-3)
            found = _spglib_number(new.lattice, *_sites_types(new), 0.1)
            total += 1
            same += found == record.spacegroup
    print(f"randomized lattice: spglib(0.1) = intended group for {same}/{total}")
    assert same / total >= 0.9


def test_randomize_lattice_volume_model_and_reproducibility(analysed, generator):
    w, record = analysed["Al2O3_corundum"]
    draws = [gap.randomize_lattice(w, 167, np.random.default_rng(s), generator=generator) for s in range(40)]
    volumes = np.array([abs(np.linalg.det(d.lattice)) for d in draws])
    assert len(np.unique(np.round(volumes, 6))) == len(volumes)
    # the generator's denseness around this V_atoms: median f near 1 (corundum itself: 0.92)
    assert 0.5 < np.median(volumes) / record.v_atoms < 2.0
    c_over_a = [parameters(d.lattice)[2] / parameters(d.lattice)[0] for d in draws]
    assert np.std(c_over_a) > 0.01  # the shape is drawn too, not only the scale
    again = gap.randomize_lattice(w, 167, np.random.default_rng(0), generator=generator)
    np.testing.assert_array_equal(again.lattice, draws[0].lattice)
    kept = gap.randomize_lattice(w, 167, np.random.default_rng(0), generator=generator, keep_volume=True)
    assert abs(np.linalg.det(kept.lattice)) == pytest.approx(record.volume)


def test_errors(analysed, generator):
    w, _ = analysed["NaCl"]
    with pytest.raises(StructureError, match="space group 225 at symprec 0.1, not the given 221"):
        gap.randomize_coordinates(w, 221, np.random.default_rng(0))
    with pytest.raises(StructureError, match="not the given 1"):
        gap.randomize_lattice(to_crystal(EXAMPLES / "NaCl.cif"), 1, np.random.default_rng(0), generator=generator)
    with pytest.raises(ConfigError, match="1..230"):
        gap.randomize_coordinates(w, 0, np.random.default_rng(0))
