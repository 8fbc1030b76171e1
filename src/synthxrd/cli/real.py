"""Real crystals of the statistics part of a split, for training on real and synthetic crystals together.

  synthxrd real build SOURCE --out FILE [--split CSV] [--statistics NPZ] [--classes SG ...]
                      [--min-count 50] [--max-sites 100] [--max-volume 7000] [-j N] [--overwrite]
  synthxrd real info FILE

SOURCE is the folder or tar archive of CIFs the split was made from (for the shipped split:
../shared/data/mp_experimental/structures.tar.xz). Only structures of the split's statistics part are
read, never one of its test part. Each CIF is analysed as `synthxrd validation` analyses the test part
(label: spglib at the statistics' symprec, 0.1; crystal as read); kept are crystals whose label is a
class (space groups with >= --min-count structures in the statistics), with <= --max-sites
asymmetric-unit sites and a conventional cell of <= --max-volume Å^3. FILE is one HDF5 file (crystals,
labels, ids, metadata); the training stream (synthxrd.data: the real set and the share of real
crystals per batch) mixes them, perturbed (strain, jitter, substitution; the space group is kept), into
the batches.

A set is shipped in the package (MP statistics part and AMCSD minerals of no held-out prototype,
compact NPZ, synthxrd.real.compact) and `synthxrd train` mixes it in by default; `synthxrd real info
shipped` describes it, `python scripts/build_real_set.py MP_TAR AMCSD_DB` rebuilds it.

Exit status: 0 all analysed, 1 some CIFs failed (listed, and kept in FILE), 2 usage error or nothing
analysed or kept (nothing written). An existing FILE is replaced only with --overwrite.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from synthxrd.cli.options import print_failures

HELP = "real crystals of the statistics part (training data mixed with synthetic crystals)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from synthxrd.real import MAX_SITES, MAX_VOLUME
    from synthxrd.stats import REPRESENTED_MIN_COUNT

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="build a real crystal set from a folder or tar archive of CIFs",
                       description="Build a real crystal set (see `synthxrd real --help`).")
    b.add_argument("source", metavar="SOURCE", help="folder or tar archive of the collection's CIFs")
    b.add_argument("--out", "-o", required=True, type=Path, metavar="FILE", help="output file (.h5)")
    b.add_argument("--split", type=Path, metavar="CSV", help="split CSV (default: the shipped split)")
    b.add_argument("--statistics", type=Path, metavar="NPZ",
                   help="statistics of the split's statistics part (default: the shipped statistics)")
    b.add_argument("--classes", type=int, nargs="+", metavar="SG",
                   help="space groups to keep (default: those with >= --min-count structures in the statistics)")
    b.add_argument("--min-count", type=int, default=REPRESENTED_MIN_COUNT,
                   help=f"default classes: groups with >= this many structures (default {REPRESENTED_MIN_COUNT})")
    b.add_argument("--max-sites", type=int, default=MAX_SITES,
                   help=f"most asymmetric-unit sites (default {MAX_SITES})")
    b.add_argument("--max-volume", type=float, default=MAX_VOLUME,
                   help=f"largest conventional-cell volume in Å^3 (default {MAX_VOLUME:g})")
    b.add_argument("--workers", "-j", type=int, default=None,
                   help="worker processes (default: available cores; 1 = no subprocesses)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.add_argument("--show-failures", type=int, default=10, metavar="N", help="print the first N failures (default 10)")

    i = sub.add_parser("info", help="summary of a real crystal set", description="Summary of a real crystal set.")
    i.add_argument("file", metavar="FILE", help="a real crystal set, or 'shipped' (the set in the package)")


def run(args: argparse.Namespace) -> int:
    return {"build": _build, "info": _info}[args.action](args)


def _build(args: argparse.Namespace) -> int:
    from synthxrd.files import check_outputs
    from synthxrd.real import build_real_set
    from synthxrd.stats import default_workers

    check_outputs([args.out], inputs=[args.source, args.split, args.statistics], overwrite=args.overwrite)
    workers = default_workers() if args.workers is None else args.workers
    print(f"building a real crystal set from the statistics part of {args.source} with {workers} worker(s)")
    start = time.perf_counter()
    info = build_real_set(args.source, args.out, split=args.split, statistics=args.statistics, classes=args.classes,
                          min_count=args.min_count, max_sites=args.max_sites, max_volume=args.max_volume,
                          workers=workers, progress=not args.no_progress, overwrite=args.overwrite)
    c = info["counts"]
    failures = info["failures"]
    print(f"{c['n_kept']} crystals in {c['n_classes_present']} space groups kept of {c['n_analysed']} analysed "
          f"({c['n_label_not_a_class']} not a class, {c['n_too_many_sites']} > {args.max_sites} sites, "
          f"{c['n_volume_too_large']} > {args.max_volume:g} Å^3); {len(failures)} failures, "
          f"{c['n_not_found']} ids of the statistics part not found; {time.perf_counter() - start:.1f} s")
    print_failures(failures, args.show_failures, f"{args.out} (/real/failure_ids, failure_reasons)")
    print(f"wrote {args.out} ({info['bytes'] / 2**20:.1f} MiB)")
    return 1 if failures else 0


def _info(args: argparse.Namespace) -> int:
    from synthxrd.real import RealCrystals

    real = RealCrystals.load(args.file)
    m = real.metadata
    c = m.get("counts", {})
    counts = sorted(((int(k), v) for k, v in m.get("class_counts", {}).items()), key=lambda kv: (-kv[1], kv[0]))
    print(f"{args.file}: {len(real)} real crystals ({len(real.crystals.numbers)} atoms) in {len(real.classes)} "
          f"space groups; {len(m.get('classes', []))} classes requested")
    if "sources" in m:  # a compact set (the shipped one): several sources
        per = c.get("per_source", {})
        print("sources: " + "; ".join(f"{s['name']} {s['file']} (sha256 {str(s.get('sha256'))[:12]}): "
                                        f"{per.get(s['name'], {}).get('n_kept')} kept" for s in m["sources"]))
        print(f"split {m['split']['path']} (sha256 {m['split']['sha256'][:12]}); statistics {m['statistics']['path']} "
              f"(sha256 {m['statistics']['sha256'][:12]}, symprec {m['statistics']['symprec']})")
        v = m.get("verification") or {}
        if v:
            print(f"checked: spglib label of the rebuilt crystal differs from the crystal as read for "
                  f"{v.get('n_rebuilt_differs_from_as_read')} of {v.get('n_crystals')}; pattern correlation with the "
                  f"crystals as read >= {v.get('pattern_correlation_min')} ({v.get('n_pattern_pairs')} crystals)")
        print("most frequent space groups: " + ", ".join(f"{g} ({n})" for g, n in counts[:10]))
        print(f"built {m.get('created')} with synthxrd {m.get('synthxrd_version')} in "
              f"{(m.get('build_time_s') or {}).get('total')} s with {m.get('workers')} worker(s)")
        return 0
    print(f"source {m['source']['path']}; split {m['split']['path']} (sha256 {m['split']['sha256'][:12]}, "
          f"statistics part); statistics {m['statistics']['path']} (sha256 {m['statistics']['sha256'][:12]}, "
          f"symprec {m['statistics']['symprec']})")
    print(f"statistics part: {c.get('n_in_split_part')} ids, {c.get('n_found')} found, {c.get('n_analysed')} analysed, "
          f"{c.get('n_failed')} failed; not kept: {c.get('n_label_not_a_class')} not a class, "
          f"{c.get('n_too_many_sites')} > {m['filters']['max_sites']} sites, {c.get('n_volume_too_large')} > "
          f"{m['filters']['max_volume']:g} Å^3; {c.get('n_kept_partially_occupied')} kept with partial occupancies")
    print("most frequent space groups: " + ", ".join(f"{g} ({n})" for g, n in counts[:10]))
    for reason, n in list(m.get("failure_reasons", {}).items())[:5]:
        print(f"  failures: {n} x {reason}")
    print(f"built {m.get('created')} with synthxrd {m.get('synthxrd_version')} in "
          f"{(m.get('build_time_s') or {}).get('total')} s with {m.get('workers')} worker(s)")
    return 0
