"""Learning curve of a training run: every snapshot of ``<run>/snapshots`` scored on the development sets.

Each weights-only snapshot (``synthxrd train --set snapshot_every=N``) is evaluated, network alone,
on the ``match`` validation set (real crystals of unseen structure types), the 300 RRUFF minerals
of rruff_dev and the raw XRED patterns, next to the frequency prior. Results are cached in
``<run>/curve.json`` (a snapshot is scored once, so the script can be rerun as the run grows, with
``nice`` beside a training) and drawn against patterns seen::

    nice -n 10 python scripts/learning_curve.py runs/run1 \
        --validation-dir validation --plot docs/learning_curve.png

Never train on rruff_dev or XRED: they measure and choose, nothing else. The logic is
:mod:`synthxrd.modelcard` (:func:`~synthxrd.modelcard.update_curve`, ``plot_curve``, ``project``);
this script only parses the options.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    from synthxrd.files import shared_data_dir
    from synthxrd.modelcard import plot_curve, project, update_curve

    data = shared_data_dir(ROOT) / "experimental"
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--validation-dir", required=True)
    parser.add_argument("--rruff", type=Path, default=data / "rruff_dev" / "rruff_dev300.npz")
    parser.add_argument("--xred", type=Path, default=data / "manifest.csv")
    parser.add_argument("--match-patterns", type=int, default=2000, help="fixed subsample of match (0: all)")
    parser.add_argument("--every", type=int, default=1, metavar="N",
                        help="score only the snapshots whose step is a multiple of N (default: all)")
    parser.add_argument("--plot", type=Path, help="draw the curve to this PNG")
    parser.add_argument("--target", nargs=3, action="append", default=[], metavar=("SET", "METRIC", "VALUE"),
                        help="print the patterns seen the curve projects for METRIC >= VALUE on SET "
                             "(e.g. --target rruff_dev top1 0.30)")
    args = parser.parse_args(argv)

    curve = update_curve(args.run, every=args.every, log=lambda m: print(m, flush=True),
                         validation_dir=args.validation_dir, rruff=args.rruff, xred=args.xred,
                         match_patterns=args.match_patterns)
    if args.plot and curve:
        plot_curve(curve, args.plot)
    for name, metric, value in args.target:
        seen = project(curve, name, metric, float(value))
        print(f"{name} {metric} >= {value}: " + (f"about {seen:.3g} patterns seen (now {curve[-1]['patterns_seen']:.3g})"
                                               if seen else "the curve does not rise; no projection"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
