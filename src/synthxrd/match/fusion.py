"""One answer from two sources: the network's probabilities and the search-match evidence.

The search gives the best library structures with their scores ``s_1 >= s_2 >= ...``. They become a
distribution over space groups,

    p_match(g) = sum_{j: sg_j = g} exp((s_j - s_1) / T) / sum_j exp((s_j - s_1) / T),

and the probability that the best match is the right answer is a logistic model of the best score and
of its margin over the best match of another space group,

    c = sigmoid(b + w_s s_1 + w_m (s_1 - s_other)).

Where the search's best candidates were refined and re-ranked (a rule fitted so is ``refined``), each
refined match's score also holds its fit, ``s_j - w_fit ln(fom_j / fom_min)``
(:func:`synthxrd.match.evidence.evidence_scores`, ``w_fit`` fitted with the rule), and these scores
take the place of ``s_j`` in ``p_match``, ``c`` and ``known`` (below). Every score also holds
``w_sym ln |P_j|``, ``|P_j|`` the point-group order of match j's space group: fitted with the rule, a
small positive ``w_sym`` lets the higher symmetry win a near-tie against its subgroups (Hamilton's
preference, :func:`~synthxrd.match.evidence.evidence_scores`).

The fused distribution is the mixture ``c p_match + (1 - c) p_network``: a strong match makes its
space group dominate; with no good match ``c`` is small and the network's answer stands. A rule of
form ``stacking`` replaces the mixture by a conditional logit over the groups whose features carry
the same evidence (:mod:`synthxrd.match.stacking`); ``c`` keeps its meaning. ``T``, ``b``,
``w_s``, ``w_m`` and ``w_sym`` are fitted by maximum likelihood of the true space group on simulated,
realistically augmented patterns of library structures and of held-out prototypes left out of the library
(:func:`synthxrd.match.fusion_fit.fit_fusion`, run by ``synthxrd export --library``), so the mixture
is calibrated where the library knows the structure and where it does not. The same patterns give
two more parts of a rule:

* ``known``: the probability that the library holds the pattern's structure,
  ``sigmoid(k_0 + k_1 s_1 + k_2 (s_1 - s_other) [+ k_3 ln Rwp_best])`` (the last term in a refined
  rule: the smallest Rwp of the refined matches, how well the best fitting candidate explains the
  pattern; :func:`known_features`), fitted on "known" against "held-out" patterns
  (equal numbers of each, so a prior of 1/2), and ``unknown_below``: the largest cut (steps of 0.05,
  at most 1/2) below which at least ``UNKNOWN_PRECISION`` of the fit patterns are held-out ones
  (:func:`unknown_cut`); below it the answer says that no known phase explains the pattern, and the
  space group rests on the network;
* ``threshold``: the smallest fused top probability above which the fused answers of the fit
  patterns are right at least ``TARGET_ACCURACY`` of the time (:func:`abstention_threshold`);
  ``synthxrd predict`` flags answers below it UNCERTAIN.

A rule belongs to one network and one library: it is stored in the exported model (checkpoint key
``fusion``) with the hash of the network's weights and the fingerprint of the library
(:attr:`FusionRule.network`, :attr:`FusionRule.library`), and :meth:`FusionRule.check` refuses
another pair.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from synthxrd.errors import DataError
from synthxrd.match.evidence import evidence_array, evidence_scores
from synthxrd.wyckoff import N_SPACEGROUPS

__all__ = ["FusionRule", "match_features", "known_features", "NO_FIT_RWP", "evidence_scores", "match_table",
           "matches_from_table", "short_hash",
           "abstention_threshold", "unknown_cut", "TARGET_ACCURACY", "UNKNOWN_PRECISION", "FORMS"]

_PARAMETERS = ("temperature", "bias", "w_score", "w_margin")
FORMS = ("mixture", "stacking")
#: Accuracy, on the fit patterns, of the answers that are not flagged uncertain.
TARGET_ACCURACY = 0.9
#: Rwp of a pattern none of whose matches was refined (no fit: nothing explained).
NO_FIT_RWP = 1.0
#: Share of held-out structures among the fit patterns flagged "no known phase".
UNKNOWN_PRECISION = 0.8


def unknown_cut(p_known, known, *, precision: float = UNKNOWN_PRECISION, min_patterns: int = 20) -> float:
    """The largest cut t in 0.05, 0.10, ..., 0.50 such that of the patterns with ``p_known < t`` (at
    least ``min_patterns``) at least ``precision`` are of structures the library does not hold
    (``known`` False); 0.0 (never flag) if none."""
    p = np.asarray(p_known, np.float64)
    held_out = ~np.asarray(known, bool)
    for t in np.round(np.arange(0.5, 0.0, -0.05), 2):
        flagged = p < t
        if flagged.sum() >= min_patterns and held_out[flagged].mean() >= precision:
            return float(t)
    return 0.0


def abstention_threshold(top_probability, correct, *, accuracy: float = TARGET_ACCURACY,
                         min_patterns: int = 20) -> float:
    """The smallest t (in steps of 0.01) such that the answers with top probability >= t are right in
    at least ``accuracy`` of the cases, over at least ``min_patterns`` of them (selective prediction,
    Geifman & El-Yaniv 2017); 1.0 if no t reaches it."""
    p = np.asarray(top_probability, np.float64)
    ok = np.asarray(correct, bool)
    for t in np.round(np.arange(0.0, 1.0, 0.01), 2):
        kept = p >= t
        if kept.sum() < min_patterns:
            break
        if ok[kept].mean() >= accuracy:
            return float(t)
    return 1.0


def short_hash(fingerprint: str | None) -> str:
    """The first 12 hex digits of a ``sha256:...`` fingerprint (for messages), or ``none``."""
    return fingerprint.split(":", 1)[-1][:12] if fingerprint else "none"


def match_table(matches: Sequence[Sequence], k: int) -> dict[str, np.ndarray]:
    """The evidence the rule weighs of N patterns' match lists as (N, k) arrays (``scores``,
    ``spacegroups``; ``rwp`` and ``fom`` NaN where a match was not refined), padded with score 0 and
    group 0: what the fusion fit saves (``save_data``) and :func:`matches_from_table` reads back."""
    def column(get, fill) -> np.ndarray:
        rows = [[fill if get(m) is None else get(m) for m in ms[:k]] for ms in matches]
        return np.array([r + [fill] * (k - len(r)) for r in rows], np.float64).reshape(len(rows), k)

    return {"scores": column(lambda m: m.score, 0.0),
            "spacegroups": column(lambda m: m.spacegroup, 0).astype(np.int64),
            "rwp": column(lambda m: m.rwp, math.nan), "fom": column(lambda m: m.fom, math.nan)}


def matches_from_table(table) -> list[list]:
    """N match lists (:class:`~synthxrd.match.Match`, evidence only) of :func:`match_table`'s arrays."""
    from synthxrd.match.search import Match

    n, k = np.shape(table["scores"])
    rwp = table["rwp"] if "rwp" in table else np.full((n, k), math.nan)
    fom = table["fom"] if "fom" in table else np.full((n, k), math.nan)
    return [[Match("", "", int(g), float(s), rwp=None if math.isnan(r) else float(r),
                   fom=None if math.isnan(f) else float(f))
             for s, g, r, f in zip(table["scores"][i], table["spacegroups"][i], rwp[i], fom[i]) if g > 0]
            for i in range(n)]


