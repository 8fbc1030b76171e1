"""The report: ``evaluation.json`` and the confusion and reliability figures (:func:`write_report`)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from synthxrd.errors import ConfigError
from synthxrd.evaluate.evaluation import Evaluation
from synthxrd.symmetry import CRYSTAL_SYSTEMS
from synthxrd.wyckoff import hermann_mauguin

__all__ = ["OUTPUT_FILES", "write_report", "plot_confusion", "plot_reliability"]

#: The files :func:`write_report` writes.
OUTPUT_FILES = ("evaluation.json", "confusion_crystal_system.png", "confusion_spacegroups.png", "reliability.png")


def write_report(evaluation: Evaluation, out: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write ``evaluation.json`` and the three PNGs into ``out`` (atomically; refuses to replace files
    without ``overwrite``). Returns the paths written."""
    from synthxrd.files import atomic_write, check_new, write_json

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a directory")
    targets = [out / name for name in OUTPUT_FILES]
    check_new(targets, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)
    payload = evaluation.to_dict()
    from synthxrd import __version__

    payload["synthxrd_version"] = __version__
    title = evaluation.description
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # matplotlib font/layout notes are not the user's concern
        atomic_write(targets[1], lambda tmp: plot_confusion(
            tmp, np.asarray(payload["confusion_crystal_system"]["matrix"]), list(CRYSTAL_SYSTEMS),
            list(CRYSTAL_SYSTEMS), title=f"crystal system — {title}"))
        chosen = payload["confusion_spacegroups"]["labels"]
        names = [f"{g} {hermann_mauguin(g)}" for g in chosen]
        atomic_write(targets[2], lambda tmp: plot_confusion(
            tmp, np.asarray(payload["confusion_spacegroups"]["matrix"]).reshape(len(chosen), len(chosen) + 1),
            names, [*names, "other"], title=f"space group (top-1), most frequent — {title}"))
        atomic_write(targets[3], lambda tmp: plot_reliability(tmp, payload["reliability"], title=title))
    write_json(targets[0], payload)
    return targets


def plot_confusion(path: str | Path, matrix: np.ndarray, row_labels: list[str], col_labels: list[str], *,
                   title: str = "", dpi: int = 110) -> Path:
    """PNG heat map of a count matrix (rows true, columns predicted), each row normalised, counts printed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    m = np.asarray(matrix, np.float64)
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    size = 2.5 + 0.38 * max(len(col_labels), 4)
    fig = Figure(figsize=(size + 1.5, 0.8 * size), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    fig.colorbar(image, ax=ax, label="fraction of the row")
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(row_labels)), row_labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), v in np.ndenumerate(m):
        if v:
            ax.text(j, i, str(int(v)), ha="center", va="center", fontsize=6,
                    color="white" if frac[i, j] > 0.6 else "black")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    return path


def plot_reliability(path: str | Path, reliability: dict[str, Any], *, title: str = "", dpi: int = 110) -> Path:
    """PNG reliability diagram: accuracy vs confidence per bin (bars), the diagonal, counts, and the ECE
    (with, where ``reliability`` has it, the ECE calibrated probabilities would show, ``ece_floor``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    bins = reliability["bins"]
    fig = Figure(figsize=(6.0, 6.5), dpi=dpi)
    FigureCanvasAgg(fig)
    ax, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    lower = np.array([b["lower"] for b in bins])
    width = np.array([b["upper"] - b["lower"] for b in bins])
    acc = np.array([b["accuracy"] if b["accuracy"] is not None else 0.0 for b in bins])
    conf = np.array([b["confidence"] if b["confidence"] is not None else np.nan for b in bins])
    counts = np.array([b["count"] for b in bins])
    ax.bar(lower, acc, width=width, align="edge", color="tab:blue", edgecolor="white", label="accuracy")
    ax.plot([0, 1], [0, 1], color="gray", ls="--", lw=1, label="perfect calibration")
    ax.plot(lower + width / 2, conf, "o", color="tab:red", ms=3, label="mean confidence")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("top-1 accuracy")
    ece, floor = reliability.get("ece"), reliability.get("ece_floor")
    ax.set_title((f"ECE ({len(bins)} bins) = {ece:.3f}" if ece is not None else "no patterns")
                 + (f" (calibrated probabilities: {floor['mean']:.3f}, 95 % <= {floor['q95']:.3f})" if floor else "")
                 + (f"\n{title}" if title else ""), fontsize=8)
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    ax2.bar(lower, counts, width=width, align="edge", color="tab:gray", edgecolor="white")
    ax2.set_xlabel("top-1 confidence")
    ax2.set_ylabel("patterns")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    return path
