"""Split a collection by prototype into statistics, calibration and test parts (CSV id,prototype,part).

  synthxrd split stats.npz --out split.csv [--test-fraction 0.3] [--calibration-fraction 0.5] [--seed 0]
                 [--structure-types types.csv]
  synthxrd split FOLDER_OR_TAR --out split.csv.gz      (analyses the CIFs first, like `synthxrd stats`)

The prototype of a structure is "<space group>|<anonymized formula>|<sorted Wyckoff letters>" unless
--structure-types gives a CSV of id,structure_type (e.g. ICSD StructureType) for it. Whole prototype
groups go to one part; a fraction --test-fraction of the groups is held out of `statistics`, and of
those a fraction --calibration-fraction goes to `calibration` (fits: temperature, fusion rule,
thresholds), the rest to `test` (reported only). Same input and seed: same split. A JSON sidecar <out>.json records seed, fraction, source and counts. Existing outputs are
replaced only with --overwrite, and never when one is an input (`split stats.npz --out stats.npz`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from synthxrd.cli import options

HELP = "prototype split (statistics/test) of a collection, from a stats file or CIFs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="STATSFILE_OR_SOURCE",
                        help="statistics .npz of the whole collection, or a folder/tar of CIFs")
    parser.add_argument("--out", "-o", required=True, metavar="SPLIT.csv", help="output CSV (.csv or .csv.gz)")
    parser.add_argument("--test-fraction", type=float, default=0.3,
                        help="fraction of prototype groups held out of the statistics part (default 0.3)")
    parser.add_argument("--calibration-fraction", type=float, default=0.5,
                        help="fraction of the held-out groups in the calibration part (default 0.5; 0: none)")
    parser.add_argument("--seed", type=options.seed, default=0, help="seed of the group permutation (default 0)")
    parser.add_argument("--structure-types", metavar="CSV",
                        help="CSV id,structure_type; these names replace the prototype proxy")
    parser.add_argument("--symprec", type=float, default=0.1,
                        help="when analysing CIFs: spglib tolerance (default 0.1)")
    parser.add_argument("--workers", "-j", type=int, default=None, help="when analysing CIFs: worker processes")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing split (and its .json)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from synthxrd import stats as st
    from synthxrd.errors import DataError
    from synthxrd.files import check_outputs
    from synthxrd.split import PARTS, read_structure_types, split_statistics

    out_path = Path(args.out)
    check_outputs([out_path, out_path.with_name(out_path.name + ".json")],
                  inputs=[args.source, args.structure_types], overwrite=args.overwrite)
    source = Path(args.source)
    failed = 0  # CIFs this run could not analyse (a stats file's own failures were reported by `stats`)
    if source.is_file() and source.suffix.lower() == ".npz":
        statistics = st.Statistics.load(source)
    else:
        statistics = st.compute(source, symprec=args.symprec, workers=args.workers, progress=not args.no_progress)
        if statistics.n_structures == 0:
            raise DataError(f"{source}: no CIF files found" if not statistics.failures else
                            f"{source}: none of the {len(statistics.failures)} CIFs could be analysed; "
                            "nothing was written")
        failed = len(statistics.failures)
        if failed:
            print(f"{failed} CIFs could not be analysed and are not in the split")
    types = read_structure_types(args.structure_types) if args.structure_types else None
    split = split_statistics(statistics, test_fraction=args.test_fraction,
                             calibration_fraction=args.calibration_fraction, seed=args.seed, structure_types=types,
                             structure_types_file=args.structure_types)
    out = split.write(args.out)
    counts = split.counts()
    if types is not None:
        print(f"{split.metadata['n_with_structure_type']} of {len(split)} structures named by {args.structure_types}")
    for part in PARTS:
        print(f"{part}: {counts[part]['structures']} structures in {counts[part]['groups']} prototype groups")
    print(f"wrote {out} (and {out.name}.json)")
    return 1 if failed else 0
