"""Tests of synthxrd.real: the real crystal set of the statistics part, sampling, perturbations, the CLI."""

from __future__ import annotations

import shutil
import tarfile
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from synthxrd import stats
from synthxrd.cli import main
from synthxrd.dataset import Dataset, save_dataset
from synthxrd.errors import ConfigError, DataError
from synthxrd.real import (
    SUBSTITUTION_GROUPS,
    PerturbConfig,
    RealCrystals,
    build_real_set,
    perturb,
    read_failures,
    substitution_candidates,
)
from synthxrd.structure import CrystalBatch, scattering_table
from synthxrd.structure import site_rows as _rows
from synthxrd.validation import read_cif_sites

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:spglib")

DATA = Path(__file__).resolve().parent / "data"
MINI = DATA / "mini_collection"
EXAMPLES = Path(str(files("synthxrd") / "resources" / "examples"))
# cuau_disordered: pymatgen needs seconds to read it; the test part is never read
TEST_PART = ["cscl", "nacl", "TiO2_rutile", "cuau_disordered"]
BROKEN = "broken"


def spglib_number(crystal, symprec: float = 0.1) -> int:
    """spglib on the sites of a crystal's rows (consecutive rows at one position = one site)."""
    from synthxrd.real.perturbation import _sites, _symmetry

    positions, _, types = _sites(crystal.frac_coords, crystal.numbers, crystal.occupancies)
    sym = _symmetry(crystal.lattice, positions, types, symprec)
    return 0 if sym is None else sym[2]


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """Mini collection (with its broken CIF) + the example CIFs, a split, statistics of the statistics part."""
    root = tmp_path_factory.mktemp("real")
    src = root / "cifs"
    src.mkdir()
    for f in [*MINI.glob("*.cif"), *EXAMPLES.glob("*.cif"), DATA / "partial_occupancy_hexagonal.cif"]:
        shutil.copy(f, src / f.name)
    ids = sorted(p.stem for p in src.glob("*.cif"))
    split = root / "split.csv"
    split.write_text("id,prototype,part\n" + "".join(
        f"{i},proto_{i},{'test' if i in TEST_PART else 'statistics'}\n" for i in ids))
    stat_ids = [i for i in ids if i not in TEST_PART]
    statistics = stats.compute(src, workers=1, progress=False, ids=stat_ids).save(root / "stats.npz")
    tar = root / "cifs.tar.gz"
    with tarfile.open(tar, "w:gz") as tf:
        tf.add(src, arcname="structures")
    return {"root": root, "source": src, "tar": tar, "split": split, "statistics": statistics, "ids": ids,
            "stat_ids": stat_ids}


@pytest.fixture(scope="module")
def built(collection):
    out = collection["root"] / "real.h5"
    info = build_real_set(collection["source"], out, split=collection["split"], statistics=collection["statistics"],
                          min_count=1, workers=2, progress=False)
    return out, info, RealCrystals.load(out)


@pytest.fixture(scope="module")
def examples():
    """The example crystals (cubic, tetragonal, hexagonal, trigonal, monoclinic) and the partially
    occupied fixtures, read as the real set reads them, with their labels."""
    paths = sorted(EXAMPLES.glob("*.cif")) + [DATA / "partial_occupancy_hexagonal.cif"]
    crystals, labels = [], []
    for path in paths:
        text = path.read_text()
        lattice, positions, species = read_cif_sites(text)
        frac, numbers, occ = _rows(positions, species)
        crystals.append(CrystalBatch(lattice[None], frac, numbers, occ, np.array([0, len(numbers)])))
        labels.append(stats.analyze_cif(text, symprec=0.1).spacegroup)
    batch = CrystalBatch.concatenate(crystals)
    return CrystalBatch(batch.lattices, batch.frac_coords, batch.numbers, batch.occupancies, batch.offsets,
                        spacegroups=np.array(labels)), [p.stem for p in paths]


# --------------------------------------------------------------------------------------------------
# Building


