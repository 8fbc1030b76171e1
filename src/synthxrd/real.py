"""Real crystals for the training stream: a set built once from the statistics part of a split, and
symmetry-preserving perturbations applied every time a crystal is drawn.

The reference (Schopmans et al. 2023, DESIGN.md) compares training on synthetic crystals with training
on real ones ("direct" training); here both can be mixed in one batch (:mod:`synthxrd.data`). The real
crystals come only from the **statistics** part of a prototype split (:mod:`synthxrd.split`), so the
structure types of the test part stay unseen.

Building (:func:`build_real_set`) reads each CIF of the statistics part exactly as
:mod:`synthxrd.validation` reads the test part: label = :func:`synthxrd.stats.analyze_cif` at the
statistics' ``symprec`` (0.1), crystal = :func:`synthxrd.validation.read_cif_sites` as read (original
cell, all atoms, one scatterer row per species and site). It keeps crystals whose label is a class
(default ``Statistics.represented(min_count)``, min_count 50), with at most ``max_sites`` (100)
asymmetric-unit sites and a conventional-cell volume of at most ``max_volume`` (7000 Å^3): what the
generator can make. One HDF5 file (:mod:`synthxrd.dataset` layout, crystals and labels, no patterns)
plus the group ``/real``::

    /real/ids (N,) str          /real/n_sites (N,) i8      /real/conventional_volume (N,) f8
    /real/ordered (N,) bool     /real/failure_ids (F,) str /real/failure_reasons (F,) str
    attrs["metadata"]: kind = "synthxrd.real_set", format_version, source (path, fingerprint), split
    (path, sha256, counts), statistics (path, format_version, sha256, symprec), classes, filters,
    counts, class_counts, failure reasons, build time, synthxrd and spglib versions

Perturbing (:func:`perturb`, :class:`PerturbConfig`) makes each draw of a real crystal a slightly
different crystal of the **same space group**, so that its label stays right:

1. substitution: with probability ``substitution`` per element, all atoms of that element become a
   neighbour in its group of :data:`SUBSTITUTION_GROUPS` (chemically similar, e.g. Na -> K, Se -> Te)
   that the crystal does not already contain (two species never merge, so no symmetry is gained);
2. coordinate jitter, on the **free parameters** only: the symmetry operations ``(W, t)`` of the crystal
   are found by spglib at ``symprec`` on its cell (all operations of its space group, taken from
   spglib's database and carried into the cell's basis, so a supercell keeps them too); per orbit, a
   Gaussian displacement (``jitter`` Å per Cartesian component) of the representative atom is averaged
   over its site-symmetry group (the operations that map it onto itself) and carried to every atom
   ``j = g(rep)`` of the orbit as ``W_g delta``. The displacement field is thus exactly equivariant:
   atoms on special positions move only along their free directions, those on general positions by the
   full amplitude;
3. lattice strain: ``F = s (1 + eps)`` with ``s ~ U(1 - isotropic_strain, 1 + isotropic_strain)`` and a
   symmetric Gaussian ``eps`` (``anisotropic_strain`` per component); the strained metric
   ``G = L F F^T L^T`` (``L`` rows a, b, c) is averaged over the point group, ``mean_W W^T G W``, which
   makes every operation an exact isometry again (for a cubic crystal only the isotropic part of
   ``eps`` survives, for a monoclinic one all four free metric parameters change); the new lattice is
   the one with that metric closest to ``L F`` (Cholesky factor, then an orthogonal Procrustes
   rotation).

A crystal for which spglib finds no symmetry gets only the isotropic strain and the substitution; one
whose atoms cannot be mapped onto each other by the operations found gets no jitter (never an
unsymmetrised displacement). The symmetry analysis (~10 ms per crystal) is cached per process by the
crystal's content (:data:`SYMMETRY_CACHE_SIZE`); then a perturbation costs ~0.2 ms.

Measured on the set of the shipped split (MP, 30,620 crystals; 300 + 1,000 random crystals, 3 draws
each, default config): spglib (0.1) on the perturbed crystal differs from the label in 2 of 3,900
draws (0.05 %), both pseudo-symmetric crystals whose group becomes a supergroup at symprec 0.105-0.15.
"""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from synthxrd.errors import ConfigError, DataError
from synthxrd.pool import chunked, imap_bounded, outcomes, quiet_worker
from synthxrd.structure import CrystalBatch

