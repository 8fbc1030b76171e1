"""Re-ranking of search-match candidates by whole-pattern refinement (:mod:`synthxrd.refine`).

The search ranks structures after an isotropic change of the cell; here the best candidates are fitted
to the measured pattern (cell within its crystal system, zero shift, profile, background) and ordered
by the fit's Rwp (:func:`figure_of_merit`). Entries of the best candidate's structure type that the
search missed (an anisotropically strained phase) are found through their intensities and refined
too (:func:`refine_candidates`). docs/refine.md has the measurements behind every setting.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

import numpy as np

from synthxrd.errors import ConfigError, StructureError
from synthxrd.simulate.common import DEFAULT_WAVELENGTH
from synthxrd.refine import (
    DEFAULT_CELL_BOUND,
    PhaseModel,
    Refinement,
    RefineError,
    _conventional_map_cached,
    metric_from_reflections,
    phase_from_library,
    refine,
    scaled,
)

__all__ = ["RerankSettings", "rerank", "refine_candidates", "figure_of_merit", "anonymous_formula"]


@dataclass(frozen=True)
class RerankSettings:
    """How search-match candidates are refined and re-ranked (chosen on rruff_dev; docs/refine.md).

    Attributes
    ----------
    n_candidates : the best matches of the search that are refined.
    max_points : the pattern is binned (adjacent points summed) to at most this many points.
    background : Chebyshev terms of the background (the raw pattern is fitted).
    max_nfev : function evaluations per candidate (scipy counts those of the numerical Jacobian apart).
    tolerance : convergence tolerance of the fit (``refine``'s ``tolerance``).
    cell_bound : bound of each strain component (fraction of d) around the search's isotropic scale.
    symmetry_penalty : the figure of merit is Rwp x exp(symmetry_penalty x (k - 1) / n_lines), k the
        free cell components, n_lines the candidate's reflections in range: a lower-symmetry candidate
        must fit better by more than its extra freedom buys (a Hamilton-style test, continuous).
    n_isotypes : entries of the best candidate's structure type refined in addition (:func:`rerank`).
    max_family : at most this many entries of that type are compared by their intensities.
    n_references : refined candidates of the best one's type (the best first) whose cells and hkl
        settings are used to compare the type's entries (entries in another setting cannot be compared).
    shared_profile : the profile (w0, w1, eta) is refined with the search's best candidate only and
        kept fixed for the others (the sample and instrument are the same; 2-3 times faster).
    cleaned : fit the search's cleaned pattern (background removed by its rolling minimum, noise floor
        subtracted; :func:`synthxrd.match.search.prepare`, passed by the search) instead of the raw
        pattern with a Chebyshev background (measured worse: docs/refine.md).
    caglioti : Caglioti U, V, W widths instead of w0 + w1 tan(theta) (measured: docs/refine.md).
    cell_penalty : the figure of merit is also multiplied by (1 + cell_penalty x the largest relative
        change of a, b, c from the search's isotropically scaled start): a candidate that fits only
        after a large distortion loses near-ties (measured: docs/refine.md).
    score_weight : the figure of merit is also multiplied by exp(-score_weight x the search's score of the
        candidate) (an isotype, which the search did not score, takes the best candidate's score): the
        search's own evidence breaks near-ties of the fit (measured: docs/refine.md).
    hamilton_alpha : after ranking, a candidate with fewer free cell components than the best (higher
        lattice symmetry) is put first when its Rwp ratio to the best is within Hamilton's R-ratio
        test at this significance level (W. C. Hamilton, Acta Cryst. 18, 502 (1965),
        doi:10.1107/S0365110X65001081), the number of observations taken as the best's reflections in
        range (the points are correlated); 0 turns it off (measured: docs/refine.md).
    """

    n_candidates: int = 5
    max_points: int = 1200
    background: int = 6
    max_nfev: int = 20
    tolerance: float = 1e-3
    cell_bound: float = DEFAULT_CELL_BOUND
    symmetry_penalty: float = 0.0
    n_isotypes: int = 3
    n_references: int = 3
    max_family: int = 2000
    shared_profile: bool = True
    cleaned: bool = False
    caglioti: bool = False
    cell_penalty: float = 0.0
    score_weight: float = 0.0
    hamilton_alpha: float = 0.0

    def __post_init__(self) -> None:
        checks = {"n_candidates": 1 <= self.n_candidates <= 500, "max_points": 100 <= self.max_points <= 100_000,
                  "background": 0 <= self.background <= 20, "max_nfev": 5 <= self.max_nfev <= 10_000,
                  "cell_bound": 0 < self.cell_bound <= 0.3, "symmetry_penalty": 0 <= self.symmetry_penalty <= 100,
                  "n_isotypes": 0 <= self.n_isotypes <= 50, "n_references": 1 <= self.n_references <= 50,
                  "tolerance": 1e-12 <= self.tolerance <= 1e-2, "max_family": 1 <= self.max_family <= 100_000,
                  "cell_penalty": 0 <= self.cell_penalty <= 1000, "score_weight": 0 <= self.score_weight <= 100, "hamilton_alpha": 0 <= self.hamilton_alpha < 1}
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"rerank settings: {name}={getattr(self, name)!r} is out of range")


def _binned(tt: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Adjacent points summed (counts stay counts) so that at most ``max_points`` remain."""
    k = int(math.ceil(len(tt) / max_points))
    if k <= 1:
        return tt, y
    n = len(tt) // k * k
    return tt[:n].reshape(-1, k).mean(axis=1), y[:n].reshape(-1, k).sum(axis=1)


def figure_of_merit(result: Refinement, phase: PhaseModel, settings: RerankSettings) -> float:
    """Rwp x exp(symmetry_penalty (k - 1) / n_lines) (lower is better); see :class:`RerankSettings`."""
    n_lines = max(len(result.phases[0].hkl), 1)
    fom = result.rwp * math.exp(settings.symmetry_penalty * (phase.n_cell - 1) / n_lines)
    p = result.phases[0]
    if settings.cell_penalty and p.cell is not None and p.cell_start is not None:
        fom *= 1.0 + settings.cell_penalty * float(np.max(np.abs(np.asarray(p.cell[:3]) / p.cell_start[:3] - 1)))
    return float(fom)


def _hamilton_first(scored: list, alpha: float) -> list:
    """``scored`` ((fom, Match, Refinement, PhaseModel), best first) with the first candidate of fewer free
    cell components than the best whose Rwp passes Hamilton's R-ratio test against it moved to the front."""
    if alpha <= 0 or len(scored) < 2:
        return scored
    from scipy.stats import f as fisher

    best = scored[0]
    n = max(len(best[2].phases[0].hkl), best[3].n_cell + 2)
    for j, cand in enumerate(scored[1:], 1):
        b = best[3].n_cell - cand[3].n_cell
        if b <= 0:
            continue
        dof = n - best[3].n_cell
        critical = math.sqrt(1.0 + b / dof * float(fisher.ppf(1.0 - alpha, b, dof)))
        if cand[2].rwp <= critical * best[2].rwp:
            return [cand] + scored[:j] + scored[j + 1:]
    return scored


_ELEMENT_AMOUNT = re.compile(r"([A-Z][a-z]?)(\d*\.?\d*)")


def anonymous_formula(formula: str) -> str:
    """The stoichiometry of a reduced formula without the elements, amounts sorted: ``"TiO2"`` -> ``"AB2"``."""
    amounts = sorted(float(n) if n else 1.0 for _, n in _ELEMENT_AMOUNT.findall(formula))
    return "".join(chr(65 + i) + (f"{a:g}" if a != 1 else "") for i, a in enumerate(amounts))


def _types(library) -> np.ndarray:
    """(N,) str structure-type key of every entry, ``"<space group>|<anonymous formula>"`` (cached on the library)."""
    cache = library.__dict__.setdefault("_type_cache", {})
    if "types" not in cache:
        anon = {f: anonymous_formula(f) for f in set(library.formulas.tolist())}
        cache["types"] = np.array([f"{g}|{anon[f]}" for g, f in zip(library.spacegroups.tolist(),
                                                                      library.formulas.tolist())])
    return cache["types"]


def _canonical(hkl: np.ndarray, ops: np.ndarray) -> np.ndarray:
    """(P,) int64 key of each reflection's class of equivalents under ``ops`` and -1 (Friedel)."""
    h = np.einsum("kij,mj->kmi", ops, np.asarray(hkl, np.int64))
    h = np.concatenate([h, -h])
    code = (h[..., 0] + 512) * 1024 * 1024 + (h[..., 1] + 512) * 1024 + (h[..., 2] + 512)
    return code.max(axis=0)


def _observed_f2(tt, y, res: Refinement, phase: PhaseModel, background: int,
                 wavelength) -> tuple[np.ndarray, np.ndarray]:
    """Le Bail intensities |F|^2 m (LP divided out) of the refined ``phase``'s reflections in range, with their hkl:
    one linear solve with the cell, profile and zero shift of ``res`` fixed."""
    from synthxrd.simulate.physics import lorentz_polarization

    p = res.phases[0].strain
    fixed = replace(phase, q0=phase.q0 + phase.dq @ p, g_star=phase.metric(p), f2=None)
    lb = refine(tt, y, fixed, wavelength=wavelength, background=background, zero_shift=False, zero=res.zero_shift,
                fwhm=tuple(res.fwhm), eta=res.eta, refine_profile=False, refine_cell=False, prescan=False)
    ph = lb.phases[0]
    lp = lorentz_polarization(np.radians(ph.two_theta) / 2)
    return ph.intensity / lp, ph.hkl


def _isotype_scan(library, ref_row: int, ref_phase: PhaseModel, ref: Refinement, tt, y, exclude: set,
                  settings: RerankSettings, wavelength) -> list[tuple[float, int, np.ndarray, dict]]:
    """Entries of the reference candidate's structure type (space group and anonymous formula) compared
    with the Le Bail intensities of the reference's fit: ``(R, row, keys, q_of)`` per entry whose
    reflections (matched by class of lattice-equivalent hkl, so only entries in the reference's
    setting) cover 70 % of the observed sqrt-intensity; R = sum |sqrt(I_o) - s sqrt(I_c)| / sum sqrt(I_o)."""
    if ref_phase.ops is None:
        return []
    types = _types(library)
    family = np.flatnonzero(types == types[ref_row])
    family = np.array([int(r) for r in family if int(r) not in exclude][:settings.max_family], np.int64)
    if len(family) == 0:
        return []
    obs, obs_hkl = _observed_f2(tt, y, ref, ref_phase, settings.background, wavelength)
    if len(obs) < 3 or not np.sum(obs) > 0:
        return []
    ops = ref_phase.ops
    obs_key, inverse = np.unique(_canonical(obs_hkl, ops), return_inverse=True)  # equivalents summed
    root_obs = np.sqrt(np.clip(np.bincount(inverse.ravel(), weights=obs, minlength=len(obs_key)), 0, None))
    q_ref = ref_phase.q0 + ref_phase.dq @ ref.phases[0].strain
    q_of = dict(zip(_canonical(ref_phase.hkl, ops).tolist(), q_ref.tolist()))
    # every member's reflections at once: key of each reflection's class, matched to the observed classes
    counts = library.offsets[family + 1] - library.offsets[family]
    take = np.concatenate([np.arange(library.offsets[r], library.offsets[r + 1]) for r in family])
    member = np.repeat(np.arange(len(family)), counts)
    keys_all = _canonical(library.hkl[take].astype(np.int64), ops)
    pos = np.minimum(np.searchsorted(obs_key, keys_all), len(obs_key) - 1)
    hit = obs_key[pos] == keys_all
    calc = np.bincount(member[hit] * len(obs_key) + pos[hit], weights=library.f2[take][hit].astype(np.float64),
                       minlength=len(family) * len(obs_key)).reshape(len(family), len(obs_key))
    total = float(np.sum(root_obs))
    coverage = ((calc > 0) @ root_obs) / total
    root_calc = np.sqrt(calc)
    scale = (root_calc @ root_obs) / np.maximum(np.einsum("ij,ij->i", root_calc, root_calc), 1e-300)
    r_all = np.sum(np.abs(root_obs[None] - scale[:, None] * root_calc), axis=1) / total
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return [(float(r_all[j]), int(family[j]), keys_all[bounds[j]:bounds[j + 1]], q_of)
            for j in np.flatnonzero(coverage >= 0.7)]


def _isotype_starts(library, references: list, tt, y, exclude: set, settings: RerankSettings,
                    wavelength) -> list[tuple[int, PhaseModel]]:
    """The best ``settings.n_isotypes`` entries (one per formula) of :func:`_isotype_scan` over the
    ``references`` ((row, phase, Refinement) of refined candidates, each a setting of its type), each
    with its metric set to its reference's refined cell (least squares on the matched reflections)."""
    ranked = []
    for row, phase, res in references:
        ranked += _isotype_scan(library, row, phase, res, tt, y, exclude, settings, wavelength)
    ranked.sort(key=lambda t: t[0])
    out = []
    formulas = set()
    for r, row, keys, q_of in ranked:
        if len(out) >= settings.n_isotypes:
            break
        if str(library.formulas[row]) in formulas:  # one entry per formula: the isotypes differ by chemistry
            continue
        try:
            phase = phase_from_library(library, row)
        except (RefineError, StructureError):
            continue
        matched = np.array([key in q_of for key in keys.tolist()])
        if phase.g_star is None or matched.sum() < 6:
            continue
        q_target = np.array([q_of[key] for key in keys[matched].tolist()])
        g = metric_from_reflections(1 / np.sqrt(q_target), phase.hkl[matched])
        if g is None:
            continue
        formulas.add(str(library.formulas[row]))
        p0 = phase.strain_for(g)
        start = replace(phase, q0=phase.q0 + phase.dq @ p0, g_star=phase.metric(p0),
                        conventional_map=_conventional_map_cached(phase))
        out.append((row, start))
    return out


def rerank(library, two_theta, intensities, matches: list, *, wavelength: float | str = DEFAULT_WAVELENGTH,
           settings: RerankSettings | None = None, cleaned=None) -> list:
    """The matches re-ranked by refinement: :func:`refine_candidates`'s matches, then those whose fit could
    not start, then the rest in the search's order."""
    settings = settings or RerankSettings()
    refined, failed = refine_candidates(library, two_theta, intensities, matches, wavelength=wavelength,
                                        settings=settings, cleaned=cleaned)
    return [m for m, _ in refined] + failed + list(matches[settings.n_candidates:])


def refine_candidates(library, two_theta, intensities, matches: list, *, wavelength: float | str = DEFAULT_WAVELENGTH,
                      settings: RerankSettings | None = None, cleaned=None) -> tuple[list, list]:
    """Refine the first ``settings.n_candidates`` matches of one pattern and order them by
    :func:`figure_of_merit` (best first); the rest follow in the search's order.

    Isotypes: entries of the best-fitting candidate's structure type (same space group and anonymous
    formula) whose |F|^2 m best explain the intensities extracted with the best fit's cell
    (:func:`_isotype_starts`) are refined too, starting from that cell, and ranked with the others:
    an anisotropically strained phase that the isotropic search ranks low is found through an
    isostructural neighbour it did rank high (rutile TiO2 with c x 1.04 through ZnF2).

    Each refined :class:`~synthxrd.match.Match` carries ``cell`` (refined conventional lattice
    parameters where the setting is known, else of the library's cell), ``zero_shift`` (degrees),
    ``rwp``, ``fom`` and ``converged``.

    Returns
    -------
    ``[(Match, Refinement), ...]`` best first, and the matches whose fit could not start.
    """
    settings = settings or RerankSettings()
    tt, y = np.asarray(two_theta, np.float64), np.asarray(intensities, np.float64)
    if settings.cleaned and cleaned is not None:
        y = np.asarray(cleaned, np.float64)
    tt, y = _binned(tt, y, settings.max_points)
    head = matches[:settings.n_candidates]
    top_score = max((float(m.score) for m in head), default=0.0)
    scored, failed = [], []

    profile: dict = {}

    def fit(m, phase):
        res = refine(tt, y, phase, wavelength=wavelength, background=settings.background, prescan=False,
                     cell_bound=settings.cell_bound, max_nfev=settings.max_nfev, tolerance=settings.tolerance,
                     **(profile or {"caglioti": settings.caglioti}))
        if settings.shared_profile and not profile and res.converged:
            profile.update(fwhm=tuple(res.fwhm), eta=res.eta, refine_profile=False)
        p = res.phases[0]
        cell = None if p.cell is None else tuple(round(float(v), 5) for v in p.cell)
        fom = figure_of_merit(res, phase, settings)
        if settings.score_weight:
            fom *= math.exp(-settings.score_weight * (m.score if m.score > 0 else top_score))
        scored.append((fom, replace(m, cell=cell, zero_shift=round(res.zero_shift, 5), rwp=round(res.rwp, 6),
                                    fom=round(fom, 6), converged=res.converged), res, phase))

    for m in head:
        try:
            fit(m, scaled(phase_from_library(library, m.index), m.scale))
        except (RefineError, StructureError, np.linalg.LinAlgError):
            failed.append(m)
    scored.sort(key=lambda t: t[0])
    if scored and settings.n_isotypes:
        # references: the best-fitting candidate and the next ones of its structure type (other settings)
        types = _types(library)
        kind = types[scored[0][1].index]
        references = [(t[1].index, t[3], t[2]) for t in scored if types[t[1].index] == kind][:settings.n_references]
        groups = {int(library.groups[m.index]) for m in matches}
        exclude = {m.index for m in matches}
        try:
            starts = _isotype_starts(library, references, tt, y, exclude, settings, wavelength)
        except (RefineError, StructureError, np.linalg.LinAlgError):
            starts = []
        for row, phase in starts:
            if int(library.groups[row]) in groups:
                continue
            groups.add(int(library.groups[row]))
            try:
                fit(replace(matches[0], id=str(library.ids[row]), formula=str(library.formulas[row]),
                            spacegroup=int(library.spacegroups[row]), score=0.0, scale=1.0, index=row,
                            mineral=str(library.phase_minerals[row]), duplicates=0), phase)
            except (RefineError, StructureError, np.linalg.LinAlgError):
                continue
        scored.sort(key=lambda t: t[0])
    scored = _hamilton_first(scored, settings.hamilton_alpha)
    return [(t[1], t[2]) for t in scored], failed
