"""Figures of simulated patterns (PNG via matplotlib's Agg canvas).

matplotlib is imported inside the functions, and no ``pyplot`` state or global backend is touched: a
:class:`matplotlib.figure.Figure` is drawn on its own Agg canvas, so this works headless and never
changes the backend of an interactive session that imports synthxrd.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from synthxrd.refine import Refinement
    from synthxrd.simulate.pattern import PeakList

__all__ = ["hkl_label", "plot_pattern", "plot_refinement", "phase_curves", "plot_mixture"]


def hkl_label(hkl) -> str:
    """Miller indices as mathtext, negative indices with an overbar: ``(1 -1 0)`` -> ``(1$\\bar{1}$0)``.

    Indices of more than one digit are separated by spaces so that ``(1 10 0)`` stays readable.
    """
    idx = [int(i) for i in hkl]
    sep = " " if any(abs(i) > 9 for i in idx) else ""
    parts = [rf"$\bar{{{-i}}}$" if i < 0 else str(i) for i in idx]
    return "(" + sep.join(parts) + ")"


def plot_pattern(
    path: str | Path,
    two_theta: np.ndarray,
    intensity: np.ndarray,
    peaks: PeakList,
    *,
    title: str = "",
    wavelength: float | None = None,
    n_labels: int = 5,
    dpi: int = 120,
) -> Path:
    """Write a PNG of a broadened pattern with the peak list as sticks.

    Parameters
    ----------
    path : output file; always written as PNG whatever its suffix (so a temporary name works).
    two_theta, intensity : (n,) grid in degrees 2theta and the pattern on it (maximum 1).
    peaks : :class:`~synthxrd.simulate.pattern.PeakList`; its ``n_labels`` strongest peaks are labelled
        with their hkl.
    title : figure title (e.g. formula and space group).
    wavelength : Angstrom, shown in the axis label when given.

    Returns
    -------
    The path written.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 4.0), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(two_theta, intensity, color="tab:blue", lw=1.0, label="pattern")
    tt = np.asarray(peaks.two_theta)
    ii = np.asarray(peaks.intensity)
    if len(tt):
        ax.vlines(tt, 0.0, ii, color="tab:red", lw=0.8, label="peaks")
        # labels of peaks closer than 3 % of the axis are stacked above each other, not overprinted
        min_dx = 0.03 * float(two_theta[-1] - two_theta[0])
        placed: list[tuple[float, float]] = []
        for k in np.argsort(-ii, kind="stable")[:n_labels]:
            y = float(ii[k]) + 0.02
            for x_p, y_p in sorted(placed, key=lambda p: p[1]):
                if abs(tt[k] - x_p) < min_dx and y < y_p + 0.07:
                    y = y_p + 0.07
            placed.append((float(tt[k]), y))
            ax.annotate(hkl_label(peaks.hkl[k]), (tt[k], ii[k]), xytext=(tt[k], y), textcoords="data",
                        ha="center", va="bottom", fontsize=8)
        top = max(1.2, max(y for _, y in placed) + 0.1)
    else:
        top = 1.2
    ax.set_xlim(float(two_theta[0]), float(two_theta[-1]))
    ax.set_ylim(0.0, top)
    lam = f" (λ = {wavelength:.5g} Å)" if wavelength is not None else ""
    ax.set_xlabel(f"2θ (°){lam}")
    ax.set_ylabel("intensity (normalised)")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    return path


