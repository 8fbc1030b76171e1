"""Powder X-ray diffraction simulation: exact peak lists and broadened patterns.

``peaks`` equals pymatgen's ``XRDCalculator`` (to 1e-6), ``pattern`` broadens the peaks with the
Scherrer Gaussian of DESIGN.md, ``patterns`` does the same for a :class:`~synthxrd.structure.CrystalBatch`
in one compiled call. Importing this module does not import torch, ray or matplotlib.
"""

from __future__ import annotations

from synthxrd.simulate.pattern import (
    DEFAULT_SIZE_RANGE_NM,
    DEFAULT_TWO_THETA_RANGE,
    DEFAULT_WAVELENGTH,
    SCHERRER_K,
    Grid,
    PeakList,
    pattern,
    patterns,
    peak_list,
    peaks,
    resolve_wavelength,
    smear,
    wavelengths,
)
from synthxrd.structure import Crystal, CrystalBatch

__all__ = [
    "DEFAULT_SIZE_RANGE_NM",
    "DEFAULT_TWO_THETA_RANGE",
    "DEFAULT_WAVELENGTH",
    "SCHERRER_K",
    "Crystal",
    "CrystalBatch",
    "Grid",
    "PeakList",
    "pattern",
    "patterns",
    "peak_list",
    "peaks",
    "resolve_wavelength",
    "smear",
    "wavelengths",
]
