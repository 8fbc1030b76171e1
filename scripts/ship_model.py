"""Ship a trained run as the package's pretrained model, with its model card data.

    python scripts/ship_model.py RUN_DIR --validation-dir VAL --manifest ../shared/data/experimental/manifest.csv \
        --eval-out eval/shipped [--checkpoint best.pt|checkpoint.pt] [--overwrite]

1. ``synthxrd export`` of the run's checkpoint (float16) to ``src/synthxrd/resources/models/default.pt``;
2. ``synthxrd evaluate`` of that file on the full unseen-prototype ``match`` set and on all labelled
   measured patterns of the manifest (JSON + figures under ``--eval-out``);
3. ``src/synthxrd/resources/models/default.json``: the model card's data (run, training time and
   hardware from the TensorBoard events, metrics next to the frequency prior);
4. ``docs/model_card_training.png``: the training curves.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "src" / "synthxrd" / "resources" / "models"
METRICS = ("top1", "top5", "crystal_system", "extinction_group", "ece")


def _wall_hours(run: Path, gap_s: float = 600.0) -> float:
    """Training wall time from the event files: sum of gaps between logged steps shorter than gap_s
    (a pause between a stop and its --resume is not counted)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    times = sorted(e.wall_time for e in acc.Scalars("train/loss"))
    return sum(b - a for a, b in zip(times, times[1:]) if b - a < gap_s) / 3600.0


def _metrics(evaluation: Path) -> dict:
    doc = json.loads((evaluation / "evaluation.json").read_text())
    part = doc["summary"]["all"]
    return {"n": part["model"]["n"],
            "model": {k: round(part["model"][k], 4) for k in METRICS},
            "prior": {k: round(part["baseline"][k], 4) for k in METRICS}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--checkpoint", default="best.pt", help="file inside the run folder")
    parser.add_argument("--validation-dir", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--eval-out", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    from synthxrd.cli import main as synthxrd
    from synthxrd.config import available_cores
    from synthxrd.plot import plot_training

    model = MODELS / "default.pt"
    flag = ["--overwrite"] if args.overwrite else []
    steps = [
        ["export", str(args.run / args.checkpoint), str(model), *flag],
        ["evaluate", "--model", str(model), "--validation-dir", args.validation_dir, "--set", "match",
         "--out", str(args.eval_out / "match"), *flag],
        ["evaluate", "--model", str(model), "--manifest", args.manifest, "--out", str(args.eval_out / "measured"), *flag],
    ]
    for command in steps:
        print("synthxrd", " ".join(command), flush=True)
        if synthxrd(command) not in (0, 1):
            return 2
    import torch

    payload = torch.load(model, weights_only=True)
    run = json.loads((args.run / "run.json").read_text())
    config = payload["config"]
    card = {
        "model": payload["model_config"]["name"], "parameters": run["parameters"], "classes": len(payload["classes"]),
        "step": payload["step"], "patterns_seen": payload["step"] * config["batch_size"],
        "wall_hours": round(_wall_hours(args.run), 3),
        "hardware": f"{platform.machine()}, {available_cores()} CPU cores, device {run['device']}, "
                    f"{run['config']['workers']} data worker(s), torch {run['torch_version']}",
        "statistics_version": payload["statistics_version"], "synthxrd_version": payload["synthxrd_version"],
        "config": config, "file_mb": round(model.stat().st_size / 1e6, 2),
        "metrics": {"match": _metrics(args.eval_out / "match"), "measured": _metrics(args.eval_out / "measured")},
    }
    (MODELS / "default.json").write_text(json.dumps(card, indent=1) + "\n")
    plot_training(ROOT / "docs" / "model_card_training.png", {card["model"]: args.run})
    print(json.dumps({k: v for k, v in card.items() if k != "config"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
