"""Space-group probabilities of powder patterns from a trained network.

:class:`Predictor` wraps a checkpoint of :mod:`synthxrd.train` (or the model shipped with the package)
and turns patterns into probabilities over the 230 space groups: column ``i`` is ITA number
``i + 1``; groups the network has no class for get probability 0. Inputs go through the steps the
network was trained on, as its checkpoint states them (:mod:`synthxrd.models.checkpoint`): onto the
pattern grid (5-90 degrees at 0.01 degrees, at the model's wavelength) with
:func:`synthxrd.io.resample`, then :meth:`~synthxrd.models.checkpoint.InputSpec.apply` (averaged onto
the model grid, negative values clipped, normalised to maximum 1, square root); the logits are
divided by the checkpoint's calibrated temperature and turned into probabilities with a softmax.
A prediction whose top probability is below ``threshold`` is flagged ``uncertain`` (abstention:
``synthxrd evaluate`` reports accuracy against coverage for these thresholds). A pattern with no peak
that stands out of its noise (:func:`synthxrd.io.has_peaks`: a background alone) gets no space group:
:meth:`Predictor.predict_file` raises "no peaks found", :meth:`Predictor.identify` flags it.

Coarser answers that a powder pattern can decide more reliably are sums of these probabilities:
:func:`crystal_system_probabilities` (7 crystal systems) and :func:`extinction_group_probabilities`
(groups with the same systematic absences, :mod:`synthxrd.symmetry`).

The shipped model lives in ``synthxrd/resources/models/default.pt`` (a checkpoint of
``synthxrd train``); ``Predictor.load()`` without a path uses it, and says so clearly while none is
shipped.

Examples
--------
>>> predictor = Predictor.load("runs/park/best.pt")                      # doctest: +SKIP
>>> result = predictor.predict_file("quartz.xy")                         # doctest: +SKIP
>>> result.top(3)                                                        # doctest: +SKIP
[(154, 'P3_221', 0.41), (152, 'P3_121', 0.22), (180, 'P6_222', 0.05)]
>>> result.crystal_systems()["trigonal"]                                 # doctest: +SKIP
0.71
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import numpy as np

from synthxrd.errors import ConfigError, DataError
from synthxrd.models.checkpoint import EXPORT_KEYS, InputSpec, checkpoint_input, checkpoint_temperature, load_model
from synthxrd.models.device import resolve_device
from synthxrd.simulate.common import DEFAULT_WAVELENGTH, Grid
from synthxrd.symmetry import CRYSTAL_SYSTEMS, crystal_system_table, extinction_group_table, n_extinction_groups
from synthxrd.wyckoff import N_SPACEGROUPS, hermann_mauguin

__all__ = [
    "N_SPACEGROUPS",
    "SHIPPED_MODEL",
    "Prediction",
    "PredictionFailure",
    "Predictor",
    "ranking",
    "to_full",
    "top_k",
    "crystal_system_probabilities",
    "extinction_group_probabilities",
    "resolve_checkpoint",
    "run_folder",
    "failure_message",
    "plot_prediction",
]

#: The shipped model, relative to the package's ``resources`` folder.
SHIPPED_MODEL = "models/default.pt"
NO_SHIPPED_MODEL = "no pretrained model is shipped yet; pass a checkpoint (synthxrd train) with --model"
#: Patterns per forward pass.
BATCH_SIZE = 64
#: Matches per pattern that the fusion weighs (p_match, margin); more than any user asks to see.
FUSION_MATCHES = 50
#: Top probability below which a prediction is flagged uncertain (see docs/search_match.md, coverage).
DEFAULT_THRESHOLD = 0.5


# --------------------------------------------------------------------------------------------------
# probabilities over the 230 groups and their sums


def to_full(class_probabilities, classes) -> np.ndarray:
    """(N, C) probabilities of the network's classes -> (N, 230), column i = ITA number i + 1, 0 elsewhere."""
    p = np.atleast_2d(np.asarray(class_probabilities, np.float64))
    classes = np.asarray(classes, np.int64)
    if p.shape[1] != len(classes):
        raise ValueError(f"{p.shape[1]} probability columns for {len(classes)} classes")
    out = np.zeros((len(p), N_SPACEGROUPS), np.float64)
    out[:, classes - 1] = p
    return out


