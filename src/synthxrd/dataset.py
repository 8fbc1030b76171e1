"""Datasets of crystals, patterns and labels in one HDF5 file (safe format, written atomically).

Layout (all datasets optional except the crystal arrays)::

    /lattices (N, 3, 3) f8   /frac_coords (M, 3) f8   /numbers (M,) i8   /occupancies (M,) f8
    /offsets (N+1,) i8       /spacegroups (N,) i8     /patterns (N, G) f4  /two_theta (G,) f8
    attrs: format = "synthxrd-dataset", format_version, metadata (JSON: config, seed, statistics
           version, package version, ...)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthxrd.errors import DataError
from synthxrd.files import atomic_write
from synthxrd.structure import CrystalBatch

__all__ = ["Dataset", "save_dataset", "load_dataset", "FORMAT_VERSION"]

FORMAT = "synthxrd-dataset"
FORMAT_VERSION = 1
_CRYSTAL_FIELDS = ("lattices", "frac_coords", "numbers", "occupancies", "offsets")


@dataclass(frozen=True)
class Dataset:
    """Crystals with optional patterns.

    Attributes
    ----------
    crystals : :class:`~synthxrd.structure.CrystalBatch` (with ``spacegroups`` labels when known).
    patterns : (N, G) float32 or None.
    two_theta : (G,) float64 grid of the patterns in degrees, or None.
    metadata : dict (config, seed, versions).
    """

    crystals: CrystalBatch
    patterns: np.ndarray | None = None
    two_theta: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def save_dataset(path: str | Path, dataset: Dataset) -> Path:
    """Write ``dataset`` to ``path`` (HDF5) atomically: a temporary file, then ``os.replace``."""
    import h5py

    c = dataset.crystals

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as h5:
            for name in _CRYSTAL_FIELDS:
                h5.create_dataset(name, data=getattr(c, name))
            if c.spacegroups is not None:
                h5.create_dataset("spacegroups", data=c.spacegroups)
            if dataset.patterns is not None:
                h5.create_dataset("patterns", data=np.asarray(dataset.patterns, np.float32),
                                  chunks=(min(len(dataset.patterns), 64), dataset.patterns.shape[1]),
                                  compression="gzip", compression_opts=4, shuffle=True)
                h5.create_dataset("two_theta", data=np.asarray(dataset.two_theta, np.float64))
            h5.attrs["format"] = FORMAT
            h5.attrs["format_version"] = FORMAT_VERSION
            h5.attrs["metadata"] = json.dumps(dataset.metadata, default=str)

    return atomic_write(path, write)


def load_dataset(path: str | Path) -> Dataset:
    """Read a dataset written by :func:`save_dataset`; :class:`DataError` naming the file on any problem."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such dataset file")
    try:
        with h5py.File(path, "r") as h5:
            if h5.attrs.get("format") != FORMAT:
                raise DataError(f"{path}: not a synthxrd dataset (attribute 'format' is {h5.attrs.get('format')!r})")
            if int(h5.attrs.get("format_version", -1)) > FORMAT_VERSION:
                raise DataError(f"{path}: dataset format_version {h5.attrs['format_version']} is newer than this "
                                f"synthxrd supports ({FORMAT_VERSION}); upgrade synthxrd")
            arrays = {name: h5[name][()] for name in _CRYSTAL_FIELDS}
            labels = h5["spacegroups"][()] if "spacegroups" in h5 else None
            patterns = h5["patterns"][()] if "patterns" in h5 else None
            two_theta = h5["two_theta"][()] if "two_theta" in h5 else None
            metadata = json.loads(h5.attrs.get("metadata", "{}"))
    except (OSError, KeyError) as exc:
        raise DataError(f"{path}: cannot read dataset ({exc})") from None
    return Dataset(CrystalBatch(**arrays, spacegroups=labels), patterns, two_theta, metadata)
