"""The model card of the shipped model: a training campaign's runs, learning curve and projection.

Training side (it reads run folders; :mod:`synthxrd.predict` only reads the card it writes). The
arithmetic lives here; ``scripts/ship_model.py`` and ``scripts/learning_curve.py`` only parse their
options and call :func:`ship` and :func:`update_curve`.

* :func:`update_curve` scores every snapshot of a run (network alone, next to the frequency prior) on
  the development sets, cached in ``<run>/curve.json``; :func:`plot_curve` draws it;
* :func:`project` reads off the patterns seen at which a metric would reach a target (a line in log10
  patterns seen), :func:`projection` does it for the card's :data:`TARGETS`;
* :func:`lineage` follows ``init_weights`` back run by run, so that a run started from the shipped
  weights continues the shipped model's campaign (its runs, hours and learning curve add up);
* :func:`ship` exports a run as the package's model, evaluates it and writes the card's data and
  figures;
* :func:`figures_markdown` measures the shipped model (fused, search alone, network alone, prior) on
  the measured patterns at hand and writes the card's block of figures, which a test recomputes.

rruff_dev and XRED choose and measure; they are never trained on. tensorboard, torch and matplotlib
are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from pathlib import Path

from synthxrd.errors import ConfigError

__all__ = ["METRICS", "CURVE_METRICS", "TARGETS", "wall_hours", "run_config", "lineage", "ledger_row",
           "card_metrics", "evaluation_commands", "project", "projection", "plot_curve", "score_snapshot",
           "update_curve", "ship", "FIGURES_BEGIN", "FIGURES_END", "figure_sets", "figure_row", "figures_markdown",
           "card_figures"]

#: The metrics of the card, per evaluation.
METRICS = ("top1", "top5", "crystal_system", "extinction_group", "ece")
#: The metrics of a learning-curve point.
CURVE_METRICS = ("top1", "top5", "crystal_system", "extinction_group")
#: The network-alone targets whose projection the card states: (set, metric, value).
TARGETS = (("match", "top1", 0.40), ("rruff_dev", "top1", 0.30), ("rruff_dev", "crystal_system", 0.60))
#: A gap between two logged training steps longer than this (seconds) is a pause, not training time.
PAUSE_S = 600.0


def wall_hours(run: Path, gap_s: float = PAUSE_S) -> float:
    """Training wall time from the event files: sum of gaps between logged steps shorter than ``gap_s``
    (a pause between a stop and its --resume is not counted)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    times = sorted(e.wall_time for e in acc.Scalars("train/loss"))
    return sum(b - a for a, b in zip(times, times[1:]) if b - a < gap_s) / 3600.0


def run_config(run: Path) -> dict:
    """The resolved configuration of a run folder (its ``config.toml``)."""
    import tomllib

    return tomllib.loads((Path(run) / "config.toml").read_text())


def lineage(run: Path, card_runs: set[str]) -> tuple[list[Path], bool]:
    """The run folders whose weights ``run`` continues, oldest first, ending with ``run``, and
    whether the chain continues the shipped card's campaign.

    ``init_weights`` is followed back through checkpoints inside run folders (a folder with a
    ``config.toml``); the chain stops at a run without ``init_weights`` (a fresh campaign), at an
    exported model (the shipped one: its card's campaign) or at a run already on the card."""
    chain = [Path(run)]
    while True:
        source = run_config(chain[0]).get("init_weights")
        if not source:
            return chain, False
        parent = Path(source).parent
        if parent.name in card_runs or not (parent / "config.toml").is_file():
            return chain, True
        chain.insert(0, parent)


def without_run(rows: Sequence[dict], name: str) -> list[dict]:
    """The card's ledger or learning-curve ``rows`` without those of the run ``name``."""
    return [row for row in rows if row.get("run") != name]


def ledger_row(run: Path, hardware: str) -> dict:
    """One run of the campaign: its last step, patterns seen, wall hours and starting weights."""
    from synthxrd.models.checkpoint import load_checkpoint

    config = run_config(run)
    steps = int(load_checkpoint(Path(run) / "checkpoint.pt")["step"])
    source = config.get("init_weights")
    return {"run": Path(run).name, "steps": steps, "patterns_seen": steps * config["batch_size"],
            "wall_hours": round(wall_hours(run), 3),
            "init_weights": f"{Path(source).parent.name}/{Path(source).name}" if source else None, "hardware": hardware}


def card_metrics(evaluation: Path) -> dict:
    """The card's metrics of one ``synthxrd evaluate`` output: the answer ("model": fused when a library
    was used), the prior and, with a library, the network and the search alone."""
    doc = json.loads((Path(evaluation) / "evaluation.json").read_text())
    part = doc["summary"]["all"]
    names = {"model": "model", "prior": "baseline", "network": "network", "search": "search"}
    return {"n": doc["summary"]["n_patterns"],
            **{who: {k: round(part[key][k], 4) for k in METRICS} for who, key in names.items() if key in part}}


