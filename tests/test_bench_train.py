"""synthxrd bench train: the training step and its variants side by side (no timing asserts)."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")

from synthxrd.bench.train import STEP_VARIANTS, compare_end_to_end, compare_lines, compare_step  # noqa: E402
from synthxrd.cli import main  # noqa: E402
from synthxrd.train import TrainConfig, train  # noqa: E402

TINY_STEP = TrainConfig(model="park_small", batch_size=4)


def test_every_variant_but_compile_trains_with_a_finite_loss():
    variants = {k: v for k, v in STEP_VARIANTS.items() if not v.get("compile")}
    r = compare_step(TINY_STEP, variants=variants, repeats=1, steps=1, progress=False)
    assert list(r["variants"]) == list(variants)
    for name, v in r["variants"].items():
        assert v["finite_loss"] and v["patterns_per_s"] > 0 and math.isfinite(v["ratio"]), name
    assert r["variants"]["default"]["ratio"] == 1.0
    assert r["variants"]["batch x2"]["batch"] == 8 and r["variants"]["1 thread"]["threads"] == 1
    lines = compare_lines(r)
    assert any(line.startswith("bf16 autocast") for line in lines) and any("channels-last" in line for line in lines)


def test_end_to_end_alternates_thread_counts_on_the_stream():
    r = compare_end_to_end(TrainConfig(model="park_small", batch_size=4, workers=1), threads=(1, 2), windows=2,
                           window_steps=1, progress=False)
    assert set(r["threads"]) == {"1", "2"} and r["threads"]["1"]["ratio"] == 1.0
    assert all(len(v["rounds"]) == 2 and v["patterns_per_s"] > 0 for v in r["threads"].values())


@pytest.mark.slow
def test_compile_variant_trains_with_a_finite_loss():
    r = compare_step(TINY_STEP, variants={"compile": {"compile": True}}, repeats=1, steps=1, progress=False)
    assert r["variants"]["compile"]["finite_loss"] and r["variants"]["default"]["finite_loss"]


def test_the_command_runs_on_a_tiny_setting(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "train", "--model", "park_small", "--batch-size", "4", "--repeats", "1", "--steps", "1",
                 "--variants", "1 thread,bf16 autocast", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "x default" in out and "bf16 autocast" in out
    assert set(json.loads(path.read_text())["variants"]) == {"default", "1 thread", "bf16 autocast"}
    with pytest.raises(SystemExit, match="unknown variant"):
        main(["bench", "train", "--variants", "fp8"])


def test_bf16_autocast_on_the_cpu_trains_with_a_finite_loss(tmp_path):
    """TrainConfig(amp="on") (what the bench calls "bf16 autocast") on the CPU: a few steps, finite losses."""
    summary = train(TrainConfig(out=str(tmp_path), model="park_small", batch_size=8, workers=0, log_every=1,
                                max_steps=3, val_every=3, n_val_random=16, val_sets=("random",), amp="on",
                                device="cpu", seed=5), progress=False)
    assert summary["error"] is None and summary["step"] == 3
    assert all(math.isfinite(h["loss"]) for h in summary["history"])


def test_cpu_threads_leave_the_data_worker_its_core():
    from synthxrd.train import cpu_threads

    assert cpu_threads(TrainConfig(), 2, 1, 1) == 1  # the development machine: 1 thread beside 1 worker
    assert cpu_threads(TrainConfig(), 16, 1, 15) == 15
    assert cpu_threads(TrainConfig(), 2, 1, 0) == 2  # data made in the trainer's process
    assert cpu_threads(TrainConfig(ray_address="auto"), 8, 1, 4) == 8  # the workers run elsewhere
    assert cpu_threads(TrainConfig(), 9, 2, 8) == 4  # two processes of one node share the cores
    assert cpu_threads(TrainConfig(), 1, 1, 1) == 1
    assert cpu_threads(TrainConfig(threads=2), 2, 1, 1) == 2  # an explicit setting wins
