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
Patterns are returned as the network input sqrt(pattern) (Schopmans et al. 2023), or, with
``simulate_on="device"``, the crystals themselves so that the GPU simulates them.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthxrd.errors import ConfigError
from synthxrd.generate import GenerationError, Generator, GeneratorConfig

__all__ = ["StreamConfig", "BatchMaker", "Batch", "batch_rng", "local_loader", "RayStream", "make_stream"]


@dataclass(frozen=True)
class StreamConfig:
    """What the training stream produces."""

    batch_size: int = 145
    seed: int = 0
    #: "statistics" (structure counts) or "uniform" over the classes.
    prior: str = "statistics"
    #: Classes = space groups with at least this many structures in the statistics.
    min_count: int = 50
    #: Statistics file; None = shipped statistics.
    statistics: str | None = None
    #: "worker": workers return sqrt(patterns); "device": workers return crystals, the trainer simulates.
    simulate_on: str = "worker"
    #: Experimental realism (synthxrd.augment): "none", "default" or a TOML file.
    augment: str = "none"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.simulate_on not in ("worker", "device"):
            raise ConfigError(f"simulate_on must be 'worker' or 'device', got {self.simulate_on!r}")
        if self.simulate_on == "device" and self.augment != "none":
            raise ConfigError("augment needs simulate_on = 'worker' (the device path simulates ideal patterns)")


@dataclass
class Batch:
    """One training batch (numpy; converted to tensors by the trainer).

    Attributes
    ----------
    index : global batch index t.
    labels : (B,) int64 class indices (positions in ``classes``, not ITA numbers).
    inputs : (B, n_grid) float32 sqrt(pattern), or None with ``simulate_on="device"``.
    crystals : dict of the CrystalBatch arrays with ``simulate_on="device"``, else None.
    replaced : crystals that failed and were replaced by a new draw.
    seconds : wall time spent making the batch.
    """

    index: int
    labels: np.ndarray
    inputs: np.ndarray | None = None
    crystals: dict[str, np.ndarray] | None = None
    replaced: int = 0
    seconds: float = 0.0


