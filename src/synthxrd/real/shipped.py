"""Building the real crystal set shipped in the package (:mod:`synthxrd.real.compact` has its layout).

``scripts/build_real_set.py`` runs :func:`build_shipped_set`; docs/training.md has the command and the
figures.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from synthxrd.errors import DataError
from synthxrd.real.crystals import batch_of
from synthxrd.real.compact import (FRAC_SCALE, LICENCES, save_compact, load_compact, add_operations)
from synthxrd.dataset import sha256_file
from synthxrd.structure import CrystalBatch

__all__ = ["build_shipped_set", "verify_compact"]



def _source_record(path: Path, name: str) -> dict[str, Any]:
    """A source as recorded in the set: its file name (no machine path), size and SHA-256."""
    return {"name": name, "file": path.name, "bytes": path.stat().st_size if path.is_file() else None,
            "sha256": sha256_file(path) if path.is_file() else None, "licence": LICENCES.get(name)}


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
                      verify_patterns: int = 500, seed: int = 0, min_count: int | None = None) -> dict[str, Any]:
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
    min_count : the classes are the groups with at least this many structures in the shipped statistics
        (default :data:`synthxrd.stats.REPRESENTED_MIN_COUNT`, the default training's classes).

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
    cls, min_count = resolve_classes(None, stat, st.REPRESENTED_MIN_COUNT if min_count is None else min_count,
                                     stat_label)
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
    batch = batch_of(items)
    labels = batch.spacegroups
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
        "counts": {"n_kept": len(items), "n_atoms": int(batch.offsets[-1]), "n_classes_present": int(len(groups_present)),
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
