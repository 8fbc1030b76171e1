"""Search-match alone and with refinement (synthxrd.match.rerank) on a labelled pattern set.

  OPENBLAS_NUM_THREADS=1 python scripts/measure_refine.py ../shared/data/experimental/rruff_dev/rruff_dev300.npz \
      [--library default|mp|FILE] [--every 1] [--settings '{"n_candidates": 10}'] [--out result.json]

The NPZ holds ``two_theta`` (M,), ``patterns`` (N, M) and ``spacegroup`` (N,). Every ``--every``-th
pattern is searched once in one batch (search alone; its time per pattern is that of a batch) and
once alone with ``refine=RerankSettings(**settings)`` (its time per pattern is search + refinement
on one core when OpenBLAS has one thread). Printed: first-hit space group top-1, top-5 and crystal
system of both, and the times. docs/refine.md has the figures.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def scores(truths, lists) -> str:
    from synthxrd.symmetry import crystal_system_index

    n = len(truths)
    t1 = sum(s[0] == t for t, s in zip(truths, lists) if s) / n
    t5 = sum(t in s[:5] for t, s in zip(truths, lists)) / n
    cs = sum(crystal_system_index(s[0]) == crystal_system_index(t) for t, s in zip(truths, lists) if s) / n
    return f"top-1 {t1:.3f}  top-5 {t5:.3f}  crystal system {cs:.3f}  (n={n})"


def main() -> None:
    from synthxrd.match import ReferenceLibrary
    from synthxrd.match.rerank import RerankSettings

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("patterns", help="NPZ with two_theta, patterns, spacegroup")
    ap.add_argument("--library", default="default")
    ap.add_argument("--every", type=int, default=1, help="use every N-th pattern (default all)")
    ap.add_argument("--settings", default="{}", help="RerankSettings as JSON")
    ap.add_argument("--out", help="write the per-pattern matches as JSON here")
    args = ap.parse_args()
    with np.load(args.patterns, allow_pickle=False) as z:
        tt, y, sg = z["two_theta"].astype(float), z["patterns"].astype(float), z["spacegroup"].astype(int)
    settings = RerankSettings(**json.loads(args.settings))
    library = ReferenceLibrary.load(args.library)
    rows = np.arange(0, len(y), args.every)
    library.search(tt, y[:1], k=1, refine=settings)  # the library on the axis and its structure types, cached
    start = time.perf_counter()
    alone = library.search(tt, y[rows], k=10)
    t_alone = (time.perf_counter() - start) / len(rows)
    refined, times, cpu = [], [], []
    for i in rows:
        start, start_cpu = time.perf_counter(), time.process_time()
        refined.append(library.search(tt, y[i], k=settings.n_candidates + settings.n_isotypes, refine=settings)[0])
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    truths = sg[rows].tolist()
    print(f"{args.patterns}, library {args.library}, settings {settings}")
    print("search alone       ", scores(truths, [[m.spacegroup for m in ms] for ms in alone]))
    print("with refinement    ", scores(truths, [[m.spacegroup for m in ms] for ms in refined]))
    print(f"search alone {1000 * t_alone:.0f} ms per pattern (batch); search + refinement one pattern at a time: "
          f"median {1000 * np.median(times):.0f} ms, mean {1000 * np.mean(times):.0f} ms; CPU time of the process "
          f"(what a shared machine's load does not inflate as much): median {1000 * np.median(cpu):.0f} ms, "
          f"mean {1000 * np.mean(cpu):.0f} ms")
    fits = [m.converged for ms in refined for m in ms if m.rwp is not None]
    print(f"{len(fits)} fits, {np.mean(fits):.2f} converged within the iteration limit")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump([{"row": int(i), "truth": t, "alone": [m.to_dict() for m in a], "refined": [m.to_dict() for m in r]}
                       for i, t, a, r in zip(rows, truths, alone, refined)], fh)


if __name__ == "__main__":
    main()
