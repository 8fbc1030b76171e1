"""Perturbations of real crystals that keep their space group (see :mod:`synthxrd.real`): substitution
within chemical groups, coordinate jitter on the free Wyckoff parameters, point-group-averaged strain.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from synthxrd.errors import ConfigError
from synthxrd.structure import CrystalBatch, site_types

__all__ = ["SUBSTITUTION_GROUPS", "SYMMETRY_CACHE_SIZE", "PerturbConfig", "perturb", "substitution_candidates"]


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
    :func:`synthxrd.structure.site_rows` writes them). Returns site positions (s, 3), the site of each
    row (m,) and spglib types (s,) (:func:`synthxrd.structure.site_types`)."""
    start = np.ones(len(frac), bool)
    if len(frac) > 1:
        start[1:] = np.any(frac[1:] != frac[:-1], axis=1)
    site_of_row = np.cumsum(start) - 1
    bounds = np.append(np.flatnonzero(start), len(frac))
    types = site_types([tuple(zip(numbers[a:b].tolist(), occupancies[a:b].tolist()))
                        for a, b in zip(bounds[:-1], bounds[1:])])
    return frac[start], site_of_row, types


@lru_cache(maxsize=1)
def _warn_no_spglib() -> None:
    """Once per process: without spglib no symmetry is found, so real crystals get no jitter or anisotropic strain."""
    warnings.warn("spglib is not installed: real crystals are perturbed by isotropic strain and substitution only "
                  "(no symmetry-aware jitter or anisotropic strain); install spglib for the full perturbation",
                  RuntimeWarning, stacklevel=3)


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
    try:
        import spglib
    except ImportError:  # a training machine without spglib: isotropic strain and substitution only
        _warn_no_spglib()
        return None

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


#: Symmetry analyses kept per process, least recently used dropped: ~4 kB each (~160 MB when full). The
#: shipped real set (34,679 crystals) is then analysed once per worker (~10 ms each) and served from here.
SYMMETRY_CACHE_SIZE = 40960
_CACHE: OrderedDict[bytes, _Analysis] = OrderedDict()


#: Marks "no stored operations: ask spglib" (None means "spglib found no symmetry").
_ASK_SPGLIB = object()


def _analysis(lattice: np.ndarray, frac: np.ndarray, numbers: np.ndarray, occupancies: np.ndarray,
              symprec: float, known=_ASK_SPGLIB) -> _Analysis:
    """Sites, symmetry operations, orbits and strain projector of one crystal (cached by content);
    ``known``: its operations as :func:`_symmetry` gives them (stored with a real set), else spglib."""
    h = hashlib.blake2b(digest_size=16)
    for arr in (lattice, frac, numbers, occupancies, np.float64(symprec)):
        h.update(np.ascontiguousarray(arr).tobytes())
    key = h.digest()
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    positions, site_of_row, types = _sites(frac, numbers, occupancies)
    if not len(positions):
        sym = None
    elif known is not _ASK_SPGLIB:
        sym = known
    else:
        sym = _symmetry(lattice, positions, types, symprec)
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
            config: PerturbConfig | None = None, *, operations: Sequence | None = None) -> CrystalBatch:
    """Perturbed copies of real crystals that keep their space group (see the module docstring).

    Parameters
    ----------
    crystals : CrystalBatch (e.g. :meth:`RealCrystals.sample`); not modified.
    spacegroups : (N,) ITA labels of the crystals (the output's ``spacegroups``); None: those of
        ``crystals``.
    rng : numpy Generator; the result is a pure function of the inputs and its state.
    config : PerturbConfig (None: defaults).
    operations : per crystal, its symmetry operations ``(rotations, translations, number)`` or None (no
        symmetry), as :meth:`RealCrystals.operations` gives them from a set that stores them (found at
        ``config.symprec``); then spglib is not needed. None: spglib finds them.

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
    if operations is not None and len(operations) != n:
        raise ConfigError(f"perturb: operations for {len(operations)} crystals, {n} crystals")
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
                         config.symprec, _ASK_SPGLIB if operations is None else operations[i])
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
