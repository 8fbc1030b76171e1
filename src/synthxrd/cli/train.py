"""Train a network on an endless stream of synthetic crystals (on the fly, never the same pattern twice).

Runs on the defaults without a config file. Precedence: defaults < --config FILE.toml < flags
(< --set key=value). Every key of synthxrd.train.TrainConfig can be set with --set.

Outputs in --out: config.toml, run.json, TensorBoard events (tensorboard --logdir DIR),
checkpoint.pt (every checkpoint_every steps, at the end, on Ctrl-C/SIGTERM), best.pt, summary.json,
snapshots/step_N.pt (weights only, every snapshot_every steps when set; synthxrd evaluate loads them).
best.pt is selected and temperature-calibrated on the validation set "calibration" (the split's
calibration part), else on "random"; "match" (the test part) is evaluated and logged only.

Exit status: 0 when the run ends (max_steps or max_hours); 130 or 143 when SIGINT or SIGTERM stopped it
(checkpointed: resume it); 1 when it diverged (a non-finite loss or weights: the last checkpoint is kept)
or a data worker died (killed, out of memory: checkpointed at the step it stopped); 2 for a usage error.

Examples:
  synthxrd train --model park_big --max-steps 2000 --out runs/park
  synthxrd train --config configs/train.toml --workers 8 --ray-address auto
  synthxrd train --resume runs/park --max-steps 4000          # continue exactly where it stopped
  synthxrd train --init-weights model.pt --out runs/park2 --seed 1   # the run folder is lost: go on from an export
  synthxrd train --init-weights model.pt --min-count 5 --out runs/more --seed 1    # more classes, same trunk
  torchrun --nproc_per_node 4 -m synthxrd train --device cuda --out runs/ddp   # rank r on cuda:LOCAL_RANK
"""

from __future__ import annotations

import argparse
from pathlib import Path

from synthxrd.cli import options

#: Exit codes of a run stopped by a signal (checkpointed, resumable): 128 + the signal number, as shells report.
INTERRUPTED = {"SIGINT": 130, "SIGTERM": 143}

