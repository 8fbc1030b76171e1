"""Numba-free pieces of the simulator shared by the numba path (``pattern``) and the torch path
(``torch_sim``): defaults, the 2theta grid, wavelengths, and the crystallite-size arithmetic.

Importing this module needs only numpy (a GPU node may lack numba).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

import numpy as np

from synthxrd.errors import ConfigError, StructureError
from synthxrd.simulate import physics
from synthxrd.simulate.physics import DEFAULT_WAVELENGTH, SCHERRER_K, scherrer_fwhm

__all__ = [
    "DEFAULT_WAVELENGTH",
    "DEFAULT_TWO_THETA_RANGE",
    "DEFAULT_SIZE_RANGE_NM",
    "SCHERRER_K",
    "WINDOW_SIGMAS",
    "Grid",
    "wavelengths",
    "resolve_wavelength",
    "check_range",
    "sigma_coefficient",
    "MAX_REFLECTIONS",
    "MAX_REFLECTION_ATOMS",
    "check_reflection_count",
    "extended_g_range",
    "crystallite_sizes",
]

DEFAULT_TWO_THETA_RANGE = (5.0, 90.0)
#: Crystallite sizes tau ~ U(20, 100) nm, drawn once per pattern (Schopmans et al. 2023).
DEFAULT_SIZE_RANGE_NM = (20.0, 100.0)
#: Gaussian windows extend to +-WINDOW_SIGMAS sigma: exp(-7^2/2) = 2.3e-11 of the peak height is
#: dropped, far below the 1e-6 agreement with full-grid evaluation that the tests demand.
WINDOW_SIGMAS = 7.0


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

    @classmethod
    def from_step(cls, start: float, stop: float, step: float) -> Grid:
        """The grid from ``start`` to ``stop`` whose spacing is closest to ``step`` degrees."""
        if not (math.isfinite(step) and step > 0):
            raise ConfigError(f"grid: need a step > 0 degrees, got {step}")
        if not (math.isfinite(start) and math.isfinite(stop)):  # NaN and inf have no number of points
            raise ConfigError(f"grid: need finite start and stop degrees 2theta, got start={start}, stop={stop}")
        return cls(float(start), float(stop), int(round((stop - start) / step)) + 1)

    @property
    def step(self) -> float:
        """Grid spacing in degrees."""
        return (self.stop - self.start) / (self.n - 1)

    def values(self) -> np.ndarray:
        """The grid points, (n,) float64 degrees."""
        return np.linspace(self.start, self.stop, self.n)


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
    if not (math.isfinite(value) and 0.01 <= value <= 100.0):
        raise ConfigError(f"wavelength: {wavelength!r} Angstrom is not a usable X-ray wavelength (0.01 to 100 Angstrom)")
    return value


def check_range(two_theta_range) -> tuple[float, float]:
    try:
        lo, hi = (float(t) for t in two_theta_range)
    except (TypeError, ValueError):
        raise ConfigError(f"two_theta_range: expected (min, max) in degrees, got {two_theta_range!r}") from None
    if not (0.0 <= lo < hi <= 180.0):
        raise ConfigError(f"two_theta_range: need 0 <= min < max <= 180 degrees 2theta, got ({lo}, {hi})")
    return lo, hi


def sigma_coefficient(wavelength: float, size_nm: float) -> float:
    """c such that sigma(2theta) = c / cos(theta) in degrees (:func:`~synthxrd.simulate.physics.scherrer_fwhm`);
    floats, numpy arrays and torch tensors alike."""
    return physics.FWHM_TO_SIGMA * scherrer_fwhm(wavelength, size_nm)


#: Most reciprocal-lattice points a crystal may have in the window: about 900,000 A^3 of cell at Cu
#: K-alpha1 up to 90 degrees, beyond any crystal of this tool's kind (a cell given in the wrong units,
#: e.g. pm, or a hostile file would otherwise run for hours and fill the memory).
MAX_REFLECTIONS = 5_000_000
#: Most reflections x atoms (terms of the structure factors, about 3 ns each on one core) a crystal may
#: cost: about 5 s. Generated crystals (<= 7000 A^3, >= 0.75 A^3 per atom) stay below 3e8; a 60 A cell
#: with 20,000 atoms (1.4e10) would run for minutes.
MAX_REFLECTION_ATOMS = 2_000_000_000


def check_reflection_count(lattices: np.ndarray, g_max: float, atoms: np.ndarray | None = None) -> None:
    """:class:`StructureError` when a cell has more than :data:`MAX_REFLECTIONS` reciprocal-lattice
    points with |g| <= ``g_max``: their number is about (4 pi / 3) g_max^3 V, V the cell volume (the
    reciprocal cell has volume 1 / V); or, given the number of ``atoms`` of each cell, when reflections
    x atoms (the terms of the structure factors, the work) exceed :data:`MAX_REFLECTION_ATOMS`."""
    volumes = np.abs(np.linalg.det(np.asarray(lattices, np.float64).reshape(-1, 3, 3)))
    expected = 4.0 / 3.0 * math.pi * g_max**3 * volumes
    bad = np.flatnonzero(~(expected <= MAX_REFLECTIONS))
    if bad.size:
        i = int(bad[0])
        raise StructureError(
            f"crystal {i}: a cell of {volumes[i]:.3g} A^3 has about {expected[i]:.3g} reflections in the window, "
            f"more than {MAX_REFLECTIONS:,} (check the cell lengths and their units, Angstrom)")
    if atoms is None:
        return
    atoms = np.broadcast_to(np.asarray(atoms, np.float64), expected.shape)
    bad = np.flatnonzero(~(expected * atoms <= MAX_REFLECTION_ATOMS))
    if bad.size:
        i = int(bad[0])
        raise StructureError(
            f"crystal {i}: about {expected[i]:.3g} reflections in the window x {int(atoms[i]):,} atoms = "
            f"{expected[i] * atoms[i]:.3g} structure-factor terms, more than the limit of {MAX_REFLECTION_ATOMS:.0e} "
            "(minutes of work or more; a smaller cell, fewer atoms or a narrower 2theta window)")


@lru_cache(maxsize=256)
def extended_g_range(grid: Grid, wavelength: float, min_size_nm: float) -> tuple[float, float]:
    """|g| window covering the grid plus 7 sigma, so tails of peaks just outside are included."""
    c = sigma_coefficient(wavelength, min_size_nm)
    sigma_at = (lambda tt: c / math.cos(math.radians(min(tt, 179.0) / 2.0)))
    hi = grid.stop + WINDOW_SIGMAS * sigma_at(grid.stop)
    hi = grid.stop + WINDOW_SIGMAS * sigma_at(hi)  # sigma grows with angle: one refinement
    lo = max(grid.start - WINDOW_SIGMAS * sigma_at(grid.start), 0.0)
    return physics.g_range((lo, min(hi, 180.0)), wavelength)


def crystallite_sizes(n: int, crystallite_size_nm, rng: np.random.Generator | None) -> np.ndarray:
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


