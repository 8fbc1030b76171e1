"""Evaluate a trained network on labelled patterns: accuracies, a prior baseline, confusion, calibration.

Labelled patterns come from

* a **manifest** CSV of measured pattern files (the layout of ``experimental/manifest.csv`` of the
  shared data): column ``pattern_path`` (relative to the CSV's folder, or absolute) and
  ``spacegroup`` (ITA number), optional ``wavelength_A`` (used where the file states none), optional
  ``sample_id`` and ``variant`` (filter rows with ``variant=...``, e.g. ``raw``);
* a cached **validation set** of :mod:`synthxrd.validation` (``match``, ``all``, ...), or any
  :mod:`synthxrd.dataset` file with patterns and labels.

Metrics (:func:`metrics`), each on all patterns and on those whose true group is one of the model's
classes ("known"; the others cannot be right at the space-group level, and are counted separately):

``top1`` / ``top5``
    the true space group is the most probable / among the 5 most probable.
``crystal_system``
    the crystal system with the largest summed probability is the true one.
``extinction_group``
    the extinction group (:mod:`synthxrd.symmetry`) with the largest summed probability is the true
    group's: what a powder pattern can decide at best.
``ece``
    expected calibration error of the top-1 confidence, 15 equal-width bins on [0, 1]:
    ``sum_b n_b / N * |accuracy_b - mean confidence_b|`` (Guo et al., ICML 2017, arXiv 1706.04599).

Accuracy against coverage (:meth:`Evaluation.coverage`, abstention): for each confidence threshold
t, the share of patterns whose top probability is >= t and the top-1 / top-5 accuracy among them;
``synthxrd predict`` flags the others as uncertain.

The **baseline** is the frequency prior: the statistics' space-group prior over the model's classes
(``Statistics.spacegroup_prior(classes)``), the same ranking for every pattern. It is scored with
the same functions.

:func:`write_report` writes ``evaluation.json`` (config, metrics, baseline, per-space-group report,
confusion matrices, reliability bins, per-pattern top-5, failures) and three figures:
``confusion_crystal_system.png``, ``confusion_spacegroups.png`` (the most frequent true groups) and
``reliability.png``.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthxrd.errors import ConfigError, DataError
from synthxrd.predict import (
    N_SPACEGROUPS,
    crystal_system_probabilities,
    extinction_group_probabilities,
    failure_message,
    ranking,
)
from synthxrd.symmetry import CRYSTAL_SYSTEMS, crystal_system_table, extinction_group_table
from synthxrd.wyckoff import hermann_mauguin

if TYPE_CHECKING:
    from synthxrd.predict import Predictor

__all__ = [
    "N_BINS",
    "OUTPUT_FILES",
    "ManifestEntry",
    "Evaluation",
    "read_manifest",
    "topk_hits",
    "metrics",
    "expected_calibration_error",
    "prior_probabilities",
    "evaluate_manifest",
    "evaluate_dataset",
    "evaluate_validation_set",
    "evaluate_patterns",
    "temperature_report",
    "calibrate_on_validation_set",
    "write_report",
]

#: Bins of the reliability table of the match confidence (few patterns per bin on a development set).
MATCH_BINS = 5
#: Bins of the reliability diagram and the ECE.
N_BINS = 15
#: Space groups shown in the space-group confusion matrix (the most frequent true groups).
N_CONFUSION_GROUPS = 20
#: Confidence thresholds of the accuracy-against-coverage table.
COVERAGE_THRESHOLDS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
OUTPUT_FILES = ("evaluation.json", "confusion_crystal_system.png", "confusion_spacegroups.png", "reliability.png")
#: Patterns per forward pass chunk when evaluating datasets.
_CHUNK = 1024


# --------------------------------------------------------------------------------------------------
# metrics on probability arrays


def _check(probabilities, labels) -> tuple[np.ndarray, np.ndarray]:
    p = np.atleast_2d(np.asarray(probabilities, np.float64))
    y = np.asarray(labels, np.int64).reshape(-1)
    if p.shape[1:] != (N_SPACEGROUPS,) or len(p) != len(y):
        raise ValueError(f"need probabilities (N, 230) and labels (N,), got {p.shape} and {y.shape}")
    if len(y) and (y.min() < 1 or y.max() > N_SPACEGROUPS):
        raise ValueError("labels must be ITA numbers 1..230")
    return p, y


def topk_hits(probabilities, labels, k: int) -> np.ndarray:
    """(N,) bool: the label (ITA number) is among the ``k`` most probable groups of its row."""
    p, y = _check(probabilities, labels)
    return np.any(ranking(p, k) == (y - 1)[:, None], axis=1)


def expected_calibration_error(confidence, correct, n_bins: int = N_BINS) -> tuple[float, list[dict[str, Any]]]:
    """ECE and the reliability-diagram bins of top-1 confidences.

    Bins are ``(i/n, (i+1)/n]`` (the first also holds 0). ECE = sum over bins of
    ``count / N * |accuracy - mean confidence|``; NaN for no samples.

    Returns
    -------
    ece : float.
    bins : per bin ``lower``, ``upper``, ``count``, ``accuracy`` and ``confidence`` (None when empty).
    """
    conf = np.asarray(confidence, np.float64).reshape(-1)
    hit = np.asarray(correct, bool).reshape(-1)
    if conf.shape != hit.shape:
        raise ValueError(f"confidence {conf.shape} and correct {hit.shape} differ in shape")
    index = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        sel = index == b
        n = int(sel.sum())
        acc = float(hit[sel].mean()) if n else None
        mean_conf = float(conf[sel].mean()) if n else None
        if n:
            ece += n / len(conf) * abs(acc - mean_conf)
        bins.append({"lower": b / n_bins, "upper": (b + 1) / n_bins, "count": n, "accuracy": acc,
                     "confidence": mean_conf})
    return (float(ece) if len(conf) else math.nan), bins


def metrics(probabilities, labels, *, n_bins: int = N_BINS) -> dict[str, Any]:
    """Top-1, top-5, crystal-system and extinction-group accuracy and ECE of (N, 230) probabilities.

    Values are fractions in [0, 1] (None when N = 0); ``n`` is N.
    """
    p, y = _check(probabilities, labels)
    n = len(y)
    if n == 0:
        return {"n": 0, "top1": None, "top5": None, "crystal_system": None, "extinction_group": None, "ece": None,
                "mean_p_true": None}
    systems = crystal_system_table()
    groups = extinction_group_table()
    top1 = topk_hits(p, y, 1)
    cs_hit = crystal_system_probabilities(p).argmax(axis=1) == systems[y]
    eg_hit = extinction_group_probabilities(p).argmax(axis=1) + 1 == groups[y]
    ece, _ = expected_calibration_error(p.max(axis=1), top1, n_bins)
    return {"n": n, "top1": float(top1.mean()), "top5": float(topk_hits(p, y, 5).mean()),
            "crystal_system": float(cs_hit.mean()), "extinction_group": float(eg_hit.mean()), "ece": ece,
            "mean_p_true": float(p[np.arange(n), y - 1].mean())}


def prior_probabilities(classes, statistics=None) -> np.ndarray:
    """(230,) frequency prior: the statistics' space-group prior over ``classes`` (0 elsewhere).

    statistics : a :class:`~synthxrd.stats.Statistics`, a path, or None (the shipped statistics).
    """
    from synthxrd.stats import Statistics

    st = statistics if isinstance(statistics, Statistics) else Statistics.load(statistics)
    classes = np.asarray(classes, np.int64)
    out = np.zeros(N_SPACEGROUPS)
    out[classes - 1] = st.spacegroup_prior(classes)
    return out


# --------------------------------------------------------------------------------------------------
# labelled inputs


@dataclass(frozen=True)
class ManifestEntry:
    """One row of a manifest: the pattern file (resolved), its label and wavelength (None: not given)."""

    sample_id: str
    path: Path
    spacegroup: int
    wavelength: float | None
    variant: str | None
    line: int


def read_manifest(path: str | Path, *, variant: str | None = None) -> list[ManifestEntry]:
    """Rows of a manifest CSV (see module docstring), optionally only those of ``variant``.

    Raises
    ------
    DataError
        Missing file or column, a space group that is not 1..230, a wavelength that is not a number.
        Rows with an empty space group are skipped with a warning (their true group is unknown).
    ConfigError
        ``variant`` given but the CSV has no ``variant`` column or no row of that variant.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such manifest file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the manifest ({exc})") from None
    missing = [c for c in ("pattern_path", "spacegroup") if c not in columns]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r} (a manifest needs pattern_path and spacegroup; "
                        f"found: {', '.join(columns) or 'nothing'})")
    if variant is not None:
        if "variant" not in columns:
            raise ConfigError(f"--variant {variant}: {path} has no 'variant' column")
        available = sorted({r["variant"] for r in rows if r.get("variant")})
        rows_kept = [(i, r) for i, r in enumerate(rows, 2) if r.get("variant") == variant]
        if not rows_kept:
            raise ConfigError(f"--variant {variant}: no row of {path} has that variant; "
                              f"variants: {', '.join(available)}")
    else:
        rows_kept = list(enumerate(rows, 2))
    entries, unlabelled = [], []
    for line, row in rows_kept:
        if not str(row["spacegroup"] or "").strip():  # e.g. a measured pattern whose group is unknown
            unlabelled.append(line)
            continue
        try:
            sg = int(str(row["spacegroup"]).strip())
        except ValueError:
            sg = 0
        if not 1 <= sg <= N_SPACEGROUPS:
            raise DataError(f"{path}: line {line}: spacegroup {row['spacegroup']!r} is not an ITA number 1..230")
        lam_text = (row.get("wavelength_A") or "").strip()
        try:
            lam = float(lam_text) if lam_text else None
        except ValueError:
            raise DataError(f"{path}: line {line}: wavelength_A {lam_text!r} is not a number (Angstrom)") from None
        rel = (row["pattern_path"] or "").strip()
        if not rel:
            raise DataError(f"{path}: line {line}: empty pattern_path")
        file = Path(rel) if Path(rel).is_absolute() else path.parent / rel
        entries.append(ManifestEntry(sample_id=(row.get("sample_id") or rel).strip(), path=file, spacegroup=sg,
                                     wavelength=lam, variant=row.get("variant"), line=line))
    if unlabelled:
        warnings.warn(f"{path}: {len(unlabelled)} row(s) without a space group skipped (lines "
                      f"{', '.join(map(str, unlabelled[:8]))}{', ...' if len(unlabelled) > 8 else ''})", stacklevel=2)
    if not entries:
        raise DataError(f"{path}: no row with a space group to evaluate")
    return entries


