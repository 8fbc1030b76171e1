"""Search-match: identify measured patterns against a reference library of known structures.

:class:`ReferenceLibrary` holds the reflections of known structures in a wavelength-independent form
(d, |F|^2 m, hkl); :meth:`ReferenceLibrary.search` ranks them against measured patterns, tolerant of
lattice mismatch, zero shift, peak shape, K-alpha2, background and noise (:mod:`synthxrd.match.search`).
Loads without torch, ray or matplotlib.
"""

from __future__ import annotations

from synthxrd.match.library import (
    DEFAULT_D_MIN,
    DEFAULT_MIN_INTENSITY,
    LibraryEntry,
    ReferenceLibrary,
    element_mask,
    structure_reflections,
)
from synthxrd.match.search import Match, SearchSettings, search

__all__ = [
    "DEFAULT_D_MIN",
    "DEFAULT_MIN_INTENSITY",
    "LibraryEntry",
    "Match",
    "ReferenceLibrary",
    "SearchSettings",
    "element_mask",
    "search",
    "structure_reflections",
]
