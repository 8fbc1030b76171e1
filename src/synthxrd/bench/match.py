"""``synthxrd bench match``: search-match speed and accuracy against the naive baseline, same run.

The **naive baseline** (issue "Identify measured patterns against known structures"): every library
structure simulated on a 0.05 degree grid as Gaussian peaks of sigma 0.1 degrees with square-root
peak intensities, cosine similarity with the measured pattern (resampled onto that grid, square
root) maximised over 17 isotropic d-spacing scales 0.96-1.04; the space group of the best hit. Its
17 simulations of the whole library are counted in its time, as the baseline has no index. (Taking
the square root of the broadened profile instead of the peak heights gives 27 % instead of 51 %
top-1 on rruff_dev: the noise floor of the measured pattern then dominates.)
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from synthxrd.simulate.common import DEFAULT_WAVELENGTH

__all__ = ["naive_search", "run_bench", "spacegroup_ranking", "ranking_metrics", "summary_lines", "default_patterns",
           "labelled_patterns"]


def default_patterns():
    """rruff_dev of the shared data (``$SYNTHXRD_SHARED_DATA`` or ``../shared/data`` from here)."""
    from synthxrd.errors import ConfigError
    from synthxrd.files import shared_data_dir

    path = shared_data_dir() / "experimental" / "rruff_dev" / "rruff_dev300.npz"
    if not path.is_file():
        raise ConfigError(f"{path}: no such file; give --patterns NPZ (two_theta, patterns, spacegroup)")
    return path


def labelled_patterns(path, max_patterns: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(two_theta (M,), patterns (N, M), spacegroup (N,)) of an .npz of labelled patterns (the layout
    of rruff_dev), the first ``max_patterns`` of them (0: all); :class:`DataError` naming the file."""
    from synthxrd.errors import DataError

    try:
        with np.load(path, allow_pickle=False) as data:
            tt, x, labels = (data["two_theta"].astype(np.float64), data["patterns"].astype(np.float64),
                             data["spacegroup"])
    except (KeyError, OSError, ValueError) as exc:
        raise DataError(f"{path}: needs arrays two_theta, patterns, spacegroup ({exc})") from None
    if max_patterns:
        x, labels = x[:max_patterns], labels[:max_patterns]
    return tt, x, labels


def naive_search(library, two_theta, intensities, *, wavelength: float = DEFAULT_WAVELENGTH, k: int = 10,
                 step: float = 0.05, sigma: float = 0.1, scales=np.linspace(0.96, 1.04, 17)) -> list[list[int]]:
    """Rows of the ``k`` best library entries per pattern (naive baseline, see module docstring)."""
    from synthxrd.io import resample
    from synthxrd.match._kernels import render_rows
    from synthxrd.simulate.common import Grid
    from synthxrd.simulate.physics import lorentz_polarization

    lo, hi = float(two_theta[0]), float(two_theta[-1])
    grid = Grid.from_step(lo, hi, step)
    y = np.atleast_2d(np.asarray(intensities, np.float64))
    q = np.stack([resample(np.asarray(two_theta, np.float64), row, grid)[0] for row in y])
    q = np.sqrt(np.clip(q, 0, None) / np.maximum(q.max(axis=1, keepdims=True), 1e-300))
    q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    best = np.full((len(q), len(library)), -1.0, np.float32)
    d = library.d.astype(np.float64)
    for s in scales:
        sin = wavelength / (2 * s * d)
        ok = sin < 1
        tt = np.where(ok, np.degrees(2 * np.arcsin(np.minimum(sin, 1))), -1e3)
        height = np.where(ok, library.f2 * lorentz_polarization(np.radians(np.where(ok, tt, 90)) / 2), 0)
        rows = render_rows(library.offsets, tt, np.sqrt(height), np.full(len(tt), sigma), grid.start, grid.step,
                           grid.n)
        rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        np.maximum(best, (rows @ q.T.astype(np.float32)).T, out=best)
    return [list(np.argsort(-b, kind="stable")[:k]) for b in best]


