"""The score each search-match candidate is weighed by in the fusion (:mod:`synthxrd.match.fusion`).

Its own module so that the fusion and its stacking form (:mod:`synthxrd.match.stacking`) share it
without importing each other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from synthxrd.symmetry import point_group_order_table

__all__ = ["evidence_scores", "evidence_array"]


def evidence_scores(matches: Sequence, w_fit: float = 0.0, w_sym: float = 0.0) -> np.ndarray:
    """(K,) the score each match is weighed by.

    Without refinement (no match carries a figure of merit, or ``w_fit`` 0) the search's scores
    ``s_j``. With it (``search(refine=...)``: the best candidates fitted to the pattern,
    :mod:`synthxrd.match.rerank`), each refined match's score also holds how well it fits,

        e_j = s_j - w_fit ln(fom_j / fom_min) + w_sym ln |P_j|,

    ``fom_min`` the best figure of merit of the pattern's refined matches (an isotype that the
    refinement added, which the search did not score, takes the best search score of the refined
    ones); matches not refined keep ``s_j`` (and the symmetry term). ``w_fit`` (score units per unit of
    ln fom) is fitted with the rule, so the data decide how much the fit outweighs the search's score.

    ``|P_j|`` is the order of the point group of match j's space group
    (:func:`synthxrd.symmetry.point_group_order_table`): with ``w_sym > 0`` a candidate of higher
    symmetry wins a near-tie against one of its subgroups, which fits as well with more freedom, as
    a crystallographer prefers the higher symmetry unless the lower fits significantly better
    (Hamilton, Acta Cryst. 18, 502 (1965)); ``w_sym`` is fitted with the rule too.
    """
    scores = np.array([[m.score for m in matches]], np.float64)
    fom = np.array([[math.nan if getattr(m, "fom", None) is None else m.fom for m in matches]], np.float64)
    groups = np.array([[m.spacegroup for m in matches]], np.int64)
    return evidence_array(scores, fom, w_fit, groups, w_sym)[0]


def evidence_array(scores: np.ndarray, fom: np.ndarray, w_fit: float, groups: np.ndarray | None = None,
                   w_sym: float = 0.0) -> np.ndarray:
    """:func:`evidence_scores` of (N, K) scores, figures of merit (NaN: not refined; score -inf: padding)
    and space groups (0: padding; needed only with ``w_sym``)."""
    e = _fit_evidence(scores, fom, w_fit)
    if w_sym == 0 or groups is None:
        return e
    order = point_group_order_table()[np.clip(np.asarray(groups, np.int64), 0, 230)]
    return e + w_sym * np.log(np.maximum(order, 1))


def _fit_evidence(scores: np.ndarray, fom: np.ndarray, w_fit: float) -> np.ndarray:
    """The search's scores with the refinement's figure of merit (:func:`evidence_scores` at ``w_sym`` 0)."""
    refined = np.isfinite(fom) & (fom > 0) & np.isfinite(scores)
    if w_fit <= 0 or not refined.any():
        return scores
    with np.errstate(invalid="ignore", divide="ignore"):
        top = np.where(refined, scores, -np.inf).max(axis=1, keepdims=True)
        log_fom = np.log(np.where(refined, fom, 1.0))
        best_fit = np.where(refined, log_fom, np.inf).min(axis=1, keepdims=True)
        e = np.where(scores > 0, scores, top) - w_fit * (log_fom - best_fit)
    return np.where(refined, e, scores)