def test_build_statistics_part_only(built, collection):
    out, info, real = built
    expected = sorted(set(collection["stat_ids"]) - {BROKEN})
    assert real.ids.tolist() == expected
    assert not set(real.ids.tolist()) & set(TEST_PART)
    assert [f["id"] for f in info["failures"]] == [BROKEN] and read_failures(out) == info["failures"]
    c = info["counts"]
    assert (c["n_in_split_part"], c["n_analysed"], c["n_failed"], c["n_kept"]) == (len(collection["stat_ids"]),
                                                                                  len(expected), 1, len(expected))
    m = real.metadata
    assert m["kind"] == "synthxrd.real_set" and m["split"]["sha256"] and m["statistics"]["format_version"] == 1
    assert m["source"]["fingerprint"]["n_cif"] == len(collection["ids"]) and m["synthxrd_version"]
    assert m["classes"] == stats.Statistics.load(collection["statistics"]).represented(1).tolist()
    assert sum(m["class_counts"].values()) == len(real) and info["bytes"] == out.stat().st_size


def test_round_trip_crystals_and_labels(built, collection):
    _, _, real = built
    for k, identifier in enumerate(real.ids.tolist()):
        text = (collection["source"] / f"{identifier}.cif").read_text()
        lattice, positions, species = read_cif_sites(text)
        frac, numbers, occ = _rows(positions, species)
        c = real.crystals[k]
        np.testing.assert_array_equal(c.lattice, lattice)
        np.testing.assert_array_equal(c.frac_coords, frac)
        np.testing.assert_array_equal(c.numbers, numbers)
        np.testing.assert_array_equal(c.occupancies, occ)
        assert real.labels[k] == stats.analyze_cif(text, symprec=0.1).spacegroup
    assert real.classes.tolist() == sorted(set(real.labels.tolist()))
    assert not real.extra["ordered"][real.ids.tolist().index("partial_occupancy_hexagonal")]
    assert real.extra["ordered"][real.ids.tolist().index("mg_hcp")]


def test_build_from_tar_and_filters(collection, built):
    out = collection["root"] / "tar_filtered.h5"
    info = build_real_set(collection["tar"], out, split=collection["split"], statistics=collection["statistics"],
                          classes=[225, 227, 229, 194, 14], max_sites=1, workers=1, progress=False)
    real = RealCrystals.load(out)
    assert set(real.labels.tolist()) <= {225, 227, 229, 194, 14}
    assert np.all(real.extra["n_sites"] <= 1)
    full = built[2]
    for i in real.ids.tolist():  # the tar gives the same crystals as the folder
        k = full.ids.tolist().index(i)
        np.testing.assert_array_equal(real.take([real.ids.tolist().index(i)]).frac_coords, full.take([k]).frac_coords)
    c = info["counts"]
    assert c["n_label_not_a_class"] > 0 and c["n_too_many_sites"] > 0 and c["n_kept"] == len(real)
    small = build_real_set(collection["source"], collection["root"] / "small.h5", split=collection["split"],
                           statistics=collection["statistics"], min_count=1, max_volume=60.0, workers=1,
                           progress=False)
    assert small["counts"]["n_volume_too_large"] > 0
    assert np.all(RealCrystals.load(small["path"]).extra["conventional_volume"] <= 60.0)


