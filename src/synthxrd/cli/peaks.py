"""List the peaks of a measured powder pattern: 2theta, d, height, relative intensity, FWHM.

  synthxrd peaks PATTERN [--wavelength CuKa1] [--min-prominence 6] [--json [FILE]]

The background and noise are estimated as before a prediction (synthxrd.io.prepare.background_and_noise);
a peak must rise --min-prominence noise sigmas above the background and above the valleys beside it.
Positions and widths come from the points (no profile fit), K-alpha2 is not stripped. d needs a
wavelength: the file's own, else --wavelength, else d is left empty. See synthxrd.peaks.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["HELP", "add_arguments", "run"]

HELP = "peak table of a measured pattern (2theta, d, height, FWHM)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from synthxrd.peaks import DEFAULT_MIN_PROMINENCE

    parser.add_argument("pattern", metavar="PATTERN", help="measured pattern file (any format synthxrd reads)")
    parser.add_argument("--wavelength", metavar="LAMBDA",
                        help="Å or a line name (CuKa1, ...), used where the file states none; for d")
    parser.add_argument("--min-prominence", type=float, default=DEFAULT_MIN_PROMINENCE, metavar="SIGMAS",
                        help=f"noise sigmas a peak must rise above background and neighbouring valleys "
                             f"(default {DEFAULT_MIN_PROMINENCE:g})")
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE",
                        help="write the table as JSON to FILE (to stdout without FILE) instead of text")


def run(args: argparse.Namespace) -> int:
    from synthxrd.files import write_json
    from synthxrd.peaks import read_peaks

    table = read_peaks(args.pattern, wavelength=args.wavelength, min_prominence=args.min_prominence)
    if args.json == "-":
        json.dump(table.to_dict(), sys.stdout, indent=1)
        print()
        return 0
    if args.json:
        write_json(args.json, table.to_dict())
        print(f"wrote {args.json} ({len(table)} peaks)")
        return 0
    lam = f"{table.wavelength:.5f} Å" if table.wavelength else "none (d not given; pass --wavelength)"
    print(f"{table.source}: {len(table)} peaks, wavelength {lam}")
    print(table.format())
    return 0