def evaluation_commands(model: Path, *, validation_dir: str | Path, manifest: Path, rruff: Path, eval_out: Path,
                        overwrite: bool = False) -> dict[str, list[str]]:
    """The ``synthxrd evaluate`` commands of the card, by output folder.

    Network alone (``--no-library``) on the full ``match`` set, the XRED patterns of ``manifest`` and
    the rruff_dev patterns; fused with the shipped library on rruff_dev and XRED, and on a fixed
    2,000-pattern subsample of ``match`` with the test part of the split held out of the library."""
    net, val = ["--no-library"], ["--validation-dir", str(validation_dir), "--set", "match"]
    measured, patterns = ["--manifest", str(manifest)], ["--patterns", str(rruff)]
    runs = {"match": val + net, "measured": measured + net, "rruff_dev": patterns + net,
            "fused_rruff_dev": patterns, "fused_measured": measured,
            "fused_match": val + ["--hold-out-test", "--max-patterns", "2000"]}
    flag = ["--overwrite"] if overwrite else []
    return {name: ["evaluate", "--model", str(model), *extra, "--device", "cpu", "--out", str(Path(eval_out) / name), *flag]
            for name, extra in runs.items()}


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


def projection(curve: list[dict], campaign: list[dict], first_run: str) -> dict:
    """What the campaign's learning curve projects for the network-alone targets of :data:`TARGETS`.

    The points from ``first_run`` on (the runs of the shipped configuration), against the patterns
    seen by the whole campaign, go to :func:`project`; the hours assume the last run's patterns per
    hour on this hardware. A ``first_run`` that is not on the curve is a :class:`ConfigError`."""
    runs = [point["run"] for point in curve]
    if first_run not in runs:
        raise ConfigError(f"--project-from {first_run}: the learning curve has the runs {', '.join(dict.fromkeys(runs))}")
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


def plot_curve(curve: list[dict], path: Path) -> None:
    """Top-1 and crystal-system accuracy against patterns seen (millions), the priors dotted; where
    the points carry their ``run`` (a campaign, :func:`ship`), a grey line marks where each run took
    over from the one before."""
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
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _curve_scores(evaluation) -> dict:
    summary = evaluation.summary()["all"]
    return {"n": len(evaluation.labels), **{k: summary["model"][k] for k in CURVE_METRICS},
            "prior": {k: summary["baseline"][k] for k in CURVE_METRICS}}


def score_snapshot(snapshot: Path, *, validation_dir: str | Path, rruff: Path, xred: Path,
                   match_patterns: int = 2000) -> dict:
    """Network-alone metrics of one snapshot on each development set (``match`` subsampled to
    ``match_patterns``, 0: all; the rruff_dev NPZ; the raw variant of the XRED manifest)."""
    from synthxrd.evaluate import evaluate_manifest, evaluate_patterns, evaluate_validation_set
    from synthxrd.predict import Predictor

    predictor = Predictor.load(snapshot, device="cpu", library=None)
    out = {"match": _curve_scores(evaluate_validation_set(predictor, validation_dir, "match",
                                                          max_patterns=match_patterns))}
    out["rruff_dev"] = _curve_scores(evaluate_patterns(predictor, rruff))
    out["xred"] = _curve_scores(evaluate_manifest(predictor, xred, variant="raw"))
    return out


def update_curve(run: Path, *, every: int = 1, log=print, **sets) -> list[dict]:
    """The learning curve of ``run``: each weights-only snapshot of ``<run>/snapshots`` whose step is a
    multiple of ``every``, scored once by :func:`score_snapshot` (``sets``: its keyword arguments)
    and cached in ``<run>/curve.json``, sorted by step."""
    from synthxrd.files import write_json
    from synthxrd.models.checkpoint import load_checkpoint

    path = Path(run) / "curve.json"
    curve = json.loads(path.read_text()) if path.is_file() else []
    done = {row["snapshot"] for row in curve}
    for snapshot in sorted((Path(run) / "snapshots").glob("step_*.pt")):
        if snapshot.name in done or int(snapshot.stem.split("_")[-1]) % every:
            continue
        meta = load_checkpoint(snapshot)
        row = {"snapshot": snapshot.name, "step": meta["step"],
               "patterns_seen": meta["step"] * meta["config"]["batch_size"], "sets": score_snapshot(snapshot, **sets)}
        curve.append(row)
        curve.sort(key=lambda r: r["step"])
        write_json(path, curve)
        log(f"step {row['step']:>6}: " + ", ".join(
            f"{k} top1 {v['top1']:.3f} (prior {v['prior']['top1']:.3f}) cs {v['crystal_system']:.3f}"
            for k, v in row["sets"].items()))
    return curve


