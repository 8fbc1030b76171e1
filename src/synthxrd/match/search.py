"""Search a reference library for the structures that best explain measured powder patterns.

Two stages, both built from the literature on pattern similarity and search-match:

1. **Screen every structure** with a weighted cross-correlation on a logarithmic d-spacing axis
   ``q = ln(1/d)``. On that axis an isotropic change of the lattice (``d -> s d``: DFT cells 1-3 %
   too large, thermal expansion, solid solutions) is a shift by ``-ln s``, so the correlation
   maximised over shifts in ``[ln 1/s_max, ln 1/s_min]`` is the cosine similarity maximised over
   isotropic scales, for all structures and patterns at once as one matrix product (coarse grid,
   ``screen_q_step``). Both sides are Gaussian-broadened (a width in 2theta, which absorbs
   peak-shape differences, K-alpha2, small zero shifts and anisotropic mismatch), raised to a power
   (0.3: weak peaks weigh more, as in search-match programs' weighting) and compared only where the
   pattern was measured. This is de Gelder's weighted cross-correlation with a Gaussian weight
   (R. de Gelder, R. Wehrens, J. A. Hageman, J. Comput. Chem. 22, 273 (2001),
   doi:10.1002/1096-987X(200102)22:3<273::AID-JCC1003>3.0.CO;2-0).
2. **Refine the best candidates** (``n_refine`` per pattern): the same cosine on a fine grid
   (``q_step``), with every shift of the scale range; its maximum is the score of a
   :class:`Match` and its shift the fitted ``scale``.

Patterns are cleaned once before both stages (:func:`prepare`): a background estimated by a
rolling minimum and smoothed is subtracted, noise is smoothed, a robust noise floor is subtracted,
and the result normalised to maximum 1. docs/search_match.md has the measurement behind each choice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from synthxrd.errors import ConfigError, DataError, StructureError

if TYPE_CHECKING:
    from synthxrd.match.library import ReferenceLibrary

__all__ = ["Match", "SearchSettings", "search", "prepare", "parse_elements"]


@dataclass(frozen=True)
class SearchSettings:
    """How patterns are compared with library structures (defaults chosen on the development sets;
    docs/search_match.md has the measurements)."""

    #: Step of the log-d axis q = ln(1/d) on which candidates are refined.
    q_step: float = 1.5e-3
    #: Coarser step of the screening stage (every structure, one matrix product).
    screen_q_step: float = 6e-3
    #: Gaussian sigma (degrees 2theta) of the library peaks in the screening stage.
    sigma_deg: float = 0.2
    #: Gaussian sigmas (degrees) of the refining stage; its score is the mean cosine over them.
    refine_sigmas_deg: tuple[float, ...] = (0.2,)
    #: Isotropic lattice scales searched: d_library * s for s in [scale_min, scale_max].
    scale_min: float = 0.94
    scale_max: float = 1.06
    #: Patterns are compared as intensity ** power (0.5: square root, weights weak peaks up).
    power: float = 0.3
    #: Apply ``power`` to the library's peak heights before broadening (True) or to its broadened
    #: profile (False); measured patterns always get it on the profile.
    power_on_peaks: bool = False
    #: Width (degrees) of the rolling minimum that estimates the background; 0 switches it off.
    background_window_deg: float = 3.0
    #: Gaussian sigma (degrees) that smooths the measured pattern (noise); 0 switches it off.
    smooth_deg: float = 0.05
    #: Noise floor: the background-free pattern minus (median + noise_sigmas x robust sigma), where
    #: the robust sigma is 1.4826 x the median absolute deviation (most points are no peak); 0: off.
    noise_sigmas: float = 1.5
    #: Candidates per pattern (the best of the screening stage) refined in the second stage.
    n_refine: int = 100
    #: Largest d-spacing (Å) compared (2theta 4.4 degrees with Cu K-alpha1).
    d_max: float = 20.0
    #: Patterns per matrix product (memory: N structures x batch x shifts float32).
    batch_size: int = 32

    def __post_init__(self) -> None:
        checks = {
            "q_step": 1e-4 <= self.q_step <= 1e-2,
            "screen_q_step": self.q_step <= self.screen_q_step <= 2e-2,
            "sigma_deg": 0.005 <= self.sigma_deg <= 2.0,
            "refine_sigmas_deg": len(self.refine_sigmas_deg) >= 1 and all(
                0.005 <= float(x) <= 2.0 for x in self.refine_sigmas_deg),
            "scale_min": 0.5 < self.scale_min <= 1.0,
            "scale_max": 1.0 <= self.scale_max < 2.0,
            "power": 0.05 <= self.power <= 2.0,
            "background_window_deg": 0 <= self.background_window_deg <= 30,
            "smooth_deg": 0 <= self.smooth_deg <= 1,
            "noise_sigmas": 0 <= self.noise_sigmas <= 20,
            "n_refine": 1 <= self.n_refine <= 10_000,
            "d_max": 2 <= self.d_max <= 200,
            "batch_size": 1 <= self.batch_size <= 4096,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"search settings: {name}={getattr(self, name)!r} is out of range")

    def shifts(self, step: float) -> np.ndarray:
        """Grid shifts (in steps of ``step``) of the isotropic scales, -ln(s)/step."""
        lo = int(math.floor(math.log(self.scale_min) / step))
        hi = int(math.ceil(math.log(self.scale_max) / step))
        return -np.arange(lo, hi + 1)


@dataclass(frozen=True)
class Match:
    """One library structure matched to a pattern.

    Attributes
    ----------
    id, formula : str, of the library entry.
    spacegroup : int, ITA number of the library entry.
    score : float in [0, 1], similarity (1: identical after the fitted scale); 0 for an entry of the best
        match's structure type that the refinement added and the search did not score
        (:func:`synthxrd.match.rerank.refine_candidates`).
    scale : float, fitted isotropic lattice scale: the pattern's d = scale * the library's d.
    index : int, row of the entry in the library.
    mineral : str, mineral name of the entry, or of another entry of its phase ("" if none).
    duplicates : int, other entries of the same phase that the search ranked lower and left out
        (:meth:`~synthxrd.match.ReferenceLibrary.merge`).
    cell : (6,) refined lattice parameters (a, b, c Angstrom, alpha, beta, gamma degrees; conventional
        where the library's setting maps to it) or None when not refined (``search(refine=True)``).
    zero_shift : float, refined zero shift (degrees); rwp : float, weighted profile R of the fit
        (None: not refined); fom : float, figure of merit of the re-ranking (lower is better);
        converged : bool, whether the fit converged (None: not refined).
    """

    id: str
    formula: str
    spacegroup: int
    score: float
    scale: float = 1.0
    index: int = -1
    mineral: str = ""
    duplicates: int = 0
    cell: tuple | None = None
    zero_shift: float | None = None
    rwp: float | None = None
    fom: float | None = None
    converged: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------------
# inputs

#: Largest atomic number of an element bit set.
_Z_MAX = 98


def element_mask(numbers: Iterable[int]) -> np.ndarray:
    """(2,) uint64 bit set of atomic numbers 1..98 (bit z-1 of word (z-1)//64)."""
    out = np.zeros(2, np.uint64)
    for z in set(int(z) for z in numbers):
        if not 1 <= z <= _Z_MAX:
            raise StructureError(f"atomic number {z} outside 1..{_Z_MAX}")
        out[(z - 1) // 64] |= np.uint64(1) << np.uint64((z - 1) % 64)
    return out




def parse_elements(elements: Sequence[str] | str | None) -> np.ndarray | None:
    """Element symbols (``"Fe,O"`` or ``["Fe", "O"]``) -> (2,) uint64 bit set; ``None`` stays None.

    :class:`ConfigError` naming an unknown symbol."""
    from synthxrd.structure import element_z

    if elements is None:
        return None
    if isinstance(elements, str):
        elements = [e for e in elements.replace(" ", ",").split(",") if e]
    zs = []
    for symbol in elements:
        try:
            zs.append(element_z(str(symbol).strip().capitalize() if len(str(symbol).strip()) <= 2 else str(symbol),
                                source="elements"))
        except Exception:
            raise ConfigError(f"elements: unknown element {symbol!r} (use symbols such as Fe, O)") from None
    if not zs:
        raise ConfigError("elements: no element given")
    return element_mask(zs)


def _check_patterns(two_theta, intensities) -> tuple[np.ndarray, np.ndarray]:
    tt = np.asarray(two_theta, np.float64)
    y = np.asarray(intensities, np.float64)
    if tt.ndim != 1 or y.ndim not in (1, 2) or y.shape[-1] != tt.size:
        raise DataError(f"search: two_theta must be (M,) and intensities (M,) or (N, M); got {tt.shape} and {y.shape}")
    y = np.atleast_2d(y)
    if tt.size < 2 or y.shape[0] == 0:
        raise DataError("search: the pattern is empty (need at least 2 points)")
    if not (np.isfinite(tt).all() and np.isfinite(y).all()):
        raise DataError("search: two_theta and intensities must be finite (found NaN or inf)")
    if not (np.diff(tt) > 0).all():
        raise DataError("search: two_theta must be strictly increasing")
    if tt[0] <= 0 or tt[-1] >= 180:
        raise DataError(f"search: two_theta must lie in (0, 180) degrees, got {tt[0]:g}-{tt[-1]:g}")
    return tt, y


def prepare(two_theta: np.ndarray, y: np.ndarray, settings: SearchSettings) -> np.ndarray:
    """Cleaned patterns (N, M), maximum 1: :func:`synthxrd.io.clean_patterns` with the settings'
    ``smooth_deg``, ``background_window_deg`` and ``noise_sigmas``. :class:`DataError` for a
    pattern with no positive intensity left.
    """
    from synthxrd.io.prepare import clean_patterns

    out = clean_patterns(y, float(np.median(np.diff(two_theta))), smooth_deg=settings.smooth_deg,
                         background_window_deg=settings.background_window_deg, noise_sigmas=settings.noise_sigmas)
    if (bad := np.flatnonzero(~(out.max(axis=1) > 0))).size:
        raise DataError(f"search: pattern {int(bad[0])} has no positive intensity after background removal")
    return out


# --------------------------------------------------------------------------------------------------
# the screening stage


@dataclass
class _Axis:
    """A grid on q = ln(1/d) with the library rendered on it (screening) or ready to render (refining)."""

    start: float
    step: float
    n: int
    sigma: np.ndarray  # (R,) Gaussian sigma of every library peak on this axis
    rows: np.ndarray | None = None  # (N, G) float32 intensity ** power, max 1 per row (screening axis)
    norms: dict = field(default_factory=dict)  # coverage mask bytes -> (N,) squared row norms inside it

    def values(self) -> np.ndarray:
        return self.start + self.step * np.arange(self.n)


@dataclass
class _Prepared:
    """The library at one wavelength: peak positions and heights, a screening and a refining axis."""

    wavelength: float
    position: np.ndarray  # (R,) q = ln(1/d)
    height: np.ndarray  # (R,) |F|^2 m LP at this wavelength, 0 beyond 2theta = 180
    screen: _Axis
    fine: list[_Axis]  # one per refining sigma


def _axis(library: ReferenceLibrary, theta: np.ndarray, settings: SearchSettings, step: float,
          sigma_deg: float) -> _Axis:
    start = -math.log(settings.d_max)
    n = int(math.floor((-math.log(library.d_min) - start) / step)) + 1
    # sigma in q = ln(2 sin(theta)/lambda): dq = cot(theta) dtheta; at least 0.7 grid steps
    sigma = np.maximum(np.radians(sigma_deg) / 2 / np.tan(theta), 0.7 * step)
    return _Axis(start, step, n, sigma)


def _normalise(rows: np.ndarray, power: float) -> np.ndarray:
    peak = rows.max(axis=1, keepdims=True)
    np.divide(rows, np.where(peak > 0, peak, 1), out=rows)
    if power != 1:
        np.power(rows, power, out=rows)
    return rows


def _prepare_library(library: ReferenceLibrary, wavelength: float, settings: SearchSettings) -> _Prepared:
    from synthxrd.match._kernels import render_rows
    from synthxrd.simulate.physics import lorentz_polarization

    d = library.d.astype(np.float64)
    s = wavelength / (2 * d)
    ok = s < 1
    theta = np.arcsin(np.where(ok, s, 0.5))
    height = np.where(ok, library.f2 * lorentz_polarization(theta), 0.0)
    if settings.power_on_peaks:
        height = height ** settings.power
    position = -np.log(d)
    screen = _axis(library, theta, settings, settings.screen_q_step, settings.sigma_deg)
    screen.rows = _normalise(render_rows(library.offsets, position, height, screen.sigma, screen.start, screen.step,
                                         screen.n), 1.0 if settings.power_on_peaks else settings.power)
    fine = [_axis(library, theta, settings, settings.q_step, float(x)) for x in settings.refine_sigmas_deg]
    return _Prepared(wavelength, position, height, screen, fine)


def _prepared(library: ReferenceLibrary, wavelength: float, settings: SearchSettings) -> _Prepared:
    """:func:`_prepare_library`, cached on the library for the last wavelength and settings used."""
    key = (round(wavelength, 6), settings.q_step, settings.screen_q_step, settings.sigma_deg, settings.power,
           settings.d_max, tuple(settings.refine_sigmas_deg), settings.power_on_peaks)
    cache = library.__dict__.setdefault("_search_cache", {})
    if key not in cache:
        cache.clear()  # one at a time: the screening matrix is N x G float32
        cache[key] = _prepare_library(library, wavelength, settings)
    return cache[key]


def _on_axis(two_theta: np.ndarray, clean: np.ndarray, wavelength: float, axis: _Axis, power: float):
    """Patterns on a q axis (B, G) float32 and the axis points they cover (G,) bool."""
    s = wavelength * np.exp(axis.values()) / 2  # sin(theta)
    tt = np.where(s < 1, np.degrees(2 * np.arcsin(np.minimum(s, 1))), np.inf)
    covered = (tt >= two_theta[0]) & (tt <= two_theta[-1])
    values = np.stack([np.interp(tt, two_theta, row, left=0, right=0) for row in clean]) * covered
    if power != 1:
        values = values ** power
    return values.astype(np.float32), covered


def _shifted(values: np.ndarray, covered: np.ndarray, shifts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(G, S) columns Q_k[x] = Q[x + shifts[k]] (0 outside) of one pattern, and their coverage (G, S)."""
    g = len(values)
    cols = np.zeros((g, len(shifts)), np.float32)
    masks = np.zeros((g, len(shifts)), bool)
    for k, sh in enumerate(shifts):
        if sh >= 0:
            cols[: g - sh, k] = values[sh:]
            masks[: g - sh, k] = covered[sh:]
        else:
            cols[-sh:, k] = values[: g + sh]
            masks[-sh:, k] = covered[: g + sh]
    return cols, masks


def _library_norms(axis: _Axis, masks: np.ndarray, rows_of: np.ndarray | None) -> np.ndarray:
    """(N', S) squared norms of the screening rows inside each shift's coverage (cached per mask)."""
    out = np.empty((len(axis.rows), masks.shape[1]), np.float32)
    for k in range(masks.shape[1]):
        m = masks[:, k]
        key = np.packbits(m).tobytes()
        if key not in axis.norms:
            idx = np.flatnonzero(m)
            if len(idx) and idx[-1] - idx[0] + 1 == len(idx):  # one interval: a slice
                part = axis.rows[:, idx[0]:idx[-1] + 1]
                axis.norms[key] = np.einsum("ij,ij->i", part, part)
            else:
                axis.norms[key] = (axis.rows * axis.rows) @ m.astype(np.float32)
        out[:, k] = axis.norms[key]
    return out if rows_of is None else out[rows_of]


def _inverse_norms(norms2: np.ndarray) -> np.ndarray:
    return (1.0 / np.sqrt(np.maximum(norms2, 1e-12))).astype(np.float32)


def _screen(prep: _Prepared, values: np.ndarray, covered: np.ndarray, shifts: np.ndarray,
            rows_of: np.ndarray | None) -> np.ndarray:
    """(B, N') best cosine over shifts of every pattern with every (allowed) library row.

    All patterns share ``covered`` (one 2theta axis), so the library norms are per shift only; the
    product skips the axis points no shifted pattern reaches."""
    from synthxrd.match._kernels import max_cosine

    axis = prep.screen
    _, masks = _shifted(values[0], covered, shifts)
    used = np.flatnonzero(masks.any(axis=1))
    lo, hi = (used[0], used[-1] + 1) if len(used) else (0, 0)
    cols = [_shifted(v, covered, shifts)[0] for v in values]
    qmat = np.concatenate(cols, axis=1)[lo:hi]
    rows = axis.rows[:, lo:hi] if rows_of is None else axis.rows[rows_of, lo:hi]
    num = rows @ qmat  # (N', B S)
    inv_lib = _inverse_norms(_library_norms(axis, masks, rows_of))
    inv_query = _inverse_norms(np.stack([np.einsum("gs,gs->s", c, c) for c in cols]))
    return max_cosine(num, inv_lib, inv_query)[0]


def _refine(prep: _Prepared, library: ReferenceLibrary, candidates: np.ndarray, values: np.ndarray,
            covered: np.ndarray, shifts: np.ndarray, power: float) -> tuple[np.ndarray, np.ndarray]:
    """Cosine of one pattern with the candidates on the fine axis, maximised over shifts: (K,) best
    score and (K,) index of the best shift."""
    from synthxrd.match._kernels import render_selected

    cols, masks = _shifted(values, covered, shifts)
    inv_query = _inverse_norms(np.einsum("gs,gs->s", cols, cols))
    total = np.zeros((len(candidates), len(shifts)), np.float32)
    for axis in prep.fine:
        rows = _normalise(render_selected(library.offsets, candidates, prep.position, prep.height, axis.sigma,
                                          axis.start, axis.step, axis.n), power)  # power 1 if on peaks
        total += (rows @ cols) * _inverse_norms((rows * rows) @ masks.astype(np.float32)) * inv_query[None]
    total /= len(prep.fine)
    best = total.argmax(axis=1)
    return total[np.arange(len(candidates)), best], best


def search(library: ReferenceLibrary, two_theta, intensities, *, k: int = 10, wavelength: float | str | None = None,
           elements: Sequence[str] | str | None = None, only_elements: bool = False,
           settings: SearchSettings | None = None, refine=False) -> list[list[Match]]:
    """The ``k`` best-matching library structures of each pattern, best first.

    Parameters
    ----------
    library : the :class:`~synthxrd.match.library.ReferenceLibrary` to search.
    two_theta : (M,) degrees, strictly increasing.
    intensities : (M,) one pattern or (N, M) patterns on that axis (any units; background allowed).
    k : matches returned per pattern.
    wavelength : Angstrom or a line name; default Cu K-alpha1 (the laboratory default).
    elements : element symbols (``"Fe,O"`` or a list): only structures containing all of them;
        with ``only_elements=True``, only structures made of these elements alone (a subset).
    settings : :class:`SearchSettings` (default: the tuned defaults).
    refine : False; True or a :class:`synthxrd.match.rerank.RerankSettings`: the best candidates are
        fitted to the pattern (:func:`synthxrd.match.rerank.rerank`) and re-ranked by the figure of merit
        of the fit; each refined :class:`Match` carries its refined cell, zero shift, Rwp and fom.

    Returns
    -------
    One list of :class:`Match` per pattern, best first.

    Raises
    ------
    DataError
        Empty pattern, NaN, 2theta outside (0, 180) or not increasing, a 2theta range that holds none
        of the library's d-spacings, or a pattern with no positive intensity.
    ConfigError
        Unknown element, bad ``k`` or settings.
    """
    from synthxrd.simulate.common import DEFAULT_WAVELENGTH, resolve_wavelength

    settings = settings or SearchSettings()
    if not (isinstance(k, (int, np.integer)) and k >= 1):
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    lam = resolve_wavelength(DEFAULT_WAVELENGTH if wavelength is None else wavelength)
    tt, y = _check_patterns(two_theta, intensities)
    d_lo, d_hi = lam / (2 * np.sin(np.radians([tt[-1], tt[0]]) / 2))
    if d_hi < library.d_min or d_lo > settings.d_max:
        raise DataError(f"search: the 2theta range {tt[0]:g}-{tt[-1]:g} degrees at {lam:g} Å (d = {d_lo:.3g}-"
                        f"{d_hi:.3g} Å) holds no d-spacing of the library ({library.d_min:g}-{settings.d_max:g} Å)")
    allowed = _allowed(library, elements, only_elements)
    rows_of = None if allowed is None else np.flatnonzero(allowed)
    if rows_of is not None and len(rows_of) == 0:
        return [[] for _ in range(len(y))]
    clean = prepare(tt, y, settings)
    prep = _prepared(library, lam, settings)
    screen_shifts = settings.shifts(settings.screen_q_step)
    fine_shifts = settings.shifts(settings.q_step)
    rerank_settings = None
    if refine is not False and refine is not None:
        from synthxrd.match.rerank import RerankSettings

        if refine is not True and not isinstance(refine, RerankSettings):
            raise ConfigError(f"refine: expected True, False or RerankSettings, got {refine!r}")
        rerank_settings = refine if isinstance(refine, RerankSettings) else RerankSettings()
    k_out = k
    if rerank_settings is not None:
        k = max(k, rerank_settings.n_candidates)
    n_candidates = max(k, settings.n_refine)
    out: list[list[Match]] = []
    for start in range(0, len(clean), settings.batch_size):
        batch = clean[start:start + settings.batch_size]
        values, covered = _on_axis(tt, batch, lam, prep.screen, settings.power)
        coarse = _screen(prep, values, covered, screen_shifts, rows_of)
        fine_values, fine_covered = _on_axis(tt, batch, lam, prep.fine[0], settings.power)
        for i in range(len(batch)):
            top = np.argpartition(-coarse[i], min(n_candidates, coarse.shape[1]) - 1)[:n_candidates]
            rows = top if rows_of is None else rows_of[top]
            score, shift = _refine(prep, library, rows, fine_values[i], fine_covered, fine_shifts,
                                   1.0 if settings.power_on_peaks else settings.power)
            order = _one_per_phase(library.groups[rows], np.argsort(-score, kind="stable"), k)
            out.append([_match(library, int(rows[j]), float(score[j]),
                               math.exp(-fine_shifts[shift[j]] * settings.q_step), n) for j, n in order])
    if rerank_settings is not None:
        from synthxrd.match.rerank import rerank

        line = DEFAULT_WAVELENGTH if wavelength is None else wavelength
        out = [rerank(library, tt, row, matches, wavelength=line, settings=rerank_settings, cleaned=cleaned)
               for row, matches, cleaned in zip(y, out, clean)]
    return [m[:k_out] for m in out]


def _one_per_phase(groups: np.ndarray, order: np.ndarray, k: int) -> list[tuple[int, int]]:
    """The first ``k`` of ``order`` (candidate positions, best first) with one per phase (``groups``):
    ``(position, number of lower-ranked candidates of its phase)``."""
    best: dict[int, int] = {}
    counts: dict[int, int] = {}
    for j in order.tolist():
        g = int(groups[j])
        counts[g] = counts.get(g, 0) + 1
        if g not in best:
            best[g] = j
    picked = list(best.items())[:k]  # dicts keep insertion order: best first
    return [(j, counts[g] - 1) for g, j in picked]


def _match(library: ReferenceLibrary, row: int, score: float, scale: float, duplicates: int = 0) -> Match:
    return Match(str(library.ids[row]), str(library.formulas[row]), int(library.spacegroups[row]),
                 round(max(0.0, min(1.0, score)), 6), round(scale, 5), row, str(library.phase_minerals[row]),
                 duplicates)


def _allowed(library: ReferenceLibrary, elements, only_elements: bool) -> np.ndarray | None:
    bits = parse_elements(elements)
    if bits is None:
        if only_elements:
            raise ConfigError("only_elements needs elements")
        return None
    lib = library.elements
    if only_elements:
        return np.all((lib & ~bits[None]) == 0, axis=1)
    return np.all((lib & bits[None]) == bits[None], axis=1)
