"""Line lists: the pseudo-Voigt lines of N patterns (stages 1-5 and 10 of :mod:`synthxrd.augment`).

Per-reflection Debye-Waller and texture factors, the impurity phase, the K-alpha doublet, peak
shifts and the Thompson-Cox-Hastings widths, computed by the compiled
:func:`synthxrd.simulate._profiles.build_lines`; then the detection limit (:func:`detection_cut`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthxrd.augment.parameters import AugmentParameters
from synthxrd.errors import StructureError
from synthxrd.simulate import _profiles
from synthxrd.simulate.common import DEFAULT_WAVELENGTH, SCHERRER_K, Grid, resolve_wavelength
from synthxrd.simulate.pattern import ReflectionBatch
from synthxrd.structure import CrystalBatch

__all__ = ["MERGE_TOL_DEG", "REL_DROP", "LineList", "detection_cut", "line_list"]

#: Reflections within this many degrees 2theta (sorted neighbours) are one line: symmetry
#: equivalents differ by ~1e-13 degrees; merging is exact for the profile.
MERGE_TOL_DEG = 1e-6
#: Merged peaks below this fraction of the strongest are not rendered (invisible under any noise).
REL_DROP = 1e-6


@dataclass(frozen=True)
class LineList:
    """Rendered lines of N patterns, packed: pattern i owns rows offsets[i]:offsets[i + 1].

    center (degrees, shifted), intensity (integrated, not normalised), fwhm (degrees), eta.
    """

    center: np.ndarray
    intensity: np.ndarray
    fwhm: np.ndarray
    eta: np.ndarray
    offsets: np.ndarray


def _check_inputs(crystals: CrystalBatch, refl: ReflectionBatch, params: AugmentParameters | None = None) -> None:
    if not isinstance(crystals, CrystalBatch):
        raise StructureError(f"augment: expected a CrystalBatch, got {type(crystals).__name__}")
    if not isinstance(refl, ReflectionBatch):
        raise StructureError(f"augment: expected a ReflectionBatch, got {type(refl).__name__}")
    if len(refl) != len(crystals) or (params is not None and len(params) != len(crystals)):
        raise StructureError(f"augment: {len(crystals)} crystals but {len(refl)} reflection lists"
                             + ("" if params is None else f" and {len(params)} parameter sets"))


def line_list(
    crystals: CrystalBatch,
    refl: ReflectionBatch,
    params: AugmentParameters,
    *,
    grid: Grid = Grid(),
    wavelength: float | str = DEFAULT_WAVELENGTH,
) -> LineList:
    """The lines (stages 1-5 of :mod:`synthxrd.augment`) that :func:`render_with` draws.

    The impurity scale and the :data:`REL_DROP` cut refer to the strongest merged peak on ``grid``.
    """
    _check_inputs(crystals, refl, params)
    lam = resolve_wavelength(wavelength)
    p = params
    n = len(crystals)
    recip = np.ascontiguousarray(np.linalg.inv(crystals.lattices).transpose(0, 2, 1)) if n else np.zeros((0, 3, 3))
    rows = np.diff(refl.offsets)
    imp_rows = np.where(p.impurity_index >= 0, rows[np.clip(p.impurity_index, 0, None)], 0) if n else rows
    capacity = int(2 * (rows.sum() + imp_rows.sum()))
    f64 = (lambda a: np.ascontiguousarray(a, np.float64))
    offsets, center, inten, fwhm, eta = _profiles.build_lines(
        f64(refl.two_theta), f64(refl.intensity), np.ascontiguousarray(refl.hkl, np.int64),
        np.ascontiguousarray(refl.offsets, np.int64), recip, f64(p.texture_direction), f64(p.texture_r),
        f64(p.debye_waller_b), np.ascontiguousarray(p.impurity_index, np.int64), f64(p.impurity_fraction),
        lam, float(p.lambda_ratio), f64(p.kalpha2_ratio), f64(p.zero_shift_deg),
        f64(p.displacement_mm / p.radius_mm), 10.0 * f64(p.size_nm), f64(p.strain_epsilon), f64(p.caglioti_u),
        f64(p.caglioti_v), f64(p.caglioti_w), f64(p.lorentz_x), f64(p.lorentz_y), f64(p.lorentz_fraction),
        SCHERRER_K, MERGE_TOL_DEG, REL_DROP, float(grid.start), float(grid.stop), capacity,
    )
    if p.detection_limit is not None:
        inten = detection_cut(center, inten, offsets, p.detection_limit, grid)
    return LineList(center, inten, fwhm, eta, offsets)


def detection_cut(center: np.ndarray, intensity: np.ndarray, offsets: np.ndarray, limit: np.ndarray,
                  grid: Grid = Grid()) -> np.ndarray:
    """Line intensities with every line of pattern i below ``limit[i]`` x its strongest line on
    ``grid`` set to 0 (stage 10, the detection limit).

    A measured pattern shows a reflection only where it rises above the noise and the background
    left by its subtraction: three noise sigmas of the RRUFF scans are 0.3-11 % of the strongest
    point (5-95 %, median 1.9 %; docs/realism.md#detection-limit-the-measured-preset), while a
    simulation keeps lines down to 1e-6 of the strongest. Each line (K-alpha2 and impurity lines
    included) is cut on its own integrated intensity, as each is detected on its own; ``limit`` 0
    keeps every line.
    """
    out = np.array(intensity, np.float64)
    on_grid = (center >= grid.start) & (center <= grid.stop)
    for i, lim in enumerate(np.asarray(limit, np.float64)):
        a, b = offsets[i], offsets[i + 1]
        if lim <= 0 or not on_grid[a:b].any():
            continue
        seg = out[a:b]
        seg[seg < lim * seg[on_grid[a:b]].max()] = 0.0
    return out