# --------------------------------------------------------------------------------------------------
# the evaluation


@dataclass
class Evaluation:
    """Predictions of a model on labelled patterns, with the prior baseline.

    Attributes
    ----------
    probabilities : (N, 230) of the patterns that could be predicted.
    labels : (N,) true ITA numbers.
    sources : (N,) pattern names (file paths or set ids).
    classes : the model's classes (ITA numbers).
    baseline : (230,) prior probabilities (the same for every pattern).
    description : what was evaluated (for the report).
    failures : one-line messages of the patterns that could not be used.
    config : what the report should record (model, inputs, options).
    components : with a reference library, the sources ``probabilities`` fuses:
        ``{"network": (N, 230), "search": (N, 230)}``, scored beside it; empty otherwise.
    matches : with a reference library (manifest inputs), the best matches of each pattern as dicts
        (id, formula, spacegroup, score, scale); empty otherwise.
    evidence : with a reference library, ``{"confidence": (N,) c, "best_spacegroup": (N,) int}``: the
        fusion's probability that the best match's space group is right and that space group (0: no
        match), for :meth:`match_reliability`; empty otherwise.
    """

    probabilities: np.ndarray
    labels: np.ndarray
    sources: list[str]
    classes: np.ndarray
    baseline: np.ndarray
    description: str = ""
    failures: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    components: dict[str, np.ndarray] = field(default_factory=dict)
    matches: list[list[dict[str, Any]]] = field(default_factory=list)
    evidence: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def known(self) -> np.ndarray:
        """(N,) bool: the true group is one of the model's classes."""
        return np.isin(self.labels, self.classes)

    def _baseline_rows(self, n: int) -> np.ndarray:
        return np.broadcast_to(self.baseline, (n, N_SPACEGROUPS))

    def summary(self) -> dict[str, Any]:
        """Model and baseline metrics on all patterns and on the known-class subset."""
        k = self.known
        out = {
            "n_patterns": len(self.labels), "n_known": int(k.sum()), "n_unknown": int((~k).sum()),
            "n_failed": len(self.failures),
            "unknown_spacegroups": sorted({int(s) for s in self.labels[~k]}),
            "all": {"model": metrics(self.probabilities, self.labels),
                    "baseline": metrics(self._baseline_rows(len(self.labels)), self.labels)},
            "known": {"model": metrics(self.probabilities[k], self.labels[k]),
                      "baseline": metrics(self._baseline_rows(int(k.sum())), self.labels[k])},
        }
        for name, p in self.components.items():
            out["all"][name] = metrics(p, self.labels)
            out["known"][name] = metrics(p[k], self.labels[k])
        return out

    def per_spacegroup(self) -> list[dict[str, Any]]:
        """One row per true space group (most frequent first): n, known, top1, top5, mean p(true)."""
        top1 = topk_hits(self.probabilities, self.labels, 1)
        top5 = topk_hits(self.probabilities, self.labels, 5)
        p_true = self.probabilities[np.arange(len(self.labels)), self.labels - 1]
        rows = []
        groups, counts = np.unique(self.labels, return_counts=True)
        for g, c in sorted(zip(groups.tolist(), counts.tolist()), key=lambda t: (-t[1], t[0])):
            sel = self.labels == g
            rows.append({"spacegroup": g, "symbol": hermann_mauguin(g), "n": c, "known": bool(g in self.classes),
                         "top1": float(top1[sel].mean()), "top5": float(top5[sel].mean()),
                         "mean_p_true": float(p_true[sel].mean())})
        return rows

    def confusion_crystal_system(self) -> np.ndarray:
        """(7, 7) int counts: rows true crystal system, columns predicted (argmax of summed probabilities)."""
        pred = crystal_system_probabilities(self.probabilities).argmax(axis=1)
        true = crystal_system_table()[self.labels]
        m = np.zeros((7, 7), np.int64)
        np.add.at(m, (true, pred), 1)
        return m

    def confusion_spacegroups(self, n: int = N_CONFUSION_GROUPS) -> tuple[list[int], np.ndarray]:
        """(the ``n`` most frequent true groups, (n, n + 1) int counts): rows true group, columns the top-1
        prediction among those groups, last column any other group."""
        groups, counts = np.unique(self.labels, return_counts=True)
        order = sorted(zip(groups.tolist(), counts.tolist()), key=lambda t: (-t[1], t[0]))[:n]
        chosen = [g for g, _ in order]
        col = {g: i for i, g in enumerate(chosen)}
        pred = self.probabilities.argmax(axis=1) + 1
        m = np.zeros((len(chosen), len(chosen) + 1), np.int64)
        for t, q in zip(self.labels.tolist(), pred.tolist()):
            if t in col:
                m[col[t], col.get(q, len(chosen))] += 1
        return chosen, m

    def reliability(self, n_bins: int = N_BINS) -> dict[str, Any]:
        """ECE and bins of the model's top-1 confidence (all patterns)."""
        conf = self.probabilities.max(axis=1) if len(self.labels) else np.zeros(0)
        ece, bins = expected_calibration_error(conf, topk_hits(self.probabilities, self.labels, 1), n_bins)
        return {"n_bins": n_bins, "ece": ece if len(self.labels) else None, "bins": bins}

    def match_reliability(self, n_bins: int = MATCH_BINS) -> dict[str, Any] | None:
        """How often the best match's space group is right against the fusion's probability c that it
        is ("p that the best is right"): ECE and ``n_bins`` equal-width bins of c (None without a
        library)."""
        if not self.evidence:
            return None
        c = np.asarray(self.evidence["confidence"], np.float64)
        right = np.asarray(self.evidence["best_spacegroup"]) == self.labels
        ece, bins = expected_calibration_error(c, right, n_bins)
        return {"n_bins": n_bins, "ece": ece if len(c) else None,
                "mean_confidence": float(c.mean()) if len(c) else None,
                "accuracy": float(right.mean()) if len(c) else None, "bins": bins}

    def coverage(self, thresholds: Sequence[float] = COVERAGE_THRESHOLDS) -> list[dict[str, Any]]:
        """Accuracy against coverage: per threshold t, the patterns with top probability >= t (coverage,
        their count) and their top-1/top-5 accuracy (None when none is kept)."""
        conf = self.probabilities.max(axis=1) if len(self.labels) else np.zeros(0)
        hits = {k: topk_hits(self.probabilities, self.labels, k) for k in (1, 5)}
        rows = []
        for t in thresholds:
            keep = conf >= t
            rows.append({"threshold": float(t), "n": int(keep.sum()),
                         "coverage": float(keep.mean()) if len(conf) else None,
                         **{f"top{k}": float(h[keep].mean()) if keep.any() else None for k, h in hits.items()}})
        return rows

    def predictions(self, k: int = 5) -> list[dict[str, Any]]:
        """Per pattern: source, true group, top-k groups with probabilities, probability of the true group."""
        order = ranking(self.probabilities, k)
        out = []
        for i, src in enumerate(self.sources):
            y = int(self.labels[i])
            out.append({"source": src, "spacegroup": y, "known": bool(y in self.classes),
                        "p_true": float(self.probabilities[i, y - 1]),
                        "top": [[int(j) + 1, float(self.probabilities[i, j])] for j in order[i]]})
            if self.matches:
                out[-1]["matches"] = self.matches[i][:3]
        return out

    def to_dict(self) -> dict[str, Any]:
        """Everything of the report as JSON-compatible data."""
        chosen, sg_matrix = self.confusion_spacegroups()
        return {
            "description": self.description,
            "config": self.config,
            "summary": self.summary(),
            "baseline": {"kind": "frequency prior of the statistics over the model's classes",
                         "top5": [[int(j) + 1, float(self.baseline[j])] for j in np.argsort(-self.baseline,
                                                                                               kind="stable")[:5]]},
            "per_spacegroup": self.per_spacegroup(),
            "confusion_crystal_system": {"labels": list(CRYSTAL_SYSTEMS),
                                         "rows": "true", "columns": "predicted",
                                         "matrix": self.confusion_crystal_system().tolist()},
            "confusion_spacegroups": {"labels": chosen, "columns": [*chosen, "other"], "rows": "true",
                                      "matrix": sg_matrix.tolist()},
            "reliability": self.reliability(),
            "match_reliability": self.match_reliability(),
            "coverage": self.coverage(),
            "failures": list(self.failures),
            "predictions": self.predictions(),
        }


