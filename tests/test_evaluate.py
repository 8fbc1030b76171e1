"""Evaluation metrics on hand-made arrays, the prior baseline, manifests, datasets and `synthxrd evaluate`."""

from __future__ import annotations

import csv
import json
from importlib.resources import files
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from synthxrd.cli import main  # noqa: E402
from synthxrd.errors import ConfigError, DataError  # noqa: E402
from synthxrd.evaluate import (  # noqa: E402
    OUTPUT_FILES,
    Evaluation,
    evaluate_dataset,
    evaluate_manifest,
    evaluate_validation_set,
    calibrated_ece,
    expected_calibration_error,
    metrics,
    prior_probabilities,
    read_manifest,
    topk_hits,
    write_report,
)
from synthxrd.predict import Predictor  # noqa: E402
from synthxrd.stats import Statistics  # noqa: E402

SAMPLES = ("Al2O3", "MnS", "RuO2", "Sn", "WO3")  # 167, 225, 136, 141, 14


@pytest.fixture(scope="module")
def predictor(tiny_run) -> Predictor:
    return Predictor.load(tiny_run, device="cpu", library=None)


def onehot_rows(*rows: dict[int, float]) -> np.ndarray:
    p = np.zeros((len(rows), 230))
    for i, row in enumerate(rows):
        for sg, v in row.items():
            p[i, sg - 1] = v
    return p


# ---- metrics on hand-made arrays ----------------------------------------------------------------

def test_metrics_hand_made():
    p = onehot_rows(
        {225: 0.6, 216: 0.3, 14: 0.1},              # true 225: all right
        {216: 0.5, 225: 0.3, 14: 0.2},              # true 225: top-1 wrong; top-5, system, extinction group right
        {14: 0.45, 62: 0.55},                       # true 14: top-1 wrong, system: orthorhombic wins -> wrong
        {2: 0.1, 3: 0.2, 10: 0.25, 6: 0.25, 14: 0.2},  # true 14: top-1 wrong; system right; ext. group of P2 wins
    )
    y = np.array([225, 225, 14, 14])
    assert topk_hits(p, y, 1).tolist() == [True, False, False, False]
    assert topk_hits(p, y, 2).tolist() == [True, True, True, False]
    assert topk_hits(p, y, 5).tolist() == [True, True, True, True]
    m = metrics(p, y)
    assert m["n"] == 4 and m["top1"] == 0.25 and m["top5"] == 1.0
    assert m["crystal_system"] == 0.75  # rows 1, 2, 4
    assert m["extinction_group"] == 0.5  # rows 1 and 2 (Fm-3m and F-43m share one)
    assert m["mean_p_true"] == pytest.approx((0.6 + 0.3 + 0.45 + 0.2) / 4)
    assert metrics(np.zeros((0, 230)), np.zeros(0, int))["top1"] is None
    with pytest.raises(ValueError):
        metrics(p[:, :100], y)


def test_ece():
    # perfectly calibrated toy: confidence 0.6 -> 60 % right, confidence 0.9 -> 90 %, confidence 1 -> all
    conf = np.r_[np.full(10, 0.6), np.full(10, 0.9), np.full(3, 1.0)]
    hit = np.r_[np.arange(10) < 6, np.arange(10) < 9, np.ones(3, bool)]
    ece, bins = expected_calibration_error(conf, hit)
    assert ece == pytest.approx(0.0, abs=1e-12)
    assert len(bins) == 15 and sum(b["count"] for b in bins) == 23
    assert bins[8]["count"] == 10 and bins[8]["accuracy"] == pytest.approx(0.6)  # (8/15, 9/15] holds 0.6
    assert bins[14]["count"] == 3
    # over-confident: always 0.9 and always wrong
    assert expected_calibration_error(np.full(5, 0.9), np.zeros(5, bool))[0] == pytest.approx(0.9)
    # mixed bins: |0.5 - 0.3| * 1/2 + |1 - 0.95| * 1/2
    assert expected_calibration_error([0.3, 0.3, 0.95, 0.95], [1, 0, 1, 1])[0] == pytest.approx(0.125)
    assert np.isnan(expected_calibration_error([], [])[0])
    assert expected_calibration_error([0.0], [False])[1][0]["count"] == 1  # 0 falls into the first bin