def test_refuses_test_part_and_overwrite(collection, built, tmp_path):
    bad = tmp_path / "bad_split.csv"
    bad.write_text(collection["split"].read_text() + "mg_hcp,proto_x,test\n")  # mg_hcp in both parts
    with pytest.raises(DataError, match="both parts"):
        build_real_set(collection["source"], tmp_path / "x.h5", split=bad, statistics=collection["statistics"],
                       min_count=1, workers=1, progress=False)
    # statistics of the whole collection hold test-part structures
    leaky = stats.compute(collection["source"], workers=1, progress=False, ids=["cscl", "mg_hcp"])
    with pytest.raises(ConfigError, match="test part"):
        build_real_set(collection["source"], tmp_path / "x.h5", split=collection["split"], statistics=leaky,
                       min_count=1, workers=1, progress=False)
    assert not (tmp_path / "x.h5").exists()
    out, _, _ = built
    before = out.stat().st_mtime_ns
    with pytest.raises(ConfigError, match="already exists"):
        build_real_set(collection["source"], out, split=collection["split"], statistics=collection["statistics"],
                       min_count=1, workers=1, progress=False)
    assert out.stat().st_mtime_ns == before
    with pytest.raises(ConfigError, match="classes"):
        build_real_set(collection["source"], tmp_path / "y.h5", split=collection["split"],
                       statistics=collection["statistics"], classes=[0, 300], workers=1, progress=False)


def test_load_bad_files(tmp_path, built):
    text = tmp_path / "not_h5.h5"
    text.write_text("hello")
    with pytest.raises(DataError, match="not_h5.h5"):
        RealCrystals.load(text)
    with pytest.raises(DataError, match="missing.h5"):
        RealCrystals.load(tmp_path / "missing.h5")
    plain = tmp_path / "plain.h5"
    save_dataset(plain, Dataset(built[2].take([0, 1])))
    with pytest.raises(DataError, match=r"plain\.h5: not a real crystal set"):
        RealCrystals.load(plain)


# --------------------------------------------------------------------------------------------------
# Sampling


def test_take_and_sample(built):
    _, _, real = built
    batch = real.take([2, 0, 2])
    assert len(batch) == 3 and batch.spacegroups.tolist() == real.labels[[2, 0, 2]].tolist()
    np.testing.assert_array_equal(batch[0].frac_coords, real.crystals[2].frac_coords)
    np.testing.assert_array_equal(batch[1].numbers, real.crystals[0].numbers)
    a, la = real.sample(50, np.random.default_rng(7))
    b, lb = real.sample(50, np.random.default_rng(7))
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_array_equal(a.frac_coords, b.frac_coords)
    np.testing.assert_array_equal(la, a.spacegroups)
    assert len(set(la.tolist())) > 3  # uniform over crystals: many groups in 50 draws
    c, lc = real.sample(40, np.random.default_rng(1), classes=[225, 221])
    assert set(lc.tolist()) == {221, 225}
    assert len(real.sample(0, np.random.default_rng(1))[0]) == 0
    with pytest.raises(ConfigError, match="no crystal"):
        real.sample(3, np.random.default_rng(1), classes=[2])
    with pytest.raises(ConfigError, match="indices"):
        real.take([len(real)])


# --------------------------------------------------------------------------------------------------
# Perturbations


@pytest.mark.parametrize("config", [PerturbConfig(), PerturbConfig(jitter=0.05, anisotropic_strain=0.03,
                                                                   isotropic_strain=0.1, substitution=1.0)])
def test_perturb_keeps_space_group(examples, config):
    batch, names = examples
    assert {14, 167, 186, 194}.issubset(set(batch.spacegroups.tolist()))  # monoclinic, trigonal, hexagonal
    for k in range(len(batch)):
        assert spglib_number(batch[k]) == batch.spacegroups[k], names[k]
    rng = np.random.default_rng(0)
    for _ in range(5):
        out = perturb(batch, batch.spacegroups, rng, config)
        np.testing.assert_array_equal(out.spacegroups, batch.spacegroups)
        for k in range(len(out)):
            assert spglib_number(out[k]) == batch.spacegroups[k], names[k]
            assert spglib_number(out[k], 1e-4) == batch.spacegroups[k], names[k]  # symmetric, not just within 0.1