def _baseline_for(predictor: Predictor, statistics) -> tuple[np.ndarray, str]:
    if statistics is None:
        statistics = (predictor.metadata.get("config") or {}).get("statistics")
    return prior_probabilities(predictor.classes, statistics), str(statistics or "shipped")


def _model_config(predictor: Predictor) -> dict[str, Any]:
    meta = predictor.metadata
    lib = predictor.library
    return {"source": predictor.source, "checkpoint": meta.get("checkpoint"), "step": meta.get("step"),
            "name": (meta.get("model_config") or {}).get("name"), "n_classes": len(predictor.classes),
            "classes": [int(c) for c in predictor.classes], "input": predictor.spec.to_dict(),
            "temperature": predictor.temperature, "threshold": predictor.threshold,
            "library": None if lib is None else {"source": lib.label, "n_structures": len(lib),
                                                 "held_out": lib.metadata.get("held_out")},
            "fusion": None if predictor.fusion is None else predictor.fusion.to_dict()}


def _evidence(confidence, matches) -> dict[str, np.ndarray]:
    """``Evaluation.evidence`` of per-pattern fusion confidences and match lists (empty without a library)."""
    if confidence is None:
        return {}
    return {"confidence": np.asarray(confidence, np.float64),
            "best_spacegroup": np.array([m[0].spacegroup if m else 0 for m in matches], np.int64)}


