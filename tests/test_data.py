"""The training stream: deterministic per (seed, index), local workers and Ray agree."""

import sys
from pathlib import Path

import numpy as np
import pytest

from synthxrd.data import BatchMaker, StreamConfig, make_stream
from synthxrd.errors import ConfigError

CONFIG = StreamConfig(batch_size=12, seed=7)


@pytest.fixture(scope="module")
def reference():
    maker = BatchMaker(CONFIG)
    return [maker(i) for i in range(4, 8)]


def test_batches_are_valid(reference):
    b = reference[0]
    assert b.inputs.shape == (12, 8501) and b.inputs.dtype == np.float32
    assert np.allclose(b.inputs.max(axis=1), 1.0) and b.inputs.min() >= 0
    assert b.labels.dtype == np.int64 and b.labels.min() >= 0
    assert b.labels.max() < len(BatchMaker(CONFIG).classes)


def test_same_index_same_batch_different_index_differs(reference):
    again = BatchMaker(CONFIG)(4)
    assert np.array_equal(again.inputs, reference[0].inputs) and np.array_equal(again.labels, reference[0].labels)
    assert not np.array_equal(reference[0].inputs, reference[1].inputs)


@pytest.mark.parametrize("workers", [0, 2])
def test_local_workers_give_the_index_order(reference, workers):
    stream = make_stream(CONFIG, workers=workers, start=4)
    got = [next(stream) for _ in range(4)]
    assert [b.index for b in got] == [4, 5, 6, 7] and all(b.inputs.flags.writeable and b.labels.flags.writeable for b in got)
    for a, b in zip(got, reference):
        assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.labels, b.labels)


def test_a_killed_worker_is_reported_by_next_not_between_steps():
    """torch's SIGCHLD handler would raise anywhere in the trainer (inside a lock it hangs the run):
    the stream keeps a dead worker's error for its next call, and puts the handler back on close."""
    import os
    import signal
    import time

    previous = signal.getsignal(signal.SIGCHLD)
    stream = make_stream(CONFIG, workers=1)
    try:
        next(stream)
    finally:  # a worker left behind can outlive pytest, blocked on a full pipe
        os.kill(stream._iterator._workers[0].pid, signal.SIGKILL)
    time.sleep(1.0)  # SIGCHLD arrives here, between "steps": nothing may be raised
    with pytest.raises(RuntimeError, match="DataLoader worker"):
        for _ in range(10):
            next(stream)
    stream.close()
    assert signal.getsignal(signal.SIGCHLD) is previous


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_data_workers_die_with_a_killed_trainer():
    """A trainer killed outright (out of memory) leaves no worker behind: one whose batches fill the
    pipe would otherwise wait for a reader forever, holding its memory (and a CI job's output)."""
    import os
    import signal
    import subprocess
    import time

    code = ("import time; from synthxrd.data import StreamConfig, make_stream\n"
            "s = make_stream(StreamConfig(batch_size=12, seed=7), workers=1); next(s); time.sleep(3)\n"
            "print(s._iterator._workers[0].pid, flush=True); time.sleep(600)")
    trainer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    worker = int(trainer.stdout.readline())
    trainer.kill()
    trainer.wait()

    def alive(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] not in ("Z", "X")
        except FileNotFoundError:
            return False

    deadline = time.time() + 30
    while alive(worker) and time.time() < deadline:
        time.sleep(0.2)
    if alive(worker):
        os.kill(worker, signal.SIGKILL)
        pytest.fail(f"data worker {worker} outlived its trainer")


def test_ranks_shard_the_stream():
    a = next(make_stream(CONFIG, workers=0, start=3, rank=1, world_size=2))
    assert a.index == 3 * 2 + 1


def test_label_priors():
    from scipy.stats import chisquare

    uniform = BatchMaker(StreamConfig(batch_size=400, seed=1, prior="uniform"))
    counts = np.bincount(uniform(0).labels, minlength=len(uniform.classes))
    assert chisquare(counts).pvalue > 1e-3  # consistent with uniform over the classes
    counted = BatchMaker(StreamConfig(batch_size=400, seed=1))
    sg14 = int(np.flatnonzero(counted.classes == 14)[0])  # P2_1/c: ~12 % of the statistics
    assert np.sum(counted(0).labels == sg14) > 25 > counts[sg14]


