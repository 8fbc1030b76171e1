"""Prototype (structure-type) split of a collection into statistics, calibration and test parts.

The generator's statistics must not see the structure types the network is tested on, so a
collection is split by prototype, not by structure: all structures of one prototype go to the same
part. Without structure-type names (the ICSD has them, the Materials Project does not) the prototype
proxy is

    ``"<space group>|<anonymized formula>|<sorted Wyckoff letters>"``, e.g. ``"225|AB|ab"`` (rock salt),

the anonymized reduced formula as pymatgen's ``Composition.anonymized_formula`` (elements sorted by
amount, named A, B, C, ...; amounts of the conventional cell divided by their gcd when integral) and
the Wyckoff letters of the asymmetric-unit sites, sorted (a site shared by several elements counts
once). Two structures of one prototype can still get different proxies when spglib picks another of
the equivalent origins (e.g. 1a/1b swapped); the proxy errs on the side of more groups.

Groups are assigned by a seeded permutation of the sorted prototype names: the first
``round(test_fraction * n_groups)`` are held out, the rest go to ``statistics`` (70:30 of groups by
default). A second permutation of the held-out groups (same seed) gives ``round(calibration_fraction
* n_held_out)`` of them to ``calibration`` and the rest to ``test`` (half and half by default,
:func:`with_calibration`), so the statistics part of a seed is the same with or without a
calibration part. The parts' roles (docs/architecture.md, "Evaluation protocol"): ``statistics`` feeds the
generator and the real training crystals; ``calibration`` chooses checkpoints and fits temperature,
fusion rule and thresholds; ``test`` (the validation set ``match``) is reported only.

The split is a CSV ``id,prototype,part`` (gzip-compressed when the name ends with ``.gz``) with a
JSON sidecar ``<file>.json`` holding seeds, fractions, source and counts. Splits written before the
calibration part existed (two parts) still read; they have no calibration part.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import reduce
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from synthxrd.errors import ConfigError, DataError
from synthxrd.files import atomic_write

if TYPE_CHECKING:
    from synthxrd.stats import Statistics

__all__ = [
    "PARTS",
    "DEFAULT_TEST_FRACTION",
    "DEFAULT_CALIBRATION_FRACTION",
    "with_calibration",
    "Split",
    "anonymized_formula",
    "prototype_label",
    "prototype_labels",
    "read_structure_types",
    "make_split",
    "split_statistics",
    "restrict",
    "read_split",
    "load_split",
]

#: The parts: ``statistics`` feeds the generator; ``calibration`` and ``test`` hold unseen prototypes,
#: the first to fit and choose on, the second to report only.
PARTS = ("statistics", "calibration", "test")
DEFAULT_TEST_FRACTION = 0.3
#: Fraction of the held-out prototype groups (``test_fraction`` of all) that go to ``calibration``.
DEFAULT_CALIBRATION_FRACTION = 0.5
DEFAULT_SEED = 0
#: Shipped split of the default collection, relative to the package's ``resources`` folder.
DEFAULT_RESOURCE = ("statistics", "default_split.csv.gz")
#: Amounts closer than this to an integer are integers (pymatgen's formula tolerance).
_INTEGER_TOL = 1e-8
_HEADER = ("id", "prototype", "part")


def _format_amount(x: float) -> str:
    """pymatgen's ``formula_double_format``: 1 left out, integers without a decimal point."""
    if abs(x - 1) < _INTEGER_TOL:
        return ""
    if abs(x - round(x)) < _INTEGER_TOL:
        return str(int(round(x)))
    return str(round(x, 8))