def _components(rows: list) -> dict[str, np.ndarray]:
    """The network's and the search's probabilities of predictions made with a library."""
    if not rows or rows[0].search is None:
        return {}
    return {"network": np.array([r.network for r in rows]), "search": np.array([r.search for r in rows])}


def evaluate_manifest(predictor: Predictor, manifest: str | Path, *, variant: str | None = None,
                      wavelength: float | str | None = None, statistics=None,
                      progress: bool = False, on_failure: Callable[[str], None] | None = None) -> Evaluation:
    """Predict every pattern file of a manifest (see :func:`read_manifest`) and collect the evaluation.

    A file that cannot be read becomes a one-line entry of ``failures`` (also passed to ``on_failure``);
    the others go on. ``wavelength`` is used for rows without ``wavelength_A`` whose file states none.

    Raises
    ------
    DataError
        If no pattern could be predicted.
    """
    entries = read_manifest(manifest, variant=variant)
    probs, labels, sources, failures, results = [], [], [], [], []
    iterator: Sequence[ManifestEntry] = entries
    if progress:
        import sys

        from tqdm import tqdm

        iterator = tqdm(entries, desc="evaluate", unit="file", file=sys.stderr, disable=None, dynamic_ncols=True)
    for e in iterator:
        name = str(e.path)
        try:
            result = predictor.predict_file(e.path, wavelength=e.wavelength if e.wavelength is not None else wavelength)
        except Exception as exc:  # one line per bad file, the others go on
            message = failure_message(name, exc)
            failures.append(message)
            if on_failure:
                on_failure(message)
            continue
        probs.append(result.probabilities)
        results.append(result)
        labels.append(e.spacegroup)
        label = e.sample_id or name
        sources.append(f"{label} ({e.variant})" if variant is None and e.variant else label)
    if not probs:
        raise DataError(f"{manifest}: none of the {len(entries)} patterns could be predicted"
                        + (f" (first failure: {failures[0]})" if failures else ""))
    baseline, st_name = _baseline_for(predictor, statistics)
    return Evaluation(np.array(probs), np.array(labels, np.int64), sources, predictor.classes, baseline,
                      description=f"manifest {manifest}" + (f", variant {variant}" if variant else ""),
                      failures=failures,
                      config={"model": _model_config(predictor), "input": {"manifest": str(manifest),
                              "variant": variant, "wavelength_argument": wavelength,
                              "n_rows": len(entries)}, "statistics": st_name},
                      components=_components(results),
                      evidence=_evidence(None if not results or results[0].search is None else
                                         [r.confidence for r in results], [r.matches for r in results]),
                      matches=[[m.to_dict() for m in r.matches] for r in results] if predictor.library else [])


