"""Validation sets built once and cached: synthetic crystals and real crystals of unseen structure types.

  synthxrd validation build --out DIR --source COLLECTION [--split FILE] [--statistics FILE]
                            [--n-random N] [--seed S] [--sets SET ...] [--rebuild]
  synthxrd validation info DIR

Sets (each DIR/<set>.h5, an HDF5 dataset with crystals, space-group labels, patterns and ids):
  random      N crystals of the generator (the training distribution), fixed seed
  calibration calibration-part crystals of the split with the filters of match: what the trainer
              selects its best checkpoint and fits its temperature on, and export --calibrate's default
  match       test-part crystals of the split (reported only) with <= 100 asymmetric-unit sites,
              V <= 7000 A^3 and a label among the classes (space groups with >= 50 structures in the
              statistics)
  all         every test-part crystal whose label is a class
  match_pure  match without partially occupied sites
  match_random_coords   (on request) match with the free Wyckoff coordinates redrawn uniformly, as the
              generator places atoms (lattice, space group, Wyckoff occupation kept)
  match_random_lattice  (on request) match with the lattice redrawn by the generator for its space group
              (volume model and lattice KDE; fractional coordinates kept)

The default --sets are random, calibration, match, all and match_pure; the two gap sets (Schopmans
et al. 2023: why is synthetic accuracy higher than real?) are labelled with the original space group,
and the manifest records how often spglib finds another one and why randomizations failed.

Labels of real crystals are recomputed with spglib (symprec 0.1, as the statistics); DIR/manifest.json
records sources, hashes, seed, versions, counts and how often the label differs from a strict
tolerance (1e-3), from the collection's index.csv and from the split's prototype. `build` reuses DIR
when its manifest matches the request (--rebuild forces a new build).

COLLECTION is the folder or tar archive of CIFs the split was made from; for the project's default
split that is ../shared/data/mp_experimental/structures.tar.xz (from the repository root).

Examples:
  synthxrd validation build --out validation --source ../shared/data/mp_experimental/structures.tar.xz
  synthxrd validation build --out validation --source ../shared/data/mp_experimental/structures.tar.xz \\
      --sets match match_random_coords match_random_lattice
"""

from __future__ import annotations

import argparse
from pathlib import Path

from synthxrd.cli import options

HELP = "validation sets (synthetic + unseen-prototype real crystals with patterns), built once and cached"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from synthxrd.stats.statistics import REPRESENTED_MIN_COUNT
    from synthxrd.validation import DEFAULT_N_RANDOM, DEFAULT_SETS, SET_NAMES

    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    build = sub.add_parser("build", help="build (or reuse) the validation sets in a folder",
                           description="Build the validation sets into --out, or reuse them when the folder's "
                                       "manifest matches the request.")
    build.add_argument("--out", "-o", type=Path, required=True, metavar="DIR", help="cache folder (created)")
    build.add_argument("--source", type=Path, required=True, metavar="PATH",
                       help="folder or tar archive of the collection's CIFs (the one the split was made from); "
                            "for the shipped split: ../shared/data/mp_experimental/structures.tar.xz")
    build.add_argument("--split", type=Path, metavar="FILE", help="split CSV (default: the shipped split)")
    build.add_argument("--statistics", type=Path, metavar="FILE",
                       help="statistics .npz of the split's statistics part (default: the shipped statistics)")
    build.add_argument("--classes", type=int, nargs="+", metavar="SG",
                       help="space groups to keep (default: those with >= --min-count structures in the statistics)")
    build.add_argument("--min-count", type=int, default=REPRESENTED_MIN_COUNT,
                       help=f"default classes: groups with >= this many structures (default {REPRESENTED_MIN_COUNT})")
    build.add_argument("--n-random", type=int, default=DEFAULT_N_RANDOM,
                       help=f"synthetic crystals of the random set (default {DEFAULT_N_RANDOM})")
    build.add_argument("--seed", type=options.seed, default=0, help="seed of the random set and crystallite sizes (default 0)")
    build.add_argument("--sets", nargs="+", choices=SET_NAMES, default=list(DEFAULT_SETS), metavar="SET",
                       help=f"sets to build, of: {' '.join(SET_NAMES)} (default: {' '.join(DEFAULT_SETS)})")
    build.add_argument("--workers", "-j", type=int, default=None,
                       help="worker processes (default: all available cores; 1 = no subprocesses)")
    build.add_argument("--rebuild", action="store_true", help="build even if the cache matches")
    build.add_argument("--no-progress", action="store_true", help="no progress bars")
    info = sub.add_parser("info", help="print the manifest summary of a cache folder")
    info.add_argument("dir", type=Path, metavar="DIR")


