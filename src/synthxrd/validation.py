"""Validation sets built once and cached: synthetic crystals and real crystals of unseen structure types.

The reference method (Schopmans et al. 2023, DESIGN.md) validates every epoch on crystals of the
test part of a prototype split, i.e. of structure types the generator's statistics never saw, and on
synthetic crystals drawn like the training data. Six sets can be built from a structure collection
(folder or tar of CIFs), the split (:mod:`synthxrd.split`) and the class list (the space groups
represented in the statistics, ``Statistics.represented(50)``); the first four are built by default
(:data:`DEFAULT_SETS`), the two gap sets on request:

``random``
    ``n_random`` crystals of :class:`~synthxrd.generate.Generator` on the statistics, prior restricted
    to the classes, fixed seed (the training distribution). Label: the intended space group.
``match``
    Test-part crystals with at most ``max_sites`` (100) asymmetric-unit sites, a conventional-cell
    volume ``V <= max_volume`` (7000 Å^3) and a label among the classes (what the generator can make).
``all``
    Every test-part crystal whose label is a class.
``match_pure``
    ``match`` without partially occupied sites (every occupancy >= 1 - 1e-3).
``match_random_coords``
    Every ``match`` crystal with the free coordinates of its Wyckoff positions redrawn uniformly, as
    the generator places atoms; lattice, space group and the occupation of the Wyckoff positions
    (letter, element, occupancy per asymmetric-unit site) kept (:func:`synthxrd.gap.randomize_coordinates`).
``match_random_lattice``
    Every ``match`` crystal with its lattice redrawn as the generator draws lattices of its space group
    (volume from the generator's volume model for its atoms, parameters from its lattice KDE, the
    crystal-system constraints kept); fractional coordinates kept (:func:`synthxrd.gap.randomize_lattice`).

The two gap sets reproduce the analysis of the gap between synthetic and ICSD accuracy of the
reference (:mod:`synthxrd.gap`). They work on spglib's conventional standard cell of the crystal at
``symprec`` (idealised), draw from a generator seeded with ``(seed, hash of the id, set)`` and use the
generator of the statistics (default config). A crystal whose randomization fails stays in ``match``
and is missing from that set; the manifest counts the failures by reason.

Labels of real crystals are recomputed with spglib at ``symprec`` 0.1 (the tolerance of the
statistics, :data:`synthxrd.stats.DEFAULT_SYMPREC`) on the cell as read. The manifest records how often
that label differs from (a) spglib at a strict tolerance (``strict_symprec``, 1e-3), (b) the
``spacegroup`` column of the collection's ``index.csv`` when there is one next to the source, and
(c) the space group encoded in the split's prototype (``"<sg>|<formula>|<wyckoff>"``); for ``random``
and the gap sets (labelled with the original crystal's group, the intended one), how often spglib
(0.1) finds another group than the intended one.

Patterns: :func:`synthxrd.simulate.patterns` of the crystals as read (the original cell, all atoms),
default grid (5-90 deg, 8501 points) and Cu Ka1; the crystallite size of a real crystal is drawn from
U(20, 100) nm by a generator seeded with ``(seed, hash of its id)``, so it does not depend on the number
of workers or on which sets are built (a gap crystal has the size of its original); the random set uses
one seeded stream per chunk of :data:`RANDOM_CHUNK` crystals.

Files in the cache folder::

    manifest.json      what was built from what (see :class:`Manifest`), written last
    <set>.h5           synthxrd.dataset HDF5 (crystals, spacegroups, patterns, two_theta, metadata)
                       plus /validation/ids and per-crystal extras (crystallite_size_nm, ...)

:func:`ensure_validation_sets` reuses the folder when its manifest matches the request (source path
and fingerprint, split hash, statistics hash, classes, seed, n_random, filters, synthxrd version, the
requested sets, files present with their recorded sizes) and rebuilds it otherwise.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from synthxrd.dataset import Dataset, load_dataset, save_dataset
from synthxrd.errors import ConfigError, DataError, StructureError
from synthxrd.files import atomic_write, write_json
from synthxrd.pool import chunked, failure_reason, imap_bounded, outcomes, quiet_worker

if TYPE_CHECKING:
    from synthxrd.split import Split
    from synthxrd.stats import Statistics

__all__ = [
    "SET_NAMES",
    "DEFAULT_SETS",
    "GAP_SETS",
    "MANIFEST",
    "FORMAT_VERSION",
    "DEFAULT_N_RANDOM",
    "MAX_SITES",
    "MAX_VOLUME",
    "STRICT_SYMPREC",
    "Manifest",
    "ValidationSet",
    "read_cif_sites",
    "build_validation_sets",
    "load_validation_sets",
    "ensure_validation_sets",
]

#: The sets, in build order.
SET_NAMES = ("random", "match", "all", "match_pure", "match_random_coords", "match_random_lattice")
#: The sets built when none are named (the gap sets cost two more patterns per ``match`` crystal).
DEFAULT_SETS = SET_NAMES[:4]
#: The gap sets (:mod:`synthxrd.gap`), built from the ``match`` crystals: name -> seed tag of their stream.
GAP_SETS = {"match_random_coords": 0x636F, "match_random_lattice": 0x6C61}
MANIFEST = "manifest.json"
#: Layout of the cache folder; a manifest of another version is rebuilt.
FORMAT_VERSION = 1
DEFAULT_N_RANDOM = 2000
#: ``match``: at most this many asymmetric-unit sites and this conventional-cell volume (Å^3),
#: the limits of the generator (reference: 100 sites, 7000 Å^3).
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
#: Failures listed in the manifest (all are counted).
_MAX_LISTED_FAILURES = 200

_DESCRIPTIONS = {
    "random": "synthetic crystals of the generator (training distribution), intended space groups",
    "match": "test-part crystals with <= {max_sites} asymmetric-unit sites, V <= {max_volume:g} A^3 and a class label",
    "all": "every test-part crystal with a class label",
    "match_pure": "match without partially occupied sites",
    "match_random_coords": "match with the free Wyckoff coordinates redrawn uniformly (lattice, space group, "
                           "Wyckoff occupation kept); label: the original space group",
    "match_random_lattice": "match with the lattice redrawn by the generator for its space group (volume model, "
                            "lattice KDE; fractional coordinates kept); label: the original space group",
}


# --------------------------------------------------------------------------------------------------
# Reading CIFs into crystals


def read_cif_sites(text: str) -> tuple[np.ndarray, np.ndarray, list[tuple[tuple[int, float], ...]]]:
    """Cell of the (first) structure of a CIF given as text, as :mod:`synthxrd.stats` reads it.

    P1 CIFs with full occupancies go through the light line parser of :mod:`synthxrd.stats`, any other
    CIF through pymatgen's ``CifParser`` (symmetry expanded, conventional cell as written).

    Returns
    -------
    lattice : (3, 3) float64, rows a, b, c in Å.
    positions : (s, 3) float64 fractional coordinates of the sites.
    species : list of s tuples ``((Z, occupancy), ...)`` (one entry per species on the site).

    Raises
    ------
    StructureError
        If the CIF cannot be read.
    """
    # stats' reader, so that the validation crystals are exactly the cells the statistics analysed.
    from synthxrd import stats

    lattice, positions, species = stats.parse_cif(text)
    return np.asarray(lattice, np.float64), np.asarray(positions, np.float64).reshape(-1, 3), list(species)


def _rows(positions: np.ndarray, species: Sequence[tuple[tuple[int, float], ...]]):
    """One scatterer row per (site, species): frac_coords, numbers, occupancies."""
    counts = np.array([len(s) for s in species], np.int64)
    frac = np.repeat(positions, counts, axis=0)
    numbers = np.array([z for s in species for z, _ in s], np.int64)
    occ = np.array([o for s in species for _, o in s], np.float64)
    return frac, numbers, occ


def _spglib_number(lattice, positions, types, symprec: float) -> int:
    """spglib space-group number (0 if spglib finds none or fails)."""
    import spglib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = spglib.get_symmetry_dataset((lattice, positions, types), symprec=symprec)
        except Exception:  # noqa: BLE001 - spglib raises on degenerate cells; counted as "no label"
            return 0
    return 0 if ds is None else int(ds.number)


def _id_key(identifier: str) -> int:
    return int.from_bytes(hashlib.sha256(identifier.encode()).digest()[:8], "little")


def _crystallite_size(seed: int, identifier: str) -> float:
    """Crystallite size (nm) of a real crystal: U(20, 100) from a generator seeded by (seed, id)."""
    from synthxrd.simulate import DEFAULT_SIZE_RANGE_NM

    return float(np.random.default_rng([int(seed), _id_key(identifier)]).uniform(*DEFAULT_SIZE_RANGE_NM))


def _gap_rng(seed: int, identifier: str, name: str) -> np.random.Generator:
    """The stream of one crystal of gap set ``name``: seeded by (seed, id, set), independent of the size's."""
    return np.random.default_rng([int(seed), _id_key(identifier), GAP_SETS[name]])