def anonymized_formula(amounts: Iterable[float]) -> str:
    """Anonymized reduced formula of element amounts, as pymatgen's ``Composition.anonymized_formula``.

    Examples
    --------
    >>> anonymized_formula([4, 4])
    'AB'
    >>> anonymized_formula([1, 1, 3])
    'ABC3'
    >>> anonymized_formula([12, 8])
    'A2B3'
    """
    values = [float(a) for a in amounts if a > 0]
    if not values:
        raise ConfigError("anonymized_formula: no positive amounts")
    if all(abs(v - round(v)) < _INTEGER_TOL for v in values):
        g = reduce(math.gcd, (int(round(v)) for v in values))
        values = [round(v) / g for v in values]
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = []
    for k, v in enumerate(sorted(values)):
        name = letters[k] if k < 26 else f"A{k}"
        out.append(name + _format_amount(v))
    return "".join(out)


def prototype_label(spacegroup: int, z, multiplicity, occupancy, orbit, wyckoff) -> str:
    """The prototype proxy (module docstring) of one structure from its asymmetric-unit site rows
    (one row per site and species, as :class:`~synthxrd.stats.StructureRecord` holds them)."""
    amounts: dict[int, float] = {}
    for zz, m, o in zip(np.asarray(z).tolist(), np.asarray(multiplicity).tolist(), np.asarray(occupancy).tolist()):
        amounts[zz] = amounts.get(zz, 0.0) + m * o
    orbit = np.asarray(orbit)
    first = np.ones(len(orbit), bool)
    first[1:] = orbit[1:] != orbit[:-1]
    letters = "".join(sorted(np.asarray(wyckoff)[first].tolist()))
    return f"{int(spacegroup)}|{anonymized_formula(amounts.values())}|{letters}"


def prototype_labels(statistics: Statistics,
                     structure_types: Mapping[str, str] | None = None) -> np.ndarray:
    """Prototype of every structure of ``statistics`` (aligned with ``statistics.ids``).

    Parameters
    ----------
    statistics : Statistics
    structure_types : mapping id -> structure-type name, optional
        Names (e.g. ICSD ``StructureType``) used instead of the proxy for the ids they cover;
        the other structures keep their proxy.

    Returns
    -------
    numpy.ndarray
        (n,) str.
    """
    st = statistics
    offsets = st.site_offsets
    labels = [prototype_label(int(st.spacegroups[i]), st.site_z[a:b], st.site_multiplicity[a:b],
                              st.site_occupancy[a:b], st.site_orbit[a:b], st.site_wyckoff[a:b])
              for i, (a, b) in enumerate(zip(offsets[:-1].tolist(), offsets[1:].tolist()))]
    if structure_types:
        labels = [structure_types.get(i, lab) for i, lab in zip(st.ids.tolist(), labels)]
    return np.array(labels, dtype=str) if labels else np.zeros(0, "<U1")


#: Recognised names of the id and structure-type columns (lower case, without "_" and spaces).
ID_COLUMNS = ("id", "mpid", "icsdid", "collectioncode", "icsdcollectioncode")
TYPE_COLUMNS = ("structuretype", "prototype")