def test_the_ece_floor_of_calibrated_probabilities():
    """calibrated_ece: the ECE of answers drawn right at their own confidence, checked by hand and
    against expected_calibration_error on the same draws."""
    # certain answers that are always right: no error at all
    assert calibrated_ece(np.ones(50)) == {"mean": 0.0, "q95": 0.0}
    # one answer at 1/2: right or wrong, its ECE is always 1/2
    assert calibrated_ece([0.5])["mean"] == pytest.approx(0.5)
    # N answers at 1/2 in one bin: E|mean(B) - 1/2| -> sqrt(2/pi) / (2 sqrt(N)); 0.0199 for N = 400
    floor = calibrated_ece(np.full(400, 0.5), draws=4000)
    assert floor["mean"] == pytest.approx(np.sqrt(2 / np.pi) / 40, rel=0.06)
    assert floor["q95"] > floor["mean"]
    # it falls as 1/sqrt(N): four times the patterns, half the floor
    assert calibrated_ece(np.full(1600, 0.5), draws=4000)["mean"] == pytest.approx(floor["mean"] / 2, rel=0.1)
    # the same draws scored one by one with expected_calibration_error
    conf = np.random.default_rng(3).uniform(0.05, 1.0, 120)
    draws = np.random.default_rng(7).random((30, 120)) < conf
    by_hand = [expected_calibration_error(conf, hit)[0] for hit in draws]
    floor = calibrated_ece(conf, draws=30, rng=np.random.default_rng(7))
    assert floor["mean"] == pytest.approx(np.mean(by_hand), abs=1e-12)
    assert calibrated_ece([]) is None
    # the summary gives it beside every ECE of the model
    p = onehot_rows({14: 0.7, 2: 0.3}, {62: 0.9, 14: 0.1})
    ev = Evaluation(p, np.array([14, 2]), ["a", "b"], np.array([2, 14, 62]), prior_probabilities([2, 14, 62]))
    s = ev.summary()
    assert s["all"]["model"]["ece_floor"] == calibrated_ece([0.7, 0.9])
    assert "ece_floor" not in s["all"]["baseline"]


def test_baseline_prior_and_evaluation_object():
    classes = np.array([2, 14, 62, 225])
    prior = prior_probabilities(classes)
    assert prior.sum() == pytest.approx(1.0) and np.count_nonzero(prior) == 4
    np.testing.assert_allclose(prior[classes - 1], Statistics.load().spacegroup_prior(classes))
    assert prior.argmax() + 1 == 14  # P2_1/c is the most frequent of these
    p = onehot_rows({14: 1.0}, {62: 1.0}, {225: 1.0}, {225: 1.0}, {14: 1.0})
    y = np.array([14, 14, 225, 229, 62])  # 229 is not a class
    ev = Evaluation(p, y, [f"s{i}" for i in range(5)], classes, prior, description="toy")
    s = ev.summary()
    assert (s["n_patterns"], s["n_known"], s["n_unknown"], s["unknown_spacegroups"]) == (5, 4, 1, [229])
    assert s["all"]["model"]["top1"] == pytest.approx(2 / 5) and s["known"]["model"]["top1"] == pytest.approx(2 / 4)
    # the baseline always ranks P2_1/c first: right for the two P2_1/c patterns only
    assert s["all"]["baseline"]["top1"] == pytest.approx(2 / 5) and s["known"]["baseline"]["top1"] == 0.5
    assert s["all"]["baseline"]["top5"] == pytest.approx(4 / 5)  # every class but not 229
    assert s["all"]["baseline"]["crystal_system"] == pytest.approx(2 / 5)  # monoclinic
    assert s["all"]["model"]["crystal_system"] == pytest.approx(3 / 5)  # 225 vs 229 both cubic
    rows = {r["spacegroup"]: r for r in ev.per_spacegroup()}
    assert rows[14]["n"] == 2 and rows[14]["top1"] == 0.5 and not rows[229]["known"]
    cs = ev.confusion_crystal_system()
    assert cs.sum() == 5 and cs[6, 6] == 2 and cs[1, 2] == 1
    chosen, m = ev.confusion_spacegroups(3)
    assert chosen == [14, 62, 225] and m.shape == (3, 4) and m.sum() == 4
    assert ev.reliability()["ece"] == pytest.approx(metrics(p, y)["ece"])
    json.dumps(ev.to_dict())


