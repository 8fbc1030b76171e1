"""Ship a trained run as the package's pretrained model, with its model card data.

    python scripts/ship_model.py RUN_DIR --validation-dir VAL --eval-out eval/shipped \
        [--checkpoint checkpoint.pt] [--average snapshots/step_A.pt ...] [--overwrite]

1. ``synthxrd export`` of the run's checkpoint (or the mean of several, ``--average``), float16, to
   ``src/synthxrd/resources/models/default.pt``, calibrated on ``match`` of VAL (``--calibrate``);
2. ``synthxrd evaluate`` of that file, next to the frequency prior:
   * network alone (``--no-library``) on the full ``match`` set (real crystals of unseen structure
     types), the labelled XRED patterns of the manifest and the 300 RRUFF minerals of rruff_dev;
   * fused with the shipped library on rruff_dev and XRED, and on a fixed 2,000-pattern subsample of
     ``match`` with the test part of the split held out of the library (``--hold-out-test``);
   The export fits the model's fusion rule with the default library (``--fusion-source CIFS...``:
   the library's structures; simulated patterns only) or binds a rule file to it (``--fusion FILE``),
   and stores it in the model (``synthxrd export --library default``);
3. ``src/synthxrd/resources/models/default.json``: the model card's data (run, training time and
   hardware from the TensorBoard events, the learning curve of ``RUN_DIR/curve.json`` when
   ``scripts/learning_curve.py`` made one, every metric next to the prior, and what the curve from
   ``--project-from RUN`` on projects for the network-alone targets, in patterns seen and hours);
4. ``docs/model_card_training.png``: the training curves; ``docs/model_card_curve.png``: the learning
   curve of the campaign (patterns seen against accuracy on match, rruff_dev and XRED).

A run started from the shipped weights (``synthxrd train --init-weights .../default.pt``), or from
a checkpoint of a run that did (``--init-weights runs/run3/checkpoint.pt``, followed back run by run),
continues the shipped model's campaign: its runs, hours and learning curves are added to the card's.

rruff_dev and XRED choose and measure; they are never trained on.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "src" / "synthxrd" / "resources" / "models"
DATA = ROOT.parent / "shared" / "data" / "experimental"
METRICS = ("top1", "top5", "crystal_system", "extinction_group", "ece")
TARGETS = (("match", "top1", 0.40), ("rruff_dev", "top1", 0.30), ("rruff_dev", "crystal_system", 0.60))


def _wall_hours(run: Path, gap_s: float = 600.0) -> float:
    """Training wall time from the event files: sum of gaps between logged steps shorter than gap_s
    (a pause between a stop and its --resume is not counted)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    times = sorted(e.wall_time for e in acc.Scalars("train/loss"))
    return sum(b - a for a, b in zip(times, times[1:]) if b - a < gap_s) / 3600.0


def _run_config(run: Path) -> dict:
    import tomllib

    return tomllib.loads((run / "config.toml").read_text())


def _lineage(run: Path, card_runs: set[str]) -> tuple[list[Path], bool]:
    """The run folders whose weights ``run`` continues, oldest first, ending with ``run``, and
    whether the chain continues the shipped card's campaign.

    ``init_weights`` is followed back through checkpoints inside run folders (a folder with a
    ``config.toml``); the chain stops at a run without ``init_weights`` (a fresh campaign), at an
    exported model (the shipped one: its card's campaign) or at a run already on the card."""
    chain = [run]
    while True:
        source = _run_config(chain[0]).get("init_weights")
        if not source:
            return chain, False
        parent = Path(source).parent
        if parent.name in card_runs or not (parent / "config.toml").is_file():
            return chain, True
        chain.insert(0, parent)


def _ledger_row(run: Path, hardware: str) -> dict:
    """One run of the campaign: its last step, patterns seen, wall hours and starting weights."""
    from synthxrd.models.checkpoint import load_checkpoint

    config = _run_config(run)
    steps = int(load_checkpoint(run / "checkpoint.pt")["step"])
    source = config.get("init_weights")
    return {"run": run.name, "steps": steps, "patterns_seen": steps * config["batch_size"],
            "wall_hours": round(_wall_hours(run), 3),
            "init_weights": f"{Path(source).parent.name}/{Path(source).name}" if source else None, "hardware": hardware}