def batch_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of global batch ``index`` (independent streams by SeedSequence)."""
    return np.random.default_rng([int(seed), int(index)])


class BatchMaker:
    """Makes batch ``t`` from scratch: pure in ``(config, t)``; holds a Generator (built lazily)."""

    #: A crystal slot is redrawn at most this many times before the batch fails loudly.
    MAX_REPLACEMENTS = 1000

    def __init__(self, config: StreamConfig):
        self.config = config
        self._generator: Generator | None = None
        self._augment: Any = None
        if config.augment != "none":
            from synthxrd.augment import augment_config

            self._augment = augment_config(config.augment)

    def _patterns(self, crystals, rng: np.random.Generator) -> np.ndarray:
        """Ideal Gaussian-Scherrer patterns, or with the experimental effects of the augment config."""
        from synthxrd import simulate

        if self._augment is None:
            return simulate.patterns(crystals, rng=rng, allow_empty=True)
        from synthxrd.augment import augmented_patterns

        return augmented_patterns(crystals, self._augment, rng)

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            from synthxrd.stats import Statistics

            self._generator = Generator(Statistics.load(self.config.statistics),
                                        GeneratorConfig(min_count=self.config.min_count, prior=self.config.prior))
        return self._generator

    @property
    def classes(self) -> np.ndarray:
        """ITA numbers of the classes, in logit order."""
        return self.generator.classes

    def make(self, index: int) -> Batch:
        """Batch ``index`` (the method Ray actors expose)."""
        return self(index)

    def __call__(self, index: int) -> Batch:
        from synthxrd import simulate
        from synthxrd.structure import CrystalBatch

        start = time.perf_counter()
        rng = batch_rng(self.config.seed, index)
        gen = self.generator
        groups, probs = gen.prior()
        cdf = np.cumsum(probs) / probs.sum()
        labels = np.minimum(np.searchsorted(cdf, rng.random(self.config.batch_size), side="right"), len(groups) - 1)
        parts, replaced = [], 0
        for i, label in enumerate(labels):
            for _ in range(self.MAX_REPLACEMENTS):
                try:
                    parts.append(gen.sample_batch(1, rng, int(groups[label])))
                    break
                except GenerationError:
                    replaced += 1
            else:
                raise GenerationError(f"batch {index}: crystal {i} (space group {groups[label]}) failed "
                                      f"{self.MAX_REPLACEMENTS} times")
        crystals = CrystalBatch.concatenate(parts)
        if self.config.simulate_on == "device":
            for i in np.flatnonzero(~_has_reflection(crystals.lattices)):  # the device cannot redraw: do it here
                for _ in range(self.MAX_REPLACEMENTS):
                    replaced += 1
                    one = gen.sample_batch(1, rng, int(groups[labels[i]]))
                    if _has_reflection(one.lattices)[0]:
                        parts[i] = one
                        break
            crystals = CrystalBatch.concatenate(parts)
            arrays = {k: getattr(crystals, k) for k in ("lattices", "frac_coords", "numbers", "occupancies", "offsets")}
            arrays["crystallite_size_nm"] = rng.uniform(*simulate.DEFAULT_SIZE_RANGE_NM, size=len(labels))
            return Batch(index, labels.astype(np.int64), crystals=arrays, replaced=replaced,
                         seconds=time.perf_counter() - start)
        patterns = self._patterns(crystals, rng)
        empty = np.flatnonzero(patterns.max(axis=1) <= 0)
        for i in empty:  # no reflection in range: redraw this slot (same space group)
            for _ in range(self.MAX_REPLACEMENTS):
                replaced += 1
                one = gen.sample_batch(1, rng, int(groups[labels[i]]))
                row = self._patterns(one, rng)[0]
                if row.max() > 0:
                    patterns[i] = row
                    break
        return Batch(index, labels.astype(np.int64), inputs=np.sqrt(patterns, dtype=np.float32), replaced=replaced,
                     seconds=time.perf_counter() - start)


def _has_reflection(lattices: np.ndarray, two_theta_max: float = 90.0, wavelength: float = 1.5406) -> np.ndarray:
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


def local_loader(config: StreamConfig, *, workers: int, start: int = 0, rank: int = 0, world_size: int = 1,
                 prefetch: int = 2):
    """A ``torch.utils.data.DataLoader`` over the stream, from global index ``start`` (per rank).

    ``workers=0`` makes batches in the training process. Rank ``r`` of ``R`` sees batch indices
    ``(start + i) R + r`` for i = 0, 1, ...
    """
    import torch
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
        kwargs.update(prefetch_factor=prefetch, persistent_workers=False,
                      worker_init_fn=lambda _: torch.set_num_threads(1))
    return DataLoader(_Stream(), **kwargs)


class RayStream:
    """Batches made by Ray actors, returned in index order through a bounded window.

    ``actors`` actors each hold a :class:`BatchMaker`; at most ``queue_size`` batches are in flight
    (requested, not yet consumed), so a slow trainer applies back-pressure instead of filling memory.
    Works with a local ``ray.init()`` or a cluster (``address="auto"`` or ``"HOST:PORT"``).
    """

    def __init__(self, config: StreamConfig, *, actors: int, start: int = 0, rank: int = 0, world_size: int = 1,
                 queue_size: int | None = None, address: str | None = None, num_cpus_per_actor: float = 1.0):
        import ray

        if not ray.is_initialized():
            ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
        n_actors, cpus = max(1, actors), ray.cluster_resources().get("CPU", 0.0)
        if n_actors * num_cpus_per_actor > cpus:  # the extra actors would never start: wait forever
            raise ConfigError(f"{n_actors} Ray actors need {n_actors * num_cpus_per_actor:g} CPUs, the Ray cluster has "
                              f"{cpus:g}; use at most --workers {int(cpus // num_cpus_per_actor)}")
        remote_maker = ray.remote(num_cpus=num_cpus_per_actor)(BatchMaker)
        self._ray = ray
        self._actors = [remote_maker.remote(config) for _ in range(n_actors)]
        self._queue_size = queue_size or 2 * len(self._actors)
        self._next = start
        self._rank, self._world = rank, world_size
        self._pending: deque = deque()

    def _submit(self) -> None:
        actor = self._actors[self._next % len(self._actors)]
        self._pending.append(actor.make.remote(self._next * self._world + self._rank))
        self._next += 1

    def __iter__(self):
        return self

    def __next__(self) -> Batch:
        while len(self._pending) < self._queue_size:
            self._submit()
        batch = self._ray.get(self._pending.popleft())
        batch.labels = np.require(batch.labels, requirements="W")  # arrays from Ray's object store are read-only
        if batch.inputs is not None:
            batch.inputs = np.require(batch.inputs, requirements="W")
        return batch

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors, self._pending = [], deque()


def make_stream(config: StreamConfig, *, workers: int, start: int = 0, rank: int = 0, world_size: int = 1,
                ray_address: str | None = None):
    """Iterator of :class:`Batch`: Ray actors when ``ray_address`` is given, else local workers."""
    if ray_address:
        return RayStream(config, actors=max(1, workers), start=start, rank=rank, world_size=world_size,
                         address=None if ray_address == "local" else ray_address)
    return iter(local_loader(config, workers=workers, start=start, rank=rank, world_size=world_size))
