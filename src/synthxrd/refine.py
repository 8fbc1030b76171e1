"""Whole-pattern refinement of candidate phases against a measured powder pattern.

A Rietveld-style fit with fixed structure-factor intensities (the library's ``|F|^2 m`` or a CIF's),
or a Le Bail / Pawley fit with free intensities for a cell without atoms. The model of the pattern
at the points 2theta_i is

    y_calc(2theta_i) = sum_phases s_p sum_hkl sum_lines r_line |F|^2 m LP(theta) P_MD(hkl)
                       Omega(2theta_i - 2theta_hkl,line - z; H, eta)  +  sum_j b_j T_j(x_i),

with

- the reflections' ``1/d^2 = h^T G* h`` linear in the reciprocal metric ``G*``; the metric may move
  only within the subspace that the lattice's holohedry leaves invariant (cubic 1 free component,
  tetragonal and hexagonal 2, orthorhombic 3, monoclinic 4, triclinic 6), found numerically from
  the cell the hkl belong to, so the library's hkl (indices of the CIF's cell as read, often
  primitive) need no conventional setting; each component is bounded (default +-8 % in d);
- Bragg's law at K-alpha1 and, for a K-alpha wavelength, K-alpha2 with the table's ratio
  (``resources/wavelengths.json``); a zero shift z (degrees);
- an area-normalised pseudo-Voigt Omega of FWHM H = w0 + w1 tan(theta) and Lorentz fraction eta;
- the Lorentz-polarisation factor LP = (1 + cos^2 2theta) / (sin^2 theta cos theta);
- March-Dollase preferred orientation P_MD = mean over the reflection's equivalents h' of
  (r^2 cos^2 alpha + sin^2 alpha / r)^(-3/2), alpha the angle between h' and the texture axis
  (W. A. Dollase, J. Appl. Cryst. 19, 267 (1986), doi:10.1107/S0021889886089458);
- a Chebyshev background of the first kind T_j on 2theta mapped to [-1, 1].

Scales, background coefficients and (Le Bail mode) the intensities enter linearly: they are solved
by non-negative least squares at every evaluation (variable projection; G. H. Golub and V. Pereyra,
SIAM J. Numer. Anal. 10, 413 (1973)); ``scipy.optimize.least_squares`` (trust-region reflective,
bounded) fits the rest. Peaks are evaluated only inside +-``WINDOW_FWHM`` FWHM of their centre.

Weights are Poisson-like, w_i = 1 / (alpha (max(y_i, 0) + y_floor)), with the counts-per-unit
alpha estimated from the point-to-point scatter of the pattern, so that the figures of merit read
as a Rietveld program's (R. A. Young, *The Rietveld Method*, IUCr/OUP 1993, ch. 1):

    Rwp = sqrt(sum w (y_o - y_c)^2 / sum w y_o^2),  Rexp = sqrt((N - P) / sum w y_o^2),  GoF = Rwp / Rexp.

With w ~ 1/y the residual is about 2 (sqrt(y_o) - sqrt(y_c)): the fit is in square-root intensity,
which is what made refinement re-rank search-match candidates (docs/refine.md).
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from typing import Any

import numpy as np

from synthxrd.errors import ConfigError, DataError
from synthxrd.simulate.common import DEFAULT_WAVELENGTH
from synthxrd.wyckoff import N_SPACEGROUPS

__all__ = [
    "WINDOW_FWHM",
    "DEFAULT_CELL_BOUND",
    "PhaseModel",
    "RefinedPhase",
    "Refinement",
    "RefineError",
    "lattice_symmetry",
    "strain_basis",
    "metric_from_reflections",
    "lattice_parameters_of_metric",
    "phase_from_reflections",
    "phase_from_library",
    "phase_from_crystal",
    "phase_from_cell",
    "kalpha_lines",
    "pseudo_voigt",
    "march_dollase",
    "refine",
    "report",
    "scaled",
    "refined_cif",
]

#: Peaks are evaluated within this many FWHM of their centre (the Lorentzian beyond holds < 0.2 %
#: of its height per point and about 2.6 % of its area in total, absorbed by the background).
WINDOW_FWHM = 12.0
#: Default bound of every cell component: d may change by this fraction (prototype: +-8 %).
DEFAULT_CELL_BOUND = 0.08
#: Metric entries agree to this relative precision for an integer matrix to be a lattice symmetry
#: (DFT and CIF cells of a symmetric structure are symmetric to ~1e-5; an accidental metric
#: coincidence to 1e-3 is rare).
SYMMETRY_TOLERANCE = 1e-3
#: A library entry's metric is fitted to its stored d and hkl; it is used only if it reproduces
#: every stored d to this relative precision (float32 d: ~1e-7), else the phase is refined isotropically.
METRIC_TOLERANCE = 1e-4
#: Bounds of the profile parameters: w0 (degrees), w1 (degrees), eta, zero shift (degrees), r (March-Dollase).
W0_BOUNDS = (0.005, 1.5)
W1_BOUNDS = (0.0, 1.5)
ZERO_BOUNDS = (-0.5, 0.5)
#: Step (relative, in d) of the isotropic pre-scan of :func:`refine`: 0.1 % moves a line at 2theta =
#: 90 degrees by 0.06 degrees, within a typical peak width.
PRESCAN_STEP = 1e-3
#: A fit whose Rwp is above this fraction of the background-alone Rwp explains nothing (flagged).
NOTHING_EXPLAINED = 0.95
MD_BOUNDS = (0.4, 2.5)


class RefineError(DataError):
    """A refinement that cannot start (no reflection in range, bad input)."""


# --------------------------------------------------------------------------------------------------
# lattice metric, symmetry and the allowed strains


@lru_cache(maxsize=1)
def _unimodular() -> np.ndarray:
    """(K, 3, 3) int64: every integer matrix with entries -1, 0, 1 and determinant +-1."""
    m = np.array(list(itertools.product((-1, 0, 1), repeat=9)), np.int64).reshape(-1, 3, 3)
    det = np.rint(np.linalg.det(m)).astype(np.int64)
    out = m[np.abs(det) == 1]
    out.setflags(write=False)
    return out


def lattice_symmetry(g_star: np.ndarray, *, tolerance: float = SYMMETRY_TOLERANCE) -> np.ndarray:
    """Integer matrices R (entries -1, 0, 1) with R^T G* R = G*: the lattice's holohedry acting on hkl.

    Parameters
    ----------
    g_star : (3, 3) reciprocal metric (1/Angstrom^2) of the cell the hkl belong to.
    tolerance : relative agreement of the metric entries (scaled by sqrt(G*_ii G*_jj)).

    Returns
    -------
    (n, 3, 3) int64, the identity included; h -> R h maps a reflection onto an equivalent one
    (same 1/d^2 = h^T G* h). Matrices with larger entries are not searched: a strongly non-reduced
    cell gets a subgroup, i.e. more strain freedom, never less.
    """
    g0 = np.asarray(g_star, np.float64)
    t = _reduction(np.linalg.inv(g0))
    t_inv = np.rint(np.linalg.inv(t)).astype(np.int64)
    g = t_inv.T @ g0 @ t_inv  # G*' of the reduced basis (h' = T h)
    ops = _unimodular()
    rows, cols = np.triu_indices(3)
    moved = _unimodular_action() @ g[rows, cols]  # the six entries of R^T G* R for every R at once
    scale = np.sqrt(np.diag(g)[rows] * np.diag(g)[cols])
    ok = np.all(np.abs(moved - g[rows, cols]) <= tolerance * scale, axis=1)
    return np.einsum("ij,kjl,lm->kim", t_inv, ops[ok], t)  # back to the cell's own indices: T^-1 R' T


def standard_indices(hkl, g_star: np.ndarray | None, spacegroup: int = 0) -> np.ndarray:
    """(P, 3) each reflection of ``hkl`` (integers, in the cell of ``g_star``) as the equivalent a
    crystallographer writes: among its images R h under the lattice's holohedry (:func:`lattice_symmetry`
    with a tolerance of 1e-9, so that only exact symmetry of the metric moves an index, never a
    pseudo-symmetry; without a metric h and -h), those that ``spacegroup``'s reflection conditions
    allow (:func:`synthxrd.symmetry.is_absent`, standard setting; all of them where none is allowed, as
    in a non-standard setting), the one with the most non-negative indices, then the largest h, k, l.
    Every image has the same d; where the Laue class is lower than the holohedry (4/m, 6/m, -3, m-3)
    an image may be a different reflection at the same d, as the library's lines merge them."""
    h = np.rint(np.asarray(hkl, np.float64)).astype(np.int64).reshape(-1, 3)
    if len(h) == 0:
        return h
    if g_star is None or not _positive_definite(np.asarray(g_star, np.float64)):
        ops = np.array([np.eye(3), -np.eye(3)], np.int64)
    else:
        ops = lattice_symmetry(np.asarray(g_star, np.float64), tolerance=1e-9)
    cand = np.einsum("kij,mj->kmi", ops, h)  # (n_ops, P, 3)
    score = (cand >= 0).sum(-1)
    for i in range(3):  # lexicographic: non-negative count, then h, k, l (|index| < 1000)
        score = score * 2001 + cand[..., i] + 1000
    if 1 <= spacegroup <= N_SPACEGROUPS:
        from synthxrd.symmetry import is_absent

        absent = is_absent(int(spacegroup), cand.reshape(-1, 3)).reshape(cand.shape[:2])
        score = np.where(absent & ~absent.all(axis=0, keepdims=True), -1, score)
    return cand[score.argmax(axis=0), np.arange(len(h))]


