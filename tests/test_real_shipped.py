"""The real crystal set shipped in the package (synthxrd.real.compact): its contents, its provenance, that
no structure type of the held-out parts is in it, and that `synthxrd train` mixes it in by default."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from synthxrd.real import PerturbConfig, RealCrystals, perturb, shipped_path
from synthxrd.dataset import sha256_file
from synthxrd.real.compact import load_compact, real_set_record, save_compact
from synthxrd.split import load_split
from synthxrd.structure import CrystalBatch

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:spglib")


@pytest.fixture(scope="module")
def real():
    return RealCrystals.load()


def test_the_shipped_set_loads_by_default_and_by_name(real):
    assert real.path == shipped_path() and real.is_shipped
    assert shipped_path().stat().st_size < 10 * 2**20
    named = RealCrystals.load("shipped")
    assert len(named) == len(real) and np.array_equal(named.ids, real.ids)


def test_counts_and_provenance_agree_with_the_shipped_split_and_statistics(real):
    from synthxrd.stats import Statistics

    m = real.metadata
    c = m["counts"]
    assert c["n_kept"] == len(real) == len(real.ids) == len(np.unique(real.ids))
    assert c["n_atoms"] == len(real.crystals.numbers)
    per = c["per_source"]
    assert per["mp"]["n_kept"] + per["amcsd"]["n_kept"] == len(real)
    assert per["mp"]["n_kept"] > 25_000 and per["amcsd"]["n_kept"] > 1_000
    source = real.extra["source"]
    assert (source == 0).sum() == per["mp"]["n_kept"] and (source == 1).sum() == per["amcsd"]["n_kept"]
    assert all(i.startswith("amcsd-") for i in real.ids[source == 1])
    assert not any(i.startswith("amcsd-") for i in real.ids[source == 0])
    assert m["split"]["sha256"] == load_split().sha256
    assert m["statistics"]["sha256"] == Statistics.load().sha256
    names = [s["name"] for s in m["sources"]]
    assert names == ["mp", "amcsd"]
    root = Path(str(files("synthxrd")))
    for s in m["sources"]:
        assert len(s["sha256"]) == 64 and (root / s["licence"]).is_file()
        assert "/" not in s["file"]  # a file name, no machine path
    assert set(np.unique(real.labels).tolist()) <= set(m["classes"])
    assert {int(k): v for k, v in m["class_counts"].items()} == dict(zip(*[a.tolist() for a in
                                                                         np.unique(real.labels, return_counts=True)]))
    v = m["verification"]
    assert v["n_crystals"] == len(real) and v["n_rebuilt_differs_from_as_read"] == 0
    assert v["pattern_correlation_min"] > 0.999


def test_no_crystal_of_a_held_out_part_or_prototype(real):
    """MP: only statistics-part ids. AMCSD: no prototype of the test (or calibration) part, checked with the
    prototypes the shipped AMCSD library computed for the same structures."""
    from synthxrd.match import ReferenceLibrary

    split = load_split()
    mp = real.ids[real.extra["source"] == 0]
    assert np.isin(mp, split.ids_of("statistics")).all()
    assert not np.isin(real.ids, np.concatenate([split.ids_of("test"), split.ids_of("calibration")])).any()
    amcsd = real.ids[real.extra["source"] == 1]
    lib = ReferenceLibrary.load("amcsd")
    known = np.isin(amcsd, lib.ids)
    assert known.mean() > 0.99
    protos = lib.prototypes[np.searchsorted(lib.ids, amcsd[known])] if np.all(lib.ids[:-1] <= lib.ids[1:]) else \
        np.array([lib.prototypes[np.flatnonzero(lib.ids == i)[0]] for i in amcsd[known]])
    for part in ("test", "calibration"):
        assert not np.isin(protos, split.prototypes_of(part)).any(), part
        assert not np.isin(real.extra["prototypes"], split.prototypes_of(part)).any(), part  # as stored, MP too


def test_a_sample_perturbs_and_simulates(real):
    from synthxrd.simulate import patterns

    rng = np.random.default_rng(0)
    crystals, labels = real.sample(6, rng, classes=[14, 62, 225])
    assert set(labels.tolist()) <= {14, 62, 225}
    moved = perturb(crystals, labels, rng, PerturbConfig())
    assert np.array_equal(moved.spacegroups, labels) and not np.allclose(moved.lattices, crystals.lattices)
    out = patterns(moved, rng=rng)
    assert out.shape == (6, 8501) and np.isfinite(out).all() and np.allclose(out.max(axis=1), 1.0)


def test_compact_round_trip_is_exact_to_the_quantum(tmp_path):
    rng = np.random.default_rng(1)
    counts = np.array([3, 1, 5])
    offsets = np.concatenate([[0], np.cumsum(counts)])
    batch = CrystalBatch(rng.uniform(3, 9, (3, 3, 3)), rng.uniform(-1, 2, (9, 3)), rng.integers(1, 95, 9),
                         np.where(rng.random(9) < 0.5, 1.0, 0.5), offsets, spacegroups=np.array([1, 14, 225]))
    extra = {"n_sites": counts, "conventional_volume": np.ones(3), "ordered": np.ones(3, bool),
             "source": np.zeros(3, int)}
    path = save_compact(tmp_path / "x.npz", batch, np.array(["a", "b", "c"]), extra, {"kind": "synthxrd.real_set"},
                        exact=[2])
    back, ids, extra2, meta = load_compact(path)
    assert ids.tolist() == ["a", "b", "c"] and meta["format"] == 1
    d = back.frac_coords - batch.frac_coords
    assert np.abs(d - np.rint(d)).max() <= 0.5 / 65536 + 1e-12
    assert np.allclose(back.lattices, batch.lattices, rtol=1e-7)
    assert np.array_equal(back[2].frac_coords, batch[2].frac_coords)  # stored exactly
    assert np.array_equal(back.lattices[2], batch.lattices[2]) and not np.array_equal(back[0].frac_coords,
                                                                                      batch[0].frac_coords)
    assert np.array_equal(back.numbers, batch.numbers) and np.array_equal(back.spacegroups, batch.spacegroups)
    assert RealCrystals.load(path).ids.tolist() == ["a", "b", "c"]


def test_stored_operations_perturb_as_spglib_does(real):
    """The operations stored with the set give the very perturbation that spglib's give."""
    from synthxrd.real import perturbation

    assert real.operations_symprec == PerturbConfig().symprec == real.metadata["operations"]["symprec"]
    assert int(real.extra["sym_counts"].sum()) == real.metadata["operations"]["n_operations"]
    idx = real.draw(25, np.random.default_rng(3))
    crystals = real.take(idx)
    stored = perturb(crystals, None, np.random.default_rng(4), operations=real.operations(idx))
    perturbation._CACHE.clear()
    found = perturb(crystals, None, np.random.default_rng(4))
    assert np.allclose(stored.frac_coords, found.frac_coords, atol=1e-12, rtol=0)
    assert np.allclose(stored.lattices, found.lattices, atol=1e-12, rtol=0)
    assert np.array_equal(stored.numbers, found.numbers)


