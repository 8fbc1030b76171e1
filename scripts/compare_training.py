"""Compare training configurations at equal wall time on this machine (issue 12's comparison table).

Each configuration runs ``synthxrd train --max-hours H`` (everything else equal: seed, batch, lr,
validation sets), then ``synthxrd evaluate`` scores its best checkpoint on the measured development
patterns (rruff_dev, network alone, no library). The table (configuration, patterns/s, patterns seen,
best validation top-1/top-5 per set, rruff_dev top-1/top-5/crystal system, each with the prior) is
printed as Markdown and written with all figures as JSON.

  python scripts/compare_training.py --hours 0.5 --out runs/compare30 \
      --validation-dir validation --real real/stats_part.h5 \
      --rruff ../shared/data/experimental/rruff_dev/rruff_dev300.npz --val-max-patterns 2000 \
      --configs park_big_0.04_r4_clean50_lr1e-3,park_big_0.04_r4,park_big_0.04_r4_clean50_lr1e-3_real50

Every configuration states all the options it depends on, so changing the trainer's defaults does not
change what a configuration means.

Runs that already finished (a summary.json in their folder) are not repeated.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

#: name -> (description, train options). All use --augment default.
CONFIGS = {
    "park_big_0.01": ("park_big, 0.01 deg grid, 1 render, 1 torch thread (the trainer before issue 12)",
                      ["--model", "park_big", "--grid-step", "0.01", "--renders", "1", "--threads", "1",
                       "--lr", "1e-4", "--clean-fraction", "0"]),
    "park_big_0.04_r4": ("park_big, 0.04 deg grid, 4 renders per crystal, all cores",
                         ["--model", "park_big", "--grid-step", "0.04", "--renders", "4", "--lr", "1e-4",
                          "--clean-fraction", "0"]),
    "park_big_0.04_r4_real50": ("as above, half of each batch perturbed real crystals (statistics part)",
                                ["--model", "park_big", "--grid-step", "0.04", "--renders", "4",
                                 "--real-fraction", "0.5", "--lr", "1e-4", "--clean-fraction", "0"]),
    "park_big_0.04_r4_real100": ("as above, real crystals only (the reference's 'direct' baseline)",
                                 ["--model", "park_big", "--grid-step", "0.04", "--renders", "4",
                                  "--real-fraction", "1.0", "--lr", "1e-4", "--clean-fraction", "0"]),
    "park_big_0.04_r4_clean50": ("park_big, 0.04 deg grid, 4 renders, half of the renderings ideal",
                                 ["--model", "park_big", "--grid-step", "0.04", "--renders", "4",
                                  "--clean-fraction", "0.5", "--lr", "1e-4"]),
    "park_big_0.04_r4_clean50_lr1e-3": ("as above, Adam lr 1e-3",
                                        ["--model", "park_big", "--grid-step", "0.04", "--renders", "4",
                                         "--clean-fraction", "0.5", "--lr", "1e-3"]),
    "park_big_0.04_r4_clean50_lr1e-3_real50": ("as above, half of each batch perturbed real crystals",
                                               ["--model", "park_big", "--grid-step", "0.04", "--renders", "4",
                                                "--clean-fraction", "0.5", "--lr", "1e-3", "--real-fraction", "0.5"]),
}


def run(cmd: list[str]) -> str:
    print("+", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return done.stdout


def set_priors(validation_dir: str, names: list[str], results: dict) -> dict[str, dict[str, float]]:
    """Top-1/top-5 of the frequency prior (shipped statistics over the classes) on each validation set."""
    import numpy as np

    from synthxrd.evaluate import metrics, prior_probabilities
    from synthxrd.stats import Statistics
    from synthxrd.validation import load_validation_sets

    classes = Statistics.load(None).represented(50)
    prior = prior_probabilities(classes)
    out = {}
    for name, ds in load_validation_sets(validation_dir, names).items():
        labels = np.asarray(ds.crystals.spacegroups)
        labels = labels[np.isin(labels, classes)]
        m = metrics(np.broadcast_to(prior, (len(labels), 230)), labels)
        out[name] = {"top1": m["top1"], "top5": m["top5"], "n": len(labels)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--hours", type=float, default=0.25)
    ap.add_argument("--validation-dir", required=True)
    ap.add_argument("--val-sets", default="random,match,match_random_coords,match_random_lattice")
    ap.add_argument("--val-max-patterns", type=int, default=1000)
    ap.add_argument("--val-every", type=int, default=300)
    ap.add_argument("--real", help="real crystal set for the configurations that mix real crystals")
    ap.add_argument("--rruff", required=True, help="rruff_dev300.npz (measured patterns, evaluation only)")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sets = args.val_sets.split(",")
    results = {}
    for name in args.configs.split(","):
        description, options = CONFIGS[name]
        if "--real-fraction" in options:
            if not args.real:
                print(f"skipping {name}: needs --real")
                continue
            options = [*options, "--real", args.real]
        run_dir = args.out / name
        if not (run_dir / "summary.json").is_file():
            run(["synthxrd", "train", "--augment", "default", "--out", str(run_dir), "--max-hours", str(args.hours),
                 "--max-steps", "1000000", "--validation-dir", args.validation_dir, "--no-progress",
                 "--set", f"val_sets={json.dumps(sets)}", "--set", f"val_max_patterns={args.val_max_patterns}",
                 "--set", f"val_every={args.val_every}", "--set", "checkpoint_every=500", *options])
        summary = json.loads((run_dir / "summary.json").read_text())
        hist = summary["history"]
        seen = summary["step"] * 145
        rate = sum(h["patterns_per_s"] for h in hist[len(hist) // 5:]) / max(1, len(hist) - len(hist) // 5)
        wall = seen / (3600.0 * args.hours)  # validations and checkpoints included
        ev_dir = args.out / f"{name}_rruff"
        if not (ev_dir / "evaluation.json").is_file():
            run(["synthxrd", "evaluate", "--patterns", args.rruff, "--model", str(run_dir), "--no-library",
                 "--out", str(ev_dir), "--overwrite"])
        ev = json.loads((ev_dir / "evaluation.json").read_text())["summary"]["all"]
        results[name] = {"description": description, "options": options, "steps": summary["step"],
                         "patterns_seen": seen, "patterns_per_s": rate,
                         "patterns_per_wall_s": wall, "best": summary["best"],
                         "validation_last": summary["validation"], "calibration": summary.get("calibration"),
                         "rruff": {k: ev["model"][k] for k in ("top1", "top5", "crystal_system")},
                         "rruff_prior": {k: ev["baseline"][k] for k in ("top1", "top5", "crystal_system")}}
    priors = set_priors(args.validation_dir, [s for s in sets if s != "random"], results)
    (args.out / "comparison.json").write_text(json.dumps({"runs": results, "priors": priors}, indent=1))
    head = "| configuration | patterns/s (training / wall) | patterns seen | " + " | ".join(f"{s} top-1/top-5" for s in sets) + \
           " | rruff_dev top-1/top-5/CS |"
    print(head)
    print("|" + "---|" * (4 + len(sets)))
    print("| frequency prior | | | " + " | ".join(f"{priors[s]['top1']:.3f} / {priors[s]['top5']:.3f}" if s in priors
                                               else "-" for s in sets) + " | |")
    for name, r in results.items():
        cells = [f"{r['validation_last'][s]['top1']:.3f} / {r['validation_last'][s]['top5']:.3f}"
                 if s in r["validation_last"] else "-" for s in sets]
        rr, pr = r["rruff"], r["rruff_prior"]
        print(f"| {name} | {r['patterns_per_s']:.0f} / {r['patterns_per_wall_s']:.0f} | {r['patterns_seen']:,} | " + " | ".join(cells)
              + f" | {rr['top1']:.3f} / {rr['top5']:.3f} / {rr['crystal_system']:.3f} "
                f"(prior {pr['top1']:.3f} / {pr['top5']:.3f} / {pr['crystal_system']:.3f}) |")


if __name__ == "__main__":
    main()
