"""Per-space-group statistics of a CIF collection, stored as raw per-structure records (.npz).

  synthxrd stats FOLDER_OR_TAR --out stats.npz [--symprec 0.1] [--workers N]
  synthxrd stats FOLDER_OR_TAR --out stats.npz --split split.csv --part statistics
  synthxrd stats all.npz --out stats.npz --split split.csv --part statistics   (no re-analysis)

SOURCE is a folder of CIFs (searched recursively), a tar archive of CIFs (.tar, .tar.gz, .tar.xz, ...),
a single CIF, or a statistics file written by this command: then its records are re-used and only
restricted to the split part. CIFs that cannot be read or analysed are listed in the output's
metadata ("failures") and counted; they never stop the run. An existing output is replaced only with
--overwrite, and never when it is one of the inputs. Exit status: 0 all analysed, 1 some CIFs failed
(listed), 2 usage error or nothing analysed (nothing written).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from synthxrd.cli.options import print_failures

HELP = "per-space-group statistics of a CIF collection (folder or tar) for the generator"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="folder of CIFs, tar archive of CIFs, a CIF, or a stats .npz")
    parser.add_argument("--out", "-o", required=True, metavar="FILE", help="output statistics file (.npz)")
    parser.add_argument("--symprec", type=float, default=None,
                        help="spglib distance tolerance in Å (default 0.1)")
    parser.add_argument("--workers", "-j", type=int, default=None,
                        help="worker processes (default: all available cores; 1 = no subprocesses)")
    parser.add_argument("--split", metavar="SPLITFILE", help="split CSV from `synthxrd split` (id,prototype,part)")
    parser.add_argument("--part", choices=("statistics", "calibration", "test"), default=None,
                        help="with --split: keep only this part (default statistics)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--show-failures", type=int, default=10, metavar="N",
                        help="print the first N failures (default 10)")


def run(args: argparse.Namespace) -> int:
    from synthxrd import stats as st
    from synthxrd.errors import ConfigError, DataError
    from synthxrd.files import check_outputs
    from synthxrd.split import read_split

    check_outputs([args.out], inputs=[args.source, args.split], overwrite=args.overwrite)
    if args.part is not None and args.split is None:
        raise ConfigError("--part needs --split SPLITFILE")
    split = read_split(args.split) if args.split else None
    part = args.part or "statistics"
    source = Path(args.source)
    start = time.perf_counter()
    reused = source.is_file() and source.suffix.lower() == ".npz"  # its failures were reported when it was made
    if source.is_file() and source.suffix.lower() == ".npz":
        statistics = st.Statistics.load(source)
        if args.symprec is not None and args.symprec != statistics.symprec:
            raise ConfigError(f"{source}: records were computed with symprec {statistics.symprec}, "
                              f"not {args.symprec}; recompute them from the CIFs")
        if split is None:
            raise ConfigError(f"{source} is already a statistics file; give --split to restrict it")
        print(f"re-using {statistics.n_structures} records of {source}")
    else:
        symprec = st.DEFAULT_SYMPREC if args.symprec is None else args.symprec
        ids = split.ids_of(part) if split is not None else None
        workers = st.default_workers() if args.workers is None else args.workers
        print(f"analysing {source} with {workers} worker(s), symprec {symprec}"
              + (f", {len(ids)} ids of split part {part!r}" if ids is not None else ""))
        statistics = st.compute(source, symprec=symprec, workers=workers, ids=ids,
                                progress=not args.no_progress, metadata={"workers": workers})
        if statistics.n_structures == 0:
            where = f" for the ids of split part {part!r}" if ids is not None else ""
            failures = statistics.failures
            raise DataError(f"{source}: no CIF files found{where}" if not failures else
                            f"{source}: none of the {len(failures)} CIFs could be analysed; nothing was written "
                            f"(first: {failures[0]['id']}: {failures[0]['reason']})")
    if split is not None:
        statistics = split.restrict(statistics, part)
    out = statistics.save(args.out)
    elapsed = time.perf_counter() - start
    summary = statistics.summary(top=10)
    failures = statistics.failures
    print(f"{summary['n_structures']} structures, {len(failures)} failures, {summary['n_spacegroups']} space groups, "
          f"{summary['n_represented']} with >= {st.REPRESENTED_MIN_COUNT} structures; {elapsed:.1f} s")
    print("top space groups: " + ", ".join(f"{sg} ({n})" for sg, n in summary["top_spacegroups"]))
    print_failures(failures, args.show_failures, f"the metadata of {out}")
    print(f"wrote {out}")
    return 1 if failures and not reused else 0