def run(args: argparse.Namespace) -> int:
    from synthxrd.errors import ConfigError
    from synthxrd.validation import (
        MANIFEST,
        Manifest,
        ValidationRequest,
        build_validation_sets,
        ensure_validation_sets,
    )

    if args.action is None:
        args._parser.print_help()
        return 2
    if args.action == "info":
        _print_summary(Manifest.load(args.dir))
        return 0
    if args.n_random < 0:
        raise ConfigError(f"--n-random must be >= 0, got {args.n_random}")
    request = ValidationRequest(source=args.source, split=args.split, statistics=args.statistics,
                                classes=args.classes, n_random=args.n_random, seed=args.seed, sets=tuple(args.sets),
                                min_count=args.min_count)
    had_cache = (args.out / MANIFEST).is_file()
    build = build_validation_sets if args.rebuild else ensure_validation_sets
    manifest = build(args.out, request, workers=args.workers, progress=not args.no_progress)
    if manifest.reused:
        print(f"{args.out}: validation sets up to date (manifest matches), nothing rebuilt")
    elif had_cache:
        print(f"{args.out}: rebuilt ({manifest.data.get('rebuild_reason', '--rebuild')})")
    _print_summary(manifest)
    return 0


def _rate(entry: dict | None) -> str:
    if not entry or not entry.get("n"):
        return "n/a"
    return f"{100 * entry['rate']:.2f} % ({entry['n_mismatch']}/{entry['n']})"


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _print_summary(manifest) -> None:
    data = manifest.data
    tp = data.get("test_part", {})
    cp = data.get("calibration_part") or {}
    print(f"{len(data['classes'])} classes; seed {data['seed']}; split {data['split']['path']} "
          f"(sha256 {data['split']['sha256'][:12]}); statistics {data['statistics']['path']} "
          f"(sha256 {data['statistics']['sha256'][:12]})")
    if tp.get("n_in_split") is not None:
        print(f"test part: {tp['n_in_split']} ids in the split, {tp['n_found']} found in {data['source']['path']}, "
              f"{tp['n_analysed']} analysed, {tp['n_failed']} failed, {tp['n_label_in_classes']} with a class label")
    if cp.get("n_in_split") is not None:
        print(f"calibration part: {cp['n_in_split']} ids in the split, {cp['n_found']} found, "
              f"{cp['n_analysed']} analysed, {cp['n_failed']} failed, "
              f"{cp['n_label_in_classes']} with a class label")
    for name, info in data["sets"].items():
        mism = info.get("mismatch", {})
        if "intended_vs_spglib" in mism:  # random and gap sets
            rates = f"spglib(symprec {data['filters']['symprec']}) != intended: {_rate(mism.get('intended_vs_spglib'))}"
            failures = info.get("failures")
            if failures and failures.get("n"):
                reasons = ", ".join(f"{k} {v}" for k, v in failures["by_reason"].items())
                rates += f"; {failures['n']}/{failures['n_match']} match crystals failed ({reasons})"
        else:
            rates = f"label != strict (symprec {data['filters']['strict_symprec']:g}): {_rate(mism.get('strict'))}"
            if "index" in mism:
                rates += f"; != index.csv: {_rate(mism['index'])}"
        print(f"  {name:<20} {info['count']:>6} crystals, {info['n_classes_present']:>3} classes, "
              f"{_size(info['bytes']):>10}  {info['file']}  [{rates}]")
    overall = data.get("mismatch") or {}
    if overall:
        line = f"labels of all analysed test-part crystals: != strict {_rate(overall.get('strict'))}"
        if "index" in overall:
            line += f", != index.csv {_rate(overall['index'])}"
        line += f", != split prototype {_rate(overall.get('split_prototype'))}"
        print(line)
    bt = data.get("build_time_s", {})
    print(f"built {data['created']} in {bt.get('total')} s with {data['workers']} worker(s); "
          f"manifest {manifest.path}")