def match_features(matches: Sequence, w_fit: float = 0.0, w_sym: float = 0.0) -> tuple[float, float]:
    """(best score, margin over the best match of another space group) of one pattern's matches, on
    :func:`evidence_scores`."""
    if not matches:
        return 0.0, 0.0
    e = evidence_scores(matches, w_fit, w_sym)
    i = int(np.argmax(e))
    group = matches[i].spacegroup
    others = [v for v, m in zip(e.tolist(), matches) if m.spacegroup != group]
    return float(e[i]), float(e[i] - max(others)) if others else float(e[i])


def known_features(matches: Sequence, w_fit: float = 0.0, with_fit: bool = False) -> tuple[float, ...]:
    """Features of ``known``: (e_1, margin) of :func:`match_features` (without the symmetry term: how well
    the library explains the pattern, not which group is likelier), and ``with_fit`` also ln of the
    smallest Rwp of the refined matches (:data:`NO_FIT_RWP` where none was refined)."""
    e1, margin = match_features(matches, w_fit)
    if not with_fit:
        return e1, margin
    rwp = [m.rwp for m in matches if getattr(m, "rwp", None) is not None and math.isfinite(m.rwp) and m.rwp > 0]
    return e1, margin, math.log(min(rwp, default=NO_FIT_RWP))


