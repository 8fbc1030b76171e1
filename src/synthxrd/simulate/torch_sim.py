"""Batched pattern simulation in torch, for the GPU data path (numpy + torch only, no numba).

CPU workers generate crystals (:meth:`synthxrd.generate.Generator.sample_batch` ->
:class:`~synthxrd.structure.CrystalBatch`); the accelerator enumerates reflections, computes
structure factors, merges and thresholds peaks and smears them onto the grid. The result equals
:func:`synthxrd.simulate.patterns` (same physics, same 7-sigma-extended |g| window, same peak
merging and 1e-5 drop rule, same normalisation) to < 1e-7 of the maximum in float64 and < 1e-6
in float32.

Pipeline (everything after the packing of the atoms runs on ``device``):

1. :class:`PaddedCrystals` (host, numpy): atoms in blocks of 8 (only each crystal's last block is
   padded), the distinct elements of each crystal as a small (N, E) table so that form factors
   are evaluated once per (reflection, element). Can be built in data-loader workers.
2. :func:`enumerate_reflections` / ``_enumerate_flat``: one Friedel half-space of each crystal's
   reflections with g_min <= |g| <= g_max, as one crystal-major list. For each (h, k) column of
   the box |h| <= g_max |a|, |k| <= g_max |b| the admissible l form one interval (root of a
   quadratic, as in the numba kernel) and ``repeat_interleave`` expands them: no rejected box
   points, no host work, no transfer of reflection lists.
3. Sort by (crystal, |g|) (two stable sorts); structure factors on tiles of 64 consecutive
   reflections of one crystal x one atom block: phases h.r in float64 reduced to (-1, 1) cycles
   *before* the cast to ``dtype`` (|h.r| reaches ~100 cycles, which float32 would resolve to only
   ~1e-5 cycles), F = sum_j f_j occ_j exp(2 pi i h.r_j) with elementwise sums (no float32 matmul,
   so TF32 settings cannot degrade it). Work is that of the real (reflection, atom) pairs plus a
   few percent, whatever the spread of cell sizes in a batch (padding every crystal to the
   largest R and A of a chunk wastes 3x on generated batches).
4. I = 2 |F|^2 LP; reflections of one crystal whose 2theta round to the same multiple of 1e-5
   degrees are one peak at the first one's 2theta (pymatgen's rule, keys in float64); peaks
   <= 1e-5 of the crystal's strongest are dropped (exactly the numba path's rule).
5. Each kept peak is an area-normalised Gaussian on 2 half + 1 grid points around its nearest
   grid point, half >= 7 sigma rounded up to levels of ratio 1.25 (one (P, W) tensor per level),
   ``scatter_add``-ed into the rows; rows normalised to maximum 1.

:func:`patterns_torch` chains these over chunks of consecutive crystals (memory only);
:func:`patterns_from_reflections` starts from padded (N, R, 3) reflections.

Accuracy (tests/simulate/test_torch_sim.py, 53 crystals): float64 agrees with the numba path to
3e-8 of the maximum (the float32 rounding of the numba output); float32 to 4e-7, mostly from the
float32 structure-factor sums (window offsets and phases are formed in float64 and only the small
remainders are rounded to float32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from synthxrd.errors import ConfigError, StructureError
from synthxrd.simulate import common, physics
from synthxrd.simulate.common import DEFAULT_WAVELENGTH, WINDOW_SIGMAS, Grid, sigma_coefficient
from synthxrd.structure import scattering_table

__all__ = [
    "DEFAULT_GRID",
    "PaddedCrystals",
    "enumerate_reflections",
    "extended_g_range",
    "patterns_from_reflections",
    "patterns_torch",
]

#: (start, stop, n) of the default grid.
DEFAULT_GRID = (Grid().start, Grid().stop, Grid().n)
_BOUND_EPS = 1e-9
#: Atoms are stored in blocks of this many (the last block of a crystal padded), reflections are
#: processed in tiles of this many; a (tile x block) pair is the unit of structure-factor work.
ATOM_BLOCK = 8
REFLECTION_TILE = 64
#: (reflection, atom) pairs and (peak, window point) pairs held at once: the phase tensors take
#: ~40 bytes per pair in float32, ~60 in float64.
_PAIR_BUDGET = {"cuda": 1 << 26, "cpu": 1 << 20}
#: Expected reflections per chunk of crystals (default of ``max_reflections``).
_REFLECTION_BUDGET = {"cuda": 1 << 23, "cpu": 1 << 18}


# ----------------------------------------------------------------------------------------------
# tables and parameters


@lru_cache(maxsize=16)
def _device_table(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The form-factor coefficients as tensors on ``device`` (cached: one copy per device and dtype)."""
    return tuple(torch.as_tensor(t, dtype=dtype, device=device) for t in scattering_table()[1:])