def read_structure_types(path: str | Path) -> dict[str, str]:
    """Read ``id -> structure type`` from a CSV.

    The CSV has a header; column names are matched ignoring case, ``_`` and spaces. The id column is
    ``id`` (or ``mp_id``, ``icsd_id``, ``CollectionCode``, ``icsd_collection_code``), the type column
    ``structure_type`` (or ``StructureType``, ``prototype``); an unnamed one is the first of the first
    two columns the other does not use. Rows with an empty type are skipped.

    Raises
    ------
    DataError
        If the file is missing or has fewer than two columns.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such structure-type CSV")
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or len(header) < 2:
            raise DataError(f"{path}: expected a header with an id and a structure-type column, got {header!r}")
        names = [h.strip().lower().replace("_", "").replace(" ", "") for h in header]
        i_id = next((names.index(n) for n in ID_COLUMNS if n in names), None)
        i_type = next((names.index(n) for n in TYPE_COLUMNS if n in names), None)
        if i_id is None:
            i_id = 1 if i_type == 0 else 0
        if i_type is None:
            i_type = 0 if i_id == 1 else 1
        out = {}
        for row in reader:
            if len(row) > max(i_id, i_type) and row[i_type].strip():
                out[row[i_id].strip()] = row[i_type].strip()
    return out


@dataclass(frozen=True, eq=False)
class Split:
    """Assignment of structures to the parts of :data:`PARTS` (``statistics``, ``calibration``, ``test``).

    Attributes
    ----------
    ids : numpy.ndarray
        (n,) str structure ids.
    prototypes : numpy.ndarray
        (n,) str prototype of each structure.
    parts : numpy.ndarray
        (n,) str, one of :data:`PARTS` (``calibration`` absent in splits written before it existed).
    metadata : Mapping
        seed, test_fraction, calibration_fraction, source, counts, package version, created (read-only).
    path : str or None
        File the split was read from.
    """

    ids: np.ndarray
    prototypes: np.ndarray
    parts: np.ndarray
    metadata: Mapping[str, Any] = field(default_factory=dict)
    path: str | None = None

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.prototypes.shape != (n,) or self.parts.shape != (n,):
            raise DataError(f"split: ids {self.ids.shape}, prototypes {self.prototypes.shape} and parts "
                            f"{self.parts.shape} must have the same length")
        bad = set(np.unique(self.parts).tolist()) - set(PARTS)
        if bad:
            raise DataError(f"split{' ' + self.path if self.path else ''}: unknown parts {sorted(bad)}; "
                            f"accepted: {', '.join(PARTS)}")
        for name in ("ids", "prototypes", "parts"):
            arr = np.array(getattr(self, name), dtype=str)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    def __len__(self) -> int:
        return len(self.ids)

    def ids_of(self, part: str) -> np.ndarray:
        """Ids in ``part`` (one of :data:`PARTS`; empty for a part the split does not have)."""
        if part not in PARTS:
            raise ConfigError(f"split part must be one of {', '.join(PARTS)}, got {part!r}")
        return self.ids[self.parts == part]

    def prototypes_of(self, part: str) -> np.ndarray:
        """Sorted distinct prototypes of ``part``: a structure of any other source (an AMCSD mineral)
        whose :func:`prototype_label` is one of them belongs to that part's structure types."""
        if part not in PARTS:
            raise ConfigError(f"split part must be one of {', '.join(PARTS)}, got {part!r}")
        return np.unique(self.prototypes[self.parts == part])

    def restrict(self, statistics: Statistics, part: str = "statistics") -> Statistics:
        """The statistics of the structures of ``part``; the split (file, part, hash, seed, fraction and
        counts) is recorded in ``metadata["split"]`` of the result (also ``Statistics.restrict(split, part)``).

        Raises
        ------
        ConfigError
            If ``part`` is not one of :data:`PARTS`.
        """
        ids = self.ids_of(part)
        keep = np.isin(statistics.ids, ids)
        info = {"file": self.path or "", "part": part, "sha256": self.sha256, "n_in_split_part": int(len(ids)),
                "n_kept": int(keep.sum()),
                **{k: self.metadata.get(k) for k in ("seed", "test_fraction", "calibration_fraction")}}
        return statistics.subset(keep, metadata={"split": info})

    def as_dict(self) -> dict[str, str]:
        """id -> part."""
        return dict(zip(self.ids.tolist(), self.parts.tolist()))

    def counts(self) -> dict[str, dict[str, int]]:
        """Structures and prototype groups per part."""
        out = {}
        for part in PARTS:
            sel = self.parts == part
            out[part] = {"structures": int(sel.sum()), "groups": int(len(np.unique(self.prototypes[sel])))}
        return out

    @property
    def sha256(self) -> str:
        """Hash of the assignment (independent of file compression and row order)."""
        order = np.argsort(self.ids, kind="stable")
        h = hashlib.sha256()
        for i in order:
            h.update(f"{self.ids[i]},{self.prototypes[i]},{self.parts[i]}\n".encode())
        return h.hexdigest()

    def write(self, path: str | Path) -> Path:
        """Write ``id,prototype,part`` rows (gzip when ``path`` ends with ``.gz``) and ``<path>.json``.

        Both files are written atomically (temporary file, then rename).
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(_HEADER)
        writer.writerows(zip(self.ids.tolist(), self.prototypes.tolist(), self.parts.tolist()))
        data = buf.getvalue().encode()
        if path.name.endswith(".gz"):
            data = gzip.compress(data, mtime=0)  # mtime 0: same bytes for the same split
        atomic_write(path, lambda tmp: tmp.write_bytes(data))
        meta = dict(self.metadata)
        meta.update({"sha256": self.sha256, "counts": self.counts(), "file": path.name})
        side = (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()
        atomic_write(path.with_name(path.name + ".json"), lambda tmp: tmp.write_bytes(side))
        return path


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def make_split(ids: Iterable[str], prototypes: Iterable[str], *, test_fraction: float = DEFAULT_TEST_FRACTION,
               calibration_fraction: float = DEFAULT_CALIBRATION_FRACTION, seed: int = DEFAULT_SEED,
               metadata: Mapping[str, Any] | None = None) -> Split:
    """Hold out whole prototype groups (a fraction ``test_fraction`` of the groups) and give the rest to
    ``statistics``, with a permutation drawn from ``numpy.random.default_rng(seed)``; then a fraction
    ``calibration_fraction`` of the held-out groups go to ``calibration``, the others to ``test``
    (:func:`with_calibration`).

    Raises
    ------
    ConfigError
        If a fraction is not in [0, 1] or the inputs differ in length.
    """
    if not (isinstance(test_fraction, (int, float)) and 0.0 <= test_fraction <= 1.0):
        raise ConfigError(f"test fraction must be a number in [0, 1], got {test_fraction!r}")
    ids_arr = np.array(list(ids), dtype=str)
    protos = np.array(list(prototypes), dtype=str)
    if ids_arr.shape != protos.shape:
        raise ConfigError(f"make_split: {len(ids_arr)} ids but {len(protos)} prototypes")
    groups, inverse = np.unique(protos, return_inverse=True)  # sorted: independent of input order
    rng = np.random.default_rng(seed)
    n_test = int(round(test_fraction * len(groups)))
    is_test = np.zeros(len(groups), bool)
    is_test[rng.permutation(len(groups))[:n_test]] = True
    parts = np.where(is_test[inverse.reshape(-1)], "test", "statistics")
    meta = {
        "kind": "synthxrd.split",
        "seed": int(seed),
        "test_fraction": float(test_fraction),
        "n_structures": int(len(ids_arr)),
        "n_groups": int(len(groups)),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "package_version": _package_version(),
    }
    meta.update(metadata or {})
    order = np.argsort(ids_arr, kind="stable")
    return with_calibration(Split(ids_arr[order], protos[order], parts[order], meta), calibration_fraction,
                            seed=seed)


def with_calibration(split: Split, fraction: float = DEFAULT_CALIBRATION_FRACTION, *,
                     seed: int = DEFAULT_SEED) -> Split:
    """``split`` with a fraction ``fraction`` of its test part's prototype groups moved to
    ``calibration`` (a permutation of the sorted group names drawn from
    ``numpy.random.default_rng([seed, 1])``); the statistics part is untouched. The split must not
    have a calibration part yet. Records ``calibration_fraction``, ``calibration_seed`` and
    ``before_calibration_sha256`` (the hash of ``split``, which statistics of its statistics part, the
    same in both, recorded)."""
    if not (isinstance(fraction, (int, float)) and 0.0 <= fraction <= 1.0):
        raise ConfigError(f"calibration fraction must be a number in [0, 1], got {fraction!r}")
    if np.any(split.parts == "calibration"):
        raise ConfigError(f"split{' ' + split.path if split.path else ''} already has a calibration part")
    test = split.parts == "test"
    groups = np.unique(split.prototypes[test])
    rng = np.random.default_rng([int(seed), 1])  # its own stream: the test permutation of a seed is unchanged
    chosen = groups[rng.permutation(len(groups))[:int(round(fraction * len(groups)))]]
    parts = np.where(test & np.isin(split.prototypes, chosen), "calibration", split.parts)
    meta = dict(split.metadata, calibration_fraction=float(fraction), calibration_seed=int(seed),
                before_calibration_sha256=split.sha256)  # what statistics counted on it recorded
    meta.pop("sha256", None)
    meta.pop("counts", None)
    return Split(split.ids, split.prototypes, parts, meta, split.path)


def split_statistics(statistics: Statistics, *, test_fraction: float = DEFAULT_TEST_FRACTION,
                     calibration_fraction: float = DEFAULT_CALIBRATION_FRACTION, seed: int = DEFAULT_SEED,
                     structure_types: Mapping[str, str] | None = None,
                     structure_types_file: str | None = None) -> Split:
    """Prototype split of the structures of ``statistics`` (see the module docstring)."""
    protos = prototype_labels(statistics, structure_types)
    n_named = sum(1 for i in statistics.ids.tolist() if structure_types and i in structure_types)
    meta = {
        "source": statistics.source,
        "statistics_symprec": statistics.symprec,
        "prototype": "structure types from CSV" if structure_types else "proxy: spacegroup|anonymized formula|wyckoff",
        "structure_types_file": structure_types_file,
        "n_with_structure_type": n_named,
    }
    return make_split(statistics.ids, protos, test_fraction=test_fraction, calibration_fraction=calibration_fraction,
                      seed=seed, metadata=meta)


def restrict(statistics: Statistics, split: Split | str | Path, part: str = "statistics") -> Statistics:
    """The statistics of one part of a split (a :class:`Split` or a split CSV): :meth:`Split.restrict`."""
    return (split if isinstance(split, Split) else read_split(split)).restrict(statistics, part)


def read_split(path: str | Path) -> Split:
    """Read a split CSV (``id,prototype,part``; gzip if the name ends with ``.gz``) and its sidecar.

    Raises
    ------
    DataError
        If the file is missing or its header/parts are wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such split file")
    with _open_text(path) as fh:
        return _parse_split(fh, str(path), _read_sidecar(path))


