"""Powder X-ray diffraction simulation: exact peak lists and broadened patterns.

``peaks`` equals pymatgen's ``XRDCalculator`` (to 1e-6), ``pattern`` broadens the peaks with the
Scherrer Gaussian of DESIGN.md, ``patterns`` does the same for a :class:`~synthxrd.structure.CrystalBatch`
in one compiled call. Importing this module does not import torch, ray or matplotlib.
"""

from __future__ import annotations

try:
    from synthxrd.simulate.pattern import (
        DEFAULT_SIZE_RANGE_NM,
        DEFAULT_TWO_THETA_RANGE,
        DEFAULT_WAVELENGTH,
        SCHERRER_K,
        Grid,
        PeakList,
        ReflectionBatch,
        pattern,
        patterns,
        peak_list,
        peaks,
        reflections,
        resolve_wavelength,
        smear,
        wavelengths,
    )
    from synthxrd.structure import Crystal, CrystalBatch
except ImportError as exc:  # numba missing (a GPU node): physics and torch_sim stay usable
    if exc.name != "numba":
        raise
    _NUMBA_MISSING = exc

    def __getattr__(name: str):
        if name in __all__:
            raise ImportError(f"synthxrd.simulate.{name} needs numba ({_NUMBA_MISSING}); "
                              "use synthxrd.simulate.torch_sim") from _NUMBA_MISSING
        raise AttributeError(name)


__all__ = [
    "DEFAULT_SIZE_RANGE_NM",
    "DEFAULT_TWO_THETA_RANGE",
    "DEFAULT_WAVELENGTH",
    "SCHERRER_K",
    "Crystal",
    "CrystalBatch",
    "Grid",
    "PeakList",
    "ReflectionBatch",
    "pattern",
    "patterns",
    "peak_list",
    "peaks",
    "reflections",
    "resolve_wavelength",
    "smear",
    "wavelengths",
]
