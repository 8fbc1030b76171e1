"""Fusion rule parts fitted on calibration patterns: the stacking form, "is it known", the abstention threshold.

Synthetic evidence with a known generating process: the search's best group is right when its score is
high, the network is right otherwise; the fitted parts must find that, by numbers checked by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from synthxrd.errors import DataError
from synthxrd.match.fusion import FusionRule, abstention_threshold, unknown_cut
from synthxrd.match.stacking import STACK_FEATURES, fit_logistic, group_features, logistic, match_arrays


@dataclass
class M:
    score: float
    spacegroup: int


def _evidence(n: int, rng: np.random.Generator):
    """n patterns: half 'known' (best match right, high score), half not (network right, low score)."""
    labels = rng.integers(1, 231, n)
    known = np.arange(n) < n // 2
    network = np.full((n, 230), 0.5 / 229)
    matches = []
    for i, g in enumerate(labels):
        wrong = int(g % 230 + 1)
        network[i, (g if not known[i] else wrong) - 1] = 0.5  # the network is right on the unknown ones
        s1 = rng.uniform(0.85, 0.95) if known[i] else rng.uniform(0.55, 0.7)
        first = g if known[i] else int((g + 5) % 230 + 1)
        matches.append([M(s1, int(first)), M(s1 - 0.05, int((g + 7) % 230 + 1))])
    return network, matches, labels, known


def test_abstention_threshold_by_hand():
    p = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    ok = np.array([1, 1, 1, 1, 0, 1, 0, 0], bool)
    # >= 0.61: 4 of 4 right; >= 0.51: 4 of 5 (0.8); >= 0.41: 5 of 6
    assert abstention_threshold(p, ok, accuracy=1.0, min_patterns=1) == pytest.approx(0.61)
    assert abstention_threshold(p, ok, accuracy=0.8, min_patterns=1) == pytest.approx(0.41)
    assert abstention_threshold(p, ok, accuracy=0.6, min_patterns=1) == 0.0  # 5 of 8 = 0.625
    assert abstention_threshold(p, ok, accuracy=1.0, min_patterns=5) == 1.0  # never 5 answers all right


def test_unknown_cut_by_hand():
    p = np.linspace(0.02, 0.98, 50)  # p_known of 50 patterns
    known = p > 0.22  # the 11 below 0.22 are held out, so are 3 of the next 10
    known[[11, 13, 15]] = False
    assert unknown_cut(p, known, precision=1.0, min_patterns=5) == pytest.approx(0.25)  # 12 flagged, all held out
    assert unknown_cut(p, known, precision=0.8, min_patterns=5) == pytest.approx(0.35)  # 17 flagged, 14 held out
    assert unknown_cut(p, known, precision=1.0, min_patterns=20) == 0.0


def test_logistic_fit_recovers_its_parameters():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 2))
    y = rng.random(20000) < logistic([0.5, 2.0, -1.0], x)
    assert fit_logistic(x, y, l2=0.0) == pytest.approx([0.5, 2.0, -1.0], abs=0.1)


def test_group_features_by_hand():
    network = np.full((1, 230), 1 / 230)
    scores, groups = match_arrays([[M(0.9, 5), M(0.85, 5), M(0.8, 12), M(0.7, 7)]])
    f = dict(zip(STACK_FEATURES, np.moveaxis(group_features(network, scores, groups, temperature=0.05)[0], -1, 0)))
    assert f["in_search"][[4, 11, 6]].tolist() == [1, 1, 1] and f["in_search"].sum() == 3
    assert f["rank_1"][4] == f["rank_2"][11] == f["rank_3"][6] == 1
    assert f["gap"][[4, 11, 6]] == pytest.approx([0.0, 0.1, 0.2])
    assert f["rank1_margin"][4] == pytest.approx(0.1) and f["rank1_score"][4] == pytest.approx(0.9)
    w = np.exp(np.array([0.0, -0.05, -0.1, -0.2]) / 0.05)  # p_match sums the two matches of group 5
    assert np.exp(f["log_p_match"][4]) == pytest.approx((w[0] + w[1]) / w.sum())
    assert f["log_p_net"][0] == pytest.approx(np.log(1 / 230))


@pytest.mark.parametrize("form", ["mixture", "stacking"])
def test_fitted_rule_learns_when_to_trust_the_search(form):
    network, matches, labels, known = _evidence(400, np.random.default_rng(1))
    rule = FusionRule.fit(network, matches, labels, known=known, form=form)
    fused = np.array([rule.fuse(p, m) for p, m in zip(network, matches)])
    assert np.allclose(fused.sum(axis=1), 1.0)
    assert (fused.argmax(axis=1) + 1 == labels).mean() > 0.95  # search right on known, network on the others
    p_known = np.array([rule.known_probability(m) for m in matches])
    assert (p_known[known] > 0.8).all() and (p_known[~known] < 0.2).all()
    said = np.array([rule.no_known_phase(m) for m in matches])
    assert rule.unknown_below == 0.5 and (said == ~known).all()
    assert rule.threshold is not None and 0.0 <= rule.threshold < 0.6
    again = FusionRule.from_dict(rule.to_dict())
    assert again == rule and again.form == form
    if form == "stacking":
        assert rule.metadata["mean_nll"] < rule.metadata["mixture_nll"]


def test_bad_rules_are_refused():
    with pytest.raises(DataError, match="form must be one of mixture, stacking"):
        FusionRule(form="vote")
    with pytest.raises(DataError, match="stacking form needs 12 weights"):
        FusionRule(form="stacking", stack=(1.0, 2.0))
    with pytest.raises(DataError, match="threshold must lie in"):
        FusionRule(threshold=1.5)
    with pytest.raises(DataError, match="fitting 'known' needs"):
        network, matches, labels, _ = _evidence(20, np.random.default_rng(2))
        FusionRule.fit(network, matches, labels, known=np.ones(20, bool))
    old = {"temperature": 0.02, "bias": -8.0, "w_score": 10.0, "w_margin": 20.0, "metadata": {}}
    rule = FusionRule.from_dict(old)  # a rule written before these parts existed
    assert rule.form == "mixture" and rule.known is None and rule.threshold is None
    assert rule.known_probability([M(0.9, 5)]) is None
