"""Exceptions raised by synthxrd.

Every message names what was wrong (file, field, value) and what is accepted, so that the CLI can
print it as one line without a traceback.
"""

from __future__ import annotations

__all__ = ["SynthXRDError", "ConfigError", "StructureError", "DataError", "OutputError"]


class SynthXRDError(Exception):
    """Base class of all errors raised on purpose by synthxrd."""


class ConfigError(SynthXRDError, ValueError):
    """An option, a config file key or a command-line value is invalid."""


class StructureError(SynthXRDError, ValueError):
    """A crystal structure cannot be read or used (malformed CIF, unknown element, NaN, ...)."""


class DataError(SynthXRDError, ValueError):
    """A data file (pattern, statistics, dataset) is missing, malformed or inconsistent."""


class OutputError(SynthXRDError, OSError):
    """An output cannot be written: its file system is full, over quota or read-only. Nothing partial is
    left (:func:`synthxrd.files.atomic_write`); the command stops."""
