"""Public simulator: exact peak lists, broadened patterns, and a batched form for many crystals."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

import numpy as np

from synthxrd.errors import ConfigError, StructureError
from synthxrd.simulate import _kernels, physics
from synthxrd.structure import CrystalBatch, StructureLike, element_z, scattering_table, to_crystal

__all__ = [
    "DEFAULT_WAVELENGTH",
    "DEFAULT_TWO_THETA_RANGE",
    "DEFAULT_SIZE_RANGE_NM",
    "SCHERRER_K",
    "Grid",
    "PeakList",
    "wavelengths",
    "resolve_wavelength",
    "peak_list",
    "peaks",
    "pattern",
    "patterns",
    "smear",
]

#: Cu K-alpha1 in Angstrom, the default of DESIGN.md.
DEFAULT_WAVELENGTH = 1.5406
DEFAULT_TWO_THETA_RANGE = (5.0, 90.0)
#: Crystallite sizes tau ~ U(20, 100) nm, drawn once per pattern (Schopmans et al. 2023).
DEFAULT_SIZE_RANGE_NM = (20.0, 100.0)
#: Scherrer shape factor for spherical crystallites (Langford & Wilson 1978).
SCHERRER_K = 0.9


@dataclass(frozen=True)
class Grid:
    """Uniform 2theta grid in degrees: ``n`` points from ``start`` to ``stop`` inclusive."""

    start: float = 5.0
    stop: float = 90.0
    n: int = 8501

    def __post_init__(self) -> None:
        if not (0.0 < self.start < self.stop < 180.0) or int(self.n) != self.n or self.n < 2:
            raise ConfigError(
                f"grid: need 0 < start < stop < 180 degrees 2theta and n >= 2 points, "
                f"got start={self.start}, stop={self.stop}, n={self.n}"
            )

    @property
    def step(self) -> float:
        """Grid spacing in degrees."""
        return (self.stop - self.start) / (self.n - 1)

    def values(self) -> np.ndarray:
        """The grid points, (n,) float64 degrees."""
        return np.linspace(self.start, self.stop, self.n)


@dataclass(frozen=True)
class PeakList:
    """Diffraction peaks of one structure, sorted by 2theta.

    Attributes
    ----------
    two_theta : (P,) float64, degrees.
    intensity : (P,) float64, normalised to a maximum of 1.
    d : (P,) float64, interplanar spacing in Angstrom.
    hkl : (P, 3) int64, Miller indices of the strongest reflection contributing to each peak.
    """

    two_theta: np.ndarray
    intensity: np.ndarray
    d: np.ndarray
    hkl: np.ndarray


@lru_cache(maxsize=1)
def wavelengths() -> dict[str, float]:
    """Named characteristic lines (CuKa1, CoKa1, MoKa1, AgKa1, CrKa1, ...) in Angstrom."""
    doc = json.loads(files("synthxrd.resources").joinpath("wavelengths.json").read_text())
    return dict(doc["lines"])


def resolve_wavelength(wavelength: float | str) -> float:
    """A wavelength in Angstrom from a number or a line name (case-insensitive, e.g. ``"CuKa1"``)."""
    if isinstance(wavelength, str):
        table = {k.lower(): v for k, v in wavelengths().items()}
        try:
            return float(table[wavelength.strip().lower()])
        except KeyError:
            try:
                wavelength = float(wavelength)
            except ValueError:
                raise ConfigError(
                    f"wavelength: unknown name {wavelength!r}; give a value in Angstrom or one of "
                    f"{', '.join(sorted(wavelengths()))}"
                ) from None
    try:
        value = float(wavelength)
    except (TypeError, ValueError):
        raise ConfigError(f"wavelength: expected a value in Angstrom or a line name, got {wavelength!r:.80}") from None
    if not (math.isfinite(value) and 0.01 < value < 100.0):
        raise ConfigError(f"wavelength: {wavelength!r} Angstrom is not a usable X-ray wavelength (0.01-100)")
    return value


def _check_range(two_theta_range) -> tuple[float, float]:
    try:
        lo, hi = (float(t) for t in two_theta_range)
    except (TypeError, ValueError):
        raise ConfigError(f"two_theta_range: expected (min, max) in degrees, got {two_theta_range!r}") from None
    if not (0.0 <= lo < hi <= 180.0):
        raise ConfigError(f"two_theta_range: need 0 <= min < max <= 180 degrees 2theta, got ({lo}, {hi})")
    return lo, hi


def _debye_waller_table(debye_waller: Mapping[str, float] | None) -> np.ndarray:
    dw = np.zeros(len(scattering_table()[1]))
    for symbol, b in (debye_waller or {}).items():
        if not (math.isfinite(float(b)) and b >= 0):
            raise ConfigError(f"debye_waller: B for {symbol} must be a finite value >= 0 Angstrom^2, got {b}")
        dw[element_z(symbol, source="debye_waller")] = float(b)
    return dw


def _reflections(crystal, wavelength: float, g_min: float, g_max: float, dw: np.ndarray):
    _, a, b = scattering_table()
    return _kernels.reflections(crystal.lattice, crystal.frac_coords, crystal.numbers, crystal.occupancies,
                                a, b, dw, wavelength, g_min, g_max)


def peak_list(
    structure: StructureLike,
    *,
    wavelength: float | str = DEFAULT_WAVELENGTH,
    two_theta_range: tuple[float, float] = DEFAULT_TWO_THETA_RANGE,
    debye_waller: Mapping[str, float] | None = None,
) -> PeakList:
    """Peak positions, intensities, d-spacings and hkl of a structure (see :func:`peaks`)."""
    lam = resolve_wavelength(wavelength)
    g_min, g_max = physics.g_range(_check_range(two_theta_range), lam)
    crystal = to_crystal(structure)
    hkl, g, intensity = _reflections(crystal, lam, g_min, g_max, _debye_waller_table(debye_waller))
    return PeakList(*physics.merge_peaks(hkl, g, intensity, lam))


def peaks(
    structure: StructureLike,
    wavelength: float | str = DEFAULT_WAVELENGTH,
    two_theta_range: tuple[float, float] = DEFAULT_TWO_THETA_RANGE,
    *,
    debye_waller: Mapping[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Kinematic powder-diffraction peaks of a structure, identical to pymatgen's ``XRDCalculator``.

    Equals ``XRDCalculator(wavelength, debye_waller_factors=...).get_pattern(structure,
    two_theta_range=...)`` divided by 100: every reciprocal point with |g| = 2 sin(theta)/lambda in
    the window, F = sum_j f_j occ_j exp(2 pi i g.r_j) exp(-B s^2),
    I = |F|^2 (1 + cos^2 2theta)/(sin^2 theta cos theta); reflections within 1e-5 degrees merged,
    peaks below 1e-5 of the maximum dropped (see :mod:`synthxrd.simulate.physics`).

    Parameters
    ----------
    structure : pymatgen ``Structure``, ASE ``Atoms``, CIF path or :class:`~synthxrd.structure.Crystal`.
    wavelength : Angstrom, or a line name such as ``"CuKa1"``.
    two_theta_range : (min, max) degrees 2theta.
    debye_waller : optional isotropic B (Angstrom^2) per element symbol; default none (as pymatgen).

    Returns
    -------
    two_theta : (P,) float64 degrees, sorted; intensity : (P,) float64 with maximum 1.

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [.5, .5, .5]])
    >>> tt, i = peaks(nacl)
    >>> round(float(tt[0]), 3), round(float(tt[i.argmax()]), 3)
    (27.367, 31.704)
    """
    result = peak_list(structure, wavelength=wavelength, two_theta_range=two_theta_range, debye_waller=debye_waller)
    return result.two_theta, result.intensity


