"""`synthxrd quickstart` end to end, the measured patterns shipped with the package, and its package data."""

from __future__ import annotations

import csv
import fnmatch
import json
import tomllib
import warnings
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from synthxrd.errors import ConfigError
from synthxrd.quickstart import QuickstartConfig, measured_manifest, run_quickstart

REPO_ROOT = Path(__file__).resolve().parent.parent
N_MEASURED = 17


def test_measured_manifest_consistent():
    """Every shipped pattern is listed once, exists, parses, and has an ITA label and the Cu K-alpha wavelength."""
    from synthxrd.evaluate import read_manifest
    from synthxrd.io import read_pattern

    manifest = measured_manifest()
    folder = manifest.parent
    entries = read_manifest(manifest)
    assert len(entries) == N_MEASURED
    assert len({e.sample_id for e in entries}) == N_MEASURED
    for e in entries:
        assert e.path.is_file() and e.path.parent == folder, e
        assert 1 <= e.spacegroup <= 230 and e.wavelength == pytest.approx(1.54184)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # clean files: no reader warning either
            tt, y, meta = read_pattern(e.path)
        assert len(tt) >= 500 and np.all(np.diff(tt) > 0) and np.isfinite(y).all()
    listed = {e.path.name for e in entries}
    assert {p.name for p in folder.iterdir()} == listed | {"manifest.csv", "SOURCE.md", "LICENSE-XRED.txt"}
    assert sum(p.stat().st_size for p in folder.iterdir()) < 1.5e6


def test_measured_labels_match_shared_manifest(experimental_data):
    """Same files and labels as the raw variant of the shared data's manifest (where that is present)."""
    with (experimental_data / "manifest.csv").open(newline="") as fh:
        shared = {r["pattern_path"]: r for r in csv.DictReader(fh) if r["variant"] == "raw"}
    manifest = measured_manifest()
    with manifest.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == sum(1 for r in shared.values() if r["spacegroup"].strip())
    for row in rows:
        original = "xred/" + row["source"].removeprefix("WPEM/XRED ")
        assert row["spacegroup"] == shared[original]["spacegroup"]
        assert (manifest.parent / row["pattern_path"]).read_bytes() == (experimental_data / original).read_bytes()


def test_package_data_globs_cover_resources():
    """pyproject's package data ships the measured patterns and the model files."""
    globs = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["synthxrd"]
    for pattern in ("resources/models/*.pt", "resources/models/*.json", "resources/measured/*"):
        assert pattern in globs
    root = Path(str(files("synthxrd")))
    for path in (root / "resources" / "measured").iterdir():
        rel = path.relative_to(root).as_posix()
        assert any(fnmatch.fnmatch(rel, g) for g in globs), rel


def test_config_and_cli_errors(tmp_path, capsys):
    from synthxrd.cli import main

    with pytest.raises(ConfigError, match="n_crystals must be an integer >= 1"):
        QuickstartConfig(n_crystals=0)
    assert main(["quickstart", "--n-crystals", "0", "--out", str(tmp_path / "q")]) == 2
    assert "n_crystals" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["quickstart", "--out", str(tmp_path / "file")]) == 2
    assert "not a directory" in capsys.readouterr().err
    missing = tmp_path / "missing.pt"
    assert main(["quickstart", "--model", str(missing), "--out", str(tmp_path / "q"), "--no-progress"]) == 2
    assert f"{missing}: no such checkpoint file or run folder" in capsys.readouterr().err
    assert not (tmp_path / "q").exists()  # nothing written before the model is loaded