def test_the_loader_and_the_perturbation_need_numpy_only():
    """As on a GPU machine without spglib, pymatgen or h5py: load, sample, perturb with the stored
    operations (full perturbation, no warning) and simulate; without them, a warning and isotropic
    strain and substitution only."""
    code = (
        "import sys, warnings\n"
        "for m in ('spglib', 'pymatgen', 'h5py', 'ray'): sys.modules[m] = None\n"
        "import numpy as np\n"
        "from synthxrd.real import RealCrystals, perturb, PerturbConfig\n"
        "from synthxrd.simulate import patterns\n"
        "r = RealCrystals.load()\n"
        "rng = np.random.default_rng(0)\n"
        "i = r.draw(3, rng)\n"
        "c = r.take(i)\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    c2 = perturb(c, None, rng, PerturbConfig(substitution=0, isotropic_strain=0, anisotropic_strain=0),\n"
        "                 operations=r.operations(i))\n"
        "    assert not w and not np.allclose(c2.frac_coords, c.frac_coords)  # jitter: the symmetry was known\n"
        "    perturb(r.take(r.draw(3, rng)), None, rng, PerturbConfig())  # others: not analysed yet\n"
        "assert any('spglib is not installed' in str(x.message) for x in w)\n"
        "print(len(r), patterns(c2, rng=rng).shape)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "(3, 8501)" in proc.stdout


def _train_flags(out):
    return ["train", "--out", str(out), "--max-steps", "2", "--model", "park_small", "--batch-size", "8",
            "--workers", "0", "--no-progress", "--set", "n_val_random=8", "--set", 'val_sets=["random"]']


def test_train_mixes_the_shipped_set_by_default_and_records_it(tmp_path):
    pytest.importorskip("torch")
    from synthxrd.cli import main

    assert main(_train_flags(tmp_path / "on")) == 0
    run = json.loads((tmp_path / "on" / "run.json").read_text())
    assert run["config"]["real"] == "shipped" and run["config"]["real_fraction"] == 0.5
    assert run["real"]["shipped"] and run["real"]["sha256"] == sha256_file(shipped_path())
    assert run["real"]["n_crystals"] == len(RealCrystals.load())
    assert 'real = "shipped"' in (tmp_path / "on" / "config.toml").read_text()

    assert main([*_train_flags(tmp_path / "off"), "--real", "none"]) == 0
    run = json.loads((tmp_path / "off" / "run.json").read_text())
    assert run["real"] is None and run["config"]["real"] is None and run["config"]["real_fraction"] == 0.0


def test_real_fraction_zero_or_none_is_synthetic_only():
    pytest.importorskip("torch")
    from synthxrd.train import TrainConfig

    assert TrainConfig().real == "shipped" and TrainConfig().real_fraction == 0.5
    for cfg in (TrainConfig(real="none"), TrainConfig(real_fraction=0.0), TrainConfig(real=None)):
        assert cfg.real is None and cfg.real_fraction == 0.0
    assert real_set_record("shipped")["file"] == "real_crystals.npz"


def test_real_info_describes_the_shipped_set(capsys):
    from synthxrd.cli import main

    assert main(["real", "info", "shipped"]) == 0
    out = capsys.readouterr().out
    assert "sources: mp structures.tar.xz" in out and "amcsd amcsd_cif1.db" in out and "checked:" in out
