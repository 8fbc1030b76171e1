"""Endless training batches of freshly generated crystals: local worker processes or Ray actors.

Every batch is a pure function of ``(seed, index)``: batch ``t`` uses the random generator
``numpy.random.default_rng([seed, t])``. Hence

* a run is reproducible for a given seed, whatever the number of workers or Ray actors;
* workers need no coordination: worker ``w`` of ``W`` makes batches ``w, w + W, w + 2W, ...`` and
  PyTorch's ``DataLoader`` (or the Ray window below) returns them in index order;
* resuming at step ``s`` restarts the stream at index ``s``, giving exactly the batches an
  uninterrupted run would have seen; DDP rank ``r`` of ``R`` uses indices ``t R + r``.

A batch holds ``batch_size`` crystals, labels drawn from the space-group prior of the statistics
(or uniform over the classes). A crystal that cannot be generated or has no reflection in range is
replaced by a new draw from the same generator (never silently dropped; replacements are counted).
Patterns are returned as network inputs (:meth:`synthxrd.models.checkpoint.InputSpec.apply`: the
fine-grid pattern averaged onto the model grid of step ``grid_step``, normalised, square root;
Schopmans et al. 2023), or, with ``simulate_on="device"``, the crystals themselves so that the GPU
simulates them.

Real crystals: with ``real`` (a :mod:`synthxrd.real` set of the statistics part of a split) a share
``real_fraction`` of every batch are real structures, drawn uniformly among those whose space group
is a class and perturbed (:func:`synthxrd.real.perturb`: lattice strain, coordinate jitter,
substitution) before simulation; ``real_fraction = 1`` is the reference's "direct" baseline.
``renders > 1`` renders each crystal's reflections that many times with independent augmentation
parameters (rendering costs about half of generating and simulating a crystal).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synthxrd.errors import ConfigError
from synthxrd.generate import GenerationError, Generator, GeneratorConfig
from synthxrd.models.checkpoint import InputSpec
from synthxrd.simulate.common import DEFAULT_WAVELENGTH
from synthxrd.stats.statistics import REPRESENTED_MIN_COUNT

__all__ = ["StreamConfig", "BatchMaker", "Batch", "batch_rng", "local_loader", "RayStream", "make_stream"]


@dataclass(frozen=True)
class StreamConfig:
    """What the training stream produces."""

    batch_size: int = 145
    seed: int = 0
    #: "statistics" (structure counts) or "uniform" over the classes.
    prior: str = "statistics"
    #: Classes = space groups with at least this many structures in the statistics.
    min_count: int = REPRESENTED_MIN_COUNT
    #: Statistics file; None = shipped statistics.
    statistics: str | None = None
    #: "worker": workers return network inputs; "device": workers return crystals, the trainer simulates.
    simulate_on: str = "worker"
    #: Experimental realism (synthxrd.augment): "none", "default" or a TOML file.
    augment: str = "none"
    #: Step of the model grid in degrees (a multiple of the 0.01 degree pattern grid).
    grid_step: float = 0.01
    #: Network inputs with background and noise taken away (InputSpec.clean).
    clean_input: bool = False
    #: Augmented renderings of each simulated crystal (reuse of its reflections).
    renders: int = 1
    #: With ``augment``: share of the renderings drawn ideal (every experimental effect off,
    #: synthxrd.augment.ideal_config) -- clean patterns teach the symmetry first (docs/training.md).
    clean_fraction: float = 0.0
    #: Real crystal set (synthxrd.real: HDF5, compact .npz, or "shipped") mixed into the batches; None = synthetic only.
    real: str | None = None
    #: Share of each batch taken from ``real``.
    real_fraction: float = 0.0
    #: Options of synthxrd.real.PerturbConfig for the real crystals ({} = its defaults).
    perturb: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if isinstance(self.renders, bool) or not isinstance(self.renders, int) or self.renders < 1:
            raise ConfigError(f"renders must be an integer >= 1, got {self.renders!r}")
        if not 0.0 <= self.clean_fraction <= 1.0:
            raise ConfigError(f"clean_fraction must lie in [0, 1], got {self.clean_fraction!r}")
        if not 0.0 <= self.real_fraction <= 1.0:
            raise ConfigError(f"real_fraction must lie in [0, 1], got {self.real_fraction!r}")
        if self.real_fraction > 0 and not self.real:
            raise ConfigError("real_fraction > 0 needs a real crystal set (build one with `synthxrd real build`)")
        if self.simulate_on == "device" and (self.real_fraction > 0 or self.renders > 1):
            raise ConfigError("real crystals and renders > 1 need simulate_on = 'worker' (train: real crystals are "
                              "mixed in by default; --real none and --renders 1 for simulate_on = 'device')")
        InputSpec(step=self.grid_step, clean=self.clean_input)  # validates the step
        if self.perturb:
            from synthxrd.real import PerturbConfig

            try:
                PerturbConfig(**self.perturb)
            except TypeError as exc:
                raise ConfigError(f"perturb: {exc}") from None
        if self.simulate_on not in ("worker", "device"):
            raise ConfigError(f"simulate_on must be 'worker' or 'device', got {self.simulate_on!r}")
        if self.simulate_on == "device" and self.clean_input:
            raise ConfigError("clean_input needs simulate_on = 'worker' (its filters run on the CPU)")
        if self.simulate_on == "device" and self.augment != "none":
            raise ConfigError("augment needs simulate_on = 'worker' (the device path simulates ideal patterns)")


@dataclass
class Batch:
    """One training batch (numpy; converted to tensors by the trainer).

    Attributes
    ----------
    index : global batch index t.
    labels : (B,) int64 class indices (positions in ``classes``, not ITA numbers).
    inputs : (B, n) float32 network inputs (:meth:`~synthxrd.models.checkpoint.InputSpec.apply`), or None with
        ``simulate_on="device"``.
    crystals : dict of the CrystalBatch arrays with ``simulate_on="device"``, else None.
    replaced : crystals that failed and were replaced by a new draw.
    seconds : wall time spent making the batch.
    cpu_seconds : CPU time of the process making it, in that time (below ``seconds`` when the core is shared).
    """

    index: int
    labels: np.ndarray
    inputs: np.ndarray | None = None
    crystals: dict[str, np.ndarray] | None = None
    replaced: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def batch_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of global batch ``index`` (independent streams by SeedSequence)."""
    return np.random.default_rng([int(seed), int(index)])