def _check_outputs(out: Path, n: int, seed: int) -> dict:
    from synthxrd.dataset import load_dataset
    from synthxrd.structure import read_cif

    cifs = sorted((out / "crystals").glob("*.cif"))
    assert len(cifs) == min(5, n)
    for cif in cifs:
        assert len(read_cif(cif)) > 0
    for png in (out / "patterns.png", *(out / "evaluation").glob("*.png")):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    assert len(list((out / "evaluation").glob("*.png"))) == 3
    ideal, realistic = load_dataset(out / "ideal.h5"), load_dataset(out / "realistic.h5")
    for ds in (ideal, realistic):
        assert ds.patterns.shape == (n, 8501) and ds.two_theta.shape == (8501,)
        assert np.allclose(ds.patterns.max(axis=1), 1.0)
    assert np.array_equal(ideal.crystals.spacegroups, realistic.crystals.spacegroups)
    assert not np.allclose(ideal.patterns, realistic.patterns)
    with (out / "predictions.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == N_MEASURED
    assert all(1 <= int(r["spacegroup"]) <= 230 and r["top1_hit"] in "01" for r in rows)
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == seed and run["config"]["n_crystals"] == n
    assert run["synthxrd_version"] and run["statistics"]["version"] >= 1
    assert run["model"]["metadata"]["model_config"]["name"] and "step" in run["model"]["metadata"]
    evaluation = json.loads((out / "evaluation" / "evaluation.json").read_text())
    assert evaluation["summary"]["n_patterns"] == N_MEASURED and "baseline" in evaluation["summary"]["all"]
    return run


def test_cli_end_to_end_refuses_overwrite_and_reproduces(tiny_fused, tmp_path, capsys):
    from synthxrd.cli import main
    from synthxrd.dataset import load_dataset

    out = tmp_path / "qs"
    args = ["quickstart", "--out", str(out), "--n-crystals", "20", "--seed", "3", "--model", str(tiny_fused),
            "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    run = _check_outputs(out, 20, 3)
    assert run["model"]["source"] == str(tiny_fused)
    table = printed.split("top-1 top-5  best match (score) mineral\n", 1)[1].split("\n")[:N_MEASURED]
    for line in table:  # ... top-1 top-5  id formula SG (score) [mineral]
        words = line.split()
        at = next(i for i, w in enumerate(words) if w.startswith(("mp-", "amcsd-")))
        assert words[0].endswith(".csv") and words[at - 2] in ("yes", "no") and words[at + 3].endswith(")")
    assert "fused with search-match against the shipped library" in printed
    for expected in ("Al2O3.csv", "NiOH2.csv", "Tb2BaCoO5.csv", "synthxrd train", "synthxrd predict",
                     "tensorboard --logdir", "prior"):
        assert expected in printed

    first = load_dataset(out / "realistic.h5").patterns
    assert main(args) == 2  # refuses before any work
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert np.array_equal(load_dataset(out / "realistic.h5").patterns, first)  # same seed, same patterns


def test_shipped_model(tmp_path):
    """With the model shipped in the package (fails while resources/models/default.pt is missing)."""
    summary = run_quickstart(QuickstartConfig(out=str(tmp_path / "qs"), n_crystals=5, seed=1), progress=False)
    assert summary["model"]["source"] == "shipped"
    assert len(summary["predictions"]) == N_MEASURED
    _check_outputs(tmp_path / "qs", 5, 1)


def test_the_shipped_model_fuses_out_of_the_box_on_the_shipped_patterns():
    """From a fresh checkout (no ../shared): the shipped model with its own fusion rule and the default
    library on the 17 measured patterns in the package gives the README's figures (fused top-1 9/17,
    top-5 11/17), next to the search alone, the network alone and the prior."""
    from synthxrd.evaluate import evaluate_manifest
    from synthxrd.match import ReferenceLibrary
    from synthxrd.predict import Predictor

    predictor = Predictor.load(device="cpu")  # library "default", the rule stored in the model
    assert predictor.fusion.library == ReferenceLibrary.load().fingerprint
    assert predictor.fusion.network == predictor.metadata["weights_sha256"]
    ev = evaluate_manifest(predictor, measured_manifest())
    summary = ev.summary()
    assert summary["n_patterns"] == N_MEASURED
    hits = {who: {m: round(summary["all"][who][m] * N_MEASURED) for m in ("top1", "top5", "crystal_system")}
            for who in ("model", "search", "network", "baseline")}
    assert hits == {"model": {"top1": 9, "top5": 11, "crystal_system": 12},
                    "search": {"top1": 9, "top5": 12, "crystal_system": 11},
                    "network": {"top1": 6, "top5": 11, "crystal_system": 8},
                    "baseline": {"top1": 1, "top5": 2, "crystal_system": 2}}
