"""Building a validation cache: the process pool, the sets' files and the manifest (see
:mod:`synthxrd.validation`)."""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthxrd.dataset import (
    MANIFEST,
    VALIDATION_FORMAT_VERSION,
    Dataset,
    Manifest,
    save_dataset,
    sha256_file,
)
from synthxrd.errors import ConfigError, DataError
from synthxrd.files import atomic_write, lock_folder, write_json
from synthxrd.pool import chunked, imap_bounded
from synthxrd.stats import default_workers, iter_cif_texts, progress_bar
from synthxrd.structure import CrystalBatch
from synthxrd.wyckoff import N_SPACEGROUPS
from synthxrd.validation.request import (
    CIF_CHUNK,
    GAP_SETS,
    RANDOM_CHUNK,
    SET_NAMES,
    SET_PARTS,
    Resolved,
    ValidationRequest,
    find_index,
    read_index,
)
from synthxrd.validation.synthetic import RandomChunk, random_chunks
from synthxrd.validation.worker import Context, Item, crystal_batch, empty_batch, run_task

if TYPE_CHECKING:
    from synthxrd.split import Split

__all__ = ["build_validation_sets", "ensure_validation_sets"]

#: Failures listed in the manifest (all are counted).
_MAX_LISTED_FAILURES = 200

_DESCRIPTIONS = {
    "random": "synthetic crystals of the generator (training distribution), intended space groups",
    "calibration": "calibration-part crystals with <= {max_sites} asymmetric-unit sites, V <= {max_volume:g} A^3 "
                   "and a class label (the filters of match): checkpoint selection and temperature",
    "match": "test-part crystals with <= {max_sites} asymmetric-unit sites, V <= {max_volume:g} A^3 and a class label",
    "all": "every test-part crystal with a class label",
    "match_pure": "match without partially occupied sites",
    "match_random_coords": "match with the free Wyckoff coordinates redrawn uniformly (lattice, space group, "
                           "Wyckoff occupation kept); label: the original space group",
    "match_random_lattice": "match with the lattice redrawn by the generator for its space group (volume model, "
                            "lattice KDE; fractional coordinates kept); label: the original space group",
}