def _check_full(probabilities) -> np.ndarray:
    p = np.asarray(probabilities, np.float64)
    if p.shape[-1] != N_SPACEGROUPS:
        raise ValueError(f"expected probabilities over the 230 space groups (last axis 230), got shape {p.shape}")
    return p


def ranking(scores, k: int) -> np.ndarray:
    """(N, k) column indices of the ``k`` largest scores of each row of (N, C) ``scores``, best first;
    ties go to the lower column (the lower ITA number). The one ranking of predict, evaluate and train."""
    return np.argsort(-np.atleast_2d(np.asarray(scores)), axis=1, kind="stable")[:, :max(0, int(k))]


def top_k(probabilities, k: int = 5) -> list[tuple[int, str, float]]:
    """The ``k`` most probable space groups of one (230,) row: (ITA number, Hermann–Mauguin symbol, probability).

    Ties are broken by the lower ITA number; groups with probability 0 are never listed.
    """
    p = _check_full(probabilities)
    if p.ndim != 1:
        raise ValueError(f"top_k takes one (230,) row, got shape {p.shape}")
    return [(int(i) + 1, hermann_mauguin(int(i) + 1), float(p[i])) for i in ranking(p, k)[0] if p[i] > 0]


def crystal_system_probabilities(probabilities) -> np.ndarray:
    """(..., 230) -> (..., 7): summed probabilities per crystal system, in the order of
    :data:`synthxrd.symmetry.CRYSTAL_SYSTEMS` (triclinic ... cubic)."""
    p = _check_full(probabilities)
    onehot = np.zeros((N_SPACEGROUPS, len(CRYSTAL_SYSTEMS)))
    onehot[np.arange(N_SPACEGROUPS), crystal_system_table()[1:]] = 1.0
    return p @ onehot


def extinction_group_probabilities(probabilities) -> np.ndarray:
    """(..., 230) -> (..., K): summed probabilities per extinction group; column j is id j + 1
    (:func:`synthxrd.symmetry.extinction_group`)."""
    p = _check_full(probabilities)
    onehot = np.zeros((N_SPACEGROUPS, n_extinction_groups()))
    onehot[np.arange(N_SPACEGROUPS), extinction_group_table()[1:] - 1] = 1.0
    return p @ onehot


