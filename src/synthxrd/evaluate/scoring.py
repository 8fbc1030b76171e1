"""Metrics on probability arrays: top-k hits, calibration error, the prior baseline (:func:`metrics`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from synthxrd.predict import N_SPACEGROUPS, crystal_system_probabilities, extinction_group_probabilities, ranking
from synthxrd.symmetry import crystal_system_table, extinction_group_table

__all__ = ["N_BINS", "MATCH_BINS", "N_CONFUSION_GROUPS", "COVERAGE_THRESHOLDS", "topk_hits",
           "expected_calibration_error", "calibrated_ece", "metrics", "prior_probabilities"]

#: Bins of the reliability table of the match confidence (few patterns per bin on a development set).
MATCH_BINS = 5
#: Bins of the reliability diagram and the ECE.
N_BINS = 15
#: Space groups shown in the space-group confusion matrix (the most frequent true groups).
N_CONFUSION_GROUPS = 20
#: Confidence thresholds of the accuracy-against-coverage table.
COVERAGE_THRESHOLDS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)



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
    index = _bin_index(conf, n_bins)
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


def _bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    return np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)


def calibrated_ece(confidence, n_bins: int = N_BINS, *, draws: int = 2000,
                   rng: np.random.Generator | None = None) -> dict[str, float] | None:
    """The ECE that perfectly calibrated probabilities with these top-1 confidences would show on as
    many patterns: the floor of :func:`expected_calibration_error` on a finite set.

    Each answer is drawn right with probability equal to its confidence, ``correct_i ~
    Bernoulli(conf_i)``, ``draws`` times; with the same bins, ECE = ``sum_b |sum_{i in b} (correct_i -
    conf_i)| / N``. The binned ECE is biased upward on a finite set (Kumar, Liang & Ma, NeurIPS 2019,
    arXiv 1909.10155; Roelofs et al., AISTATS 2022, arXiv 2012.08668): for N answers of confidence
    1/2 in one bin its expectation is ``sqrt(2 / pi) / (2 sqrt(N))``. An ECE within this floor says
    nothing against calibration.

    Returns ``{"mean", "q95"}`` over the draws (None for no confidences); rng : the draws' generator
    (default ``numpy.random.default_rng(0)``, so a report repeats).
    """
    conf = np.asarray(confidence, np.float64).reshape(-1)
    if conf.size == 0:
        return None
    rng = np.random.default_rng(0) if rng is None else rng
    onehot = np.zeros((conf.size, n_bins))
    onehot[np.arange(conf.size), _bin_index(conf, n_bins)] = 1.0
    conf_sum = conf @ onehot
    chunk = max(1, 4_000_000 // conf.size)
    eces = []
    for start in range(0, draws, chunk):
        hits = (rng.random((min(chunk, draws - start), conf.size)) < conf).astype(np.float64)
        eces.append(np.abs(hits @ onehot - conf_sum).sum(axis=1) / conf.size)
    ece = np.concatenate(eces)
    return {"mean": float(ece.mean()), "q95": float(np.quantile(ece, 0.95))}


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
