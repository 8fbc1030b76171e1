"""The arithmetic of the training campaign (:mod:`synthxrd.modelcard`, run by ``scripts/learning_curve.py``
and ``scripts/ship_model.py``): the projection the model card states, checked on curves whose answer is
known by hand; the scripts' command lines, run as the user runs them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from synthxrd import modelcard
from synthxrd.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]


def point(seen, run="run1", step=None, **sets):
    """A learning-curve point: ``sets`` maps a set name to (top1, crystal_system)."""
    return {"run": run, "step": step or seen, "patterns_seen": seen, "campaign_patterns_seen": seen,
            "sets": {name: {"top1": t, "crystal_system": c} for name, (t, c) in sets.items()}}


def test_project_inverts_a_line_in_log_patterns():
    # acc = 0.1 + 0.05 log10(n): 0.40 at n = 1e6, 0.50 at n = 1e8
    curve = [point(10.0 ** k, rruff_dev=(0.1 + 0.05 * k, 0.0)) for k in range(1, 7)]
    assert modelcard.project(curve, "rruff_dev", "top1", 0.50) == pytest.approx(1e8, rel=1e-6)
    # only the second half counts (past the warm-up): a wild start changes nothing
    wild = [point(10.0, rruff_dev=(0.9, 0.0)), *curve[1:]]
    assert modelcard.project(wild, "rruff_dev", "top1", 0.50) == pytest.approx(1e8, rel=1e-6)


def test_project_gives_none_for_a_flat_or_falling_curve_or_too_few_points():
    flat = [point(10.0 ** k, match=(0.3, 0.5)) for k in range(1, 7)]
    falling = [point(10.0 ** k, match=(0.5 - 0.01 * k, 0.5)) for k in range(1, 7)]
    assert modelcard.project(flat, "match", "top1", 0.4) is None
    assert modelcard.project(falling, "match", "top1", 0.6) is None
    assert modelcard.project(flat[:1], "match", "top1", 0.4) is None


def test_projection_of_the_card_from_a_run_of_the_campaign():
    sets = lambda k: {"match": (0.35 + 0.01 * k, 0.5), "rruff_dev": (0.06 * k, 0.1 + 0.02 * k)}  # noqa: E731
    early = [point(10.0 ** k, "run1", rruff_dev=(0.9, 0.9), match=(0.9, 0.9)) for k in (1, 2)]  # another configuration
    later = [point(10.0 ** k, "run2", **sets(k)) for k in (3, 4, 5, 6)]
    campaign = [{"run": "run1", "patterns_seen": 100, "wall_hours": 1.0},
                {"run": "run2", "patterns_seen": 2_000_000, "wall_hours": 4.0}]  # 500,000 patterns per hour
    projection = modelcard.projection(early + later, campaign, "run2")
    assert projection["from_run"] == "run2" and projection["points"] == 4
    assert projection["patterns_seen"] == 1e6 and projection["patterns_per_hour"] == 500_000
    match, top1, system = projection["targets"]
    assert match["reached"] and match["patterns_seen"] is None and match["now"] == pytest.approx(0.41)
    # rruff_dev top-1 = 0.06 log10(n) is 0.36 at 1e6: reached. Crystal system 0.1 + 0.02 log10(n)
    # reaches 0.60 at n = 1e25: (1e25 - 1e6) / 5e5 hours more
    assert top1["reached"] and top1["more_hours"] is None
    assert not system["reached"] and system["patterns_seen"] == pytest.approx(1e25, rel=1e-6)
    assert system["more_hours"] == pytest.approx((1e25 - 1e6) / 5e5, rel=1e-6)
    with pytest.raises(ConfigError, match="the learning curve has the runs run1, run2"):
        modelcard.projection(early + later, campaign, "run7")


def test_lineage_follows_init_weights_back_to_the_card(tmp_path):
    def run(name, init=None):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.toml").write_text(f'init_weights = "{init}"\n' if init else 'seed = 0\n')
        return folder

    first = run("run2")
    second = run("run3", first / "checkpoint.pt")
    third = run("run4", second / "checkpoint.pt")
    assert modelcard.lineage(third, set()) == ([first, second, third], False)  # back to a fresh start
    assert modelcard.lineage(third, {"run2"}) == ([second, third], True)  # run 2 is on the card already
    exported = run("run5", tmp_path / "models" / "default.pt")  # from the shipped export
    assert modelcard.lineage(exported, set()) == ([exported], True)


def test_the_learning_curve_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    curve = [point(10.0 ** k * 1e3, "run1" if k < 3 else "run2",
                   match=(0.1 * k, 0.2), rruff_dev=(0.05 * k, 0.1), xred=(0.0, 0.1)) for k in range(1, 5)]
    for row in curve:
        for name in row["sets"]:
            row["sets"][name]["prior"] = {"top1": 0.1, "crystal_system": 0.2}
    out = tmp_path / "curve.png"
    modelcard.plot_curve(curve, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("script", ["ship_model.py", "learning_curve.py", "fit_fusion.py", "class_threshold.py",
                                    "score_measured_mixtures.py"])
def test_the_campaign_scripts_parse_their_options(script):
    """The scripts are thin: their --help runs (the package importable from where they stand)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / script), "--help"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


def test_ship_needs_exactly_one_fusion_rule(tmp_path):
    with pytest.raises(ConfigError, match="exactly one of fusion_source"):
        modelcard.ship(tmp_path, models_dir=tmp_path, docs_dir=tmp_path, validation_dir=tmp_path,
                       manifest=tmp_path / "m.csv", rruff=tmp_path / "r.npz", eval_out=tmp_path / "eval")


