"""The arithmetic of the training campaign's scripts (``scripts/learning_curve.py``, ``scripts/ship_model.py``):
the projection the model card states, checked on curves whose answer is known by hand."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import learning_curve  # noqa: E402
import ship_model  # noqa: E402


def point(seen, run="run1", step=None, **sets):
    """A learning-curve point: ``sets`` maps a set name to (top1, crystal_system)."""
    return {"run": run, "step": step or seen, "patterns_seen": seen, "campaign_patterns_seen": seen,
            "sets": {name: {"top1": t, "crystal_system": c} for name, (t, c) in sets.items()}}


def test_project_inverts_a_line_in_log_patterns():
    # acc = 0.1 + 0.05 log10(n): 0.40 at n = 1e6, 0.50 at n = 1e8
    curve = [point(10.0 ** k, rruff_dev=(0.1 + 0.05 * k, 0.0)) for k in range(1, 7)]
    assert learning_curve.project(curve, "rruff_dev", "top1", 0.50) == pytest.approx(1e8, rel=1e-6)
    # only the second half counts (past the warm-up): a wild start changes nothing
    wild = [point(10.0, rruff_dev=(0.9, 0.0)), *curve[1:]]
    assert learning_curve.project(wild, "rruff_dev", "top1", 0.50) == pytest.approx(1e8, rel=1e-6)


def test_project_gives_none_for_a_flat_or_falling_curve_or_too_few_points():
    flat = [point(10.0 ** k, match=(0.3, 0.5)) for k in range(1, 7)]
    falling = [point(10.0 ** k, match=(0.5 - 0.01 * k, 0.5)) for k in range(1, 7)]
    assert learning_curve.project(flat, "match", "top1", 0.4) is None
    assert learning_curve.project(falling, "match", "top1", 0.6) is None
    assert learning_curve.project(flat[:1], "match", "top1", 0.4) is None


def test_projection_of_the_card_from_a_run_of_the_campaign():
    sets = lambda k: {"match": (0.35 + 0.01 * k, 0.5), "rruff_dev": (0.06 * k, 0.1 + 0.02 * k)}  # noqa: E731
    early = [point(10.0 ** k, "run1", rruff_dev=(0.9, 0.9), match=(0.9, 0.9)) for k in (1, 2)]  # another configuration
    later = [point(10.0 ** k, "run2", **sets(k)) for k in (3, 4, 5, 6)]
    campaign = [{"run": "run1", "patterns_seen": 100, "wall_hours": 1.0},
                {"run": "run2", "patterns_seen": 2_000_000, "wall_hours": 4.0}]  # 500,000 patterns per hour
    projection = ship_model._projection(early + later, campaign, "run2")
    assert projection["from_run"] == "run2" and projection["points"] == 4
    assert projection["patterns_seen"] == 1e6 and projection["patterns_per_hour"] == 500_000
    match, top1, system = projection["targets"]
    assert match["reached"] and match["patterns_seen"] is None and match["now"] == pytest.approx(0.41)
    # rruff_dev top-1 = 0.06 log10(n) is 0.36 at 1e6: reached. Crystal system 0.1 + 0.02 log10(n)
    # reaches 0.60 at n = 1e25: (1e25 - 1e6) / 5e5 hours more
    assert top1["reached"] and top1["more_hours"] is None
    assert not system["reached"] and system["patterns_seen"] == pytest.approx(1e25, rel=1e-6)
    assert system["more_hours"] == pytest.approx((1e25 - 1e6) / 5e5, rel=1e-6)
    with pytest.raises(SystemExit, match="the learning curve has the runs run1, run2"):
        ship_model._projection(early + later, campaign, "run7")


def test_lineage_follows_init_weights_back_to_the_card(tmp_path):
    def run(name, init=None):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.toml").write_text(f'init_weights = "{init}"\n' if init else 'seed = 0\n')
        return folder

    first = run("run2")
    second = run("run3", first / "checkpoint.pt")
    third = run("run4", second / "checkpoint.pt")
    assert ship_model._lineage(third, set()) == ([first, second, third], False)  # back to a fresh start
    assert ship_model._lineage(third, {"run2"}) == ([second, third], True)  # run 2 is on the card already
    exported = run("run5", tmp_path / "models" / "default.pt")  # from the shipped export
    assert ship_model._lineage(exported, set()) == ([exported], True)


def test_the_learning_curve_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    curve = [point(10.0 ** k * 1e3, "run1" if k < 3 else "run2",
                   match=(0.1 * k, 0.2), rruff_dev=(0.05 * k, 0.1), xred=(0.0, 0.1)) for k in range(1, 5)]
    for row in curve:
        for name in row["sets"]:
            row["sets"][name]["prior"] = {"top1": 0.1, "crystal_system": 0.2}
    out = tmp_path / "curve.png"
    learning_curve.plot(curve, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