@dataclass(frozen=True)
class FusionRule:
    """Parameters of the fusion (module docstring) and where they came from.

    Attributes
    ----------
    temperature : T of p_match (score units).
    bias, w_score, w_margin : logistic model of "the best match is right".
    form : ``mixture`` (c p_match + (1 - c) p_network) or ``stacking`` (conditional logit, ``stack``).
    stack : weights of the stacking form (:data:`synthxrd.match.stacking.STACK_FEATURES`).
    known : (k_0, k_1, k_2[, k_3]) of the probability that the library holds the structure
        (:func:`known_features`; k_3, of ln Rwp_best, in a refined rule), or None.
    unknown_below : probability of ``known`` below which no known phase explains a pattern.
    threshold : fused top probability below which an answer is uncertain, or None (not fitted).
    refined : fitted on refined and re-ranked matches (:func:`evidence_scores`); the predictor then
        refines its matches before it fuses them.
    w_fit : weight of the refinement's figure of merit in the scores (:func:`evidence_scores`).
    w_sym : weight of ln(point-group order) in the scores, the preference for the higher symmetry
        (:func:`evidence_scores`).
    metadata : how the rule was fitted (data, counts, package version), JSON-compatible; a bound rule
        (:meth:`bind`) also holds ``network`` (hash of the network's weights,
        :func:`synthxrd.models.checkpoint.weights_fingerprint`), ``library``
        (:attr:`synthxrd.match.ReferenceLibrary.fingerprint`) and ``library_label``.
    """

    temperature: float = 0.02
    bias: float = -8.0
    w_score: float = 10.0
    w_margin: float = 20.0
    form: str = "mixture"
    stack: tuple[float, ...] = ()
    known: tuple[float, ...] | None = None
    unknown_below: float = 0.5
    threshold: float | None = None
    refined: bool = False
    w_fit: float = 0.0
    w_sym: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        from synthxrd.match.stacking import STACK_FEATURES

        values = (self.temperature, self.bias, self.w_score, self.w_margin, self.w_fit, self.w_sym, *self.stack,
                  *(self.known or ()))
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values) or self.temperature <= 0:
            raise DataError(f"fusion rule: parameters must be finite numbers with temperature > 0, got {values}")
        if self.w_fit < 0:
            raise DataError(f"fusion rule: w_fit must be >= 0, got {self.w_fit!r}")
        if self.form not in FORMS:
            raise DataError(f"fusion rule: form must be one of {', '.join(FORMS)}, got {self.form!r}")
        if self.form == "stacking" and len(self.stack) != len(STACK_FEATURES):
            raise DataError(f"fusion rule: the stacking form needs {len(STACK_FEATURES)} weights "
                            f"({', '.join(STACK_FEATURES)}), got {len(self.stack)}")
        if self.known is not None and len(self.known) not in (3, 4):
            raise DataError(f"fusion rule: known needs 3 or 4 parameters (k_0, k_1, k_2[, k_3]), got {len(self.known)}")
        if not 0.0 <= self.unknown_below <= 1.0:
            raise DataError(f"fusion rule: unknown_below must lie in [0, 1], got {self.unknown_below!r}")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise DataError(f"fusion rule: threshold must lie in [0, 1], got {self.threshold!r}")

    # ---- the rule -------------------------------------------------------------------------------

    def match_probabilities(self, matches: Sequence) -> np.ndarray:
        """(230,) p_match of one pattern's matches (zeros if there are none)."""
        p = np.zeros(N_SPACEGROUPS)
        if not matches:
            return p
        scores = evidence_scores(matches, self.w_fit, self.w_sym)
        w = np.exp((scores - scores.max()) / self.temperature)
        np.add.at(p, np.array([m.spacegroup for m in matches]) - 1, w)
        return p / p.sum()

    def confidence(self, matches: Sequence) -> float:
        """c: probability that the best match's space group is right."""
        if not matches:
            return 0.0
        s, margin = match_features(matches, self.w_fit, self.w_sym)
        z = self.bias + self.w_score * s + self.w_margin * margin
        return float(1.0 / (1.0 + math.exp(-z))) if z > -700 else 0.0

    def known_probability(self, matches: Sequence) -> float | None:
        """Probability that the library holds the structure (None: the rule has no ``known`` part)."""
        if self.known is None:
            return None
        from synthxrd.match.stacking import logistic

        if not matches:
            return 0.0
        return float(logistic(self.known, [known_features(matches, self.w_fit, len(self.known) == 4)])[0])

    def no_known_phase(self, matches: Sequence) -> bool:
        """No library structure explains the pattern: ``known`` below ``unknown_below`` (False without ``known``)."""
        p = self.known_probability(matches)
        return p is not None and p < self.unknown_below

    def fuse(self, network: np.ndarray | None, matches: Sequence) -> np.ndarray:
        """(230,) fused probabilities (mixture: c p_match + (1 - c) p_network; stacking: the conditional
        logit); p_match alone when ``network`` is None."""
        p_match = self.match_probabilities(matches)
        if network is None:
            return p_match
        if self.form == "stacking":
            from synthxrd.match.stacking import group_features, match_arrays, stacked_probabilities

            scores, groups = match_arrays([matches], self.w_fit, self.w_sym)
            return stacked_probabilities(self.stack, group_features(network, scores, groups, self.temperature))[0]
        c = self.confidence(matches)
        p = c * p_match + (1.0 - c) * np.asarray(network, np.float64)
        return p / p.sum()

    # ---- what the rule belongs to ----------------------------------------------------------------

    @property
    def network(self) -> str | None:
        """Hash of the weights of the network the rule was fitted with (None: not bound)."""
        return self.metadata.get("network")

    @property
    def library(self) -> str | None:
        """Fingerprint of the library the rule was fitted against (None: not bound)."""
        return self.metadata.get("library")

    def bind(self, network: str, library: str, library_label: str = "", *,
             network_temperature: float = 1.0) -> FusionRule:
        """The same rule, bound to a network (weights hash and softmax temperature, which together give
        the probabilities the rule weighs) and a library (fingerprint)."""
        meta = dict(self.metadata, network=network, network_temperature=float(network_temperature),
                    library=library, library_label=library_label)
        return replace(self, metadata=meta)

    def check(self, network: str, library, *, network_temperature: float = 1.0, rule_label: str = "fusion rule",
              model_label: str = "model") -> None:
        """:class:`DataError` (one line naming both pairs) unless the rule was fitted with the network
        of weights hash ``network`` (at softmax temperature ``network_temperature``) and against
        ``library`` (a :class:`~synthxrd.match.ReferenceLibrary`; a part of the bound library,
        :meth:`~synthxrd.match.ReferenceLibrary.select`, also passes)."""
        same_t = math.isclose(float(self.metadata.get("network_temperature", math.nan)), network_temperature,
                              rel_tol=1e-9)
        if self.network == network and same_t and self.library in library.lineage:
            return
        bound_label = self.metadata.get("library_label")
        bound_t = self.metadata.get("network_temperature")
        bound_t = f"{bound_t:.4g}" if isinstance(bound_t, (int, float)) else "none"
        raise DataError(
            f"{rule_label} belongs to network {short_hash(self.network)} (T {bound_t})"
            f" and library {short_hash(self.library)}"
            f"{f' ({bound_label})' if bound_label else ''}, "
            f"not to {model_label} (network {short_hash(network)} (T {network_temperature:.4g})) "
            f"with library {short_hash(library.fingerprint)} "
            f"({library.label}): refit it (synthxrd export --library) or accept it explicitly "
            "(allow_foreign_fusion=True, --force-fusion)")

    # ---- files ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, label: str = "fusion rule") -> FusionRule:
        """A rule of :meth:`to_dict` (a JSON file's or a checkpoint's ``fusion`` entry)."""
        try:
            known = data.get("known")
            threshold = data.get("threshold")
            extra = {"unknown_below": float(data["unknown_below"])} if "unknown_below" in data else {}
            extra.update({k: float(data[k]) for k in ("w_fit", "w_sym") if k in data})
            extra.update(refined=bool(data.get("refined", False)))
            return cls(**{k: float(data[k]) for k in _PARAMETERS}, form=str(data.get("form", "mixture")),
                       stack=tuple(float(v) for v in data.get("stack", ())),
                       known=None if known is None else tuple(float(v) for v in known),
                       threshold=None if threshold is None else float(threshold), **extra,
                       metadata=dict(data.get("metadata", {})))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{label}: not a fusion rule ({type(exc).__name__}: {exc})") from None

    def save(self, path: str | Path) -> Path:
        from synthxrd.files import write_json

        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> FusionRule:
        """Read a rule written by :meth:`save`. (The rule of a model is in its checkpoint; see
        :meth:`synthxrd.predict.Predictor.load`.)"""
        p = Path(path)
        if not p.is_file():
            raise DataError(f"{p}: no such fusion rule file")
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{p}: not a fusion rule ({type(exc).__name__}: {exc})") from None
        return cls.from_dict(data, str(p))

    @classmethod
    def fit(cls, network: np.ndarray, matches: Sequence[Sequence], labels, *, known=None, known_rows=None,
            form: str = "mixture", metadata: dict | None = None) -> FusionRule:
        """Maximum-likelihood parameters on patterns with known space groups.

        network : (N, 230) network probabilities; matches : N match lists; labels : (N,) ITA numbers;
        known : (N,) bool, the library holds the pattern's structure (fits ``known``; None: not fitted);
        known_rows : (N,) bool, the patterns that fit ``known`` and its cut (default all); the fit's
            isotype patterns are left out so that known and held-out patterns keep equal numbers;
        form : ``mixture`` or ``stacking`` (fitted after the mixture, at its temperature).
        The mixture minimises the mean negative log-likelihood of the true group under the fused
        distribution (Nelder-Mead from the defaults, then from the best point again); the stacking
        weights likewise (:func:`synthxrd.match.stacking.fit_stacking`). ``threshold`` is
        :func:`abstention_threshold` of the fused answers.
        """
        if form not in FORMS:
            raise DataError(f"fusion fit: form must be one of {', '.join(FORMS)}, got {form!r}")
        rule = cls._fit_mixture(network, matches, labels, metadata)
        from synthxrd.match.stacking import fit_logistic, fit_stacking, group_features, match_arrays

        labels = np.asarray(labels, np.int64)
        meta = dict(rule.metadata)
        if form == "stacking":
            scores, groups = match_arrays(matches, rule.w_fit, rule.w_sym)
            weights, nll = fit_stacking(group_features(network, scores, groups, rule.temperature), labels)
            rule = replace(rule, form="stacking", stack=tuple(float(w) for w in weights))
            meta.update(mixture_nll=meta["mean_nll"], mean_nll=nll)
        if known is not None:
            rows = np.ones(len(matches), bool) if known_rows is None else np.asarray(known_rows, bool)
            known = np.asarray(known, bool)[rows]
            if known.all() or not known.any():
                raise DataError("fusion fit: fitting 'known' needs patterns of structures the library holds and "
                                "of structures it does not")
            chosen = [m for m, r in zip(matches, rows) if r]
            features = [known_features(m, rule.w_fit, rule.refined) for m in chosen]
            rule = replace(rule, known=tuple(float(v) for v in fit_logistic(features, known)))
            rule = replace(rule, unknown_below=unknown_cut([rule.known_probability(m) for m in chosen], known))
        fused = np.array([rule.fuse(p, m) for p, m in zip(network, matches)])
        threshold = abstention_threshold(fused.max(axis=1), fused.argmax(axis=1) + 1 == labels)
        meta.update(target_accuracy=TARGET_ACCURACY)
        return replace(rule, threshold=threshold, metadata=meta)

    @classmethod
    def _fit_mixture(cls, network, matches, labels, metadata) -> FusionRule:
        """The mixture's parameters (:meth:`fit`): T, b, w_s, w_m, w_sym, and on refined matches also w_fit."""
        from scipy.optimize import minimize

        labels = np.asarray(labels, np.int64)
        net = np.asarray(network, np.float64)
        max_k = max((len(m) for m in matches), default=1) or 1
        scores = np.full((len(matches), max_k), -np.inf)
        fom = np.full((len(matches), max_k), np.nan)
        groups = np.zeros((len(matches), max_k), np.int64)
        for i, ms in enumerate(matches):
            for j, m in enumerate(ms):
                scores[i, j], groups[i, j] = m.score, m.spacegroup
                fom[i, j] = math.nan if getattr(m, "fom", None) is None else m.fom
        same = groups == labels[:, None]
        refined = bool(np.isfinite(fom).any())
        rows = np.arange(len(labels))
        any_match = groups[:, 0] > 0
        p_net_true = net[rows, labels - 1]

        def nll(theta: np.ndarray) -> float:
            log_t, b, ws, wm, w_sym = theta[:5]
            e = evidence_array(scores, fom, abs(theta[5]) if refined else 0.0, groups, w_sym)
            best = np.argmax(e, axis=1)
            s1 = e[rows, best]
            other = np.where((groups != groups[rows, best][:, None]) & np.isfinite(e), e, -np.inf).max(axis=1)
            margin = np.where(np.isfinite(other), s1 - other, s1)
            with np.errstate(over="ignore", invalid="ignore"):
                w = np.exp((e - s1[:, None]) / math.exp(log_t))
                w[~np.isfinite(w)] = 0.0
                p_match_true = (w * same).sum(1) / np.maximum(w.sum(1), 1e-300)
                c = np.where(any_match, 1.0 / (1.0 + np.exp(-(b + ws * s1 + wm * margin))), 0.0)
            p = c * p_match_true + (1 - c) * p_net_true
            return float(-np.mean(np.log(np.maximum(p, 1e-12))))

        start = cls()
        x0 = [math.log(start.temperature), start.bias, start.w_score, start.w_margin, 0.0] + ([0.05] if refined else [])
        best = minimize(nll, np.array(x0), method="Nelder-Mead",
                        options={"maxiter": 6000, "xatol": 1e-4, "fatol": 1e-7})
        best = minimize(nll, best.x, method="Nelder-Mead", options={"maxiter": 6000, "xatol": 1e-5, "fatol": 1e-8})
        log_t, b, ws, wm, w_sym = (float(v) for v in best.x[:5])
        extra = {"refined": True, "w_fit": abs(float(best.x[5]))} if refined else {}
        meta = dict(metadata or {}, n_patterns=int(len(labels)), mean_nll=float(best.fun))
        return cls(math.exp(log_t), b, ws, wm, w_sym=w_sym, metadata=meta, **extra)
