"""``synthxrd bench train``: the training step of the default ``synthxrd train`` model, and its variants,
measured side by side; with ``--stream``, trainer steps/s on cached batches, stream patterns/s with 1
and 2 workers, and the fraction of wall time the trainer waits for data, for ``park_big`` and
``resnet10`` on the CPU. (No reference implementation runs here: ML4pXRDs needs TensorFlow 2.10 and
the ICSD.)

:func:`compare_step` times one optimisation step (forward, backward, Adam) of the model that
``TrainConfig()`` trains, on batches of its own training stream, against variants of it: torch
threads, bfloat16 autocast, ``torch.compile``, batch size, the input grid step. The variants run
interleaved (A B C ... A B C ..., ``repeats`` rounds) in one process and each figure is a median, so
that a machine shared with other jobs slows every variant alike; the ratios are what to read.
:func:`compare_end_to_end` alternates windows of steps on the real data stream (its worker processes
running) between thread settings.
"""

from __future__ import annotations

import time
import warnings


from synthxrd.bench.common import machine_info
from synthxrd.config import available_cores

__all__ = ["run_benchmark", "summary_lines", "compare_step", "compare_end_to_end", "compare_lines",
           "STEP_VARIANTS"]


#: Variants of the default training step that :func:`compare_step` times: name -> changes to the default.
#: ``threads``: torch threads ("all": every available core, the default before issue 30; the default is
#: :func:`synthxrd.train.cpu_threads`); ``autocast``: "bf16" (``TrainConfig(amp="on")`` on a CPU); ``batch``: a
#: multiple of the batch size; ``grid_step``: the input grid (degrees); ``fused``: Adam's fused kernel;
#: ``compile``: ``torch.compile`` of the model (its compile time is reported apart).
STEP_VARIANTS: dict[str, dict] = {
    "default": {},
    "previous default": {"threads": "all"},
    "1 thread": {"threads": 1},
    "bf16 autocast": {"autocast": "bf16"},
    "batch x2": {"batch": 2},
    "grid 0.05": {"grid_step": 0.05},
    "fused Adam": {"fused": True},
    "compile": {"compile": True},
}
#: Not measured, with the reason (printed with the table).
NOT_APPLICABLE = {
    "channels-last": "torch's channels_last/channels_last_3d formats are for 4-D/5-D tensors; a 1-D "
                     "network's (B, C, L) activations have no other memory format",
    "interop threads": "set_num_interop_threads parallelises independent graph branches (TorchScript "
                       "forks); the step is one chain of operators, and it can be set once per process only",
}