class BatchMaker:
    """Makes batch ``t`` from scratch: pure in ``(config, t)``; holds a Generator (built lazily)."""

    #: A crystal slot is redrawn at most this many times before the batch fails loudly.
    MAX_REPLACEMENTS = 1000

    def __init__(self, config: StreamConfig):
        self.config = config
        self.spec = InputSpec(step=config.grid_step, clean=config.clean_input)
        self._generator: Generator | None = None
        self._real: Any = None
        self._augment: Any = None
        self._ideal: Any = None
        if config.augment != "none":
            from synthxrd.augment import augment_config, ideal_config

            self._augment = augment_config(config.augment)
            self._ideal = ideal_config(self._augment)
        if config.real_fraction > 0:
            from synthxrd.real import PerturbConfig

            self._perturb = PerturbConfig(**config.perturb)

    def _patterns(self, crystals, rng: np.random.Generator, renders: int = 1) -> np.ndarray:
        """Ideal Gaussian-Scherrer patterns, or with the experimental effects of the augment config.

        ``renders`` > 1 renders the reflections of each crystal that many times with independent
        parameters (rows ``r * N + c``), computing the reflections once. With ``clean_fraction`` c,
        the last ``k`` renderings are ideal, ``k = floor(c R) + [u < frac(c R)]`` (u uniform), so that
        the expected share of ideal patterns is c.
        """
        from synthxrd import simulate

        if self._augment is None:
            return np.concatenate([simulate.patterns(crystals, rng=rng, allow_empty=True) for _ in range(renders)])
        from synthxrd.augment import reflection_window, render

        refl = simulate.reflections(crystals, two_theta_range=reflection_window(self._augment))
        share = self.config.clean_fraction * renders
        ideal = renders - int(share) - int(rng.random() < share - int(share)) if share > 0 else renders
        return np.concatenate([render(crystals, refl, self._augment if r < ideal else self._ideal, rng)
                               for r in range(renders)])

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            from synthxrd.stats import Statistics

            self._generator = Generator(Statistics.load(self.config.statistics),
                                        GeneratorConfig(min_count=self.config.min_count, prior=self.config.prior))
        return self._generator

    @property
    def real(self):
        """The real crystal set restricted to the classes (loaded on first use), or None."""
        if self._real is None and self.config.real_fraction > 0:
            from synthxrd.real import RealCrystals

            self._real = RealCrystals.load(self.config.real)
            if not np.isin(self._real.classes, self.classes).any():
                raise ConfigError(f"{self.config.real}: none of its crystals has a space group among the classes")
        return self._real

    @property
    def classes(self) -> np.ndarray:
        """ITA numbers of the classes, in logit order."""
        return self.generator.classes

    def make(self, index: int) -> Batch:
        """Batch ``index`` (the method Ray actors expose)."""
        return self(index)

    def ray_node_id(self) -> str:
        """The id of the Ray node this actor runs on (:meth:`RayStream.nodes`)."""
        import ray

        return ray.get_runtime_context().get_node_id()

    def _synthetic(self, group: int, rng: np.random.Generator, what: str):
        """One generated crystal of ``group``: (CrystalBatch of 1, redraws needed)."""
        for replaced in range(self.MAX_REPLACEMENTS):
            try:
                return self.generator.sample_batch(1, rng, group), replaced
            except GenerationError:
                pass
        raise GenerationError(f"{what} (space group {group}) failed {self.MAX_REPLACEMENTS} times")

    def _real_crystals(self, n: int, rng: np.random.Generator):
        """``n`` perturbed real crystals and their class indices."""
        from synthxrd.real import perturb

        drawn = self.real.draw(n, rng, classes=self.classes)  # the draws of RealCrystals.sample
        crystals = self.real.take(drawn)
        groups = crystals.spacegroups.copy()
        index = np.searchsorted(self.classes, groups)
        known = self.real.operations(drawn) if self.real.operations_symprec == self._perturb.symprec else None
        return perturb(crystals, groups, rng, self._perturb, operations=known), index.astype(np.int64)

    def __call__(self, index: int) -> Batch:
        from synthxrd import simulate
        from synthxrd.structure import CrystalBatch

        start, cpu = time.perf_counter(), time.process_time()
        cfg = self.config
        rng = batch_rng(cfg.seed, index)
        groups, probs = self.generator.prior()
        cdf = np.cumsum(probs) / probs.sum()
        n_real = round(cfg.batch_size * cfg.real_fraction)
        n_syn = cfg.batch_size - n_real
        renders = cfg.renders
        labels = np.minimum(np.searchsorted(cdf, rng.random(-(-n_syn // renders)), side="right"), len(groups) - 1)
        parts, replaced = [], 0
        for i, label in enumerate(labels):
            one, k = self._synthetic(int(groups[label]), rng, f"batch {index}: crystal {i}")
            parts.append(one)
            replaced += k
        if cfg.simulate_on == "device":
            crystals = CrystalBatch.concatenate(parts)
            for i in np.flatnonzero(~_has_reflection(crystals.lattices)):  # the device cannot redraw: do it here
                for _ in range(self.MAX_REPLACEMENTS):
                    replaced += 1
                    one = self.generator.sample_batch(1, rng, int(groups[labels[i]]))
                    if _has_reflection(one.lattices)[0]:
                        parts[i] = one
                        break
                else:
                    raise GenerationError(f"batch {index}: crystal {i} (space group {groups[labels[i]]}) has no "
                                          f"reflection in range after {self.MAX_REPLACEMENTS} redraws")
            crystals = CrystalBatch.concatenate(parts)
            arrays = {k: getattr(crystals, k) for k in ("lattices", "frac_coords", "numbers", "occupancies", "offsets")}
            arrays["crystallite_size_nm"] = rng.uniform(*simulate.DEFAULT_SIZE_RANGE_NM, size=len(labels))
            return Batch(index, labels.astype(np.int64), crystals=arrays, replaced=replaced,
                         seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu)
        is_real = np.zeros(len(labels), bool)
        if n_real:
            real, real_labels = self._real_crystals(-(-n_real // renders), rng)
            parts.append(real)
            labels = np.concatenate([labels, real_labels])
            is_real = np.concatenate([is_real, np.ones(len(real_labels), bool)])
        crystals = CrystalBatch.concatenate(parts)
        patterns = self._patterns(crystals, rng, renders)
        rows = np.arange(len(patterns)) % len(labels)  # render r of crystal c is row r * n + c
        keep = np.concatenate([np.flatnonzero(~is_real[rows])[:n_syn], np.flatnonzero(is_real[rows])[:n_real]])
        patterns, rows = patterns[keep], rows[keep]
        labels, is_real = labels[rows], is_real[rows]
        for i in np.flatnonzero(patterns.max(axis=1) <= 0):  # no reflection in range: redraw this slot
            for _ in range(self.MAX_REPLACEMENTS):
                replaced += 1
                if is_real[i]:
                    one, new_label = self._real_crystals(1, rng)
                    labels[i] = new_label[0]
                else:
                    one = self._synthetic(int(groups[labels[i]]), rng, f"batch {index}: crystal {i}")[0]
                row = self._patterns(one, rng)[0]
                if row.max() > 0:
                    patterns[i] = row
                    break
            else:
                raise GenerationError(f"batch {index}: slot {i} has no reflection in range after "
                                      f"{self.MAX_REPLACEMENTS} redraws")
        return Batch(index, labels.astype(np.int64), inputs=self.spec.apply(patterns), replaced=replaced,
                     seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu)


def _has_reflection(lattices: np.ndarray, two_theta_max: float = 90.0,
                    wavelength: float = DEFAULT_WAVELENGTH) -> np.ndarray:
    """Whether some reciprocal basis vector is short enough for a reflection below ``two_theta_max``.

    |b_i| <= 2 sin(theta_max) / lambda guarantees the reflection (100), (010) or (001) - or a
    multiple of it above the lower limit - lies in range; used to pre-check crystals whose patterns
    the GPU will simulate (a crystal failing it would give an empty pattern).
    """
    g_max = 2.0 * np.sin(np.radians(two_theta_max / 2.0)) / wavelength
    recip = np.linalg.inv(lattices).transpose(0, 2, 1)
    return np.linalg.norm(recip, axis=2).min(axis=1) <= g_max


def _indices(start: int, step: int, offset: int):
    t = start + offset
    while True:
        yield t
        t += step


def _init_data_worker(_worker_id: int = 0) -> None:
    """A data worker computes one batch at a time on one core (torch and BLAS/OpenMP pools limited to 1
    thread, :func:`synthxrd.pool.quiet_worker`) and ignores SIGINT and SIGTERM: Ctrl-C and schedulers
    (Slurm, ``kill -- -PGID``) signal the whole process group, and the trainer, which handles them,
    checkpoints and then shuts its workers down. A trainer that is killed outright (SIGKILL, out of
    memory) takes its workers with it (Linux: ``PR_SET_PDEATHSIG``); torch's own check is not enough,
    as a worker whose last batch fills the pipe waits for a reader forever."""
    import signal

    import torch

    from synthxrd.pool import quiet_worker

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    _die_with_parent()
    torch.set_num_threads(1)
    quiet_worker()


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent exits (``prctl(PR_SET_PDEATHSIG)``, a no-op
    elsewhere); a parent already gone before the request ends this process at once."""
    import ctypes
    import multiprocessing
    import os
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, int(signal.SIGKILL))
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(1)


def local_loader(config: StreamConfig, *, workers: int, start: int = 0, rank: int = 0, world_size: int = 1,
                 prefetch: int = 2):
    """A ``torch.utils.data.DataLoader`` over the stream, from global index ``start`` (per rank).

    ``workers=0`` makes batches in the training process. Rank ``r`` of ``R`` sees batch indices
    ``(start + i) R + r`` for i = 0, 1, ...
    """
    from torch.utils.data import DataLoader, IterableDataset, get_worker_info

    class _Stream(IterableDataset):
        def __iter__(self):
            info = get_worker_info()
            w, n = (info.id, info.num_workers) if info is not None else (0, 1)
            maker = BatchMaker(config)
            for i in _indices(start, n, w):
                yield maker(i * world_size + rank)

    kwargs: dict[str, Any] = {"batch_size": None, "num_workers": workers, "collate_fn": lambda b: b}
    if workers > 0:
        kwargs.update(prefetch_factor=prefetch, persistent_workers=False, worker_init_fn=_init_data_worker)
    return DataLoader(_Stream(), **kwargs)


class RayStream:
    """Batches made by Ray actors, returned in index order through a bounded window.

    ``actors`` actors each hold a :class:`BatchMaker`; at most ``queue_size`` batches are in flight
    (requested, not yet consumed), so a slow trainer applies back-pressure instead of filling memory.
    Works with a local ``ray.init()`` or a cluster (``address="auto"`` or ``"HOST:PORT"``).

    Placement: each actor reserves ``num_cpus_per_actor`` CPUs and the custom ``resources`` (e.g.
    ``{"data_node": 1}``, a resource given only to the data nodes by ``ray start --resources``, keeps
    the actors off the head); the actors are spread over the nodes that have them (``"SPREAD"``).

    A lost actor (its node removed or dead, its process killed) is restarted by Ray on a node with
    room, up to ``max_restarts`` times (-1: no limit; preemptible nodes can come and go for days), and
    its unfinished batches are made again there: a batch is a pure function of ``(seed, index)``, so
    the stream is unchanged. When no restart is left, or no batch comes for ``timeout`` seconds (no
    node has room for the restarted actor, or it keeps dying), ``next()`` raises a one-line
    ``RuntimeError``, which the trainer turns into a checkpointed stop.
    """

    def __init__(self, config: StreamConfig, *, actors: int, start: int = 0, rank: int = 0, world_size: int = 1,
                 queue_size: int | None = None, address: str | None = None, num_cpus_per_actor: float = 1.0,
                 resources: dict[str, float] | None = None, max_restarts: int = -1, timeout: float = 600.0):
        import ray

        resources = _ray_resources(resources)
        if not ray.is_initialized():
            ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
        n_actors, total = max(1, actors), ray.cluster_resources()
        for name, need in {"CPU": num_cpus_per_actor, **resources}.items():
            have = total.get(name, 0.0)
            if n_actors * need > have:  # the extra actors would never start: wait forever
                what = "CPUs" if name == "CPU" else f"of the resource {name!r}"
                raise ConfigError(f"{n_actors} Ray actors need {n_actors * need:g} {what}, the Ray cluster has "
                                  f"{have:g}; use at most --workers {int(have // need)}")
        remote_maker = ray.remote(num_cpus=num_cpus_per_actor, resources=resources or None, max_restarts=max_restarts,
                                  max_task_retries=-1 if max_restarts else 0, scheduling_strategy="SPREAD")(BatchMaker)
        self._ray = ray
        self._actors = [remote_maker.remote(config) for _ in range(n_actors)]
        self._queue_size = queue_size or 2 * len(self._actors)
        self._next = start
        self._rank, self._world = rank, world_size
        self.timeout = timeout
        self._pending: deque = deque()

    def _submit(self) -> None:
        actor = self._actors[self._next % len(self._actors)]
        self._pending.append(actor.make.remote(self._next * self._world + self._rank))
        self._next += 1

    def __iter__(self):
        return self

    def __next__(self) -> Batch:
        from ray.exceptions import GetTimeoutError, ObjectLostError, RayActorError, RayError

        while len(self._pending) < self._queue_size:
            self._submit()
        try:
            batch = self._ray.get(self._pending[0], timeout=self.timeout)
        except GetTimeoutError:
            raise RuntimeError(f"no batch from the Ray actors in {self.timeout:g} s (a lost actor finds no node "
                               "with room to restart on, or dies at every start; see `ray status`)") from None
        except RayError as exc:  # an actor or its batch lost for good (restarts used up), or a failed batch
            if isinstance(exc, (RayActorError, ObjectLostError)):
                raise RuntimeError(f"a Ray actor and its batches were lost and the actor has no restart left "
                                   f"({type(exc).__name__})") from None
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            index = (self._next - len(self._pending)) * self._world + self._rank
            raise RuntimeError(f"a Ray actor failed to make batch {index} ({first})") from None
        self._pending.popleft()
        batch.labels = np.require(batch.labels, requirements="W")  # arrays from Ray's object store are read-only
        if batch.inputs is not None:
            batch.inputs = np.require(batch.inputs, requirements="W")
        return batch

    def nodes(self) -> list[str]:
        """The Ray node id of each actor, now (a restarted actor may have moved)."""
        return self._ray.get([actor.ray_node_id.remote() for actor in self._actors], timeout=self.timeout)

    def close(self) -> None:
        for ref in self._pending:  # unfinished batches: not retried on the killed actors
            self._ray.cancel(ref)
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors, self._pending = [], deque()


def _ray_resources(resources: dict[str, float] | None) -> dict[str, float]:
    """Custom Ray resources per actor, checked (``{"data_node": 1}``); CPUs go by ``num_cpus_per_actor``."""
    resources = dict(resources or {})
    for name, amount in resources.items():
        if name in ("CPU", "GPU") or not isinstance(name, str):
            raise ConfigError(f"ray_resources: {name!r} is not a custom resource name (each actor takes 1 CPU)")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not amount > 0:
            raise ConfigError(f"ray_resources: {name} = {amount!r} is not a positive number")
    return {k: float(v) for k, v in resources.items()}


def make_stream(config: StreamConfig, *, workers: int, start: int = 0, rank: int = 0, world_size: int = 1,
                ray_address: str | None = None, ray_resources: dict[str, float] | None = None):
    """Iterator of :class:`Batch`: Ray actors when ``ray_address`` is given, else local workers.

    ``ray_resources``: custom Ray resources each actor reserves (:class:`RayStream`), e.g.
    ``{"data_node": 1}`` to place the actors on the nodes started with that resource.
    """
    if ray_address:
        return RayStream(config, actors=max(1, workers), start=start, rank=rank, world_size=world_size,
                         address=None if ray_address == "local" else ray_address, resources=ray_resources)
    if ray_resources:
        raise ConfigError("ray_resources needs ray_address (they place Ray actors)")
    return WatchedLoader(local_loader(config, workers=workers, start=start, rank=rank, world_size=world_size))


class WatchedLoader:
    """Iterator over a DataLoader whose dead workers are reported by ``next()`` only.

    torch learns of a dead worker from SIGCHLD and raises its error from the signal handler, that is
    between any two bytecodes of the trainer. Inside ``next()`` that is needed: a worker killed in the
    middle of sending a batch leaves the trainer blocked in a read of the rest, which only the signal
    interrupts. Anywhere else it is not safe: raised inside ``with lock:`` (tqdm's write, TensorBoard's
    queue) it leaves the lock held and the run hangs at the next flush (seen once in CI). So the
    handler here raises inside ``next()`` and otherwise keeps the error for the next call: the trainer
    stops at a step boundary. :meth:`close` puts the previous handler back and stops the workers (the
    handler holds only ``state``, so an unclosed loader is still collected and its workers stopped).
    """

    def __init__(self, loader) -> None:
        import signal
        import threading

        self._previous = signal.getsignal(signal.SIGCHLD)
        self._iterator = iter(loader)  # torch installs its SIGCHLD handler here (main thread only)
        self.state = {"inside": False, "failure": None}
        self._watching = loader.num_workers > 0 and threading.current_thread() is threading.main_thread()
        if self._watching:
            signal.signal(signal.SIGCHLD, _sigchld_handler(self.state))

    def __iter__(self) -> WatchedLoader:
        return self

    def __next__(self) -> Batch:
        if self.state["failure"] is not None:
            raise self.state["failure"]
        self.state["inside"] = True
        try:
            return next(self._iterator)
        finally:
            self.state["inside"] = False

    def close(self) -> None:
        import signal

        if self._watching:
            signal.signal(signal.SIGCHLD, self._previous)
            self._watching = False
        self._iterator = None  # shuts the workers down


def _sigchld_handler(state: dict):
    """A SIGCHLD handler that raises torch's dead-worker error while ``state["inside"]`` and otherwise
    keeps it in ``state["failure"]`` (:class:`WatchedLoader`)."""

    def handler(signum, frame) -> None:
        from torch.utils.data._utils.signal_handling import _error_if_any_worker_fails

        try:
            _error_if_any_worker_fails()  # torch's check of this process's DataLoader workers
        except RuntimeError as exc:
            if state["inside"]:
                raise
            state["failure"] = exc

    return handler