def test_failed_crystals_are_replaced_not_dropped(monkeypatch):
    from synthxrd.generate import GenerationError, Generator

    maker = BatchMaker(StreamConfig(batch_size=6, seed=2))
    original = Generator.sample_batch
    calls = {"n": 0}

    def flaky(self, n, rng, spacegroups=None):
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise GenerationError("simulated failure")
        return original(self, n, rng, spacegroups)

    monkeypatch.setattr(Generator, "sample_batch", flaky)
    batch = maker(0)
    assert len(batch.labels) == 6 and batch.inputs.shape[0] == 6 and batch.replaced >= 2


def test_device_mode_returns_crystals():
    b = BatchMaker(StreamConfig(batch_size=5, seed=3, simulate_on="device"))(0)
    assert b.inputs is None and len(b.crystals["offsets"]) == 6 and b.crystals["crystallite_size_nm"].shape == (5,)


def test_ray_actors_for_real(reference):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        stream = make_stream(CONFIG, workers=2, start=4, ray_address="local")
        got = [next(stream) for _ in range(4)]
        stream.close()
        with pytest.raises(ConfigError, match="3 Ray actors need 3 CPUs, the Ray cluster has 2"):
            make_stream(CONFIG, workers=3, ray_address="local")  # would wait forever for the third
    finally:
        ray.shutdown()
    assert [b.index for b in got] == [4, 5, 6, 7]
    for a, b in zip(got, reference):
        assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.labels, b.labels)


def test_coarse_grid_and_renders_reuse_reflections(monkeypatch):
    from synthxrd.generate import Generator

    calls = {"n": 0}
    original = Generator.sample_batch

    def counted(self, n, rng, spacegroups=None):
        calls["n"] += 1
        return original(self, n, rng, spacegroups)

    monkeypatch.setattr(Generator, "sample_batch", counted)
    maker = BatchMaker(StreamConfig(batch_size=10, seed=4, augment="default", grid_step=0.04, renders=4))
    b = maker(0)
    assert b.inputs.shape == (10, 2126) and np.allclose(b.inputs.max(axis=1), 1.0)
    assert calls["n"] - b.replaced == 3  # ceil(10 / 4) crystals, each rendered up to 4 times
    # renders of one crystal share its label but differ (independent augmentation draws)
    first = np.arange(10) % 3 == 0
    assert len(set(b.labels[first].tolist())) == 1
    assert not np.array_equal(b.inputs[0], b.inputs[3])


def test_stream_config_checks():
    for bad in (dict(renders=0), dict(real_fraction=1.5), dict(clean_fraction=-0.1), dict(clean_fraction=1.5), dict(real_fraction=0.5), dict(grid_step=0.03),
                dict(simulate_on="device", renders=2)):
        with pytest.raises(ConfigError):
            StreamConfig(**bad)


def test_a_slot_without_reflections_after_all_redraws_raises(monkeypatch):
    from synthxrd.generate import GenerationError

    maker = BatchMaker(StreamConfig(batch_size=3, seed=2))
    maker.MAX_REPLACEMENTS = 3
    monkeypatch.setattr(BatchMaker, "_patterns",
                        lambda self, crystals, rng, renders=1: np.zeros((renders * len(crystals), 8501), np.float32))
    with pytest.raises(GenerationError, match="no reflection in range"):
        maker(0)


@pytest.mark.parametrize("renders, fraction, batches", [(4, 0.5, 3), (1, 0.5, 40), (2, 0.0, 3), (2, 1.0, 3)])
def test_clean_fraction_renders_that_share_ideal(monkeypatch, renders, fraction, batches):
    """The last k of R renderings use augment.ideal_config, E[k] = fraction * R (exactly, when integral)."""
    from synthxrd import augment

    seen = []
    original = augment.render

    def recording(crystals, refl, config, rng, **kw):
        seen.append(config.noise)  # False only for the ideal config
        return original(crystals, refl, config, rng, **kw)

    monkeypatch.setattr(augment, "render", recording)
    maker = BatchMaker(StreamConfig(batch_size=8, seed=2, augment="default", renders=renders,
                                    clean_fraction=fraction))
    for i in range(batches):
        before = len(seen)
        b = maker(i)
        assert b.inputs.shape == (8, 8501) and np.isfinite(b.inputs).all()
        calls = seen[before:before + renders]  # the batch's renders (redraws may add calls after)
        assert calls == sorted(calls, reverse=True)  # augmented first, ideal last
        if (fraction * renders).is_integer():
            assert calls.count(False) == fraction * renders
    share = seen.count(False) / len(seen)
    assert (0.2 < share < 0.8) if renders == 1 else share == pytest.approx(fraction, abs=0.1)
