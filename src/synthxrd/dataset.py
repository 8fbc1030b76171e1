"""Datasets of crystals, patterns and labels in one HDF5 file (safe format, written atomically), and
the reader of validation caches.

Layout (all datasets optional except the crystal arrays)::

    /lattices (N, 3, 3) f8   /frac_coords (M, 3) f8   /numbers (M,) i8   /occupancies (M,) f8
    /offsets (N+1,) i8       /spacegroups (N,) i8     /patterns (N, G) f4  /two_theta (G,) f8
    attrs: format = "synthxrd-dataset", format_version, metadata (JSON: config, seed, statistics
           version, package version, ...)

A validation cache (built by :mod:`synthxrd.validation`, a training-side module) is a folder of such
files, one per set, with ``/validation/ids`` and per-crystal extras, and a ``manifest.json``;
:func:`load_validation_sets` reads it here, so that evaluation (inference side) never imports the
builder.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthxrd.errors import ConfigError, DataError
from synthxrd.files import atomic_write
from synthxrd.structure import CrystalBatch

__all__ = ["Dataset", "save_dataset", "load_dataset", "class_rows", "FORMAT_VERSION", "MANIFEST", "VALIDATION_FORMAT_VERSION",
           "Manifest", "ValidationSet", "load_validation_sets", "sha256_file", "rebuild_hint"]

FORMAT = "synthxrd-dataset"
FORMAT_VERSION = 1
_CRYSTAL_FIELDS = ("lattices", "frac_coords", "numbers", "occupancies", "offsets")
#: The manifest of a validation cache folder, written last.
MANIFEST = "manifest.json"
#: Layout of a validation cache folder; a manifest of another version is rebuilt.
VALIDATION_FORMAT_VERSION = 1


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


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# Validation caches


def rebuild_hint(validation_dir: str | Path, set_name: str = "calibration") -> str:
    """How to build the validation set ``set_name`` into ``validation_dir`` (for error messages)."""
    which = ("its default sets include calibration" if set_name == "calibration"
             else f"name {set_name} among its --sets")
    return f"`synthxrd validation build --out {validation_dir} --source COLLECTION` ({which})"


@dataclass(frozen=True)
class Manifest:
    """Contents of ``manifest.json`` of a validation cache (a JSON object), with helpers.

    Keys: ``kind``, ``format_version``, ``created``, ``synthxrd_version``, ``spglib_version``,
    ``source`` (path, fingerprint, index), ``split`` (path, sha256, counts), ``statistics`` (path,
    format_version, sha256, n_structures, created, split_sha256), ``classes``, ``seed``, ``n_random``,
    ``filters`` (symprec, strict_symprec, max_sites, max_volume, occupancy_tol, grid, wavelength,
    crystallite sizes), ``sets`` (per set: file, count, bytes, sha256, description, n_classes_present,
    class_counts, mismatch; gap sets also ``failures``: n, n_match, by_reason, the first failures),
    ``test_part`` (counts, failures), ``mismatch`` (over the analysed test part), ``build_time_s``,
    ``workers``.

    Attributes
    ----------
    data : dict, the JSON object.
    path : Path of ``manifest.json``.
    reused : True when :func:`ensure_validation_sets` found the cache up to date.
    """

    data: dict[str, Any]
    path: Path
    reused: bool = False

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @property
    def sets(self) -> dict[str, dict[str, Any]]:
        return self.data["sets"]

    @property
    def classes(self) -> list[int]:
        return list(self.data["classes"])

    @property
    def seed(self) -> int:
        return int(self.data["seed"])

    def counts(self) -> dict[str, int]:
        """Crystals per set."""
        return {name: int(info["count"]) for name, info in self.sets.items()}

    def file(self, name: str) -> Path:
        """Path of the HDF5 file of set ``name``."""
        if name not in self.sets:
            raise ConfigError(f"{self.path}: no validation set {name!r}; built: {', '.join(self.sets)}")
        return self.path.parent / self.sets[name]["file"]

    @classmethod
    def load(cls, out_dir: str | Path) -> Manifest:
        """Read ``<out_dir>/manifest.json``.

        Raises
        ------
        DataError
            If it is missing or not a validation manifest of this format version.
        """
        path = Path(out_dir) / MANIFEST
        if not path.is_file():
            raise DataError(f"{path}: no validation manifest (build the sets with `synthxrd validation build`)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read the manifest ({exc})") from None
        if not isinstance(data, dict) or data.get("kind") != "synthxrd.validation":
            raise DataError(f"{path}: not a synthxrd validation manifest")
        if data.get("format_version") != VALIDATION_FORMAT_VERSION:
            raise DataError(f"{path}: format_version {data.get('format_version')!r}, expected {VALIDATION_FORMAT_VERSION}; "
                            "rebuild the sets")
        return cls(data, path)


@dataclass(frozen=True)
class ValidationSet(Dataset):
    """A :class:`~synthxrd.dataset.Dataset` with the structure ids and per-crystal extras of one set.

    Attributes
    ----------
    name : set name (one of :data:`synthxrd.validation.SET_NAMES`).
    ids : (N,) str structure ids (``random-000000``... for the random set; a gap crystal has the id of
        the ``match`` crystal it was made from).
    extra : per-crystal arrays: ``crystallite_size_nm``; real sets: ``n_sites``,
        ``conventional_volume``, ``spacegroups_strict`` (spglib at the strict tolerance, 0 = none),
        ``ordered``; random set: ``spacegroups_found`` (spglib at symprec, 0 = none); gap sets:
        ``spacegroups_found``, ``n_sites``, ``conventional_volume`` (of the original),
        ``cell_volume`` (of the randomized cell), ``ordered``.
    """

    name: str = ""
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, "<U1"))
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.crystals)


def class_rows(spacegroups, classes, max_patterns: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(rows, class indices) of the patterns whose space group is one of ``classes`` (sorted ITA
    numbers of a model's logits): all of them, or a fixed subsample of ``max_patterns`` rows drawn
    with ``seed`` (the validation subsample of the trainer and of calibration)."""
    index = {int(g): i for i, g in enumerate(classes)}
    labels = np.array([index.get(int(g), -1) for g in spacegroups], np.int64)
    rows = np.flatnonzero(labels >= 0)
    if 0 < max_patterns < len(rows):
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_patterns, replace=False))
    return rows, labels[rows]