def _predict_dataset(predictor: Predictor, patterns: np.ndarray, two_theta: np.ndarray | None,
                     wavelength: float | None = None
                     ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Probabilities (N, 230) and, with a library, the components (network, search) and the match
    evidence (:attr:`Evaluation.evidence`) of patterns on an axis."""
    grid = predictor.grid.values()
    if two_theta is None:
        if patterns.shape[1] != len(grid):
            raise DataError(f"the patterns have {patterns.shape[1]} points and no 2theta axis; the model needs "
                            f"{len(grid)} on its grid")
        two_theta = grid
    parts: dict[str, list[np.ndarray]] = {"probabilities": [], "network": [], "search": [], "confidence": []}
    matches: list = []
    for i in range(0, len(patterns), _CHUNK):
        out = predictor.identify(two_theta, patterns[i:i + _CHUNK], wavelength=wavelength)
        for name in parts:
            if name in out:
                parts[name].append(out[name])
        matches += out.get("matches", [])
    merged = {k: np.concatenate(v) if v else np.zeros((0, N_SPACEGROUPS)) for k, v in parts.items()}
    components = {k: merged[k] for k in ("network", "search")} if parts["search"] else {}
    evidence = _evidence(merged["confidence"] if parts["search"] else None, matches)
    return merged["probabilities"], components, evidence


def evaluate_dataset(predictor: Predictor, dataset, *, name: str = "", max_patterns: int = 0, seed: int = 0,
                     statistics=None, description: str = "") -> Evaluation:
    """Evaluate on a :class:`~synthxrd.dataset.Dataset` (or the path of one) with patterns and labels.

    max_patterns : evaluate a fixed random subsample of this many patterns (0: all), drawn with ``seed``.
    """
    from synthxrd.dataset import Dataset, load_dataset

    label = name or str(dataset)
    ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    if ds.patterns is None or ds.crystals.spacegroups is None:
        raise DataError(f"{label}: the dataset needs patterns and space-group labels")
    rows = np.arange(len(ds.patterns))
    if 0 < max_patterns < len(rows):
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_patterns, replace=False))
    if not len(rows):
        raise DataError(f"{label}: the dataset holds no patterns")
    probs, components, evidence = _predict_dataset(predictor, np.asarray(ds.patterns)[rows], ds.two_theta)
    ids = getattr(ds, "ids", None)
    sources = [str(ids[r]) for r in rows] if ids is not None and len(ids) == len(ds.patterns) else \
        [f"{name or 'dataset'}[{r}]" for r in rows]
    baseline, st_name = _baseline_for(predictor, statistics)
    return Evaluation(probs, np.asarray(ds.crystals.spacegroups, np.int64)[rows], sources, predictor.classes,
                      baseline, description=(description or f"dataset {label}") + (
                          f" ({len(rows)} of {len(ds.patterns)} patterns)" if len(rows) < len(ds.patterns) else ""),
                      config={"model": _model_config(predictor),
                              "input": {"dataset": label, "n_patterns": int(len(ds.patterns)),
                                        "max_patterns": max_patterns, "seed": seed},
                              "statistics": st_name},
                      components=components, evidence=evidence)


def evaluate_patterns(predictor: Predictor, path: str | Path, *, wavelength: float | str | None = None,
                      statistics=None) -> Evaluation:
    """Evaluate on an ``.npz`` of labelled patterns on one axis (the layout of rruff_dev):
    ``two_theta`` (M,) degrees, ``patterns`` (N, M), ``spacegroup`` (N,) ITA numbers; measured at
    ``wavelength`` (default Cu K-alpha1)."""
    label = str(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            tt, x, y = (np.asarray(data[k]) for k in ("two_theta", "patterns", "spacegroup"))
    except KeyError as exc:
        raise DataError(f"{label}: needs arrays two_theta, patterns and spacegroup (missing {exc})") from None
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{label}: cannot read the patterns ({type(exc).__name__}: {exc})") from None
    if x.ndim != 2 or tt.shape != (x.shape[1],) or y.shape != (x.shape[0],) or not len(y):
        raise DataError(f"{label}: expected two_theta (M,), patterns (N, M), spacegroup (N,) with N >= 1; got "
                        f"{tt.shape}, {x.shape}, {y.shape}")
    probs, components, evidence = _predict_dataset(predictor, x.astype(np.float64), tt.astype(np.float64),
                                                   wavelength)
    baseline, st_name = _baseline_for(predictor, statistics)
    return Evaluation(probs, y.astype(np.int64), [f"{Path(label).stem}[{i}]" for i in range(len(y))],
                      predictor.classes, baseline, description=f"patterns {label}",
                      config={"model": _model_config(predictor),
                              "input": {"patterns": label, "n_patterns": int(len(y)), "wavelength": wavelength},
                              "statistics": st_name},
                      components=components, evidence=evidence)


def evaluate_validation_set(predictor: Predictor, validation_dir: str | Path, set_name: str, *,
                            max_patterns: int = 0, seed: int = 0, statistics=None) -> Evaluation:
    """Evaluate on set ``set_name`` of a validation cache (:func:`synthxrd.dataset.load_validation_sets`)."""
    from synthxrd.dataset import load_validation_sets

    ds = load_validation_sets(validation_dir, [set_name])[set_name]
    ev = evaluate_dataset(predictor, ds, name=set_name, max_patterns=max_patterns, seed=seed, statistics=statistics,
                          description=f"validation set {set_name} of {validation_dir}")
    ev.config["input"].update(validation_dir=str(validation_dir), set=set_name)
    return ev


def temperature_report(logits, labels) -> dict[str, Any]:
    """Fit the softmax temperature T on ``logits`` (N, C) and class indices ``labels``
    (:func:`synthxrd.models.calibration.fit_temperature`, Guo et al. 2017) and report the NLL and the
    ECE of the top-1 confidence before (T = 1) and after."""
    from synthxrd.models.calibration import fit_temperature, nll, softmax

    z, y = np.asarray(logits, np.float64), np.asarray(labels, np.int64)
    t = fit_temperature(z, y)
    report: dict[str, Any] = {"temperature": t, "n": int(len(y)), "nll_before": nll(z, y), "nll_after": nll(z, y, t)}
    for when, p in (("before", softmax(z)), ("after", softmax(z, t))):
        report[f"ece_{when}"] = expected_calibration_error(p.max(axis=1), p.argmax(axis=1) == y)[0]
    return report


def calibrate_on_validation_set(predictor: Predictor, validation_dir: str | Path, set_name: str = "match", *,
                                max_patterns: int = 2000, seed: int = 0) -> dict[str, Any]:
    """:func:`temperature_report` of the network alone on set ``set_name`` of a validation cache (the
    patterns whose label is a class; a fixed subsample of ``max_patterns`` drawn with ``seed``, as the
    trainer's validation draws it). The logits are recovered from the predictor's probabilities,
    log p * T = z - logsumexp(z): softmax is unchanged by a per-row constant, so the fitted T is the
    one of the raw logits. The predictor must be the network alone (loaded with ``library=None``)."""
    from synthxrd.dataset import class_rows, load_validation_sets

    if predictor.library is not None:
        raise ConfigError("calibrate the network alone: load the predictor with library=None")
    ds = load_validation_sets(validation_dir, [set_name])[set_name]
    if ds.patterns is None:
        raise DataError(f"{validation_dir}: validation set {set_name!r} holds no patterns")
    rows, labels = class_rows(ds.crystals.spacegroups, predictor.classes, max_patterns, seed)
    if not len(rows):
        raise DataError(f"{validation_dir}: validation set {set_name!r} has no pattern of the model's classes")
    probs, _, _ = _predict_dataset(predictor, np.asarray(ds.patterns)[rows], ds.two_theta)
    logits = np.log(np.clip(probs[:, predictor.classes - 1], 1e-300, None)) * predictor.temperature
    return {**temperature_report(logits, labels), "fitted_on": set_name, "max_patterns": max_patterns,
            "seed": seed}


# --------------------------------------------------------------------------------------------------
# report


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
    """PNG reliability diagram: accuracy vs confidence per bin (bars), the diagonal, counts, and the ECE."""
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
    ece = reliability.get("ece")
    ax.set_title((f"ECE ({len(bins)} bins) = {ece:.3f}" if ece is not None else "no patterns")
                 + (f"\n{title}" if title else ""), fontsize=8)
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    ax2.bar(lower, counts, width=width, align="edge", color="tab:gray", edgecolor="white")
    ax2.set_xlabel("top-1 confidence")
    ax2.set_ylabel("patterns")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    return path