def test_perturb_supercell_keeps_operations_of_the_primitive_cell(examples):
    """A 2x1x1 cell of wurtzite: its 3-fold axis does not map the cell onto itself, so spglib lists only
    some operations for that cell; the strain and jitter must still keep P6_3mc."""
    import spglib

    from synthxrd.real.perturbation import _sites, _symmetry

    batch, names = examples
    c = batch[names.index("ZnO_wurtzite")]
    frac = np.concatenate([[[x / 2, y, z], [(x + 1) / 2, y, z]] for x, y, z in c.frac_coords])
    numbers, occ = np.repeat(c.numbers, 2), np.repeat(c.occupancies, 2)
    lattice = c.lattice * np.array([[2.0], [1.0], [1.0]])
    cell = CrystalBatch(lattice[None], frac, numbers, occ, np.array([0, len(numbers)]), spacegroups=np.array([186]))
    positions, _, types = _sites(frac, numbers, occ)
    found = spglib.get_symmetry_dataset((lattice, positions, types), symprec=0.1)
    assert found.number == 186 and len(found.rotations) < 24  # 12 operations x 2 translations
    assert len(_symmetry(lattice, positions, types, 0.1)[0]) == 24
    rng = np.random.default_rng(4)
    for _ in range(5):
        out = perturb(cell, None, rng, PerturbConfig(anisotropic_strain=0.05, jitter=0.05))
        assert spglib_number(out[0], 1e-4) == 186


