"""The :class:`Statistics` of a structure collection: per-structure records and the tables derived from them.

The tabulating half of :mod:`synthxrd.stats` (see its docstring for the tables and the pooling of
space groups with few structures); records come from :mod:`synthxrd.stats.analysis`.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from synthxrd.errors import ConfigError, DataError
from synthxrd.files import atomic_write
from synthxrd.stats.analysis import DEFAULT_SYMPREC, Z_MAX, FloatArray, StructureRecord, atomic_radii
from synthxrd.symmetry import CRYSTAL_SYSTEMS, crystal_system, crystal_system_table
from synthxrd.wyckoff import N_SPACEGROUPS

__all__ = ["FORMAT_VERSION", "REPRESENTED_MIN_COUNT", "POOLING", "RECORD_ARRAYS", "DEFAULT_RESOURCE", "Statistics"]

#: Layout of the ``.npz`` file; :meth:`Statistics.load` refuses any other.
FORMAT_VERSION = 1
#: A space group with at least this many structures is "represented" (a class of the network).
REPRESENTED_MIN_COUNT = 10
#: Shipped statistics, relative to the package's ``resources`` folder.
DEFAULT_RESOURCE = ("statistics", "default.npz")
#: How a per-group table may pool structures of other groups (see the :mod:`synthxrd.stats` docstring).
POOLING = ("none", "crystal_system", "all", "auto")
#: The record arrays of a statistics file (and of :class:`Statistics`), in file order.
RECORD_ARRAYS = ("ids", "spacegroups", "lattices", "volumes", "n_atoms", "v_atoms", "site_offsets",
                 "site_orbit", "site_wyckoff", "site_multiplicity", "site_z", "site_occupancy", "radii")


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


def _package_version() -> str:
    from synthxrd import __version__

    return __version__


@dataclass(frozen=True, eq=False)
class Statistics:
    """Raw per-structure records of a collection and the tables derived from them.

    Build with :meth:`from_records` or :func:`compute`, read with :meth:`load`, write with
    :meth:`save`. Arrays are read-only; derived tables are computed on first use and cached in the
    instance.

    Attributes
    ----------
    ids : numpy.ndarray
        (n,) ``<U`` structure ids, sorted.
    spacegroups : numpy.ndarray
        (n,) int64 ITA numbers.
    lattices : numpy.ndarray
        (n, 6) float64 conventional-cell a, b, c (Å), alpha, beta, gamma (degrees).
    volumes : numpy.ndarray
        (n,) float64 conventional-cell volumes, Å^3.
    n_atoms : numpy.ndarray
        (n,) int64 sites in the conventional cell.
    v_atoms : numpy.ndarray
        (n,) float64 atomic-volume sums, Å^3.
    site_offsets : numpy.ndarray
        (n + 1,) int64; structure ``i`` owns site rows ``site_offsets[i]:site_offsets[i + 1]``.
    site_orbit, site_wyckoff, site_multiplicity, site_z, site_occupancy : numpy.ndarray
        (m,) site rows as in :class:`StructureRecord`.
    radii : numpy.ndarray
        (99,) float64 radii (Å) used for ``v_atoms`` (:func:`atomic_radii` at creation time).
    metadata : Mapping
        Read-only: ``format_version``, ``source``, ``symprec``, ``angle_tolerance``,
        ``package_version``, ``spglib_version``, ``created``, ``n_structures``, ``n_failures``,
        ``failures`` (list of ``{"id", "reason"}``), ``split`` (``None`` or file, part, counts), ...
    """

    ids: np.ndarray
    spacegroups: np.ndarray
    lattices: np.ndarray
    volumes: np.ndarray
    n_atoms: np.ndarray
    v_atoms: np.ndarray
    site_offsets: np.ndarray
    site_orbit: np.ndarray
    site_wyckoff: np.ndarray
    site_multiplicity: np.ndarray
    site_z: np.ndarray
    site_occupancy: np.ndarray
    radii: np.ndarray
    metadata: Mapping[str, Any]
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.ids)
        m = len(self.site_z)
        shapes = {
            "spacegroups": (n,), "lattices": (n, 6), "volumes": (n,), "n_atoms": (n,), "v_atoms": (n,),
            "site_offsets": (n + 1,), "site_orbit": (m,), "site_wyckoff": (m,), "site_multiplicity": (m,),
            "site_occupancy": (m,), "radii": (Z_MAX + 1,),
        }
        for name, shape in shapes.items():
            if np.shape(getattr(self, name)) != shape:
                raise DataError(f"statistics: {name} has shape {np.shape(getattr(self, name))}, expected {shape}")
        offsets = self.site_offsets
        if offsets[0] != 0 or offsets[-1] != m or np.any(np.diff(offsets) < 1):
            raise DataError("statistics: site_offsets must rise strictly from 0 to the number of site rows")
        if n and (self.spacegroups.min() < 1 or self.spacegroups.max() > N_SPACEGROUPS):
            raise DataError("statistics: space-group numbers outside 1..230")
        for name in RECORD_ARRAYS:
            object.__setattr__(self, name, _readonly(getattr(self, name)))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    # ---- construction, files ------------------------------------------------------------------

    @classmethod
    def from_records(cls, records: Iterable[StructureRecord], *, source: str = "", symprec: float = DEFAULT_SYMPREC,
                     angle_tolerance: float = -1.0, failures: Iterable[tuple[str, str]] = (),
                     radii: FloatArray | None = None, metadata: Mapping[str, Any] | None = None) -> Statistics:
        """Pack :class:`StructureRecord` objects (any order; sorted by id here) into statistics.

        Parameters
        ----------
        records : iterable of StructureRecord
        source : str
            Where the structures came from (recorded in the metadata).
        symprec, angle_tolerance : float
            The spglib tolerances the records were made with (recorded).
        failures : iterable of (id, reason)
        radii : (99,) array, optional
            Radii the records' ``v_atoms`` used (default :func:`atomic_radii`).
        metadata : mapping, optional
            Extra JSON-serialisable entries.

        Raises
        ------
        DataError
            If two records share an id.
        """
        import spglib

        recs = sorted(records, key=lambda r: r.id)
        ids = [r.id for r in recs]
        if len(set(ids)) != len(ids):
            dup = next(i for k, i in enumerate(ids) if k and ids[k - 1] == i)
            raise DataError(f"statistics: two structures have the id {dup!r}")
        fails = sorted((str(i), str(r)) for i, r in failures)
        meta = {
            "format_version": FORMAT_VERSION,
            "kind": "synthxrd.statistics",
            "source": str(source),
            "symprec": float(symprec),
            "angle_tolerance": float(angle_tolerance),
            "package_version": _package_version(),
            "spglib_version": getattr(spglib, "__version__", "unknown"),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "n_structures": len(recs),
            "n_failures": len(fails),
            "failures": [{"id": i, "reason": r} for i, r in fails],
            "radii": "r = (covalent + van der Waals) / 2; covalent: ase.data.covalent_radii (Cordero 2008), "
                     "vdW: pymatgen Element.van_der_waals_radius (CRC Handbook)",
            "split": None,
        }
        meta.update(metadata or {})
        sizes = np.array([len(r.site_z) for r in recs], np.int64)
        offsets = np.zeros(len(recs) + 1, np.int64)
        offsets[1:] = np.cumsum(sizes)

        def cat(name: str, dtype) -> np.ndarray:
            return (np.concatenate([getattr(r, name) for r in recs]).astype(dtype) if recs
                    else np.zeros(0, dtype))

        return cls(
            ids=np.array(ids, dtype=str) if ids else np.zeros(0, "<U1"),
            spacegroups=np.array([r.spacegroup for r in recs], np.int64),
            lattices=np.array([r.lattice for r in recs], np.float64).reshape(-1, 6),
            volumes=np.array([r.volume for r in recs], np.float64),
            n_atoms=np.array([r.n_atoms for r in recs], np.int64),
            v_atoms=np.array([r.v_atoms for r in recs], np.float64),
            site_offsets=offsets,
            site_orbit=cat("site_orbit", np.int32),
            site_wyckoff=cat("site_wyckoff", "<U1"),
            site_multiplicity=cat("site_multiplicity", np.int32),
            site_z=cat("site_z", np.int16),
            site_occupancy=cat("site_occupancy", np.float64),
            radii=np.array(atomic_radii() if radii is None else radii, np.float64),
            metadata=meta,
        )

    @classmethod
    def load(cls, path: str | Path | None = None) -> Statistics:
        """Read statistics written by :meth:`save`; ``None``: the statistics shipped in the package.

        The file is read with ``numpy.load(..., allow_pickle=False)``: nothing in it is executed.

        Raises
        ------
        DataError
            If the file is missing, not a statistics file, or of another ``format_version``.
        """
        if path is None:
            resource = files("synthxrd").joinpath("resources", *DEFAULT_RESOURCE)
            label = f"shipped statistics ({'/'.join(DEFAULT_RESOURCE)})"
            try:
                data = resource.read_bytes()
            except OSError as exc:
                raise DataError(f"{label}: cannot read ({exc}); rebuild with "
                                "scripts/build_default_statistics.sh") from None
            return cls._from_npz(io.BytesIO(data), label)
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no such statistics file")
        with open(path, "rb") as fh:
            return cls._from_npz(fh, str(path))

    @classmethod
    def _from_npz(cls, fh, label: str) -> Statistics:
        try:
            with np.load(fh, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # BadZipFile: a truncated file
            raise DataError(f"{label}: not a statistics .npz file ({exc})") from None
        if "metadata" not in arrays:
            raise DataError(f"{label}: no 'metadata' entry; not a synthxrd statistics file")
        try:
            meta = json.loads(str(arrays.pop("metadata")))
        except ValueError as exc:
            raise DataError(f"{label}: metadata is not JSON ({exc})") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise DataError(f"{label}: format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}; "
                            "recompute it with `synthxrd stats`")
        missing = [k for k in RECORD_ARRAYS if k not in arrays]
        if missing:
            raise DataError(f"{label}: missing arrays {missing}")
        return cls(**{k: arrays[k] for k in RECORD_ARRAYS}, metadata=meta)

    def save(self, path: str | Path) -> Path:
        """Write to ``path`` (``.npz``, compressed) atomically (:func:`synthxrd.files.atomic_write`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {k: getattr(self, k) for k in RECORD_ARRAYS}
        arrays["metadata"] = np.array(json.dumps(dict(self.metadata), sort_keys=True))

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:  # a file object: numpy would append ".npz" to a name
                np.savez_compressed(fh, **arrays)

        return atomic_write(path, write)

    @cached_property
    def sha256(self) -> str:
        """Hash of the records (independent of file compression and metadata): the statistics' identity."""
        h = hashlib.sha256()
        for name in RECORD_ARRAYS:
            arr = np.ascontiguousarray(getattr(self, name))
            h.update(f"{name}:{arr.dtype.str}:{arr.shape}".encode())
            h.update(arr.tobytes())
        return h.hexdigest()

    # ---- metadata ---------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """``format_version`` of the file layout."""
        return int(self.metadata["format_version"])

    @property
    def source(self) -> str:
        return str(self.metadata.get("source", ""))

    @property
    def symprec(self) -> float:
        return float(self.metadata["symprec"])

    @property
    def package_version(self) -> str:
        """synthxrd version that computed the records."""
        return str(self.metadata.get("package_version", ""))

    @property
    def n_structures(self) -> int:
        return len(self.ids)

    @property
    def failures(self) -> list[dict[str, str]]:
        """Structures of the source that could not be analysed: ``{"id", "reason"}``."""
        return list(self.metadata.get("failures", []))

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (f"Statistics(n_structures={self.n_structures}, source={self.source!r}, symprec={self.symprec}, "
                f"split={self.metadata.get('split')!r})")

    # ---- subsets ----------------------------------------------------------------------------

    def subset(self, keep: np.ndarray | Iterable[str], *, metadata: Mapping[str, Any] | None = None) -> Statistics:
        """The statistics of some structures: a boolean mask over ``ids`` or an iterable of ids
        (ids not present are ignored). ``metadata`` entries are added to the copy's metadata."""
        if isinstance(keep, np.ndarray) and keep.dtype == bool:
            keep_arr = keep
        else:
            keep_arr = np.isin(self.ids, np.array([str(k) for k in keep], dtype=str))
        if keep_arr.shape != self.ids.shape:
            raise ConfigError(f"subset mask has shape {keep_arr.shape}, expected {self.ids.shape}")
        rows = np.repeat(keep_arr, np.diff(self.site_offsets))
        sizes = np.diff(self.site_offsets)[keep_arr]
        offsets = np.zeros(len(sizes) + 1, np.int64)
        offsets[1:] = np.cumsum(sizes)
        meta = dict(self.metadata)
        meta.update(metadata or {})
        meta["n_structures"] = int(keep_arr.sum())
        return type(self)(
            ids=self.ids[keep_arr], spacegroups=self.spacegroups[keep_arr], lattices=self.lattices[keep_arr],
            volumes=self.volumes[keep_arr], n_atoms=self.n_atoms[keep_arr], v_atoms=self.v_atoms[keep_arr],
            site_offsets=offsets, site_orbit=self.site_orbit[rows], site_wyckoff=self.site_wyckoff[rows],
            site_multiplicity=self.site_multiplicity[rows], site_z=self.site_z[rows],
            site_occupancy=self.site_occupancy[rows], radii=self.radii, metadata=meta,
        )

    def restrict(self, split: Any, part: str = "statistics") -> Statistics:
        """The structures of one part of a prototype split: ``split.restrict(self, part)``
        (:meth:`synthxrd.split.Split.restrict`, which records the split in ``metadata["split"]``).

        ``split`` is a :class:`~synthxrd.split.Split`; read a split file with
        :func:`synthxrd.split.read_split` first. This module does not import :mod:`synthxrd.split`
        (the split is made from statistics, not the other way round).

        Raises
        ------
        ConfigError
            If ``split`` is not a split, or ``part`` is not one of its parts.
        """
        if not hasattr(split, "restrict"):
            raise ConfigError(f"restrict: expected a synthxrd.split.Split (read a file with "
                              f"synthxrd.split.read_split), got {type(split).__name__}")
        return split.restrict(self, part)

    # ---- per-structure derived arrays (cached) -------------------------------------------------

    @cached_property
    def _row_structure(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.ids)), np.diff(self.site_offsets))

    @cached_property
    def _orbit_first_row(self) -> np.ndarray:
        """Boolean over site rows: first row of each asymmetric-unit site."""
        s, o = self._row_structure, self.site_orbit
        first = np.ones(len(s), bool)
        first[1:] = (s[1:] != s[:-1]) | (o[1:] != o[:-1])
        return first

    @cached_property
    def n_sites(self) -> np.ndarray:
        """(n,) int64 number of asymmetric-unit sites per structure."""
        return _readonly(np.bincount(self._row_structure[self._orbit_first_row], minlength=len(self.ids)))

    @cached_property
    def _element_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(structure, Z, number of sites with Z) for every distinct (structure, element) pair."""
        keys = self._row_structure.astype(np.int64) * 256 + self.site_z.astype(np.int64)
        uniq, counts = np.unique(keys, return_counts=True)
        return uniq // 256, uniq % 256, counts

    @cached_property
    def n_elements_per_structure(self) -> np.ndarray:
        """(n,) int64 number of distinct elements per structure."""
        return _readonly(np.bincount(self._element_pairs[0], minlength=len(self.ids)))

    @property
    def denseness(self) -> np.ndarray:
        """(n,) float64 denseness factors ``V / V_atoms``."""
        return self.volumes / self.v_atoms

    @cached_property
    def crystal_systems(self) -> np.ndarray:
        """(n,) crystal-system names of the structures."""
        return np.array(CRYSTAL_SYSTEMS, dtype="<U12")[crystal_system_table()[self.spacegroups]]

    # ---- space groups -----------------------------------------------------------------------

    def spacegroup_counts(self) -> np.ndarray:
        """(231,) int64: number of structures per space group; index = ITA number, index 0 unused (0)."""
        if "sg_counts" not in self._cache:
            self._cache["sg_counts"] = _readonly(np.bincount(self.spacegroups, minlength=231))
        return self._cache["sg_counts"]

    def represented(self, min_count: int = REPRESENTED_MIN_COUNT) -> np.ndarray:
        """Sorted ITA numbers of the space groups with at least ``min_count`` structures."""
        return np.flatnonzero(self.spacegroup_counts() >= max(1, int(min_count))).astype(np.int64)

    def spacegroup_prior(self, spacegroups: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Probabilities of ``spacegroups`` proportional to their structure counts.

        Parameters
        ----------
        spacegroups : sequence of int, optional
            ITA numbers; default :meth:`represented` (the classes).

        Returns
        -------
        numpy.ndarray
            float64 aligned with ``spacegroups``, summing to 1.

        Raises
        ------
        DataError
            If none of the groups has a structure.
        """
        sgs = self.represented() if spacegroups is None else np.asarray(
            [self._check_sg(s) for s in spacegroups], np.int64)
        counts = self.spacegroup_counts()[sgs].astype(np.float64)
        if counts.sum() == 0:
            raise DataError(f"statistics ({self.source}): no structures in space groups {sgs.tolist()}")
        return counts / counts.sum()

    @staticmethod
    def _check_sg(sg: object) -> int:
        if isinstance(sg, (int, np.integer)) and not isinstance(sg, bool) and 1 <= int(sg) <= N_SPACEGROUPS:
            return int(sg)
        raise ConfigError(f"space group number must be an integer 1..230, got {sg!r}")

    def _mask(self, sg: int | None, pooled: str, min_count: int) -> np.ndarray:
        """Boolean mask over structures that a per-group table of ``sg`` uses."""
        if pooled not in POOLING:
            raise ConfigError(f"pooled must be one of {', '.join(POOLING)}, got {pooled!r}")
        if pooled == "all":
            return np.ones(len(self.ids), bool)
        sg = self._check_sg(sg)
        own = self.spacegroups == sg
        if pooled == "none":
            if not own.any():
                raise DataError(f"statistics ({self.source}): no structures in space group {sg}; "
                                "use pooled='crystal_system', 'all' or 'auto'")
            return own
        system = self.crystal_systems == crystal_system(sg)
        if pooled == "crystal_system":
            if not system.any():
                raise DataError(f"statistics ({self.source}): no {crystal_system(sg)} structures; use pooled='all'")
            return system
        if own.sum() >= max(1, min_count):  # auto
            return own
        return system if system.any() else np.ones(len(self.ids), bool)

    def _cached(self, key: tuple, compute) -> Any:
        if key not in self._cache:
            value = compute()
            for v in value if isinstance(value, tuple) else (value,):
                if isinstance(v, np.ndarray):
                    v.setflags(write=False)
            self._cache[key] = value
        return self._cache[key]

    @staticmethod
    def _distribution(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vals, counts = np.unique(values, return_counts=True)
        return vals.astype(np.int64), counts / counts.sum()

    # ---- per-group tables -------------------------------------------------------------------

    def n_elements(self, sg: int | None, *, pooled: str = "none", min_count: int = 1):
        """Distribution of the number of distinct elements per structure.

        Parameters
        ----------
        sg : int
            ITA number (ignored with ``pooled="all"``).
        pooled : {"none", "crystal_system", "all", "auto"}
            Which structures to count; see the module docstring.
        min_count : int
            With ``pooled="auto"``: fewest structures of ``sg`` to use the group alone.

        Returns
        -------
        values : (k,) int64 ascending
        probs : (k,) float64 summing to 1
        """
        def compute():
            return self._distribution(self.n_elements_per_structure[self._mask(sg, pooled, min_count)])
        return self._cached(("n_elements", sg, pooled, min_count), compute)

    def elements(self, sg: int | None, *, pooled: str = "none", min_count: int = 1):
        """How often each element occurs: number of structures of the group that contain it, normalised.

        Returns
        -------
        z : (k,) int64 atomic numbers, ascending
        probs : (k,) float64, ``count(structures containing z) / sum over elements of that count``
        """
        def compute():
            struct, z, _ = self._element_pairs
            mask = self._mask(sg, pooled, min_count)
            return self._distribution(z[mask[struct]])
        return self._cached(("elements", sg, pooled, min_count), compute)

    def repetitions(self, sg: int | None, *, pooled: str = "none", min_count: int = 1):
        """Number of asymmetric-unit sites an element occupies, one value per (structure, element).

        Returns
        -------
        values : (k,) int64 ascending (>= 1)
        probs : (k,) float64
        """
        def compute():
            struct, _, reps = self._element_pairs
            mask = self._mask(sg, pooled, min_count)
            return self._distribution(reps[mask[struct]])
        return self._cached(("repetitions", sg, pooled, min_count), compute)

    def asymmetric_sites(self, sg: int | None, *, pooled: str = "none", min_count: int = 1):
        """Number of asymmetric-unit sites per structure, as counts.

        Returns
        -------
        values : (k,) int64 ascending
        counts : (k,) int64 number of structures with that many sites
        """
        def compute():
            vals, counts = np.unique(self.n_sites[self._mask(sg, pooled, min_count)], return_counts=True)
            return vals.astype(np.int64), counts.astype(np.int64)
        return self._cached(("asymmetric_sites", sg, pooled, min_count), compute)

    def wyckoff_counts(self, sg: int, *, pooled: str = "none"):
        """Occupied asymmetric-unit sites per Wyckoff letter of ``sg`` (each site counted once).

        Returns
        -------
        letters : (k,) ``<U1``, all positions of the group in :mod:`synthxrd.wyckoff` order
            (general position first, ``'a'`` last)
        counts : (k,) int64
        """
        from synthxrd.wyckoff import space_group

        sg = self._check_sg(sg)
        if pooled not in ("none", "auto"):
            raise ConfigError(f"Wyckoff letters cannot be pooled over space groups: pooled must be 'none' or "
                              f"'auto', got {pooled!r}")

        def compute():
            letters = np.array([w.letter for w in space_group(sg).wyckoff_positions], "<U1")
            own = self.spacegroups == sg
            if not own.any() and pooled == "none":
                raise DataError(f"statistics ({self.source}): no structures in space group {sg}; "
                                "use pooled='auto' for uniform Wyckoff probabilities")
            rows = own[self._row_structure] & self._orbit_first_row
            observed = self.site_wyckoff[rows]
            counts = np.array([(observed == letter).sum() for letter in letters], np.int64)
            if counts.sum() != rows.sum():
                bad = sorted(set(observed.tolist()) - set(letters.tolist()))
                raise DataError(f"statistics: Wyckoff letters {bad} are not positions of space group {sg}")
            return letters, counts
        return self._cached(("wyckoff_counts", sg, pooled), compute)

    def wyckoff(self, sg: int, *, pooled: str = "none"):
        """Occupation frequency of each Wyckoff position of ``sg``.

        Parameters
        ----------
        sg : int
        pooled : {"none", "auto"}
            ``"auto"``: uniform over the positions if the group has no structures.

        Returns
        -------
        letters : (k,) ``<U1`` in :mod:`synthxrd.wyckoff` order (general position first)
        probs : (k,) float64 (zeros for letters never seen), summing to 1
        """
        def compute():
            letters, counts = self.wyckoff_counts(sg, pooled=pooled)
            if counts.sum() == 0:
                return letters.copy(), np.full(len(letters), 1.0 / len(letters))
            return letters.copy(), counts / counts.sum()
        return self._cached(("wyckoff", sg, pooled), compute)

    # ---- samples for KDEs -------------------------------------------------------------------

    def lattice_samples(self, crystal_system: str) -> np.ndarray:
        """Conventional-cell shapes of one crystal system (or ``"all"``).

        Returns
        -------
        numpy.ndarray
            (n, 6) float64: a, b, c divided by V^(1/3), then alpha, beta, gamma in degrees.

        Raises
        ------
        ConfigError
            If ``crystal_system`` is not a crystal-system name or "all".
        """
        if crystal_system != "all" and crystal_system not in CRYSTAL_SYSTEMS:
            raise ConfigError(f"crystal system must be one of {', '.join(CRYSTAL_SYSTEMS)} or 'all', "
                              f"got {crystal_system!r}")

        def compute():
            mask = (np.ones(len(self.ids), bool) if crystal_system == "all"
                    else self.crystal_systems == crystal_system)
            lat = self.lattices[mask].copy()
            lat[:, :3] /= np.cbrt(self.volumes[mask])[:, None]
            return lat
        return self._cached(("lattice", crystal_system), compute)

    def density_samples(self) -> np.ndarray:
        """(n, 2) float64 of (V_atoms in Å^3, denseness factor V / V_atoms) over all structures."""
        return self._cached(("density",), lambda: np.column_stack([self.v_atoms, self.denseness]))

    def summary(self, top: int = 10) -> dict[str, Any]:
        """Headline numbers: structures, failures, represented groups, the ``top`` groups by count."""
        counts = self.spacegroup_counts()
        order = np.argsort(-counts, kind="stable")[:top]
        return {
            "n_structures": self.n_structures,
            "n_failures": int(self.metadata.get("n_failures", 0)),
            "n_spacegroups": int((counts > 0).sum()),
            "n_represented": int(len(self.represented())),
            "top_spacegroups": [(int(s), int(counts[s])) for s in order if counts[s] > 0],
        }