# --------------------------------------------------------------------------------------------------
# Worker side


@dataclass(frozen=True)
class _Context:
    seed: int
    classes: tuple[int, ...]
    symprec: float
    strict_symprec: float
    max_sites: int
    max_volume: float
    want_all: bool
    want_match: bool
    want_pure: bool
    statistics_path: str | None  # None: shipped statistics
    gap: tuple[str, ...] = ()  # gap sets to build (from the match crystals)


class _Variant(NamedTuple):
    """A randomized ``match`` crystal of a gap set (or why there is none)."""

    set: str
    error: str | None
    size_nm: float = math.nan
    found: int = 0  # spglib (symprec) space group of the new crystal, 0 = none
    lattice: np.ndarray | None = None
    frac: np.ndarray | None = None
    numbers: np.ndarray | None = None
    occupancies: np.ndarray | None = None
    pattern: np.ndarray | None = None


class _Item(NamedTuple):
    """What a worker returns for one CIF (structure arrays and pattern only when selected)."""

    id: str
    error: str | None
    label: int = 0
    strict: int = 0
    n_sites: int = 0
    volume: float = math.nan
    ordered: bool = True
    in_all: bool = False
    in_match: bool = False
    in_pure: bool = False
    size_nm: float = math.nan
    lattice: np.ndarray | None = None
    frac: np.ndarray | None = None
    numbers: np.ndarray | None = None
    occupancies: np.ndarray | None = None
    pattern: np.ndarray | None = None
    variants: tuple[_Variant, ...] = ()


@lru_cache(maxsize=1)
def _volumes() -> np.ndarray:
    from synthxrd.stats import atomic_volumes

    return atomic_volumes()


