"""Powder X-ray diffraction simulation: exact peak lists and broadened patterns.

``peaks`` equals pymatgen's ``XRDCalculator`` (to 1e-6), ``pattern`` broadens the peaks with the
Scherrer Gaussian of docs/architecture.md, ``patterns`` does the same for a :class:`~synthxrd.structure.CrystalBatch`
in one compiled call. Importing this package imports nothing heavy: the names below are loaded on first
use (PEP 562), so ``synthxrd.simulate.common`` (grids, wavelengths) and ``synthxrd.simulate.physics``
work without numba (inference, a GPU node), and torch, ray and matplotlib are never imported here.
"""

from __future__ import annotations

import importlib
import sys
import types

#: public name -> submodule that defines it
_SOURCES = {
    **dict.fromkeys(("DEFAULT_SIZE_RANGE_NM", "DEFAULT_TWO_THETA_RANGE", "DEFAULT_WAVELENGTH", "SCHERRER_K", "Grid",
                     "resolve_wavelength", "wavelengths"), "synthxrd.simulate.common"),
    **dict.fromkeys(("PeakList", "ReflectionBatch", "pattern", "patterns", "peak_list", "peaks", "reflections",
                     "smear"), "synthxrd.simulate.pattern"),
    **dict.fromkeys(("Crystal", "CrystalBatch"), "synthxrd.structure"),
}

__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'synthxrd.simulate' has no attribute {name!r}")
    try:
        module = importlib.import_module(source)
    except ImportError as exc:  # numba missing (a GPU node): physics, common and torch_sim stay usable
        if exc.name != "numba":
            raise
        raise ImportError(f"synthxrd.simulate.{name} needs numba ({exc}); use synthxrd.simulate.torch_sim") from exc
    value = getattr(module, name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """This package's module type: importing the submodule ``synthxrd.simulate.pattern`` binds the
    package attribute ``pattern``; keep that name for the function :func:`pattern` (as an eager
    ``from .pattern import pattern`` would) instead of the submodule, which stays in ``sys.modules``."""

    def __setattr__(self, name: str, value) -> None:
        if name in _SOURCES and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