def _grid(grid: Any) -> tuple[float, float, int]:
    """(start, stop, n) of a ``synthxrd.simulate.Grid``, any object with those attributes, or a tuple."""
    if grid is None:
        return DEFAULT_GRID
    try:
        start, stop, n = (grid.start, grid.stop, grid.n) if hasattr(grid, "start") else grid
        start, stop, n_int = float(start), float(stop), int(n)
    except (TypeError, ValueError):
        raise ConfigError(f"grid: expected a Grid or (start, stop, n), got {grid!r:.80}") from None
    if not (0.0 < start < stop < 180.0) or n_int != n or n_int < 2:
        raise ConfigError(f"grid: need 0 < start < stop < 180 degrees 2theta and n >= 2 points, got {grid!r}")
    return start, stop, n_int


def extended_g_range(grid: Any, wavelength: float, min_size_nm: float) -> tuple[float, float]:
    """|g| window of the grid widened by 7 sigma of the narrowest size (as the numba path)."""
    return common.extended_g_range(Grid(*_grid(grid)), wavelength, min_size_nm)


def _sizes(n: int, crystallite_size_nm) -> np.ndarray:
    if crystallite_size_nm is None:
        raise ConfigError("crystallite_size_nm is required (one size or one per crystal, nm)")
    if isinstance(crystallite_size_nm, torch.Tensor):
        crystallite_size_nm = crystallite_size_nm.detach().cpu().numpy()
    return common.crystallite_sizes(n, crystallite_size_nm, None)


# ----------------------------------------------------------------------------------------------
# crystals as tensors: atoms in blocks of ATOM_BLOCK