def _sigma_coefficient(wavelength: float, size_nm: float) -> float:
    """c such that sigma(2theta) = c / cos(theta) in degrees (Scherrer)."""
    return math.degrees(SCHERRER_K * wavelength / (10.0 * size_nm)) / (2.0 * math.sqrt(2.0 * math.log(2.0)))


@lru_cache(maxsize=256)
def _extended_g_range(grid: Grid, wavelength: float, min_size_nm: float) -> tuple[float, float]:
    """|g| window covering the grid plus 7 sigma, so tails of peaks just outside are included."""
    c = _sigma_coefficient(wavelength, min_size_nm)
    sigma_at = (lambda tt: c / math.cos(math.radians(min(tt, 179.0) / 2.0)))
    hi = grid.stop + _kernels.WINDOW_SIGMAS * sigma_at(grid.stop)
    hi = grid.stop + _kernels.WINDOW_SIGMAS * sigma_at(hi)  # sigma grows with angle: one refinement
    lo = max(grid.start - _kernels.WINDOW_SIGMAS * sigma_at(grid.start), 0.0)
    return physics.g_range((lo, min(hi, 180.0)), wavelength)


def _sizes(n: int, crystallite_size_nm, rng: np.random.Generator | None) -> np.ndarray:
    if crystallite_size_nm is None:
        rng = np.random.default_rng() if rng is None else rng
        return rng.uniform(*DEFAULT_SIZE_RANGE_NM, size=n)
    try:
        sizes = np.full(n, float(crystallite_size_nm)) if np.ndim(crystallite_size_nm) == 0 else \
            np.array(crystallite_size_nm, np.float64).reshape(n)
    except (TypeError, ValueError):
        raise ConfigError(f"crystallite_size_nm: expected a number or {n} numbers in nm, got {crystallite_size_nm!r:.80}") from None
    if not np.all(np.isfinite(sizes) & (sizes > 0.5)):
        raise ConfigError(f"crystallite_size_nm: need sizes > 0.5 nm, got {crystallite_size_nm!r}")
    return sizes


