"""The evaluation: predictions of a model on labelled patterns, with the prior baseline, and its tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from synthxrd.evaluate.scoring import (COVERAGE_THRESHOLDS, MATCH_BINS, N_BINS, N_CONFUSION_GROUPS,
                                       calibrated_ece, expected_calibration_error, metrics, prior_probabilities,
                                       topk_hits)
from synthxrd.predict import N_SPACEGROUPS, crystal_system_probabilities, ranking
from synthxrd.symmetry import CRYSTAL_SYSTEMS, crystal_system_table
from synthxrd.wyckoff import hermann_mauguin

if TYPE_CHECKING:
    from synthxrd.predict import Predictor

__all__ = ["Evaluation"]

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
        """Model and baseline metrics on all patterns and on the known-class subset; the model's (and
        each component's) also hold ``ece_floor``, the ECE perfectly calibrated probabilities with the
        same top-1 confidences would show (:func:`~synthxrd.evaluate.scoring.calibrated_ece`)."""
        k = self.known
        out = {
            "n_patterns": len(self.labels), "n_known": int(k.sum()), "n_unknown": int((~k).sum()),
            "n_failed": len(self.failures),
            "unknown_spacegroups": sorted({int(s) for s in self.labels[~k]}),
            "all": {"model": _scored(self.probabilities, self.labels),
                    "baseline": metrics(self._baseline_rows(len(self.labels)), self.labels)},
            "known": {"model": _scored(self.probabilities[k], self.labels[k]),
                      "baseline": metrics(self._baseline_rows(int(k.sum())), self.labels[k])},
        }
        for name, p in self.components.items():
            out["all"][name] = _scored(p, self.labels)
            out["known"][name] = _scored(p[k], self.labels[k])
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
        """ECE and bins of the model's top-1 confidence (all patterns), and the ECE calibrated
        probabilities with these confidences would show (``ece_floor``, :func:`calibrated_ece`)."""
        conf = self.probabilities.max(axis=1) if len(self.labels) else np.zeros(0)
        ece, bins = expected_calibration_error(conf, topk_hits(self.probabilities, self.labels, 1), n_bins)
        return {"n_bins": n_bins, "ece": ece if len(self.labels) else None,
                "ece_floor": calibrated_ece(conf, n_bins), "bins": bins}

    def match_reliability(self, n_bins: int = MATCH_BINS) -> dict[str, Any] | None:
        """How often the best match's space group is right against the fusion's probability c that it
        is ("p that the best is right"): ECE and ``n_bins`` equal-width bins of c (None without a
        library)."""
        if not self.evidence:
            return None
        c = np.asarray(self.evidence["confidence"], np.float64)
        right = np.asarray(self.evidence["best_spacegroup"]) == self.labels
        ece, bins = expected_calibration_error(c, right, n_bins)
        return {"n_bins": n_bins, "ece": ece if len(c) else None, "ece_floor": calibrated_ece(c, n_bins),
                "mean_confidence": float(c.mean()) if len(c) else None,
                "accuracy": float(right.mean()) if len(c) else None, "bins": bins}

    def unknown_report(self) -> dict[str, Any] | None:
        """The patterns the fusion says no known phase explains: how many, and how often the best match's
        and the fused answer's space group are right among them and among the others (None without
        the flags)."""
        if "no_known_phase" not in self.evidence:
            return None
        said = np.asarray(self.evidence["no_known_phase"], bool)
        best = np.asarray(self.evidence["best_spacegroup"]) == self.labels
        fused = topk_hits(self.probabilities, self.labels, 1)

        def share(x: np.ndarray, sel: np.ndarray) -> float | None:
            return float(x[sel].mean()) if sel.any() else None

        return {"n": int(said.sum()), "share": share(said, np.ones_like(said)),
                "best_right_said": share(best, said), "best_right_other": share(best, ~said),
                "fused_right_said": share(fused, said), "fused_right_other": share(fused, ~said)}

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
            "no_known_phase": self.unknown_report(),
            "coverage": self.coverage(),
            "failures": list(self.failures),
            "predictions": self.predictions(),
        }


def _scored(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """:func:`metrics` of predicted probabilities, with ``ece_floor`` (:func:`calibrated_ece` of their
    top-1 confidences)."""
    return {**metrics(probabilities, labels), "ece_floor": calibrated_ece(probabilities.max(axis=1, initial=0.0))}


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


def _evidence(confidence, matches, no_known_phase=None) -> dict[str, np.ndarray]:
    """``Evaluation.evidence`` of per-pattern fusion confidences, match lists and "no known phase" flags
    (empty without a library)."""
    if confidence is None:
        return {}
    out = {"confidence": np.asarray(confidence, np.float64),
           "best_spacegroup": np.array([m[0].spacegroup if m else 0 for m in matches], np.int64)}
    if no_known_phase is not None:
        out["no_known_phase"] = np.asarray(no_known_phase, bool)
    return out


def _components(rows: list) -> dict[str, np.ndarray]:
    """The network's and the search's probabilities of predictions made with a library."""
    if not rows or rows[0].search is None:
        return {}
    return {"network": np.array([r.network for r in rows]), "search": np.array([r.search for r in rows])}