def _metrics(evaluation: Path) -> dict:
    """The card's metrics of one ``synthxrd evaluate`` output: the answer ("model": fused when a library
    was used), the prior and, with a library, the network and the search alone."""
    doc = json.loads((evaluation / "evaluation.json").read_text())
    part = doc["summary"]["all"]
    names = {"model": "model", "prior": "baseline", "network": "network", "search": "search"}
    return {"n": doc["summary"]["n_patterns"],
            **{who: {k: round(part[key][k], 4) for k in METRICS} for who, key in names.items() if key in part}}


def _evaluations(model: Path, args) -> dict[str, list[str]]:
    """The ``synthxrd evaluate`` commands of the card, by output folder."""
    net, val = ["--no-library"], ["--validation-dir", args.validation_dir, "--set", "match"]
    measured, rruff = ["--manifest", str(args.manifest)], ["--patterns", str(args.rruff)]
    runs = {"match": val + net, "measured": measured + net, "rruff_dev": rruff + net,
            "fused_rruff_dev": rruff, "fused_measured": measured,
            "fused_match": val + ["--hold-out-test", "--max-patterns", "2000"]}
    flag = ["--overwrite"] if args.overwrite else []
    return {name: ["evaluate", "--model", str(model), *extra, "--device", "cpu", "--out", str(args.eval_out / name), *flag]
            for name, extra in runs.items()}


