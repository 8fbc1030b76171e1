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

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from synthxrd.dataset import sha256_file
from synthxrd.errors import ConfigError, DataError
from synthxrd.structure import CrystalBatch

__all__ = ["KIND", "SHIPPED", "SHIPPED_NAME", "COMPACT_FORMAT", "FRAC_SCALE", "shipped_path", "resolve_real", "real_set_record", "is_compact",
           "save_compact", "load_compact", "add_operations"]

#: Name that selects the shipped set (``RealCrystals.load("shipped")``, ``synthxrd train --real shipped``).
#: ``metadata["kind"]`` of a real crystal set (HDF5 or compact).
KIND = "synthxrd.real_set"
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
                              "sha256": sha256_file(path)}
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