def load_validation_sets(out_dir: str | Path, names: Iterable[str] | None = None, *,
                         verify: bool = False) -> dict[str, ValidationSet]:
    """Read the sets of a cache folder (all those in its manifest, or ``names``).

    Parameters
    ----------
    verify : also compare each file's SHA-256 with the manifest.

    Raises
    ------
    DataError
        If the manifest or a file is missing, or (``verify``) a file differs from the manifest.
    ConfigError
        If a requested set was not built.
    """
    import h5py

    manifest = Manifest.load(out_dir)
    wanted = list(manifest.sets) if names is None else list(names)
    result: dict[str, ValidationSet] = {}
    for name in wanted:
        path = manifest.file(name)
        if verify and sha256_file(path) != manifest.sets[name]["sha256"]:
            raise DataError(f"{path}: contents differ from the manifest (SHA-256); rebuild the validation sets")
        base = load_dataset(path)
        try:
            with h5py.File(path, "r") as h5:
                g = h5["validation"]
                ids = np.array([s.decode() if isinstance(s, bytes) else str(s) for s in g["ids"][()]], dtype=str)
                extra = {k: g[k][()] for k in g if k != "ids"}
        except (OSError, KeyError) as exc:
            raise DataError(f"{path}: not a validation set file ({exc})") from None
        if len(ids) != len(base.crystals):
            raise DataError(f"{path}: {len(ids)} ids for {len(base.crystals)} crystals")
        result[name] = ValidationSet(base.crystals, base.patterns, base.two_theta, base.metadata, name=name,
                                     ids=ids if len(ids) else np.zeros(0, "<U1"), extra=extra)
    return result
