"""Learning curve of a training run: every snapshot of ``<run>/snapshots`` scored on the development sets.

Each weights-only snapshot (``synthxrd train --set snapshot_every=N``) is evaluated, network alone,
on the ``match`` validation set (real crystals of unseen structure types), the 300 RRUFF minerals
of rruff_dev and the raw XRED patterns, next to the frequency prior. Results are cached in
``<run>/curve.json`` (a snapshot is scored once, so the script can be rerun as the run grows, with
``nice`` beside a training) and drawn against patterns seen::

    nice -n 10 python scripts/learning_curve.py runs/run1 \
        --validation-dir validation --plot docs/learning_curve.png

Never train on rruff_dev or XRED: they measure and choose, nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "experimental"
METRICS = ("top1", "top5", "crystal_system", "extinction_group")


def _scores(evaluation) -> dict:
    summary = evaluation.summary()["all"]
    return {"n": len(evaluation.labels), **{k: summary["model"][k] for k in METRICS},
            "prior": {k: summary["baseline"][k] for k in METRICS}}


def score(snapshot: Path, args) -> dict:
    """Network-alone metrics of one snapshot on each development set."""
    from synthxrd.evaluate import evaluate_manifest, evaluate_patterns, evaluate_validation_set
    from synthxrd.predict import Predictor

    predictor = Predictor.load(snapshot, device="cpu", library=None)
    out = {"match": _scores(evaluate_validation_set(predictor, args.validation_dir, "match",
                                                    max_patterns=args.match_patterns))}
    out["rruff_dev"] = _scores(evaluate_patterns(predictor, args.rruff))
    out["xred"] = _scores(evaluate_manifest(predictor, args.xred, variant="raw"))
    return out


def project(curve: list[dict], name: str, metric: str, target: float) -> float | None:
    """Patterns seen at which ``metric`` on set ``name`` would reach ``target`` if it keeps rising as
    it did: a least-squares line acc = a + b log10(patterns seen) through the second half of the
    curve (past the warm-up). None when the curve does not rise there; a rough guide, not a promise
    (accuracy saturates, and a cosine schedule bends the curve at its end)."""
    import numpy as np

    rows = curve[len(curve) // 2:]
    if len(rows) < 2:
        return None
    x = np.log10([r["patterns_seen"] for r in rows])
    y = np.array([r["sets"][name][metric] for r in rows])
    b, a = np.polyfit(x, y, 1)
    if b <= 0:
        return None
    return float(10 ** ((target - a) / b))


def plot(curve: list[dict], path: Path) -> None:
    """Top-1 and crystal-system accuracy against patterns seen (millions), the priors dotted; where
    the points carry their ``run`` (a campaign, ``scripts/ship_model.py``), a grey line marks where
    each run took over from the one before."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = ("match", "rruff_dev", "xred")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    seen = [row["patterns_seen"] / 1e6 for row in curve]
    for ax, metric in zip(axes, ("top1", "crystal_system")):
        for i, name in enumerate(sets):
            color = f"C{i}"
            ax.plot(seen, [row["sets"][name][metric] for row in curve], "o-", color=color, label=name)
            ax.axhline(curve[-1]["sets"][name]["prior"][metric], color=color, ls=":", lw=1)
        for before, row in zip(curve, curve[1:]):
            if row.get("run") != before.get("run"):
                ax.axvline(before["patterns_seen"] / 1e6, color="0.6", ls="--", lw=0.8)
                ax.text(before["patterns_seen"] / 1e6, 0.02, f" {row['run']}", color="0.4", fontsize=8,
                        rotation=90, ha="right", va="bottom", transform=ax.get_xaxis_transform())
        ax.set_xlabel("patterns seen (millions)")
        ax.set_ylabel(f"{metric.replace('_', ' ')} accuracy (dotted: frequency prior)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--validation-dir", required=True)
    parser.add_argument("--rruff", type=Path, default=DATA / "rruff_dev" / "rruff_dev300.npz")
    parser.add_argument("--xred", type=Path, default=DATA / "manifest.csv")
    parser.add_argument("--match-patterns", type=int, default=2000, help="fixed subsample of match (0: all)")
    parser.add_argument("--every", type=int, default=1, metavar="N",
                        help="score only the snapshots whose step is a multiple of N (default: all)")
    parser.add_argument("--plot", type=Path, help="draw the curve to this PNG")
    parser.add_argument("--target", nargs=3, action="append", default=[], metavar=("SET", "METRIC", "VALUE"),
                        help="print the patterns seen the curve projects for METRIC >= VALUE on SET "
                             "(e.g. --target rruff_dev top1 0.30)")
    args = parser.parse_args(argv)

    from synthxrd.files import write_json
    from synthxrd.models.checkpoint import load_checkpoint

    path = args.run / "curve.json"
    curve = json.loads(path.read_text()) if path.is_file() else []
    done = {row["snapshot"] for row in curve}
    for snapshot in sorted((args.run / "snapshots").glob("step_*.pt")):
        if snapshot.name in done or int(snapshot.stem.split("_")[-1]) % args.every:
            continue
        meta = load_checkpoint(snapshot)
        row = {"snapshot": snapshot.name, "step": meta["step"],
               "patterns_seen": meta["step"] * meta["config"]["batch_size"], "sets": score(snapshot, args)}
        curve.append(row)
        curve.sort(key=lambda r: r["step"])
        write_json(path, curve)
        print(f"step {row['step']:>6}: " + ", ".join(
            f"{k} top1 {v['top1']:.3f} (prior {v['prior']['top1']:.3f}) cs {v['crystal_system']:.3f}"
            for k, v in row["sets"].items()), flush=True)
    if args.plot and curve:
        plot(curve, args.plot)
    for name, metric, value in args.target:
        seen = project(curve, name, metric, float(value))
        print(f"{name} {metric} >= {value}: " + (f"about {seen:.3g} patterns seen (now {curve[-1]['patterns_seen']:.3g})"
                                               if seen else "the curve does not rise; no projection"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