def _read_sidecar(path: Path) -> dict:
    side = path.with_name(path.name + ".json")
    if side.is_file():
        try:
            return json.loads(side.read_text())
        except ValueError:
            return {}
    return {}


def _parse_split(fh, label: str, meta: dict) -> Split:
    try:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header[:3]) != _HEADER:
            raise DataError(f"{label}: header must be {','.join(_HEADER)}, got {header!r}")
        rows = [r for r in reader if r]
    except (OSError, EOFError, csv.Error, UnicodeDecodeError) as exc:
        raise DataError(f"{label}: cannot read the split ({exc})") from None
    bad = next((k for k, r in enumerate(rows) if len(r) < 3), None)
    if bad is not None:
        raise DataError(f"{label}: row {bad + 2} has {len(rows[bad])} fields, expected 3 ({','.join(_HEADER)})")
    cols = list(zip(*rows)) if rows else [(), (), ()]
    return Split(np.array(cols[0], dtype=str), np.array(cols[1], dtype=str), np.array(cols[2], dtype=str),
                 meta, label)


def load_split(path: str | Path | None = None) -> Split:
    """Read a split; ``None``: the split of the default collection shipped with the package."""
    if path is not None:
        return read_split(path)
    resource = files("synthxrd").joinpath("resources", *DEFAULT_RESOURCE)
    label = f"shipped split ({'/'.join(DEFAULT_RESOURCE)})"
    try:
        data = gzip.decompress(resource.read_bytes())
        side = files("synthxrd").joinpath("resources", *DEFAULT_RESOURCE[:-1], DEFAULT_RESOURCE[-1] + ".json")
        meta = json.loads(side.read_text()) if side.is_file() else {}
    except (OSError, ValueError) as exc:
        raise DataError(f"{label}: cannot read ({exc}); rebuild with scripts/build_default_statistics.sh") from None
    return _parse_split(io.StringIO(data.decode()), label, meta)


def _package_version() -> str:
    from synthxrd import __version__

    return __version__