def _rate(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    n = int(len(a))
    k = int(np.count_nonzero(a != b))
    return {"n": n, "n_mismatch": k, "rate": round(k / n, 6) if n else None}


def _iter_results(req: Resolved, ctx: Context, workers: int, part_of: Mapping[str, str],
                  contexts: Mapping[str, Context], random_chunks: list[tuple[int, int]]) -> Iterator[Any]:
    """Yield the results of all random chunks (context ``ctx``) and CIF chunks (in completion order).

    The CIFs are those of ``part_of`` (id -> split part), read in one pass over the source; each is
    analysed with the context of its part (``contexts``)."""
    cifs = chunked(iter_cif_texts(req.source, ids=list(part_of)), CIF_CHUNK)
    tasks = chain(((ctx, "random", k, n) for k, n in random_chunks),
                  ((contexts[part], "cifs", sub) for chunk in cifs for part, sub in _by_part(chunk, part_of)))
    yield from imap_bounded(run_task, tasks, workers=workers)


def _by_part(chunk: Sequence[tuple[str, str]], part_of: Mapping[str, str]) -> list[tuple[str, list]]:
    """``chunk`` of ``(id, text)`` grouped by the split part of each id: ``[(part, its items), ...]``."""
    groups: dict[str, list] = {}
    for entry in chunk:
        groups.setdefault(part_of[entry[0]], []).append(entry)
    return list(groups.items())


def _held_out_ids(req: Resolved) -> dict[str, np.ndarray]:
    """The ids of the held-out parts (``test``, ``calibration``), checked against each other, the statistics
    part and the statistics.

    Raises
    ------
    DataError
        If the split puts an id in two parts.
    ConfigError
        If the statistics contain structures of a held-out part (their prototypes would not be unseen).
    """
    sp = req.split
    parts = {p: np.unique(sp.ids_of(p)) for p in ("statistics", "calibration", "test")}
    names = list(parts)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = np.intersect1d(parts[a], parts[b])
            if len(both):
                raise DataError(f"split {req.split_label}: {len(both)} ids are in both parts {a} and {b} "
                                f"(e.g. {both[0]!r})")
    for part in ("test", "calibration"):
        leaked = np.intersect1d(parts[part], req.statistics.ids)
        if len(leaked):
            raise ConfigError(f"statistics ({req.statistics_label}) contain {len(leaked)} structures of the split's "
                              f"{part} part (e.g. {leaked[0]!r}): their prototypes would not be unseen. Use "
                              "statistics of the statistics part (Statistics.restrict(split))")
    return parts


def _part_summary(n_in_split: int, items: Sequence[Item], read: bool) -> dict[str, Any]:
    """The manifest's account of one held-out part: ids, found, analysed, failed (None where not read)."""
    ok = [it for it in items if it.error is None]
    failures = [{"id": it.id, "reason": it.error} for it in items if it.error is not None]
    return {"n_in_split": int(n_in_split) if read else None, "n_found": len(items) if read else None,
            "n_analysed": len(ok) if read else None, "n_failed": len(failures),
            "n_label_in_classes": sum(1 for it in ok if it.in_all) if read else None,
            "n_not_found": int(n_in_split - len(items)) if read else None,
            "failures": failures[:_MAX_LISTED_FAILURES]}


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


def build_validation_sets(out_dir: str | Path, request: ValidationRequest | None = None, *,
                          workers: int | None = None, progress: bool = True, **options: Any) -> Manifest:
    """Build the validation sets into ``out_dir`` (always; see :func:`ensure_validation_sets` to reuse).

    Parameters
    ----------
    out_dir : folder of the cache (created).
    request : what to build (:class:`ValidationRequest`), or give its fields as keywords (``options``:
        ``source`` (required), ``split``, ``statistics``, ``classes``, ``n_random``, ``seed``, ``sets``,
        ``symprec``, ``strict_symprec``, ``max_sites``, ``max_volume``, ``min_count``).
    workers : processes (default: all available cores; 1 = no subprocesses).
    progress : tqdm bars on stderr.

    Returns
    -------
    Manifest

    Raises
    ------
    ConfigError
        On invalid options, or when the statistics contain structures of the test or calibration part
        (they would not be unseen).
    DataError
        If the source or split cannot be read, or the split puts an id in two parts.

    The folder is owned by one build at a time (:func:`synthxrd.files.lock_folder`): a second one
    while this one runs is a :class:`ConfigError`.
    """
    out = Path(out_dir)
    req = ValidationRequest.of(request, options).resolve()
    _check_folder(out)
    with lock_folder(out):
        return _build(out, req, workers, progress)


def _check_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder")


def _build(out: Path, req: Resolved, workers: int | None, progress: bool) -> Manifest:
    import spglib

    from synthxrd import __version__
    from synthxrd.simulate import Grid

    start = time.perf_counter()
    key = req.key()  # before reading: the source as it was when the build started
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    sp = req.split
    parts = _held_out_ids(req)
    test_ids, cal_ids, stat_ids = parts["test"], parts["calibration"], parts["statistics"]
    real = [s for s in req.sets if s != "random"]
    read = {part: any(SET_PARTS[s] == part for s in real) for part in ("test", "calibration")}
    if read["calibration"] and not len(cal_ids):
        warnings.warn(f"split {req.split_label} has no calibration part (written before it existed): the "
                      "calibration set is empty; make one with synthxrd.split.with_calibration", stacklevel=3)
    ctx = Context(req.seed, req.classes, req.symprec, req.strict_symprec, req.max_sites, req.max_volume,
                   "all" in real, "match" in real, "match_pure" in real, req.statistics_path,
                   tuple(s for s in req.sets if s in GAP_SETS))
    # the calibration part: the crystals that pass the filters of match, nothing else
    contexts = {"test": ctx, "calibration": replace(ctx, want_all=False, want_match=True, want_pure=False, gap=())}
    part_of = {**({i: "test" for i in test_ids.tolist()} if read["test"] else {}),
               **({i: "calibration" for i in cal_ids.tolist()} if read["calibration"] else {})}
    tmp_stats = None
    needs_generator = "random" in req.sets or "match_random_lattice" in req.sets
    if needs_generator and req.statistics_path == "":  # a Statistics object: hand workers a file
        tmp_stats = tempfile.TemporaryDirectory(prefix=".synthxrd-validation-")
        path = req.statistics.save(Path(tmp_stats.name) / "statistics.npz")
        ctx = replace(ctx, statistics_path=str(path))
        contexts = {part: replace(c, statistics_path=str(path)) for part, c in contexts.items()}
    n_random = req.n_random if "random" in req.sets else 0

    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # a half-rebuilt folder is never taken for a valid cache
    bar_cif = progress_bar(len(part_of), "validation CIFs", enabled=progress and bool(real))
    bar_rand = progress_bar(n_random, "random crystals", unit="crystal", enabled=progress and n_random > 0,
                            position=1 if real else 0)
    items: list[Item] = []
    chunks: list[tuple[RandomChunk, np.ndarray]] = []  # (chunk, spglib space group of each crystal)
    try:
        for result in _iter_results(req, ctx, workers, part_of, contexts, random_chunks(n_random)):
            if isinstance(result, tuple):  # a random chunk
                chunks.append(result)
                bar_rand.update(len(result[0].batch))
            else:
                items.extend(result)
                bar_cif.update(len(result))
    finally:
        bar_cif.close()
        bar_rand.close()
        if tmp_stats is not None:
            tmp_stats.cleanup()
    t_compute = time.perf_counter() - start

    items.sort(key=lambda it: it.id)
    items_of = {part: [it for it in items if part_of[it.id] == part] for part in ("test", "calibration")}
    ok_of = {part: [it for it in its if it.error is None] for part, its in items_of.items()}
    ok = ok_of["test"]
    two_theta = Grid().values()
    common = {
        "kind": "synthxrd.validation_set", "seed": req.seed, "classes": list(req.classes),
        "source": str(req.source), "split": req.split_label, "split_sha256": sp.sha256,
        "statistics": req.statistics_label, "statistics_sha256": req.statistics_hash,
        "statistics_format_version": req.statistics.version, "synthxrd_version": __version__,
        "filters": req.filters(),
    }
    index_path = find_index(req.source) if real else None
    index = read_index(index_path, {it.id for its in ok_of.values() for it in its}) if index_path else {}
    proto_sg = _prototype_spacegroups(sp)

    def mismatch(selected: Sequence[Item]) -> dict[str, Any]:
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
            chunks.sort(key=lambda c: c[0].index)
            batch = CrystalBatch.concatenate([c.batch for c, _ in chunks]) if chunks else empty_batch()
            patterns = (np.concatenate([c.patterns for c, _ in chunks]) if chunks
                        else np.zeros((0, len(two_theta)), np.float32))
            ids = np.array([f"random-{i:06d}" for i in range(len(batch))], dtype=str)
            found = np.concatenate([f for _, f in chunks]) if chunks else np.zeros(0, np.int64)
            extra = {"crystallite_size_nm": np.concatenate([c.sizes for c, _ in chunks]) if chunks else np.zeros(0),
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
                crystals = crystal_batch([v for _, v in sel])
                batch = CrystalBatch(crystals.lattices, crystals.frac_coords, crystals.numbers, crystals.occupancies,
                                     crystals.offsets, spacegroups=labels)
                patterns = np.stack([v.pattern for _, v in sel])
            else:
                batch = empty_batch()
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
            flag = {"all": "in_all", "match": "in_match", "match_pure": "in_pure", "calibration": "in_match"}[name]
            sel = [it for it in ok_of[SET_PARTS[name]] if getattr(it, flag)]
            ids = np.array([it.id for it in sel], dtype=str) if sel else np.zeros(0, "<U1")
            labels = np.array([it.label for it in sel], np.int64)
            if sel:
                crystals = crystal_batch(sel)
                batch = CrystalBatch(crystals.lattices, crystals.frac_coords, crystals.numbers, crystals.occupancies,
                                     crystals.offsets, spacegroups=labels)
                patterns = np.stack([it.pattern for it in sel])
            else:
                batch = empty_batch()
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
        other = cal_ids if SET_PARTS.get(name) == "test" else test_ids if name == "calibration" else None
        if other is not None and len(ids) and np.intersect1d(ids, other).size:  # defensive: one part per set
            raise DataError(f"set {name}: contains ids of another part than {SET_PARTS[name]}")
        _save_set(path, Dataset(batch, patterns if len(patterns) else None, two_theta if len(patterns) else None,
                                meta), ids, extra)
        set_labels = np.asarray(batch.spacegroups, np.int64)
        del patterns, batch
        groups, group_counts = np.unique(set_labels, return_counts=True)
        set_info[name] = {
            "file": path.name, "count": int(len(ids)), "bytes": path.stat().st_size, "sha256": sha256_file(path),
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

    data = {
        "kind": "synthxrd.validation",
        "format_version": VALIDATION_FORMAT_VERSION,
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
                       "n_test_ids_in_statistics": 0, "n_calibration_ids_in_statistics": 0},
        "classes": list(req.classes),
        "min_count": req.min_count,
        "seed": req.seed,
        "n_random": req.n_random if "random" in req.sets else None,
        "filters": req.filters(),
        "sets": set_info,
        "test_part": _part_summary(len(test_ids), items_of["test"], read["test"]),
        "calibration_part": _part_summary(len(cal_ids), items_of["calibration"], read["calibration"]),
        "mismatch": mismatch(ok) if read["test"] else {},
        "key": key,
        "build_time_s": {"total": None, "analysis_and_patterns": round(t_compute, 2)},
        "workers": workers,
    }
    data["build_time_s"]["total"] = round(time.perf_counter() - start, 2)
    write_json(out / MANIFEST, data)
    return Manifest(data, out / MANIFEST)


def _prototype_spacegroups(sp: Split) -> dict[str, int]:
    """id -> space group encoded in a proxy prototype ``"<sg>|..."`` (test and calibration parts only)."""
    out = {}
    held_out = np.isin(sp.parts, ("test", "calibration"))
    for i, proto in zip(sp.ids[held_out].tolist(), sp.prototypes[held_out].tolist()):
        head = proto.split("|", 1)[0]
        if "|" in proto and head.isdigit() and 1 <= int(head) <= N_SPACEGROUPS:
            out[i] = int(head)
    return out


def _cache_problem(out: Path, req: Resolved) -> str | None:
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


def ensure_validation_sets(out_dir: str | Path, request: ValidationRequest | None = None, *,
                           workers: int | None = None, progress: bool = True, **options: Any) -> Manifest:
    """The manifest of an up-to-date cache in ``out_dir``: reused when it matches the request (source,
    split hash, statistics hash, classes, seed, n_random, filters, synthxrd version, the sets), rebuilt
    with :func:`build_validation_sets` otherwise (same arguments). ``Manifest.reused`` tells which
    happened; with a rebuild, ``manifest["rebuild_reason"]`` says why."""
    req = ValidationRequest.of(request, options).resolve()
    out = Path(out_dir)
    if _cache_problem(out, req) is not None:  # reading a valid cache needs no lock (it may be read-only)
        _check_folder(out)
        with lock_folder(out):  # a cache to (re)build is owned by one process
            problem = _cache_problem(out, req)  # again: another build may have finished meanwhile
            if problem is not None:
                manifest = _build(out, req, workers, progress)
                manifest.data["rebuild_reason"] = problem
                write_json(manifest.path, manifest.data)
                return manifest
    m = Manifest.load(out)
    return Manifest(m.data, m.path, reused=True)
