"""Multi-phase identification: every phase of a powder pattern, with refined cells and weight fractions.

The loop (issue 26) is the one a crystallographer runs by hand:

1. search the reference library (:meth:`synthxrd.match.ReferenceLibrary.search`) and refine its best
   ``n_candidates`` (:func:`synthxrd.refine.refine`); the best-fitting one (lowest Rwp) is the next
   phase. The first phase is refined alone (and again from refine's isotropic pre-scan); later
   candidates are screened with the found phases' cells and the profile held, and only the best is
   refined jointly with everything free (``MixtureSettings.screen``, ``restarts``);
2. search what the fit leaves unexplained (the observed pattern minus the found phases' calculated
   contributions, clipped at zero; the background stays, the search removes its own) for the next
   candidates, leaving out the phases already found and their look-alikes;
3. keep a new phase only if the joint fit with it is significantly better (:class:`MixtureSettings`:
   relative Rwp drop, jointly and screened, an F-test on the weighted sum of squares, a minimum weight
   fraction); stop at the
   first that is not, or at ``max_phases``. With ``phases=N`` the best candidate is kept at every step;
4. (``"auto"``) prune: each found phase, the least abundant first, is refitted away; it goes if the fit
   without it is not worse by the same criterion (Rwp drop, fraction): a wrong first phase, chosen
   before the others explained their lines, does not survive them.

Weight fractions follow Hill & Howard (R. J. Hill and C. J. Howard, J. Appl. Cryst. 20, 467 (1987),
doi:10.1107/S0021889887086199). The integrated intensity of reflection hkl of phase i in a flat,
infinitely thick powder mixture is (Klug & Alexander, *X-ray Diffraction Procedures*, 2nd ed., 1974,
ch. 7)

    I_hkl,i = K (v_i / V_i^2) |F_hkl|^2 m LP / mu*,

with v_i the phase's volume fraction, V_i its cell volume (one 1/V_i: cells per unit volume; the other:
the powder Lorentz factor's density of reciprocal-lattice points), K the instrument and mu* the
mixture's absorption, common to all phases. The fit writes I = S_i f2_i LP with the reference's
normalised intensities f2_i = |F|^2 m / N_i (the library divides |F|^2 m by N_i, its strongest peak's
|F|^2 m LP at Cu K-alpha1), so S_i / N_i ∝ v_i / V_i^2. With v_i = (w_i / rho_i) / sum_j (w_j / rho_j) and
rho_i = M_i Z_i / V_i (cell mass over cell volume),

    w_i ∝ S_i Z_i M_i V_i / N_i,     W_i = S_i Q_i / sum_j S_j Q_j,     Q_i = Z_i M_i V_i / N_i,

Hill & Howard's W_i = S_i (ZMV)_i / sum_j S_j (ZMV)_j with the scale on the absolute |F|^2 scale
(S_i / N_i). A library built by this version stores Q_i per entry
(``ReferenceLibrary.mass_factors``, :func:`mass_factor` at build time); the shipped libraries, built
before, do not, and Q_i comes from the entries' structures through ``mass_factors``
(:func:`library_mass_factors`); a phase without it gets no weight fraction (its intensity share is
reported). Neglected: microabsorption (Brindley), amorphous content (the fractions
are of the crystalline part), temperature factors beyond the reference's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from synthxrd.errors import ConfigError, DataError, StructureError
from synthxrd.match.library import absolute_f2, cell_mass, mass_factor

__all__ = [
    "MixtureSettings",
    "MixturePhase",
    "Mixture",
    "MixtureError",
    "identify_phases",
    "mass_factor",
    "cell_mass",
    "absolute_f2",
    "weight_fractions",
    "library_mass_factors",
]


#: ``ftol``/``xtol``/``gtol`` of the screening fits (a ranking of candidates needs no more; the joint
#: refinement of the chosen one keeps refine's 1e-8).
SCREEN_TOLERANCE = 1e-5


class MixtureError(DataError):
    """A pattern or an argument that multi-phase identification cannot use."""


@dataclass(frozen=True)
class MixtureSettings:
    """When a further phase is accepted, and how many candidates each step refines.

    A phase is kept (``phases="auto"``) when all of: the joint Rwp drops by at least ``min_rwp_drop``
    (relative), the F-test of the weighted sum of squares (chi^2 of the fit without / with it, the
    phase's extra parameters) has p < ``max_p_value``, and its weight fraction (or, without mass
    factors, its intensity share) is at least ``min_fraction``. The values were set beforehand, not
    tuned, and measured with ``synthxrd bench mixtures`` (docs/mixtures.md): a misfit of the first
    phase (cell, profile) also drops chi^2 when anything is added, so the F-test alone over-accepts on
    high-count patterns; the Rwp drop is what separates real phases (the bench records each step's
    drop and whether its candidate was a drawn phase).
    """

    #: Candidates refined at each step (the search's best, excluding found phases and look-alikes).
    n_candidates: int = 4
    #: Screen the candidates after the first phase with the found phases' cells and the profile held
    #: (only the candidate's cell and the scales refined) and refine only the best jointly: one joint
    #: refinement per step instead of ``n_candidates`` (docs/mixtures.md: the same phases, ~2x faster).
    screen: bool = True
    #: Further starts, the better fit kept (docs/mixtures.md): the first phase again from
    #: :func:`synthxrd.refine.refine`'s isotropic pre-scan, and the ``restart_best`` best screened
    #: candidates of each later step from ``restart_scales`` times the search's isotropic scale (bench
    #: seed 1: a 43 wt% Ti3O5 and a 23 wt% Sb found only so).
    restarts: bool = True
    restart_scales: tuple = (0.995, 1.005)
    restart_best: int = 2
    #: Matches asked of the search at each step (candidates are taken from them in order).
    k_search: int = 30
    #: Smallest relative drop of Rwp, (Rwp_without - Rwp_with) / Rwp_without, for a new phase (0.08 at
    #: first; 0.15 after the first 20 rruff_dev patterns, where spurious second phases dropped Rwp by
    #: 0.08-0.20 and 32 of 33 true ones in simulated mixtures by >= 0.2: docs/mixtures.md).
    min_rwp_drop: float = 0.15
    #: Smallest relative Rwp drop of the screened fit (the found phases' cells and the profile held, only
    #: the new phase's cell and the scales refined; with ``screen``): a phase must explain lines by
    #: itself, not only let the others re-fit (on rruff_dev a second garnet dropped Rwp by 0.002 screened
    #: and 0.153 jointly; every true phase of bench seed 1 by >= 0.17 both ways: docs/mixtures.md).
    min_screen_drop: float = 0.05
    #: Largest p-value of the F-test for a new phase.
    max_p_value: float = 1e-3
    #: Smallest weight fraction (or intensity share) of a new phase (and of any kept phase).
    min_fraction: float = 0.02
    #: Points the pattern is binned to for the fits (adjacent points summed).
    max_points: int = 1500
    #: Chebyshev background terms.
    background: int = 6
    #: Function evaluations per fit.
    max_nfev: int = 40
    #: A candidate of the same structure type whose Rwp is within this relative margin of the chosen
    #: one is a look-alike: reported as an alternative and not searched for again.
    lookalike_margin: float = 0.05
    #: A candidate of a found phase's space group whose cell lengths are within this fraction of the
    #: found phase's is not a new phase (0: allowed): on measured single-phase patterns such
    #: look-alikes were added to absorb the first phase's misfit (docs/mixtures.md).
    lookalike_cell: float = 0.05

    def __post_init__(self) -> None:
        checks = {"n_candidates": 1 <= self.n_candidates <= 50,
                  "restart_best": 0 <= self.restart_best <= 50,
                  "restart_scales": all(0.5 < f < 2 for f in self.restart_scales),
                  "k_search": 1 <= self.k_search <= 500,
                  "min_rwp_drop": 0 <= self.min_rwp_drop < 1,
                  "min_screen_drop": 0 <= self.min_screen_drop < 1, "max_p_value": 0 < self.max_p_value <= 1,
                  "min_fraction": 0 <= self.min_fraction < 1, "max_points": 100 <= self.max_points <= 100_000,
                  "background": 0 <= self.background <= 20, "max_nfev": 5 <= self.max_nfev <= 10_000,
                  "lookalike_margin": 0 <= self.lookalike_margin < 1, "lookalike_cell": 0 <= self.lookalike_cell < 1}
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"mixture settings: {name}={getattr(self, name)!r} is out of range")


@dataclass(frozen=True)
class MixturePhase:
    """One identified phase.

    Attributes
    ----------
    id, formula : str, of the library entry. spacegroup : int, ITA number. index : int, library row.
    cell : (6,) refined a, b, c (Angstrom), alpha, beta, gamma (degrees), conventional where the
        library's setting maps to it; None without a metric. cell_esd : (6,) or None.
    weight_fraction : float in [0, 1] (Hill & Howard) or None without a mass factor;
        weight_fraction_esd : float or None (from the scales' esds, correlations neglected).
    intensity_share : float, share of the calculated (background-free) intensity.
    scale, scale_esd : float, refined scale on the library's normalised |F|^2 m.
    rwp_drop : float, relative drop of Rwp when the phase was added (0 for the first phase: its drop
        from the background alone is ``1 - rwp / rwp_background`` of the step).
    alternatives : tuple of str, ids of look-alikes (duplicates of its phase in the library, and
        candidates of the same structure type that fitted as well).
    """

    id: str
    formula: str
    spacegroup: int
    index: int
    cell: np.ndarray | None
    cell_esd: np.ndarray | None
    weight_fraction: float | None
    weight_fraction_esd: float | None
    intensity_share: float
    scale: float
    scale_esd: float
    rwp_drop: float
    alternatives: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        as_list = lambda a: None if a is None else [round(float(v), 6) for v in a]  # noqa: E731
        return {"id": self.id, "formula": self.formula, "spacegroup": self.spacegroup,
                "cell": as_list(self.cell), "cell_esd": as_list(self.cell_esd),
                "weight_fraction": self.weight_fraction, "weight_fraction_esd": self.weight_fraction_esd,
                "intensity_share": self.intensity_share, "scale": self.scale, "scale_esd": self.scale_esd,
                "rwp_drop": self.rwp_drop, "alternatives": list(self.alternatives)}


@dataclass(frozen=True)
class Mixture:
    """Result of :func:`identify_phases`.

    Attributes
    ----------
    phases : list of :class:`MixturePhase`, by decreasing weight fraction (intensity share without
        mass factors).
    refinement : the joint :class:`synthxrd.refine.Refinement` of the phases (on the binned pattern).
    rwp, rwp_background : float, of that fit and of the background alone.
    unexplained : float, share of the observed background-free intensity above the calculated one
        (positive residual area / observed area above the background): an amorphous or unknown part.
    steps : list of dict, one per step tried: candidates with their Rwp, the chosen one, the Rwp drop,
        F, p and whether it was kept (why not).
    """

    phases: list
    refinement: Any
    rwp: float
    rwp_background: float
    unexplained: float
    steps: list = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"phases": [p.to_dict() for p in self.phases], "rwp": self.rwp, "rwp_background": self.rwp_background,
                "unexplained": self.unexplained, "steps": self.steps}


# --------------------------------------------------------------------------------------------------
# Hill & Howard


def weight_fractions(scales, scale_esds, factors) -> tuple[np.ndarray, np.ndarray]:
    """Hill & Howard weight fractions W_i = S_i Q_i / sum_j S_j Q_j and their esds.

    Parameters
    ----------
    scales, scale_esds : (P,) refined scales and esds. factors : (P,) Q_i (:func:`mass_factor`).

    Returns
    -------
    (P,) fractions summing to 1, and (P,) esds by first-order propagation of the scales' esds
    (correlations between the scales neglected: an underestimate where phases overlap strongly).
    """
    s = np.asarray(scales, np.float64)
    e = np.asarray(scale_esds, np.float64)
    q = np.asarray(factors, np.float64)
    if not (s.shape == e.shape == q.shape) or s.ndim != 1 or len(s) == 0:
        raise ConfigError(f"weight_fractions: scales, esds and factors must be (P,) of one length, got "
                          f"{s.shape}, {e.shape}, {q.shape}")
    if np.any(q <= 0) or not np.all(np.isfinite(q)):
        raise ConfigError(f"weight_fractions: mass factors must be positive and finite, got {q.tolist()}")
    m = np.clip(s, 0, None) * q
    total = float(m.sum())
    if not total > 0:
        return np.full(len(s), np.nan), np.full(len(s), np.nan)
    w = m / total
    # dW_i/dS_j = Q_j (delta_ij - W_i) / T
    jac = (np.eye(len(s)) - w[:, None]) * q[None, :] / total
    esd = np.sqrt((jac ** 2) @ np.nan_to_num(e) ** 2)
    return w, esd


def library_mass_factors(library, ids, source) -> dict[str, float]:
    """Q (:func:`mass_factor`, library normalisation) of the library entries ``ids`` from their CIFs:
    ``source`` a folder holding ``<id>.cif`` (searched recursively) or a tar archive of them. Ids
    without a readable CIF are left out."""
    import tarfile
    from pathlib import Path

    from synthxrd.structure import parse_cif

    wanted = {str(i) for i in ids}
    texts: dict[str, str] = {}
    path = Path(source)
    if path.is_dir():
        for f in path.rglob("*.cif"):
            if f.stem in wanted:
                texts[f.stem] = f.read_text(errors="replace")
    elif path.is_file() and tarfile.is_tarfile(path):
        with tarfile.open(path) as tar:
            for member in tar:
                stem = Path(member.name).stem
                if member.isfile() and stem in wanted and member.name.endswith(".cif"):
                    texts[stem] = tar.extractfile(member).read().decode(errors="replace")
                    if len(texts) == len(wanted):
                        break
    else:
        raise DataError(f"library_mass_factors: {source} is neither a folder nor a tar archive of CIFs")
    d_min = float(getattr(library, "d_min", 0.9))
    out = {}
    for key, text in texts.items():
        try:
            out[key] = mass_factor(parse_cif(text).to_crystal(), d_min=d_min)
        except Exception:  # noqa: BLE001 - a CIF that cannot be read has no factor (reported by its absence)
            continue
    return out


# --------------------------------------------------------------------------------------------------
# identification


def _check_pattern(two_theta, intensities) -> tuple[np.ndarray, np.ndarray]:
    tt = np.asarray(two_theta, np.float64)
    y = np.asarray(intensities, np.float64)
    if tt.ndim != 1 or y.shape != tt.shape:
        raise MixtureError(f"identify_phases: two_theta and intensities must be (M,) arrays of one length, "
                           f"got {tt.shape} and {y.shape}")
    if len(tt) < 50:
        raise MixtureError(f"identify_phases: need at least 50 points, got {len(tt)}")
    if not (np.all(np.isfinite(tt)) and np.all(np.isfinite(y))):
        raise MixtureError("identify_phases: two_theta and intensities must be finite (found NaN or inf)")
    if not np.all(np.diff(tt) > 0):
        raise MixtureError("identify_phases: two_theta must be strictly increasing")
    if not np.max(y) > np.min(y):
        raise MixtureError("identify_phases: the pattern is flat (no peak to identify)")
    return tt, y


def _moved(phase, strain):
    """The phase with its cell moved to a refined strain (start of the next joint fit)."""
    from synthxrd.refine import _conventional_map_cached

    if phase.g_star is None:
        return replace(phase, q0=phase.q0 + phase.dq @ strain)
    return replace(phase, q0=phase.q0 + phase.dq @ strain, g_star=phase.metric(strain),
                   conventional_map=_conventional_map_cached(phase))


def _f_test(chi_without: float, chi_with: float, extra: int, n: int, p_with: int) -> tuple[float, float]:
    """F = ((chi2_0 - chi2_1) / extra) / (chi2_1 / (n - p_1)) and its p-value."""
    from scipy.stats import f as f_dist

    dof = max(n - p_with, 1)
    if chi_with <= 0:
        return math.inf, 0.0
    value = max(chi_without - chi_with, 0.0) / max(extra, 1) / (chi_with / dof)
    return float(value), float(f_dist.sf(value, max(extra, 1), dof))


def identify_phases(two_theta, intensities, library, *, wavelength: float | str = "CuKa1",
                    phases: str | int = "auto", max_phases: int = 3, elements=None, only_elements: bool = False,
                    mass_factors: Mapping[str, float] | Callable[[str], float | None] | None = None,
                    settings: MixtureSettings | None = None) -> Mixture:
    """Every phase of a powder pattern: search, refine, search the residual, refine jointly, repeat.

    Parameters
    ----------
    two_theta : (M,) degrees, strictly increasing. intensities : (M,) counts (background allowed).
    library : :class:`~synthxrd.match.ReferenceLibrary`.
    wavelength : Angstrom or a line name; a K-alpha name (``"CuKa"``) fits the K-alpha1/2 doublet.
    phases : ``"auto"`` (add phases while they improve the fit significantly, :class:`MixtureSettings`)
        or N >= 1 (exactly N phases, as long as candidates remain).
    max_phases : at most this many phases with ``"auto"``.
    elements, only_elements : the chemistry filter of the search, applied to every phase.
    mass_factors : Q = Z M V / N per library id (:func:`mass_factor`, :func:`library_mass_factors`), a
        mapping or a callable (None: unknown); where it gives none, the library's stored
        ``mass_factors``; phases without either get no weight fraction.
    settings : :class:`MixtureSettings`.

    Returns
    -------
    :class:`Mixture`.

    Raises
    ------
    MixtureError
        Bad pattern (shape, NaN, not increasing, flat), bad ``phases``/``max_phases``, no candidate at all.
    """
    from threadpoolctl import threadpool_limits

    # the fits' small SVDs (scipy's trust-region solver) are slower with several BLAS threads (measured:
    # 25 s instead of 6 s per pattern on a shared 2-core machine)
    with threadpool_limits(limits=1, user_api="blas"):
        return _identify(two_theta, intensities, library, wavelength=wavelength, phases=phases,
                         max_phases=max_phases, elements=elements, only_elements=only_elements,
                         mass_factors=mass_factors, settings=settings)


def _identify(two_theta, intensities, library, *, wavelength, phases, max_phases, elements, only_elements,
              mass_factors, settings) -> Mixture:
    from synthxrd.match.rerank import _binned, _types
    from synthxrd.refine import RefineError, phase_from_library, refine, scaled
    from synthxrd.simulate.common import resolve_wavelength

    settings = settings or MixtureSettings()
    tt, y = _check_pattern(two_theta, intensities)
    if isinstance(phases, str):
        if phases != "auto":
            raise MixtureError(f"identify_phases: phases must be 'auto' or an integer 1-10, got {phases!r}")
        forced = None
    elif isinstance(phases, (int, np.integer)) and not isinstance(phases, bool) and 1 <= phases <= 10:
        forced = int(phases)
    else:
        raise MixtureError(f"identify_phases: phases must be 'auto' or an integer 1-10, got {phases!r}")
    if not (isinstance(max_phases, (int, np.integer)) and 1 <= max_phases <= 10):
        raise MixtureError(f"identify_phases: max_phases must be an integer 1-10, got {max_phases!r}")
    target = forced if forced is not None else int(max_phases)
    lam = resolve_wavelength(wavelength)
    search_lam = lam  # the search takes K-alpha1 of a K-alpha name
    given = (mass_factors.get if isinstance(mass_factors, Mapping)
             else mass_factors if callable(mass_factors) else (lambda key: None))

    def factor_of(key: str):
        """The caller's Q, else the library's (NaN: unknown)."""
        q = given(key)
        if q is None:
            stored = float(library.mass_factors[library.index(key)])
            q = stored if math.isfinite(stored) and stored > 0 else None
        return q

    tb, yb = _binned(tt, y, settings.max_points)
    types = _types(library)

    def fit(models, screen=False, prescan=False):
        # from the found phases' profile and zero shift: the joint fit starts where the last one ended;
        # a screening fit holds them (and the found phases' cells, ``_held``)
        start = {} if current is None else {"zero": current.zero_shift, "fwhm": tuple(current.fwhm),
                                             "eta": current.eta}
        held = ({"zero_shift": False, "refine_profile": False, "tolerance": SCREEN_TOLERANCE}
                if screen and current is not None else {})
        return refine(tb, yb, models, wavelength=wavelength, background=settings.background, prescan=prescan,
                      max_nfev=settings.max_nfev, **start, **held)

    found: list[dict] = []  # row, model (moved to the refined cell), alternatives
    excluded_groups: set[int] = set()
    excluded_keys: set[tuple[str, int]] = set()
    current = None  # joint Refinement of the found phases
    steps: list[dict] = []
    residual = y
    while len(found) < target:
        matches = library.search(tt, residual, k=settings.k_search, wavelength=search_lam, elements=elements,
                                 only_elements=only_elements)[0]
        candidates = [m for m in matches if int(library.groups[m.index]) not in excluded_groups
                      and (m.formula, m.spacegroup) not in excluded_keys
                      and not _isostructural(library, types, m.index, [f["index"] for f in found],
                                             settings.lookalike_cell)][:settings.n_candidates]
        if not candidates:
            steps.append({"step": len(found) + 1, "candidates": [], "kept": False, "why": "no candidate left"})
            break
        tried = []
        # screening (after the first phase, with settings.screen): only each candidate's cell and the
        # scales refined, the found phases and the profile held; the best is then refined jointly
        screen = settings.screen and bool(found)
        def attempt(m, entry, s0, rank):
            model = scaled(entry, s0)
            try:
                res = fit([_held(f["model"]) for f in found] + [model] if screen else
                          [f["model"] for f in found] + [model], screen=screen)
            except (RefineError, StructureError, np.linalg.LinAlgError):
                return None
            return (res.rwp, m, model, res, rank, entry)

        for m in candidates:
            try:
                entry = phase_from_library(library, m.index)
            except (RefineError, StructureError, np.linalg.LinAlgError):
                continue
            t = attempt(m, entry, m.scale, len(tried))
            if t is not None:
                tried.append(t)
        if screen and settings.restarts and tried:
            # the best screened candidates again from cells 0.5 % off the search's isotropic scale (an
            # anisotropically strained cell can leave that scale a compromise no local fit leaves)
            tried.sort(key=lambda t: t[0])
            for j, t in enumerate(tried[:settings.restart_best]):
                for f in settings.restart_scales:
                    again = attempt(t[1], t[5], t[1].scale * f, t[4])
                    if again is not None and again[0] < tried[j][0]:
                        tried[j] = again
        tried = [t[:5] for t in tried]
        if not tried:
            steps.append({"step": len(found) + 1, "candidates": [m.id for m in candidates], "kept": False,
                          "why": "no candidate could be refined"})
            break
        tried.sort(key=lambda t: t[0])
        rwp, best, model, res, rank = tried[0]
        rwp_screen = rwp
        if screen:  # the chosen candidate from its screened cell, jointly with the found phases
            model = _moved(model, res.phases[-1].strain)
            try:
                res = fit([f["model"] for f in found] + [model])
            except (RefineError, StructureError, np.linalg.LinAlgError):
                steps.append({"step": len(found) + 1, "candidates": [t[1].id for t in tried], "kept": False,
                              "why": "the chosen candidate could not be refined jointly"})
                break
            rwp = res.rwp
        elif settings.restarts and not found and model.g_star is not None:
            # the first phase again from the pre-scan's isotropic cell (refine(prescan=True)): a first phase
            # left in a local minimum (lines a width off) spoils the residual every later step searches
            try:
                again = fit([model], prescan=True)
            except (RefineError, StructureError, np.linalg.LinAlgError):
                again = None
            if again is not None and again.rwp < rwp and again.phases[0].metric is not None:
                # its strain is relative to the scanned cell: re-express it on ``model``
                strain = model.strain_for(again.phases[0].metric)
                rwp, res = again.rwp, replace(again, phases=[replace(again.phases[0], strain=strain)])
        kind = types[best.index]
        lookalikes = [t[1].id for t in tried[1:] if types[t[1].index] == kind
                      and t[0] <= rwp_screen * (1 + settings.lookalike_margin)]
        group = int(library.groups[best.index])
        duplicates = [str(library.ids[r]) for r in np.flatnonzero(library.groups == group) if r != best.index]
        rwp_before = current.rwp if current is not None else res.rwp_background
        drop = (rwp_before - rwp) / rwp_before if rwp_before > 0 else 0.0
        chi_with = res.rwp ** 2
        chi_without = rwp_before ** 2  # same weights and denominators: chi2 ∝ Rwp^2
        extra = 1 + model.n_cell
        f_value, p_value = _f_test(chi_without, chi_with, extra, res.n_points, res.n_parameters)
        shares = _fractions(res, [f["index"] for f in found] + [best.index], library, factor_of)
        new_share = float(shares[-1])
        step = {"step": len(found) + 1, "candidates": [[t[1].id, round(t[0], 5)] for t in tried],
                "chosen": best.id, "search_rank": rank, "rwp_screen": round(rwp_screen, 6),
                "rwp_before": round(rwp_before, 6), "rwp": round(rwp, 6),
                "rwp_drop": round(drop, 5), "f": round(f_value, 3), "p": p_value, "fraction": round(new_share, 5)}
        why = None
        if forced is None and found:
            screen_drop = (rwp_before - rwp_screen) / rwp_before if rwp_before > 0 else 0.0
            if drop < settings.min_rwp_drop:
                why = f"Rwp drop {drop:.3f} < {settings.min_rwp_drop}"
            elif screen and screen_drop < settings.min_screen_drop:
                why = f"screened Rwp drop {screen_drop:.3f} < {settings.min_screen_drop}"
            elif p_value > settings.max_p_value:
                why = f"F-test p {p_value:.2g} > {settings.max_p_value}"
            elif new_share < settings.min_fraction:
                why = f"fraction {new_share:.3f} < {settings.min_fraction}"
        step["kept"] = why is None
        if why is not None:
            step["why"] = why
            steps.append(step)
            break
        steps.append(step)
        found.append({"index": best.index, "model": model, "alternatives": tuple(duplicates + lookalikes),
                      "drop": drop if found else 0.0})
        found = [dict(f, model=_moved(f["model"], rp.strain)) for f, rp in zip(found, res.phases)]
        current = res
        excluded_groups.add(group)
        excluded_groups.update(int(library.groups[library.index(i)]) for i in lookalikes)
        excluded_keys.add((best.formula, best.spacegroup))
        # what the found phases leave unexplained (on the full grid; background kept for the search)
        residual = np.clip(y - _phase_curve(tt, tb, res), 0, None)
        if not np.max(residual) > 0:
            break
    if current is None:
        raise MixtureError("identify_phases: no library phase could be refined against the pattern"
                           + (f" (elements {elements})" if elements else ""))
    if forced is None:
        # pruning: a phase found early (before the others explained their lines) must still pay its way
        # in the final set; the least abundant first, one refit without it each
        while len(found) > 1:
            shares = _fractions(current, [f["index"] for f in found], library, factor_of)
            for k in np.argsort(shares, kind="stable"):
                rest = [f for j, f in enumerate(found) if j != k]
                try:
                    res = fit([f["model"] for f in rest])
                except (RefineError, StructureError, np.linalg.LinAlgError):
                    continue
                drop = (res.rwp - current.rwp) / res.rwp if res.rwp > 0 else 0.0
                if drop < settings.min_rwp_drop or shares[k] < settings.min_fraction:
                    steps.append({"step": "prune", "removed": str(library.ids[found[k]["index"]]),
                                  "rwp_without": round(res.rwp, 6), "rwp_with": round(current.rwp, 6),
                                  "rwp_drop": round(drop, 5), "fraction": round(float(shares[k]), 5)})
                    found = [dict(f, model=_moved(f["model"], rp.strain)) for f, rp in zip(rest, res.phases)]
                    current = res
                    break
            else:
                break
    return _result(current, found, library, factor_of, steps)


def _held(phase):
    """The phase with its cell held (no strain components): a found phase during screening."""
    return replace(phase, dq=np.zeros((len(phase.q0), 0)),
                   basis=None if phase.basis is None else np.zeros((0, 3, 3)))


def _isostructural(library, types, row: int, found: list[int], tolerance: float) -> bool:
    """Whether library entry ``row`` has the space group of a found phase and cell lengths (sorted)
    within ``tolerance`` of its: an isostructural look-alike (a solid-solution member, the hydrated or
    substituted variant: adamite Zn2AsO5 and Co2AsHO5, two pyrope garnets) that would only absorb the
    found phase's misfit (measured on rruff_dev: docs/mixtures.md). ``types`` is not needed for it."""
    if tolerance <= 0:
        return False
    a = np.sort(np.asarray(library.lattices[row, :3], np.float64))
    for r in found:
        if int(library.spacegroups[r]) == int(library.spacegroups[row]):
            b = np.sort(np.asarray(library.lattices[r, :3], np.float64))
            if np.all(np.abs(a / b - 1) <= tolerance):
                return True
    return False


def _phase_curve(tt: np.ndarray, tb: np.ndarray, res) -> np.ndarray:
    """The fitted phases' calculated contribution (calculated minus background) of the binned grid
    ``tb``, interpolated onto ``tt`` and brought back to counts per original point."""
    per_bin = res.calculated - res.background_curve
    k = max(1, int(round(len(tt) / len(tb))))
    return np.interp(tt, tb, per_bin) / k


def _fractions(res, rows, library, factor_of) -> np.ndarray:
    """Weight fractions where every phase has a mass factor, else intensity shares."""
    factors = [factor_of(str(library.ids[r])) for r in rows]
    if all(f is not None and f > 0 for f in factors):
        w, _ = weight_fractions([p.scale for p in res.phases], [p.scale_esd for p in res.phases], factors)
        if np.all(np.isfinite(w)):
            return w
    return np.array([p.weight for p in res.phases])


def _result(res, found, library, factor_of, steps) -> Mixture:
    rows = [f["index"] for f in found]
    factors = [factor_of(str(library.ids[r])) for r in rows]
    have = all(f is not None and f > 0 for f in factors)
    if have:
        w, w_esd = weight_fractions([p.scale for p in res.phases], [p.scale_esd for p in res.phases], factors)
    else:
        w = w_esd = [None] * len(rows)
    out = []
    for f, p, wi, ei in zip(found, res.phases, w, w_esd):
        r = f["index"]
        out.append(MixturePhase(
            str(library.ids[r]), str(library.formulas[r]), int(library.spacegroups[r]), int(r), p.cell, p.cell_esd,
            None if wi is None else float(wi), None if ei is None else float(ei), float(p.weight), float(p.scale),
            float(p.scale_esd), float(f["drop"]), f["alternatives"]))
    out.sort(key=lambda p: -(p.weight_fraction if p.weight_fraction is not None else p.intensity_share))
    net = res.observed - res.background_curve
    above = float(np.sum(np.clip(res.observed - res.calculated, 0, None)))
    unexplained = above / float(np.sum(np.clip(net, 0, None)) or 1.0)
    return Mixture(out, res, float(res.rwp), float(res.rwp_background), float(min(unexplained, 1.0)), steps)
