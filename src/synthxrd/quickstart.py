"""The whole method end to end on the shipped data in about a minute on 2 cores (``synthxrd quickstart``).

:func:`run_quickstart` chains the library's stages, each with its own module doing the work:

1. **generate** ``n_crystals`` synthetic crystals from the shipped space-group statistics
   (:class:`synthxrd.generate.Generator`) and write the first ``n_cif`` as CIF files;
2. **simulate** their patterns twice: ideal (Gaussian-Scherrer, :func:`synthxrd.simulate.patterns`) and
   like a laboratory measurement (:func:`synthxrd.augment.augmented_patterns` with the ``default``
   realism the networks are trained with), and plot ``n_plot`` of them side by side;
3. **predict** the space groups of the 17 measured patterns shipped with the package
   (``resources/measured``, XRED, see its ``SOURCE.md``): search-match against the shipped reference
   library fused with the pretrained model (:class:`synthxrd.predict.Predictor`), and
4. **evaluate** those predictions next to the frequency-prior baseline (:mod:`synthxrd.evaluate`:
   metrics, confusion matrices, reliability diagram).

Outputs in ``out`` (a new or empty folder, or any folder with ``overwrite``)::

    crystals/NNN_sgXXX.cif     the first n_cif generated crystals
    ideal.h5, realistic.h5     all crystals with their ideal / realistic patterns (N, 8501) and labels
                               (:mod:`synthxrd.dataset` files; usable with ``synthxrd evaluate --dataset``)
    patterns.png               ideal vs realistic patterns of n_plot crystals
    predictions.csv            per measured pattern: true group, top-5 with probabilities, hits
    evaluation/                evaluation.json and the PNG figures of synthxrd.evaluate.write_report
    run.json                   config, seed, package and statistics versions, model metadata, timings

Randomness: one :class:`numpy.random.SeedSequence` of ``seed``, spawned into independent streams for
generation, ideal and realistic patterns, so a run is reproducible from its ``run.json``.
"""

from __future__ import annotations

import csv
import io
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthxrd.errors import ConfigError
from synthxrd.io.manifest import measured_manifest

__all__ = ["QuickstartConfig", "run_quickstart", "measured_manifest", "format_predictions"]

#: Crystals generated and simulated per step of the progress bar.
CHUNK = 50
#: Names of the CIF files written (``NNN_sgXXX.cif``); those of an earlier run are replaced with ``overwrite``.
CIF_GLOB = "[0-9][0-9][0-9]_sg[0-9][0-9][0-9].cif"


