"""``synthxrd bench generate``: pyxtal ``random_crystal`` against ``Generator.sample`` and
``Generator.sample_batch`` for the same space groups and compositions, on one core, plus the
end-to-end throughput generate -> batched simulate -> pattern.

The workload: ``n`` crystals drawn by synthxrd from the shipped statistics (fixed seed); pyxtal is
asked for the same space group and the same number of atoms of each element in the conventional
cell (``pyxtal().from_random(3, sg, species, numIons)``). pyxtal checks interatomic distances and
synthxrd deliberately does not (docs/architecture.md), so this compares the two tools at their intended use.
"""

from __future__ import annotations

import signal
import time
import warnings

import numpy as np

from synthxrd.bench.common import machine_info, pin_single_core

__all__ = ["run_benchmark", "summary_lines"]


def _stats_ms(times_s: list[float]) -> dict[str, float]:
    t = 1e3 * np.asarray(times_s)
    return {"median_ms": float(np.median(t)), "p99_ms": float(np.percentile(t, 99)), "n": int(len(t))}


class _Timeout(Exception):
    pass


def _raise_timeout(signum, frame):
    raise _Timeout


def _pyxtal_once(sg: int, numbers: np.ndarray, seed: int, limit_s: float) -> tuple[float, str]:
    """Seconds for one pyxtal random crystal with this composition, and "ok", "failed" or "timeout".

    A crystal still unplaced after ``limit_s`` seconds (SIGALRM) counts as a timeout with time
    ``limit_s``: a lower bound, so pyxtal's median and p99 are if anything underestimated.
    """
    from pymatgen.core import Element
    from pyxtal import pyxtal

    z, counts = np.unique(numbers, return_counts=True)
    species = [Element.from_Z(int(v)).symbol for v in z]
    crystal = pyxtal()
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    t0 = time.perf_counter()
    try:
        crystal.from_random(3, int(sg), species, [int(c) for c in counts], random_state=seed)
        status = "ok" if crystal.valid else "failed"
    except _Timeout:
        status = "timeout"
    except Exception:  # pyxtal raises several exception types for compositions it cannot place
        status = "failed"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return min(time.perf_counter() - t0, limit_s), status


def run_benchmark(*, n: int = 300, seed: int = 0, n_end_to_end: int = 2000, statistics=None,
                  pyxtal_limit_s: float = 5.0, progress: bool = True) -> dict:
    """Time pyxtal and synthxrd on the same groups/compositions; return the results."""
    from tqdm import tqdm

    from synthxrd import simulate
    from synthxrd.generate import Generator

    pinning = pin_single_core()
    warnings.filterwarnings("ignore")
    gen = Generator(statistics)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    workload = gen.sample_batch(n, rng)  # also builds the per-group tables (setup, reported apart)
    setup_s = time.perf_counter() - t0
    labels = workload.spacegroups

    batch_times, sample_times, pyxtal_times, pyxtal_status = [], [], [], []
    rng = np.random.default_rng(seed + 1)
    for i in tqdm(range(len(labels)), desc="pyxtal vs synthxrd", disable=not progress):
        sg = int(labels[i])
        t = time.perf_counter()
        gen.sample_batch(1, rng, sg)
        batch_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        gen.sample(sg, rng=rng)
        sample_times.append(time.perf_counter() - t)
        seconds, status = _pyxtal_once(sg, workload[i].numbers, seed + i, pyxtal_limit_s)
        pyxtal_times.append(seconds)
        pyxtal_status.append(status)

    t = time.perf_counter()
    big = gen.sample_batch(n_end_to_end, rng)
    t_gen = time.perf_counter() - t
    t = time.perf_counter()
    simulate.patterns(big, rng=rng)
    t_sim = time.perf_counter() - t
    res = {
        "benchmark": "generate",
        "seed": seed,
        "pinning": pinning,
        "machine": machine_info(),
        "statistics": {"version": gen.statistics.version, "n_structures": gen.statistics.n_structures},
        "setup_s": setup_s,
        "n_crystals": len(labels),
        "atoms_median": float(np.median(np.diff(workload.offsets))),
        "pyxtal": _stats_ms(pyxtal_times) | {"failures": pyxtal_status.count("failed"),
                                             "timeouts": pyxtal_status.count("timeout"), "limit_s": pyxtal_limit_s},
        "sample": _stats_ms(sample_times),
        "sample_batch": _stats_ms(batch_times),
        "end_to_end": {
            "n": n_end_to_end,
            "generate_ms_per_crystal": 1e3 * t_gen / n_end_to_end,
            "simulate_ms_per_pattern": 1e3 * t_sim / n_end_to_end,
            "patterns_per_s_per_core": n_end_to_end / (t_gen + t_sim),
        },
    }
    res["ratios"] = {k: res["pyxtal"]["median_ms"] / res[k]["median_ms"] for k in ("sample", "sample_batch")}
    return res


def summary_lines(r: dict) -> list[str]:
    """Human-readable lines for the CLI."""
    head = f"{'method':<26}{'median ms':>12}{'p99 ms':>12}{'x pyxtal':>10}"
    lines = [f"{r['n_crystals']} crystals (median {r['atoms_median']:.0f} atoms), same groups and compositions, one core",
             head, "-" * len(head)]
    lines.append(f"{'pyxtal random_crystal':<26}{r['pyxtal']['median_ms']:>12.3f}{r['pyxtal']['p99_ms']:>12.3f}"
                 f"{1.0:>10.1f}   ({r['pyxtal']['failures']} failed, {r['pyxtal']['timeouts']} stopped at "
                 f"{r['pyxtal']['limit_s']:.0f} s)")
    for key, name in (("sample", "Generator.sample"), ("sample_batch", "Generator.sample_batch")):
        lines.append(f"{name:<26}{r[key]['median_ms']:>12.3f}{r[key]['p99_ms']:>12.3f}{r['ratios'][key]:>10.1f}")
    e = r["end_to_end"]
    lines += ["", f"end to end (generate -> batched simulate, {e['n']} crystals): "
              f"{e['generate_ms_per_crystal']:.3f} ms + {e['simulate_ms_per_pattern']:.3f} ms per pattern = "
              f"{e['patterns_per_s_per_core']:.0f} patterns/s on one core",
              f"one-off setup (tables of the drawn groups): {r['setup_s']:.2f} s; pinned: {r['pinning']}"]
    return lines
