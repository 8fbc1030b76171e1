"""The synthetic ``random`` validation set: one definition for the validation cache and the trainer.

``n`` crystals of a :class:`~synthxrd.generate.Generator`, space groups from its prior restricted to
the classes, in chunks of :data:`~synthxrd.validation.request.RANDOM_CHUNK` crystals with one seeded
stream per chunk (``numpy.random.default_rng([seed, 0x7261, chunk])``), so that a chunk does not
depend on which process makes it. Each crystal gets a crystallite size from U(20, 100) nm and its ideal
pattern (:func:`synthxrd.simulate.patterns`, default grid, Cu Ka1); a crystal without a reflection in
range is replaced by a new draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from synthxrd.errors import DataError
from synthxrd.structure import CrystalBatch
from synthxrd.validation.request import RANDOM_CHUNK

if TYPE_CHECKING:
    from synthxrd.generate import Generator

__all__ = ["RandomChunk", "random_chunk", "random_set"]

#: Rounds of redraws for the crystals of a chunk that have no reflection in range.
_MAX_ROUNDS = 20


class RandomChunk(NamedTuple):
    """Chunk ``index`` of a random set."""

    index: int
    batch: CrystalBatch  # with the intended space groups as ``spacegroups``
    patterns: np.ndarray  # (n, 8501) float32
    sizes: np.ndarray  # (n,) crystallite sizes, nm


def random_chunk(generator: Generator, classes: Sequence[int], seed: int, chunk: int, n: int) -> RandomChunk:
    """The ``n`` crystals of chunk ``chunk`` of the random set of ``seed`` (see the module docstring)."""
    from synthxrd import simulate
    from synthxrd.simulate import DEFAULT_SIZE_RANGE_NM

    rng = np.random.default_rng([int(seed), 0x7261, int(chunk)])  # 0x7261: the "random set" stream
    batches, rows, sizes = [], [], []
    have = 0
    for _ in range(_MAX_ROUNDS):
        if have >= n:
            break
        batch = generator.sample_batch(n - have, rng, list(classes))
        size = rng.uniform(*DEFAULT_SIZE_RANGE_NM, size=len(batch))
        pats = simulate.patterns(batch, crystallite_size_nm=size, allow_empty=True)
        good = np.flatnonzero(pats.max(axis=1) > 0)
        if len(good) < len(batch):
            batch = CrystalBatch.concatenate([_take(batch, i) for i in good.tolist()])
        batches.append(batch)
        rows.append(pats[good])
        sizes.append(size[good])
        have += len(good)
    if have < n:
        raise DataError(f"random set: {n - have} synthetic crystals have no reflection in 5-90 deg")
    return RandomChunk(chunk, CrystalBatch.concatenate(batches), np.concatenate(rows), np.concatenate(sizes))


def random_chunks(n: int) -> list[tuple[int, int]]:
    """``(chunk, crystals)`` of a random set of ``n`` crystals."""
    return [(k, min(RANDOM_CHUNK, n - k * RANDOM_CHUNK)) for k in range(math.ceil(n / RANDOM_CHUNK))]


def random_set(generator: Generator, classes: Sequence[int], n: int, seed: int) -> RandomChunk:
    """All ``n`` crystals of the random set of ``seed``, in this process: its chunks concatenated
    (the validation cache builds the same chunks in worker processes)."""
    chunks = [random_chunk(generator, classes, seed, k, m) for k, m in random_chunks(n)]
    if not chunks:
        return RandomChunk(0, CrystalBatch.concatenate([]), np.zeros((0, 0), np.float32), np.zeros(0))
    return RandomChunk(0, CrystalBatch.concatenate([c.batch for c in chunks]),
                       np.concatenate([c.patterns for c in chunks]), np.concatenate([c.sizes for c in chunks]))


def _take(batch: CrystalBatch, i: int) -> CrystalBatch:
    """Crystal ``i`` of a batch as a batch of one (its label kept)."""
    c = batch[i]
    labels = None if batch.spacegroups is None else batch.spacegroups[[i]]
    return CrystalBatch(c.lattice[None], c.frac_coords, c.numbers, c.occupancies,
                        np.array([0, len(c.numbers)], np.int64), spacegroups=labels)
