"""Comparison of the statistics per source: summaries, the range check, the text report and its plot."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthxrd.errors import ConfigError
from synthxrd.realism.measurement import STATISTICS, PatternStats

__all__ = ["Summary", "Report", "compare", "format_report", "report_payload", "plot_report"]

#: Log-scale plots draw relative intensities (background, noise) below this value at it.
_LOG_FLOOR = 1e-5


@dataclass(frozen=True)
class Summary:
    """One statistic of one source: ``n`` finite values, their median and 1/5/95/99 % quantiles
    (NaN when n = 0)."""

    statistic: str
    source: str
    n: int
    median: float
    p1: float
    p5: float
    p95: float
    p99: float


@dataclass(frozen=True)
class Report:
    """Summaries of every statistic and source, and the checks.

    Attributes
    ----------
    summaries : one :class:`Summary` per (statistic, source), in :data:`STATISTICS` order.
    inside : (statistic, measured source) -> whether the measured 5-95 % range lies inside the
        synthetic 1-99 % range (None when either has no finite value).
    synthetic : name of the synthetic source.
    """

    summaries: tuple[Summary, ...]
    inside: dict[tuple[str, str], bool | None]
    synthetic: str

    def summary(self, statistic: str, source: str) -> Summary:
        for s in self.summaries:
            if s.statistic == statistic and s.source == source:
                return s
        raise KeyError((statistic, source))

    @property
    def all_inside(self) -> bool:
        """Every check with values passed."""
        return all(v for v in self.inside.values() if v is not None)


def _summary(statistic: str, source: str, values: np.ndarray) -> Summary:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return Summary(statistic, source, 0, *([math.nan] * 5))
    q = np.percentile(v, [50, 1, 5, 95, 99])
    return Summary(statistic, source, int(v.size), *(float(t) for t in q))


def compare(stats: Mapping[str, Sequence[PatternStats]], *, synthetic: str = "synthetic") -> Report:
    """Summaries per statistic and source, and whether each measured source's 5-95 % range lies
    inside the 1-99 % range of the source named ``synthetic``: p1 <= p5 + atol and
    p95 <= p99 + atol, atol the statistic's tolerance (:data:`INTENSITY_RESOLUTION` for
    intensities relative to the strongest peak, else 0)."""
    if synthetic not in stats:
        raise ConfigError(f"realism: no source named {synthetic!r} among {', '.join(stats)}")
    summaries, inside = [], {}
    for stat in STATISTICS:
        name, tol = stat.name, stat.atol
        by_source = {src: _summary(name, src, np.array([s.value(name) for s in rows], np.float64))
                     for src, rows in stats.items()}
        summaries.extend(by_source.values())
        syn = by_source[synthetic]
        for src, summ in by_source.items():
            if src == synthetic:
                continue
            inside[(name, src)] = None if not (summ.n and syn.n) else bool(syn.p1 <= summ.p5 + tol
                                                                          and summ.p95 <= syn.p99 + tol)
    return Report(tuple(summaries), inside, synthetic)


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return "n/a"
    return "0" if v == 0 else f"{v:.3g}"


def format_report(report: Report) -> str:
    """The report as a text table: per statistic and source the median and 5-95 % range, the
    synthetic 1-99 % range, and for measured sources whether they lie inside it."""
    sources = list(dict.fromkeys(s.source for s in report.summaries))
    width = max(len(s) for s in sources)
    lines = []
    for stat in STATISTICS:
        name, label, unit = stat.name, stat.label, stat.unit
        syn = report.summary(name, report.synthetic)
        lines.append(f"{name} ({label}{', ' + unit if unit else ''})")
        for src in sources:
            s = report.summary(name, src)
            rng = f"[{_fmt(s.p5)}, {_fmt(s.p95)}]"
            if src == report.synthetic:
                tail = f"1-99 % [{_fmt(syn.p1)}, {_fmt(syn.p99)}]"
            else:
                ok = report.inside.get((name, src))
                tail = "inside" if ok else ("n/a" if ok is None else "OUTSIDE")
            lines.append(f"  {src:<{width}}  n {s.n:>4}  median {_fmt(s.median):>9}  5-95 % {rng:<22} {tail}")
    checks = [v for v in report.inside.values() if v is not None]
    lines.append(f"measured 5-95 % inside synthetic 1-99 %: {sum(checks)} of {len(checks)} "
                 + ("(all)" if report.all_inside else "(not all)"))
    return "\n".join(lines)


def report_payload(report: Report, stats: Mapping[str, Sequence[PatternStats]],
                   names: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """JSON-ready dict: summaries, checks and every pattern's statistics per source (with its name
    where ``names`` gives one)."""
    def row(i: int, src: str, s: PatternStats) -> dict[str, Any]:
        out: dict[str, Any] = {"name": names[src][i]} if names and src in names else {}
        out.update({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in asdict(s).items()})
        return out

    return _finite_or_none({
        "synthetic": report.synthetic,
        "all_inside": report.all_inside,
        "tolerances": {st.name: st.atol for st in STATISTICS},
        "summaries": [asdict(s) for s in report.summaries],
        "inside": [{"statistic": k[0], "source": k[1], "inside": v} for k, v in report.inside.items()],
        "patterns": {src: [row(i, src, s) for i, s in enumerate(rows)] for src, rows in stats.items()},
    })


def _finite_or_none(value: Any) -> Any:
    """``value`` with NaN and infinite floats replaced by None (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def plot_report(path: str | Path, report: Report, stats: Mapping[str, Sequence[PatternStats]], *,
                title: str = "", dpi: int = 100) -> Path:
    """Write a PNG (atomically) with one panel per statistic: box plots per source (box 25-75 %,
    whiskers 5-95 %, median line) over the synthetic 1-99 % range (shaded), and one panel of FWHM
    against 2theta (every measured peak, a dot per peak). On log axes, relative intensities below
    1e-5 (a background of 0) are drawn at 1e-5."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from synthxrd.files import atomic_write

    sources = list(stats)
    colours = {src: f"C{i}" for i, src in enumerate(sources)}
    n_panels = len(STATISTICS) + 1
    cols = 4
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows), dpi=dpi, constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, stat in zip(axes, STATISTICS):
        name, label, unit, log = stat.name, stat.label, stat.unit, stat.log
        floor = _LOG_FLOOR if stat.atol > 0 else 0.0  # relative intensities: 0 is a value, drawn at the floor
        data, names = [], []
        for src in sources:
            v = np.array([s.value(name) for s in stats[src]], np.float64)
            v = v[np.isfinite(v)]
            if log:
                v = np.maximum(v, floor)[np.maximum(v, floor) > 0]
            data.append(v if v.size else np.array([np.nan]))
            names.append(f"{src.replace(' ', chr(10))}\n(n={v.size})")
        syn = report.summary(name, report.synthetic)
        if syn.n and (not log or syn.p99 > 0):
            ax.axhspan(max(syn.p1, floor) if log else syn.p1, syn.p99, color="0.85", zorder=0)
        bp = ax.boxplot(data, whis=(5, 95), showfliers=True, patch_artist=True,
                        flierprops={"markersize": 2, "alpha": 0.4}, medianprops={"color": "k"})
        for patch, src in zip(bp["boxes"], sources):
            patch.set_facecolor(colours[src])
            patch.set_alpha(0.6)
        ax.set_xticks(range(1, len(sources) + 1), names, fontsize=7)
        if log:
            ax.set_yscale("log")
        ax.set_title(label + (f" ({unit})" if unit else ""), fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    ax = axes[len(STATISTICS)]
    for src in sources:
        tt = np.concatenate([s.peak_two_theta for s in stats[src]] or [np.zeros(0)])
        fw = np.concatenate([s.peak_fwhm for s in stats[src]] or [np.zeros(0)])
        ax.scatter(tt, fw, s=3, alpha=0.35, color=colours[src], label=f"{src} ({tt.size} peaks)", lw=0)
    ax.set_yscale("log")
    ax.set_xlabel("2theta (deg)", fontsize=8)
    ax.set_title("FWHM of isolated peaks (deg) vs 2theta", fontsize=9)
    ax.legend(fontsize=6, markerscale=3)
    ax.grid(alpha=0.3)
    for ax in axes[n_panels:]:
        ax.set_axis_off()
    if n_panels < axes.size:
        checks = [v for v in report.inside.values() if v is not None]
        axes[n_panels].text(0.0, 0.5, "grey band: synthetic 1-99 %\nbox: 25-75 %, whiskers: 5-95 %, line: median\n"
                            "log axes: relative intensities < 1e-5\n(a background of 0) drawn at 1e-5\n\n"
                            f"measured 5-95 % inside synthetic 1-99 %:\n{sum(checks)} of {len(checks)}",
                            fontsize=8, va="center", transform=axes[n_panels].transAxes)
    if title:
        fig.suptitle(title, fontsize=10)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