@lru_cache(maxsize=1)
def _unimodular_action() -> np.ndarray:
    """(K, 6, 6) float64: the upper-triangle entries of R^T X R as a linear map of those of a symmetric X,
    for every R of :func:`_unimodular` (a 4x faster :func:`lattice_symmetry` than the triple product)."""
    ops = _unimodular().astype(np.float64)
    rows, cols = np.triu_indices(3)
    unit = np.zeros((6, 3, 3))
    unit[np.arange(6), rows, cols] = 1.0
    unit[np.arange(6), cols, rows] = 1.0
    moved = np.einsum("kji,qjl,klm->kimq", ops, unit, ops)  # (K, 3, 3, 6)
    out = np.ascontiguousarray(moved[:, rows, cols, :])
    out.setflags(write=False)
    return out


def _reduction(g: np.ndarray) -> np.ndarray:
    """(3, 3) unimodular integer T whose rows give a reduced basis (T A) of the lattice with direct
    metric ``g``: pairwise Lagrange reduction |G_ij| <= G_jj / 2, repeated until nothing changes, so that
    the lattice's symmetries have entries -1, 0, 1 in the reduced basis."""
    t = np.eye(3, dtype=np.int64)
    for _ in range(100):
        changed = False
        for i in range(3):
            for j in range(3):
                if i == j:
                    continue
                m = t @ g @ t.T
                k = int(np.rint(m[i, j] / m[j, j]))
                if k:
                    t[i] -= k * t[j]
                    changed = True
        if not changed:
            break
    return t


_SYM6 = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]


def strain_basis(g_star: np.ndarray, ops: np.ndarray) -> np.ndarray:
    """Basis (k, 3, 3) of the symmetric matrices X with R^T X R = X for every R in ``ops``.

    The projection P(X) = mean_R R^T X R of the six unit symmetric matrices spans the invariant
    subspace; its orthonormal basis (SVD) is returned, each element scaled so that
    its Frobenius norm equals that of G*, so a coefficient p changes 1/d^2 by about p times.
    k = 1 (cubic), 2 (tetragonal, hexagonal, rhombohedral), 3 (orthorhombic), 4 (monoclinic), 6 (triclinic).
    """
    g = np.asarray(g_star, np.float64)
    rows = []
    for i, j in _SYM6:
        e = np.zeros((3, 3))
        e[i, j] = e[j, i] = 1.0
        p = np.einsum("kji,jl,klm->im", ops, e, ops) / len(ops)
        rows.append(p[np.triu_indices(3)])
    u, s, vt = np.linalg.svd(np.array(rows))
    k = int(np.sum(s > 1e-8 * s[0]))
    basis = []
    for v in vt[:k]:
        b = np.zeros((3, 3))
        b[np.triu_indices(3)] = v
        b = b + np.triu(b, 1).T
        basis.append(b / np.linalg.norm(b) * np.linalg.norm(g))
    return np.array(basis)


def _positive_definite(g: np.ndarray) -> bool:
    """A finite, symmetric metric with all eigenvalues > 0 (a real cell)."""
    return bool(np.all(np.isfinite(g)) and np.all(np.linalg.eigvalsh(g) > 0))


def metric_from_reflections(d: np.ndarray, hkl: np.ndarray) -> np.ndarray | None:
    """The reciprocal metric G* (3, 3) that the reflections' indices belong to, by least squares of
    1/d^2 = h^2 A + k^2 B + l^2 C + 2hk D + 2hl E + 2kl F; None where the hkl do not determine it
    (rank < 6) or it does not reproduce every d to :data:`METRIC_TOLERANCE`."""
    d = np.asarray(d, np.float64)
    h = np.asarray(hkl, np.float64)
    a = np.column_stack([h[:, 0] ** 2, h[:, 1] ** 2, h[:, 2] ** 2, 2 * h[:, 0] * h[:, 1], 2 * h[:, 0] * h[:, 2],
                         2 * h[:, 1] * h[:, 2]])
    q = 1.0 / d ** 2
    if len(d) < 6 or np.linalg.matrix_rank(a / q[:, None]) < 6:
        return None
    x = np.linalg.lstsq(a / q[:, None], np.ones(len(d)), rcond=None)[0]
    g = np.array([[x[0], x[3], x[4]], [x[3], x[1], x[5]], [x[4], x[5], x[2]]])
    if not _positive_definite(g):
        return None
    back = np.einsum("mi,ij,mj->m", h, g, h)
    if np.max(np.abs(back / q - 1)) > METRIC_TOLERANCE:
        return None
    return g


def lattice_parameters_of_metric(g_star: np.ndarray) -> np.ndarray:
    """(6,) a, b, c (Angstrom), alpha, beta, gamma (degrees) of the cell with reciprocal metric G*."""
    g = np.linalg.inv(np.asarray(g_star, np.float64))
    abc = np.sqrt(np.diag(g))
    cos = [g[1, 2] / (abc[1] * abc[2]), g[0, 2] / (abc[0] * abc[2]), g[0, 1] / (abc[0] * abc[1])]
    return np.concatenate([abc, np.degrees(np.arccos(np.clip(cos, -1, 1)))])


#: Order of the lattice point group (holohedry) of each crystal system, by
#: :func:`synthxrd.symmetry.crystal_system_index` (trigonal: a rhombohedral lattice's 12; a hexagonal one has 24).
_HOLOHEDRY_ORDER = (2, 4, 8, 16, 12, 24, 48)
#: Looser tolerances tried in turn until the lattice shows the symmetry its space group requires.
_LOOSER_TOLERANCES = (1e-2, 3e-2)


def _symmetry_of(g_star: np.ndarray, spacegroup: int) -> np.ndarray:
    """:func:`lattice_symmetry` at :data:`SYMMETRY_TOLERANCE`, or at the first looser tolerance at which
    it reaches the holohedry order of the space group's crystal system (0: unknown, no retry)."""
    ops = lattice_symmetry(g_star)
    if not 1 <= spacegroup <= N_SPACEGROUPS:
        return ops
    from synthxrd.symmetry import crystal_system_index

    need = _HOLOHEDRY_ORDER[crystal_system_index(spacegroup)]
    for tol in _LOOSER_TOLERANCES:
        if len(ops) >= need:
            break
        looser = lattice_symmetry(g_star, tolerance=tol)
        if len(looser) >= need:
            ops = looser
    return ops


def _conventional_map(g_star: np.ndarray, conventional: np.ndarray | None) -> np.ndarray | None:
    """(3, 3) matrix M (rows: conventional a, b, c in the cell's basis, half-integer entries) with
    lattice_parameters(M G M^T) = ``conventional`` (to 1 % and 1 degree), G = inv(G*); None if none."""
    if conventional is None or not _positive_definite(g_star):
        return None
    g = np.linalg.inv(g_star)
    if not _positive_definite(g):  # G* so ill-conditioned that its inverse lost definiteness
        return None
    r = np.arange(-4, 5) / 2
    v = np.array(list(itertools.product(r, r, r)))
    v = v[np.any(v != 0, axis=1)]
    length = np.sqrt(np.einsum("mi,ij,mj->m", v, g, v))
    conv = np.asarray(conventional, np.float64)
    cand = [v[np.abs(length / conv[i] - 1) < 0.01] for i in range(3)]
    cand = [c[np.argsort(np.abs(c).sum(axis=1), kind="stable")][:60] for c in cand]
    cosines = np.cos(np.radians(conv[3:]))
    for va in cand[0]:
        for vb in cand[1]:
            cg = (va @ g @ vb) / (conv[0] * conv[1])
            if abs(cg - cosines[2]) > 0.02:
                continue
            for vc in cand[2]:
                m = np.array([va, vb, vc])
                det = np.linalg.det(m)
                if det < 0.25:
                    continue
                p = lattice_parameters_of_metric(np.linalg.inv(m @ g @ m.T))
                if np.all(np.abs(p[:3] / conv[:3] - 1) < 0.01) and np.all(np.abs(p[3:] - conv[3:]) < 1.0):
                    return m
    return None


# --------------------------------------------------------------------------------------------------
# phases


@dataclass(frozen=True)
class PhaseModel:
    """One phase to refine: its reflections and how their d-spacings may move.

    Attributes
    ----------
    name : str, shown in reports (library id, CIF name).
    spacegroup : int, ITA number (0: unknown).
    q0 : (P,) float64 1/d^2 (1/Angstrom^2) of the starting cell.
    dq : (P, k) float64 d(1/d^2)/dp of the k strain components (``strain_basis``).
    f2 : (P,) float64 |F|^2 m, or None for free intensities (Le Bail mode).
    hkl : (P, 3) int64 indices in the cell of ``g_star``.
    g_star : (3, 3) reciprocal metric of that cell, or None (isotropic refinement only).
    basis : (k, 3, 3) strain basis (None when isotropic without a metric).
    ops : (n, 3, 3) lattice symmetry on hkl (equivalents for preferred orientation).
    conventional : (6,) conventional lattice parameters of the starting cell, or None.
    formula : str.
    conventional_map : (3, 3) rows of the conventional a, b, c in the cell's basis, or None (found
        from ``g_star`` and ``conventional`` when first needed).
    """

    name: str
    spacegroup: int
    q0: np.ndarray
    dq: np.ndarray
    f2: np.ndarray | None
    hkl: np.ndarray
    g_star: np.ndarray | None = None
    basis: np.ndarray | None = None
    ops: np.ndarray | None = None
    conventional: np.ndarray | None = None
    formula: str = ""
    conventional_map: np.ndarray | None = None

    @property
    def n_cell(self) -> int:
        return self.dq.shape[1]

    def metric(self, p: np.ndarray) -> np.ndarray | None:
        if self.g_star is None:
            return None
        return self.g_star + np.einsum("k,kij->ij", p, self.basis)

    def strain_for(self, g_star: np.ndarray) -> np.ndarray:
        """The strain p whose :meth:`metric` is ``g_star`` (least squares; exact for a metric of the
        phase's symmetry, which its strain basis spans)."""
        a = np.asarray(self.basis, np.float64).reshape(self.n_cell, 9).T
        return np.linalg.lstsq(a, (np.asarray(g_star) - self.g_star).ravel(), rcond=None)[0]

    def cell(self, p: np.ndarray) -> np.ndarray | None:
        """(6,) refined lattice parameters: conventional if the map to the conventional cell is known,
        else of the cell the hkl belong to; None without a metric."""
        g = self.metric(p)
        if g is None:
            if self.conventional is None:
                return None
            s = 1.0 / math.sqrt(1.0 + p[0]) if len(p) else 1.0  # isotropic: d -> d / sqrt(1 + p); held: none
            return np.concatenate([self.conventional[:3] * s, self.conventional[3:]])
        if not _positive_definite(g):
            return None
        m = _conventional_map_cached(self)
        if m is not None:
            return lattice_parameters_of_metric(np.linalg.inv(m @ np.linalg.inv(g) @ m.T))
        return lattice_parameters_of_metric(g)