# ---- manifests ------------------------------------------------------------------------------------

def _subset_manifest(experimental_data: Path, folder: Path, broken: bool = False) -> Path:
    with (experimental_data / "manifest.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames
        rows = [r for r in reader if r["variant"] in ("raw", "background_removed")
                and r["sample_id"] in {f"xred_{s}" for s in SAMPLES}]
    for r in rows:  # relative to the new CSV's folder
        r["pattern_path"] = os.path.relpath(experimental_data / r["pattern_path"], folder)
    if broken:
        (folder / "broken.csv").write_text("not,a\npattern,file\n")
        rows.append(dict(rows[0], sample_id="broken", pattern_path="broken.csv"))
    path = folder / "manifest.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_read_manifest(experimental_data, tmp_path):
    entries = read_manifest(experimental_data / "manifest.csv", variant="raw")
    assert len(entries) == 17 and all(e.variant == "raw" and e.path.is_file() for e in entries)
    assert entries[0].sample_id == "xred_Al2O3" and entries[0].spacegroup == 167
    assert entries[0].wavelength == pytest.approx(1.54184)
    with pytest.raises(ConfigError, match="variants: .*raw"):
        read_manifest(experimental_data / "manifest.csv", variant="nope")
    bad = tmp_path / "bad.csv"
    bad.write_text("pattern_path,spacegroup\nx.xy,231\n")
    with pytest.raises(DataError, match="line 2: spacegroup '231'"):
        read_manifest(bad)
    bad.write_text("path,sg\nx.xy,3\n")
    with pytest.raises(DataError, match="no column 'pattern_path'"):
        read_manifest(bad)


def test_evaluate_manifest_subset(predictor, experimental_data, tmp_path):
    manifest = _subset_manifest(experimental_data, tmp_path)
    ev = evaluate_manifest(predictor, manifest, variant="raw")
    assert len(ev.labels) == 5 and sorted(ev.labels.tolist()) == [14, 136, 141, 167, 225]
    assert ev.sources[0] == "xred_Al2O3" and not ev.failures
    np.testing.assert_allclose(ev.probabilities.sum(axis=1), 1.0)
    s = ev.summary()
    assert s["n_known"] + s["n_unknown"] == 5
    assert s["all"]["baseline"]["top1"] == metrics(np.tile(ev.baseline, (5, 1)), ev.labels)["top1"]
    written = write_report(ev, tmp_path / "out")
    assert [p.name for p in written] == list(OUTPUT_FILES) and all(p.stat().st_size > 0 for p in written)
    with pytest.raises(ConfigError, match="already exists"):
        write_report(ev, tmp_path / "out")


def test_cli_evaluate_manifest(tiny_fused, experimental_data, tmp_path, capsys):
    from synthxrd.match import ReferenceLibrary

    manifest = _subset_manifest(experimental_data, tmp_path, broken=True)
    out = tmp_path / "report"
    args = ["evaluate", "--model", str(tiny_fused), "--manifest", str(manifest), "--variant", "raw", "--out", str(out),
            "--device", "cpu"]
    assert main(args) == 1  # the broken row
    stdout, stderr = capsys.readouterr()
    assert [line for line in stderr.splitlines() if line.strip()] == [
        line for line in stderr.splitlines() if "broken.csv" in line] and "broken.csv" in stderr
    assert "5 patterns" in stdout and "1 failed" in stdout
    for label in ("top-1 space group", "top-5 space group", "crystal system", "extinction group", "ECE (15 bins)"):
        assert label in stdout
    size = len(ReferenceLibrary.load())  # the default library, MP + AMCSD
    assert "fused network  search   prior" in stdout and f"library: default, {size} structures" in stdout
    doc = json.loads((out / "evaluation.json").read_text())
    assert {"model", "network", "search", "baseline"} <= set(doc["summary"]["all"])
    assert doc["predictions"][0]["matches"][0]["id"].startswith(("mp-", "amcsd-"))
    assert doc["config"]["model"]["library"]["n_structures"] == size and doc["config"]["model"]["fusion"]
    # the fusion's "p that the best match is right" next to how often it is (5 bins of c)
    assert "p that the best match is right (fusion c)" in stdout
    rel = doc["match_reliability"]
    assert rel["n_bins"] == 5 and sum(b["count"] for b in rel["bins"]) == 5 and 0 <= rel["accuracy"] <= 1
    best = [p["matches"][0]["spacegroup"] if p["matches"] else 0 for p in doc["predictions"]]
    right = np.mean([b == p["spacegroup"] for b, p in zip(best, doc["predictions"])])
    assert rel["accuracy"] == pytest.approx(right)
    assert doc["summary"]["n_patterns"] == 5 and len(doc["failures"]) == 1 and len(doc["predictions"]) == 5
    assert len(doc["reliability"]["bins"]) == 15 and len(doc["confusion_crystal_system"]["matrix"]) == 7
    for name in OUTPUT_FILES[1:]:
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert main(args) == 2 and "already exists" in capsys.readouterr().err  # no overwrite
    assert main(["evaluate", "--model", str(tiny_fused), "--out", str(out)]) == 2  # no input
    assert "exactly one input" in capsys.readouterr().err
    assert main([*args[:-2], "--no-library", "--overwrite"]) == 1
    stdout = capsys.readouterr().out
    assert "model   prior" in stdout and "library:" not in stdout
    assert main([*args, "--no-library", "--hold-out-test"]) == 2
    assert "--no-library excludes" in capsys.readouterr().err


def test_evaluate_labelled_patterns_npz_with_a_held_out_library(tiny_fused, tmp_path, capsys):
    """--patterns: labelled patterns on one axis; --hold-out-test: the split's test part leaves the library."""
    from synthxrd import simulate
    from synthxrd.match import ReferenceLibrary
    from synthxrd.split import load_split
    from synthxrd.structure import read_cif

    examples = Path(str(files("synthxrd") / "resources" / "examples"))
    names = ("NaCl", "Si", "SrTiO3")
    tt = np.arange(10.0, 85.0, 0.02)
    patterns = []
    for name in names:
        pos, inten = simulate.peaks(read_cif(examples / f"{name}.cif"), 1.5406, (9.0, 86.0))
        patterns.append(sum(i * np.exp(-0.5 * ((tt - p) / 0.08) ** 2) for p, i in zip(pos, inten)))
    path = tmp_path / "labelled.npz"
    np.savez(path, two_theta=tt, patterns=np.array(patterns), spacegroup=np.array([225, 227, 221]))
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(tiny_fused), "--patterns", str(path), "--out", str(out), "--hold-out-test",
                 "--device", "cpu"]) == 0
    stdout = capsys.readouterr().out
    full = ReferenceLibrary.load()
    held = full.without_part(load_split(), "test")
    removed = len(full) - len(held)
    assert removed > len(set(load_split().ids_of("test")) & set(ReferenceLibrary.load("mp").ids.tolist()))
    assert f"library: default, {len(held)} structures ({removed} of the split's test part held out)" in stdout
    doc = json.loads((out / "evaluation.json").read_text())
    assert doc["summary"]["n_patterns"] == 3 and {"network", "search"} <= set(doc["summary"]["all"])
    # SrTiO3 (mp-5229) is in the statistics part and found; NaCl and Si are in the test part, held out
    assert doc["predictions"][2]["top"][0][0] == 221 and doc["config"]["model"]["library"]["held_out"]["n_removed"] > 0
    bad = tmp_path / "bad.npz"
    np.savez(bad, two_theta=tt)
    assert main(["evaluate", "--model", str(tiny_fused), "--patterns", str(bad), "--out", str(tmp_path / "b")]) == 2
    assert "bad.npz: needs arrays two_theta, patterns and spacegroup" in capsys.readouterr().err