@dataclass(frozen=True)
class PaddedCrystals:
    """N crystals as tensors on one device, atoms grouped in blocks of ``ATOM_BLOCK``.

    Crystal i owns the atom blocks ``block_offsets[i]:block_offsets[i + 1]`` (ceil(n_atoms / B) of
    them; the last one padded with occupancy 0), so no crystal is padded to the largest one.

    Attributes
    ----------
    lattices : (N, 3, 3) float64, rows a, b, c in Angstrom.
    frac : (NB, B, 3) float64 fractional coordinates (padding: 0).
    occupancies : (NB, B) float64 (padding: 0, so padded atoms do not scatter).
    atom_element : (NB, B) int64, column of the atom's element in its crystal's ``element_z`` row.
    element_z : (N, E) int64 distinct atomic numbers of each crystal (padding: 0, a zero table row).
    block_offsets : (N + 1,) int64, **on the CPU** (slicing needs no device sync).
    """

    lattices: torch.Tensor
    frac: torch.Tensor
    occupancies: torch.Tensor
    atom_element: torch.Tensor
    element_z: torch.Tensor
    block_offsets: torch.Tensor

    def __len__(self) -> int:
        return self.lattices.shape[0]

    @property
    def device(self) -> torch.device:
        return self.lattices.device

    @classmethod
    def from_arrays(cls, lattices, frac_coords, numbers, occupancies, offsets, *, device="cpu") -> PaddedCrystals:
        """From the flat arrays of a CrystalBatch (numpy; crystal i owns rows offsets[i]:offsets[i+1])."""
        lattices = np.ascontiguousarray(lattices, np.float64).reshape(-1, 3, 3)
        frac = np.ascontiguousarray(frac_coords, np.float64).reshape(-1, 3)
        z = np.ascontiguousarray(numbers).reshape(-1)
        occ = np.ascontiguousarray(occupancies, np.float64).reshape(-1)
        offsets = np.ascontiguousarray(offsets).reshape(-1)
        n, m = len(lattices), len(z)
        if (z.dtype.kind not in "iu" and m) or offsets.dtype.kind not in "iu":
            raise StructureError("batch: numbers and offsets must hold integers")
        if frac.shape != (m, 3) or occ.shape != (m,) or offsets.shape != (n + 1,) or \
                (n and (offsets[0] != 0 or offsets[-1] != m or np.any(np.diff(offsets) < 0))):
            raise StructureError(
                f"batch: inconsistent shapes lattices {lattices.shape}, frac_coords {frac.shape}, numbers {z.shape}, "
                f"occupancies {occ.shape}, offsets {offsets.shape} (must rise from 0 to {m})")
        n_table = len(scattering_table()[1])
        if m and (z.min() < 1 or z.max() >= n_table):
            raise StructureError(f"batch: atomic numbers must be 1-{n_table - 1} (scattering table), "
                                 f"got {z.min()}-{z.max()}")
        if not (np.isfinite(lattices).all() and np.isfinite(frac).all() and np.isfinite(occ).all()):
            raise StructureError("batch: lattice, fractional coordinates and occupancies must be finite")
        if m and not np.all((occ > 0.0) & (occ <= 1.0 + 1e-6)):
            raise StructureError("batch: occupancies must lie in (0, 1]")
        if n and np.abs(np.linalg.det(lattices)).min() < 1e-3:
            raise StructureError("batch: a lattice is singular (cell volume < 1e-3 A^3)")
        z = z.astype(np.int64)
        offsets = offsets.astype(np.int64)
        counts = np.diff(offsets)
        cid = np.repeat(np.arange(n), counts)
        pos = np.arange(m) - offsets[cid]
        blocks = -(-counts // ATOM_BLOCK)
        block_offsets = np.zeros(n + 1, np.int64)
        np.cumsum(blocks, out=block_offsets[1:])
        block = block_offsets[cid] + pos // ATOM_BLOCK
        slot = pos % ATOM_BLOCK
        # distinct elements per crystal: sorted (crystal, Z) pairs, numbered within each crystal
        pair, inverse = np.unique(cid * n_table + z, return_inverse=True)
        pair_cid = pair // n_table
        el_col = np.arange(len(pair)) - np.searchsorted(pair_cid, pair_cid)
        e_max = max(int(el_col.max()) + 1 if len(pair) else 0, 1)
        nb = int(block_offsets[-1])
        frac_b = np.zeros((nb, ATOM_BLOCK, 3))
        occ_b = np.zeros((nb, ATOM_BLOCK))
        el_b = np.zeros((nb, ATOM_BLOCK), np.int64)
        el_z = np.zeros((n, e_max), np.int64)
        frac_b[block, slot] = frac
        occ_b[block, slot] = occ
        el_b[block, slot] = el_col[inverse.reshape(-1)]
        el_z[pair_cid, el_col] = pair % n_table
        t = (lambda x: torch.from_numpy(x).to(device))
        return cls(t(lattices), t(frac_b), t(occ_b), t(el_b), t(el_z), torch.from_numpy(block_offsets))

    @classmethod
    def from_batch(cls, batch, *, device="cpu") -> PaddedCrystals:
        """From a :class:`~synthxrd.structure.CrystalBatch` (or anything with its five array attributes)."""
        return cls.from_arrays(batch.lattices, batch.frac_coords, batch.numbers, batch.occupancies, batch.offsets,
                               device=device)

    def to(self, device) -> PaddedCrystals:
        """The same crystals on ``device`` (``block_offsets`` stays on the CPU)."""
        return PaddedCrystals(self.lattices.to(device), self.frac.to(device), self.occupancies.to(device),
                              self.atom_element.to(device), self.element_z.to(device), self.block_offsets.cpu())

    def crystal_range(self, start: int, stop: int) -> PaddedCrystals:
        """Crystals start..stop-1 (views, no copy, no device sync)."""
        b0, b1 = int(self.block_offsets[start]), int(self.block_offsets[stop])
        return PaddedCrystals(self.lattices[start:stop], self.frac[b0:b1], self.occupancies[b0:b1],
                              self.atom_element[b0:b1], self.element_z[start:stop],
                              self.block_offsets[start:stop + 1] - b0)


def _as_crystals(batch_or_arrays, device) -> PaddedCrystals:
    if isinstance(batch_or_arrays, PaddedCrystals):
        return batch_or_arrays.to(device)
    if isinstance(batch_or_arrays, dict):
        d = batch_or_arrays
        return PaddedCrystals.from_arrays(d["lattices"], d["frac_coords"], d["numbers"], d["occupancies"],
                                          d["offsets"], device=device)
    if isinstance(batch_or_arrays, (tuple, list)):
        if len(batch_or_arrays) != 5:
            raise StructureError("patterns_torch: expected (lattices, frac_coords, numbers, occupancies, offsets)")
        return PaddedCrystals.from_arrays(*batch_or_arrays, device=device)
    if all(hasattr(batch_or_arrays, f) for f in ("lattices", "frac_coords", "numbers", "occupancies", "offsets")):
        return PaddedCrystals.from_batch(batch_or_arrays, device=device)
    raise StructureError(f"patterns_torch: expected a CrystalBatch, PaddedCrystals or arrays, got "
                         f"{type(batch_or_arrays).__name__}")


# ----------------------------------------------------------------------------------------------
# reflections


def _take(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[index] along dim 0 for an index tensor of any shape (index_select: much faster than x[index] on CPU)."""
    return x.index_select(0, index.reshape(-1)).reshape(*index.shape, *x.shape[1:])


def _g2(hkl: torch.Tensor, gs6: torch.Tensor) -> torch.Tensor:
    """|g|^2 = h G* h^T in float64, term by term as the numba kernel; hkl (M, 3), gs6 (M, 6) of :func:`_metric6`."""
    h, k, l = hkl.to(torch.float64).unbind(-1)
    g = gs6.unbind(-1)
    return g[0] * h * h + g[1] * k * k + g[2] * l * l + 2.0 * (g[3] * h * k + g[4] * h * l + g[5] * k * l)


def _reciprocal_metric(lattices: torch.Tensor) -> torch.Tensor:
    lattices = lattices.to(torch.float64)
    return torch.linalg.inv(lattices @ lattices.transpose(-1, -2))


def _metric6(lattices: torch.Tensor) -> torch.Tensor:
    """(N, 6) components G*00, G*11, G*22, G*01, G*02, G*12 of the reciprocal metric."""
    gs = _reciprocal_metric(lattices)
    return torch.stack([gs[:, 0, 0], gs[:, 1, 1], gs[:, 2, 2], gs[:, 0, 1], gs[:, 0, 2], gs[:, 1, 2]], dim=1)


def _enumerate_flat(lattices: torch.Tensor, g_min: float, g_max: float) -> tuple[torch.Tensor, ...]:
    """Half-space reflections of all crystals as one list, crystal-major: hkl (M, 3) int64, crystal (M,), |g|^2 (M,).

    For each (h, k) column of the box |h| <= g_max |a|, |k| <= g_max |b| the l with |g| <= g_max
    form one interval (root of a quadratic, as in the numba kernel); ``repeat_interleave`` expands
    the intervals, so no rejected box points are visited. Two host syncs (list lengths).
    """
    dev = lattices.device
    n = lattices.shape[0]
    lattices = lattices.to(torch.float64)
    gs6 = _metric6(lattices)
    g_max2, g_min2 = g_max * g_max, g_min * g_min
    bounds = torch.floor(g_max * torch.linalg.vector_norm(lattices, dim=2) + _BOUND_EPS).long()
    h_max, k_max = bounds[:, 0], bounds[:, 1]
    k_span = 2 * k_max + 1
    n_cols = (h_max + 1) * k_span
    total_cols = int(n_cols.sum())
    crystal = torch.repeat_interleave(torch.arange(n, device=dev), n_cols, output_size=total_cols)
    local = torch.arange(total_cols, device=dev) - _take(torch.cumsum(n_cols, 0) - n_cols, crystal)
    span = _take(k_span, crystal)
    h = local // span
    k = local % span - _take(k_max, crystal)
    g00, g11, g22, g01, g02, g12 = _take(gs6, crystal).unbind(1)
    hf, kf = h.to(torch.float64), k.to(torch.float64)
    beta = g02 * hf + g12 * kf
    c = g00 * hf * hf + 2.0 * g01 * hf * kf + g11 * kf * kf
    disc = beta * beta - g22 * (c - g_max2)
    root = torch.sqrt(torch.clamp(disc, min=0.0))
    lo = torch.ceil((-beta - root) / g22 - _BOUND_EPS).long()
    hi = torch.floor((-beta + root) / g22 + _BOUND_EPS).long()
    lo = torch.where((h == 0) & (k == 0), torch.clamp(lo, min=1), lo)
    half_space = (h > 0) | (k >= 0)
    count = torch.where((disc >= 0) & half_space, torch.clamp(hi - lo + 1, min=0), 0)
    total = int(count.sum())
    col = torch.repeat_interleave(torch.arange(total_cols, device=dev), count, output_size=total)
    l = _take(lo, col) + torch.arange(total, device=dev) - _take(torch.cumsum(count, 0) - count, col)
    hkl = torch.stack((_take(h, col), _take(k, col), l), dim=1)
    cid = _take(crystal, col)
    g2 = _g2(hkl, _take(gs6, cid))
    keep = ((g2 <= g_max2) & (g2 >= g_min2)).nonzero().reshape(-1)
    return _take(hkl, keep), _take(cid, keep), _take(g2, keep)


def enumerate_reflections(lattices: torch.Tensor, g_min: float, g_max: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One Friedel half-space of reflections with g_min <= |g| <= g_max per crystal, padded.

    The half-space is h > 0, or h = 0 and k > 0, or h = k = 0 and l > 0 (as the numba kernel).
    Runs on the device of ``lattices``.

    Parameters
    ----------
    lattices : (N, 3, 3) tensor, rows a, b, c in Angstrom.

    Returns
    -------
    hkl : (N, R_max, 3) int64 (padding: 0) and valid : (N, R_max) bool, in (h, k, l) order.
    """
    n = lattices.shape[0]
    dev = lattices.device
    hkl, cid, _ = _enumerate_flat(lattices, g_min, g_max)
    per_crystal = torch.bincount(cid, minlength=n)
    r_max = max(int(per_crystal.max()) if n else 0, 1)
    pos = torch.arange(len(cid), device=dev) - (torch.cumsum(per_crystal, 0) - per_crystal)[cid]
    out = torch.zeros((n, r_max, 3), dtype=torch.int64, device=dev)
    valid = torch.zeros((n, r_max), dtype=torch.bool, device=dev)
    out[cid, pos] = hkl
    valid[cid, pos] = True
    return out, valid


# ----------------------------------------------------------------------------------------------
# structure factors, peaks, profile


def _structure_factors(hkl, cid, g2, counts, crystals: PaddedCrystals, dtype, budget: int):
    """Re and Im of F for a crystal-major reflection list (hkl (M, 3), crystal cid (M,), |g|^2 g2).

    Work is split into tiles of ``REFLECTION_TILE`` consecutive reflections of one crystal times one
    atom block: only the last tile and block of each crystal are partly empty, so the work is that
    of the real (reflection, atom) pairs plus a few percent, whatever the spread of cell sizes.
    Phases h.r are formed in float64 and reduced to (-1, 1) cycles before the cast to ``dtype``;
    the sums over atoms are elementwise (no float32 matmul: TF32 settings cannot degrade them).
    """
    dev = hkl.device
    m = hkl.shape[0]
    n = len(crystals)
    t_len, b_len = REFLECTION_TILE, ATOM_BLOCK
    # form factors per (reflection, element of its crystal); row m is a zero dummy
    a_tab, b_tab = _device_table(dev, dtype)
    s2 = (g2 / 4.0).to(dtype)
    el_z = _take(crystals.element_z, cid)  # (M, E)
    expo = torch.exp(-_take(b_tab, el_z) * s2[:, None, None])  # (M, E, 4)
    f_el = el_z.to(dtype) - physics.FORM_FACTOR_PREFACTOR * s2[:, None] * (_take(a_tab, el_z) * expo).sum(-1)
    del expo, el_z
    f_el = torch.cat([f_el, f_el.new_zeros((1, f_el.shape[1]))])
    hkl64 = torch.cat([hkl.to(torch.float64), hkl.new_zeros((1, 3), dtype=torch.float64)])
    # reflection tiles: T consecutive reflections of one crystal (index m: the zero dummy row)
    starts = torch.cumsum(counts, 0) - counts
    r_tiles = torch.div(counts + t_len - 1, t_len, rounding_mode="floor")
    n_rt = int(r_tiles.sum())
    rt_c = torch.repeat_interleave(torch.arange(n, device=dev), r_tiles, output_size=n_rt)
    rt0 = torch.cumsum(r_tiles, 0) - r_tiles
    r_first = _take(starts, rt_c) + (torch.arange(n_rt, device=dev) - _take(rt0, rt_c)) * t_len
    r_idx = r_first[:, None] + torch.arange(t_len, device=dev)
    r_idx = torch.where(r_idx < _take(starts + counts, rt_c)[:, None], r_idx, m)  # (n_rt, T)
    hkl_t = _take(hkl64, r_idx).transpose(1, 2).contiguous()  # (n_rt, 3, T)
    f_t = _take(f_el, r_idx).transpose(1, 2).contiguous()  # (n_rt, E, T)
    # work tiles: (reflection tile, atom block of the same crystal)
    n_blocks = (crystals.block_offsets[1:] - crystals.block_offsets[:-1]).to(dev)
    block0 = crystals.block_offsets[:-1].to(dev)
    per_rt = _take(n_blocks, rt_c)
    n_tiles = int(per_rt.sum())
    tile_rt = torch.repeat_interleave(torch.arange(n_rt, device=dev), per_rt, output_size=n_tiles)
    tile_block = (_take(_take(block0, rt_c), tile_rt) + torch.arange(n_tiles, device=dev)
                  - _take(torch.cumsum(per_rt, 0) - per_rt, tile_rt))
    acc_re = torch.zeros((n_rt, t_len), dtype=dtype, device=dev)
    acc_im = torch.zeros((n_rt, t_len), dtype=dtype, device=dev)
    occ = crystals.occupancies.to(dtype)
    step = max(1, budget // (t_len * b_len))
    for t0 in range(0, n_tiles, step):
        rt, blk = tile_rt[t0:t0 + step], tile_block[t0:t0 + step]
        phase = torch.bmm(crystals.frac.index_select(0, blk), hkl_t.index_select(0, rt))  # (G, B, T) cycles
        phase = phase.frac_().to(dtype).mul_(2.0 * math.pi)
        index = crystals.atom_element.index_select(0, blk)[:, :, None].expand(-1, -1, t_len)
        fw = torch.gather(f_t.index_select(0, rt), 1, index).mul_(occ.index_select(0, blk)[:, :, None])  # (G, B, T)
        acc_re.index_add_(0, rt, torch.cos(phase).mul_(fw).sum(1))
        acc_im.index_add_(0, rt, phase.sin_().mul_(fw).sum(1))
    f_re = torch.zeros(m + 1, dtype=dtype, device=dev)
    f_im = torch.zeros(m + 1, dtype=dtype, device=dev)
    f_re[r_idx.reshape(-1)] = acc_re.reshape(-1)  # the dummy index m collects padding
    f_im[r_idx.reshape(-1)] = acc_im.reshape(-1)
    return f_re[:m], f_im[:m]


def _lorentz_polarization(g2: torch.Tensor, wavelength: float) -> torch.Tensor:
    """(1 + cos^2 2theta) / (sin^2 theta cos theta) in float64, as the numba kernel (2theta = 180 clipped)."""
    sin_t = torch.clamp(wavelength * torch.sqrt(g2) / 2.0, max=1.0 - 1e-16)
    cos_2t = 1.0 - 2.0 * sin_t * sin_t
    return (1.0 + cos_2t * cos_2t) / (sin_t * sin_t * torch.sqrt(1.0 - sin_t * sin_t))


#: Window half-widths (grid points) are rounded up to one of these levels (ratio 1.25), so that
#: peaks are evaluated in a few groups of equal width instead of all at the widest one.
_HALF_LEVEL_RATIO = 1.25


def _smear(out, rows, two_theta, inten, sizes_nm, wavelength, grid, dtype, budget):
    """Add area-normalised Scherrer Gaussians of flat peaks to ``out`` (n, n_grid), peak q in row rows[q].

    Peak q is evaluated on the grid points within ``half_q`` >= 7 sigma_q of its nearest grid point,
    ``half_q`` rounded up to a level of ratio 1.25 (peaks are processed in groups of equal level).
    The numba path stops at exactly 7 sigma; the extra points hold < exp(-7^2/2) = 2.3e-11 of a
    peak's height. Offsets from the peak centre are formed in float64 and only the fractional
    remainder is rounded to ``dtype``.
    """
    start, stop, n_grid = grid
    step = (stop - start) / (n_grid - 1)
    if len(rows) == 0:
        return
    dev = out.device
    c = sigma_coefficient(wavelength, _take(sizes_nm, rows))  # float64
    sigma = c / torch.cos(torch.deg2rad(two_theta / 2.0))
    half = torch.ceil(WINDOW_SIGMAS * sigma / step).long() + 1
    u = (two_theta - start) / step
    centre = torch.round(u)
    # peaks whose window misses the grid entirely (possible only for reflections given beyond the
    # 7-sigma-extended window) are dropped, so that every window lies inside a padded row
    inside = (centre >= -half) & (centre <= n_grid - 1 + half)
    level = torch.ceil(torch.log(half.to(torch.float64) / 4.0) / math.log(_HALF_LEVEL_RATIO)).clamp(min=0).long()
    level = torch.where(inside, level, -1)
    level, order = torch.sort(level)
    counts = torch.bincount(level + 1).tolist()  # one host sync: peaks per level (index 0: dropped)
    delta = _take((u - centre).to(dtype), order)
    amp = _take((inten.to(torch.float64) / (sigma * math.sqrt(2.0 * math.pi))).to(dtype), order)
    coef = _take((-(step * step) / (2.0 * sigma * sigma)).to(dtype), order)  # exponent per (grid step)^2
    top = math.ceil(4.0 * _HALF_LEVEL_RATIO ** (len(counts) - 2)) if len(counts) > 1 else 1
    pad = 2 * top
    width = n_grid + 2 * pad
    padded = torch.zeros((out.shape[0], width), dtype=dtype, device=dev)
    base = _take(rows, order) * width + _take(centre.long(), order) + pad
    flat = padded.view(-1)
    begin = counts[0]
    for lev, count in enumerate(counts[1:]):
        if count == 0:
            continue
        h = math.ceil(4.0 * _HALF_LEVEL_RATIO ** lev)
        w = torch.arange(-h, h + 1, device=dev)
        wf = w.to(dtype)
        block = max(1, budget // (2 * h + 1))
        for b0 in range(begin, begin + count, block):
            sl = slice(b0, min(b0 + block, begin + count))
            z = wf[None, :] - delta[sl, None]
            z.square_().mul_(coef[sl, None]).exp_().mul_(amp[sl, None])
            flat.scatter_add_(0, (base[sl, None] + w[None, :]).reshape(-1), z.reshape(-1))
        begin += count
    out += padded[:, pad:pad + n_grid]


def _simulate_flat(hkl, cid, g2, crystals: PaddedCrystals, sizes, grid_t, lam, dtype, budget=None):
    """Unnormalised patterns (n, n_grid) from a crystal-major reflection list (g2 = |g|^2 or None)."""
    n = len(crystals)
    dev = crystals.device
    budget = budget or _PAIR_BUDGET["cuda" if dev.type == "cuda" else "cpu"]
    out = torch.zeros((n, grid_t[2]), dtype=dtype, device=dev)
    if n == 0 or hkl.shape[0] == 0:
        return out
    if g2 is None:
        g2 = _g2(hkl, _take(_metric6(crystals.lattices), cid))
    # sort by (crystal, |g|): symmetry-equivalent reflections become neighbours
    order = torch.sort(g2, stable=True).indices
    order = _take(order, torch.sort(_take(cid, order), stable=True).indices)
    hkl, cid, g2 = _take(hkl, order), _take(cid, order), _take(g2, order)
    counts = torch.bincount(cid, minlength=n)
    f_re, f_im = _structure_factors(hkl, cid, g2, counts, crystals, dtype, budget)
    inten = 2.0 * (f_re * f_re + f_im * f_im) * _lorentz_polarization(g2, lam).to(dtype)
    # merge: runs of equal round(2theta / 1e-5 deg) in one crystal are one peak at the first 2theta
    two_theta = torch.rad2deg(2.0 * torch.asin(torch.clamp(lam * torch.sqrt(g2) / 2.0, max=1.0)))
    key = torch.round(two_theta / physics.TWO_THETA_TOL)
    new = torch.ones_like(cid, dtype=torch.bool)
    new[1:] = (key[1:] != key[:-1]) | (cid[1:] != cid[:-1])
    peak = torch.cumsum(new, 0) - 1
    first = new.nonzero().reshape(-1)
    peak_cid, peak_tt = _take(cid, first), _take(two_theta, first)
    peak_int = torch.zeros(len(peak_cid), dtype=dtype, device=dev).index_add_(0, peak, inten)
    # drop peaks <= 1e-5 of their crystal's strongest (pymatgen's rule, as the numba path)
    strongest = torch.zeros(n, dtype=dtype, device=dev).scatter_reduce_(0, peak_cid, peak_int, "amax")
    keep = (peak_int > physics.SCALED_INTENSITY_TOL * _take(strongest, peak_cid)).nonzero().reshape(-1)
    _smear(out, _take(peak_cid, keep), _take(peak_tt, keep), _take(peak_int, keep), sizes, lam, grid_t, dtype, budget)
    return out


def _normalize(out: torch.Tensor) -> torch.Tensor:
    top = out.max(dim=1, keepdim=True).values
    return torch.where(top > 0, out / torch.where(top > 0, top, 1.0), 0.0)


def patterns_from_reflections(
    hkl: torch.Tensor,
    valid: torch.Tensor,
    crystals: PaddedCrystals,
    crystallite_size_nm,
    *,
    grid: Any = None,
    wavelength: float | str = DEFAULT_WAVELENGTH,
    dtype: torch.dtype = torch.float32,
    normalize: bool = True,
) -> torch.Tensor:
    """Patterns of crystals from already-enumerated, padded reflections (no chunking).

    Parameters
    ----------
    hkl : (n, R, 3) integer tensor, valid : (n, R) bool, on the device of ``crystals``: the
        reflections of each crystal, e.g. from :func:`enumerate_reflections`. Give one Friedel
        half-space (as that function does) or the full sphere: both give the same normalised
        pattern. Every given reflection takes part in merging and in the 1e-5 drop rule, so give
        the |g| window of the reference (:func:`extended_g_range`) to reproduce
        :func:`synthxrd.simulate.patterns`.
    crystals : :class:`PaddedCrystals` with n crystals.
    crystallite_size_nm : one size or (n,) sizes in nm.
    normalize : divide each row by its maximum (rows without peaks stay zero).

    Returns
    -------
    (n, n_grid) tensor of ``dtype`` on the device of ``crystals``.
    """
    if dtype not in (torch.float32, torch.float64):
        raise ConfigError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if hkl.ndim != 3 or hkl.shape[2] != 3 or valid.shape != hkl.shape[:2] or len(crystals) != hkl.shape[0]:
        raise ConfigError(f"patterns_from_reflections: need hkl (n, R, 3), valid (n, R) and n crystals, got "
                          f"{tuple(hkl.shape)}, {tuple(valid.shape)}, {len(crystals)}")
    dev = crystals.device
    sizes = torch.as_tensor(_sizes(hkl.shape[0], crystallite_size_nm), dtype=torch.float64, device=dev)
    cid, pos = valid.to(dev).nonzero(as_tuple=True)  # row-major: crystal-major
    out = _simulate_flat(hkl.to(dev)[cid, pos].long(), cid, None, crystals, sizes, _grid(grid),
                         common.resolve_wavelength(wavelength), dtype)
    return _normalize(out) if normalize else out


def patterns_torch(
    batch_or_arrays,
    *,
    crystallite_size_nm,
    grid: Any = None,
    wavelength: float | str = DEFAULT_WAVELENGTH,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    max_reflections: int | None = None,
    allow_empty: bool = False,
) -> torch.Tensor:
    """Broadened, normalised patterns of many crystals, computed with torch on ``device``.

    The torch twin of :func:`synthxrd.simulate.patterns`: same result within ~1e-6 of each row's
    maximum in float32 and ~1e-7 in float64.

    Parameters
    ----------
    batch_or_arrays : a :class:`~synthxrd.structure.CrystalBatch` (or any object with its
        ``lattices, frac_coords, numbers, occupancies, offsets`` arrays), a tuple/dict of those
        numpy arrays, or :class:`PaddedCrystals` (e.g. built by a data-loader worker).
    crystallite_size_nm : one size or (N,) sizes in nm (numpy array or tensor).
    grid : ``synthxrd.simulate.Grid`` or (start, stop, n); default 5-90 degrees, 8501 points.
    wavelength : Angstrom or a line name (``"CuKa1"``).
    device : where to compute (``"cpu"``, ``"cuda"``, ...).
    dtype : torch.float32 (default, GPU) or torch.float64 for the bulk arithmetic; |g|^2, 2theta,
        peak keys, phases before their reduction and the peak windows' offsets are float64.
    max_reflections : crystals are processed in consecutive chunks of about this many expected
        reflections (memory ~ 100 bytes each, plus the (reflection, atom) tiles, which are bounded
        separately); default 2^23 on CUDA, 2^18 on the CPU.
    allow_empty : if False, crystals without reflections in range raise StructureError;
        if True their rows are zero.

    Returns
    -------
    (N, n_grid) tensor of ``dtype`` on ``device``, each row with maximum 1.
    """
    if dtype not in (torch.float32, torch.float64):
        raise ConfigError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    device = torch.device(device)
    lam = common.resolve_wavelength(wavelength)
    grid_t = _grid(grid)
    crystals = _as_crystals(batch_or_arrays, device)
    n = len(crystals)
    sizes = _sizes(n, crystallite_size_nm)
    out = torch.zeros((n, grid_t[2]), dtype=dtype, device=device)
    if n == 0:
        return out
    g_min, g_max = extended_g_range(grid_t, lam, float(sizes.min()))
    # expected half-space reflections 2 pi / 3 g_max^3 V, from the host-side lattices
    volumes = np.abs(np.linalg.det(crystals.lattices.cpu().numpy()))
    expected = np.cumsum(2.0 * math.pi / 3.0 * g_max**3 * volumes + 1.0)
    limit = max_reflections or _REFLECTION_BUDGET["cuda" if device.type == "cuda" else "cpu"]
    sizes_t = torch.as_tensor(sizes, dtype=torch.float64, device=device)
    begin = 0
    while begin < n:
        done = expected[begin - 1] if begin else 0.0
        stop = min(max(begin + 1, int(np.searchsorted(expected, done + limit, side="right"))), n)
        sub = crystals.crystal_range(begin, stop)
        hkl, cid, g2 = _enumerate_flat(sub.lattices, g_min, g_max)
        out[begin:stop] = _normalize(_simulate_flat(hkl, cid, g2, sub, sizes_t[begin:stop], grid_t, lam, dtype))
        begin = stop
    if not allow_empty:
        empty = (out.max(dim=1).values <= 0).nonzero().flatten()
        if len(empty):
            raise StructureError(
                f"patterns_torch: crystal(s) {empty[:10].tolist()} have no reflection between {grid_t[0]} and "
                f"{grid_t[1]} degrees 2theta (cell too small for lambda = {lam} A?)")
    return out