def smear(
    two_theta: np.ndarray,
    intensity: np.ndarray,
    crystallite_size_nm: float,
    *,
    wavelength: float | str = DEFAULT_WAVELENGTH,
    grid: Grid | None = None,
) -> np.ndarray:
    """Gaussian-Scherrer profile of a peak list on a grid, not normalised (float64).

    Each peak becomes an area-normalised Gaussian with FWHM(2theta, rad) = K lambda/(tau cos theta),
    K = 0.9, evaluated within +-7 sigma (<= 2.3e-11 of a peak's height omitted).
    """
    grid = grid or Grid()
    two_theta = np.ascontiguousarray(two_theta, np.float64)
    intensity = np.ascontiguousarray(intensity, np.float64)
    if two_theta.ndim != 1 or two_theta.shape != intensity.shape:
        raise ConfigError(f"smear: two_theta {two_theta.shape} and intensity {intensity.shape} must be 1-D of equal length")
    if not (np.isfinite(two_theta).all() and np.isfinite(intensity).all()):
        raise ConfigError("smear: two_theta and intensity must be finite (found NaN/inf)")
    if crystallite_size_nm is None:
        raise ConfigError("smear: crystallite_size_nm is required (nm)")
    size = _sizes(1, crystallite_size_nm, None)[0]
    out = np.zeros(grid.n)
    _kernels.smear(two_theta, intensity, 10.0 * size, resolve_wavelength(wavelength), SCHERRER_K, grid.start, grid.step, out)
    return out


def patterns(
    batch: CrystalBatch,
    *,
    rng: np.random.Generator | None = None,
    crystallite_size_nm: float | np.ndarray | None = None,
    grid: Grid | None = None,
    wavelength: float | str = DEFAULT_WAVELENGTH,
    debye_waller: Mapping[str, float] | None = None,
    allow_empty: bool = False,
) -> np.ndarray:
    """Broadened, normalised patterns of many crystals at once, without pymatgen objects.

    Parameters
    ----------
    batch : :class:`~synthxrd.structure.CrystalBatch` (lattices, fractional coordinates, atomic
        numbers, occupancies, offsets).
    rng : draws one crystallite size per pattern from U(20, 100) nm when ``crystallite_size_nm`` is
        None (a fresh generator if both are None).
    crystallite_size_nm : one size or (N,) sizes in nm.
    grid : :class:`Grid`, default 5-90 degrees, 8501 points.
    allow_empty : if False (default), a crystal without any reflection in range raises
        :class:`~synthxrd.errors.StructureError`; if True its row is all zeros.

    Returns
    -------
    (N, n_grid) float32, each row with maximum 1 (the smeared peak list of :func:`peaks`, computed
    over the grid range widened by 7 sigma so that tails of peaks just outside it are included).
    """
    if not isinstance(batch, CrystalBatch):
        raise StructureError(f"patterns: expected a CrystalBatch, got {type(batch).__name__}")
    return _simulate(batch.lattices, batch, rng, crystallite_size_nm, grid, wavelength, debye_waller, allow_empty)


def _simulate(lattices, crystals, rng, crystallite_size_nm, grid, wavelength, debye_waller, allow_empty):
    """Run the batched kernel on validated arrays (a CrystalBatch, or one Crystal with lattices[None])."""
    grid = grid or Grid()
    lam = resolve_wavelength(wavelength)
    n = len(lattices)
    sizes = _sizes(n, crystallite_size_nm, rng)
    out = np.zeros((n, grid.n), np.float32)
    if n == 0:
        return out
    g_min, g_max = _extended_g_range(grid, lam, float(sizes.min()))
    _, a, b = scattering_table()
    status = _kernels.batch_patterns(
        lattices, crystals.frac_coords, crystals.numbers, crystals.occupancies, crystals.offsets, a, b,
        _debye_waller_table(debye_waller), lam, g_min, g_max, 10.0 * sizes, SCHERRER_K,
        grid.start, grid.step, physics.TWO_THETA_TOL, physics.SCALED_INTENSITY_TOL, out,
    )
    if not allow_empty and not status.all():
        bad = np.flatnonzero(status == 0)
        raise StructureError(
            f"patterns: crystal(s) {bad[:10].tolist()} have no reflection between {grid.start} and "
            f"{grid.stop} degrees 2theta (cell too small for lambda = {lam} A?)"
        )
    return out


def pattern(
    structure: StructureLike,
    *,
    rng: np.random.Generator | None = None,
    crystallite_size_nm: float | None = None,
    grid: Grid | None = None,
    wavelength: float | str = DEFAULT_WAVELENGTH,
    debye_waller: Mapping[str, float] | None = None,
) -> np.ndarray:
    """Gaussian-Scherrer powder pattern of one structure, (n_grid,) float32 with maximum 1.

    The peaks of :func:`peaks`, each an area-normalised Gaussian with FWHM(2theta, rad) =
    0.9 lambda / (tau cos theta), tau ~ U(20, 100) nm drawn from ``rng`` unless
    ``crystallite_size_nm`` is given; default grid 5-90 degrees, 8501 points (DESIGN.md).
    The network input is ``sqrt(pattern)``.
    """
    crystal = to_crystal(structure)
    return _simulate(np.ascontiguousarray(crystal.lattice)[None], crystal, rng, crystallite_size_nm, grid,
                     wavelength, debye_waller, False)[0]