# ---- datasets and validation sets -----------------------------------------------------------------

def _tiny_dataset(predictor, path: Path, n: int = 6, two_theta=None) -> Path:
    from synthxrd.dataset import Dataset, save_dataset
    from synthxrd.structure import CrystalBatch

    grid = predictor.grid.values() if two_theta is None else two_theta
    rng = np.random.default_rng(1)
    patterns = np.stack([sum(np.exp(-0.5 * ((grid - c) / 0.08) ** 2) for c in rng.uniform(10, 80, 5))
                         for _ in range(n)]).astype(np.float32)
    patterns /= patterns.max(axis=1, keepdims=True)
    labels = np.array([14, 62, 225, 2, 14, 230][:n])  # 230 (Ia-3d) is not one of the classes of the tiny run
    crystals = CrystalBatch(np.tile(np.eye(3) * 4.0, (n, 1, 1)), rng.random((n, 3)), np.full(n, 11),
                            np.ones(n), np.arange(n + 1), spacegroups=labels)
    save_dataset(path, Dataset(crystals, patterns, np.asarray(grid, np.float64), {"made": "by hand"}))
    return path


def _tiny_cache(dataset: Path, cache: Path, name: str = "match") -> Path:
    """A validation cache made by hand: the set file as <name>.h5 plus /validation/ids and a manifest."""
    import h5py

    cache.mkdir()
    dataset.replace(cache / f"{name}.h5")
    with h5py.File(cache / f"{name}.h5", "a") as h5:
        n = len(h5["patterns"]) if "patterns" in h5 else 6
        h5.create_group("validation").create_dataset("ids", data=np.array([f"mp-{i}" for i in range(n)], "S"))
    (cache / "manifest.json").write_text(json.dumps({"kind": "synthxrd.validation", "format_version": 1,
                                                     "sets": {name: {"file": f"{name}.h5", "count": n}}}))
    return cache


