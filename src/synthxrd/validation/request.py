"""What a validation cache is built from: :class:`ValidationRequest` and its resolution.

A request names its inputs (collection, split, statistics, classes) and options once, here; the
builders take one (or its fields as keywords). :func:`resolve_inputs` and :func:`resolve_classes` are
also how :func:`synthxrd.real.build_real_set` reads the same inputs.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthxrd.dataset import VALIDATION_FORMAT_VERSION
from synthxrd.errors import ConfigError, DataError
from synthxrd.stats import DEFAULT_SYMPREC, REPRESENTED_MIN_COUNT, Statistics, source_fingerprint
from synthxrd.wyckoff import N_SPACEGROUPS

if TYPE_CHECKING:
    from synthxrd.split import Split

__all__ = [
    "SET_NAMES",
    "DEFAULT_SETS",
    "GAP_SETS",
    "SET_PARTS",
    "DEFAULT_N_RANDOM",
    "MAX_SITES",
    "MAX_VOLUME",
    "STRICT_SYMPREC",
    "OCCUPANCY_TOL",
    "RANDOM_CHUNK",
    "CIF_CHUNK",
    "ValidationRequest",
    "resolve_inputs",
    "resolve_classes",
]

#: The sets, in build order.
SET_NAMES = ("random", "calibration", "match", "all", "match_pure", "match_random_coords", "match_random_lattice")
#: The sets built when none are named (the gap sets cost two more patterns per ``match`` crystal).
#: ``calibration`` is among them: the trainer selects its checkpoint and fits its temperature on it
#: (docs/architecture.md, "Evaluation protocol"); it about doubles the CIFs a build reads and analyses.
DEFAULT_SETS = ("random", "calibration", "match", "all", "match_pure")
#: The split part each real-crystal set is drawn from (the gap sets: from ``match``).
SET_PARTS = {"calibration": "calibration", "match": "test", "all": "test", "match_pure": "test",
             "match_random_coords": "test", "match_random_lattice": "test"}
#: The gap sets (:mod:`synthxrd.gap`), built from the ``match`` crystals: name -> seed tag of their stream.
GAP_SETS = {"match_random_coords": 0x636F, "match_random_lattice": 0x6C61}
DEFAULT_N_RANDOM = 2000
#: ``match`` (and ``calibration``): at most this many asymmetric-unit sites and this conventional-cell
#: volume (Å^3), the limits of the generator (reference: 100 sites, 7000 Å^3).
MAX_SITES = 100
MAX_VOLUME = 7000.0
#: Strict spglib tolerance (Å) the labels are compared with.
STRICT_SYMPREC = 1e-3
#: Occupancies below 1 - this are partial (the tolerance of synthxrd.stats).
OCCUPANCY_TOL = 1e-3
#: Synthetic crystals per task (and per seeded stream) of the random set.
RANDOM_CHUNK = 250
#: CIFs per task sent to a worker.
CIF_CHUNK = 64


@dataclass(frozen=True)
class ValidationRequest:
    """The sets to build and what from: the options of :func:`~synthxrd.validation.build_validation_sets`
    and :func:`~synthxrd.validation.ensure_validation_sets`.

    Attributes
    ----------
    source : folder, tar archive or CIF of the structure collection (required), e.g.
        ``../shared/data/mp_experimental/structures.tar.xz``.
    split : split CSV path, a :class:`~synthxrd.split.Split`, or None for the shipped split.
    statistics : statistics file, a :class:`~synthxrd.stats.Statistics`, or None for the shipped ones
        (the generator of the random set; its represented groups are the default classes).
    classes : space groups (labels) to keep; default ``statistics.represented(min_count)``.
    n_random : crystals of the random set.
    seed : seed of the random set and of the crystallite sizes.
    sets : which of :data:`SET_NAMES` to build (default :data:`DEFAULT_SETS`; the gap sets on request).
    symprec : spglib tolerance of the labels (default that of the statistics, 0.1).
    strict_symprec : the strict tolerance the labels are compared with.
    max_sites, max_volume : filters of ``match`` and ``calibration`` (asymmetric-unit sites; conventional-cell
        volume, Å^3).
    min_count : for the default classes (default :data:`~synthxrd.stats.REPRESENTED_MIN_COUNT`).
    """

    source: str | Path | None = None
    split: str | Path | Split | None = None
    statistics: str | Path | Statistics | None = None
    classes: Iterable[int] | None = None
    n_random: int = DEFAULT_N_RANDOM
    seed: int = 0
    sets: Sequence[str] = DEFAULT_SETS
    symprec: float | None = None
    strict_symprec: float = STRICT_SYMPREC
    max_sites: int = MAX_SITES
    max_volume: float = MAX_VOLUME
    min_count: int | None = None

    @classmethod
    def of(cls, request: ValidationRequest | None, options: dict[str, Any]) -> ValidationRequest:
        """``request``, or a request of the keyword ``options`` (not both)."""
        if request is not None:
            if options:
                raise ConfigError(f"give a ValidationRequest or options, not both (got {sorted(options)})")
            return request
        unknown = sorted(set(options) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown validation options {unknown}; accepted: "
                              f"{', '.join(f.name for f in fields(cls))}")
        return cls(**options)

    def resolve(self) -> Resolved:
        """Read the split and statistics, check every option.

        Raises
        ------
        ConfigError
            On invalid options.
        DataError
            If the source, split or statistics cannot be read.
        """
        if self.source is None:
            raise ConfigError("source: give the structure collection (folder or tar of CIFs), e.g. "
                              "../shared/data/mp_experimental/structures.tar.xz")
        src = Path(self.source).expanduser().resolve()
        if not src.exists():
            raise DataError(f"{src}: no such file or folder (the structure collection: a folder or tar of CIFs)")
        sp, split_label, stat, statistics_label, statistics_path = resolve_inputs(self.split, self.statistics)
        min_count = REPRESENTED_MIN_COUNT if self.min_count is None else self.min_count
        cls, used_min_count = resolve_classes(self.classes, stat, min_count, stat.source)
        names = tuple(self.sets)
        bad = [s for s in names if s not in SET_NAMES]
        if bad or not names:
            raise ConfigError(f"sets: unknown {bad}; choose from {', '.join(SET_NAMES)}" if bad else
                              f"sets: give at least one of {', '.join(SET_NAMES)}")
        names = tuple(s for s in SET_NAMES if s in names)
        seed, n_random = self.seed, self.n_random
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
        if isinstance(n_random, bool) or not isinstance(n_random, (int, np.integer)) or n_random < 0:
            raise ConfigError(f"n_random must be an integer >= 0, got {n_random!r}")
        symprec = self.symprec if self.symprec is not None else (
            self.statistics.symprec if isinstance(self.statistics, Statistics) else DEFAULT_SYMPREC)
        for name, value in (("symprec", symprec), ("strict_symprec", self.strict_symprec),
                            ("max_volume", self.max_volume)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        if int(self.max_sites) < 1:
            raise ConfigError(f"max_sites must be >= 1, got {self.max_sites!r}")
        return Resolved(src, sp, split_label, stat, statistics_label, statistics_path, cls, used_min_count,
                        int(seed), int(n_random), names, float(symprec), float(self.strict_symprec),
                        int(self.max_sites), float(self.max_volume))


def resolve_inputs(split, statistics) -> tuple[Split, str, Statistics, str, str | None]:
    """The split and statistics of a build: ``(split, its label, statistics, its label, statistics path)``.

    ``split``: a path, a :class:`~synthxrd.split.Split` or None (the shipped one); ``statistics``: a path,
    a :class:`~synthxrd.stats.Statistics` or None (shipped). The statistics path is None for the shipped
    statistics and ``""`` for a Statistics object (not in a file).
    """
    from synthxrd.split import Split, load_split

    if isinstance(split, Split):
        sp, split_label = split, split.path or "<Split object>"
    else:
        sp = load_split(split)
        split_label = "shipped" if split is None else str(Path(split).resolve())
    statistics_path: str | None
    if statistics is None or isinstance(statistics, (str, Path)):
        stat = Statistics.load(statistics)
        statistics_path = None if statistics is None else str(Path(statistics).resolve())
        statistics_label = "shipped" if statistics is None else statistics_path
    elif isinstance(statistics, Statistics):
        stat, statistics_path, statistics_label = statistics, "", "<Statistics object>"
    else:
        raise ConfigError(f"statistics: expected a path, a Statistics or None, got {type(statistics).__name__}")
    return sp, split_label, stat, statistics_label, statistics_path


def resolve_classes(classes: Iterable[int] | None, statistics: Statistics, min_count: int,
                    label: str) -> tuple[tuple[int, ...], int | None]:
    """``(sorted classes, min_count used)``: the given space groups (min_count None), or those with at least
    ``min_count`` structures in ``statistics`` (named ``label`` in errors).

    Raises
    ------
    ConfigError
        If a class is not an ITA number, or no group has ``min_count`` structures.
    """
    if classes is None:
        cls = tuple(int(c) for c in statistics.represented(min_count))
        if not cls:
            raise ConfigError(f"statistics ({label}): no space group has >= {min_count} structures; "
                              "give the classes or lower min_count")
        return cls, int(min_count)
    raw = np.asarray(list(classes) if not isinstance(classes, np.ndarray) else classes)
    if raw.ndim != 1 or raw.size == 0 or raw.dtype.kind not in "iu" or raw.min() < 1 or raw.max() > N_SPACEGROUPS:
        raise ConfigError(f"classes: expected one or more space-group numbers 1..230, got {classes!r:.80}")
    return tuple(sorted({int(c) for c in raw.tolist()})), None


@dataclass(frozen=True)
class Resolved:
    """A :class:`ValidationRequest` with its inputs read and its options checked."""

    source: Path
    split: Split
    split_label: str
    statistics: Statistics
    statistics_label: str
    statistics_path: str | None  # None: shipped; "": a Statistics object (handed to workers as a file)
    classes: tuple[int, ...]
    min_count: int | None
    seed: int
    n_random: int
    sets: tuple[str, ...]
    symprec: float
    strict_symprec: float
    max_sites: int
    max_volume: float

    def filters(self) -> dict[str, Any]:
        from synthxrd.simulate import DEFAULT_SIZE_RANGE_NM, DEFAULT_WAVELENGTH, Grid

        g = Grid()
        return {"symprec": self.symprec, "strict_symprec": self.strict_symprec, "max_sites": self.max_sites,
                "max_volume": self.max_volume, "occupancy_tol": OCCUPANCY_TOL,
                "grid": {"start": g.start, "stop": g.stop, "n": g.n}, "wavelength": DEFAULT_WAVELENGTH,
                "crystallite_size_nm": list(DEFAULT_SIZE_RANGE_NM), "random_chunk": RANDOM_CHUNK}

    def key(self) -> dict[str, Any]:
        """What must match for a cache to be reused."""
        from synthxrd import __version__

        return {
            "format_version": VALIDATION_FORMAT_VERSION,
            "synthxrd_version": __version__,
            "source": {"path": str(self.source), "fingerprint": source_fingerprint(self.source)},
            "split_sha256": self.split.sha256,
            "statistics": {"format_version": self.statistics.version, "sha256": self.statistics_hash},
            "classes": list(self.classes),
            "seed": self.seed,
            "n_random": self.n_random if "random" in self.sets else None,
            "filters": self.filters(),
        }

    @cached_property
    def statistics_hash(self) -> str:
        return self.statistics.sha256


def find_index(source: Path) -> Path | None:
    """``index.csv`` next to (or in) a collection, if there is one."""
    candidate = (source if source.is_dir() else source.parent) / "index.csv"
    return candidate if candidate.is_file() else None


def read_index(path: Path, ids: set[str]) -> dict[str, int]:
    """id -> space group from a collection index CSV (columns ``mp_id``/``id`` and ``spacegroup``)."""
    out: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            fields_ = [f.strip().lower() for f in reader.fieldnames or []]
            names = dict(zip(fields_, reader.fieldnames or []))
            id_col = next((names[c] for c in ("id", "mp_id", "icsd_id") if c in names), None)
            sg_col = next((names[c] for c in ("spacegroup", "space_group", "sg") if c in names), None)
            if id_col is None or sg_col is None:
                return {}
            for row in reader:
                i = (row.get(id_col) or "").strip()
                if i in ids:
                    try:
                        out[i] = int(row[sg_col])
                    except (TypeError, ValueError):
                        pass
    except (OSError, csv.Error, UnicodeDecodeError):
        return {}
    return out