def _synthxrd(args: list[str]) -> int:
    """Exit status of ``python -m synthxrd ARGS`` in this interpreter."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "synthxrd", *args], check=False).returncode


def ship(run: Path, *, models_dir: Path, docs_dir: Path, validation_dir: str, manifest: Path, rruff: Path,
         eval_out: Path, checkpoint: str = "best.pt", average: Sequence[str] = (),
         fusion_source: Sequence[str] | None = None, fusion: str | None = None, project_from: str | None = None,
         overwrite: bool = False, card_only: bool = False, log=print) -> dict:
    """Ship ``run`` as the package's pretrained model with its model card data; returns the card.

    1. ``synthxrd export`` of the run's ``checkpoint`` (or its mean with ``average``, files inside the
       run folder), float16, to ``models_dir/default.pt``, calibrated on ``calibration`` of
       ``validation_dir``, with the fusion rule fitted on ``fusion_source`` (the default library's
       structures) or the rule file ``fusion`` bound to it;
    2. ``synthxrd evaluate`` of that file (:func:`evaluation_commands`) into ``eval_out``;
    3. ``models_dir/default.json``: the card (run, training time and hardware from the TensorBoard
       events, the campaign's runs by :func:`lineage`, its learning curve, every metric next to the
       prior, and :func:`projection` from ``project_from``, default this run);
    4. ``docs_dir/model_card_training.png`` (training curves) and ``docs_dir/model_card_curve.png``
       (the campaign's learning curve).

    The commands run as ``python -m synthxrd ...`` (the library never imports the CLI). A failed
    export or evaluation is a :class:`ConfigError` naming the command. ``card_only``: steps 3 and 4
    alone, from the model already in ``models_dir`` and the evaluations already in ``eval_out`` (after
    a failure past step 2, or a rule refitted since, without an hour of exports and evaluations again).
    """
    from synthxrd.config import available_cores
    from synthxrd.plot import plot_training

    if (fusion_source is None) == (fusion is None) and not card_only:
        raise ConfigError("give exactly one of fusion_source (structures to fit the rule on) and fusion (a rule file)")
    run, models_dir, docs_dir, eval_out = Path(run), Path(models_dir), Path(docs_dir), Path(eval_out)
    model = models_dir / "default.pt"
    previous = json.loads((models_dir / "default.json").read_text()) if (models_dir / "default.json").is_file() else {}
    commands = evaluation_commands(model, validation_dir=validation_dir, manifest=manifest, rruff=rruff,
                                   eval_out=eval_out, overwrite=overwrite)
    if card_only:
        missing = [name for name in commands if not (eval_out / name / "evaluation.json").is_file()]
        if missing or not model.is_file():
            raise ConfigError(f"card only: needs {model} and the evaluations in {eval_out}; missing "
                              f"{', '.join(missing) or model.name}")
    else:
        flag = ["--overwrite"] if overwrite else []
        averaged = ["--average", *(str(run / f) for f in average)] if average else []
        rule = ["--source", *fusion_source] if fusion_source else ["--fusion", str(fusion)]
        export = ["export", str(run / checkpoint), str(model), *averaged, "--calibrate", str(validation_dir),
                  "--calibrate-set", "calibration", "--library", "default", *rule, *flag]
        for command in (export, *commands.values()):
            log("synthxrd " + " ".join(command))
            if _synthxrd(command) not in ((0,) if command is export else (0, 1)):
                raise ConfigError(f"synthxrd {' '.join(command)} failed")
    import torch

    payload = torch.load(model, weights_only=True)
    record = json.loads((run / "run.json").read_text())
    config = payload["config"]
    metrics = {name: card_metrics(eval_out / name) for name in commands}
    hardware = (f"{platform.machine()}, {available_cores()} CPU cores, device {record['device']}, "
                f"{record['workers']} data worker(s), torch {record['torch_version']}")
    # the runs whose weights this one continues (--init-weights) and, when the chain starts from the
    # shipped weights, the card's campaign before them: runs, hours and learning curves add up
    # a run shipped again (a new checkpoint, a refitted rule, --card-only) replaces its own rows
    card_runs = without_run(previous.get("campaign", []), run.name)
    chain, continues = lineage(run, {r["run"] for r in card_runs})
    campaign = [*(card_runs if continues else []), *(ledger_row(r, hardware) for r in chain)]
    campaign[-1]["steps"] = payload["step"]  # the exported checkpoint's step
    campaign[-1]["patterns_seen"] = payload["step"] * config["batch_size"]
    curve = [*(without_run(previous.get("learning_curve") or [], run.name) if continues else [])]
    offset = sum(r["patterns_seen"] for r in campaign[:len(campaign) - len(chain)])
    for r, row in zip(chain, campaign[len(campaign) - len(chain):]):
        curve_file = r / "curve.json"
        rows = json.loads(curve_file.read_text()) if curve_file.is_file() else []
        curve += [{**point, "run": r.name, "campaign_patterns_seen": point["patterns_seen"] + offset}
                  for point in rows if point["step"] <= row["steps"]]
        offset += row["patterns_seen"]
    card = {
        "model": payload["model_config"]["name"], "parameters": record["parameters"], "classes": len(payload["classes"]),
        "step": payload["step"], "patterns_seen": payload["step"] * config["batch_size"],
        "averaged": payload["export"]["source"] if average else None,
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
        "projection": projection(curve, campaign, project_from or run.name) if curve else None,
    }
    (models_dir / "default.json").write_text(json.dumps(card, indent=1) + "\n")
    plot_training(docs_dir / "model_card_training.png", {card["model"]: run})
    if curve:
        plot_curve([{**row, "patterns_seen": row["campaign_patterns_seen"]} for row in curve],
                   docs_dir / "model_card_curve.png")
    return card


# --------------------------------------------------------------------------------------------------
# the card's figures of the shipped model, regenerated


FIGURES_BEGIN = "<!-- BEGIN shipped figures: generated by synthxrd.modelcard.figures_markdown(), do not edit -->"
FIGURES_END = "<!-- END shipped figures -->"
_WHO = (("model", "fused"), ("search", "search alone"), ("network", "network alone"), ("baseline", "prior"))


def figure_sets(shared: Path | None = None) -> dict[str, tuple[str, Path]]:
    """The measured sets of the card, by name: (kind, path). The 17 patterns packaged with synthxrd
    always; with the shared data folder (:func:`synthxrd.files.shared_data_dir`) also XRED (its
    labelled manifest rows) and rruff_dev."""
    from synthxrd.io.manifest import measured_manifest

    sets = {"packaged (17)": ("manifest", measured_manifest())}
    if shared is not None:
        experimental = Path(shared) / "experimental"
        if (experimental / "manifest.csv").is_file():
            sets["XRED (42)"] = ("manifest", experimental / "manifest.csv")
        if (experimental / "rruff_dev" / "rruff_dev300.npz").is_file():
            sets["rruff_dev (300)"] = ("patterns", experimental / "rruff_dev" / "rruff_dev300.npz")
    return sets


def figure_row(name: str, summary: dict) -> str:
    """One row of the card's table: top-1 / top-5 / crystal system of the fused answer, the search and
    the network alone and the prior, and the fused ECE with, in parentheses, the ECE perfectly calibrated
    probabilities would show on as many patterns (:meth:`synthxrd.evaluate.Evaluation.summary`)."""
    part = summary["all"]
    cells = [" / ".join(f"{part[who][k]:.3f}" for k in ("top1", "top5", "crystal_system")) for who, _ in _WHO]
    model = part["model"]
    return (f"| {name} | {summary['n_patterns']} | " + " | ".join(cells)
            + f" | {model['ece']:.3f} ({model['ece_floor']['mean']:.3f}) |")


def figures_markdown(names: Sequence[str] | None = None, *, shared: Path | None = None, predictor=None) -> str:
    """The card's table of the shipped model's figures on the sets ``names`` of :func:`figure_sets`
    (default all at hand), measured now (``synthxrd evaluate`` with the defaults)."""
    import warnings

    from synthxrd.evaluate import evaluate_manifest, evaluate_patterns
    from synthxrd.predict import Predictor

    sets = figure_sets(shared)
    names = list(sets) if names is None else list(names)
    predictor = predictor or Predictor.load(device="cpu")
    head = ("| set | patterns | " + " | ".join(f"{label} top-1 / top-5 / crystal system" for _, label in _WHO)
            + " | fused ECE (if calibrated) |")
    lines = [head, "|" + "---|" * (len(_WHO) + 3)]
    for name in names:
        kind, path = sets[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unlabelled manifest rows are skipped with a warning
            ev = evaluate_manifest(predictor, path) if kind == "manifest" else evaluate_patterns(predictor, path)
        lines.append(figure_row(name, ev.summary()))
    return "\n".join(lines)


def card_figures(card: str) -> list[str]:
    """The rows of the figures block of a card's text (between :data:`FIGURES_BEGIN` and :data:`FIGURES_END`),
    without the header."""
    if FIGURES_BEGIN not in card or FIGURES_END not in card:
        raise ConfigError(f"the model card has no figures block ({FIGURES_BEGIN} ... {FIGURES_END})")
    block = card.split(FIGURES_BEGIN, 1)[1].split(FIGURES_END, 1)[0]
    return [line for line in block.strip().splitlines() if line.startswith("| ") and not line.startswith("| set |")]