def _step_setup(config, changes: dict, batches_by_grid: dict, n_classes: int):
    """(step function, network inputs, labels, threads) of one variant; the step returns the loss."""
    from contextlib import nullcontext

    import numpy as np
    import torch

    from synthxrd.models import build

    grid = changes.get("grid_step", config.grid_step)
    batches = batches_by_grid[grid]
    inputs = np.concatenate([b.inputs for b in batches])[: config.batch_size * changes.get("batch", 1)]
    labels = np.concatenate([b.labels for b in batches])[: len(inputs)]
    kwargs = dict(config.model_kwargs)
    if "input_step" in kwargs:
        kwargs["input_step"] = grid
    model = build(config.model, num_classes=n_classes, input_length=inputs.shape[1], **kwargs)
    opt_kwargs = {"fused": True} if changes.get("fused") else {}
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, **opt_kwargs)
    net = torch.compile(model) if changes.get("compile") else model
    bf16 = changes.get("autocast") == "bf16"
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else nullcontext
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = torch.as_tensor(inputs), torch.as_tensor(labels, dtype=torch.int64)

    def step() -> float:
        with autocast():
            loss = loss_fn(net(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    threads = changes.get("threads") or _default_threads(config)
    return step, len(y), available_cores() if threads == "all" else threads


def _default_threads(config) -> int:
    """The torch threads ``synthxrd train`` uses for ``config`` on this machine's CPU."""
    from synthxrd.train import cpu_threads

    cores = available_cores()
    return cpu_threads(config, cores, 1, config.workers if config.workers >= 0 else max(1, cores - 1))


def compare_step(config=None, *, variants: dict[str, dict] | None = None, repeats: int = 5, steps: int = 2,
                 progress: bool = True) -> dict:
    """Patterns/s of one training step (forward, backward, Adam) of ``config``'s model and of each variant.

    Parameters
    ----------
    config
        A :class:`synthxrd.train.TrainConfig` (default: ``TrainConfig()``, what ``synthxrd train`` runs);
        its model, batch size, grid, stream, learning rate and threads.
    variants
        name -> changes (see :data:`STEP_VARIANTS`, the default); ``"default"`` is the reference of the ratios.
    repeats
        Rounds; each round times ``steps`` steps of every variant in turn (interleaved).

    Each round starts one variant later than the one before (A B C, B C A, C A B, ...), so that no variant
    always follows the same one.

    Returns
    -------
    dict
        ``variants``: per name the median patterns/s, the median over the rounds of its ratio to
        ``"default"`` in the same round, every round's figure,
        the last loss (finite for a working variant), threads, batch and (compile) the first-step seconds.
    """
    import math
    import statistics

    import torch

    from synthxrd.data import BatchMaker
    from synthxrd.train import TrainConfig, _stream_config

    warnings.filterwarnings("ignore")
    config = config or TrainConfig()
    variants = dict(variants or STEP_VARIANTS)
    variants.setdefault("default", {})
    need = max(v.get("batch", 1) for v in variants.values())
    batches_by_grid, n_classes = {}, 0
    for grid in dict.fromkeys([config.grid_step] + [v["grid_step"] for v in variants.values() if "grid_step" in v]):
        maker = BatchMaker(_stream_config(config, grid_step=grid))
        batches_by_grid[grid] = [maker(i) for i in range(need)]  # the same crystals on every grid
        n_classes = len(maker.classes)
    threads_before = torch.get_num_threads()
    setups, res = {}, {"benchmark": "train step", "machine": machine_info(), "model": config.model,
                       "grid_step": config.grid_step, "batch_size": config.batch_size, "repeats": repeats,
                       "steps": steps, "variants": {}, "not_applicable": NOT_APPLICABLE}
    try:
        for name, changes in variants.items():
            torch.manual_seed(config.seed)
            step, batch, threads = _step_setup(config, changes, batches_by_grid, n_classes)
            torch.set_num_threads(threads)
            t0 = time.perf_counter()
            step()  # warm-up (and compilation)
            setups[name] = (step, batch, threads)
            res["variants"][name] = {"changes": changes, "threads": threads, "batch": batch, "rounds": [],
                                     "first_step_s": time.perf_counter() - t0}
        names = list(setups)
        for r in range(repeats):
            for name in names[r % len(names):] + names[:r % len(names)]:  # each round starts one later: no order bias
                step, batch, threads = setups[name]
                torch.set_num_threads(threads)
                t0 = time.perf_counter()
                for _ in range(steps):
                    loss = step()
                v = res["variants"][name]
                v["rounds"].append(steps * batch / (time.perf_counter() - t0))
                v["loss"] = float(loss)
            if progress:
                print(f"round {r + 1}/{repeats}: " + ", ".join(f"{k} {v['rounds'][-1]:.0f}"
                                                                for k, v in res["variants"].items()), flush=True)
    finally:
        torch.set_num_threads(threads_before)
    ref = res["variants"]["default"]["rounds"]
    for v in res["variants"].values():
        v["patterns_per_s"] = statistics.median(v["rounds"])
        v["ratio"] = statistics.median(a / b for a, b in zip(v["rounds"], ref))  # paired: each round's load cancels
        v["finite_loss"] = math.isfinite(v["loss"])
    return res


def compare_end_to_end(config=None, *, threads: tuple[int, ...] | None = None, windows: int = 4,
                       window_steps: int = 5, progress: bool = True) -> dict:
    """Wall patterns/s of training on the real data stream (its workers running, as ``synthxrd train``)
    with each torch thread count of ``threads`` (default: ``synthxrd train``'s (:func:`synthxrd.train.cpu_threads`)
    and every core, the default before issue 30), in alternating windows of
    ``window_steps`` steps: the data wait and the workers' share of the cores count."""
    import statistics

    import torch

    from synthxrd.data import BatchMaker, make_stream
    from synthxrd.models import build
    from synthxrd.train import TrainConfig, _stream_config

    warnings.filterwarnings("ignore")
    config = config or TrainConfig()
    cores = available_cores()
    threads = tuple(dict.fromkeys(threads or (_default_threads(config), cores, 1)))
    workers = config.workers if config.workers >= 0 else max(1, cores - 1)
    stream_config = _stream_config(config)
    maker = BatchMaker(stream_config)
    model = build(config.model, num_classes=len(maker.classes), input_length=maker.spec.n, **config.model_kwargs)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    stream = make_stream(stream_config, workers=workers, start=0)
    rounds: dict[int, list[float]] = {t: [] for t in threads}
    threads_before = torch.get_num_threads()
    try:
        next(stream)  # start-up
        for w in range(windows):
            for t in threads:
                torch.set_num_threads(t)
                n, t0 = 0, time.perf_counter()
                for _ in range(window_steps):
                    b = next(stream)
                    logits = model(torch.as_tensor(b.inputs))
                    loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(b.labels))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    n += len(b.labels)
                rounds[t].append(n / (time.perf_counter() - t0))
            if progress:
                print(f"window {w + 1}/{windows}: " + ", ".join(f"{t} thread(s) {rounds[t][-1]:.0f}" for t in threads),
                      flush=True)
    finally:
        torch.set_num_threads(threads_before)
        if hasattr(stream, "close"):
            stream.close()
    ref = statistics.median(rounds[threads[0]])
    return {"benchmark": "train end to end", "workers": workers, "window_steps": window_steps,
            "threads": {str(t): {"rounds": r, "patterns_per_s": statistics.median(r),
                                 "ratio": statistics.median(r) / ref} for t, r in rounds.items()}}


def compare_lines(r: dict) -> list[str]:
    """The table of :func:`compare_step` (and, under ``"end_to_end"``, of :func:`compare_end_to_end`)."""
    lines = [f"training step of {r['model']} (grid {r['grid_step']} deg, batch {r['batch_size']}): forward + "
             f"backward + Adam, {r['repeats']} interleaved rounds of {r['steps']} steps, medians; "
             f"CPU {r['machine']['cpus']} cores"]
    head = (f"{'variant':<16}{'threads':>8}{'batch':>7}{'patterns/s':>12}{'x default':>11}{'first step s':>14}"
            f"{'loss':>9}")
    lines += [head, "-" * len(head)]
    for name, v in r["variants"].items():
        lines.append(f"{name:<16}{v['threads']:>8}{v['batch']:>7}{v['patterns_per_s']:>12.0f}{v['ratio']:>11.2f}"
                     f"{v['first_step_s']:>14.1f}{v['loss']:>9.3f}")
    lines += [f"not measured: {k}: {why}" for k, why in r.get("not_applicable", {}).items()]
    e2e = r.get("end_to_end")
    if e2e:
        lines.append(f"end to end on the data stream ({e2e['workers']} worker(s), windows of {e2e['window_steps']} "
                     "steps, alternating):")
        lines += [f"  {t} thread(s): {v['patterns_per_s']:.0f} patterns/s, x{v['ratio']:.2f}"
                  for t, v in e2e["threads"].items()]
    return lines


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
