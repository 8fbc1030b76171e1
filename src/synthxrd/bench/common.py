"""Shared benchmark helpers: single-core pinning, repeated timing, result tables."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

__all__ = ["pin_single_core", "median_ms", "Row", "format_table", "machine_info", "rows_to_dicts"]


def pin_single_core() -> dict:
    """Restrict this process to one CPU and one BLAS/numba/torch thread; returns what was done."""
    done = {}
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        done["cpu"] = cpu
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    done["blas_threads"] = 1
    import numba

    numba.set_num_threads(1)
    done["numba_threads"] = 1
    try:
        import torch  # noqa: PLC0415  (only if installed)

        torch.set_num_threads(1)
        done["torch_threads"] = 1
    except ImportError:
        pass
    return done


def median_ms(fn: Callable[[], object], *, repeats: int = 5, min_time: float = 0.2, max_repeats: int = 200) -> float:
    """Median wall time of ``fn()`` in ms over at least ``repeats`` calls (more while under ``min_time`` s)."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - start < min_time and len(times) < max_repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


@dataclass
class Row:
    """One benchmark case: median ms per method, and the reference's median."""

    case: str
    size: str
    reference_ms: float
    ms: dict[str, float] = field(default_factory=dict)

    def ratios(self) -> dict[str, float]:
        return {k: self.reference_ms / v for k, v in self.ms.items() if v > 0}


def format_table(rows: list[Row], reference: str) -> str:
    """A plain-text table: per case the reference median, then each method's median and ratio."""
    methods = list(dict.fromkeys(m for r in rows for m in r.ms))
    head = f"{'case':<28}{'size':>10}{reference + ' ms':>18}" + "".join(f"{m + ' ms':>16}{'x':>8}" for m in methods)
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = "".join(f"{r.ms[m]:>16.3f}{r.ratios()[m]:>8.1f}" if m in r.ms else f"{'-':>16}{'':>8}" for m in methods)
        lines.append(f"{r.case:<28}{r.size:>10}{r.reference_ms:>18.3f}{cells}")
    return "\n".join(lines)


def machine_info() -> dict:
    return {"python": platform.python_version(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()}


def rows_to_dicts(rows: list[Row]) -> list[dict]:
    return [dict(asdict(r), ratios=r.ratios()) for r in rows]
