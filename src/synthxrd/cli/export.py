"""Write the inference part of a training run (weights + classes + config, no optimizer state) to one file.

The result is what `synthxrd predict --model FILE` and `Predictor.load(FILE)` read; with --dtype
float16 (default) it is half the size of the float32 weights. The shipped model
(synthxrd/resources/models/default.pt) was made this way.

Examples:
  synthxrd export runs/park/best.pt park.pt
  synthxrd export runs/park park.pt --dtype float32     # a run folder: its best.pt, else checkpoint.pt
  synthxrd export runs/park/snapshots/step_00020000.pt avg.pt \
      --average runs/park/snapshots/step_00021000.pt runs/park/snapshots/step_00022000.pt
                                                        # mean weights of three snapshots (uncalibrated)
  synthxrd export runs/park/checkpoint.pt park.pt --calibrate validation
                                                        # fit the softmax temperature of the exported weights
                                                        # on 2,000 patterns of validation/match.h5

A checkpoint calibrated by the trainer (best.pt) keeps its temperature; an average or the last
checkpoint has none until --calibrate fits one (temperature scaling, as the trainer does at the end).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "export a trained model for prediction (weights and metadata, float16 by default)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="checkpoint file or run folder of synthxrd train")
    parser.add_argument("out", type=Path, help="output file (.pt)")
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16", help="weight precision")
    parser.add_argument("--average", nargs="+", type=Path, default=[], metavar="CHECKPOINT",
                        help="average the weights of these checkpoints (same network) with CHECKPOINT's")
    parser.add_argument("--calibrate", metavar="DIR",
                        help="fit the softmax temperature of the exported weights on a validation cache "
                             "(synthxrd validation build)")
    parser.add_argument("--calibrate-set", default="match", metavar="NAME", help="validation set (default match)")
    parser.add_argument("--calibrate-max", type=int, default=2000, metavar="N",
                        help="a fixed subsample of N patterns of the set (0: all; default 2000)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def run(args: argparse.Namespace) -> int:
    from synthxrd.files import check_outputs
    from synthxrd.predict import resolve_checkpoint, run_folder
    from synthxrd.models.checkpoint import export_model

    given = [args.checkpoint, *args.average]  # and the runs they come from: their checkpoints are kept
    check_outputs([args.out], inputs=[*given, *(run_folder(p) for p in given)], overwrite=args.overwrite)
    source = resolve_checkpoint(args.checkpoint)
    sources = [source, *(resolve_checkpoint(p) for p in args.average)]
    meta = export_model(sources if args.average else source, args.out, dtype=args.dtype)
    if args.calibrate:
        meta["calibration"] = calibrate(args.out, args.calibrate, args.calibrate_set, args.calibrate_max)
    size = args.out.stat().st_size / 1e6
    origin = f"the mean of {len(sources)} checkpoints" if args.average else str(source)
    print(f"exported {meta['model_config'].get('name', 'model')} (step {meta.get('step', '?')}, "
          f"{len(meta['classes'])} classes, {args.dtype}) from {origin} to {args.out} ({size:.1f} MB)")
    if args.calibrate:
        c = meta["calibration"]
        print(f"calibrated on {c['n']} patterns of {c['fitted_on']}: temperature {c['temperature']:.3f}, "
              f"ECE {c['ece_before']:.3f} -> {c['ece_after']:.3f}")
    return 0


def calibrate(path: Path, validation_dir: str, set_name: str, max_patterns: int) -> dict:
    """Fit the temperature of the exported model at ``path`` and store it in the file (atomically)."""
    from synthxrd.evaluate import calibrate_on_validation_set
    from synthxrd.models.checkpoint import load_checkpoint, save_checkpoint
    from synthxrd.predict import Predictor

    predictor = Predictor.load(path, library=None, device="cpu")
    info = calibrate_on_validation_set(predictor, validation_dir, set_name, max_patterns=max_patterns)
    payload = load_checkpoint(path)
    payload["calibration"] = {**info, "file": path.name}
    save_checkpoint(path, payload)
    return payload["calibration"]