def test_a_run_shipped_again_replaces_its_rows():
    rows = [{"run": "run6", "steps": 1}, {"run": "run7", "steps": 2}, {"run": "run7", "step": 1000}]
    assert modelcard.without_run(rows, "run7") == [{"run": "run6", "steps": 1}]
    assert modelcard.without_run(rows, "run8") == rows


def test_ship_card_only_needs_the_model_and_every_evaluation(tmp_path):
    """card_only writes the card from what an earlier ship left; it names what is missing, and runs nothing."""
    (tmp_path / "default.pt").write_bytes(b"")
    (tmp_path / "eval" / "match").mkdir(parents=True)
    (tmp_path / "eval" / "match" / "evaluation.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"card only: .*missing measured, rruff_dev, fused_rruff_dev, fused_measured, "
                                          r"fused_match$"):
        modelcard.ship(tmp_path, models_dir=tmp_path, docs_dir=tmp_path, validation_dir=tmp_path,
                       manifest=tmp_path / "m.csv", rruff=tmp_path / "r.npz", eval_out=tmp_path / "eval",
                       card_only=True)


def _class_threshold():
    import importlib.util

    spec = importlib.util.spec_from_file_location("class_threshold", REPO_ROOT / "scripts" / "class_threshold.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_class_threshold_counts_coverage_and_per_class_accuracy_by_hand():
    """scripts/class_threshold.py: shares of label sets inside the classes of each threshold, the
    total-variation distance, and the per-class recall with the prior's beside it."""
    import numpy as np

    ct = _class_threshold()
    counts = np.zeros(231, np.int64)
    counts[[14, 62, 2]] = [100, 60, 20]
    rows = ct.coverage(counts, [50, 10], {"x": np.array([14, 14, 62, 2, 225])})
    assert [r["classes"] for r in rows] == [2, 3]
    assert rows[0]["x"] == {"n": 5, "in_classes": 3, "share": 0.6} and rows[1]["x"]["in_classes"] == 4
    assert ct._tv((np.array([1, 2]), np.array([0.5, 0.5])), (np.array([2, 3]), np.array([0.5, 0.5]))) == 0.5
    prior = np.zeros(230)
    prior[[13, 61]] = [0.625, 0.375]
    probs = np.zeros((3, 230))
    probs[0, 13], probs[1, 13], probs[2, 61] = 0.9, 0.6, 0.75  # 14 right, 62 called 14, 62 right
    probs[1, 61] = 0.3
    per = ct.per_class_accuracy(probs, np.array([14, 62, 62]), np.array([14, 62]), prior, counts)
    assert per[0] == {"sg": 14, "count": 100, "n": 1, "top1": 1.0, "top5": 1.0, "lift": 0.9 / 0.625,
                      "prior_top1": 1.0, "prior_top5": 1.0}
    assert per[1]["top1"] == 0.5 and per[1]["prior_top1"] == 0.0 and per[1]["lift"] == pytest.approx(0.525 / 0.375)
    bins = ct.bin_classes(per, bins=(50, 75, 10**9))
    assert [(b["count"], b["classes"], b["crystals"], b["top1"]) for b in bins] == [("50-74", 1, 2, 0.5),
                                                                                   (">= 75", 1, 1, 1.0)]


def test_the_measured_mixture_scorer_reads_the_sources_file_names(tmp_path):
    """scripts/score_measured_mixtures.py: the phases and weight fractions each source's file names
    state (dara's weighed grams, dara's earlier equal-weight names, XRD-AutoAnalyzer's phase lists),
    and a folder's mixtures.csv before the name."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("score_measured_mixtures",
                                                  REPO_ROOT / "scripts" / "score_measured_mixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    got = mod.stated_phases(Path("In2O3_0p3022-LaOH3_0p5014-TiO2_0p2004--8min.xrdml"))
    assert [f for f, _ in got] == ["In2O3", "La(OH)3", "TiO2"]
    assert [w for _, w in got] == pytest.approx([0.3022 / 1.004, 0.5014 / 1.004, 0.2004 / 1.004])
    got = mod.stated_phases(Path("NaAlO2-1.5H2O_V2O5_CuO_Li3PO4.12-min.xrdml"))
    assert [f for f, _ in got] == ["NaAlO3.5H3", "V2O5", "CuO", "Li3PO4"] and {w for _, w in got} == {0.25}
    assert mod.stated_phases(Path("Li2MnO3+MnO+TiO2.xy")) == [("Li2MnO3", None), ("MnO", None), ("TiO2", None)]
    assert mod.stated_phases(Path("sample_A.xy")) is None
    (tmp_path / "mixtures.csv").write_text("file,phase,weight_percent,formula,accept\n"
                                           "Mix1.xy,Kaolinite,12,Al2Si2O5(OH)4,Al2Si2O5(OH)4|kaolinite\n")
    (entry,) = mod.read_manifest(tmp_path)["Mix1.xy"]
    assert entry["fraction"] == pytest.approx(0.12) and entry["accept"] == ["Al2Si2O5(OH)4", "kaolinite"]
    assert mod._accepts(entry["accept"], {"Al2Si2H4O9"}, set(), grouped=False)
    assert mod._accepts(entry["accept"], {"X"}, {"kaolinite"}, grouped=False)
    assert mod._near("Ni31.84O32", "NiO") and not mod._near("Mg0.02V4O10", "V2O5")
