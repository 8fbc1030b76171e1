"""The real crystal set of the statistics part of a split: building it from a structure collection and
reading it back (see :mod:`synthxrd.real`)."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from synthxrd.errors import ConfigError, DataError
from synthxrd.pool import chunked, imap_bounded, outcomes
from synthxrd.real.compact import KIND
from synthxrd.structure import CrystalBatch

if TYPE_CHECKING:
    from synthxrd.split import Split
    from synthxrd.stats import Statistics

__all__ = ["KIND", "FORMAT_VERSION", "MAX_SITES", "MAX_VOLUME", "RealCrystals", "build_real_set", "read_failures"]

#: Layout of the file; a newer one is refused.
FORMAT_VERSION = 1
#: Filters of the generator (as the validation set ``match``): asymmetric-unit sites and Å^3.
MAX_SITES = 100
MAX_VOLUME = 7000.0
#: CIFs per task sent to a worker.
CIF_CHUNK = 64
#: Failures listed in the metadata attribute (all are kept in /real/failure_ids, failure_reasons).
_MAX_LISTED_FAILURES = 20
#: Occupancies below 1 - this are partial (the tolerance of synthxrd.stats and synthxrd.validation).
_OCCUPANCY_TOL = 1e-3

# --------------------------------------------------------------------------------------------------
# The set on disk


@dataclass(frozen=True, eq=False)
class RealCrystals:
    """Real crystals with space-group labels, read from a file of :func:`build_real_set`.

    Attributes
    ----------
    crystals : :class:`~synthxrd.structure.CrystalBatch` with ``spacegroups`` (ITA numbers, the labels).
    ids : (N,) str structure ids (CIF file stems).
    metadata : dict, what the set was built from (see the module docstring).
    extra : per-crystal arrays ``n_sites`` (i8), ``conventional_volume`` (f8, Å^3), ``ordered`` (bool).
    path : file it was read from, or None.
    """

    crystals: CrystalBatch
    ids: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    path: Path | None = None
    _pools: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: str | Path | None = None) -> RealCrystals:
        """Read a real crystal set: an HDF5 file of :func:`build_real_set`, a compact ``.npz``
        (:mod:`synthxrd.real.compact`, read with numpy alone), or None / ``"shipped"`` for the set shipped
        in the package (MP statistics part and AMCSD minerals, :func:`synthxrd.real.compact.shipped_path`).

        Raises
        ------
        DataError
            Naming the file, when it is missing or not a real crystal set of a supported version.
        """
        from synthxrd.real.compact import SHIPPED_NAME, is_compact, load_compact, resolve_real

        if path is None or str(path) == SHIPPED_NAME:
            path = resolve_real(path)
            if not path.is_file():
                raise DataError(f"{path}: the shipped real crystal set is missing from this installation; "
                                "rebuild it with scripts/build_real_set.py or pass a file")
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no such real crystal set (build one with `synthxrd real build`)")
        if is_compact(path):
            crystals, ids, extra, meta = load_compact(path)
            return cls(crystals, ids, meta, extra, path)
        import h5py

        from synthxrd.dataset import load_dataset

        path = Path(path)
        base = load_dataset(path)  # DataError naming the file if it is no synthxrd dataset
        meta = base.metadata
        if not isinstance(meta, dict) or meta.get("kind") != KIND:
            kind = meta.get("kind") if isinstance(meta, dict) else None
            raise DataError(f"{path}: not a real crystal set (metadata kind {kind!r}, expected {KIND!r}); "
                            "build one with `synthxrd real build`")
        if int(meta.get("format_version", -1)) > FORMAT_VERSION:
            raise DataError(f"{path}: real set format_version {meta['format_version']} is newer than this "
                            f"synthxrd supports ({FORMAT_VERSION}); upgrade synthxrd")
        try:
            with h5py.File(path, "r") as h5:
                g = h5["real"]
                ids = np.array([s.decode() if isinstance(s, bytes) else str(s) for s in g["ids"][()]], dtype=str)
                extra = {k: g[k][()] for k in ("n_sites", "conventional_volume", "ordered") if k in g}
        except (OSError, KeyError) as exc:
            raise DataError(f"{path}: not a real crystal set ({exc})") from None
        crystals = base.crystals
        if crystals.spacegroups is None or len(ids) != len(crystals):
            raise DataError(f"{path}: {len(ids)} ids for {len(crystals)} crystals"
                            + ("" if crystals.spacegroups is not None else ", no space-group labels"))
        return cls(crystals, ids if len(ids) else np.zeros(0, "<U1"), meta, extra, path)

    def __len__(self) -> int:
        return len(self.crystals)

    @cached_property
    def sha256(self) -> str | None:
        """SHA-256 of the file's bytes (the fingerprint a training run records), None when not read from a file."""
        from synthxrd.dataset import sha256_file

        return None if self.path is None else sha256_file(self.path)

    @property
    def is_shipped(self) -> bool:
        """Whether this is the set shipped in the package."""
        from synthxrd.real.compact import shipped_path

        return self.path is not None and self.path.resolve() == shipped_path().resolve()

    @property
    def labels(self) -> np.ndarray:
        """(N,) int64 ITA space-group numbers of the crystals."""
        return self.crystals.spacegroups

    @cached_property
    def classes(self) -> np.ndarray:
        """Sorted ITA numbers of the space groups present."""
        return np.unique(self.labels)

    def take(self, indices: Sequence[int] | np.ndarray) -> CrystalBatch:
        """The crystals ``indices`` (in that order, repeats allowed) as one batch with their labels.

        Raises
        ------
        ConfigError
            If an index is out of range.
        """
        idx = np.asarray(indices).reshape(-1)
        if idx.size and (idx.dtype.kind not in "iu" or idx.min() < -len(self) or idx.max() >= len(self)):
            raise ConfigError(f"take: indices must be integers in [0, {len(self)}), got {indices!r:.80}")
        idx = idx.astype(np.int64) % max(len(self), 1)
        c = self.crystals
        starts = c.offsets[idx]
        counts = c.offsets[idx + 1] - starts
        offsets = np.zeros(len(idx) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        rows = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1])
        return CrystalBatch(c.lattices[idx], c.frac_coords[rows], c.numbers[rows], c.occupancies[rows], offsets,
                            spacegroups=c.spacegroups[idx])

    def _pool(self, classes: np.ndarray | None) -> np.ndarray:
        key = None if classes is None else tuple(sorted({int(g) for g in classes.tolist()}))
        if key not in self._pools:
            pool = (np.arange(len(self)) if key is None
                    else np.flatnonzero(np.isin(self.labels, np.array(key, np.int64))))
            self._pools[key] = pool
        return self._pools[key]

    def sample(self, n: int, rng: np.random.Generator, *,
               classes: Iterable[int] | None = None) -> tuple[CrystalBatch, np.ndarray]:
        """``n`` crystals drawn uniformly (with replacement) among all, or among those whose label is
        in ``classes`` (ITA numbers).

        Returns
        -------
        crystals : CrystalBatch with ``spacegroups``.
        labels : (n,) int64 ITA numbers (the same as ``crystals.spacegroups``).

        Raises
        ------
        ConfigError
            If ``n < 0`` or no crystal has a label among ``classes``.
        """
        batch = self.take(self.draw(n, rng, classes=classes))  # draw checks the arguments
        return batch, batch.spacegroups.copy()

    def draw(self, n: int, rng: np.random.Generator, *, classes: Iterable[int] | None = None) -> np.ndarray:
        """The indices :meth:`sample` takes (same arguments, same random numbers)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ConfigError(f"sample: n must be an integer >= 0, got {n!r}")
        if classes is not None:
            classes = (classes if isinstance(classes, np.ndarray) else np.array(list(classes))).reshape(-1)
            if classes.size and classes.dtype.kind not in "iu":
                raise ConfigError(f"sample: classes must be ITA numbers, got {classes!r:.80}")
        pool = self._pool(classes)
        if len(pool) == 0 and n > 0:
            where = f" ({self.path})" if self.path else ""
            raise ConfigError(f"real crystal set{where}: no crystal has a space group among the classes "
                              f"{classes.tolist()!r:.120}")
        return pool[rng.integers(0, len(pool), size=int(n))] if n else np.zeros(0, np.int64)

    @property
    def operations_symprec(self) -> float | None:
        """Tolerance at which the stored symmetry operations were found; None when the set stores none."""
        ops = self.metadata.get("operations") if isinstance(self.metadata, dict) else None
        return None if not ops or "sym_counts" not in self.extra else float(ops["symprec"])

    def operations(self, indices: Sequence[int] | np.ndarray) -> list | None:
        """The stored symmetry operations of crystals ``indices`` for :func:`synthxrd.real.perturb`: per
        crystal ``(rotations (k, 3, 3), translations (k, 3), ITA number)`` or None (no symmetry found);
        None when the set stores none (then perturb asks spglib)."""
        if self.operations_symprec is None:
            return None
        e = self.extra
        offsets = self._pools.get("_sym_offsets")
        if offsets is None:
            offsets = np.zeros(len(e["sym_counts"]) + 1, np.int64)
            np.cumsum(e["sym_counts"], out=offsets[1:])
            self._pools["_sym_offsets"] = offsets
        out = []
        for i in np.asarray(indices, np.int64).reshape(-1).tolist():
            a, b = int(offsets[i]), int(offsets[i + 1])
            out.append(None if b == a else (e["sym_rotations"][e["sym_rot"][a:b]],
                                            e["sym_trans"][a:b].astype(np.float64), int(e["sym_number"][i])))
        return out



# --------------------------------------------------------------------------------------------------
# Building the set


@dataclass(frozen=True)
class _Context:
    symprec: float
    classes: tuple[int, ...]
    max_sites: int
    max_volume: float


class _Item(NamedTuple):
    """One CIF: error, or label and filters (and the crystal's arrays when kept)."""

    id: str
    error: str | None
    label: int = 0
    n_sites: int = 0
    volume: float = math.nan
    ordered: bool = True
    reason: str = ""  # why not kept: "", "class", "sites", "volume"
    prototype: str = ""  # prototype proxy (synthxrd.split.prototype_label) of a kept crystal
    formula: str = ""  # reduced formula of a kept crystal (for duplicates across sources)
    lattice_parameters: np.ndarray | None = None  # (6,) conventional cell of a kept crystal
    lattice: np.ndarray | None = None
    frac: np.ndarray | None = None
    numbers: np.ndarray | None = None
    occupancies: np.ndarray | None = None


def _analyze(ctx: _Context, identifier: str, text: str) -> _Item:
    """One CIF read as :mod:`synthxrd.validation` reads the test part (same function, same label)."""
    from synthxrd.validation.worker import read_labelled

    record, sites = read_labelled(text, identifier, ctx.symprec)
    crystal = sites.to_crystal()
    ordered = bool(np.all(crystal.occupancies >= 1.0 - _OCCUPANCY_TOL))
    reason = ("class" if record.spacegroup not in ctx.classes else "sites" if record.n_sites > ctx.max_sites
              else "volume" if record.volume > ctx.max_volume else "")
    item = _Item(identifier, None, record.spacegroup, record.n_sites, record.volume, ordered, reason)
    if not reason:
        from synthxrd.split import prototype_label
        from synthxrd.structure import reduced_formula

        item = item._replace(lattice=crystal.lattice, frac=crystal.frac_coords, numbers=crystal.numbers,
                             occupancies=crystal.occupancies, formula=reduced_formula(crystal),
                             lattice_parameters=np.asarray(record.lattice, np.float64),
                             prototype=prototype_label(record.spacegroup, record.site_z, record.site_multiplicity,
                                                       record.site_occupancy, record.site_orbit, record.site_wyckoff))
    return item


def _process(ctx: _Context, chunk: list[tuple[str, str]]) -> list[_Item]:
    from functools import partial

    return [item if reason is None else _Item(i, reason) for i, item, reason in outcomes(chunk, partial(_analyze, ctx))]


def _iter_results(source: Path, ids: list[str], ctx: _Context, workers: int) -> Iterator[list[_Item]]:
    """Results per chunk of CIFs (completion order), as synthxrd.validation builds its sets; the context
    travels with each task (workers: :func:`synthxrd.pool.quiet_worker`, nothing else)."""
    from synthxrd.stats import iter_cif_texts

    tasks = ((ctx, chunk) for chunk in chunked(iter_cif_texts(source, ids=ids), CIF_CHUNK))
    yield from imap_bounded(_process, tasks, workers=workers)


def _reason_category(reason: str) -> str:
    """A failure message without its numbers, for counting failures by kind."""
    import re

    return re.sub(r"\d+(\.\d+)?", "#", reason.split("\n", 1)[0])[:100]


def batch_of(items: Sequence) -> CrystalBatch:
    """One :class:`~synthxrd.structure.CrystalBatch` of analysed crystals (``lattice``, ``frac``, ``numbers``,
    ``occupancies`` and ``label`` each), labelled."""
    offsets = np.zeros(len(items) + 1, np.int64)
    offsets[1:] = np.cumsum([len(it.numbers) for it in items])
    return CrystalBatch(np.array([it.lattice for it in items]).reshape(-1, 3, 3),
                        np.concatenate([it.frac for it in items]).reshape(-1, 3),
                        np.concatenate([it.numbers for it in items]).astype(np.int64),
                        np.concatenate([it.occupancies for it in items]), offsets,
                        spacegroups=np.array([it.label for it in items], np.int64))


def build_real_set(source: str | Path, out: str | Path, *, split: str | Path | Split | None = None,
                   statistics: str | Path | Statistics | None = None, classes: Iterable[int] | None = None,
                   min_count: int | None = None, max_sites: int = MAX_SITES, max_volume: float = MAX_VOLUME,
                   workers: int | None = None, progress: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Build the real crystal set of the statistics part of a split into one HDF5 file.

    Parameters
    ----------
    source : folder, tar archive or CIF of the structure collection the split was made from, e.g.
        ``../shared/data/mp_experimental/structures.tar.xz``.
    out : output file (``.h5``); its folder is created. Written atomically.
    split : split CSV, a :class:`~synthxrd.split.Split`, or None for the shipped split.
    statistics : statistics file, :class:`~synthxrd.stats.Statistics` or None (shipped): its
        ``symprec`` labels the crystals, its represented groups are the default classes.
    classes : space groups to keep (default ``statistics.represented(min_count)``).
    min_count : for the default classes (default :data:`synthxrd.stats.REPRESENTED_MIN_COUNT`).
    max_sites, max_volume : filters (asymmetric-unit sites; conventional-cell volume in Å^3).
    workers : processes (default :func:`synthxrd.stats.default_workers`; 1 = no subprocesses).
    progress : tqdm bar on stderr.
    overwrite : replace an existing ``out``.

    Returns
    -------
    dict: the metadata written (``counts``, ``class_counts``, ``failure_reasons``, ...), plus ``path``,
    ``bytes`` and ``failures`` (every failure as ``{"id", "reason"}``).

    Raises
    ------
    ConfigError
        On invalid options, an existing ``out`` without ``overwrite`` (checked before any work), or
        statistics that contain structures of the split's test part.
    DataError
        If the source or split cannot be read, the split puts an id in both parts, no CIF of the
        statistics part is found or none could be analysed, or no crystal passes the filters
        (nothing is written then).
    """
    import spglib

    from synthxrd import __version__
    from synthxrd import stats as st
    from synthxrd.dataset import Dataset, save_dataset
    from synthxrd.files import atomic_write, check_outputs
    from synthxrd.validation.request import resolve_classes, resolve_inputs

    start = time.perf_counter()
    src = Path(source).expanduser().resolve()
    out = Path(out).expanduser()
    if not src.exists():
        raise DataError(f"{src}: no such file or folder (the structure collection: a folder or tar of CIFs)")
    inputs = [src] + [p for p in (split, statistics) if isinstance(p, (str, Path))]
    check_outputs([out], inputs=inputs, overwrite=overwrite)
    fingerprint = st.source_fingerprint(src)  # before reading: the source as it was when the build started
    sp, split_label, stat, stat_label, _ = resolve_inputs(split, statistics)

    test_ids = np.unique(sp.ids_of("test"))
    stat_ids = np.unique(sp.ids_of("statistics"))
    both = np.intersect1d(test_ids, stat_ids)
    if len(both):
        raise DataError(f"split {split_label}: {len(both)} ids are in both parts (e.g. {both[0]!r}); a real set "
                        "must never hold a test-part structure")
    leaked = np.intersect1d(test_ids, stat.ids)
    if len(leaked):
        raise ConfigError(f"statistics ({stat_label}) contain {len(leaked)} structures of the split's test part "
                          f"(e.g. {leaked[0]!r}); use statistics of the statistics part (Statistics.restrict(split))")
    cls, used_min_count = resolve_classes(classes, stat, st.REPRESENTED_MIN_COUNT if min_count is None
                                          else int(min_count), stat_label)
    if isinstance(max_sites, bool) or not isinstance(max_sites, (int, np.integer)) or max_sites < 1:
        raise ConfigError(f"max_sites must be an integer >= 1, got {max_sites!r}")
    if not (isinstance(max_volume, (int, float)) and math.isfinite(max_volume) and max_volume > 0):
        raise ConfigError(f"max_volume must be a positive number (Å^3), got {max_volume!r}")
    workers = st.default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    ctx = _Context(stat.symprec, cls, int(max_sites), float(max_volume))

    bar = st.progress_bar(len(stat_ids), "real crystals (CIFs)", enabled=progress)
    items: list[_Item] = []
    try:
        for result in _iter_results(src, stat_ids.tolist(), ctx, workers):
            items.extend(result)
            bar.update(len(result))
    finally:
        bar.close()
    t_analysis = time.perf_counter() - start

    items.sort(key=lambda it: it.id)
    seen: set[str] = set()
    unique: list[_Item] = []
    n_duplicates = 0
    for it in items:  # a folder may hold the same file stem twice: the first one (sorted path) counts
        if it.id in seen:
            n_duplicates += 1
            continue
        seen.add(it.id)
        unique.append(it)
    items = unique
    ok = [it for it in items if it.error is None]
    failures = [{"id": it.id, "reason": it.error} for it in items if it.error is not None]
    kept = [it for it in ok if not it.reason]
    if not items:
        raise DataError(f"{src}: none of the {len(stat_ids)} ids of the split's statistics part was found; "
                        "nothing was written (is this the collection the split was made from?)")
    if not ok:
        raise DataError(f"{src}: none of the {len(failures)} CIFs of the statistics part could be analysed; "
                        f"nothing was written (first: {failures[0]['id']}: {failures[0]['reason']})")
    if not kept:
        raise DataError(f"{src}: none of the {len(ok)} analysed crystals has a class label, <= {max_sites} sites "
                        f"and V <= {max_volume:g} Å^3; nothing was written")
    ids = np.array([it.id for it in kept], dtype=str)
    if np.intersect1d(ids, test_ids).size or not np.isin(ids, stat_ids).all():  # defensive
        raise DataError("real set: a kept id is not in the statistics part of the split; nothing was written")

    batch = batch_of(kept)
    labels = batch.spacegroups
    extra = {"n_sites": np.array([it.n_sites for it in kept], np.int64),
             "conventional_volume": np.array([it.volume for it in kept], np.float64),
             "ordered": np.array([it.ordered for it in kept], bool)}
    groups, group_counts = np.unique(labels, return_counts=True)
    reasons = Counter(it.reason for it in ok)
    meta: dict[str, Any] = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "description": (f"statistics-part crystals with a class label, <= {max_sites} asymmetric-unit sites and "
                        f"V <= {max_volume:g} A^3; crystals as read (original cell), labels spglib at symprec "
                        f"{stat.symprec} (synthxrd.stats.analyze_cif)"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "synthxrd_version": __version__,
        "spglib_version": getattr(spglib, "__version__", "unknown"),
        "source": {"path": str(src), "fingerprint": fingerprint},
        "split": {"path": split_label, "sha256": sp.sha256, "part": "statistics", "counts": sp.counts(),
                  "metadata": {k: sp.metadata.get(k) for k in ("seed", "test_fraction", "prototype")}},
        "statistics": {"path": stat_label, "format_version": stat.version, "sha256": stat.sha256,
                       "symprec": stat.symprec, "n_structures": stat.n_structures,
                       "created": stat.metadata.get("created"),
                       "split_sha256": (stat.metadata.get("split") or {}).get("sha256")},
        "classes": list(cls),
        "min_count": used_min_count,
        "filters": {"symprec": stat.symprec, "max_sites": int(max_sites), "max_volume": float(max_volume)},
        "counts": {"n_in_split_part": int(len(stat_ids)), "n_found": len(items), "n_duplicates": n_duplicates,
                   "n_not_found": int(len(stat_ids) - len(items)), "n_analysed": len(ok), "n_failed": len(failures),
                   "n_label_not_a_class": reasons["class"], "n_too_many_sites": reasons["sites"],
                   "n_volume_too_large": reasons["volume"], "n_kept": len(kept),
                   "n_kept_partially_occupied": int((~extra["ordered"]).sum()),
                   "n_classes_present": int(len(groups)), "n_atoms": int(batch.offsets[-1])},
        "class_counts": {str(int(g)): int(c) for g, c in zip(groups, group_counts)},
        "failure_reasons": dict(Counter(_reason_category(f["reason"]) for f in failures).most_common()),
        "failures_listed": failures[:_MAX_LISTED_FAILURES],
        "workers": workers,
        "build_time_s": {"analysis": round(t_analysis, 2), "total": None},
    }

    def write(tmp: Path) -> None:
        import h5py

        save_dataset(tmp, Dataset(batch, metadata=meta))
        with h5py.File(tmp, "a") as h5:
            g = h5.create_group("real")
            g.create_dataset("ids", data=np.array(ids.tolist(), dtype=h5py.string_dtype()))
            for name, arr in extra.items():
                g.create_dataset(name, data=arr)
            g.create_dataset("failure_ids", data=np.array([f["id"] for f in failures], dtype=h5py.string_dtype()))
            g.create_dataset("failure_reasons",
                             data=np.array([f["reason"] for f in failures], dtype=h5py.string_dtype()))

    meta["build_time_s"]["total"] = round(time.perf_counter() - start, 2)  # written with the file
    out.parent.mkdir(parents=True, exist_ok=True)
    check_outputs([out], inputs=inputs, overwrite=overwrite)  # again: nothing appeared there meanwhile
    atomic_write(out, write)
    return {**meta, "path": str(out), "bytes": out.stat().st_size, "failures": failures}


def read_failures(path: str | Path) -> list[dict[str, str]]:
    """Every failure ``{"id", "reason"}`` recorded in a real crystal set file."""
    import h5py

    real = RealCrystals.load(path)  # DataError unless it is a real set
    if real.path is not None and real.path.suffix == ".npz":
        return []  # a compact set keeps the failure counts by reason in its metadata only
    with h5py.File(path, "r") as h5:
        g = h5["real"]
        ids = [s.decode() if isinstance(s, bytes) else str(s) for s in g["failure_ids"][()]]
        reasons = [s.decode() if isinstance(s, bytes) else str(s) for s in g["failure_reasons"][()]]
    return [{"id": i, "reason": r} for i, r in zip(ids, reasons)]