# --------------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class Prediction:
    """Probabilities of one pattern.

    Attributes
    ----------
    source : file name (or a label) of the pattern.
    probabilities : (230,) float64 over ITA numbers 1..230, sums to 1, 0 for groups the model lacks.
    pattern : (8501,) float32 the pattern on the pattern grid (5-90 degrees, 0.01 degree step, the
        model's wavelength), maximum 1, or None.
    info : what :func:`synthxrd.io.load_for_model` reported (coverage, wavelength, warnings, ...),
        JSON-compatible.
    matches : best-matching library structures (:class:`synthxrd.match.Match`), best first; empty
        without a library.
    network, search : (230,) the network's and the search's own probabilities (``probabilities`` is
        their fusion), or None without a library.
    confidence : probability that the best match's space group is right (fusion weight), or None.
    known : probability that the library holds the structure (the fusion rule's ``known``), or None.
    no_known_phase : no library structure explains the pattern (``known`` below the rule's cut).
    uncertain : the top probability is below the predictor's threshold (abstain from this answer).
    """

    source: str
    probabilities: np.ndarray
    pattern: np.ndarray | None = field(default=None, repr=False)
    info: dict[str, Any] = field(default_factory=dict, repr=False)
    matches: list = field(default_factory=list, repr=False)
    network: np.ndarray | None = field(default=None, repr=False)
    search: np.ndarray | None = field(default=None, repr=False)
    confidence: float | None = None
    known: float | None = None
    no_known_phase: bool = False
    uncertain: bool = False

    ok = True

    def top(self, k: int = 5) -> list[tuple[int, str, float]]:
        """The ``k`` most probable space groups: (ITA number, symbol, probability)."""
        return top_k(self.probabilities, k)

    def crystal_systems(self) -> dict[str, float]:
        """Probability of each of the 7 crystal systems (sum of its groups' probabilities)."""
        return dict(zip(CRYSTAL_SYSTEMS, crystal_system_probabilities(self.probabilities).tolist()))

    def extinction_groups(self, k: int = 3) -> list[tuple[int, tuple[int, ...], float]]:
        """The ``k`` most probable extinction groups: (id, member ITA numbers, probability)."""
        from synthxrd.symmetry import members

        p = extinction_group_probabilities(self.probabilities)
        return [(int(j) + 1, members(int(j) + 1), float(p[j])) for j in ranking(p, k)[0] if p[j] > 0]

    def to_dict(self, k: int = 5) -> dict[str, Any]:
        """JSON-compatible summary: top-k groups, crystal systems, top extinction groups, info."""
        out = {
            "source": self.source,
            "ok": True,
            "uncertain": self.uncertain,
            "top": [{"spacegroup": n, "symbol": s, "probability": p} for n, s, p in self.top(k)],
            "crystal_systems": self.crystal_systems(),
            "extinction_groups": [{"id": g, "spacegroups": list(m), "probability": p}
                                  for g, m, p in self.extinction_groups(3)],
            "info": self.info,
        }
        if self.network is not None:
            out["network_top"] = [{"spacegroup": n, "symbol": s, "probability": p}
                                  for n, s, p in top_k(self.network, k)]
        if self.search is not None:
            out["matches"] = [m.to_dict() for m in self.matches]
            out["match_confidence"] = self.confidence
            out["known_phase_probability"] = self.known
            out["no_known_phase"] = self.no_known_phase
        return out


@dataclass(frozen=True)
class PredictionFailure:
    """A pattern that could not be read or predicted (``predict_files(..., errors="collect")``)."""

    source: str
    error: str

    ok = False

    def to_dict(self, k: int = 5) -> dict[str, Any]:
        return {"source": self.source, "ok": False, "error": self.error}


def _jsonable_info(info: dict[str, Any]) -> dict[str, Any]:
    meta = info.get("metadata", {})
    keep = ("coverage", "covered_range", "wavelength", "wavelength_source", "model_wavelength", "converted",
            "n_dropped", "trimmed_padding", "method", "n_clipped")
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in info.items() if k in keep}
    out["format"] = meta.get("format")
    out["n_points"] = meta.get("n_points")
    out["two_theta_range"] = list(meta["two_theta_range"]) if meta.get("two_theta_range") else None
    out["warnings"] = [str(w) for w in info.get("warnings", [])]
    return out


# --------------------------------------------------------------------------------------------------
# the predictor


def resolve_checkpoint(path: str | Path | None) -> Path | None:
    """The checkpoint file of ``path``: a file as is; a run folder's ``best.pt``, else its ``checkpoint.pt``.

    ``None`` gives None (the shipped model). :class:`DataError` if nothing is there.
    """
    if path is None:
        return None
    p = Path(path)
    if p.is_dir():
        for name in ("best.pt", "checkpoint.pt"):
            if (p / name).is_file():
                return p / name
        raise DataError(f"{path}: neither best.pt nor checkpoint.pt in this folder (not a `synthxrd train` run)")
    if not p.is_file():
        raise DataError(f"{path}: no such checkpoint file or run folder")
    return p


def run_folder(path: str | Path) -> Path | None:
    """The ``synthxrd train`` run folder (one holding ``config.toml`` and ``run.json``) that ``path`` is, or
    holds ``path`` (a checkpoint in it or in its ``snapshots/``); None if there is none. Its files are the
    run's to keep: no command writes over them (:func:`synthxrd.files.check_outputs`)."""
    p = Path(path)
    candidates = [p] if p.is_dir() else [p.parent] + ([p.parent.parent] if p.parent.name == "snapshots" else [])
    for folder in candidates:
        if (folder / "config.toml").is_file() and (folder / "run.json").is_file():
            return folder
    return None


