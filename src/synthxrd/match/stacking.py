"""The evidence of one pattern as numbers per space group, and the small models fitted on it.

A fusion rule (:mod:`synthxrd.match.fusion`) sees, per pattern, the network's probabilities and the
search's best matches (score and space group, best first). :func:`group_features` turns them into
features of each of the 230 groups, for the stacking form of the rule: a conditional logit
(McFadden 1974) over the groups,

    p(g) = exp(w . f(g)) / sum_h exp(w . f(h)),

whose features are

===============  ====================================================================================
``log_p_net``    log p_network(g) (clipped at 1e-6)
``in_search``    1 if a match of group g is among the best matches
``gap``          s_1 - s_g: how far g's best match lies below the best match (0 if g is not found)
``log_p_match``  log p_match(g) (the mixture's match distribution at its temperature; 0 if not found)
``rank_*``       1 if g is the 1st, 2nd, 3rd, 4th-5th or 6th-10th distinct group of the search
``rank1_score``  s_1 if g is the first group (how good the best match is)
``rank1_margin`` s_1 - s_other if g is the first group (margin over the best other group)
``in_score``     s_1 if g is found at all (a good best match makes every found group likelier)
===============  ====================================================================================

The weights maximise the likelihood of the true group (L-BFGS, a small L2 penalty); the negative
log-likelihood is convex in w, so the fit has one optimum.

:func:`fit_logistic` fits p = sigmoid(b + w . x) by maximum likelihood; the rule uses it for the
probability that the library holds the pattern's structure (from the best score and the margin).
"""

from __future__ import annotations

import numpy as np

from synthxrd.match.evidence import evidence_scores

__all__ = ["STACK_FEATURES", "group_features", "match_arrays", "stacked_probabilities", "fit_stacking",
           "fit_logistic", "logistic"]

N_SPACEGROUPS = 230
STACK_FEATURES = ("log_p_net", "in_search", "gap", "log_p_match", "rank_1", "rank_2", "rank_3", "rank_4_5",
                  "rank_6_10", "rank1_score", "rank1_margin", "in_score")
_RANK_EDGES = (0, 1, 2, 3, 5, 10)
_FLOOR = 1e-6


def match_arrays(matches, w_fit: float = 0.0, w_sym: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) scores (:func:`synthxrd.match.evidence.evidence_scores`) and space groups of N match lists
    (``Match`` objects), best first; groups 0 pad."""
    k = max((len(m) for m in matches), default=0) or 1
    scores = np.zeros((len(matches), k))
    groups = np.zeros((len(matches), k), np.int64)
    for i, ms in enumerate(matches):
        e = evidence_scores(ms, w_fit, w_sym) if ms else np.zeros(0)
        order = np.argsort(-e, kind="stable")
        scores[i, :len(ms)] = e[order]
        groups[i, :len(ms)] = [ms[j].spacegroup for j in order]
    return scores, groups


def _group_table(scores: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pattern and group: best score (NaN: not found) and distinct rank (1: first group; 0: not found)."""
    n = len(scores)
    best = np.full((n, N_SPACEGROUPS), np.nan)
    rank = np.zeros((n, N_SPACEGROUPS), np.int64)
    for i in range(n):
        r = 0
        for s, g in zip(scores[i], groups[i]):
            if g <= 0:
                break
            if rank[i, g - 1] == 0:
                r += 1
                rank[i, g - 1] = r
                best[i, g - 1] = s
    return best, rank