def _analyze_one(ctx: _Context, identifier: str, text: str) -> _Item:
    from synthxrd import stats
    from synthxrd.structure import Crystal

    # The label comes from the very function the statistics and the split used: spglib's answer at a
    # loose tolerance can depend on the order of the atoms (about 0.2 % of the MP test part differ
    # if the sites are re-ordered), so the cell is analysed exactly as stats.compute does.
    record = stats.analyze_cif(text, id=identifier, symprec=ctx.symprec, volumes=_volumes())
    lattice, positions, species = read_cif_sites(text)
    frac, numbers, occ = _rows(positions, species)
    crystal = Crystal(lattice, frac, numbers, occ)
    kinds: dict[tuple, int] = {}
    types = np.array([kinds.setdefault(tuple(sorted((int(z), round(float(o), 4)) for z, o in s)), len(kinds))
                      for s in species], np.int32)
    strict = _spglib_number(lattice, positions, types, ctx.strict_symprec)
    ordered = bool(np.all(occ >= 1.0 - OCCUPANCY_TOL))
    in_all = record.spacegroup in ctx.classes
    in_match = in_all and record.n_sites <= ctx.max_sites and record.volume <= ctx.max_volume
    in_pure = in_match and ordered
    # gap sets: the match crystals with a pattern, so the original's pattern is made for them too
    keep = (ctx.want_all and in_all) or ((ctx.want_match or bool(ctx.gap)) and in_match) or (ctx.want_pure and in_pure)
    item = _Item(identifier, None, record.spacegroup, strict, record.n_sites, record.volume, ordered,
                 in_all, in_match, in_pure)
    if keep:
        item = item._replace(size_nm=_crystallite_size(ctx.seed, identifier), lattice=crystal.lattice,
                             frac=crystal.frac_coords, numbers=crystal.numbers, occupancies=crystal.occupancies)
    if in_match and ctx.gap:
        item = item._replace(variants=_gap_variants(ctx, identifier, crystal, record.spacegroup,
                                                    _crystallite_size(ctx.seed, identifier)))
    return item


def _gap_variants(ctx: _Context, identifier: str, crystal, label: int, size_nm: float) -> tuple[_Variant, ...]:
    """The randomized crystals of the requested gap sets (one variant per set, an error instead on failure)."""
    from synthxrd import gap

    try:
        analysed = gap.wyckoff_crystal(crystal, symprec=ctx.symprec)
        if analysed.spacegroup != label:
            raise StructureError(f"spglib: space group {analysed.spacegroup} on the sites as grouped, "
                                 f"label {label}")
    except Exception as exc:  # noqa: BLE001 - a failed randomization must not drop the crystal from match
        return tuple(_Variant(name, failure_reason(exc)) for name in ctx.gap)
    out = []
    for name in ctx.gap:
        rng = _gap_rng(ctx.seed, identifier, name)
        try:
            if name == "match_random_coords":
                new = gap.randomize_coordinates(analysed, label, rng, symprec=ctx.symprec)
            else:
                new = gap.randomize_lattice(analysed, label, rng, generator=_generator(ctx.statistics_path),
                                            symprec=ctx.symprec)
        except Exception as exc:  # noqa: BLE001 - as above
            out.append(_Variant(name, failure_reason(exc)))
            continue
        positions, species = gap.crystal_sites(new)
        found = _spglib_number(new.lattice, positions, gap.site_types(species), ctx.symprec)
        out.append(_Variant(name, None, size_nm, found, new.lattice, new.frac_coords, new.numbers, new.occupancies))
    return tuple(out)


def _process_cifs(ctx: _Context, chunk: list[tuple[str, str]]) -> list[_Item]:
    """Analyse a chunk of CIFs and simulate the patterns of the selected ones (never raises per CIF)."""
    from functools import partial

    items = [item if reason is None else _Item(i, reason)
             for i, item, reason in outcomes(chunk, partial(_analyze_one, ctx))]
    keep = [k for k, it in enumerate(items) if it.lattice is not None]
    if keep:
        patterns = _patterns_of([items[k] for k in keep])
        for k, pattern in zip(keep, patterns):
            if pattern is None:
                items[k] = _Item(items[k].id, "no pattern: no reflection between 5 and 90 deg 2theta")
            elif isinstance(pattern, str):
                items[k] = _Item(items[k].id, pattern)
            else:
                items[k] = items[k]._replace(pattern=pattern)
    # the gap variants of the crystals that are in match and have a pattern
    slots = [(k, j) for k, it in enumerate(items) if it.error is None
             for j, v in enumerate(it.variants) if v.error is None]
    if slots:
        patterns = _patterns_of([items[k].variants[j] for k, j in slots])
        for (k, j), pattern in zip(slots, patterns):
            v = items[k].variants[j]
            if pattern is None:
                v = _Variant(v.set, "no pattern: no reflection between 5 and 90 deg 2theta")
            elif isinstance(pattern, str):
                v = _Variant(v.set, pattern)
            else:
                v = v._replace(pattern=pattern)
            variants = list(items[k].variants)
            variants[j] = v
            items[k] = items[k]._replace(variants=tuple(variants))
    return items


def _batch(items: Sequence[_Item]):
    from synthxrd.structure import CrystalBatch

    offsets = np.zeros(len(items) + 1, np.int64)
    offsets[1:] = np.cumsum([len(it.numbers) for it in items])
    return CrystalBatch(np.array([it.lattice for it in items]).reshape(-1, 3, 3),
                        np.concatenate([it.frac for it in items]).reshape(-1, 3),
                        np.concatenate([it.numbers for it in items]).astype(np.int64),
                        np.concatenate([it.occupancies for it in items]), offsets)


def _patterns_of(items: Sequence[_Item]) -> list[np.ndarray | str | None]:
    """Patterns (float32 rows), None for an empty pattern, or an error message per item."""
    from synthxrd import simulate

    sizes = np.array([it.size_nm for it in items])
    try:
        out = simulate.patterns(_batch(items), crystallite_size_nm=sizes, allow_empty=True)
        return [row if row.max() > 0 else None for row in out]
    except Exception:  # noqa: BLE001 - isolate the crystal that fails
        if len(items) == 1:
            exc = sys.exc_info()[1]
            return [f"pattern: {exc}"]
    return [r for it in items for r in _patterns_of([it])]


_GENERATORS: dict[tuple, Any] = {}


def _generator(statistics_path: str | None):
    """The generator of the random set, built once per process (and per statistics file version)."""
    from synthxrd.generate import Generator
    from synthxrd.stats import Statistics

    key: tuple = (None,)
    if statistics_path is not None:
        st = os.stat(statistics_path)
        key = (statistics_path, st.st_size, st.st_mtime_ns)
    if key not in _GENERATORS:
        _GENERATORS.clear()  # one at a time: a long-lived process building with other statistics
        _GENERATORS[key] = Generator(Statistics.load(statistics_path))
    return _GENERATORS[key]