class Predictor:
    """A trained network with its classes, ready to predict space groups.

    Parameters
    ----------
    model : torch module mapping (B, G) sqrt-patterns to (B, C) logits.
    classes : (C,) ITA numbers of the logits.
    metadata : checkpoint metadata (step, config, versions), JSON-compatible.
    source : where the model came from (path, or ``"shipped"``).
    device : torch device name (``auto``: CUDA if available).
    spec : the model's input (:class:`~synthxrd.models.checkpoint.InputSpec`: grid, wavelength, transform).
    temperature : softmax temperature (calibration; 1 = none).
    threshold : top probability below which a prediction is flagged uncertain; None: the fusion
        rule's (chosen on its calibration patterns), else :data:`DEFAULT_THRESHOLD`.
    library : a :class:`~synthxrd.match.ReferenceLibrary` whose search-match evidence is fused with
        the network's probabilities (:mod:`synthxrd.match.fusion`), or None for the network alone.
    fusion : the :class:`~synthxrd.match.fusion.FusionRule` of network and library; required with a
        library (:meth:`load` takes the model's own, or refuses).
    refine : whether the search's best candidates are refined and re-ranked before they are fused
        (``search(refine=...)``: a bool or a :class:`~synthxrd.match.rerank.RerankSettings`); None: as
        the fusion rule was fitted (:attr:`~synthxrd.match.fusion.FusionRule.refined`), since a rule
        weighs the evidence it was fitted on.
    """

    def __init__(self, model, classes, *, metadata: dict[str, Any] | None = None, source: str = "",
                 device: str = "cpu", spec: InputSpec = InputSpec(), temperature: float = 1.0,
                 threshold: float | None = None, library=None, fusion=None, refine=None) -> None:
        classes = np.asarray(classes, np.int64)
        if classes.ndim != 1 or not len(classes) or classes.min() < 1 or classes.max() > N_SPACEGROUPS \
                or len(np.unique(classes)) != len(classes):
            raise DataError(f"{source or 'model'}: classes must be distinct ITA numbers 1..230, "
                            f"got {classes.tolist()[:10]}...")
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.classes = classes
        self.metadata = dict(metadata or {})
        self.source = source
        if not (math.isfinite(temperature) and temperature > 0):
            raise ConfigError(f"temperature must be a positive number, got {temperature!r}")
        if threshold is None:
            threshold = fusion.threshold if library is not None and fusion is not None \
                and fusion.threshold is not None else DEFAULT_THRESHOLD
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold must lie in [0, 1], got {threshold!r}")
        self.spec = spec
        self.temperature = float(temperature)
        self.threshold = float(threshold)
        self.grid = Grid()  # the pattern grid: measured patterns are resampled onto it, the library searches on it
        self.wavelength = spec.wavelength
        self.library = library
        if library is not None and fusion is None:
            raise ConfigError(f"{source or 'model'}: a library needs a fusion rule (synthxrd.match.fusion) to "
                              "weigh its matches against the network; none given")
        self.fusion = fusion
        self.refine = bool(fusion is not None and fusion.refined) if refine is None else refine

    def __repr__(self) -> str:
        name = self.metadata.get("model_config", {}).get("name", type(self.model).__name__)
        lib = f", library={len(self.library)} structures" if self.library is not None else ""
        return f"Predictor({name}, {len(self.classes)} classes, source={self.source!r}{lib})"

    @classmethod
    def load(cls, path: str | Path | None = None, *, library="default", device: str = "auto",
             fusion=None, allow_foreign_fusion: bool = False, threshold: float | None = None,
             refine=None) -> Predictor:
        """Load a checkpoint file, a run folder (``best.pt``, else ``checkpoint.pt``) or, with None, the shipped model.

        Checkpoints are read with ``torch.load(weights_only=True)`` (never unpickled).

        Parameters
        ----------
        library : ``"default"`` (the reference library shipped with synthxrd), a library file, a
            :class:`~synthxrd.match.ReferenceLibrary`, or None for the network alone.
        fusion : a :class:`~synthxrd.match.fusion.FusionRule` or its JSON file; default: the rule stored
            in the checkpoint (``synthxrd export --library`` fits it). Only used with a library.
        allow_foreign_fusion : use ``fusion`` (or the checkpoint's rule) even if it was fitted with
            another network or against another library; otherwise that is an error.
        refine : refine and re-rank the search's best candidates before fusing them (see the class);
            None: as the rule was fitted.

        Raises
        ------
        DataError
            Missing or unreadable checkpoint or library; no shipped model yet (``path=None``); with a
            library: the checkpoint holds no fusion rule and none is given, or the rule belongs to
            another network or library (the message names both).
        """
        from synthxrd.match import ReferenceLibrary
        from synthxrd.match.fusion import FusionRule

        if library is not None and not isinstance(library, ReferenceLibrary):
            library = ReferenceLibrary.load(None if str(library) == "default" else library)
        rule_label = "the given fusion rule"
        if fusion is not None and not isinstance(fusion, FusionRule):
            rule_label = f"fusion rule {fusion}"
            fusion = FusionRule.load(fusion)
        with ExitStack() as stack:
            file = resolve_checkpoint(path)
            source = str(path)
            if file is None:
                resource = files("synthxrd") / "resources" / SHIPPED_MODEL
                if not resource.is_file():
                    raise DataError(NO_SHIPPED_MODEL)
                file = stack.enter_context(as_file(resource))
                source = "shipped"
            model, classes, meta = load_model(file)
        metadata = {k: meta[k] for k in (*EXPORT_KEYS, "export", "weights_sha256") if k in meta}
        metadata["checkpoint"] = str(file) if source != "shipped" else SHIPPED_MODEL
        if library is None:
            fusion = None
        else:
            model_label = "the shipped model" if source == "shipped" else str(path)
            if fusion is None:
                if "fusion" not in meta:
                    raise DataError(f"{model_label} holds no fusion rule for a library: export it with one "
                                    "(synthxrd export CHECKPOINT OUT --library default --source CIFS) to fit it, or "
                                    "use the network alone (library=None, --no-library)")
                rule_label = f"the fusion rule of {model_label}"
                fusion = FusionRule.from_dict(meta["fusion"], rule_label)
            if not allow_foreign_fusion:
                fusion.check(meta["weights_sha256"], library, network_temperature=checkpoint_temperature(meta),
                             rule_label=rule_label, model_label=model_label)
        return cls(model, classes, metadata=metadata, source=source, device=device, spec=checkpoint_input(meta),
                   temperature=checkpoint_temperature(meta), threshold=threshold, library=library, fusion=fusion,
                   refine=refine)

    # ---- arrays ---------------------------------------------------------------------------------

    def predict_grid(self, patterns, *, batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Probabilities (N, 230) of patterns on the pattern grid ((8501,) or (N, 8501), 5-90 degrees at 0.01).

        Each row goes through the checkpoint's :meth:`~synthxrd.models.checkpoint.InputSpec.apply`
        (the training stream's preprocessing); the logits are divided by the temperature.
        """
        import torch

        x = np.atleast_2d(np.asarray(patterns, np.float64))
        if x.ndim != 2 or x.shape[1] != self.grid.n:
            raise DataError(f"patterns on the pattern grid need {self.grid.n} points per row, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise DataError("patterns hold NaN or infinite values")
        if (bad := np.flatnonzero(~(x.max(axis=1) > 0))).size:
            raise DataError(f"pattern {int(bad[0])}: no positive intensity within the model grid "
                            f"{self.grid.start}-{self.grid.stop} degrees")
        inputs = self.spec.apply(x)
        out = []
        with torch.no_grad():
            for i in range(0, len(inputs), batch_size):
                logits = self.model(torch.as_tensor(inputs[i:i + batch_size], device=self.device))
                out.append(torch.softmax(logits.double() / self.temperature, dim=1).cpu().numpy())
        return to_full(np.concatenate(out), self.classes)

    def predict(self, two_theta, intensities, *, wavelength: float | str | None = None,
                elements=None, only_elements: bool = False, batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Probabilities (N, 230) of one pattern ((M,) intensities, N = 1) or a batch ((N, M)) on a shared axis.

        With a library, the network's probabilities fused with the search-match evidence
        (:meth:`identify`); without, the network's alone.

        Parameters
        ----------
        two_theta : (M,) degrees, strictly increasing.
        intensities : (M,) or (N, M).
        wavelength : of ``two_theta`` (Angstrom or a line name); default the model's (Cu K-alpha1).
            Other wavelengths are converted by Bragg's law first.
        elements, only_elements : chemistry filter of the search (:func:`synthxrd.match.search.search`).

        Returns
        -------
        (N, 230) float64, rows sum to 1; column i is ITA number i + 1.
        """
        return self.identify(two_theta, intensities, wavelength=wavelength, elements=elements,
                             only_elements=only_elements, batch_size=batch_size)["probabilities"]

    def identify(self, two_theta, intensities, *, wavelength: float | str | None = None, elements=None,
                 only_elements: bool = False, k: int = 10, batch_size: int = BATCH_SIZE,
                 phases: str | int | None = None) -> dict[str, Any]:
        """Everything :meth:`predict` knows about patterns on a shared axis.

        Returns a dict with ``probabilities`` (N, 230) (fused, or the network's without a library),
        ``network`` (N, 230), ``has_peaks`` (N,) bool and ``peak_significance`` (N,)
        (:func:`synthxrd.io.has_peaks`), and with a library ``search`` (N, 230) (p_match),
        ``confidence`` (N,), ``matches`` (N lists of the ``k`` best :class:`~synthxrd.match.Match`) and,
        where the rule has one, ``known`` (N,) (probability that the library holds the structure) and
        ``no_known_phase`` (N,) bool.
        A pattern with no peak gets no answer: its ``probabilities`` are uniform over the model's
        classes (``uncertain`` at any threshold above 1 / classes), with no match and confidence 0.
        With ``phases`` (``"auto"`` or N) and a library, also ``phases``: per pattern the list of its
        phases (:func:`synthxrd.mixture.identify_phases`: id, formula, space group, refined cell, weight
        fraction or intensity share, look-alikes); the fused space-group answer is the main phase's.
        """
        from synthxrd.io import integer_like

        grid_values, covered = self._on_grid(two_theta, intensities, wavelength)
        network = self.predict_grid(grid_values, batch_size=batch_size)
        out = self._fuse(network, grid_values, covered, elements, only_elements, k, integer_like(intensities))
        if phases is not None and self.library is not None:
            from synthxrd.mixture import identify_phases

            out["phases"] = [identify_phases(np.asarray(two_theta, np.float64), row, self.library,
                                             wavelength=self.wavelength if wavelength is None else wavelength,
                                             phases=phases, elements=elements, only_elements=only_elements
                                             ).to_dict()["phases"]
                             for row in np.atleast_2d(np.asarray(intensities, np.float64))]
        return out

    def _peaks(self, grid_values: np.ndarray, covered: np.ndarray, counts) -> np.ndarray:
        """(N,) peak significance of patterns on the pattern grid, over the points their file covers."""
        from synthxrd.io import peak_significance

        return peak_significance(grid_values[:, covered], self.grid.step, counts=counts)

    def _on_grid(self, two_theta, intensities, wavelength) -> tuple[np.ndarray, np.ndarray]:
        """(N, grid.n) patterns and the (grid.n,) covered points: :func:`synthxrd.io.prepare.to_grid`,
        the step that :meth:`predict_file` takes through :func:`synthxrd.io.load_for_model`."""
        from synthxrd.io.prepare import to_grid

        tt = np.asarray(two_theta, np.float64)
        y = np.asarray(intensities, np.float64)
        if tt.ndim != 1 or y.ndim not in (1, 2) or y.shape[-1] != tt.size:
            raise DataError(f"two_theta must be (M,) and intensities (M,) or (N, M); got {tt.shape} and {y.shape}")
        grid_values, covered, _ = to_grid(tt, np.atleast_2d(y), self.wavelength if wavelength is None else wavelength,
                                          model_wavelength=self.wavelength, grid=self.grid)
        return grid_values, covered

    def _fuse(self, network: np.ndarray, grid_values: np.ndarray, covered: np.ndarray, elements, only_elements: bool,
              k: int, counts) -> dict[str, Any]:
        from synthxrd.io import MIN_PEAK_SIGNIFICANCE

        significance = self._peaks(grid_values, covered, counts)
        peaks = significance >= MIN_PEAK_SIGNIFICANCE
        none = to_full(np.full((1, len(self.classes)), 1.0 / len(self.classes)), self.classes)[0]  # no answer
        out: dict[str, Any] = {"probabilities": np.where(peaks[:, None], network, none), "network": network,
                               "has_peaks": peaks, "peak_significance": significance}
        if self.library is None:
            return out
        idx = np.flatnonzero(covered)
        lo, hi = idx[0], idx[-1] + 1  # the search takes one interval; gaps inside are zeros
        rows = np.flatnonzero(peaks)
        found = self.library.search(self.grid.values()[lo:hi], np.clip(grid_values[rows, lo:hi], 0, None),
                                    k=max(k, FUSION_MATCHES), wavelength=self.wavelength, elements=elements,
                                    only_elements=only_elements, refine=self.refine) if rows.size else []
        matches: list[list] = [[] for _ in network]
        for i, m in zip(rows, found):
            matches[i] = m
        out["search"] = np.array([self.fusion.match_probabilities(m) if p else none for p, m in zip(peaks, matches)])
        out["confidence"] = np.array([self.fusion.confidence(m) if p else 0.0 for p, m in zip(peaks, matches)])
        if self.fusion.known is not None:
            out["known"] = np.array([self.fusion.known_probability(m) if p else 0.0 for p, m in zip(peaks, matches)])
            out["no_known_phase"] = np.array([bool(p) and self.fusion.no_known_phase(m) for p, m in zip(peaks, matches)])
        out["probabilities"] = np.array([self.fusion.fuse(q, m) if p else none
                                         for q, p, m in zip(network, peaks, matches)])
        out["matches"] = [m[:k] for m in matches]
        return out

    # ---- files ----------------------------------------------------------------------------------

    def predict_file(self, path: str | Path, *, wavelength: float | str | None = None, elements=None,
                     only_elements: bool = False, k: int = 10) -> Prediction:
        """Read a measured pattern (:func:`synthxrd.io.load_for_model`) and predict it.

        ``wavelength`` is used only where the file states none (a file that states none and gets none
        is read as Cu K-alpha1, with a note in ``info["warnings"]``). Warnings of the reader are kept in
        ``info["warnings"]`` (not raised). With a library the result carries the ``k`` best matches.
        :class:`DataError` naming the file if it cannot be used, or if it has no peaks ("no peaks
        found": a background alone gets no space group).
        """
        from synthxrd.io import load_for_model

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # load_for_model lists its warnings in info["warnings"]
            pattern, info = load_for_model(path, wavelength=wavelength, model_wavelength=self.wavelength,
                                           grid=self.grid)
        from synthxrd.io import MIN_PEAK_SIGNIFICANCE, no_peaks_error

        significance = float(self._peaks(pattern[None].astype(np.float64), info["coverage_mask"], info["counts"])[0])
        if significance < MIN_PEAK_SIGNIFICANCE:
            raise no_peaks_error(str(path), significance)
        network = self.predict_grid(pattern)
        try:
            result = self._fuse(network, pattern[None].astype(np.float64), info["coverage_mask"], elements,
                                only_elements, k, info["counts"])
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None
        probabilities = result["probabilities"][0]
        uncertain = bool(probabilities.max() < self.threshold)
        if self.library is None:
            return Prediction(str(path), probabilities, pattern, _jsonable_info(info), uncertain=uncertain)
        return Prediction(str(path), probabilities, pattern, _jsonable_info(info), matches=result["matches"][0],
                          network=network[0], search=result["search"][0], confidence=float(result["confidence"][0]),
                          known=float(result["known"][0]) if "known" in result else None,
                          no_known_phase=bool(result.get("no_known_phase", [False])[0]), uncertain=uncertain)

    def predict_files(self, paths: Iterable[str | Path], *, wavelength: float | str | None = None,
                      errors: str = "raise", elements=None, only_elements: bool = False,
                      k: int = 10) -> list[Prediction | PredictionFailure]:
        """:meth:`predict_file` of every path, in order.

        errors : ``"raise"`` (the first unusable file raises its :class:`DataError`) or ``"collect"``
            (a :class:`PredictionFailure` with a one-line message naming the file takes its place).
        """
        if errors not in ("raise", "collect"):
            raise ConfigError(f"errors must be 'raise' or 'collect', got {errors!r}")
        results: list[Prediction | PredictionFailure] = []
        for path in paths:
            try:
                results.append(self.predict_file(path, wavelength=wavelength, elements=elements,
                                                 only_elements=only_elements, k=k))
            except Exception as exc:
                if errors == "raise":
                    raise
                results.append(PredictionFailure(str(path), failure_message(str(path), exc)))
        return results


def failure_message(name: str, exc: BaseException) -> str:
    """One line naming the file: the text of a synthxrd error, anything else as 'unexpected error'."""
    from synthxrd.errors import SynthXRDError

    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, SynthXRDError):
        return text if text.startswith(name) else f"{name}: {text}"
    return f"{name}: unexpected error: {type(exc).__name__}: {text}"


# --------------------------------------------------------------------------------------------------
# figure


def plot_prediction(path: str | Path, prediction: Prediction, grid: Grid = Grid(), *, k: int = 10,
                    title: str = "", dpi: int = 110, wavelength: float = DEFAULT_WAVELENGTH) -> Path:
    """PNG of a prediction: the pattern as the model saw it, the top-``k`` groups and the crystal systems.

    matplotlib is imported here and draws on its own Agg canvas (no pyplot state). ``path`` is
    written as PNG whatever its suffix (so a temporary name works).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 6.0), dpi=dpi)
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(2, 2, height_ratios=(1.0, 1.1), width_ratios=(1.6, 1.0))
    ax = fig.add_subplot(gs[0, :])
    if prediction.pattern is not None:
        ax.plot(grid.values(), prediction.pattern, color="tab:blue", lw=0.8)
    ax.set_xlim(grid.start, grid.stop)
    ax.set_xlabel(f"2θ (°) at λ = {wavelength:.5g} Å")
    ax.set_ylabel("intensity (max 1)")
    from synthxrd.files import display_name

    src = Path(prediction.source)
    ax.set_title(display_name(title or (f"{src.parent.name}/{src.name}" if src.parent.name else src.name)), fontsize=10)

    top = prediction.top(k)
    ax = fig.add_subplot(gs[1, 0])
    labels = [f"{n}  {s}" for n, s, _ in top][::-1]
    values = [p for _, _, p in top][::-1]
    ax.barh(range(len(values)), values, color="tab:orange")
    ax.set_yticks(range(len(values)), labels, fontsize=8)
    ax.set_xlim(0, max([1e-9, *values]) * 1.15)
    ax.set_xlabel("probability")
    ax.set_title(f"top {len(top)} space groups", fontsize=9)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.3f}", va="center", fontsize=7)

    systems = prediction.crystal_systems()
    ax = fig.add_subplot(gs[1, 1])
    ax.barh(range(len(systems)), list(systems.values())[::-1], color="tab:green")
    ax.set_yticks(range(len(systems)), list(systems)[::-1], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    ax.set_title("crystal system", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    return path