def spacegroup_ranking(spacegroups) -> list[int]:
    """Distinct space groups in order of first appearance (the ranking a hit list implies)."""
    return list(dict.fromkeys(int(s) for s in spacegroups))


def ranking_metrics(rankings: list[list[int]], labels) -> dict[str, float]:
    """top-1, top-5 and crystal-system accuracy of space-group rankings."""
    from synthxrd.symmetry import crystal_system_index

    labels = [int(x) for x in labels]
    n = max(1, len(labels))
    return {
        "top1": sum(bool(r) and r[0] == s for r, s in zip(rankings, labels)) / n,
        "top5": sum(s in r[:5] for r, s in zip(rankings, labels)) / n,
        "crystal_system": sum(bool(r) and crystal_system_index(r[0]) == crystal_system_index(s)
                              for r, s in zip(rankings, labels)) / n,
    }


def run_bench(*, library_path=None, patterns_path=None, max_patterns: int = 0, naive: bool = True,
              progress: bool = True) -> dict[str, Any]:
    """Time and score search-match and the naive baseline on labelled patterns, one pinned core.

    ``patterns_path``: an ``.npz`` with ``two_theta`` (M,), ``patterns`` (N, M) and ``spacegroup``
    (N,) at Cu K-alpha (the layout of rruff_dev); default: rruff_dev in the shared data.
    """
    from synthxrd.bench.common import machine_info, pin_single_core
    from synthxrd.match import ReferenceLibrary

    pinned = pin_single_core()
    tt, x, labels = labelled_patterns(patterns_path, max_patterns)
    t0 = time.perf_counter()
    library = ReferenceLibrary.load(library_path)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    library.search(tt, x[:1], k=1)  # first call renders the library at this wavelength (cached)
    prepare_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    matches = library.search(tt, x, k=50)  # patterns are searched in batches, as a user would
    search_s = time.perf_counter() - t0
    result: dict[str, Any] = {
        "machine": machine_info(), "pinned": pinned, "patterns": str(patterns_path), "n_patterns": len(x),
        "n_structures": len(library),
        "library": library.label, "load_s": load_s, "render_s": prepare_s,
        "search_ms_per_pattern": 1e3 * search_s / len(x),
        "search": ranking_metrics([spacegroup_ranking(m.spacegroup for m in ms) for ms in matches], labels),
    }
    if naive:
        t0 = time.perf_counter()
        rows = naive_search(library, tt, x, k=50)
        naive_s = time.perf_counter() - t0
        result["naive_ms_per_pattern"] = 1e3 * naive_s / len(x)
        result["naive"] = ranking_metrics([spacegroup_ranking(library.spacegroups[r]) for r in rows], labels)
    return result


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The benchmark as a short table."""
    lines = [f"search-match on {result['n_patterns']} labelled patterns ({result['patterns']}) against "
             f"{result['n_structures']} structures ({result['library']}), one pinned core",
             f"library load {result['load_s']:.1f} s, rendering at this wavelength {result['render_s']:.1f} s (once)",
             f"{'method':<14}{'ms/pattern':>12}{'top-1':>8}{'top-5':>8}{'crystal system':>16}"]
    rows = [("synthxrd", result["search_ms_per_pattern"], result["search"])]
    if "naive" in result:
        rows.append(("naive", result["naive_ms_per_pattern"], result["naive"]))
    for name, ms, m in rows:
        lines.append(f"{name:<14}{ms:>12.1f}{m['top1']:>8.3f}{m['top5']:>8.3f}{m['crystal_system']:>16.3f}")
    if "naive" in result:
        lines.append(f"speed-up {result['naive_ms_per_pattern'] / result['search_ms_per_pattern']:.1f}x; "
                     f"top-1 {result['search']['top1'] - result['naive']['top1']:+.3f}")
    return lines
