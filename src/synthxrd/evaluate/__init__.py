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
    On a finite set it is biased upward; :meth:`Evaluation.summary` gives beside it ``ece_floor``, the
    ECE that perfectly calibrated probabilities with the same confidences would show
    (:func:`calibrated_ece`; mean and 95th percentile), the table's "ECE if calibrated".

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

from synthxrd.evaluate.evaluation import Evaluation
from synthxrd.io.manifest import ManifestEntry, read_manifest
from synthxrd.evaluate.report import OUTPUT_FILES, plot_confusion, plot_reliability, write_report  # noqa: F401
from synthxrd.evaluate.run import (calibrate_on_validation_set, evaluate_dataset, evaluate_manifest, evaluate_patterns,
                                   evaluate_validation_set, temperature_report)
from synthxrd.evaluate.scoring import (COVERAGE_THRESHOLDS, MATCH_BINS, N_BINS, N_CONFUSION_GROUPS,  # noqa: F401
                                       calibrated_ece, expected_calibration_error, metrics, prior_probabilities,
                                       topk_hits)

__all__ = [
    "N_BINS",
    "OUTPUT_FILES",
    "ManifestEntry",
    "Evaluation",
    "read_manifest",
    "topk_hits",
    "calibrated_ece",
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