class _RandomChunk(NamedTuple):
    index: int
    batch: Any  # CrystalBatch with intended labels
    patterns: np.ndarray
    sizes: np.ndarray
    found: np.ndarray  # spglib (symprec) space group, 0 = none


def _random_rng(seed: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), 0x7261, int(chunk)])  # 0x7261: the "random set" stream


def _process_random(ctx: _Context, chunk: int, n: int) -> _RandomChunk:
    """``n`` synthetic crystals of chunk ``chunk`` with patterns (crystals without reflection redrawn)."""
    from synthxrd import simulate
    from synthxrd.simulate import DEFAULT_SIZE_RANGE_NM
    from synthxrd.structure import CrystalBatch

    gen = _generator(ctx.statistics_path)
    rng = _random_rng(ctx.seed, chunk)
    batches, rows, sizes = [], [], []
    have = 0
    for _ in range(20):
        if have >= n:
            break
        batch = gen.sample_batch(n - have, rng, list(ctx.classes))
        size = rng.uniform(*DEFAULT_SIZE_RANGE_NM, size=len(batch))
        pats = simulate.patterns(batch, crystallite_size_nm=size, allow_empty=True)
        good = np.flatnonzero(pats.max(axis=1) > 0)
        if len(good) < len(batch):
            batch = CrystalBatch.concatenate([_take(batch, [i]) for i in good.tolist()])
        batches.append(batch)
        rows.append(pats[good])
        sizes.append(size[good])
        have += len(good)
    else:
        if have < n:
            raise DataError(f"random set: {n - have} synthetic crystals have no reflection in 5-90 deg")
    batch = CrystalBatch.concatenate(batches)
    found = np.array([_spglib_number(c.lattice, c.frac_coords, c.numbers, ctx.symprec)
                      for c in (batch[i] for i in range(len(batch)))], np.int64)
    return _RandomChunk(chunk, batch, np.concatenate(rows), np.concatenate(sizes), found)


def _empty_batch():
    from synthxrd.structure import CrystalBatch

    return CrystalBatch(np.zeros((0, 3, 3)), np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0),
                        np.zeros(1, np.int64), spacegroups=np.zeros(0, np.int64))


def _take(batch, index: Sequence[int]):
    """Sub-batch of the crystals ``index`` (labels kept)."""
    from synthxrd.structure import CrystalBatch

    parts = []
    for i in index:
        c = batch[i]
        labels = None if batch.spacegroups is None else batch.spacegroups[[i]]
        parts.append(CrystalBatch(c.lattice[None], c.frac_coords, c.numbers, c.occupancies,
                                  np.array([0, len(c.numbers)], np.int64), spacegroups=labels))
    return CrystalBatch.concatenate(parts) if parts else _empty_batch()


_CONTEXT: _Context | None = None


def _init_worker(ctx: _Context) -> None:
    global _CONTEXT
    quiet_worker()
    _CONTEXT = ctx


def _run(ctx: _Context, kind: str, *args):
    """One task: ``("random", chunk, n)`` or ``("cifs", chunk)``."""
    return _process_random(ctx, *args) if kind == "random" else _process_cifs(ctx, *args)


def _task(kind: str, *args):
    return _run(_CONTEXT, kind, *args)


# --------------------------------------------------------------------------------------------------
# Manifest


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
        if data.get("format_version") != FORMAT_VERSION:
            raise DataError(f"{path}: format_version {data.get('format_version')!r}, expected {FORMAT_VERSION}; "
                            "rebuild the sets")
        return cls(data, path)


@dataclass(frozen=True)
class ValidationSet(Dataset):
    """A :class:`~synthxrd.dataset.Dataset` with the structure ids and per-crystal extras of one set.

    Attributes
    ----------
    name : set name (one of :data:`SET_NAMES`).
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


# --------------------------------------------------------------------------------------------------
# Request: what a cache is built from


def _source_fingerprint(path: Path) -> dict[str, Any]:
    """Cheap identity of a source: size and mtime of a file; number, total size, newest mtime of CIFs."""
    if path.is_file():
        st = path.stat()
        return {"kind": "file", "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
    if path.is_dir():
        n, total, newest = 0, 0, 0
        for f in path.rglob("*"):
            if f.is_file() and f.suffix.lower() == ".cif":
                st = f.stat()
                n, total, newest = n + 1, total + st.st_size, max(newest, st.st_mtime_ns)
        return {"kind": "folder", "n_cif": n, "bytes": total, "mtime_ns": newest}
    raise DataError(f"{path}: no such file or folder (the structure collection: a folder or tar of CIFs, "
                    "e.g. ../shared/data/mp_experimental/structures.tar.xz)")


def _statistics_sha256(st: Statistics) -> str:
    """Hash of the records (independent of file compression): the statistics' identity."""
    h = hashlib.sha256()
    for name in ("ids", "spacegroups", "lattices", "volumes", "n_atoms", "v_atoms", "site_offsets", "site_orbit",
                 "site_wyckoff", "site_multiplicity", "site_z", "site_occupancy", "radii"):
        arr = np.ascontiguousarray(getattr(st, name))
        h.update(f"{name}:{arr.dtype.str}:{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _find_index(source: Path) -> Path | None:
    candidate = (source if source.is_dir() else source.parent) / "index.csv"
    return candidate if candidate.is_file() else None


def _read_index(path: Path, ids: set[str]) -> dict[str, int]:
    """id -> space group from a collection index CSV (columns ``mp_id``/``id`` and ``spacegroup``)."""
    out: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip().lower() for f in reader.fieldnames or []]
            names = dict(zip(fields, reader.fieldnames or []))
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


