"""Synthetic patterns as :mod:`synthxrd.augment` renders them, each on the scan it was simulated on."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from synthxrd.errors import ConfigError, DataError
from synthxrd.realism.measurement import PatternStats, covered_slice, measure
from synthxrd.simulate.common import Grid

__all__ = ["SyntheticPatterns", "render_synthetic", "synthetic_patterns", "scan_view", "measure_synthetic"]

@dataclass(frozen=True)
class SyntheticPatterns:
    """Synthetic patterns on the model grid and the scan each was simulated on.

    Attributes
    ----------
    patterns : (N, grid.n) float32, as :func:`synthxrd.augment.augmented_patterns` returns them
        (a row of a crystal without reflection on the grid is all 0; :func:`synthetic_patterns`
        never returns one).
    scan_start, scan_step : (N,) float64 degrees, the simulated scan (grid start and step without
        augmentation).
    grid : the model grid.
    replaced : crystals drawn again (generation failed, or no reflection on the grid).
    """

    patterns: np.ndarray
    scan_start: np.ndarray
    scan_step: np.ndarray
    grid: Grid
    replaced: int = 0


def render_synthetic(crystals, config, rng: np.random.Generator, *, grid: Grid = Grid()) -> SyntheticPatterns:
    """Patterns of a :class:`~synthxrd.structure.CrystalBatch` with the scan of each.

    With an :class:`~synthxrd.augment.AugmentConfig` they are exactly those of
    :func:`synthxrd.augment.augmented_patterns` for the same ``rng`` (its two steps,
    :func:`~synthxrd.augment.draw_parameters` then :func:`~synthxrd.augment.render_with` over
    :func:`~synthxrd.augment.reflection_window`, are called here so that the scan of each pattern
    is known); with ``config=None`` the ideal Gaussian-Scherrer patterns of
    :func:`synthxrd.simulate.patterns` on the grid. Rows of crystals without a reflection on the
    grid are all 0 (see :attr:`SyntheticPatterns.patterns`).
    """
    from synthxrd import augment, simulate

    if config is not None and not isinstance(config, augment.AugmentConfig):
        raise ConfigError(f"realism: expected an AugmentConfig or None, got {type(config).__name__}")
    if config is None:
        out = simulate.patterns(crystals, rng=rng, grid=grid, allow_empty=True)
        return SyntheticPatterns(out, np.full(len(out), grid.start), np.full(len(out), grid.step), grid)
    refl = simulate.reflections(crystals, two_theta_range=augment.reflection_window(config, grid))
    params = augment.draw_parameters(config, len(crystals), rng, grid=grid)
    out = augment.render_with(crystals, refl, params, rng, grid=grid)
    return SyntheticPatterns(out, np.asarray(params.measured_start, np.float64),
                             np.asarray(params.measured_step, np.float64), grid)


def synthetic_patterns(n: int, config, rng: np.random.Generator, *, statistics: str | Path | None = None,
                       grid: Grid = Grid(), max_rounds: int = 100) -> SyntheticPatterns:
    """``n`` non-empty patterns of generated crystals, as the training stream makes them.

    Crystals come from :class:`synthxrd.generate.Generator` (``statistics``, None: the shipped
    ones; default :class:`~synthxrd.generate.GeneratorConfig`), one at a time, a failed draw
    redrawn (as :class:`synthxrd.data.BatchMaker`), and are rendered by :func:`render_synthetic`;
    patterns of crystals without a reflection on the grid are replaced by new crystals (counted in
    ``replaced``).
    """
    from synthxrd.generate import GenerationError, Generator, GeneratorConfig
    from synthxrd.stats import Statistics
    from synthxrd.structure import CrystalBatch

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"realism: number of synthetic patterns must be an integer >= 1, got {n!r}")
    generator = Generator(Statistics.load(statistics), GeneratorConfig())
    parts: list[SyntheticPatterns] = []
    have = replaced = 0
    for _ in range(max_rounds):
        crystals = []
        while len(crystals) < n - have:
            try:
                crystals.append(generator.sample_batch(1, rng))
            except GenerationError:
                replaced += 1
        batch = render_synthetic(CrystalBatch.concatenate(crystals), config, rng, grid=grid)
        ok = batch.patterns.max(axis=1) > 0
        replaced += int((~ok).sum())
        parts.append(SyntheticPatterns(batch.patterns[ok], batch.scan_start[ok], batch.scan_step[ok], grid))
        have += int(ok.sum())
        if have >= n:
            break
    else:
        raise DataError(f"realism: fewer than {n} non-empty synthetic patterns after {max_rounds} rounds")
    return SyntheticPatterns(np.concatenate([p.patterns for p in parts])[:n],
                             np.concatenate([p.scan_start for p in parts])[:n],
                             np.concatenate([p.scan_step for p in parts])[:n], grid, replaced)


def scan_view(row, grid: Grid, start: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic pattern on its own scan points: the model-grid value nearest to each scan point
    ``start + k step`` inside the covered range (see :mod:`synthxrd.realism` for the small bias);
    scans as fine as the grid or finer are returned on the grid (covered range only)."""
    y = np.asarray(row, np.float64)
    g = grid.values()
    covered = covered_slice(y)
    lo, hi = g[covered.start], g[covered.stop - 1]
    if step <= grid.step * (1.0 + 1e-9):
        return g[covered], y[covered]
    k0 = math.ceil((lo - start) / step - 1e-9)
    nodes = start + step * np.arange(k0, math.floor((hi - start) / step + 1e-9) + 1)
    index = np.clip(np.rint((nodes - grid.start) / grid.step).astype(np.int64), covered.start, covered.stop - 1)
    return nodes, y[index]


def measure_synthetic(synthetic: SyntheticPatterns) -> list[PatternStats]:
    """:func:`measure` of every synthetic pattern on its scan (:func:`scan_view`), step = scan step.
    The covered range reported is that of the model grid (the scan window clipped to the grid).
    All-zero rows (crystals without reflection on the grid) are skipped."""
    out = []
    for i, row in enumerate(synthetic.patterns):
        if not np.any(row):
            continue
        x, y = scan_view(row, synthetic.grid, float(synthetic.scan_start[i]), float(synthetic.scan_step[i]))
        stats = measure(x, y, step=float(synthetic.scan_step[i]), where=f"synthetic pattern {i}")
        covered = covered_slice(row)
        g = synthetic.grid.values()
        out.append(replace(stats, start=float(g[covered.start]), stop=float(g[covered.stop - 1])))
    return out