def test_evaluate_dataset_and_validation_dir(predictor, tmp_path, capsys):
    path = _tiny_dataset(predictor, tmp_path / "tiny.h5")
    ev = evaluate_dataset(predictor, path, name="tiny")
    assert ev.probabilities.shape == (6, 230) and ev.labels.tolist() == [14, 62, 225, 2, 14, 230]
    assert ev.summary()["n_unknown"] == int((~np.isin(ev.labels, predictor.classes)).sum()) >= 1
    assert len(evaluate_dataset(predictor, path, max_patterns=3).labels) == 3
    # the same patterns on another 2theta axis are resampled onto the model grid
    other = _tiny_dataset(predictor, tmp_path / "coarse.h5", two_theta=np.linspace(5, 90, 4251))
    assert evaluate_dataset(predictor, other).probabilities.shape == (6, 230)

    cache = _tiny_cache(path, tmp_path / "cache")
    ev = evaluate_validation_set(predictor, cache, "match")
    assert ev.sources[0] == "mp-0" and ev.description.startswith("validation set match")
    assert main(["evaluate", "--model", predictor.metadata["checkpoint"], "--validation-dir", str(cache),
                 "--set", "match", "--out", str(tmp_path / "val"), "--device", "cpu", "--no-library"]) == 0
    stdout = capsys.readouterr().out
    assert "6 patterns" in stdout and "known classes" in stdout
    assert (tmp_path / "val" / "reliability.png").is_file()