@dataclass(frozen=True)
class _Request:
    source: Path
    split: Split
    split_label: str
    statistics: Statistics
    statistics_label: str
    statistics_path: str | None
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
            "format_version": FORMAT_VERSION,
            "synthxrd_version": __version__,
            "source": {"path": str(self.source), "fingerprint": _source_fingerprint(self.source)},
            "split_sha256": self.split.sha256,
            "statistics": {"format_version": self.statistics.version, "sha256": self.statistics_hash},
            "classes": list(self.classes),
            "seed": self.seed,
            "n_random": self.n_random if "random" in self.sets else None,
            "filters": self.filters(),
        }

    @cached_property
    def statistics_hash(self) -> str:
        return _statistics_sha256(self.statistics)


def _request(source, split, statistics, classes, n_random, seed, sets, symprec, strict_symprec, max_sites,
             max_volume, min_count) -> _Request:
    from synthxrd import stats as st
    from synthxrd.split import Split, load_split

    if source is None:
        raise ConfigError("source: give the structure collection (folder or tar of CIFs), e.g. "
                          "../shared/data/mp_experimental/structures.tar.xz")
    src = Path(source).expanduser().resolve()
    if not src.exists():
        raise DataError(f"{src}: no such file or folder (the structure collection: a folder or tar of CIFs)")
    if isinstance(split, Split):
        sp, split_label = split, split.path or "<Split object>"
    else:
        sp = load_split(split)
        split_label = "shipped" if split is None else str(Path(split).resolve())
    statistics_path: str | None
    if statistics is None or isinstance(statistics, (str, Path)):
        stat = st.Statistics.load(statistics)
        statistics_path = None if statistics is None else str(Path(statistics).resolve())
        statistics_label = "shipped" if statistics is None else statistics_path
    elif isinstance(statistics, st.Statistics):
        stat, statistics_path, statistics_label = statistics, "", "<Statistics object>"
    else:
        raise ConfigError(f"statistics: expected a path, a Statistics or None, got {type(statistics).__name__}")
    if classes is None:
        cls = tuple(int(c) for c in stat.represented(min_count))
        if not cls:
            raise ConfigError(f"statistics ({stat.source}): no space group has >= {min_count} structures; "
                              "give the classes or lower min_count")
        used_min_count: int | None = int(min_count)
    else:
        raw = np.asarray(list(classes) if not isinstance(classes, np.ndarray) else classes)
        if raw.ndim != 1 or raw.size == 0 or raw.dtype.kind not in "iu" or raw.min() < 1 or raw.max() > 230:
            raise ConfigError(f"classes: expected one or more space-group numbers 1..230, got {classes!r:.80}")
        cls = tuple(sorted(set(int(c) for c in raw.tolist())))
        used_min_count = None
    names = tuple(sets)
    bad = [s for s in names if s not in SET_NAMES]
    if bad or not names:
        raise ConfigError(f"sets: unknown {bad}; choose from {', '.join(SET_NAMES)}" if bad else
                          f"sets: give at least one of {', '.join(SET_NAMES)}")
    names = tuple(s for s in SET_NAMES if s in names)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    if isinstance(n_random, bool) or not isinstance(n_random, (int, np.integer)) or n_random < 0:
        raise ConfigError(f"n_random must be an integer >= 0, got {n_random!r}")
    for name, value in (("symprec", symprec), ("strict_symprec", strict_symprec), ("max_volume", max_volume)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a positive number, got {value!r}")
    if int(max_sites) < 1:
        raise ConfigError(f"max_sites must be >= 1, got {max_sites!r}")
    return _Request(src, sp, split_label, stat, statistics_label, statistics_path, cls, used_min_count, int(seed),
                    int(n_random), names, float(symprec), float(strict_symprec), int(max_sites), float(max_volume))


# --------------------------------------------------------------------------------------------------
# Building


def _rate(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    n = int(len(a))
    k = int(np.count_nonzero(a != b))
    return {"n": n, "n_mismatch": k, "rate": round(k / n, 6) if n else None}


def _progress(total: int | None, desc: str, unit: str, enabled: bool, position: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, mininterval=1.0, position=position,
                leave=True)


def _iter_results(req: _Request, ctx: _Context, workers: int, test_ids: np.ndarray,
                  random_chunks: list[tuple[int, int]]) -> Iterator[Any]:
    """Yield the results of all random chunks and CIF chunks (in completion order)."""
    from functools import partial
    from itertools import chain

    from synthxrd.stats import iter_cif_texts

    cifs = chunked(iter_cif_texts(req.source, ids=test_ids.tolist()), CIF_CHUNK)
    tasks = chain((("random", k, n) for k, n in random_chunks), (("cifs", chunk) for chunk in cifs))
    yield from imap_bounded(_task, tasks, workers=workers, initializer=_init_worker, initargs=(ctx,),
                            local=partial(_run, ctx))


def _save_set(path: Path, dataset: Dataset, ids: np.ndarray, extra: Mapping[str, np.ndarray]) -> None:
    """save_dataset, plus /validation/ids and extras, onto ``path`` atomically."""
    import h5py

    def write(tmp: Path) -> None:
        save_dataset(tmp, dataset)
        with h5py.File(tmp, "a") as h5:
            g = h5.create_group("validation")
            g.create_dataset("ids", data=np.array([str(i) for i in ids], dtype=h5py.string_dtype()))
            for name, arr in extra.items():
                g.create_dataset(name, data=np.asarray(arr))

    atomic_write(path, write)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_validation_sets(out_dir: str | Path, *, source: str | Path | None = None,
                          split: str | Path | Split | None = None,
                          statistics: str | Path | Statistics | None = None,
                          classes: Iterable[int] | None = None, n_random: int = DEFAULT_N_RANDOM, seed: int = 0,
                          sets: Sequence[str] = DEFAULT_SETS, workers: int | None = None, progress: bool = True,
                          symprec: float | None = None, strict_symprec: float = STRICT_SYMPREC,
                          max_sites: int = MAX_SITES, max_volume: float = MAX_VOLUME,
                          min_count: int | None = None) -> Manifest:
    """Build the validation sets into ``out_dir`` (always; see :func:`ensure_validation_sets` to reuse).

    Parameters
    ----------
    out_dir : folder of the cache (created).
    source : folder, tar archive or CIF of the structure collection (required), e.g.
        ``../shared/data/mp_experimental/structures.tar.xz``.
    split : split CSV path, a :class:`~synthxrd.split.Split`, or None for the shipped split.
    statistics : statistics file, a :class:`~synthxrd.stats.Statistics`, or None for the shipped ones
        (the generator of the random set; its represented groups are the default classes).
    classes : space groups (labels) to keep; default ``statistics.represented(min_count)``.
    n_random : crystals of the random set.
    seed : seed of the random set and of the crystallite sizes.
    sets : which of :data:`SET_NAMES` to build (default :data:`DEFAULT_SETS`; the gap sets on request).
    workers : processes (default: all available cores; 1 = no subprocesses).
    progress : tqdm bars on stderr.
    symprec : spglib tolerance of the labels (default that of the statistics, 0.1).
    strict_symprec, max_sites, max_volume : see the module docstring.
    min_count : for the default classes (default 50).

    Returns
    -------
    Manifest

    Raises
    ------
    ConfigError
        On invalid options, or when the statistics contain structures of the test part (they would
        not be unseen).
    DataError
        If the source or split cannot be read, or the split puts an id in both parts.
    """
    from synthxrd import stats as st

    req = _request(source, split, statistics, classes, n_random, seed, sets,
                   _default_symprec(symprec, statistics), strict_symprec, max_sites, max_volume,
                   st.REPRESENTED_MIN_COUNT if min_count is None else min_count)
    return _build(Path(out_dir), req, workers, progress)


def _default_symprec(symprec: float | None, statistics) -> float:
    from synthxrd import stats as st

    if symprec is not None:
        return float(symprec)
    if isinstance(statistics, st.Statistics):
        return statistics.symprec
    return st.DEFAULT_SYMPREC


def _build(out: Path, req: _Request, workers: int | None, progress: bool) -> Manifest:
    import spglib

    from synthxrd import __version__
    from synthxrd import stats as st
    from synthxrd.simulate import Grid
    from synthxrd.structure import CrystalBatch

    start = time.perf_counter()
    key = req.key()  # before reading: the source as it was when the build started
    workers = st.default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder")
    sp = req.split
    test_ids = np.unique(sp.ids_of("test"))
    stat_ids = np.unique(sp.ids_of("statistics"))
    both = np.intersect1d(test_ids, stat_ids)
    if len(both):
        raise DataError(f"split {req.split_label}: {len(both)} ids are in both parts (e.g. {both[0]!r})")
    leaked = np.intersect1d(test_ids, req.statistics.ids)
    if len(leaked):
        raise ConfigError(f"statistics ({req.statistics_label}) contain {len(leaked)} structures of the split's test "
                          f"part (e.g. {leaked[0]!r}): their prototypes would not be unseen. Use statistics of the "
                          "statistics part (Statistics.restrict(split))")
    real = [s for s in req.sets if s != "random"]
    ctx = _Context(req.seed, req.classes, req.symprec, req.strict_symprec, req.max_sites, req.max_volume,
                   "all" in real, "match" in real, "match_pure" in real, req.statistics_path,
                   tuple(s for s in req.sets if s in GAP_SETS))
    tmp_stats = None
    needs_generator = "random" in req.sets or "match_random_lattice" in req.sets
    if needs_generator and req.statistics_path == "":  # a Statistics object: hand workers a file
        tmp_stats = tempfile.TemporaryDirectory(prefix=".synthxrd-validation-")
        path = req.statistics.save(Path(tmp_stats.name) / "statistics.npz")
        ctx = replace(ctx, statistics_path=str(path))
    n_random = req.n_random if "random" in req.sets else 0
    random_chunks = [(k, min(RANDOM_CHUNK, n_random - k * RANDOM_CHUNK))
                     for k in range(math.ceil(n_random / RANDOM_CHUNK))]

    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # a half-rebuilt folder is never taken for a valid cache
    bar_cif = _progress(len(test_ids), "validation CIFs", "CIF", progress and bool(real), 0)
    bar_rand = _progress(n_random, "random crystals", "crystal", progress and n_random > 0, 1 if real else 0)
    items: list[_Item] = []
    chunks: list[_RandomChunk] = []
    try:
        for result in _iter_results(req, ctx, workers, test_ids if real else np.zeros(0, str), random_chunks):
            if isinstance(result, _RandomChunk):
                chunks.append(result)
                if bar_rand is not None:
                    bar_rand.update(len(result.batch))
            else:
                items.extend(result)
                if bar_cif is not None:
                    bar_cif.update(len(result))
    finally:
        for bar in (bar_cif, bar_rand):
            if bar is not None:
                bar.close()
        if tmp_stats is not None:
            tmp_stats.cleanup()
    t_compute = time.perf_counter() - start

    items.sort(key=lambda it: it.id)
    ok = [it for it in items if it.error is None]
    failures = [{"id": it.id, "reason": it.error} for it in items if it.error is not None]
    two_theta = Grid().values()
    common = {
        "kind": "synthxrd.validation_set", "seed": req.seed, "classes": list(req.classes),
        "source": str(req.source), "split": req.split_label, "split_sha256": sp.sha256,
        "statistics": req.statistics_label, "statistics_sha256": req.statistics_hash,
        "statistics_format_version": req.statistics.version, "synthxrd_version": __version__,
        "filters": req.filters(),
    }
    index_path = _find_index(req.source) if real else None
    index = _read_index(index_path, {it.id for it in ok}) if index_path else {}
    proto_sg = _prototype_spacegroups(sp)

    def mismatch(selected: Sequence[_Item]) -> dict[str, Any]:
        labels = np.array([it.label for it in selected], np.int64)
        res = {"strict": {"symprec": req.strict_symprec,
                          **_rate(labels, np.array([it.strict for it in selected], np.int64))}}
        in_index = [k for k, it in enumerate(selected) if it.id in index]
        if index_path is not None:
            res["index"] = {"file": str(index_path), **_rate(labels[in_index],
                                                               np.array([index[selected[k].id] for k in in_index],
                                                                        np.int64))}
        in_proto = [k for k, it in enumerate(selected) if it.id in proto_sg]
        res["split_prototype"] = _rate(labels[in_proto], np.array([proto_sg[selected[k].id] for k in in_proto],
                                                                  np.int64))
        return res

    set_info: dict[str, dict[str, Any]] = {}
    gap_failures: dict[str, dict[str, Any]] = {}
    for name in req.sets:
        path = out / f"{name}.h5"
        description = _DESCRIPTIONS[name].format(max_sites=req.max_sites, max_volume=req.max_volume)
        meta = {**common, "set": name, "description": description}
        if name == "random":
            chunks.sort(key=lambda c: c.index)
            batch = CrystalBatch.concatenate([c.batch for c in chunks]) if chunks else _empty_batch()
            patterns = (np.concatenate([c.patterns for c in chunks]) if chunks
                        else np.zeros((0, len(two_theta)), np.float32))
            ids = np.array([f"random-{i:06d}" for i in range(len(batch))], dtype=str)
            found = np.concatenate([c.found for c in chunks]) if chunks else np.zeros(0, np.int64)
            extra = {"crystallite_size_nm": np.concatenate([c.sizes for c in chunks]) if chunks else np.zeros(0),
                     "spacegroups_found": found}
            meta.update({"n_random": req.n_random, "generator": "synthxrd.generate.Generator (default config), "
                         "prior restricted to the classes", "random_chunk": RANDOM_CHUNK})
            mism = {"intended_vs_spglib": {"symprec": req.symprec, **_rate(batch.spacegroups, found)}}
        elif name in GAP_SETS:
            pairs = [(it, next(v for v in it.variants if v.set == name)) for it in ok if it.in_match]
            sel = [(it, v) for it, v in pairs if v.error is None]
            ids = np.array([it.id for it, _ in sel], dtype=str) if sel else np.zeros(0, "<U1")
            labels = np.array([it.label for it, _ in sel], np.int64)
            found = np.array([v.found for _, v in sel], np.int64)
            if sel:
                crystals = _batch([v for _, v in sel])
                batch = CrystalBatch(crystals.lattices, crystals.frac_coords, crystals.numbers, crystals.occupancies,
                                     crystals.offsets, spacegroups=labels)
                patterns = np.stack([v.pattern for _, v in sel])
            else:
                batch = _empty_batch()
                patterns = np.zeros((0, len(two_theta)), np.float32)
            extra = {"crystallite_size_nm": np.array([v.size_nm for _, v in sel], np.float64),
                     "spacegroups_found": found,
                     "n_sites": np.array([it.n_sites for it, _ in sel], np.int64),
                     "conventional_volume": np.array([it.volume for it, _ in sel], np.float64),
                     "cell_volume": np.abs(np.linalg.det(batch.lattices)) if sel else np.zeros(0),
                     "ordered": np.array([it.ordered for it, _ in sel], bool)}
            meta.update({"from_set": "match", "generator": "synthxrd.generate.Generator (default config)",
                         "function": "synthxrd.gap." + ("randomize_coordinates" if name == "match_random_coords"
                                                        else "randomize_lattice")})
            mism = {"intended_vs_spglib": {"symprec": req.symprec, **_rate(labels, found)}}
            failed = [{"id": it.id, "reason": v.error} for it, v in pairs if v.error is not None]
            gap_failures[name] = {"n": len(failed), "n_match": len(pairs),
                                  "by_reason": dict(Counter(f["reason"].split(":", 1)[0] for f in failed)
                                                    .most_common()),
                                  "failures": failed[:_MAX_LISTED_FAILURES]}
        else:
            flag = {"all": "in_all", "match": "in_match", "match_pure": "in_pure"}[name]
            sel = [it for it in ok if getattr(it, flag)]
            ids = np.array([it.id for it in sel], dtype=str) if sel else np.zeros(0, "<U1")
            labels = np.array([it.label for it in sel], np.int64)
            if sel:
                crystals = _batch(sel)
                batch = CrystalBatch(crystals.lattices, crystals.frac_coords, crystals.numbers, crystals.occupancies,
                                     crystals.offsets, spacegroups=labels)
                patterns = np.stack([it.pattern for it in sel])
            else:
                batch = _empty_batch()
                patterns = np.zeros((0, len(two_theta)), np.float32)
            extra = {"crystallite_size_nm": np.array([it.size_nm for it in sel], np.float64),
                     "n_sites": np.array([it.n_sites for it in sel], np.int64),
                     "conventional_volume": np.array([it.volume for it in sel], np.float64),
                     "spacegroups_strict": np.array([it.strict for it in sel], np.int64),
                     "ordered": np.array([it.ordered for it in sel], bool)}
            mism = mismatch(sel)
        meta["count"] = len(ids)
        if len(ids) and np.intersect1d(ids, stat_ids).size:  # defensive: never a statistics-part id
            raise DataError(f"set {name}: contains ids of the statistics part")
        _save_set(path, Dataset(batch, patterns if len(patterns) else None, two_theta if len(patterns) else None,
                                meta), ids, extra)
        set_labels = np.asarray(batch.spacegroups, np.int64)
        del patterns, batch
        groups, group_counts = np.unique(set_labels, return_counts=True)
        set_info[name] = {
            "file": path.name, "count": int(len(ids)), "bytes": path.stat().st_size, "sha256": _sha256_file(path),
            "description": description, "n_classes_present": int(len(groups)),
            "class_counts": {str(int(g)): int(c) for g, c in zip(groups, group_counts)},
            "mismatch": mism,
        }
        if name in gap_failures:
            set_info[name]["failures"] = gap_failures[name]
    # files of sets that an earlier build made but this one does not: removed (not in the manifest)
    for name in SET_NAMES:
        if name not in req.sets:
            (out / f"{name}.h5").unlink(missing_ok=True)

    n_in_classes = sum(1 for it in ok if it.in_all)
    data = {
        "kind": "synthxrd.validation",
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "synthxrd_version": __version__,
        "spglib_version": getattr(spglib, "__version__", "unknown"),
        "source": {"path": str(req.source), "fingerprint": key["source"]["fingerprint"],
                   "index": str(index_path) if index_path else None},
        "split": {"path": req.split_label, "sha256": sp.sha256, "counts": sp.counts(),
                  "metadata": {k: sp.metadata.get(k) for k in ("seed", "test_fraction", "prototype")}},
        "statistics": {"path": req.statistics_label, "format_version": req.statistics.version,
                       "sha256": req.statistics_hash, "n_structures": req.statistics.n_structures,
                       "created": req.statistics.metadata.get("created"),
                       "split_sha256": (req.statistics.metadata.get("split") or {}).get("sha256"),
                       "n_test_ids_in_statistics": 0},
        "classes": list(req.classes),
        "min_count": req.min_count,
        "seed": req.seed,
        "n_random": req.n_random if "random" in req.sets else None,
        "filters": req.filters(),
        "sets": set_info,
        "test_part": {"n_in_split": int(len(test_ids)) if real else None, "n_found": len(items) if real else None,
                      "n_analysed": len(ok) if real else None, "n_failed": len(failures),
                      "n_label_in_classes": n_in_classes if real else None,
                      "n_not_found": int(len(test_ids) - len(items)) if real else None,
                      "failures": failures[:_MAX_LISTED_FAILURES]},
        "mismatch": mismatch(ok) if real else {},
        "key": key,
        "build_time_s": {"total": None, "analysis_and_patterns": round(t_compute, 2)},
        "workers": workers,
    }
    data["build_time_s"]["total"] = round(time.perf_counter() - start, 2)
    write_json(out / MANIFEST, data)
    return Manifest(data, out / MANIFEST)


def _prototype_spacegroups(sp: Split) -> dict[str, int]:
    """id -> space group encoded in a proxy prototype ``"<sg>|..."`` (test part only)."""
    out = {}
    test = sp.parts == "test"
    for i, proto in zip(sp.ids[test].tolist(), sp.prototypes[test].tolist()):
        head = proto.split("|", 1)[0]
        if "|" in proto and head.isdigit() and 1 <= int(head) <= 230:
            out[i] = int(head)
    return out


# --------------------------------------------------------------------------------------------------
# Loading and caching


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
        if verify and _sha256_file(path) != manifest.sets[name]["sha256"]:
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


def _cache_problem(out: Path, req: _Request) -> str | None:
    """Why the cache in ``out`` cannot serve ``req`` (None: it can)."""
    try:
        manifest = Manifest.load(out)
    except DataError as exc:
        return str(exc)
    missing = [s for s in req.sets if s not in manifest.sets]
    if missing:
        return f"sets {missing} not built"
    old = manifest.data.get("key", {})
    new = req.key()
    for k, v in new.items():
        if k == "n_random" and v is None:
            continue
        if json.loads(json.dumps(old.get(k), default=str)) != json.loads(json.dumps(v, default=str)):
            return f"{k} changed"
    for name in req.sets:
        info = manifest.sets[name]
        path = out / info["file"]
        if not path.is_file() or path.stat().st_size != info["bytes"]:
            return f"{path.name} missing or changed"
    return None


def ensure_validation_sets(out_dir: str | Path, *, source: str | Path | None = None,
                           split: str | Path | Split | None = None,
                           statistics: str | Path | Statistics | None = None,
                           classes: Iterable[int] | None = None, n_random: int = DEFAULT_N_RANDOM, seed: int = 0,
                           sets: Sequence[str] = DEFAULT_SETS, workers: int | None = None, progress: bool = True,
                           symprec: float | None = None, strict_symprec: float = STRICT_SYMPREC,
                           max_sites: int = MAX_SITES, max_volume: float = MAX_VOLUME,
                           min_count: int | None = None) -> Manifest:
    """The manifest of an up-to-date cache in ``out_dir``: reused when it matches the request (source,
    split hash, statistics hash, classes, seed, n_random, filters, synthxrd version, the sets), rebuilt
    with :func:`build_validation_sets` otherwise. ``Manifest.reused`` tells which happened; with a
    rebuild, ``manifest["rebuild_reason"]`` says why."""
    from synthxrd import stats as st

    req = _request(source, split, statistics, classes, n_random, seed, sets,
                   _default_symprec(symprec, statistics), strict_symprec, max_sites, max_volume,
                   st.REPRESENTED_MIN_COUNT if min_count is None else min_count)
    out = Path(out_dir)
    problem = _cache_problem(out, req)
    if problem is None:
        m = Manifest.load(out)
        return Manifest(m.data, m.path, reused=True)
    manifest = _build(out, req, workers, progress)
    manifest.data["rebuild_reason"] = problem
    write_json(manifest.path, manifest.data)
    return manifest