if TYPE_CHECKING:
    from synthxrd.split import Split
    from synthxrd.stats import Statistics

__all__ = [
    "KIND",
    "FORMAT_VERSION",
    "MAX_SITES",
    "MAX_VOLUME",
    "SUBSTITUTION_GROUPS",
    "RealCrystals",
    "PerturbConfig",
    "build_real_set",
    "perturb",
    "substitution_candidates",
    "read_failures",
]

#: ``metadata["kind"]`` of a real crystal set.
KIND = "synthxrd.real_set"
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

#: Substitution groups: chemically similar elements, ordered so that neighbours in a tuple have similar
#: ionic radii. An element is replaced only by a direct neighbour (index +-1) of its own group; every
#: element has X-ray form factors in ``resources/scattering_factors.json`` (H..Cf). O, N, C, H and
#: B are never substituted: they make up most anions and frameworks, and an oxide turned sulfide is no
#: longer a plausible crystal of the same geometry.
SUBSTITUTION_GROUPS: dict[str, tuple[str, ...]] = {
    "alkali metals": ("Li", "Na", "K", "Rb", "Cs"),
    "alkaline earths": ("Mg", "Ca", "Sr", "Ba"),
    "3d transition metals": ("Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn"),
    "Zr/Hf": ("Zr", "Hf"),
    "Nb/Ta": ("Nb", "Ta"),
    "Mo/W": ("Mo", "W"),
    "Pd/Pt": ("Pd", "Pt"),
    "lanthanides": ("La", "Ce", "Pr", "Nd", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu"),
    "triels": ("Al", "Ga", "In"),
    "tetrels": ("Si", "Ge", "Sn"),
    "pnictogens": ("P", "As", "Sb", "Bi"),
    "chalcogens": ("S", "Se", "Te"),
    "halogens": ("F", "Cl", "Br", "I"),
}


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
    def load(cls, path: str | Path) -> RealCrystals:
        """Read a real crystal set.

        Raises
        ------
        DataError
            Naming the file, when it is missing or not a real crystal set of a supported version.
        """
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
        batch = self.take(pool[rng.integers(0, len(pool), size=int(n))] if n else np.zeros(0, np.int64))
        return batch, batch.spacegroups.copy()


# --------------------------------------------------------------------------------------------------
# Perturbations


@dataclass(frozen=True)
class PerturbConfig:
    """How :func:`perturb` changes a real crystal (all amplitudes 0: the crystal as read).

    Attributes
    ----------
    isotropic_strain : lattice scale factor ``s ~ U(1 - x, 1 + x)`` (volume times ``s^3``); 0 <= x < 0.5.
    anisotropic_strain : standard deviation of each component of the symmetric strain tensor, before
        it is averaged over the point group; 0 <= x <= 0.2.
    jitter : standard deviation in Å of the displacement of each free coordinate (per Cartesian
        component of a general position); 0 <= x <= 0.5.
    substitution : probability that an element is replaced (all its atoms) by a neighbour of its
        substitution group; 0 <= x <= 1.
    symprec : spglib tolerance in Å for the symmetry operations (that of the labels, 0.1).
    """

    #: ±3 %: typical thermal expansion and solid-solution spread of a structure type.
    isotropic_strain: float = 0.03
    #: 1 %: a small change of the axial ratios / monoclinic angle within the space group.
    anisotropic_strain: float = 0.01
    #: 0.02 Å: about the rms deviation of refined positions of one compound between two studies.
    jitter: float = 0.02
    #: 0.2 per element: most draws keep the composition, some change the scattering powers.
    substitution: float = 0.2
    #: The tolerance the labels were computed with (synthxrd.stats.DEFAULT_SYMPREC).
    symprec: float = 0.1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            low, high, low_ok, high_ok = _PERTURB_LIMITS[f.name]
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(value):
                raise ConfigError(f"perturb.{f.name}: expected a number, got {value!r}")
            if not ((low <= value if low_ok else low < value) and (value <= high if high_ok else value < high)):
                bounds = f"{'[' if low_ok else '('}{low:g}, {high:g}{']' if high_ok else ')'}"
                raise ConfigError(f"perturb.{f.name}: {value!r} is out of range, accepted {bounds}")
            object.__setattr__(self, f.name, float(value))


#: Accepted range of each PerturbConfig field: (low, high, low included, high included).
_PERTURB_LIMITS = {"isotropic_strain": (0.0, 0.5, True, False), "anisotropic_strain": (0.0, 0.2, True, True),
                   "jitter": (0.0, 0.5, True, True), "substitution": (0.0, 1.0, True, True),
                   "symprec": (0.0, 1.0, False, True)}


@lru_cache(maxsize=1)
def _neighbour_table() -> dict[int, tuple[int, ...]]:
    """Z -> atomic numbers of its direct neighbours in its substitution group."""
    from synthxrd.structure import element_z

    table: dict[int, tuple[int, ...]] = {}
    for name, group in SUBSTITUTION_GROUPS.items():
        zs = [element_z(symbol, source=f"substitution group {name!r}") for symbol in group]
        for k, z in enumerate(zs):
            if z in table:
                raise ConfigError(f"substitution groups: Z={z} is in more than one group")
            table[z] = tuple(zs[j] for j in (k - 1, k + 1) if 0 <= j < len(zs))
    return table


def substitution_candidates(z: int) -> tuple[int, ...]:
    """Atomic numbers that element ``z`` may be replaced by (its neighbours in
    :data:`SUBSTITUTION_GROUPS`; empty for an element of no group)."""
    return _neighbour_table().get(int(z), ())


def _sites(frac: np.ndarray, numbers: np.ndarray, occupancies: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                                     np.ndarray]:
    """Sites of a crystal's scatterer rows: consecutive rows at the same position are one site (as
    :func:`synthxrd.validation._rows` wrote them). Returns site positions (s, 3), the site of each
    row (m,) and spglib types (s,) (one per distinct species tuple ``((Z, occ), ...)``)."""
    start = np.ones(len(frac), bool)
    if len(frac) > 1:
        start[1:] = np.any(frac[1:] != frac[:-1], axis=1)
    site_of_row = np.cumsum(start) - 1
    bounds = np.append(np.flatnonzero(start), len(frac))
    kinds: dict[tuple, int] = {}
    types = np.array([kinds.setdefault(tuple((int(z), round(float(o), 4)) for z, o in
                                             zip(numbers[a:b].tolist(), occupancies[a:b].tolist())), len(kinds))
                      for a, b in zip(bounds[:-1], bounds[1:])], np.int32)
    return frac[start], site_of_row, types


def _symmetry(lattice: np.ndarray, positions: np.ndarray, types: np.ndarray,
              symprec: float) -> tuple[np.ndarray, np.ndarray, int] | None:
    """All symmetry operations of the crystal in the basis of its cell, and its ITA number; None when
    spglib finds no symmetry or fails.

    spglib reports only the operations whose rotation maps the *input* cell onto itself; a cell that
    is a supercell of the primitive one (e.g. a 4x cell of an R-3 crystal) loses the others (the
    3-fold). The operations of the space group are therefore taken from spglib's database in the
    standardised basis (``hall_number``) and carried into the input basis,
    ``W = P^-1 W_s P``, ``t = P^-1 (W_s p + t_s - p)`` (``x_s = P x + p``), combined with the pure
    translations spglib finds in the input cell (those of a supercell). ``W`` is then real, not
    necessarily integer.

    Returns
    -------
    rotations : (k, 3, 3) float64, translations : (k, 3) float64 in [0, 1), number : int.
    """
    import spglib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # spglib 2.x deprecation chatter about its error handling
        try:
            ds = spglib.get_symmetry_dataset((lattice, positions, types), symprec=symprec)
            db = None if ds is None else spglib.get_symmetry_from_database(int(ds.hall_number))
        except Exception:  # noqa: BLE001 - degenerate cells: no symmetry-aware perturbation
            return None
    if ds is None or db is None:
        return None
    p_mat = np.asarray(ds.transformation_matrix, np.float64)
    shift = np.asarray(ds.origin_shift, np.float64)
    p_inv = np.linalg.inv(p_mat)
    w_std = np.asarray(db["rotations"], np.float64)
    t_std = np.asarray(db["translations"], np.float64)
    rotations = np.einsum("ij,kjl,lm->kim", p_inv, w_std, p_mat)
    translations = np.einsum("ij,kj->ki", p_inv, np.einsum("kij,j->ki", w_std, shift) + t_std - shift)
    own_r = np.asarray(ds.rotations)
    pure = np.asarray(ds.translations, np.float64)[np.all(own_r == np.eye(3, dtype=own_r.dtype), axis=(1, 2))]
    pure = np.round(pure * len(pure)) / len(pure)  # a group of order m: m t is a lattice vector (exact t)
    rotations = np.repeat(rotations, len(pure), axis=0)
    translations = (translations[:, None, :] + pure[None, :, :]).reshape(-1, 3)
    translations -= np.floor(translations)
    # one operation per (W, t mod 1); t is off its ideal value by the fit of spglib's origin shift (~1e-6)
    key = np.concatenate([np.round(rotations.reshape(-1, 9), 6), np.round(translations, 3) % 1.0], axis=1)
    _, first = np.unique(key, axis=0, return_index=True)
    first.sort()
    return rotations[first], translations[first], int(ds.number)


def _orbits(lattice: np.ndarray, positions: np.ndarray, types: np.ndarray, rotations: np.ndarray,
            translations: np.ndarray, tolerance: float) -> list[tuple[int, np.ndarray]] | None:
    """Per orbit: (representative site r, site ``j_g = g(r)`` for each operation g). None when an
    image is farther than ``tolerance`` (Å) from every site of its type, or two orbits overlap."""
    metric = lattice @ lattice.T
    owner = np.full(len(positions), -1, np.int64)
    out = []
    for r in range(len(positions)):
        if owner[r] >= 0:
            continue
        cand = np.flatnonzero(types == types[r])
        images = np.einsum("kij,j->ki", rotations, positions[r]) + translations
        d = images[:, None, :] - positions[cand][None, :, :]
        d -= np.round(d)
        dist2 = np.einsum("kmi,ij,kmj->km", d, metric, d)
        best = np.argmin(dist2, axis=1)
        if dist2[np.arange(len(best)), best].max() > tolerance ** 2:
            return None
        js = cand[best]
        if np.any((owner[js] >= 0) & (owner[js] != r)):
            return None
        owner[js] = r
        out.append((r, js))
    return out


def _strained_lattices(lattices: np.ndarray, scales: np.ndarray, eps: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Lattices (n, 3, 3) (rows a, b, c) strained by ``F = scale (1 + eps)``, each metric averaged over
    its point group: ``vec(mean_W W^T G W) = map @ vec(G)`` (``maps`` (n, 9, 9), identity: no average).
    The new lattice is the one with that metric closest to ``L F`` (Cholesky factor times the
    orthogonal Procrustes rotation)."""
    n = len(lattices)
    deformed = lattices @ (scales[:, None, None] * (np.eye(3) + eps))  # rows a' = F a (F symmetric)
    metric = np.einsum("nab,nb->na", maps, (deformed @ deformed.transpose(0, 2, 1)).reshape(n, 9)).reshape(n, 3, 3)
    metric = 0.5 * (metric + metric.transpose(0, 2, 1))
    chol = np.linalg.cholesky(metric)  # chol @ chol.T == metric; so has chol @ Q for any orthogonal Q
    u, _, vt = np.linalg.svd(chol.transpose(0, 2, 1) @ deformed)  # argmin_Q |chol Q - deformed|
    flip = np.linalg.det(u @ vt) * np.linalg.det(deformed) < 0  # keep the handedness (det chol > 0)
    u[flip, :, -1] *= -1
    return chol @ (u @ vt)


def _substitute(numbers: np.ndarray, probability: float, rng: np.random.Generator) -> np.ndarray:
    """All atoms of each element replaced, with ``probability``, by a neighbour of its substitution group
    that is neither in the crystal nor already chosen for another of its elements."""
    present = np.unique(numbers)
    draws = rng.random(len(present))
    taken = set(present.tolist())
    out = numbers
    for z, u in zip(present.tolist(), draws.tolist()):
        if u >= probability:
            continue
        options = [c for c in substitution_candidates(z) if c not in taken]
        if not options:
            continue
        new = options[int(rng.integers(len(options)))]
        taken.add(new)
        if out is numbers:
            out = numbers.copy()
        out[numbers == z] = new
    return out


class _Analysis(NamedTuple):
    """What :func:`perturb` needs of a crystal's symmetry (a function of the crystal alone, cached)."""

    site_of_row: np.ndarray  # (m,) int32 site of each scatterer row
    n_sites: int
    number: int  # spglib ITA number, 0: no symmetry found
    metric_map: np.ndarray | None  # (9, 9): vec(G) -> vec(mean_W W^T G W); None: no symmetry
    rotations: np.ndarray | None  # (k, 3, 3) operations in the cell's basis; None: no symmetric jitter
    reps: np.ndarray | None  # (o,) representative site of each orbit
    images: np.ndarray | None  # (o, k) int32: site g(rep) for each operation g
    stabilizer_mean: np.ndarray | None  # (o, 3, 3): mean W over the operations fixing the representative


#: Symmetry analyses kept per process, least recently used dropped: ~4 kB each (~130 MB when full). A
#: real set of 30,000 crystals is then analysed once per worker (~10 ms each) and served from here.
SYMMETRY_CACHE_SIZE = 32768
_CACHE: OrderedDict[bytes, _Analysis] = OrderedDict()


def _analysis(lattice: np.ndarray, frac: np.ndarray, numbers: np.ndarray, occupancies: np.ndarray,
              symprec: float) -> _Analysis:
    """Sites, symmetry operations, orbits and strain projector of one crystal (cached by content)."""
    h = hashlib.blake2b(digest_size=16)
    for arr in (lattice, frac, numbers, occupancies, np.float64(symprec)):
        h.update(np.ascontiguousarray(arr).tobytes())
    key = h.digest()
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    positions, site_of_row, types = _sites(frac, numbers, occupancies)
    sym = _symmetry(lattice, positions, types, symprec) if len(positions) else None
    result = _Analysis(site_of_row.astype(np.int32), len(positions), 0, None, None, None, None, None)
    if sym is not None:
        rotations, translations, number = sym
        _, first = np.unique(np.round(rotations.reshape(-1, 9), 6), axis=0, return_index=True)
        ops = rotations[np.sort(first)]
        metric_map = np.einsum("kji,klm->imjl", ops, ops).reshape(9, 9) / len(ops)
        result = result._replace(number=number, metric_map=metric_map)
        orbits = _orbits(lattice, positions, types, rotations, translations, 2.0 * symprec)
        if orbits is not None:
            reps = np.array([r for r, _ in orbits], np.int64)
            images = np.array([js for _, js in orbits], np.int32).reshape(len(orbits), len(rotations))
            stab = np.array([rotations[js == r].mean(axis=0) for r, js in orbits]).reshape(-1, 3, 3)
            result = result._replace(rotations=rotations, reps=reps, images=images, stabilizer_mean=stab)
    _CACHE[key] = result
    while len(_CACHE) > SYMMETRY_CACHE_SIZE:
        _CACHE.popitem(last=False)
    return result


def perturb(crystals: CrystalBatch, spacegroups: Sequence[int] | np.ndarray | None, rng: np.random.Generator,
            config: PerturbConfig | None = None) -> CrystalBatch:
    """Perturbed copies of real crystals that keep their space group (see the module docstring).

    Parameters
    ----------
    crystals : CrystalBatch (e.g. :meth:`RealCrystals.sample`); not modified.
    spacegroups : (N,) ITA labels of the crystals (the output's ``spacegroups``); None: those of
        ``crystals``.
    rng : numpy Generator; the result is a pure function of the inputs and its state.
    config : PerturbConfig (None: defaults).

    Returns
    -------
    CrystalBatch with the same atoms (rows, occupancies) and labels, new lattices, coordinates and,
    for substituted elements, atomic numbers.

    Notes
    -----
    The symmetry of each crystal comes from spglib (``config.symprec``) on its cell, about 10 ms per
    crystal the first time; the analysis is cached per process by the crystal's content
    (:data:`SYMMETRY_CACHE_SIZE` crystals), after which a perturbation costs about 0.2 ms. The random
    numbers drawn do not depend on the analysis, so the draws of one crystal never depend on another's.
    """
    config = PerturbConfig() if config is None else config
    labels = crystals.spacegroups if spacegroups is None else np.asarray(spacegroups, np.int64).reshape(-1)
    n = len(crystals)
    if labels is not None and len(labels) != n:
        raise ConfigError(f"perturb: {len(labels)} space groups for {n} crystals")
    scales = rng.uniform(1.0 - config.isotropic_strain, 1.0 + config.isotropic_strain, size=n)
    eps = np.zeros((n, 3, 3))
    if config.anisotropic_strain:
        eps = rng.normal(0.0, config.anisotropic_strain, size=(n, 3, 3))
        eps = np.triu(eps) + np.triu(eps, 1).transpose(0, 2, 1)  # symmetric, each component sigma
    frac = crystals.frac_coords.copy()
    numbers = crystals.numbers.copy()
    maps = np.zeros((n, 9, 9))  # per crystal: vec(G) -> vec(symmetrised G); identity without symmetry
    maps[:] = np.eye(9)
    need_symmetry = config.anisotropic_strain > 0 or config.jitter > 0
    for i in range(n):
        a, b = int(crystals.offsets[i]), int(crystals.offsets[i + 1])
        if config.substitution > 0:
            numbers[a:b] = _substitute(crystals.numbers[a:b], config.substitution, rng)
        if not need_symmetry or b == a:
            continue
        lattice = crystals.lattices[i]
        info = _analysis(lattice, crystals.frac_coords[a:b], crystals.numbers[a:b], crystals.occupancies[a:b],
                         config.symprec)
        if info.metric_map is None:
            eps[i] = 0.0  # no point group to average over: isotropic strain only
        else:
            maps[i] = info.metric_map
        if config.jitter:
            noise = rng.normal(0.0, config.jitter, size=(info.n_sites, 3))  # Å, Cartesian, one per site
            if info.rotations is not None:
                steps = noise[info.reps] @ np.linalg.inv(lattice)  # Cartesian -> fractional (r = L^T x)
                steps = np.einsum("oij,oj->oi", info.stabilizer_mean, steps)  # free directions only
                moved = np.einsum("kij,oj->oki", info.rotations, steps)  # W_g step on the site g(rep)
                delta = np.zeros((info.n_sites, 3))
                delta[info.images.reshape(-1)] = moved.reshape(-1, 3)
                frac[a:b] += delta[info.site_of_row]
    if need_symmetry:
        lattices = _strained_lattices(crystals.lattices, scales, eps, maps)
    else:
        lattices = crystals.lattices * scales[:, None, None]
    return CrystalBatch(lattices, frac, numbers, crystals.occupancies.copy(), crystals.offsets.copy(),
                        spacegroups=labels)


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
    lattice: np.ndarray | None = None
    frac: np.ndarray | None = None
    numbers: np.ndarray | None = None
    occupancies: np.ndarray | None = None


def _analyze(ctx: _Context, identifier: str, text: str) -> _Item:
    """One CIF read as :mod:`synthxrd.validation` reads the test part (same functions, same label)."""
    from synthxrd import stats
    from synthxrd.structure import Crystal
    from synthxrd.validation import _rows, _volumes, read_cif_sites

    record = stats.analyze_cif(text, id=identifier, symprec=ctx.symprec, volumes=_volumes())
    lattice, positions, species = read_cif_sites(text)
    frac, numbers, occ = _rows(positions, species)
    crystal = Crystal(lattice, frac, numbers, occ)
    ordered = bool(np.all(occ >= 1.0 - _OCCUPANCY_TOL))
    reason = ("class" if record.spacegroup not in ctx.classes else "sites" if record.n_sites > ctx.max_sites
              else "volume" if record.volume > ctx.max_volume else "")
    item = _Item(identifier, None, record.spacegroup, record.n_sites, record.volume, ordered, reason)
    if not reason:
        item = item._replace(lattice=crystal.lattice, frac=crystal.frac_coords, numbers=crystal.numbers,
                             occupancies=crystal.occupancies)
    return item


def _process(ctx: _Context, chunk: list[tuple[str, str]]) -> list[_Item]:
    from functools import partial

    return [item if reason is None else _Item(i, reason) for i, item, reason in outcomes(chunk, partial(_analyze, ctx))]


_CONTEXT: _Context | None = None


def _init_worker(ctx: _Context) -> None:
    global _CONTEXT
    quiet_worker()
    _CONTEXT = ctx


def _task(chunk: list[tuple[str, str]]) -> list[_Item]:
    return _process(_CONTEXT, chunk)


def _iter_results(source: Path, ids: list[str], ctx: _Context, workers: int) -> Iterator[list[_Item]]:
    """Results per chunk of CIFs (completion order), as synthxrd.validation builds its sets."""
    from functools import partial

    from synthxrd.stats import iter_cif_texts

    tasks = ((chunk,) for chunk in chunked(iter_cif_texts(source, ids=ids), CIF_CHUNK))
    yield from imap_bounded(_task, tasks, workers=workers, initializer=_init_worker, initargs=(ctx,),
                            local=partial(_process, ctx))


def _reason_category(reason: str) -> str:
    """A failure message without its numbers, for counting failures by kind."""
    import re

    return re.sub(r"\d+(\.\d+)?", "#", reason.split("\n", 1)[0])[:100]


def _resolve(split, statistics) -> tuple[Split, str, Statistics, str, str | None]:
    from synthxrd import stats as st
    from synthxrd.split import Split, load_split

    if isinstance(split, Split):
        sp, split_label = split, split.path or "<Split object>"
    else:
        sp = load_split(split)
        split_label = "shipped" if split is None else str(Path(split).resolve())
    if statistics is None or isinstance(statistics, (str, Path)):
        stat = st.Statistics.load(statistics)
        stat_path = None if statistics is None else str(Path(statistics).resolve())
        stat_label = "shipped" if statistics is None else stat_path
    elif isinstance(statistics, st.Statistics):
        stat, stat_path, stat_label = statistics, None, "<Statistics object>"
    else:
        raise ConfigError(f"statistics: expected a path, a Statistics or None, got {type(statistics).__name__}")
    return sp, split_label, stat, stat_label, stat_path


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
    min_count : for the default classes (default 50, :data:`synthxrd.stats.REPRESENTED_MIN_COUNT`).
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
    from synthxrd.validation import _progress, _source_fingerprint, _statistics_sha256

    start = time.perf_counter()
    src = Path(source).expanduser().resolve()
    out = Path(out).expanduser()
    if not src.exists():
        raise DataError(f"{src}: no such file or folder (the structure collection: a folder or tar of CIFs)")
    inputs = [src] + [p for p in (split, statistics) if isinstance(p, (str, Path))]
    check_outputs([out], inputs=inputs, overwrite=overwrite)
    fingerprint = _source_fingerprint(src)  # before reading: the source as it was when the build started
    sp, split_label, stat, stat_label, _ = _resolve(split, statistics)

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
    used_min_count = st.REPRESENTED_MIN_COUNT if min_count is None else int(min_count)
    if classes is None:
        cls = tuple(int(c) for c in stat.represented(used_min_count))
        if not cls:
            raise ConfigError(f"statistics ({stat_label}): no space group has >= {used_min_count} structures; "
                              "give the classes or lower min_count")
    else:
        raw = np.asarray(list(classes) if not isinstance(classes, np.ndarray) else classes)
        if raw.ndim != 1 or raw.size == 0 or raw.dtype.kind not in "iu" or raw.min() < 1 or raw.max() > 230:
            raise ConfigError(f"classes: expected one or more space-group numbers 1..230, got {classes!r:.80}")
        cls = tuple(sorted({int(c) for c in raw.tolist()}))
        used_min_count = None
    if isinstance(max_sites, bool) or not isinstance(max_sites, (int, np.integer)) or max_sites < 1:
        raise ConfigError(f"max_sites must be an integer >= 1, got {max_sites!r}")
    if not (isinstance(max_volume, (int, float)) and math.isfinite(max_volume) and max_volume > 0):
        raise ConfigError(f"max_volume must be a positive number (Å^3), got {max_volume!r}")
    workers = st.default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    ctx = _Context(stat.symprec, cls, int(max_sites), float(max_volume))

    bar = _progress(len(stat_ids), "real crystals (CIFs)", "CIF", progress, 0)
    items: list[_Item] = []
    try:
        for result in _iter_results(src, stat_ids.tolist(), ctx, workers):
            items.extend(result)
            if bar is not None:
                bar.update(len(result))
    finally:
        if bar is not None:
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

    labels = np.array([it.label for it in kept], np.int64)
    offsets = np.zeros(len(kept) + 1, np.int64)
    offsets[1:] = np.cumsum([len(it.numbers) for it in kept])
    batch = CrystalBatch(np.array([it.lattice for it in kept]).reshape(-1, 3, 3),
                         np.concatenate([it.frac for it in kept]).reshape(-1, 3),
                         np.concatenate([it.numbers for it in kept]).astype(np.int64),
                         np.concatenate([it.occupancies for it in kept]), offsets, spacegroups=labels)
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
        "statistics": {"path": stat_label, "format_version": stat.version, "sha256": _statistics_sha256(stat),
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
                   "n_classes_present": int(len(groups)), "n_atoms": int(offsets[-1])},
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

    RealCrystals.load(path)  # DataError unless it is a real set
    with h5py.File(path, "r") as h5:
        g = h5["real"]
        ids = [s.decode() if isinstance(s, bytes) else str(s) for s in g["failure_ids"][()]]
        reasons = [s.decode() if isinstance(s, bytes) else str(s) for s in g["failure_reasons"][()]]
    return [{"id": i, "reason": r} for i, r in zip(ids, reasons)]