def test_manifest_rows_without_a_space_group_are_skipped_with_a_warning(tmp_path):
    from synthxrd.evaluate import read_manifest

    (tmp_path / "a.xy").write_text("".join(f"{5 + 0.1 * i} {i % 7}\n" for i in range(50)))
    manifest = tmp_path / "m.csv"
    manifest.write_text("pattern_path,spacegroup\na.xy,225\na.xy,\n")
    with pytest.warns(UserWarning, match="1 row.* without a space group skipped"):
        entries = read_manifest(manifest)
    assert [e.spacegroup for e in entries] == [225]
    manifest.write_text("pattern_path,spacegroup\na.xy,\n")
    with pytest.warns(UserWarning), pytest.raises(DataError, match="no row with a space group"):
        read_manifest(manifest)


def test_accuracy_against_coverage_by_hand():
    from synthxrd.evaluate import Evaluation

    p = np.zeros((4, 230))
    for i, (true, conf) in enumerate([(1, 0.9), (2, 0.6), (3, 0.35), (4, 0.25)]):
        p[i] = (1 - conf) / 229
        p[i, true - 1 if i < 2 else true] = conf  # rows 0, 1 right; rows 2, 3 wrong at top-1
    ev = Evaluation(p, np.array([1, 2, 3, 4]), ["a", "b", "c", "d"], np.arange(1, 231), np.full(230, 1 / 230))
    rows = {r["threshold"]: r for r in ev.coverage((0.0, 0.3, 0.5, 0.95))}
    assert rows[0.0]["coverage"] == 1.0 and rows[0.0]["top1"] == 0.5
    assert rows[0.3]["n"] == 3 and rows[0.3]["top1"] == pytest.approx(2 / 3)
    assert rows[0.5]["coverage"] == 0.5 and rows[0.5]["top1"] == 1.0
    assert rows[0.95]["n"] == 0 and rows[0.95]["top1"] is None
    assert "coverage" in ev.to_dict()


def test_export_calibrates_the_network_on_a_validation_set(predictor, tmp_path, capsys):
    """The temperature fitted from the predictor's probabilities is the one fitted on the raw logits."""
    import torch

    from synthxrd.evaluate import calibrate_on_validation_set
    from synthxrd.models.calibration import fit_temperature

    cache = _tiny_cache(_tiny_dataset(predictor, tmp_path / "tiny.h5", n=6), tmp_path / "cache")
    report = calibrate_on_validation_set(predictor, cache, "match", max_patterns=0)
    from synthxrd.dataset import load_dataset

    ds = load_dataset(cache / "match.h5")
    known = np.isin(ds.crystals.spacegroups, predictor.classes)
    assert report["n"] == known.sum() >= 4 and report["nll_after"] <= report["nll_before"] + 1e-9
    x = torch.as_tensor(predictor.spec.apply(ds.patterns[known]), dtype=torch.float32)
    with torch.no_grad():
        logits = predictor.model(x).double().numpy()
    y = np.searchsorted(predictor.classes, ds.crystals.spacegroups[known])
    assert report["temperature"] == pytest.approx(fit_temperature(logits, y), rel=1e-3)

    out = tmp_path / "calibrated.pt"
    # the default set is calibration: a cache without it is a one-line error naming the command, nothing written
    assert main(["export", predictor.metadata["checkpoint"], str(out), "--calibrate", str(cache)]) == 2
    err = capsys.readouterr().err
    assert "no validation set 'calibration'" in err and "synthxrd validation build" in err and not out.exists()
    assert len(err.strip().splitlines()) == 1
    cal = _tiny_cache(_tiny_dataset(predictor, tmp_path / "cal.h5", n=6), tmp_path / "cal", "calibration")
    assert main(["export", predictor.metadata["checkpoint"], str(out), "--calibrate", str(cal)]) == 0
    assert "calibrated on" in capsys.readouterr().out
    again = Predictor.load(out, device="cpu", library=None)
    assert again.temperature == pytest.approx(again.metadata["calibration"]["temperature"])
    assert again.metadata["calibration"]["file"] == "calibrated.pt"
    assert again.metadata["calibration"]["fitted_on"] == "calibration"
    assert calibrate_on_validation_set(predictor, cal, max_patterns=0)["fitted_on"] == "calibration"