def _conventional_map_cached(phase: PhaseModel) -> np.ndarray | None:
    if phase.conventional_map is not None:
        return phase.conventional_map
    cache = phase.__dict__.setdefault("_map", {})
    if "m" not in cache:
        cache["m"] = _conventional_map(phase.g_star, phase.conventional)
    return cache["m"]


def phase_from_reflections(d, f2, hkl, *, name: str = "phase", spacegroup: int = 0, formula: str = "",
                           g_star: np.ndarray | None = None, conventional=None) -> PhaseModel:
    """A :class:`PhaseModel` of reflections (d Angstrom, |F|^2 m or None, hkl); the metric is
    ``g_star`` or else fitted to d and hkl (:func:`metric_from_reflections`); without one the
    phase refines isotropically (one scale)."""
    d = np.asarray(d, np.float64)
    hkl = np.asarray(hkl, np.int64).reshape(-1, 3)
    if len(d) == 0 or hkl.shape[0] != len(d) or not np.all(np.isfinite(d)) or np.any(d <= 0):
        raise RefineError(f"phase {name}: needs reflections with positive finite d and one hkl each")
    q0 = 1.0 / d ** 2
    g = metric_from_reflections(d, hkl) if g_star is None else np.asarray(g_star, np.float64)
    conv = None if conventional is None else np.asarray(conventional, np.float64)
    if g is None:
        return PhaseModel(name, int(spacegroup), q0, q0[:, None].copy(), None if f2 is None else np.asarray(f2, float),
                          hkl, conventional=conv, formula=formula)
    ops = _symmetry_of(g, int(spacegroup))
    if len(ops) > 1:  # the metric made exactly as symmetric as its lattice (a CIF's cell is only nearly so)
        g = np.einsum("kji,jl,klm->im", ops, g, ops) / len(ops)
    basis = strain_basis(g, ops)
    dq = np.einsum("mi,kij,mj->mk", hkl.astype(np.float64), basis, hkl.astype(np.float64))
    q_exact = np.einsum("mi,ij,mj->m", hkl, g, hkl)
    return PhaseModel(name, int(spacegroup), q_exact, dq, None if f2 is None else np.asarray(f2, np.float64), hkl,
                      g, basis, ops, conv, formula)


def phase_from_library(library, key) -> PhaseModel:
    """The :class:`PhaseModel` of a library entry (row or id): its stored reflections, |F|^2 m and
    the metric of the cell its hkl belong to, fitted to d and hkl."""
    e = library.entry(key)
    return phase_from_reflections(e.d, e.f2, e.hkl, name=e.id, spacegroup=e.spacegroup, formula=e.formula,
                                  conventional=e.lattice)


def phase_from_crystal(crystal, *, name: str = "phase", d_min: float = 0.5,
                       free_intensities: bool = False) -> PhaseModel:
    """The :class:`PhaseModel` of a crystal (``Crystal``, pymatgen ``Structure``, ASE ``Atoms`` or a CIF
    path): reflections with d >= ``d_min`` from :mod:`synthxrd.simulate`, exact metric of its cell."""
    from synthxrd import stats
    from synthxrd.simulate.physics import reciprocal_metric
    from synthxrd.structure import crystal_sites, reduced_formula, to_crystal

    crystal = to_crystal(crystal)
    d, f2, hkl = _crystal_reflections(crystal, d_min)
    if len(d) == 0:
        raise RefineError(f"phase {name}: no reflection with d >= {d_min} Angstrom")
    try:
        record = stats.analyze_sites(name, *crystal_sites(crystal), symprec=0.1)
        sg, conv = record.spacegroup, record.lattice
    except Exception:  # noqa: BLE001 - symmetry analysis is optional for a refinement
        sg, conv = 0, None
    return phase_from_reflections(d, None if free_intensities else f2, hkl, name=name, spacegroup=sg,
                                  formula=reduced_formula(crystal), g_star=reciprocal_metric(crystal.lattice),
                                  conventional=conv)


#: Reflections whose |g| agree to this relative precision are one line (equivalents differ by ~1e-15).
_SAME_G = 1e-7
#: Lines weaker than this fraction of the strongest |F|^2 m are left out of a crystal's phase.
_MIN_F2 = 1e-6


