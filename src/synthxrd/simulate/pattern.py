"""Public simulator: exact peak lists, broadened patterns, and a batched form for many crystals."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from synthxrd.errors import ConfigError, StructureError
from synthxrd.simulate import _kernels, physics
from synthxrd.simulate.common import (
    DEFAULT_SIZE_RANGE_NM,
    DEFAULT_TWO_THETA_RANGE,
    DEFAULT_WAVELENGTH,
    SCHERRER_K,
    Grid,
    check_range,
    check_reflection_count,
    crystallite_sizes,
    extended_g_range,
    resolve_wavelength,
    wavelengths,
)
from synthxrd.structure import CrystalBatch, StructureLike, element_z, scattering_table, to_crystal

__all__ = [
    "DEFAULT_WAVELENGTH",
    "DEFAULT_TWO_THETA_RANGE",
    "DEFAULT_SIZE_RANGE_NM",
    "SCHERRER_K",
    "Grid",
    "PeakList",
    "ReflectionBatch",
    "reflections",
    "wavelengths",
    "resolve_wavelength",
    "peak_list",
    "peaks",
    "pattern",
    "patterns",
    "smear",
]


@dataclass(frozen=True)
class ReflectionBatch:
    """Unmerged reflections of N crystals (one Friedel half-space), packed with offsets.

    Attributes
    ----------
    two_theta : (R,) float64, degrees.
    intensity : (R,) float64, 2 |F|^2 LP (the Friedel mate -hkl included), not normalised.
    hkl : (R, 3) int64 Miller indices (the mate -hkl has the same intensity and |g|).
    offsets : (N + 1,) int64; crystal i owns rows offsets[i]:offsets[i + 1], sorted by 2theta.
    """

    two_theta: np.ndarray
    intensity: np.ndarray
    hkl: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1


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


def _debye_waller_table(debye_waller: Mapping[str, float] | None) -> np.ndarray:
    dw = np.zeros(len(scattering_table()[1]))
    for symbol, b in (debye_waller or {}).items():
        if not (math.isfinite(float(b)) and b >= 0):
            raise ConfigError(f"debye_waller: B for {symbol} must be a finite value >= 0 Angstrom^2, got {b}")
        dw[element_z(symbol, source="debye_waller")] = float(b)
    return dw


def _reflections(crystal, wavelength: float, g_min: float, g_max: float, dw: np.ndarray):
    check_reflection_count(crystal.lattice, g_max, atoms=len(crystal.numbers))
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
    g_min, g_max = physics.g_range(check_range(two_theta_range), lam)
    crystal = to_crystal(structure)
    hkl, g, intensity = _reflections(crystal, lam, g_min, g_max, _debye_waller_table(debye_waller))
    return PeakList(*physics.merge_peaks(hkl, g, intensity, lam))


def reflections(
    batch: CrystalBatch,
    *,
    wavelength: float | str = DEFAULT_WAVELENGTH,
    two_theta_range: tuple[float, float] = DEFAULT_TWO_THETA_RANGE,
    debye_waller: Mapping[str, float] | None = None,
) -> ReflectionBatch:
    """Every reflection of every crystal of ``batch`` in the window, unmerged, with hkl.

    The input of effects that act per reflection (texture, anisotropic broadening, Kalpha2 doublets;
    :mod:`synthxrd.augment`). Same physics as :func:`peaks`; intensities are not normalised.
    """
    if not isinstance(batch, CrystalBatch):
        raise StructureError(f"reflections: expected a CrystalBatch, got {type(batch).__name__}")
    lam = resolve_wavelength(wavelength)
    g_min, g_max = physics.g_range(check_range(two_theta_range), lam)
    dw = _debye_waller_table(debye_waller)
    parts = [_reflections(batch[i], lam, g_min, g_max, dw) for i in range(len(batch))]
    offsets = np.zeros(len(parts) + 1, np.int64)
    offsets[1:] = np.cumsum([len(g) for _, g, _ in parts])
    g = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0)
    return ReflectionBatch(
        physics.two_theta_of_g(g, lam),
        np.concatenate([p[2] for p in parts]) if parts else np.zeros(0),
        np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 3), np.int64),
        offsets,
    )


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
    size = crystallite_sizes(1, crystallite_size_nm, None)[0]
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
    sizes = crystallite_sizes(n, crystallite_size_nm, rng)
    out = np.zeros((n, grid.n), np.float32)
    if n == 0:
        return out
    g_min, g_max = extended_g_range(grid, lam, float(sizes.min()))
    check_reflection_count(lattices, g_max, atoms=np.diff(crystals.offsets))
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
    ``crystallite_size_nm`` is given; default grid 5-90 degrees, 8501 points (docs/architecture.md).
    The network input is ``sqrt(pattern)``.
    """
    crystal = to_crystal(structure)
    return _simulate(np.ascontiguousarray(crystal.lattice)[None], crystal, rng, crystallite_size_nm, grid,
                     wavelength, debye_waller, False)[0]