HELP = "train a network on freshly generated crystals (TensorBoard, checkpoints, exact resume)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from synthxrd.stats.statistics import REPRESENTED_MIN_COUNT

    parser.add_argument("--config", type=Path, help="TOML file with TrainConfig keys")
    parser.add_argument("--resume", type=Path, metavar="DIR", help="continue the run in DIR exactly")
    parser.add_argument("--init-weights", metavar="FILE",
                        help="start a new run from the weights of a model or checkpoint (fresh optimizer and warm-up); "
                             "continues a campaign whose run folder is lost from its last export. Give it another "
                             "--seed than that run's, or it first replays the batches those weights saw (it warns). "
                             "With other classes (another --min-count or statistics) the output rows of the common "
                             "classes are copied and the new ones start at their prior (it says how many)")
    parser.add_argument("--min-count", type=int, metavar="N",
                        help=f"classes: space groups with >= N structures in the statistics (default {REPRESENTED_MIN_COUNT}; use the "
                             "same N for `synthxrd validation build --min-count`)")
    parser.add_argument("--model", help="network name (see synthxrd.models.list_models(); default park_big)")
    parser.add_argument("--batch-size", type=int, help="patterns per step (default 145)")
    parser.add_argument("--max-steps", type=int, help="total optimisation steps (default 100000)")
    parser.add_argument("--lr", type=float, help="learning rate (default 1e-4)")
    parser.add_argument("--out", help="run directory (default runs/train)")
    parser.add_argument("--workers", type=int, help="data worker processes or Ray actors (default cores - 1)")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    parser.add_argument("--seed", type=options.seed, help="run seed (default 0)")
    parser.add_argument("--ray-address", help="use Ray actors: local | auto | HOST:PORT")
    parser.add_argument("--ray-resources", type=options.json_object, metavar="JSON",
                        help="custom Ray resources each actor reserves, e.g. '{\"data_node\": 1}' to place the "
                             "actors on the nodes started with `ray start --resources '{\"data_node\": 4}'`")
    parser.add_argument("--validation-dir", help="cached validation sets (synthxrd validation build)")
    parser.add_argument("--augment", metavar="default|measured|none|FILE",
                        help="experimental realism of the training patterns (synthxrd.augment; default none)")
    parser.add_argument("--grid-step", type=float, metavar="DEG",
                        help="model grid step in degrees: 0.01, 0.02, 0.04, ... (default 0.04)")
    parser.add_argument("--renders", type=int, metavar="R", help="augmented renderings per simulated crystal (default 4)")
    parser.add_argument("--clean-fraction", type=float, metavar="F",
                        help="with --augment: share of the patterns rendered ideal (default 0)")
    parser.add_argument("--clean-input", action="store_true", default=None,
                        help="take background and noise away from every network input, in training and in "
                             "prediction, as search-match does (InputSpec.clean)")
    parser.add_argument("--real", metavar="FILE|shipped|none",
                        help="real crystal set to mix in: the shipped MP + AMCSD set (default 'shipped'), a file of "
                             "`synthxrd real build`, or 'none' (synthetic crystals only)")
    parser.add_argument("--real-fraction", type=float, metavar="F",
                        help="share of each batch from --real (default 0.5; 1 = real crystals only, the 'direct' "
                             "baseline; 0 = synthetic only)")
    parser.add_argument("--threads", type=int, help="torch threads on a CPU (default 0 = every available core but the "
                                                           "data worker's: 1 on 2 cores)")
    parser.add_argument("--max-hours", type=float, help="stop (checkpointed, resumable) after this wall time")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any TrainConfig key, TOML value (e.g. --set schedule=\"cosine\" --set warmup_steps=500)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from synthxrd.config import parse_override
    from synthxrd.train import TrainConfig, resume_config, train

    overrides = {"model": args.model, "batch_size": args.batch_size, "max_steps": args.max_steps, "lr": args.lr,
                 "out": args.out, "workers": args.workers, "device": args.device, "seed": args.seed,
                 "ray_address": args.ray_address, "ray_resources": args.ray_resources,
                 "validation_dir": args.validation_dir, "augment": args.augment,
                 "grid_step": args.grid_step, "renders": args.renders, "clean_fraction": args.clean_fraction, "real": args.real,
                 "real_fraction": args.real_fraction, "threads": args.threads, "max_hours": args.max_hours,
                 "init_weights": args.init_weights, "clean_input": args.clean_input, "min_count": args.min_count}
    overrides.update(dict(parse_override(item) for item in args.set))
    if args.resume:
        config = resume_config(args.resume, **{k: v for k, v in overrides.items() if k != "out"})
    else:
        config = TrainConfig.load(args.config, **overrides)
    import sys
    import warnings

    with warnings.catch_warnings():  # restores showwarning on exit
        warnings.showwarning = lambda message, *a, **k: print(f"synthxrd train: warning: {message}", file=sys.stderr)
        summary = train(config, resume=bool(args.resume), progress=not args.no_progress)
    val = ", ".join(f"{k}: top1 {v['top1']:.3f} top5 {v['top5']:.3f}" for k, v in summary["validation"].items())
    last = summary["history"][-1] if summary["history"] else {}
    print(f"stopped at step {summary['step']}" + (f" ({summary['stopped_by']})" if summary["stopped_by"] else "")
          + (f"; train loss {last['loss']:.3f}" if last else "") + (f"; {val}" if val else "")
          + f"; outputs in {summary['out']}")
    if summary.get("error"):
        resumable = (Path(summary["out"]) / "checkpoint.pt").is_file()
        print(f"synthxrd train: error: {summary['error']}"
              + (f"; resume with `synthxrd train --resume {summary['out']}`" if resumable else ""), file=sys.stderr)
        return 1
    return INTERRUPTED.get(summary["stopped_by"], 0)
