"""The compact (NPZ) form of a real crystal set, and the set shipped in the package.

The shipped set (``resources/real/real_crystals.npz``, :data:`SHIPPED`) holds the real crystals of two
sources: the **statistics part** of the shipped prototype split of the project's Materials Project
collection (as ``synthxrd real build`` keeps them), and the **AMCSD** minerals (:mod:`synthxrd.amcsd`)
whose prototype proxy (:func:`synthxrd.split.prototype_label`, the proxy the reference library uses to
hold a structure type out, :meth:`synthxrd.match.ReferenceLibrary.without_part`) is not one of the
split's test or calibration prototypes (:meth:`synthxrd.split.Split.prototypes_of`). An AMCSD crystal
that is the same phase as an MP crystal of the set (:func:`synthxrd.match.library.duplicate_groups`:
same reduced formula and space group, conventional cell lengths within 3 % and angles within 2°) is
left out; AMCSD entries of one phase (measurements at other temperatures or pressures) are kept, as the
MP set keeps its own.

Layout (``numpy.savez_compressed``, no pickles; read with numpy alone)::

    lattices (N, 3, 3) f4 Å, rows a, b, c     counts (N,) u2 atoms per crystal
    frac_hi, frac_lo (3, A) u1: fractional coordinates x 65536 (mod 65536), high and low bytes
    numbers (A,) u1 atomic numbers            occupancies (A,) f4
    labels (N,) u1 ITA numbers                n_sites (N,) u1, conventional_volume (N,) f4, ordered (N,) bool
    source (N,) u1 index into metadata["sources"]
    ids, prototypes (bytes) u1: the ids and prototype proxies, UTF-8, joined by newlines
    sym_number (N,) u1, sym_counts (N,) u2, sym_rot (O,) u2, sym_rotations (R, 3, 3) f8, sym_trans
    (O, 3) f4: each crystal's symmetry operations (:func:`add_operations`), so that perturbing needs no
    spglib
    exact_index (K,) u4, exact_lattices (K, 3, 3) f8, exact_frac (., 3) f8: the few crystals whose
    spglib group the quantization would change (pseudo-symmetric at the tolerance), at full precision
    metadata (bytes) u1: JSON (kind, format, sources with fingerprints and licences, split and
    statistics hashes, filters, counts, verification)

Coordinates are stored to 1/65536 of the cell (≤ 1e-4 Å in a 10 Å cell) and lattices in float32
(relative 6e-8): far inside spglib's tolerance of the labels (0.1 Å); the build checks that spglib gives
every rebuilt crystal its label and that simulated patterns agree with those of the crystals as read.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
import zipfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from synthxrd.errors import ConfigError, DataError
from synthxrd.structure import CrystalBatch

__all__ = ["SHIPPED", "SHIPPED_NAME", "COMPACT_FORMAT", "FRAC_SCALE", "shipped_path", "resolve_real", "real_set_record", "is_compact",
           "save_compact", "load_compact", "add_operations", "file_sha256", "build_shipped_set", "verify_compact"]

#: Name that selects the shipped set (``RealCrystals.load("shipped")``, ``synthxrd train --real shipped``).
SHIPPED_NAME = "shipped"
#: Package resource of the shipped set.
SHIPPED = ("real", "real_crystals.npz")
#: ``metadata["format"]`` of a compact file; a newer one is refused.
COMPACT_FORMAT = 1
#: Fractional coordinates are stored as integers of 1/FRAC_SCALE of the cell.
FRAC_SCALE = 65536
#: Licences of the sources of the shipped set (package resources).
LICENCES = {"mp": "resources/library/LICENSE-MP.txt", "amcsd": "resources/library/LICENSE-AMCSD.txt"}


def shipped_path() -> Path:
    """Path of the shipped real crystal set inside the installed package."""
    from importlib.resources import files

    return Path(str(files("synthxrd").joinpath("resources", *SHIPPED)))


def is_compact(path: str | Path) -> bool:
    """Whether ``path`` is a zip (NPZ) file, i.e. a compact set rather than HDF5."""
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (the fingerprint of a real crystal set a run records)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_real(name: str | Path | None) -> Path:
    """The file of a real crystal set: ``None`` or ``"shipped"`` is the shipped set, anything else a path."""
    return shipped_path() if name is None or str(name) == SHIPPED_NAME else Path(name)


def real_set_record(name: str | Path | None) -> dict[str, Any]:
    """What a training run records of the real crystal set it mixes in: the name given, the file name,
    its size and SHA-256 (the fingerprint), and for a compact set the crystal count and the sources'
    fingerprints (read from its metadata, not its crystals)."""
    path = resolve_real(name)
    record: dict[str, Any] = {"name": str(name) if name is not None else SHIPPED_NAME, "file": path.name,
                              "shipped": path.resolve() == shipped_path().resolve(), "bytes": path.stat().st_size,
                              "sha256": file_sha256(path)}
    if is_compact(path):
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["metadata"].tobytes().decode("utf-8"))
        record.update(n_crystals=(meta.get("counts") or {}).get("n_kept"),
                      sources=[{k: src.get(k) for k in ("name", "file", "sha256")} for src in meta.get("sources", [])],
                      split_sha256=(meta.get("split") or {}).get("sha256"))
    return record


def _encode_text(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), np.uint8)


def save_compact(path: str | Path, crystals: CrystalBatch, ids: np.ndarray, extra: dict[str, np.ndarray],
                 metadata: dict[str, Any], *, exact: np.ndarray | None = None) -> Path:
    """Write a real crystal set in the compact form (module docstring), atomically.

    ``extra``: ``n_sites``, ``conventional_volume``, ``ordered`` and ``source`` (index into
    ``metadata["sources"]``), each (N,), and optionally ``prototypes`` (N,) str.
    ``exact``: indices of crystals also stored at full precision (float64 lattice and coordinates),
    those whose symmetry the quantization would change.
    """
    from synthxrd.files import atomic_write

    counts = np.diff(crystals.offsets)
    if len(counts) and (counts.max() > np.iinfo(np.uint16).max or crystals.numbers.max() > 255
                        or crystals.spacegroups.max() > 230):
        raise ConfigError("save_compact: more than 65535 atoms in a crystal, Z > 255 or a label > 230")
    q = np.rint(np.mod(crystals.frac_coords, 1.0) * FRAC_SCALE).astype(np.int64) % FRAC_SCALE
    q = np.ascontiguousarray(q.T.astype(np.uint16))
    arrays = {
        "lattices": crystals.lattices.astype(np.float32), "counts": counts.astype(np.uint16),
        "frac_hi": (q >> 8).astype(np.uint8), "frac_lo": (q & 0xFF).astype(np.uint8),
        "numbers": crystals.numbers.astype(np.uint8), "occupancies": crystals.occupancies.astype(np.float32),
        "labels": crystals.spacegroups.astype(np.uint8),
        "n_sites": np.minimum(extra["n_sites"], 255).astype(np.uint8),
        "conventional_volume": extra["conventional_volume"].astype(np.float32),
        "ordered": extra["ordered"].astype(bool), "source": extra["source"].astype(np.uint8),
        "ids": _encode_text("\n".join(np.asarray(ids, dtype=str).tolist())),
        "prototypes": _encode_text("\n".join(np.asarray(extra.get("prototypes", []), dtype=str).tolist())),
        "metadata": _encode_text(json.dumps(dict(metadata, format=COMPACT_FORMAT), sort_keys=True)),
    }
    exact = np.unique(np.asarray([] if exact is None else exact, np.int64))
    rows = (np.concatenate([np.arange(crystals.offsets[i], crystals.offsets[i + 1]) for i in exact])
            if len(exact) else np.zeros(0, np.int64))
    arrays.update(exact_index=exact.astype(np.uint32), exact_lattices=crystals.lattices[exact].astype(np.float64),
                  exact_frac=crystals.frac_coords[rows].astype(np.float64))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    atomic_write(path, write)
    return path


def load_compact(path: str | Path) -> tuple[CrystalBatch, np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """Read a compact set: ``(crystals with labels, ids, extra, metadata)`` (numpy only).

    Raises
    ------
    DataError
        Naming the file, when it is not a compact real crystal set of a supported format.
    """
    from synthxrd.real.crystals import KIND

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays["metadata"].tobytes().decode("utf-8"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a compact real crystal set ({exc})") from None
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise DataError(f"{path}: not a real crystal set (metadata kind {meta.get('kind')!r}, expected {KIND!r})")
    if int(meta.get("format", -1)) > COMPACT_FORMAT:
        raise DataError(f"{path}: compact format {meta.get('format')} is newer than this synthxrd supports "
                        f"({COMPACT_FORMAT}); upgrade synthxrd")
    counts = arrays["counts"].astype(np.int64)
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    q = (arrays["frac_hi"].astype(np.int64) << 8) | arrays["frac_lo"].astype(np.int64)
    frac = np.ascontiguousarray(q.T.astype(np.float64) / FRAC_SCALE)
    lattices = arrays["lattices"].astype(np.float64)
    if "exact_index" in arrays and len(arrays["exact_index"]):  # crystals kept at full precision
        exact = arrays["exact_index"].astype(np.int64)
        lattices[exact] = arrays["exact_lattices"]
        rows = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in exact])
        frac[rows] = arrays["exact_frac"]
    text = arrays["ids"].tobytes().decode("utf-8")
    ids = np.array(text.split("\n") if text else [], dtype=str)
    if len(ids) != len(counts) or offsets[-1] != len(arrays["numbers"]):
        raise DataError(f"{path}: {len(ids)} ids, {len(counts)} crystals and {len(arrays['numbers'])} atoms "
                        f"(expected {offsets[-1]}) do not agree")
    crystals = CrystalBatch(lattices, frac, arrays["numbers"].astype(np.int64),
                            arrays["occupancies"].astype(np.float64), offsets,
                            spacegroups=arrays["labels"].astype(np.int64))
    extra = {"n_sites": arrays["n_sites"].astype(np.int64),
             "conventional_volume": arrays["conventional_volume"].astype(np.float64),
             "ordered": arrays["ordered"].astype(bool), "source": arrays["source"].astype(np.int64)}
    for name in _OPERATION_ARRAYS:  # stored symmetry operations (add_operations)
        if name in arrays:
            extra[name] = arrays[name]
    text = arrays["prototypes"].tobytes().decode("utf-8") if "prototypes" in arrays else ""
    if text:
        extra["prototypes"] = np.array(text.split("\n"), dtype=str)
    return crystals, ids, extra, meta


#: Arrays of the stored symmetry operations: per crystal its spglib number and operation count; per
#: operation an index into a table of distinct rotations (float64, in the cell's basis) and the
#: translation (float32).
_OPERATION_ARRAYS = ("sym_number", "sym_counts", "sym_rot", "sym_rotations", "sym_trans")


def add_operations(path: str | Path, *, progress: bool = False) -> dict[str, Any]:
    """Store each crystal's symmetry operations in a compact set, as :func:`synthxrd.real.perturb` finds
    them (spglib at the labels' tolerance on the crystal as stored, ``perturbation._symmetry``), so that
    perturbing needs no spglib and no analysis the first time a crystal is drawn. The other arrays are
    kept byte for byte. Returns ``metadata["operations"]``."""
    from synthxrd import stats as st
    from synthxrd.files import atomic_write
    from synthxrd.real.perturbation import _sites, _symmetry

    path = Path(path)
    crystals, _, _, meta = load_compact(path)
    symprec = float(meta["filters"]["symprec"])
    numbers, counts, rot_index, trans = [], [], [], []
    table: dict[bytes, int] = {}
    rotations: list[np.ndarray] = []
    bar = st.progress_bar(len(crystals), "symmetry operations", enabled=progress)
    for i in range(len(crystals)):
        c = crystals[i]
        positions, _, types = _sites(c.frac_coords, c.numbers, c.occupancies)
        sym = _symmetry(c.lattice, positions, types, symprec) if len(positions) else None
        if sym is None:
            numbers.append(0)
            counts.append(0)
        else:
            rot, tr, number = sym
            numbers.append(number)
            counts.append(len(rot))
            for w, t in zip(rot, tr):
                key = np.round(w, 9).tobytes()
                if key not in table:
                    table[key] = len(rotations)
                    rotations.append(w)
                rot_index.append(table[key])
                trans.append(t)
        bar.update(1)
    bar.close()
    ops = {"sym_number": np.array(numbers, np.uint8), "sym_counts": np.array(counts, np.uint16),
           "sym_rot": np.array(rot_index, np.uint32 if len(rotations) > 65535 else np.uint16),
           "sym_rotations": np.array(rotations, np.float64).reshape(-1, 3, 3),
           "sym_trans": np.array(trans, np.float32).reshape(-1, 3)}
    info = {"symprec": symprec, "source": "spglib (synthxrd.real.perturbation._symmetry) on the stored crystals",
            "n_operations": len(rot_index), "n_distinct_rotations": len(rotations),
            "n_without_symmetry": int(np.sum(ops["sym_counts"] == 0))}
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k not in _OPERATION_ARRAYS}
    meta = dict(json.loads(arrays["metadata"].tobytes().decode("utf-8")), operations=info)
    arrays["metadata"] = _encode_text(json.dumps(meta, sort_keys=True))
    arrays.update(ops)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    atomic_write(path, write)
    return info


# --------------------------------------------------------------------------------------------------
# Building the shipped set


def _source_record(path: Path, name: str) -> dict[str, Any]:
    """A source as recorded in the set: its file name (no machine path), size and SHA-256."""
    return {"name": name, "file": path.name, "bytes": path.stat().st_size if path.is_file() else None,
            "sha256": file_sha256(path) if path.is_file() else None, "licence": LICENCES.get(name)}


def _analyse(source: Path, ids: list[str] | None, ctx, workers: int, label: str, progress: bool, total: int):
    from synthxrd import stats as st
    from synthxrd.real.crystals import _iter_results

    bar = st.progress_bar(total, f"real crystals ({label})", enabled=progress)
    items = []
    try:
        for result in _iter_results(source, ids, ctx, workers):
            items.extend(result)
            bar.update(len(result))
    finally:
        bar.close()
    items.sort(key=lambda it: it.id)
    unique, seen = [], set()
    for it in items:
        if it.id not in seen:
            seen.add(it.id)
            unique.append(it)
    return unique


def build_shipped_set(collection: str | Path, minerals: str | Path | None, out: str | Path, *,
                      workers: int = 1, progress: bool = True, overwrite: bool = False,
                      verify_patterns: int = 500, seed: int = 0) -> dict[str, Any]:
    """Build the shipped real crystal set (module docstring) from the MP collection of the shipped split
    and an AMCSD database (None: MP alone), with the shipped split and statistics, and the filters of
    :func:`synthxrd.real.build_real_set`; then check it (:func:`verify_compact`).

    Parameters
    ----------
    collection : the collection the shipped split was made from (``mp_experimental/structures.tar.xz``).
    minerals : the AMCSD SQLite file (``larixite/amcsd_cif1.db``), or None.
    out : output ``.npz``.
    workers : processes (1 = none).
    verify_patterns : crystals whose simulated patterns are compared with those of the crystals as read.

    Returns
    -------
    dict: the metadata written, plus ``path`` and ``bytes``.
    """
    import spglib

    from synthxrd import __version__
    from synthxrd import stats as st
    from synthxrd.files import check_outputs
    from synthxrd.match.library import duplicate_groups
    from synthxrd.real.crystals import KIND, MAX_SITES, MAX_VOLUME, _Context, _reason_category
    from synthxrd.validation.request import resolve_classes, resolve_inputs

    start = time.perf_counter()
    collection = Path(collection).expanduser().resolve()
    minerals = None if minerals is None else Path(minerals).expanduser().resolve()
    out = Path(out).expanduser()
    for src in (collection, minerals):
        if src is not None and not src.exists():
            raise DataError(f"{src}: no such file or folder")
    check_outputs([out], inputs=[p for p in (collection, minerals) if p is not None], overwrite=overwrite)
    sp, split_label, stat, stat_label, _ = resolve_inputs(None, None)
    cls, min_count = resolve_classes(None, stat, st.REPRESENTED_MIN_COUNT, stat_label)
    ctx = _Context(stat.symprec, cls, MAX_SITES, MAX_VOLUME)
    stat_ids = np.unique(sp.ids_of("statistics"))
    held_parts = [p for p in ("test", "calibration") if len(sp.ids_of(p))]
    held_ids = np.concatenate([sp.ids_of(p) for p in held_parts])
    held_protos = np.unique(np.concatenate([sp.prototypes_of(p) for p in held_parts]))

    sources: list[dict[str, Any]] = []
    kept, counts = [], {}
    t0 = time.perf_counter()
    mp = _analyse(collection, stat_ids.tolist(), ctx, workers, "MP statistics part", progress, len(stat_ids))
    mp_ok = [it for it in mp if it.error is None]
    mp_kept = [it for it in mp_ok if not it.reason and it.id not in set(held_ids.tolist())]
    reasons = Counter(it.reason for it in mp_ok)
    sources.append(_source_record(collection, "mp"))
    counts["mp"] = {"n_in_split_part": int(len(stat_ids)), "n_found": len(mp), "n_analysed": len(mp_ok),
                    "n_failed": len(mp) - len(mp_ok), "n_label_not_a_class": reasons["class"],
                    "n_too_many_sites": reasons["sites"], "n_volume_too_large": reasons["volume"],
                    "n_kept": len(mp_kept), "analysis_s": round(time.perf_counter() - t0, 1)}
    kept += [(it, 0) for it in mp_kept]
    failures = [(it.id, it.error) for it in mp if it.error is not None]
    if minerals is not None:
        from synthxrd.amcsd import AMCSD_CITATION, amcsd_size

        t0 = time.perf_counter()
        am = _analyse(minerals, None, ctx, workers, "AMCSD", progress, amcsd_size(minerals))
        am_ok = [it for it in am if it.error is None]
        reasons = Counter(it.reason for it in am_ok)
        passing = [it for it in am_ok if not it.reason]
        by_proto = np.isin(np.array([it.prototype for it in passing], dtype=str), held_protos)
        free = [it for it, held in zip(passing, by_proto.tolist()) if not held]
        # duplicates of an MP crystal of the set: the library's phase rule over MP first, then AMCSD
        both = mp_kept + free
        groups = duplicate_groups(np.array([it.formula for it in both], dtype=str),
                                  np.array([it.label for it in both], np.int64),
                                  np.array([it.lattice_parameters for it in both]).reshape(-1, 6))
        head_is_mp = groups[len(mp_kept):] < len(mp_kept)
        am_kept = [it for it, dup in zip(free, head_is_mp.tolist()) if not dup]
        rec = _source_record(minerals, "amcsd")
        rec["citation"] = AMCSD_CITATION
        sources.append(rec)
        counts["amcsd"] = {"n_found": len(am), "n_analysed": len(am_ok), "n_failed": len(am) - len(am_ok),
                           "n_label_not_a_class": reasons["class"], "n_too_many_sites": reasons["sites"],
                           "n_volume_too_large": reasons["volume"],
                           "n_held_out_prototype": int(by_proto.sum()),
                           "n_duplicate_of_mp": int(head_is_mp.sum()), "n_kept": len(am_kept),
                           "analysis_s": round(time.perf_counter() - t0, 1)}
        kept += [(it, 1) for it in am_kept]
        failures += [(it.id, it.error) for it in am if it.error is not None]
    if not kept:
        raise DataError("no crystal kept; nothing was written")

    items = [it for it, _ in kept]
    labels = np.array([it.label for it in items], np.int64)
    offsets = np.zeros(len(items) + 1, np.int64)
    offsets[1:] = np.cumsum([len(it.numbers) for it in items])
    batch = CrystalBatch(np.array([it.lattice for it in items]).reshape(-1, 3, 3),
                         np.concatenate([it.frac for it in items]).reshape(-1, 3),
                         np.concatenate([it.numbers for it in items]).astype(np.int64),
                         np.concatenate([it.occupancies for it in items]), offsets, spacegroups=labels)
    ids = np.array([it.id for it in items], dtype=str)
    extra = {"n_sites": np.array([it.n_sites for it in items], np.int64),
             "conventional_volume": np.array([it.volume for it in items], np.float64),
             "ordered": np.array([it.ordered for it in items], bool),
             "source": np.array([s for _, s in kept], np.int64),
             "prototypes": np.array([it.prototype for it in items], dtype=str)}
    groups_present, group_counts = np.unique(labels, return_counts=True)
    meta: dict[str, Any] = {
        "kind": KIND,
        "description": ("real crystals for the training stream: the statistics part of the shipped split of the "
                        "MP collection and the AMCSD minerals of no test- or calibration-part prototype (not the "
                        f"same phase as an MP crystal); class labels, <= {MAX_SITES} asymmetric-unit sites, "
                        f"V <= {MAX_VOLUME:g} A^3; crystals as read (original cell), labels spglib at symprec "
                        f"{stat.symprec}"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "synthxrd_version": __version__,
        "spglib_version": getattr(spglib, "__version__", "unknown"),
        "sources": sources,
        "split": {"path": split_label, "sha256": sp.sha256, "part": "statistics", "counts": sp.counts(),
                  "held_out_parts": held_parts, "n_held_out_prototypes": int(len(held_protos))},
        "statistics": {"path": stat_label, "format_version": stat.version, "sha256": stat.sha256,
                       "symprec": stat.symprec, "n_structures": stat.n_structures},
        "classes": list(cls), "min_count": min_count,
        "filters": {"symprec": stat.symprec, "max_sites": MAX_SITES, "max_volume": MAX_VOLUME,
                    "frac_scale": FRAC_SCALE},
        "counts": {"n_kept": len(items), "n_atoms": int(offsets[-1]), "n_classes_present": int(len(groups_present)),
                   "n_kept_partially_occupied": int((~extra["ordered"]).sum()),
                   "per_source": counts},
        "class_counts": {str(int(g)): int(c) for g, c in zip(groups_present, group_counts)},
        "failure_reasons": dict(Counter(_reason_category(r) for _, r in failures).most_common(20)),
        "workers": workers,
    }
    meta["build_time_s"] = {"analysis": round(time.perf_counter() - start, 1)}
    save_compact(out, batch, ids, extra, meta)
    t0 = time.perf_counter()
    first = verify_compact(out, batch, n_patterns=verify_patterns, seed=seed, progress=progress)
    exact = np.flatnonzero(np.isin(ids, [d["id"] for d in first["differences"]]))
    meta["n_stored_exactly"] = int(len(exact))
    meta["quantization_changed_symmetry"] = first["differences"]
    if len(exact):  # the crystals whose spglib group the quantization changes: stored at full precision too
        save_compact(out, batch, ids, extra, meta, exact=exact)
        meta["verification"] = verify_compact(out, batch, n_patterns=verify_patterns, seed=seed, progress=progress)
    else:
        meta["verification"] = first
    meta["build_time_s"]["verification"] = round(time.perf_counter() - t0, 1)
    meta["build_time_s"]["total"] = round(time.perf_counter() - start, 1)
    save_compact(out, batch, ids, extra, meta, exact=exact)  # the same arrays, with the checks' results
    meta["operations"] = add_operations(out, progress=progress)
    return {**meta, "path": str(out), "bytes": out.stat().st_size}


def verify_compact(path: str | Path, reference: CrystalBatch, *, n_patterns: int = 500, seed: int = 0,
                   progress: bool = False) -> dict[str, Any]:
    """Check a compact file against the crystals it was written from: spglib's space group (at the label
    tolerance, on the crystal's cell rows) of every rebuilt crystal, compared with the label and, where
    they differ, with spglib's answer for the crystal as read; and the Pearson correlation of simulated patterns (same
    crystallite size) of ``n_patterns`` random crystals rebuilt and as read."""
    from synthxrd import stats as st
    from synthxrd.simulate import pattern as simulate_pattern
    from synthxrd.stats import spacegroup_number
    from synthxrd.structure import site_types

    crystals, ids, _, meta = load_compact(path)
    symprec = float(meta["filters"]["symprec"])
    lattice_err = float(np.abs(crystals.lattices - reference.lattices).max()) if len(crystals) else 0.0
    d = crystals.frac_coords - reference.frac_coords
    cart = np.einsum("ai,aij->aj", d - np.rint(d), reference.lattices[np.repeat(np.arange(len(crystals)),
                                                                                np.diff(crystals.offsets))])
    max_shift = float(np.linalg.norm(cart, axis=1).max()) if len(cart) else 0.0
    from synthxrd.real.perturbation import _sites

    def label_of(c) -> int:
        frac, _, types = _sites(c.frac_coords, c.numbers, c.occupancies)
        return spacegroup_number(c.lattice, frac, types, symprec)

    mismatched, n_off_label = [], 0
    bar = st.progress_bar(len(crystals), "spglib on the rebuilt crystals", enabled=progress)
    for i in range(len(crystals)):
        found = label_of(crystals[i])
        if found != int(crystals.spacegroups[i]):  # then compare with the crystal as read, the same way
            n_off_label += 1
            before = label_of(reference[i])
            if found != before:
                mismatched.append({"id": str(ids[i]), "label": int(crystals.spacegroups[i]), "as_read": before,
                                   "rebuilt": int(found)})
        bar.update(1)
    bar.close()
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(crystals), size=min(n_patterns, len(crystals)), replace=False)
    corr = []
    for i in pick.tolist():
        size = float(rng.uniform(20, 100))
        a = simulate_pattern(crystals[i], crystallite_size_nm=size)
        b = simulate_pattern(reference[i], crystallite_size_nm=size)
        corr.append(float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else math.nan)
    corr_arr = np.array(corr)
    return {"n_crystals": len(crystals), "n_rebuilt_differs_from_as_read": len(mismatched),
            "differences": mismatched, "n_rebuilt_differs_from_label": n_off_label,
            "max_lattice_error_A": lattice_err, "max_atom_shift_A": max_shift,
            "n_pattern_pairs": len(corr), "pattern_correlation_min": float(np.nanmin(corr_arr)) if corr else None,
            "pattern_correlation_median": float(np.nanmedian(corr_arr)) if corr else None}