def test_perturb_is_reproducible_and_pure(examples):
    batch, _ = examples
    copy = CrystalBatch(*(getattr(batch, n).copy() for n in ("lattices", "frac_coords", "numbers", "occupancies",
                                                              "offsets")), spacegroups=batch.spacegroups.copy())
    from synthxrd.real import perturbation as real

    a = perturb(batch, None, np.random.default_rng(3), PerturbConfig(substitution=0.5))
    real._CACHE.clear()  # the symmetry cache changes nothing
    b = perturb(batch, None, np.random.default_rng(3), PerturbConfig(substitution=0.5))
    for name in ("lattices", "frac_coords", "numbers"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        np.testing.assert_array_equal(getattr(batch, name), getattr(copy, name))  # input untouched
    assert not np.allclose(a.lattices, batch.lattices)


def test_perturb_keeps_atoms_except_substitution(examples):
    batch, _ = examples
    out = perturb(batch, None, np.random.default_rng(1), PerturbConfig(substitution=0.0))
    np.testing.assert_array_equal(out.numbers, batch.numbers)
    np.testing.assert_array_equal(out.occupancies, batch.occupancies)
    np.testing.assert_array_equal(out.offsets, batch.offsets)
    symbols = scattering_table()[0]
    changed = 0
    for seed in range(5):
        out = perturb(batch, None, np.random.default_rng(seed), PerturbConfig(substitution=1.0))
        np.testing.assert_array_equal(out.occupancies, batch.occupancies)
        for k in range(len(batch)):
            old, new = batch[k].numbers, out[k].numbers
            mapping = {}
            for z0, z1 in zip(old.tolist(), new.tolist()):
                assert mapping.setdefault(z0, z1) == z1  # all atoms of an element become the same element
            targets = [z1 for z0, z1 in mapping.items() if z1 != z0]
            assert len(set(mapping.values())) == len(mapping)  # injective: two elements never merge
            for z0, z1 in mapping.items():
                if z1 != z0:
                    changed += 1
                    assert z1 in substitution_candidates(z0) and z1 not in old
            assert len(targets) == len(set(targets))
        assert set(out.numbers.tolist()) <= set(symbols.values())
    assert changed > 10


def test_substitution_table():
    symbols = scattering_table()[0]
    seen = set()
    for name, group in SUBSTITUTION_GROUPS.items():
        assert len(group) >= 2, name
        for k, symbol in enumerate(group):
            assert symbol in symbols and symbol not in seen, symbol
            seen.add(symbol)
            z = symbols[symbol]
            expected = {symbols[group[j]] for j in (k - 1, k + 1) if 0 <= j < len(group)}
            assert set(substitution_candidates(z)) == expected
    assert substitution_candidates(8) == () and substitution_candidates(1) == ()  # O, H: never substituted


def test_isotropic_strain_range(examples):
    batch, _ = examples
    x = 0.03
    vol = np.abs(np.linalg.det(batch.lattices))
    ratios = []
    for seed in range(10):
        out = perturb(batch, None, np.random.default_rng(seed),
                      PerturbConfig(isotropic_strain=x, anisotropic_strain=0.0, jitter=0.0, substitution=0.0))
        r = np.abs(np.linalg.det(out.lattices)) / vol
        ratios.append(r)
        # a pure scaling: metric G' = s^2 G with one s per crystal
        g0 = batch.lattices @ batch.lattices.transpose(0, 2, 1)
        g1 = out.lattices @ out.lattices.transpose(0, 2, 1)
        np.testing.assert_allclose(g1, g0 * (r ** (2 / 3))[:, None, None], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(out.frac_coords, batch.frac_coords)
    ratios = np.concatenate(ratios)
    assert np.all(ratios >= (1 - x) ** 3 - 1e-9) and np.all(ratios <= (1 + x) ** 3 + 1e-9)
    assert ratios.min() < 0.97 and ratios.max() > 1.03  # the range is used


def test_jitter_moves_free_parameters_only(examples):
    batch, names = examples
    cfg = PerturbConfig(isotropic_strain=0.0, anisotropic_strain=0.0, jitter=0.05, substitution=0.0)
    out = perturb(batch, None, np.random.default_rng(5), cfg)
    delta = out.frac_coords - batch.frac_coords
    for name in ("NaCl", "CsCl", "Si", "SrTiO3"):  # every atom on a fixed position
        k = names.index(name)
        assert np.abs(delta[batch.offsets[k]:batch.offsets[k + 1]]).max() < 1e-12, name
    k = names.index("TiO2_rutile")  # Ti 2a fixed; O 4f (x, x, 0): moves along [110] only
    rows = slice(batch.offsets[k], batch.offsets[k + 1])
    ti = batch.numbers[rows] == 22
    assert np.abs(delta[rows][ti]).max() < 1e-12
    d_o = delta[rows][~ti]
    assert np.abs(d_o).max() > 1e-4
    np.testing.assert_allclose(np.abs(d_o[:, 0]), np.abs(d_o[:, 1]), atol=1e-12)
    np.testing.assert_allclose(d_o[:, 2], 0.0, atol=1e-12)
    k = names.index("WO3_monoclinic")  # general positions: displaced by about the amplitude
    d = delta[batch.offsets[k]:batch.offsets[k + 1]] @ batch.lattices[k]
    assert 0.02 < np.sqrt((d ** 2).mean()) < 0.1


def test_anisotropic_strain_symmetrised(examples):
    from synthxrd.structure import lattice_parameters as _lattice_parameters

    batch, names = examples
    cfg = PerturbConfig(isotropic_strain=0.0, anisotropic_strain=0.02, jitter=0.0, substitution=0.0)
    out = perturb(batch, None, np.random.default_rng(2), cfg)
    for k, name in enumerate(names):
        p0, p1 = _lattice_parameters(batch.lattices[k]), _lattice_parameters(out.lattices[k])
        if name in ("NaCl", "CsCl", "Si", "SrTiO3"):  # cubic: lengths stay equal, angles 90
            np.testing.assert_allclose(p1[:3], p1[0], rtol=1e-9)
            np.testing.assert_allclose(p1[3:], 90.0, atol=1e-9)
        if name in ("ZnO_wurtzite", "Al2O3_corundum"):  # hexagonal axes: a = b, gamma 120
            assert p1[0] == pytest.approx(p1[1], rel=1e-9) and p1[5] == pytest.approx(120.0, abs=1e-7)
            assert p1[2] / p1[0] != pytest.approx(p0[2] / p0[0], rel=1e-5)  # c/a changes
        if name == "WO3_monoclinic":  # alpha, gamma stay 90, beta and the three lengths change
            np.testing.assert_allclose(p1[[3, 5]], 90.0, atol=1e-7)
            assert abs(p1[4] - p0[4]) > 1e-4 and np.all(np.abs(p1[:3] / p0[:3] - 1) > 1e-6)


def test_perturb_config_validation():
    assert PerturbConfig().isotropic_strain == 0.03 and PerturbConfig().jitter == 0.02
    with pytest.raises(ConfigError, match="jitter"):
        PerturbConfig(jitter=-0.1)
    with pytest.raises(ConfigError, match="substitution"):
        PerturbConfig(substitution=1.5)
    with pytest.raises(ConfigError, match="isotropic_strain"):
        PerturbConfig(isotropic_strain=float("nan"))
    with pytest.raises(ConfigError, match="symprec"):
        PerturbConfig(symprec=0)
    with pytest.raises(ConfigError, match="anisotropic_strain"):
        PerturbConfig(anisotropic_strain="0.1")


# --------------------------------------------------------------------------------------------------
# CLI


def test_cli_end_to_end(collection, tmp_path, capsys):
    small = tmp_path / "cifs"
    small.mkdir()
    for name in ("mg_hcp", "cu_primitive", "srtio3", "cscl", BROKEN):
        shutil.copy(collection["source"] / f"{name}.cif", small)
    split = tmp_path / "split.csv"
    split.write_text("id,prototype,part\n" + "".join(f"{i},p_{i},{'test' if i == 'cscl' else 'statistics'}\n"
                                                     for i in ("mg_hcp", "cu_primitive", "srtio3", "cscl", BROKEN)))
    out = tmp_path / "sub" / "real.h5"
    argv = ["real", "build", str(small), "--out", str(out), "--split", str(split),
            "--statistics", str(collection["statistics"]), "-j", "1", "--min-count", "1", "--no-progress"]
    assert main(argv) == 1  # broken.cif failed (listed)
    printed = capsys.readouterr().out
    assert "failed: broken" in printed and "wrote" in printed and out.is_file()
    real = RealCrystals.load(out)
    assert sorted(real.ids.tolist()) == ["cu_primitive", "mg_hcp", "srtio3"]
    assert main(argv) == 2  # exists, no --overwrite
    assert "already exists" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 1
    assert main(["real", "info", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 real crystals" in printed and "most frequent" in printed
    assert main(["real", "info", str(split)]) == 2
    assert "split.csv" in capsys.readouterr().err
    # nothing analysable: exit 2, nothing written
    only_broken = tmp_path / "only_broken"
    only_broken.mkdir()
    shutil.copy(MINI / "broken.cif", only_broken / "broken.cif")
    split_broken = tmp_path / "split_broken.csv"
    split_broken.write_text("id,prototype,part\nbroken,p,statistics\n")
    empty = tmp_path / "empty.h5"
    assert main(["real", "build", str(only_broken), "--out", str(empty), "--split", str(split_broken),
                 "--statistics", str(collection["statistics"]), "-j", "1", "--classes", "225", "--no-progress"]) == 2
    assert "could be analysed" in capsys.readouterr().err and not empty.exists()


def test_training_stream_mixes_perturbed_real_crystals(built):
    """data.BatchMaker: real_fraction of each batch from the set (labels = their class indices)."""
    from synthxrd.data import BatchMaker, StreamConfig

    path, _, real = built
    maker = BatchMaker(StreamConfig(batch_size=8, seed=3, real=str(path), real_fraction=0.5, renders=2,
                                    perturb={"substitution": 0.0}))
    batch = maker(0)
    assert batch.inputs.shape == (8, 8501) and np.allclose(batch.inputs.max(axis=1), 1.0)
    real_groups = maker.classes[batch.labels[4:]]  # the last 4 rows are the real crystals
    assert np.isin(real_groups, real.classes).all()
    again = maker(0)
    assert np.array_equal(again.inputs, batch.inputs) and np.array_equal(again.labels, batch.labels)
    direct = BatchMaker(StreamConfig(batch_size=4, seed=3, real=str(path), real_fraction=1.0))(1)
    assert np.isin(maker.classes[direct.labels], real.classes).all()  # the reference's "direct" baseline
