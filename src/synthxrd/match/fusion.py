"""One answer from two sources: the network's probabilities and the search-match evidence.

The search gives the best library structures with their scores ``s_1 >= s_2 >= ...``. They become a
distribution over space groups,

    p_match(g) = sum_{j: sg_j = g} exp((s_j - s_1) / T) / sum_j exp((s_j - s_1) / T),

and the probability that the best match is the right answer is a logistic model of the best score and
of its margin over the best match of another space group,

    c = sigmoid(b + w_s s_1 + w_m (s_1 - s_other)).

The fused distribution is the mixture ``c p_match + (1 - c) p_network``: a strong match makes its
space group dominate; with no good match ``c`` is small and the network's answer stands. ``T``, ``b``,
``w_s`` and ``w_m`` are fitted by maximum likelihood of the true space group on simulated, realistically
augmented patterns of library structures and of held-out prototypes left out of the library
(:func:`synthxrd.match.fusion_fit.fit_fusion`, run by ``synthxrd export --library``), so the mixture
is calibrated where the library knows the structure and where it does not.

A rule belongs to one network and one library: it is stored in the exported model (checkpoint key
``fusion``) with the hash of the network's weights and the fingerprint of the library
(:attr:`FusionRule.network`, :attr:`FusionRule.library`), and :meth:`FusionRule.check` refuses
another pair.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthxrd.errors import DataError
from synthxrd.wyckoff import N_SPACEGROUPS

__all__ = ["FusionRule", "match_features", "short_hash"]

_PARAMETERS = ("temperature", "bias", "w_score", "w_margin")


def short_hash(fingerprint: str | None) -> str:
    """The first 12 hex digits of a ``sha256:...`` fingerprint (for messages), or ``none``."""
    return fingerprint.split(":", 1)[-1][:12] if fingerprint else "none"


def match_features(matches: Sequence) -> tuple[float, float]:
    """(best score, margin over the best match of another space group) of one pattern's matches."""
    if not matches:
        return 0.0, 0.0
    best = matches[0]
    other = next((m.score for m in matches[1:] if m.spacegroup != best.spacegroup), 0.0)
    return float(best.score), float(best.score - other)


@dataclass(frozen=True)
class FusionRule:
    """Parameters of the fusion (module docstring) and where they came from.

    Attributes
    ----------
    temperature : T of p_match (score units).
    bias, w_score, w_margin : logistic model of "the best match is right".
    metadata : how the rule was fitted (data, counts, package version), JSON-compatible; a bound rule
        (:meth:`bind`) also holds ``network`` (hash of the network's weights,
        :func:`synthxrd.models.checkpoint.weights_fingerprint`), ``library``
        (:attr:`synthxrd.match.ReferenceLibrary.fingerprint`) and ``library_label``.
    """

    temperature: float = 0.02
    bias: float = -8.0
    w_score: float = 10.0
    w_margin: float = 20.0
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        values = (self.temperature, self.bias, self.w_score, self.w_margin)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values) or self.temperature <= 0:
            raise DataError(f"fusion rule: parameters must be finite numbers with temperature > 0, got {values}")

    # ---- the rule -------------------------------------------------------------------------------

    def match_probabilities(self, matches: Sequence) -> np.ndarray:
        """(230,) p_match of one pattern's matches (zeros if there are none)."""
        p = np.zeros(N_SPACEGROUPS)
        if not matches:
            return p
        scores = np.array([m.score for m in matches], np.float64)
        w = np.exp((scores - scores.max()) / self.temperature)
        np.add.at(p, np.array([m.spacegroup for m in matches]) - 1, w)
        return p / p.sum()

    def confidence(self, matches: Sequence) -> float:
        """c: probability that the best match's space group is right."""
        if not matches:
            return 0.0
        s, margin = match_features(matches)
        z = self.bias + self.w_score * s + self.w_margin * margin
        return float(1.0 / (1.0 + math.exp(-z))) if z > -700 else 0.0

    def fuse(self, network: np.ndarray | None, matches: Sequence) -> np.ndarray:
        """(230,) fused probabilities: c p_match + (1 - c) p_network; p_match alone when ``network`` is None."""
        p_match = self.match_probabilities(matches)
        if network is None:
            return p_match
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
        return FusionRule(self.temperature, self.bias, self.w_score, self.w_margin, metadata=meta)

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
            return cls(**{k: float(data[k]) for k in _PARAMETERS}, metadata=dict(data.get("metadata", {})))
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
    def fit(cls, network: np.ndarray, matches: Sequence[Sequence], labels, *, metadata: dict | None = None
            ) -> FusionRule:
        """Maximum-likelihood parameters on patterns with known space groups.

        network : (N, 230) network probabilities; matches : N match lists; labels : (N,) ITA numbers.
        Minimises the mean negative log-likelihood of the true group under the fused distribution
        (Nelder-Mead from the defaults, then from the best point again).
        """
        from scipy.optimize import minimize

        labels = np.asarray(labels, np.int64)
        net = np.asarray(network, np.float64)
        feats = np.array([match_features(m) for m in matches])
        max_k = max((len(m) for m in matches), default=1)
        scores = np.full((len(matches), max_k), -np.inf)
        same = np.zeros((len(matches), max_k))
        for i, ms in enumerate(matches):
            for j, m in enumerate(ms):
                scores[i, j] = m.score
                same[i, j] = m.spacegroup == labels[i]
        p_net_true = net[np.arange(len(labels)), labels - 1]

        def nll(theta: np.ndarray) -> float:
            log_t, b, ws, wm = theta
            t = math.exp(log_t)
            with np.errstate(over="ignore", invalid="ignore"):
                w = np.exp((scores - scores[:, :1]) / t)
                w[~np.isfinite(w)] = 0.0
                p_match_true = (w * same).sum(1) / np.maximum(w.sum(1), 1e-300)
                c = 1.0 / (1.0 + np.exp(-(b + ws * feats[:, 0] + wm * feats[:, 1])))
            p = c * p_match_true + (1 - c) * p_net_true
            return float(-np.mean(np.log(np.maximum(p, 1e-12))))

        start = cls()
        x0 = np.array([math.log(start.temperature), start.bias, start.w_score, start.w_margin])
        best = minimize(nll, x0, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-4, "fatol": 1e-7})
        best = minimize(nll, best.x, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-5, "fatol": 1e-8})
        log_t, b, ws, wm = (float(v) for v in best.x)
        meta = dict(metadata or {}, n_patterns=int(len(labels)), mean_nll=float(best.fun))
        return cls(math.exp(log_t), b, ws, wm, metadata=meta)