@dataclass(frozen=True)
class QuickstartConfig:
    """What :func:`run_quickstart` does; the defaults take about a minute on 2 cores."""

    out: str = "synthxrd-quickstart"  # output folder
    n_crystals: int = 300  # synthetic crystals to generate and simulate
    seed: int = 0  # of every random draw
    n_cif: int = 5  # of them written as CIF files
    n_plot: int = 6  # of them plotted, ideal vs realistic
    augment: str = "default"  # realism of the "realistic" patterns: synthxrd.augment.augment_config spec
    model: str | None = None  # checkpoint or training run folder; None: the model shipped with the package
    library: bool = True  # fuse search-match against the shipped reference library (False: network alone)
    overwrite: bool = False  # write into a non-empty folder, replacing files of the same names

    def __post_init__(self) -> None:
        for name, low in (("n_crystals", 1), ("n_cif", 0), ("n_plot", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"quickstart: {name} must be an integer >= {low}, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"quickstart: seed must be an integer >= 0, got {self.seed!r}")


def _check_out(out: Path, overwrite: bool) -> None:
    from synthxrd.files import check_new

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        check_new([out], overwrite=overwrite)


def _plot_patterns(path: Path, two_theta: np.ndarray, ideal: np.ndarray, realistic: np.ndarray,
                   titles: list[str]) -> Path:
    """PNG grid: per crystal its ideal pattern and, offset above it, the realistic one."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(titles)
    cols = 2 if n > 1 else 1
    rows = -(-n // cols)
    fig = Figure(figsize=(6.0 * cols, 2.6 * rows), dpi=100)
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax, y0, y1, title in zip(axes, ideal, realistic, titles):
        ax.plot(two_theta, y0, color="tab:blue", lw=0.8, label="ideal")
        ax.plot(two_theta, 1.1 + y1, color="tab:orange", lw=0.6, label="realistic (+1.1)")
        ax.set_xlim(float(two_theta[0]), float(two_theta[-1]))
        ax.set_ylim(0.0, 2.2)
        ax.set_yticks([])
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("2θ (°), Cu Kα1", fontsize=8)
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].legend(loc="upper right", fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _prediction_rows(evaluation, entries) -> list[dict[str, Any]]:
    from synthxrd.wyckoff import hermann_mauguin

    file_of = {e.sample_id: e.path.name for e in entries}
    rows = []
    for p in evaluation.predictions(5):
        top = [(int(g), float(q)) for g, q in p["top"]]
        sg = p["spacegroup"]
        rows.append({"file": file_of.get(p["source"], p["source"]), "sample": p["source"], "spacegroup": sg,
                     "symbol": hermann_mauguin(sg), "known": p["known"], "p_true": p["p_true"], "top5": top,
                     "top1_hit": top[0][0] == sg, "top5_hit": any(g == sg for g, _ in top),
                     "best_match": (p.get("matches") or [None])[0]})
    return rows


def _write_predictions_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    from synthxrd.files import write_text

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "sample", "spacegroup", "symbol", "in_model_classes", "p_true",
                     *[f"top{i}" for i in range(1, 6)], *[f"p{i}" for i in range(1, 6)], "top1_hit", "top5_hit",
                     "match_id", "match_formula", "match_spacegroup", "match_score"])
    for r in rows:
        groups = [g for g, _ in r["top5"]] + [""] * (5 - len(r["top5"]))
        probs = [f"{q:.4f}" for _, q in r["top5"]] + [""] * (5 - len(r["top5"]))
        m = r.get("best_match") or {}
        writer.writerow([r["file"], r["sample"], r["spacegroup"], r["symbol"], int(r["known"]), f"{r['p_true']:.4f}",
                         *groups, *probs, int(r["top1_hit"]), int(r["top5_hit"]), m.get("id", ""),
                         m.get("formula", ""), m.get("spacegroup", ""),
                         f"{m['score']:.3f}" if m else ""])
    return write_text(path, buffer.getvalue())


def format_predictions(rows: list[dict[str, Any]]) -> str:
    """The prediction table: file, true group, top-5 groups with probabilities, top-1 / top-5 hit.

    A true group that is not one of the model's classes is marked ``*`` (it cannot be predicted).
    """
    matched = any(r.get("best_match") for r in rows)
    lines = [f"{'file':16s} {'true SG':14s} {'top-5 (probability)':64s} top-1 top-5"
             + ("  best match (score) mineral" if matched else "")]
    for r in rows:
        true = f"{r['spacegroup']:3d} {r['symbol']}" + ("" if r["known"] else " *")
        top = "  ".join(f"{g:3d} ({q:.2f})" for g, q in r["top5"])
        m = r.get("best_match")
        # an isotype that the refinement added has no search score: its fit stands instead
        score = f"Rwp {m['rwp']:.2f}" if m and not m["score"] and m.get("rwp") is not None else \
            f"{m['score']:.2f}" if m else ""
        match = f"  {m['id']} {m['formula']} {m['spacegroup']} ({score}) {m.get('mineral', '')}" if m else ""
        lines.append(f"{r['file']:16s} {true:14s} {top:64s} {'yes' if r['top1_hit'] else 'no':>5s} "
                     f"{'yes' if r['top5_hit'] else 'no':>5s}{match}".rstrip())
    return "\n".join(lines)


def run_quickstart(config: QuickstartConfig = QuickstartConfig(), *, progress: bool = True) -> dict[str, Any]:
    """Run the four steps of the module docstring into ``config.out`` and return a summary.

    Nothing is written before the output folder is checked and the model is loaded (a missing model
    or a non-empty folder without ``overwrite`` raises at once). Progress bars go to stderr.

    Returns
    -------
    dict with ``out``, ``files`` (what was written, by kind), ``n_crystals``, ``spacegroups``
    (ITA number -> count of the generated crystals), ``predictions`` (rows as in
    :func:`format_predictions`), ``evaluation`` (:meth:`synthxrd.evaluate.Evaluation.summary`),
    ``model`` (source, checkpoint, name, step, n_classes), ``measured`` (manifest path) and ``timings_s``.

    Raises
    ------
    ConfigError
        Output folder not empty without ``overwrite``, or not a folder; invalid ``augment``.
    DataError
        No model (none shipped and none given), unreadable checkpoint.
    """
    from tqdm import tqdm

    from synthxrd import __version__, simulate
    from synthxrd.augment import augment_config
    from synthxrd.augment import augmented_patterns as realistic_patterns
    from synthxrd.dataset import Dataset, save_dataset
    from synthxrd.evaluate import evaluate_manifest, read_manifest, write_report
    from synthxrd.files import atomic_write, write_json
    from synthxrd.generate import Generator
    from synthxrd.predict import Predictor
    from synthxrd.stats import Statistics
    from synthxrd.structure import CrystalBatch, reduced_formula, write_cif
    from synthxrd.wyckoff import hermann_mauguin

    timings: dict[str, float] = {}
    t0 = start = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        timings[name] = round(now - t0, 2)
        t0 = now

    def say(message: str) -> None:
        if progress:
            tqdm.write(message, file=sys.stderr)

    out = Path(config.out)
    _check_out(out, config.overwrite)
    realism = augment_config(config.augment)
    manifest = measured_manifest()
    say(f"loading the model ({config.model or 'shipped with synthxrd'})")
    predictor = Predictor.load(config.model, device="cpu", library="default" if config.library else None)
    lap("load_model")

    # 1 + 2: crystals and their patterns, chunk by chunk
    statistics = Statistics.load()
    generator = Generator(statistics)
    rng_generate, rng_ideal, rng_realistic = (np.random.default_rng(s)
                                              for s in np.random.SeedSequence(config.seed).spawn(3))
    chunks, ideal, realistic = [], [], []
    with tqdm(total=config.n_crystals, desc="generate + simulate", unit="crystal", file=sys.stderr,
              disable=not progress, dynamic_ncols=True) as bar:
        for first in range(0, config.n_crystals, CHUNK):
            chunk = generator.sample_batch(min(CHUNK, config.n_crystals - first), rng_generate)
            chunks.append(chunk)
            ideal.append(simulate.patterns(chunk, rng=rng_ideal))
            realistic.append(realistic_patterns(chunk, realism, rng_realistic))
            bar.update(len(chunk))
    batch = CrystalBatch.concatenate(chunks)
    ideal_all, realistic_all = np.concatenate(ideal), np.concatenate(realistic)
    two_theta = simulate.Grid().values()
    lap("generate_simulate")

    say(f"writing CIFs, datasets and the figure into {out}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "crystals").mkdir(exist_ok=True)
    for old in (out / "crystals").glob(CIF_GLOB):  # of an earlier run (overwrite): only the new ones stay
        old.unlink()
    labels = batch.spacegroups
    cifs = [write_cif(out / "crystals" / f"{i:03d}_sg{int(labels[i]):03d}.cif", batch[i])
            for i in range(min(config.n_cif, len(batch)))]
    statistics_info = {"version": statistics.version, "source": statistics.source,
                       "n_structures": statistics.n_structures}
    datasets = {}
    for kind, values in (("ideal", ideal_all), ("realistic", realistic_all)):
        datasets[kind] = save_dataset(out / f"{kind}.h5", Dataset(batch, values, two_theta, {
            "command": "synthxrd quickstart", "synthxrd_version": __version__, "seed": config.seed,
            "patterns": kind if kind == "ideal" else f"realistic (augment {config.augment})",
            "statistics": statistics_info}))
    n_plot = min(config.n_plot, len(batch))
    figure = None
    if n_plot:
        titles = [f"#{i}  {reduced_formula(batch[i])}  SG {int(labels[i])} {hermann_mauguin(int(labels[i]))}"
                  for i in range(n_plot)]
        figure = atomic_write(out / "patterns.png", lambda tmp: _plot_patterns(
            tmp, two_theta, ideal_all[:n_plot], realistic_all[:n_plot], titles))
    lap("write_crystals_patterns")

    # 3 + 4: the measured patterns
    evaluation = evaluate_manifest(predictor, manifest, progress=progress)
    rows = _prediction_rows(evaluation, read_manifest(manifest))
    predictions_csv = _write_predictions_csv(out / "predictions.csv", rows)
    say(f"writing the evaluation report into {out / 'evaluation'}")
    report = write_report(evaluation, out / "evaluation", overwrite=config.overwrite)
    lap("predict_evaluate")

    meta = predictor.metadata
    model = {"source": predictor.source, "checkpoint": meta.get("checkpoint"),
             "name": (meta.get("model_config") or {}).get("name"), "step": meta.get("step"),
             "n_classes": len(predictor.classes)}
    groups, counts = np.unique(labels, return_counts=True)
    files_written = {"cif": [str(p) for p in cifs], **{kind: str(p) for kind, p in datasets.items()},
                     "figure": str(figure) if figure else None,
                     "predictions": str(predictions_csv), "evaluation": [str(p) for p in report],
                     "run": str(out / "run.json")}
    timings["total"] = round(time.perf_counter() - start, 2)
    summary = {"out": str(out), "files": files_written, "n_crystals": len(batch),
               "spacegroups": {int(g): int(c) for g, c in zip(groups, counts)},
               "predictions": rows, "evaluation": evaluation.summary(), "model": model,
               "measured": str(manifest), "timings_s": timings}
    write_json(out / "run.json", {
        "command": "synthxrd quickstart", "synthxrd_version": __version__, "seed": config.seed,
        "config": asdict(config), "augment": asdict(realism) if realism is not None else None,
        "statistics": statistics_info, "measured_manifest": str(manifest),
        "model": {**model, "metadata": meta}, "files": files_written,
        "spacegroups": summary["spacegroups"], "timings_s": timings,
    })
    return summary
