"""synthxrd: space groups from powder X-ray diffraction patterns.

Stable API (docs/architecture.md)::

    from synthxrd import simulate
    simulate.peaks(structure)       # exact peak list, equal to pymatgen's XRDCalculator
    simulate.pattern(structure)     # Gaussian-Scherrer pattern on the 8501-point grid
    simulate.patterns(batch)        # many structures at once, no pymatgen objects

Submodules are imported lazily so that ``import synthxrd`` stays cheap.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("synthxrd")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "simulate", "structure", "errors"]


def __getattr__(name: str):
    if name in {"simulate", "structure", "errors", "generate", "stats", "io", "match"}:
        return importlib.import_module(f"synthxrd.{name}")
    raise AttributeError(f"module 'synthxrd' has no attribute {name!r}")
