"""``synthxrd bench train``: trainer steps/s on cached batches, stream patterns/s with 1 and 2
workers, and the fraction of wall time the trainer waits for data, for ``park_big`` and ``resnet10``
on the CPU. (No reference implementation runs here: ML4pXRDs needs TensorFlow 2.10 and the ICSD.)
"""

from __future__ import annotations

import time
import warnings


from synthxrd.bench.common import machine_info
from synthxrd.config import available_cores

__all__ = ["run_benchmark", "summary_lines"]


def _trainer_steps_per_s(name: str, batches, n_classes: int, steps: int, threads: int) -> float:
    import torch

    from synthxrd.models import build

    torch.set_num_threads(threads)
    model = build(name, num_classes=n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(b):
        loss = loss_fn(model(torch.as_tensor(b.inputs)), torch.as_tensor(b.labels))
        opt.zero_grad()
        loss.backward()
        opt.step()

    step(batches[0])  # warm-up
    t0 = time.perf_counter()
    for i in range(steps):
        step(batches[i % len(batches)])
    return steps / (time.perf_counter() - t0)


def _stream_patterns_per_s(config, workers: int, n_batches: int) -> float:
    from synthxrd.data import make_stream

    stream = make_stream(config, workers=workers, start=1000)
    next(stream)  # start-up (worker processes, statistics, compilation cache)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        next(stream)
    return n_batches * config.batch_size / (time.perf_counter() - t0)


def _wait_fraction(name: str, config, n_classes: int, steps: int, workers: int) -> float:
    import torch

    from synthxrd.data import make_stream
    from synthxrd.models import build

    torch.set_num_threads(available_cores())  # as the trainer: the worker sleeps once it is ahead
    model = build(name, num_classes=n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    stream = make_stream(config, workers=workers, start=2000)
    next(stream)
    wait, t0 = 0.0, time.perf_counter()
    for _ in range(steps):
        t = time.perf_counter()
        b = next(stream)
        wait += time.perf_counter() - t
        loss = torch.nn.functional.cross_entropy(model(torch.as_tensor(b.inputs)), torch.as_tensor(b.labels))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return wait / (time.perf_counter() - t0)


def run_benchmark(*, models=("park_big", "resnet10"), batch_size: int = 145, steps: int = 10, stream_batches: int = 6,
                  seed: int = 0, progress: bool = True) -> dict:
    """Measure the trainer and the stream on this machine's CPU."""
    from synthxrd.data import BatchMaker, StreamConfig

    warnings.filterwarnings("ignore")
    config = StreamConfig(batch_size=batch_size, seed=seed)
    maker = BatchMaker(config)
    cached = [maker(i) for i in range(3)]
    n_classes = len(maker.classes)
    res = {"benchmark": "train", "machine": machine_info(), "batch_size": batch_size, "models": {}, "stream": {}}
    for workers in (1, 2):
        res["stream"][f"{workers}_workers_patterns_per_s"] = _stream_patterns_per_s(config, workers, stream_batches)
        if progress:
            print(f"stream, {workers} worker(s): {res['stream'][f'{workers}_workers_patterns_per_s']:.0f} patterns/s")
    cores = available_cores()
    for name in models:
        r = {
            "steps_per_s_cached_1_thread": _trainer_steps_per_s(name, cached, n_classes, steps, 1),
            f"steps_per_s_cached_{cores}_threads": _trainer_steps_per_s(name, cached, n_classes, steps, cores),
            "data_wait_fraction_1_worker": _wait_fraction(name, config, n_classes, steps, 1),
        }
        r["patterns_per_s_cached_1_thread"] = r["steps_per_s_cached_1_thread"] * batch_size
        res["models"][name] = r
        if progress:
            print(f"{name}: {r}")
    return res


def summary_lines(r: dict) -> list[str]:
    lines = [f"batch {r['batch_size']}, CPU {r['machine']['cpus']} cores"]
    for k, v in r["stream"].items():
        lines.append(f"stream {k.replace('_', ' ')}: {v:.0f}")
    head = f"{'model':<12}{'steps/s 1 thr':>15}{'steps/s all':>13}{'patterns/s':>12}{'data wait (1 worker)':>22}"
    lines += [head, "-" * len(head)]
    for name, m in r["models"].items():
        all_key = next(k for k in m if k.startswith("steps_per_s_cached_") and k.endswith("_threads"))
        lines.append(f"{name:<12}{m['steps_per_s_cached_1_thread']:>15.2f}{m[all_key]:>13.2f}"
                     f"{m['patterns_per_s_cached_1_thread']:>12.0f}{m['data_wait_fraction_1_worker']:>22.1%}")
    return lines