def read_scalars(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """All scalar series of a run's TensorBoard event files: tag -> [(step, value), ...].

    The files are read in the order they were started (the wall time of their first event, not their
    names: two writers started in the same second are named by a process-wide counter, and "...10"
    sorts before "...9"), and a later file replaces the steps it writes again, from its first step on
    (as a resumed run's writer purges them)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    loaded = []
    for file in sorted(Path(run_dir).glob("*tfevents*")):
        acc = EventAccumulator(str(file), size_guidance={"scalars": 0})
        acc.Reload()
        try:
            started = acc.FirstEventTimestamp()
        except ValueError:  # an empty file
            continue
        series = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
        loaded.append((started, series))
    out: dict[str, list[tuple[int, float]]] = {}
    for _, series in sorted(loaded, key=lambda item: item[0]):
        for tag, points in series.items():
            if points:
                first = min(step for step, _ in points)
                out[tag] = [p for p in out.get(tag, []) if p[0] < first] + points
    return out


def plot_training(path: str | Path, runs: dict[str, str | Path]) -> Path:
    """Training curves of one or more runs (label -> run dir): train loss, and top-1/top-5 of each
    validation set, as one PNG (written atomically)."""
    from matplotlib.figure import Figure

    from synthxrd.files import atomic_write

    fig = Figure(figsize=(12, 4), constrained_layout=True)
    ax_loss, ax_top1, ax_top5 = fig.subplots(1, 3)
    for label, run in runs.items():
        scalars = read_scalars(run)
        if "train/loss" in scalars:
            steps, values = zip(*scalars["train/loss"])
            ax_loss.plot(steps, values, label=label)
        for ax, metric in ((ax_top1, "top1"), (ax_top5, "top5")):
            for tag in sorted(t for t in scalars if t.startswith("val/") and t.endswith(f"/{metric}")):
                steps, values = zip(*scalars[tag])
                ax.plot(steps, values, marker="o", ms=3, label=f"{label}: {tag.split('/')[1]}")
    for ax, title in ((ax_loss, "training loss"), (ax_top1, "top-1 accuracy"), (ax_top5, "top-5 accuracy")):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


def plot_refinement(path: str | Path, result: Refinement, *, title: str = "", labels=None,
                    contributions: bool = False, dpi: int = 120) -> Path:
    """Write a Rietveld-style PNG of a :class:`~synthxrd.refine.Refinement`: observed (points),
    calculated and background (lines), with ``contributions`` each phase's calculated contribution above
    the background (:func:`phase_curves`), the difference below, and a row of tick marks per phase at
    its reflections (K-alpha1 positions), with Rwp and GoF in the title. ``labels`` (one per phase)
    name the phases in the legend (default: id, formula and space group).

    Returns
    -------
    The path written (always PNG).
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 5.5 if contributions else 5.0), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    tt, obs, calc, bg = result.two_theta, result.observed, result.calculated, result.background_curve
    span = float(np.max(obs) - min(np.min(obs), 0.0)) or 1.0
    ax.plot(tt, obs, ".", ms=2.0, color="tab:blue", label="observed")
    ax.plot(tt, calc, "-", lw=0.9, color="tab:red", label="calculated")
    ax.plot(tt, bg, "-", lw=0.7, color="tab:gray", label="background")
    colors = ["tab:purple", "tab:orange", "tab:olive", "tab:cyan", "tab:brown"]
    labels = list(labels) if labels is not None else [f"{p.name} {p.formula} (SG {p.spacegroup})"
                                                      for p in result.phases]
    if contributions:
        for k, curve in enumerate(phase_curves(result)):
            ax.plot(tt, bg + curve, "-", lw=0.7, color=colors[k % len(colors)], alpha=0.8)
    low = min(float(np.min(obs)), 0.0)
    offset = low - 0.15 * span
    diff = obs - calc
    ax.plot(tt, diff + offset - float(np.max(diff)), "-", lw=0.7, color="tab:green", label="observed − calculated")
    base = offset - float(np.max(diff)) + float(np.min(diff)) - 0.04 * span
    for k, phase in enumerate(result.phases):
        y0 = base - 0.06 * span * k
        ax.vlines(phase.two_theta, y0 - 0.02 * span, y0 + 0.02 * span, color=colors[k % len(colors)], lw=0.8,
                  label=labels[k] if k < len(labels) else phase.name)
    ax.set_xlim(float(tt[0]), float(tt[-1]))
    ax.set_xlabel("2θ (°)")
    ax.set_ylabel("intensity")
    head = f"Rwp {100 * result.rwp:.2f} %, Rexp {100 * result.rexp:.2f} %, GoF {result.gof:.2f}"
    if len(result.phases) > 1:
        head = f"{len(result.phases)} phases: {head}"
    if not result.converged:
        head += " (NOT CONVERGED)"
    ax.set_title(f"{title}\n{head}" if title else head, fontsize=10)
    ax.legend(loc="upper right", fontsize=7, frameon=False)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    return path


def phase_curves(result: Refinement) -> list:
    """(N,) calculated contribution of each phase of a :class:`~synthxrd.refine.Refinement` on its
    points: the phase's fitted integrated intensities spread by the refined pseudo-Voigt profile at
    every line of the wavelength (K-alpha2 at the line ratio, its LP at its own angle), zero shift applied."""
    import numpy as np

    from synthxrd.refine import _fwhm, pseudo_voigt
    from synthxrd.simulate.physics import lorentz_polarization

    tt = result.two_theta
    lam1 = result.lines[0][0]
    curves = []
    for phase in result.phases:
        y = np.zeros(len(tt))
        theta1 = np.radians(phase.two_theta - result.zero_shift) / 2
        d = lam1 / (2 * np.sin(theta1))
        base = phase.intensity / lorentz_polarization(theta1)
        for lam, ratio in result.lines:
            s = lam / (2 * d)
            ok = s < 1
            theta = np.arcsin(s[ok])
            centre = np.degrees(2 * theta) + result.zero_shift
            width = _fwhm(np.asarray(result.fwhm), theta)
            for c, h, i in zip(centre, width, ratio * base[ok] * lorentz_polarization(theta)):
                y += i * pseudo_voigt(tt - c, h, result.eta)
        curves.append(y)
    return curves


def plot_mixture(path: str | Path, result: Refinement, *, labels=None, title: str = "", dpi: int = 120) -> Path:
    """:func:`plot_refinement` of a multi-phase fit with each phase's calculated contribution drawn."""
    return plot_refinement(path, result, title=title, labels=labels, contributions=True, dpi=dpi)

