"""The whole method end to end in about a minute on 2 cores: synthetic crystals, their patterns, and the
pretrained network on measured patterns.

Steps (see synthxrd.quickstart):
  1. generate --n-crystals synthetic crystals from the shipped space-group statistics (5 written as CIF)
  2. simulate their patterns, ideal and with laboratory realism (augment "default"), and plot 6 of them
  3. predict the space groups of the 17 measured XRED patterns shipped with synthxrd: search-match
     against the 46,627 known structures shipped with synthxrd fused with the pretrained model (or
     --model; --no-library: the network alone), printed as a table with the best-matching structure
  4. evaluate these predictions next to the frequency-prior baseline (metrics, confusion, calibration)

Writes into OUT (default synthxrd-quickstart; a non-empty folder only with --overwrite):
  crystals/*.cif  ideal.h5  realistic.h5  patterns.png  predictions.csv  evaluation/  run.json

Examples:
  synthxrd quickstart
  synthxrd quickstart --out qs --seed 1 --n-crystals 1000
  synthxrd quickstart --model runs/mine --out qs-mine --overwrite
"""

from __future__ import annotations

import argparse
from pathlib import Path

from synthxrd.cli import options

__all__ = ["HELP", "add_arguments", "run"]

#: The next step printed for training one's own model (tested to run as printed).
TRAIN_COMMAND = "synthxrd train --augment default --out runs/mine"
HELP = "the whole method end to end in a minute: generate, simulate, plot, predict and evaluate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="synthxrd-quickstart", metavar="DIR",
                        help="output directory (default synthxrd-quickstart)")
    parser.add_argument("--n-crystals", type=int, default=300, metavar="N",
                        help="synthetic crystals to generate and simulate (default 300)")
    parser.add_argument("--seed", type=options.seed, default=0, help="random seed (default 0)")
    parser.add_argument("--model", metavar="PATH",
                        help="checkpoint file or training run folder (default: the model shipped with synthxrd)")
    parser.add_argument("--no-library", action="store_true", help="the network alone, no search-match")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty OUT, replacing files")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from synthxrd.cli.evaluate import format_table
    from synthxrd.quickstart import QuickstartConfig, format_predictions, run_quickstart

    config = QuickstartConfig(out=args.out, n_crystals=args.n_crystals, seed=args.seed, model=args.model,
                              library=not args.no_library, overwrite=args.overwrite)
    s = run_quickstart(config, progress=not args.no_progress)
    out, files, model, ev = s["out"], s["files"], s["model"], s["evaluation"]
    top = ", ".join(f"{g}: {c}" for g, c in sorted(s["spacegroups"].items(), key=lambda t: -t[1])[:5])
    print(f"\n1-2. {s['n_crystals']} synthetic crystals in {len(s['spacegroups'])} space groups (most frequent "
          f"{top}), simulated ideal and realistic")
    rows = s["predictions"]
    print(f"\n3. Space groups of the {len(rows)} measured patterns shipped with synthxrd "
          f"(model: {model['source']}, {model['name']}, step {model['step']}, {model['n_classes']} classes"
          + (", fused with search-match against the shipped library)" if config.library else ")"))
    print(format_predictions(rows))
    if any(not r["known"] for r in rows):
        print("* not one of the model's classes: cannot be predicted exactly")
    print(f"top-1 {sum(r['top1_hit'] for r in rows)}/{len(rows)}, top-5 {sum(r['top5_hit'] for r in rows)}/{len(rows)}")
    print("\n4. Evaluation against the frequency prior (always the most common groups of the statistics):")
    print(format_table(ev))
    print(f"\nOutputs in {out}/ ({s['timings_s']['total']:.0f} s):")
    for name, what in (("crystals/", f"{len(files['cif'])} generated crystals as CIF"),
                       ("ideal.h5", f"the {s['n_crystals']} crystals, ideal patterns, labels (synthxrd.dataset)"),
                       ("realistic.h5", "the same with realistic patterns"),
                       ("patterns.png", "ideal vs realistic patterns"),
                       ("predictions.csv", "the table of step 3"),
                       ("evaluation/", "evaluation.json, confusion matrices, reliability diagram"),
                       ("run.json", "config, seed, versions, model")):
        print(f"  {name:16s} {what}")
    measured = Path(s["measured"]).parent
    print("\nNext:")
    for command, comment in (
            ("synthxrd predict my_pattern.xy --elements Fe,O", "your own measurement (Cu K-alpha unless --wavelength)"),
            (TRAIN_COMMAND, "train your own (GPU: --device cuda)"),
            ("tensorboard --logdir runs/mine", "watch it train"),
            (f"synthxrd evaluate --model runs/mine --manifest {measured}/manifest.csv --out eval-mine",
             "evaluate it on the measured patterns"),
            (f"synthxrd evaluate --model runs/mine --dataset {out}/realistic.h5 --out eval-synthetic",
             "... and on the synthetic ones"),
            ("synthxrd generate --n 1000 --out synth --patterns --cif", "more synthetic crystals"),
            ("synthxrd --help", "all commands")):
        print(f"  # {comment}\n  {command}")
    return 0