def _crystal_reflections(crystal, d_min: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(d, |F|^2 m, hkl) of a crystal with d >= ``d_min``, decreasing d: the reflections of
    :func:`synthxrd.simulate.reflections` with the Lorentz-polarisation factor divided out, those with
    the same |g| summed (hkl of the strongest), as the reference library stores them."""
    from synthxrd.simulate import reflections
    from synthxrd.simulate.physics import lorentz_polarization
    from synthxrd.structure import CrystalBatch

    lam = min(DEFAULT_WAVELENGTH, 1.9 * d_min)  # any lambda < 2 d_min reaches every d >= d_min
    top = math.degrees(2 * math.asin(min(1.0, lam / (2 * d_min))))
    bottom = math.degrees(2 * math.asin(lam / (2 * 200.0)))
    refl = reflections(CrystalBatch.from_crystals([crystal]), wavelength=lam, two_theta_range=(bottom, top))
    theta = np.radians(refl.two_theta) / 2
    g = 2 * np.sin(theta) / lam
    f2 = refl.intensity / lorentz_polarization(theta)
    if len(g) == 0:
        return np.zeros(0), np.zeros(0), np.zeros((0, 3), np.int64)
    order = np.argsort(g, kind="stable")
    g, f2, hkl = g[order], f2[order], np.asarray(refl.hkl)[order]
    new = np.ones(len(g), bool)
    new[1:] = np.diff(g) > _SAME_G * g[1:]
    group = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    total = np.add.reduceat(f2, starts)
    strongest = hkl[np.lexsort((-f2, group))[starts]]  # groups are contiguous: the first row is the strongest
    keep = total > _MIN_F2 * total.max()
    d = 1.0 / g[starts][keep]
    order = np.argsort(-d, kind="stable")
    return d[order], total[keep][order] / total.max(), strongest[keep][order].astype(np.int64)


def phase_from_cell(cell, spacegroup: int, *, d_min: float, name: str = "cell") -> PhaseModel:
    """A Le Bail phase (free intensities) of a cell (a, b, c Angstrom, alpha, beta, gamma degrees, in the
    space group's standard setting): every reflection with d >= ``d_min`` that the space group does not
    systematically extinguish, equal d merged."""
    from synthxrd._cif import lattice_from_parameters
    from synthxrd.simulate.physics import enumerate_hkl, reciprocal_metric
    from synthxrd.symmetry import is_absent

    cell = np.asarray(cell, np.float64).ravel()
    if cell.shape != (6,) or not np.all(np.isfinite(cell)) or np.any(cell[:3] <= 0) or np.any(cell[3:] <= 0) \
            or np.any(cell[3:] >= 180):
        raise ConfigError(f"cell: expected a b c (Angstrom > 0) alpha beta gamma (0-180 degrees), got {cell.tolist()}")
    if not (isinstance(spacegroup, (int, np.integer)) and 1 <= spacegroup <= N_SPACEGROUPS):
        raise ConfigError(f"spacegroup: expected an ITA number 1-230, got {spacegroup!r}")
    try:
        lattice = lattice_from_parameters(*cell)
    except Exception:
        raise ConfigError(f"cell: the angles {cell[3:].tolist()} make no cell") from None
    if not np.all(np.isfinite(lattice)):
        raise ConfigError(f"cell: the angles {cell[3:].tolist()} make no cell")
    hkl, g = enumerate_hkl(lattice, 1.0 / 200.0, 1.0 / d_min)
    if len(hkl) > 20000:
        raise ConfigError(f"cell: {len(hkl)} reflections above d = {d_min:.3g} Angstrom (cell too large for Le Bail)")
    keep = ~is_absent(int(spacegroup), hkl) if len(hkl) else np.zeros(0, bool)
    hkl, g = hkl[keep], g[keep]
    if len(hkl) == 0:
        raise RefineError(f"cell: no allowed reflection with d >= {d_min:.3g} Angstrom")
    # decreasing d; among equal d (equivalents, Friedel mates) the most positive indices first: (1 1 0) before (1 -1 0)
    d_key = np.round(1 / g, 6)
    nonneg = np.sum(hkl >= 0, axis=1)
    order = np.lexsort((-hkl[:, 2], -hkl[:, 1], -hkl[:, 0], -nonneg, -d_key))
    hkl, g, d_key = hkl[order], g[order], d_key[order]
    d = 1 / g
    new = np.ones(len(d), bool)
    new[1:] = np.diff(d_key) != 0
    return phase_from_reflections(d[new], None, hkl[new], name=name, spacegroup=int(spacegroup),
                                  g_star=reciprocal_metric(lattice), conventional=cell)


# --------------------------------------------------------------------------------------------------
# profile pieces


def kalpha_lines(wavelength: float | str) -> tuple[tuple[float, float], ...]:
    """(wavelength Angstrom, relative intensity) of the lines of a wavelength.

    A K-alpha name (``"CuKa"``) or the K-alpha average of the table's anodes (e.g. 1.54184) gives the
    K-alpha1/K-alpha2 doublet with the table's ratio; anything else (``"CuKa1"``, 1.5406, synchrotron)
    one line."""
    from synthxrd.io.wavelength import anode_lines, anodes
    from synthxrd.simulate.common import resolve_wavelength

    lam = resolve_wavelength(wavelength)
    name = wavelength.strip().lower() if isinstance(wavelength, str) else ""
    for anode in anodes():
        a1, a2, ratio, avg = anode_lines(anode)
        if a2 is not None and (name == f"{anode.lower()}ka" or (not name and abs(lam - avg) < 2e-5)):
            return ((a1, 1.0), (a2, float(ratio if ratio is not None else 0.5)))
    return ((lam, 1.0),)


def pseudo_voigt(x: np.ndarray, fwhm: np.ndarray, eta: float) -> np.ndarray:
    """Area-normalised pseudo-Voigt: eta L + (1 - eta) G, both of FWHM ``fwhm`` (same units as x).

    G = (2/H) sqrt(ln 2 / pi) exp(-4 ln 2 x^2 / H^2), L = (2 / (pi H)) / (1 + 4 x^2 / H^2)
    (R. A. Young, *The Rietveld Method*, 1993, ch. 1, table 1.1)."""
    u = (x / fwhm) ** 2
    g = (2.0 / fwhm) * math.sqrt(math.log(2) / math.pi) * np.exp(-4 * math.log(2) * u)
    lor = (2.0 / (math.pi * fwhm)) / (1 + 4 * u)
    return eta * lor + (1 - eta) * g


def _fwhm(params: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """FWHM (degrees) at Bragg angles ``theta`` (radians): w0 + w1 tan(theta) for two parameters,
    Caglioti sqrt(U tan^2 + V tan + W) for three (G. Caglioti, A. Paoletti, F. P. Ricci, Nucl.
    Instrum. 3, 223 (1958), doi:10.1016/0369-643X(58)90029-X)."""
    t = np.tan(np.clip(theta, 0, 1.55))
    if len(params) == 2:
        return params[0] + params[1] * t
    return np.sqrt(np.maximum(params[0] * t * t + params[1] * t + params[2], 1e-6))


def march_dollase(hkl: np.ndarray, g_star: np.ndarray, ops: np.ndarray, axis: np.ndarray, r: float) -> np.ndarray:
    """(P,) March-Dollase factors, averaged over each reflection's lattice equivalents R h.

    P = mean_R (r^2 cos^2 alpha + sin^2 alpha / r)^(-3/2), cos alpha = (R h)^T G* a / (|R h| |a|),
    ``axis`` a reciprocal-lattice direction (hkl of the texture normal); r = 1: no texture.
    Dollase, J. Appl. Cryst. 19, 267 (1986)."""
    h = np.einsum("kij,mj->kmi", ops, hkl.astype(np.float64))  # (n, P, 3)
    a = np.asarray(axis, np.float64)
    num = np.einsum("kmi,ij,j->km", h, g_star, a)
    hn = np.sqrt(np.einsum("kmi,ij,kmj->km", h, g_star, h))
    an = math.sqrt(a @ g_star @ a)
    c2 = np.clip((num / (hn * an)) ** 2, 0, 1)
    return np.mean((r * r * c2 + (1 - c2) / r) ** -1.5, axis=0)


# --------------------------------------------------------------------------------------------------
# the fit


@dataclass(frozen=True)
class RefinedPhase:
    """One refined phase.

    Attributes
    ----------
    name, formula : str. spacegroup : int.
    cell : (6,) refined lattice parameters (conventional where known) or None; cell_esd : (6,) their esds.
    cell_start : (6,) starting lattice parameters (same setting) or None.
    strain : (k,) refined strain coefficients; strain_esd : (k,).
    scale : float, linear scale (fixed intensities) or 1 (Le Bail); scale_esd : float.
    march_dollase : float, r (1: none); texture_axis : (3,) hkl of the axis or None.
    hkl : (P', 3) reflections inside the range; two_theta : (P',) their K-alpha1 positions (zero
    shift applied, degrees); intensity : (P',) fitted integrated intensities.
    weight : float, share of the calculated intensity (0-1).
    metric : (3, 3) refined reciprocal metric G* (1/Angstrom^2) of the cell the hkl belong to (the phase's
        own basis, e.g. a CIF's cell as read), or None (isotropic refinement without a metric).
    setting : (3, 3) M, rows the conventional a, b, c of ``cell`` in the basis of that cell, or None
        (``cell`` is then of the hkl's own cell); :meth:`indices` gives hkl in the setting of ``cell``.
    """

    name: str
    formula: str
    spacegroup: int
    cell: np.ndarray | None
    cell_esd: np.ndarray | None
    cell_start: np.ndarray | None
    strain: np.ndarray
    strain_esd: np.ndarray
    scale: float
    scale_esd: float
    march_dollase: float
    texture_axis: np.ndarray | None
    hkl: np.ndarray
    two_theta: np.ndarray
    intensity: np.ndarray
    weight: float
    metric: np.ndarray | None = None
    setting: np.ndarray | None = None

    def indices(self, hkl) -> np.ndarray:
        """(P, 3) integer indices ``hkl`` (of the cell they belong to, as :attr:`hkl` and
        :attr:`texture_axis`) as a user reads them: in the setting of :attr:`cell`, h' = M h with
        M = :attr:`setting` (a'_i = sum_j M_ij a_j gives h'_i = g . a'_i = sum_j M_ij h_j for the
        reciprocal vector g of h; unchanged where some h' is not integral, a cell as read that is a
        supercell of the conventional one), then written as the equivalent a crystallographer would
        write (:func:`standard_indices`: 1 1 1 for -1 -1 1 in an orthorhombic cell, 1 1 0 for 2 -1 0
        in a hexagonal one, 1 0 4 of the obverse setting for 1 0 -4 of the reverse one)."""
        h = np.rint(np.asarray(hkl, np.float64)).astype(np.int64).reshape(-1, 3)
        g_star = None if self.metric is None else np.asarray(self.metric, np.float64)
        if self.setting is not None:
            m = np.asarray(self.setting, np.float64)
            t = h @ m.T
            if np.allclose(t, np.rint(t), atol=1e-6):
                h = np.rint(t).astype(np.int64)
                if g_star is not None and _positive_definite(g_star):
                    g_star = np.linalg.inv(m @ np.linalg.inv(g_star) @ m.T)
        return standard_indices(h, g_star, self.spacegroup)

    def reported_lines(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hkl, 2theta, intensity) of the lines as the report and the JSON show them: hkl in the
        setting of :attr:`cell` (:meth:`indices`), the lines of one reflection once (:func:`_distinct_lines`)."""
        return _distinct_lines(self.indices(self.hkl), self.two_theta, self.intensity)


@dataclass(frozen=True)
class Refinement:
    """Result of :func:`refine`.

    Attributes
    ----------
    phases : list of :class:`RefinedPhase`.
    rwp, rexp, gof : float (Rwp, Rexp as fractions; GoF = Rwp / Rexp).
    rwp_background : float, Rwp of the background alone (the figure any phase must beat).
    zero_shift, zero_shift_esd : float, degrees (observed 2theta = calculated + zero_shift).
    fwhm : (2,) w0, w1 (degrees) of H = w0 + w1 tan(theta); fwhm_esd : (2,). eta, eta_esd : float.
    background : (J,) Chebyshev coefficients.
    two_theta, observed, calculated, background_curve : (N,) the fitted points.
    converged : bool; message : str (why not, or the optimiser's message).
    n_points, n_parameters : int. nfev : int, function evaluations.
    """

    phases: list
    rwp: float
    rexp: float
    gof: float
    rwp_background: float
    zero_shift: float
    zero_shift_esd: float
    fwhm: np.ndarray
    fwhm_esd: np.ndarray
    eta: float
    eta_esd: float
    background: np.ndarray
    two_theta: np.ndarray
    observed: np.ndarray
    calculated: np.ndarray
    background_curve: np.ndarray
    converged: bool
    message: str
    n_points: int
    n_parameters: int
    nfev: int
    lines: tuple = field(default=((DEFAULT_WAVELENGTH, 1.0),))

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible summary (no curves); each phase's reflections as the report shows them
        (:meth:`RefinedPhase.reported_lines`)."""
        def arr(x):
            return None if x is None else np.asarray(x).tolist()
        return {"rwp": self.rwp, "rexp": self.rexp, "gof": self.gof, "rwp_background": self.rwp_background,
                "zero_shift": self.zero_shift, "zero_shift_esd": self.zero_shift_esd, "fwhm": arr(self.fwhm),
                "fwhm_esd": arr(self.fwhm_esd), "eta": self.eta, "eta_esd": self.eta_esd,
                "background": arr(self.background), "converged": self.converged, "message": self.message,
                "n_points": self.n_points, "n_parameters": self.n_parameters, "nfev": self.nfev,
                "phases": [{"name": p.name, "formula": p.formula, "spacegroup": p.spacegroup, "cell": arr(p.cell),
                            "cell_esd": arr(p.cell_esd), "cell_start": arr(p.cell_start), "scale": p.scale,
                            "scale_esd": p.scale_esd, "march_dollase": p.march_dollase,
                            "texture_axis": None if p.texture_axis is None else p.indices(p.texture_axis)[0].tolist(),
                            "weight": p.weight,
                            "reflections": [{"hkl": [int(i) for i in h], "two_theta": float(t), "intensity": float(v)}
                                            for h, t, v in zip(*p.reported_lines())]}
                           for p in self.phases]}


def _noise_scale(y: np.ndarray, floor: float) -> float:
    """Counts per unit alpha^-1: Var(y) ~ alpha y, from second differences (Var = 6 alpha y for
    Poisson points; the median of chi^2_1 is 0.455)."""
    d2 = y[:-2] - 2 * y[1:-1] + y[2:]
    base = np.maximum(y[1:-1], 0) + floor
    alpha = float(np.median(d2 ** 2 / (6 * base))) / 0.455
    return alpha if alpha > 0 and math.isfinite(alpha) else float(floor)


def _chebyshev(x: np.ndarray, n: int) -> np.ndarray:
    return np.polynomial.chebyshev.chebvander(x, max(n - 1, 0))[:, :n] if n > 0 else np.zeros((len(x), 0))


@dataclass
class _Setup:
    tt: np.ndarray
    y: np.ndarray
    sw: np.ndarray  # sqrt of the weights
    lines: tuple
    phases: list
    bg: np.ndarray  # (N, J) Chebyshev columns
    free: list  # per phase: free intensities
    po: list  # per phase: texture axis or None
    layout: dict  # name -> slice of the parameter vector

    @cached_property
    def yw(self) -> np.ndarray:
        return self.y * self.sw

    @cached_property
    def background_normal(self) -> tuple:
        """The weighted background columns normalised, their norms, Gram matrix and products with y."""
        bw = self.bg * self.sw[:, None]
        norms = np.sqrt(np.einsum("ij,ij->j", bw, bw))
        norms[norms == 0] = 1.0
        bn = bw / norms
        return bn, norms, bn.T @ bn, bn.T @ self.yw

    @cached_property
    def lam(self) -> np.ndarray:
        return np.array([lam for lam, _ in self.lines], np.float64)

    @cached_property
    def ratio(self) -> np.ndarray:
        return np.array([r for _, r in self.lines], np.float64)


def _positions(q: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    s = lam * np.sqrt(np.maximum(q, 0)) / 2
    ok = s < 1
    return np.where(ok, np.degrees(2 * np.arcsin(np.minimum(s, 1))), np.nan), ok


def _columns(setup: _Setup, x: np.ndarray) -> tuple[np.ndarray, list]:
    """Design matrix (N, C) of the linear parameters at nonlinear parameters x, and per phase the
    column range and per-reflection (centre 2theta at line 1, LP x P, reflection index) used."""
    from synthxrd._refine_kernels import phase_column, profile_block
    from synthxrd.simulate.physics import lorentz_polarization

    lay = setup.layout
    zero = x[lay["zero"]][0]
    widths_p = x[lay["fwhm"]]
    eta = x[lay["eta"]][0]
    tt = setup.tt
    blocks = []
    info = []
    for k, phase in enumerate(setup.phases):
        p = x[lay[f"cell{k}"]]
        q = phase.q0 + phase.dq @ p
        factor = np.ones(len(q))
        if setup.po[k] is not None:
            r = x[lay[f"po{k}"]][0]
            factor = march_dollase(phase.hkl, phase.metric(p), phase.ops, setup.po[k], r)
        free = setup.free[k]
        if not free:  # one compiled pass: positions, widths, LP and profiles (the numpy path below is its twin)
            blocks.append(phase_column(tt, q, phase.f2 * factor, setup.lam, setup.ratio, float(zero),
                                       np.ascontiguousarray(widths_p, np.float64), float(eta), WINDOW_FWHM)[:, None])
            info.append((q, factor))
            continue
        ncol = len(q)
        centres, widths, amps, cols = [], [], [], []
        for lam, ratio in setup.lines:
            centre, ok = _positions(q, lam)
            centre = centre + zero
            theta = np.radians(centre) / 2
            fw = _fwhm(widths_p, theta)
            ids = np.flatnonzero(ok & (centre + WINDOW_FWHM * fw >= tt[0]) & (centre - WINDOW_FWHM * fw <= tt[-1]))
            amp = ratio * lorentz_polarization(theta[ids]) * factor[ids]
            centres.append(centre[ids])
            widths.append(fw[ids])
            amps.append(amp if free else amp * phase.f2[ids])
            cols.append(ids if free else np.zeros(len(ids), np.int64))
        block = profile_block(tt, np.concatenate(centres), np.concatenate(widths), np.concatenate(amps),
                              np.concatenate(cols).astype(np.int64), float(eta), WINDOW_FWHM, ncol).T
        blocks.append(block)
        info.append((q, factor))
    return np.concatenate(blocks + [setup.bg], axis=1), info


def _solve_linear(setup: _Setup, a: np.ndarray) -> np.ndarray:
    """Non-negative phase scales (or intensities) and free-signed background coefficients.

    The weighted normal equations first (fast); where a phase term comes out negative, NNLS on the
    weighted design with the background columns doubled (+ and -)."""
    from scipy.optimize import nnls

    nb = setup.bg.shape[1]
    yw = setup.yw
    if nb:
        # the background's weighted, normalised columns and their products are the same at every evaluation
        bn, bnorms, gram_bb, rhs_b = setup.background_normal
        npc = a.shape[1] - nb
        pw = a[:, :npc] * setup.sw[:, None]
        pnorms = np.sqrt(np.einsum("ij,ij->j", pw, pw))
        pnorms[pnorms == 0] = 1.0
        pn = pw / pnorms
        # the normal matrix filled in place (np.block costs more than the products at this size)
        gram = np.empty((npc + nb, npc + nb))
        gram[:npc, :npc] = pn.T @ pn
        gram[:npc, npc:] = cross = pn.T @ bn
        gram[npc:, :npc] = cross.T
        gram[npc:, npc:] = gram_bb
        gram.flat[::npc + nb + 1] += 1e-12 * np.trace(gram)
        rhs = np.empty(npc + nb)
        rhs[:npc] = pn.T @ yw
        rhs[npc:] = rhs_b
        norms = np.concatenate([pnorms, bnorms])
        try:
            sol = np.linalg.solve(gram, rhs) / norms
        except np.linalg.LinAlgError:
            sol = None
        if sol is not None and np.all(sol[:-nb] >= 0):
            return sol
        an = np.concatenate([pn, bn, -bn], axis=1)
        norms = np.concatenate([norms, bnorms])
    else:
        aw = a * setup.sw[:, None]
        norms = np.sqrt(np.einsum("ij,ij->j", aw, aw))
        norms[norms == 0] = 1.0
        an = aw / norms
    try:
        sol, _ = nnls(an, yw, maxiter=50 * an.shape[1])
    except RuntimeError:
        sol = np.clip(np.linalg.lstsq(an, yw, rcond=None)[0], 0, None)
    sol = sol / norms
    if nb:
        sol = np.concatenate([sol[:-2 * nb], sol[-2 * nb:-nb] - sol[-nb:]])
    return sol


def _residual(setup: _Setup, x: np.ndarray) -> np.ndarray:
    a, _ = _columns(setup, x)
    coef = _solve_linear(setup, a)
    return (setup.y - a @ coef) * setup.sw


def refine(two_theta, intensities, phases, *, wavelength: float | str = DEFAULT_WAVELENGTH, kalpha2: bool | None = None,
           background: int = 6, zero_shift: bool = True, zero: float = 0.0,
           fwhm: tuple[float, ...] | None = None, caglioti: bool = False, refine_profile: bool = True,
           eta: float = 0.5,
           cell_bound: float = DEFAULT_CELL_BOUND,
           preferred_orientation: bool | np.ndarray | list = False, free_intensities: bool = False,
           refine_cell: bool = True, max_nfev: int | None = None, weights: np.ndarray | None = None,
           two_theta_range: tuple[float, float] | None = None, tolerance: float = 1e-8,
           prescan: bool = True) -> Refinement:
    """Fit phases to a measured pattern (see the module docstring for the model).

    Parameters
    ----------
    two_theta : (M,) degrees, strictly increasing. intensities : (M,) any units (counts best: Rexp, GoF).
    phases : a :class:`PhaseModel` or a list of them (:func:`phase_from_library`,
        :func:`phase_from_crystal`, :func:`phase_from_cell`).
    wavelength : Angstrom or a line name; a K-alpha name or average adds K-alpha2 (:func:`kalpha_lines`)
        unless ``kalpha2=False``; ``kalpha2=True`` forces the doublet of the nearest anode.
    background : number of Chebyshev terms (0: none, for a background-subtracted pattern).
    zero_shift : refine the zero shift; zero : its starting value (degrees).
    fwhm : starting (w0, w1) degrees of H = w0 + w1 tan(theta) (default: 0.1, 0.02), or (U, V, W) degrees^2
        of the Caglioti H^2 = U tan^2 + V tan + W.
    caglioti : Caglioti widths; without ``fwhm`` the fit is made with w0 + w1 tan(theta) first and
        continued with the Caglioti U, V, W that give the same widths (w1^2, 2 w0 w1, w0^2).
    refine_profile : refine w0, w1 and eta (else fixed). eta : starting Lorentz fraction.
    cell_bound : each strain component is bounded so that d moves by at most this fraction.
    preferred_orientation : False; True (try the texture normals of the three largest-d reflections
        of each phase and keep the best fit); or an (3,) hkl axis (same for every phase).
    free_intensities : every phase's intensities free (Le Bail / Pawley mode).
    refine_cell : refine the cells (else fixed).
    max_nfev : function evaluations allowed (default 100 x parameters).
    weights : (M,) explicit weights 1/sigma^2 (default Poisson-like, module docstring).
    two_theta_range : fit only inside (lo, hi) degrees.
    tolerance : ``ftol``, ``xtol`` and ``gtol`` of ``scipy.optimize.least_squares``.
    prescan : first scan an isotropic scale of each phase over the bounds (steps of
        :data:`PRESCAN_STEP` in d, profile fixed) and start the fit from the best: a local least-squares
        fit only finds peaks that already overlap (a 2 % cell error moves a line at 90 degrees by 1.5).

    Returns
    -------
    :class:`Refinement` (``converged`` False, with a message, where the optimiser stopped at its
    evaluation limit or a cell component sits on its bound).

    Raises
    ------
    RefineError
        NaN or infinite values, fewer than 20 points, no reflection of any phase inside the range,
        a pattern without positive intensity.
    """
    from scipy.optimize import least_squares

    tt = np.asarray(two_theta, np.float64)
    y = np.asarray(intensities, np.float64)
    if tt.ndim != 1 or y.shape != tt.shape:
        raise RefineError(f"refine: two_theta and intensities must be (M,) arrays of one length, "
                          f"got {tt.shape} and {y.shape}")
    if not (np.all(np.isfinite(tt)) and np.all(np.isfinite(y))):
        raise RefineError("refine: two_theta and intensities must be finite (found NaN or inf)")
    if two_theta_range is not None:
        keep = (tt >= two_theta_range[0]) & (tt <= two_theta_range[1])
        tt, y = tt[keep], y[keep]
    if len(tt) < 20 or not np.all(np.diff(tt) > 0):
        raise RefineError(f"refine: need at least 20 points with strictly increasing 2theta, got {len(tt)}")
    if not np.max(y) > 0:
        raise RefineError("refine: the pattern has no positive intensity")
    phases = [phases] if isinstance(phases, PhaseModel) else list(phases)
    if not phases:
        raise RefineError("refine: no phase given")
    lines = kalpha_lines(wavelength)
    if kalpha2 is False:
        lines = lines[:1]
    elif kalpha2 is True and len(lines) == 1:
        lines = min((kalpha_lines(n + "Ka") for n in _anodes()), key=lambda ls: abs(ls[0][0] - lines[0][0]))
    lam1 = lines[0][0]
    for ph in phases:
        centre, ok = _positions(ph.q0, lam1)
        if not np.any(ok & (centre >= tt[0]) & (centre <= tt[-1])):
            raise RefineError(f"refine: phase {ph.name} has no reflection between {tt[0]:g} and {tt[-1]:g} degrees "
                              f"at {lam1:g} Angstrom")
    if free_intensities:
        phases = [replace(p, f2=None) for p in phases]
    elif any(p.f2 is None for p in phases):
        free_intensities = True
    free = [p.f2 is None for p in phases]
    # weights: Poisson-like, in units of the pattern
    ymax = float(np.max(y))
    floor = 1e-3 * ymax
    if weights is None:
        alpha = _noise_scale(y, floor)
        w = 1.0 / (alpha * (np.maximum(y, 0) + floor))
    else:
        w = np.asarray(weights, np.float64)
        if w.shape != np.asarray(two_theta).shape or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise RefineError("refine: weights must be (M,) finite and non-negative")
        if two_theta_range is not None:
            w = w[keep]
    x_axis = 2 * (tt - tt[0]) / (tt[-1] - tt[0]) - 1
    bg = _chebyshev(x_axis, int(background))
    # texture axes
    axes_to_try: list[list] = [[None] * len(phases)]
    if preferred_orientation is not False and preferred_orientation is not None:
        if preferred_orientation is True:
            options = []
            for ph in phases:
                if ph.g_star is None:
                    options.append([None])
                    continue
                order = np.argsort(-1 / ph.q0, kind="stable")[:3]
                options.append([ph.hkl[i] for i in order])
            axes_to_try = [list(c) for c in itertools.product(*options)]
        else:
            axis = np.asarray(preferred_orientation, np.float64)
            if axis.shape != (3,) or not np.any(axis):
                raise ConfigError(f"preferred_orientation: expected True or an (h, k, l) axis, "
                                  f"got {preferred_orientation!r}")
            axes_to_try = [[axis if ph.g_star is not None else None for ph in phases]]
    two_stage = caglioti and fwhm is None and refine_profile  # w0 + w1 tan first, then Caglioti from it
    if fwhm is None:
        fwhm = (0.1, 0.02)
    if len(fwhm) not in (2, 3):
        raise ConfigError(f"fwhm: expected (w0, w1) or Caglioti (U, V, W), got {fwhm!r}")
    original = phases
    if prescan and refine_cell:
        phases, edge = _prescan(tt, y, w, lines, phases, bg, free, fwhm, eta, cell_bound)
    else:
        edge = []
    best = None
    for axes in axes_to_try:
        result = _fit(tt, y, w, lines, phases, bg, free, list(axes), zero_shift=zero_shift, zero=zero, fwhm=fwhm,
                      refine_profile=refine_profile, eta=eta, cell_bound=cell_bound, refine_cell=refine_cell,
                      max_nfev=max_nfev, least_squares=least_squares, tolerance=tolerance)
        if two_stage:  # (w0 + w1 t)^2 = w1^2 t^2 + 2 w0 w1 t + w0^2: the same widths as a Caglioti start
            first = result
            w0, w1 = result.fwhm
            moved = [replace(ph, q0=ph.q0 + ph.dq @ rp.strain, g_star=ph.metric(rp.strain),
                             conventional_map=None if ph.g_star is None else _conventional_map_cached(ph))
                     for ph, rp in zip(phases, result.phases)]
            result = _fit(tt, y, w, lines, moved, bg, free, list(axes), zero_shift=zero_shift,
                          zero=result.zero_shift, fwhm=(w1 * w1, 2 * w0 * w1, w0 * w0), refine_profile=True,
                          eta=result.eta, cell_bound=cell_bound, refine_cell=refine_cell, max_nfev=max_nfev,
                          least_squares=least_squares, tolerance=tolerance)
            # strains relative to the phases as given (the metric is linear in them)
            result = replace(result, phases=[replace(rp, strain=rp.strain + fp.strain)
                                             for rp, fp in zip(result.phases, first.phases)])
        if best is None or result.rwp < best.rwp:
            best = result
    starts = [ph.cell(np.zeros(ph.n_cell)) for ph in original]  # the cell given, before the pre-scan
    best = replace(best, phases=[replace(p, cell_start=c) for p, c in zip(best.phases, starts)])
    if edge:
        best = replace(best, converged=False, message=f"not converged: the best isotropic scale of {', '.join(edge)} "
                       f"lies at the bound (+-{cell_bound:.0%} in d): the cell is further off")
    elif best.converged and best.rwp > NOTHING_EXPLAINED * best.rwp_background:
        best = replace(best, converged=False, message=f"not converged: Rwp {best.rwp:.3f} is no better than the "
                       f"background alone ({best.rwp_background:.3f}); the phase(s) explain nothing")
    return best


def _prescan(tt, y, w, lines, phases, bg, free, fwhm, eta, cell_bound) -> tuple[list, list]:
    """Each phase scaled isotropically to the best of a grid of scales within the bound (the others
    fixed), and the names of those whose best scale is the grid's first or last."""
    widths = list(fwhm)
    if len(widths) == 2:
        widths[0] = max(widths[0], 0.05)  # broad enough to see lines off by a step
    nw = len(widths)
    layout = {"zero": slice(0, 1), "fwhm": slice(1, 1 + nw), "eta": slice(1 + nw, 2 + nw)}
    n = len(phases)
    start = 2 + nw
    for k in range(n):
        layout[f"cell{k}"] = slice(start, start + phases[k].n_cell)
        start += phases[k].n_cell
    x = np.concatenate([[0.0], widths, [eta], np.zeros(start - 2 - nw)])
    phases = list(phases)
    n_steps = int(2 * cell_bound / PRESCAN_STEP) + 1
    edge = []
    grid = np.linspace(1 - cell_bound, 1 + cell_bound, n_steps)
    for k in range(n):
        best, best_s = np.inf, 1.0
        for s in grid:
            trial = phases[:k] + [scaled(phases[k], float(s))] + phases[k + 1:]
            setup = _Setup(tt, y, np.sqrt(w), lines, trial, bg, free, [None] * n, layout)
            cost = float(np.sum(_residual(setup, x) ** 2))
            if cost < best:
                best, best_s = cost, float(s)
        if best_s in (grid[0], grid[-1]):
            edge.append(phases[k].name)
        phases[k] = scaled(phases[k], best_s)
    return phases, edge


def _anodes():
    from synthxrd.io.wavelength import anodes

    return anodes()


def _fit(tt, y, w, lines, phases, bg, free, po, *, zero_shift, zero, fwhm, refine_profile, eta, cell_bound, refine_cell,
         max_nfev, least_squares, tolerance) -> Refinement:
    layout: dict[str, slice] = {}
    x0, lo, hi, names = [], [], [], []

    def add(name, values, lower, upper, labels):
        start = len(x0)
        x0.extend(values)
        lo.extend(lower)
        hi.extend(upper)
        names.extend(labels)
        layout[name] = slice(start, len(x0))

    add("zero", [float(zero)], [ZERO_BOUNDS[0]], [ZERO_BOUNDS[1]], ["zero"])
    if len(fwhm) == 2:
        add("fwhm", list(fwhm), [W0_BOUNDS[0], W1_BOUNDS[0]], [W0_BOUNDS[1], W1_BOUNDS[1]], ["w0", "w1"])
    else:
        add("fwhm", list(fwhm), [0.0, -1.0, 1e-5], [2.0, 1.0, 2.0], ["U", "V", "W"])
    add("eta", [eta], [0.0], [1.0], ["eta"])
    # a strain coefficient p changes 1/d^2 by up to p * max|dq/q0|: bound so that d moves <= cell_bound
    qb = 1.0 / (1 - cell_bound) ** 2 - 1
    for k, ph in enumerate(phases):
        rel = np.max(np.abs(ph.dq / ph.q0[:, None]), axis=0)
        bound = qb / np.where(rel > 0, rel, 1.0)
        add(f"cell{k}", [0.0] * ph.n_cell, list(-bound), list(bound),
            [f"{ph.name}:strain{j}" for j in range(ph.n_cell)])
        if po[k] is not None:
            add(f"po{k}", [1.0], [MD_BOUNDS[0]], [MD_BOUNDS[1]], [f"{ph.name}:r"])
    x0, lo, hi = np.array(x0, float), np.array(lo, float), np.array(hi, float)
    x0 = np.clip(x0, lo, hi)
    fixed = np.zeros(len(x0), bool)
    if not zero_shift:
        fixed[layout["zero"]] = True
    if not refine_profile:
        fixed[layout["fwhm"]] = True
        fixed[layout["eta"]] = True
    if not refine_cell:
        for k in range(len(phases)):
            fixed[layout[f"cell{k}"]] = True
    setup = _Setup(tt, y, np.sqrt(w), lines, phases, bg, free, po, layout)
    var = np.flatnonzero(~fixed)

    def full(v):
        x = x0.copy()
        x[var] = v
        return x

    def fun(v):
        return _residual(setup, full(v))

    nfev_cap = max_nfev if max_nfev is not None else 100 * max(len(var), 1)
    if len(var):
        sol = least_squares(fun, x0[var], bounds=(lo[var], hi[var]), method="trf", x_scale="jac",
                            max_nfev=nfev_cap, xtol=tolerance, ftol=tolerance, gtol=tolerance)
        x = full(sol.x)
        jac, nfev, status, message = sol.jac, int(sol.nfev), int(sol.status), str(sol.message)
    else:
        x, jac, nfev, status, message = x0, np.zeros((len(tt), 0)), 1, 1, "nothing to refine"
    a, info = _columns(setup, x)
    coef = _solve_linear(setup, a)
    calc = a @ coef
    n_lin = int(np.sum(np.abs(coef) > 0))
    n_par = len(var) + n_lin
    sw = setup.sw
    resid = (y - calc) * sw
    denom = float(np.sum((y * sw) ** 2))
    chi2 = float(resid @ resid)
    rwp = math.sqrt(chi2 / denom)
    dof = max(len(y) - n_par, 1)
    rexp = math.sqrt(dof / denom)
    bgcurve = bg @ coef[a.shape[1] - bg.shape[1]:] if bg.shape[1] else np.zeros(len(y))
    # background alone
    if bg.shape[1]:
        bw = bg * sw[:, None]
        cb = np.linalg.lstsq(bw, y * sw, rcond=None)[0]
        rwp_bg = math.sqrt(float(np.sum((y * sw - bw @ cb) ** 2)) / denom)
    else:
        rwp_bg = 1.0
    # esds: nonlinear from the Jacobian of the projected residual, linear from the design
    esd = np.full(len(x0), np.nan)
    scale_chi = chi2 / dof
    if len(var) and jac.size:
        try:
            cov = np.linalg.pinv(jac.T @ jac) * scale_chi
            esd[var] = np.sqrt(np.clip(np.diag(cov), 0, None))
        except np.linalg.LinAlgError:
            cov = None
    else:
        cov = None
    aw = a * sw[:, None]
    try:
        lin_cov = np.linalg.pinv(aw.T @ aw) * scale_chi
        lin_esd = np.sqrt(np.clip(np.diag(lin_cov), 0, None))
    except np.linalg.LinAlgError:
        lin_esd = np.full(a.shape[1], np.nan)
    at_bound = [names[i] for i in var if names[i].split(":")[-1].startswith("strain")
                and (x[i] - lo[i] < 1e-6 * (hi[i] - lo[i]) or hi[i] - x[i] < 1e-6 * (hi[i] - lo[i]))]
    converged = status > 0 and not at_bound
    if status == 0:
        message = f"not converged: stopped after {nfev} function evaluations"
    elif at_bound:
        message = f"not converged: cell parameter(s) {', '.join(at_bound)} at the bound (+-{cell_bound:.0%} in d)"
    # phases
    out_phases = []
    col = 0
    total = np.sum(calc - bgcurve) or 1.0
    var_pos = {int(i): j for j, i in enumerate(var)}
    for k, ph in enumerate(phases):
        ncol = len(ph.q0) if free[k] else 1
        c = coef[col:col + ncol]
        contribution = a[:, col:col + ncol] @ c
        sl = layout[f"cell{k}"]
        p = x[sl]
        p_esd = esd[sl]
        cell = ph.cell(p)
        cell_start = ph.cell(np.zeros_like(p))
        cell_esd = None
        if cell is not None:
            jc = np.zeros((6, len(p)))
            for j in range(len(p)):
                step = np.zeros(len(p))
                step[j] = 1e-6
                jc[:, j] = (ph.cell(p + step) - ph.cell(p - step)) / 2e-6
            idx = [var_pos[i] for i in range(sl.start, sl.stop) if i in var_pos]
            if cov is not None and len(idx) == len(p):
                cc = cov[np.ix_(idx, idx)]
                cell_esd = np.sqrt(np.clip(np.diag(jc @ cc @ jc.T), 0, None))
            else:
                cell_esd = np.zeros(6)
        q, factor = info[k]
        centre, ok = _positions(q, lines[0][0])
        centre = centre + x[layout["zero"]][0]
        inside = ok & (centre >= tt[0]) & (centre <= tt[-1])
        from synthxrd.simulate.physics import lorentz_polarization

        lp = lorentz_polarization(np.radians(np.where(inside, centre, 90.0)) / 2)
        if free[k]:
            integ = c * lp * factor
        else:
            integ = c[0] * ph.f2 * lp * factor
        r = x[layout[f"po{k}"]][0] if po[k] is not None else 1.0
        out_phases.append(RefinedPhase(
            ph.name, ph.formula, ph.spacegroup, cell, cell_esd, cell_start, p, p_esd,
            float(c[0]) if not free[k] else 1.0, float(lin_esd[col]) if not free[k] else 0.0, float(r),
            None if po[k] is None else np.asarray(po[k]), ph.hkl[inside], centre[inside], integ[inside],
            float(np.sum(contribution) / total), ph.metric(p),
            None if ph.g_star is None else _conventional_map_cached(ph)))
        col += ncol
    return Refinement(out_phases, rwp, rexp, rwp / rexp, rwp_bg, float(x[layout["zero"]][0]),
                      float(esd[layout["zero"]][0]) if zero_shift else 0.0, x[layout["fwhm"]].copy(),
                      esd[layout["fwhm"]].copy(), float(x[layout["eta"]][0]), float(esd[layout["eta"]][0]),
                      coef[a.shape[1] - bg.shape[1]:].copy(), tt, y, calc, bgcurve, bool(converged), message,
                      len(y), n_par, nfev, tuple(lines))


# --------------------------------------------------------------------------------------------------
# helpers of the re-ranking (synthxrd.match.rerank)


def scaled(phase: PhaseModel, scale: float) -> PhaseModel:
    """The phase with every d multiplied by ``scale`` (an isotropic start, e.g. the search's fitted scale)."""
    s2 = 1.0 / scale ** 2
    g = None if phase.g_star is None else phase.g_star * s2
    basis = None if phase.basis is None else phase.basis * s2
    conv = None if phase.conventional is None else np.concatenate([phase.conventional[:3] * scale,
                                                                   phase.conventional[3:]])
    return replace(phase, q0=phase.q0 * s2, dq=phase.dq * s2, g_star=g, basis=basis, conventional=conv,
                   conventional_map=None if g is None else _conventional_map_cached(phase))


def _value_esd(value: float, esd: float | None) -> str:
    """``4.59371(2)``: the value with its esd in units of the last digit shown (two significant digits at
    most); without an esd where it is none, or below 0.5e-8 (a parameter that symmetry fixes, such as
    the 120 degrees of a hexagonal gamma, gets an esd of rounding noise from the numerical derivatives)."""
    if esd is None or not np.isfinite(esd) or esd < 0.5e-8:
        return f"{value:.5f}"
    exponent = math.floor(math.log10(esd))
    digits = max(0, min(8, -int(exponent) + (1 if esd / 10 ** exponent < 2 else 0)))
    return f"{value:.{digits}f}({int(round(esd * 10 ** digits))})"


def report(result: Refinement, *, reflections: int = 0) -> str:
    """A Rietveld program's summary of a refinement: figures of merit, global and per-phase parameters
    with esds in parentheses (in units of the last digit), and the ``reflections`` strongest
    reflections of each phase (hkl in the setting of the cell shown, :meth:`RefinedPhase.indices`;
    2theta, intensity)."""
    lines = [f"Rwp {100 * result.rwp:.2f} %   Rexp {100 * result.rexp:.2f} %   GoF {result.gof:.2f}   "
             f"(background alone: Rwp {100 * result.rwp_background:.2f} %)",
             f"converged: {'yes' if result.converged else 'NO'} ({result.message}); {result.n_points} points, "
             f"{result.n_parameters} parameters, {result.nfev} evaluations",
             f"wavelength {' + '.join(f'{lam:.5f} Å x {r:g}' for lam, r in result.lines)}",
             f"zero shift {_value_esd(result.zero_shift, result.zero_shift_esd)} °   "
             + (f"FWHM = {_value_esd(result.fwhm[0], result.fwhm_esd[0])} + "
                f"{_value_esd(result.fwhm[1], result.fwhm_esd[1])} tan θ (°)   " if len(result.fwhm) == 2 else
                "FWHM² = " + " ".join(f"{n} {_value_esd(v, e)}" for n, v, e in
                                      zip(("U", "V", "W"), result.fwhm, result.fwhm_esd)) + " (°², Caglioti)   ")
             + f"η {_value_esd(result.eta, result.eta_esd)}"]
    for p in result.phases:
        lines.append(f"phase {p.name} {p.formula} SG {p.spacegroup}: weight {p.weight:.3f}, "
                     f"{len(p.hkl)} reflections in range")
        if p.cell is not None:
            esd = p.cell_esd if p.cell_esd is not None else [None] * 6
            names = ("a", "b", "c", "alpha", "beta", "gamma")
            lines.append("  cell  " + "  ".join(f"{n} {_value_esd(v, e)}" for n, v, e in zip(names, p.cell, esd)))
            if p.cell_start is not None:
                lines.append("  start " + "  ".join(f"{n} {v:.5f}" for n, v in zip(names, p.cell_start)))
        if p.texture_axis is not None:
            axis = " ".join(str(int(i)) for i in p.indices(p.texture_axis)[0])
            lines.append(f"  March-Dollase r {p.march_dollase:.4f} along ({axis})")
        if reflections and len(p.hkl):
            hkl, two_theta, intensity = p.reported_lines()
            top = np.sort(np.argsort(-intensity, kind="stable")[:reflections])
            lines.append(f"  {'h':>4}{'k':>4}{'l':>4}{'2theta':>10}{'intensity':>12}")
            peak = float(np.max(intensity)) or 1.0
            for i in top:
                h, k, l = (int(v) for v in hkl[i])
                lines.append(f"  {h:>4}{k:>4}{l:>4}{two_theta[i]:>10.3f}{100 * intensity[i] / peak:>12.1f}")
    return "\n".join(lines)


def _distinct_lines(hkl: np.ndarray, two_theta: np.ndarray, intensity: np.ndarray):
    """The lines of a phase with the same shown indices at the same 2theta (within 1e-4 degrees) as
    one, intensities summed: a library entry whose cell as read breaks the symmetry by rounding lists
    the equivalents of one reflection apart (100, 010 and 001 of a primitive fcc cell, all 1 1 1)."""
    keys: dict[tuple, int] = {}
    rows, total = [], []
    for h, t, v in zip(hkl.tolist(), two_theta.tolist(), intensity.tolist()):
        key = (*h, round(t, 4))
        if key in keys:
            total[keys[key]] += v
            continue
        keys[key] = len(rows)
        rows.append((h, t))
        total.append(v)
    return (np.array([r[0] for r in rows], np.int64).reshape(-1, 3), np.array([r[1] for r in rows]),
            np.array(total))


# --------------------------------------------------------------------------------------------------
# the refined phase as a CIF

#: spglib's tolerance (Angstrom) when the symmetry of a CIF phase's refined structure is written
#: (the one :func:`phase_from_crystal` uses to find the space group).
CIF_SYMPREC = 0.1


def _cif_comment(text: str) -> list[str]:
    return ["# " + line if line else "#" for line in text.splitlines()]


def _cif_name(name: str) -> str:
    """A CIF data block name: no white space, ASCII."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name) or "phase"


def _cif_fit_items(result: Refinement) -> list[str]:
    """pdCIF items of the fit's figures of merit (Rwp, Rexp as fractions, GoF)."""
    return [f"_pd_proc_ls_prof_wR_factor {result.rwp:.5f}", f"_pd_proc_ls_prof_wR_expected {result.rexp:.5f}",
            f"_refine_ls_goodness_of_fit_all {result.gof:.3f}"]


def refined_cif(result: Refinement, phase: PhaseModel, *, index: int = 0, crystal=None, source: str = "",
                pattern: str = "") -> str:
    """The ``index``-th phase of ``result`` as a CIF with its refined cell.

    Parameters
    ----------
    result : the refinement; its phase ``index`` was fitted from ``phase``.
    phase : a :class:`PhaseModel` of the refined phase (e.g. the one given to :func:`refine`): it tells
        whether the refined cell is in the conventional setting.
    crystal : the structure the phase was made from (``Crystal``, pymatgen ``Structure``, ASE ``Atoms``,
        CIF path), or None (a library entry: no atoms).
    source : what the phase is (a library id with its database reference, a CIF path), for the header.
    pattern : the measured pattern's name, for the header.

    Returns
    -------
    str, the CIF. With ``crystal``: its atoms (fractional coordinates unchanged) in the refined cell,
    written by pymatgen's ``CifWriter`` in the space group spglib finds at :data:`CIF_SYMPREC`
    (conventional standard setting; P1 if spglib fails). Without: the refined cell, the space group
    (number, Hermann-Mauguin symbol, operations from gemmi's table in its standard setting, the setting
    of the library's conventional cell) and no ``_atom_site`` loop; a comment names the entry whose
    atoms these are. If the refined cell is not in a known conventional setting (the map from the
    library's cell as read was not found), the cell of that setting is written with no symmetry and
    the comment says so. The header comments and the pdCIF items give Rwp, Rexp, GoF and zero shift.

    Raises
    ------
    RefineError
        When the phase has no refined cell (no metric and no conventional cell).
    """
    from synthxrd import __version__

    rp = result.phases[index]
    what = ", ".join(([rp.formula] if rp.formula else []) + [f"space group {rp.spacegroup}"])
    head = [f"synthxrd {__version__}: phase {rp.name} ({what}) with its refined cell",
            f"source: {source or rp.name}"]
    if pattern:
        head.append(f"fitted to: {pattern}")
    converged = "yes" if result.converged else f"NO ({result.message})"
    head.append(f"Rwp {100 * result.rwp:.2f} %, Rexp {100 * result.rexp:.2f} %, GoF {result.gof:.2f}, zero shift "
                f"{result.zero_shift:.4f} deg, converged: {converged}")
    fit_items = _cif_fit_items(result)
    if crystal is not None:
        return _crystal_cif(result, rp, phase, crystal, head, fit_items)
    if rp.cell is None:
        raise RefineError(f"phase {rp.name}: no refined cell to write")
    conventional = phase.g_star is None or _conventional_map_cached(phase) is not None
    if phase.f2 is None:
        head.append("No atomic positions: a Le Bail fit of a cell (intensities free, no atoms).")
    else:
        head.append("No atomic positions: the reference library stores reflections (d, |F|^2 m, hkl), not atoms.")
        head.append(f"The atoms are those of the source entry {source or rp.name}; put them in this cell.")
    if not conventional:
        head.append("The cell is that of the source CIF as read (its conventional setting was not found), so no")
        head.append("symmetry is written: read the space group above with the source entry's setting.")
    lines = _cif_comment("\n".join(head))
    lines += [f"data_{_cif_name(rp.name)}_refined", f"_audit_creation_method 'synthxrd {__version__} refine'"]
    if rp.formula:
        lines.append(f"_chemical_formula_sum '{_formula_sum(rp.formula)}'")
    names = ("_cell_length_a", "_cell_length_b", "_cell_length_c", "_cell_angle_alpha", "_cell_angle_beta",
             "_cell_angle_gamma")
    esd = rp.cell_esd if rp.cell_esd is not None and conventional else [None] * 6
    lines += [f"{n} {_value_esd(float(v), None if e is None else float(e))}" for n, v, e in zip(names, rp.cell, esd)]
    lines.append(f"_cell_volume {_cell_volume(rp.cell):.4f}")
    if conventional and 1 <= rp.spacegroup <= N_SPACEGROUPS:
        import gemmi

        sg = gemmi.find_spacegroup_by_number(int(rp.spacegroup))
        lines += [f"_space_group_IT_number {rp.spacegroup}", f"_symmetry_Int_Tables_number {rp.spacegroup}",
                  f"_space_group_name_H-M_alt '{sg.xhm()}'", f"_symmetry_space_group_name_H-M '{sg.xhm()}'",
                  "loop_", "_space_group_symop_operation_xyz"]
        lines += [f"'{op.triplet()}'" for op in sg.operations()]
    lines += fit_items
    return "\n".join(lines) + "\n"


def _formula_sum(formula: str) -> str:
    """``"PbSO4"`` -> ``"Pb S O4"`` (the CIF's ``_chemical_formula_sum``)."""
    parts = re.findall(r"([A-Z][a-z]?)(\d*\.?\d*)", formula)
    return " ".join(f"{e}{n if n not in ('', '1') else ''}" for e, n in parts) or formula


def _cell_volume(cell) -> float:
    a, b, c = cell[:3]
    ca, cb, cg = np.cos(np.radians(cell[3:]))
    return float(a * b * c * math.sqrt(max(1 - ca ** 2 - cb ** 2 - cg ** 2 + 2 * ca * cb * cg, 0.0)))


def _crystal_cif(result: Refinement, rp: RefinedPhase, phase: PhaseModel, crystal, head: list, fit_items: list) -> str:
    import warnings

    from pymatgen.core import Element, Lattice, Structure
    from pymatgen.io.cif import CifWriter

    from synthxrd.structure import to_crystal

    crystal = to_crystal(crystal)
    g = rp.metric
    own = lattice_parameters_of_metric(np.linalg.inv(crystal.lattice @ crystal.lattice.T))
    refined = None if g is None else lattice_parameters_of_metric(g)
    if refined is None or np.any(np.abs(refined[:3] / own[:3] - 1) > 0.3) or np.any(np.abs(refined[3:] - own[3:]) > 10):
        raise RefineError(f"phase {rp.name}: its refined cell is not one of the crystal given (the phase was not made "
                          "from this crystal)")
    lattice = Lattice.from_parameters(*lattice_parameters_of_metric(g)).matrix
    species = [int(z) if o == 1.0 else {Element.from_Z(int(z)): float(o)}
               for z, o in zip(crystal.numbers, crystal.occupancies)]
    structure = Structure(Lattice(lattice), species, crystal.frac_coords)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            text = str(CifWriter(structure, symprec=CIF_SYMPREC))
            head.append(f"atoms of the source structure in the refined cell; symmetry found by spglib at "
                        f"symprec {CIF_SYMPREC} Angstrom (conventional standard setting)")
        except Exception:  # noqa: BLE001 - spglib finds no symmetry: the structure as it is, in P1
            text = str(CifWriter(structure))
            head.append("atoms of the source structure in the refined cell (P1, as given)")
    return "\n".join(_cif_comment("\n".join(head))) + "\n" + text.rstrip("\n") + "\n" + "\n".join(fit_items) + "\n"
