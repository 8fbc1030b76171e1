"""Running a predictor on labelled patterns: manifests, datasets, pattern files, validation sets; temperature fits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthxrd.errors import ConfigError, DataError
from synthxrd.evaluate.evaluation import Evaluation, _baseline_for, _components, _evidence, _model_config
from synthxrd.io.manifest import ManifestEntry, read_manifest
from synthxrd.evaluate.scoring import expected_calibration_error
from synthxrd.predict import N_SPACEGROUPS, failure_message

if TYPE_CHECKING:
    from synthxrd.predict import Predictor

__all__ = ["evaluate_manifest", "evaluate_dataset", "evaluate_patterns", "evaluate_validation_set",
           "temperature_report", "calibrate_on_validation_set"]

#: Patterns per forward pass chunk when evaluating datasets.
_CHUNK = 1024


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
                                         [r.confidence for r in results], [r.matches for r in results],
                                         None if not results or results[0].known is None else
                                         [r.no_known_phase for r in results]),
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
    parts: dict[str, list[np.ndarray]] = {"probabilities": [], "network": [], "search": [], "confidence": [],
                                          "no_known_phase": []}
    matches: list = []
    for i in range(0, len(patterns), _CHUNK):
        out = predictor.identify(two_theta, patterns[i:i + _CHUNK], wavelength=wavelength)
        for name in parts:
            if name in out:
                parts[name].append(out[name])
        matches += out.get("matches", [])
    merged = {k: np.concatenate(v) if v else np.zeros((0, N_SPACEGROUPS)) for k, v in parts.items()}
    components = {k: merged[k] for k in ("network", "search")} if parts["search"] else {}
    evidence = _evidence(merged["confidence"] if parts["search"] else None, matches,
                         merged["no_known_phase"] if parts["no_known_phase"] else None)
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


def calibrate_on_validation_set(predictor: Predictor, validation_dir: str | Path, set_name: str = "calibration", *,
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