def _projection(curve: list[dict], campaign: list[dict], first_run: str) -> dict:
    """What the campaign's learning curve projects for the network-alone targets of :data:`TARGETS`.

    The points from ``first_run`` on (the runs of the shipped configuration), against the patterns
    seen by the whole campaign, go to ``learning_curve.project`` (a line in log10 patterns seen through
    the second half of them); the hours assume the last run's patterns per hour on this hardware."""
    from learning_curve import project

    runs = [point["run"] for point in curve]
    if first_run not in runs:
        raise SystemExit(f"--project-from {first_run}: the learning curve has the runs {', '.join(dict.fromkeys(runs))}")
    points = [{**p, "patterns_seen": p["campaign_patterns_seen"]} for p in curve[runs.index(first_run):]]
    now, last = points[-1], campaign[-1]
    per_hour = last["patterns_seen"] / last["wall_hours"]
    targets = []
    for name, metric, value in TARGETS:
        reached = now["sets"][name][metric] >= value
        seen = None if reached else project(points, name, metric, value)
        targets.append({"set": name, "metric": metric, "target": value, "now": now["sets"][name][metric],
                        "reached": reached, "patterns_seen": round(seen) if seen else None,
                        "more_hours": round((seen - now["patterns_seen"]) / per_hour, 1) if seen else None})
    return {"from_run": first_run, "points": len(points), "patterns_seen": now["patterns_seen"],
            "patterns_per_hour": round(per_hour), "targets": targets}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--checkpoint", default="best.pt", help="file inside the run folder")
    parser.add_argument("--average", nargs="+", default=[], metavar="FILE",
                        help="files inside the run folder averaged with --checkpoint")
    parser.add_argument("--validation-dir", required=True)
    parser.add_argument("--manifest", type=Path, default=DATA / "manifest.csv")
    parser.add_argument("--rruff", type=Path, default=DATA / "rruff_dev" / "rruff_dev300.npz")
    fusion = parser.add_mutually_exclusive_group(required=True)
    fusion.add_argument("--fusion-source", nargs="+", metavar="CIFS",
                        help="fit the fusion rule of the new network on the default library's structures "
                             "(MP tar archive and AMCSD database)")
    fusion.add_argument("--fusion", metavar="FILE", help="bind this fusion rule file to the new network instead")
    parser.add_argument("--eval-out", type=Path, required=True)
    parser.add_argument("--project-from", metavar="RUN",
                        help="the learning curve from this run of the campaign on gives the projection for the "
                             "targets (default: the shipped run)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT / "scripts"))  # learning_curve.py beside this script
    from synthxrd.cli import main as synthxrd
    from synthxrd.config import available_cores
    from synthxrd.plot import plot_training

    model = MODELS / "default.pt"
    previous = json.loads((MODELS / "default.json").read_text()) if (MODELS / "default.json").is_file() else {}
    flag = ["--overwrite"] if args.overwrite else []
    average = ["--average", *(str(args.run / f) for f in args.average)] if args.average else []
    fusion = (["--source", *args.fusion_source] if args.fusion_source else ["--fusion", args.fusion])
    export = ["export", str(args.run / args.checkpoint), str(model), *average, "--calibrate", args.validation_dir,
              "--library", "default", *fusion, *flag]
    print("synthxrd", " ".join(export), flush=True)
    if synthxrd(export) != 0:
        return 2
    for command in _evaluations(model, args).values():
        print("synthxrd", " ".join(command), flush=True)
        if synthxrd(command) not in (0, 1):
            return 2
    import torch

    payload = torch.load(model, weights_only=True)
    run = json.loads((args.run / "run.json").read_text())
    config = payload["config"]
    metrics = {name: _metrics(args.eval_out / name) for name in _evaluations(model, args)}
    hardware = (f"{platform.machine()}, {available_cores()} CPU cores, device {run['device']}, "
                f"{run['workers']} data worker(s), torch {run['torch_version']}")
    # the runs whose weights this one continues (--init-weights) and, when the chain starts from the
    # shipped weights, the card's campaign before them: runs, hours and learning curves add up
    card_runs = list(previous.get("campaign", []))
    chain, continues = _lineage(args.run, {r["run"] for r in card_runs})
    campaign = [*(card_runs if continues else []), *(_ledger_row(r, hardware) for r in chain)]
    campaign[-1]["steps"] = payload["step"]  # the exported checkpoint's step
    campaign[-1]["patterns_seen"] = payload["step"] * config["batch_size"]
    curve = [*(previous.get("learning_curve") or [] if continues else [])]
    offset = sum(r["patterns_seen"] for r in campaign[:len(campaign) - len(chain)])
    for r, row in zip(chain, campaign[len(campaign) - len(chain):]):
        curve_file = r / "curve.json"
        rows = json.loads(curve_file.read_text()) if curve_file.is_file() else []
        curve += [{**point, "run": r.name, "campaign_patterns_seen": point["patterns_seen"] + offset}
                  for point in rows if point["step"] <= row["steps"]]
        offset += row["patterns_seen"]
    card = {
        "model": payload["model_config"]["name"], "parameters": run["parameters"], "classes": len(payload["classes"]),
        "step": payload["step"], "patterns_seen": payload["step"] * config["batch_size"],
        "averaged": payload["export"]["source"] if args.average else None,
        "wall_hours": campaign[-1]["wall_hours"],  # this run's row of the ledger
        "campaign": campaign,
        "campaign_wall_hours": round(sum(r["wall_hours"] for r in campaign), 3),
        "campaign_patterns_seen": sum(r["patterns_seen"] for r in campaign),
        "hardware": hardware,
        "statistics_version": payload["statistics_version"], "synthxrd_version": payload["synthxrd_version"],
        "config": config, "calibration": payload.get("calibration"), "file_mb": round(model.stat().st_size / 1e6, 2),
        "metrics": {name: m for name, m in metrics.items() if not name.startswith("fused_")},
        "fused": {name.removeprefix("fused_"): m for name, m in metrics.items() if name.startswith("fused_")},
        "learning_curve": curve,
        "projection": _projection(curve, campaign, args.project_from or args.run.name) if curve else None,
    }
    (MODELS / "default.json").write_text(json.dumps(card, indent=1) + "\n")
    plot_training(ROOT / "docs" / "model_card_training.png", {card["model"]: args.run})
    if curve:
        from learning_curve import plot

        plot([{**row, "patterns_seen": row["campaign_patterns_seen"]} for row in curve], ROOT / "docs" / "model_card_curve.png")
    print(json.dumps({k: v for k, v in card.items() if k not in ("config", "learning_curve")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