def group_features(network: np.ndarray, scores: np.ndarray, groups: np.ndarray, temperature: float) -> np.ndarray:
    """(N, 230, F) features (:data:`STACK_FEATURES`) of N patterns.

    network : (N, 230) probabilities; scores, groups : (N, K) best matches, best first (groups 0: none);
    temperature : of p_match (:meth:`synthxrd.match.fusion.FusionRule.match_probabilities`).
    """
    network = np.atleast_2d(np.asarray(network, np.float64))
    scores = np.atleast_2d(np.asarray(scores, np.float64))
    groups = np.atleast_2d(np.asarray(groups, np.int64))
    best, rank = _group_table(scores, groups)
    found = rank > 0
    s1 = np.where(groups[:, 0] > 0, scores[:, 0], 0.0)
    others = np.where(rank > 1, best, -np.inf).max(axis=1)
    margin = np.where(np.isfinite(others), s1 - others, 0.0)
    valid = groups > 0
    with np.errstate(over="ignore"):
        w = np.where(valid, np.exp((scores - s1[:, None]) / temperature), 0.0)
    p_match = np.zeros_like(network)
    np.add.at(p_match, (np.repeat(np.arange(len(groups)), groups.shape[1])[valid.ravel()],
                        groups[valid] - 1), w[valid])
    p_match /= np.maximum(p_match.sum(axis=1, keepdims=True), 1e-300)
    columns = [np.log(np.clip(network, _FLOOR, None)), found.astype(np.float64),
               np.where(found, s1[:, None] - np.nan_to_num(best), 0.0),
               np.where(found, np.log(np.clip(p_match, _FLOOR, None)), 0.0)]
    columns += [((rank > lo) & (rank <= hi)).astype(np.float64) for lo, hi in zip(_RANK_EDGES[:-1], _RANK_EDGES[1:])]
    first = (rank == 1).astype(np.float64)
    columns += [first * s1[:, None], first * margin[:, None], found * s1[:, None]]
    return np.stack(columns, axis=-1)


def stacked_probabilities(weights, features: np.ndarray) -> np.ndarray:
    """(N, 230) softmax over the groups of ``features @ weights``."""
    u = features @ np.asarray(weights, np.float64)
    u -= u.max(axis=1, keepdims=True)
    e = np.exp(u)
    return e / e.sum(axis=1, keepdims=True)


def fit_stacking(features: np.ndarray, labels, *, l2: float = 1e-3) -> tuple[np.ndarray, float]:
    """Weights of the conditional logit maximising the likelihood of ``labels`` (ITA numbers), and the
    mean negative log-likelihood. Starts from the network alone (weight 1 on ``log_p_net``)."""
    from scipy.optimize import minimize

    idx = np.asarray(labels, np.int64) - 1
    rows = np.arange(len(idx))
    true_features = features[rows, idx]

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        u = features @ w
        top = u.max(axis=1, keepdims=True)
        lse = top[:, 0] + np.log(np.exp(u - top).sum(axis=1))
        p = np.exp(u - lse[:, None])
        value = np.mean(lse - u[rows, idx]) + l2 * w @ w
        grad = (np.einsum("ng,ngf->f", p, features) - true_features.sum(axis=0)) / len(idx) + 2 * l2 * w
        return float(value), grad

    w0 = np.zeros(features.shape[-1])
    w0[0] = 1.0
    result = minimize(objective, w0, jac=True, method="L-BFGS-B")
    w = result.x
    return w, float(objective(w)[0] - l2 * w @ w)


def logistic(params, x) -> np.ndarray:
    """sigmoid(b + w . x) for params (b, w...) and x (N, len(w))."""
    params = np.asarray(params, np.float64)
    z = params[0] + np.atleast_2d(np.asarray(x, np.float64)) @ params[1:]
    return 1.0 / (1.0 + np.exp(-np.clip(z, -700, 700)))


def fit_logistic(x, y, *, l2: float = 1e-4) -> np.ndarray:
    """Maximum-likelihood (b, w...) of P(y = 1 | x) = sigmoid(b + w . x); x (N, D), y (N,) 0/1."""
    from scipy.optimize import minimize

    x = np.atleast_2d(np.asarray(x, np.float64))
    y = np.asarray(y, np.float64)
    design = np.c_[np.ones(len(x)), x]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = design @ theta
        value = np.mean(np.logaddexp(0.0, z) - y * z) + l2 * theta[1:] @ theta[1:]
        grad = design.T @ (1.0 / (1.0 + np.exp(-z)) - y) / len(y)
        grad[1:] += 2 * l2 * theta[1:]
        return float(value), grad

    return minimize(objective, np.zeros(design.shape[1]), jac=True, method="L-BFGS-B").x
