"""Compiled kernels of the simulator (private; the numpy twins in ``physics``/``profile`` are the
test oracles).

Why it is fast (the algorithm, not only numba):

* reflections are enumerated by slicing the reciprocal-space ellipsoid |g|^2 = x^T G* x <= g_max^2:
  for each (h, k) the admissible l form one interval, the root of a quadratic, so no box of
  rejected points is visited; only one Friedel half-space is enumerated (intensities doubled);
* exp(2 pi i h x) is tabulated per atom and index once; each (reflection, atom) pair then costs one
  complex multiplication (t_j(h, k) = occ_j e^{2pi i(hx+ky)} is hoisted out of the l loop);
* atoms are grouped by element, form factors are evaluated once per element and reflection;
* peaks are merged after one sort (no O(n^2) search) and smeared onto a uniform grid inside a
  +-7 sigma window with a multiplicative recurrence: 3 exponentials per peak instead of one per
  grid point.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from synthxrd.simulate.common import WINDOW_SIGMAS
from synthxrd.simulate.physics import FWHM_TO_SIGMA, scherrer_fwhm

#: Slack when turning the ellipsoid bounds into integer ranges; the exact |g| test follows.
_BOUND_EPS = 1e-9
#: Reflections whose |g|^2 agree to this relative precision share form factors and LP (equivalent
#: reflections differ by ~1e-16; the form factor changes by < 1e-10 over such a step).
_SAME_G2 = 1e-12
#: Allow reassociation of sums so that the per-atom structure-factor loops vectorise (SIMD);
#: no 'nnan'/'ninf', so NaN and inf keep their IEEE meaning. Changes results at the 1e-16 level.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
#: Batches of at least this many crystals interpolate form factors in a table built once per batch
#: (``form_factor_table``: ~0.1 ms per element) instead of 4 exponentials per element and |g|.
_TABLE_MIN_BATCH = 16
_TABLE_STEP = 2e-4  # in (sin(theta)/lambda)^2 = s^2, 1/Angstrom^2
#: :func:`synthxrd.simulate.physics.scherrer_fwhm`, compiled.
scherrer_fwhm_compiled = njit(cache=True)(scherrer_fwhm)


@njit(cache=True)
def _inv3(m):
    out = np.empty((3, 3))
    det = (
        m[0, 0] * (m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1])
        - m[0, 1] * (m[1, 0] * m[2, 2] - m[1, 2] * m[2, 0])
        + m[0, 2] * (m[1, 0] * m[2, 1] - m[1, 1] * m[2, 0])
    )
    out[0, 0] = (m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1]) / det
    out[0, 1] = (m[0, 2] * m[2, 1] - m[0, 1] * m[2, 2]) / det
    out[0, 2] = (m[0, 1] * m[1, 2] - m[0, 2] * m[1, 1]) / det
    out[1, 0] = (m[1, 2] * m[2, 0] - m[1, 0] * m[2, 2]) / det
    out[1, 1] = (m[0, 0] * m[2, 2] - m[0, 2] * m[2, 0]) / det
    out[1, 2] = (m[0, 2] * m[1, 0] - m[0, 0] * m[1, 2]) / det
    out[2, 0] = (m[1, 0] * m[2, 1] - m[1, 1] * m[2, 0]) / det
    out[2, 1] = (m[0, 1] * m[2, 0] - m[0, 0] * m[2, 1]) / det
    out[2, 2] = (m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]) / det
    return out


@njit(cache=True)
def _l_interval(gs, h, k, g_max2):
    """Integer l range of the ellipsoid slice at (h, k): gs33 l^2 + 2 beta l + c <= g_max^2."""
    beta = gs[0, 2] * h + gs[1, 2] * k
    c = gs[0, 0] * h * h + 2.0 * gs[0, 1] * h * k + gs[1, 1] * k * k
    disc = beta * beta - gs[2, 2] * (c - g_max2)
    if disc < 0.0:
        return 0, -1
    root = math.sqrt(disc)
    lo = math.ceil((-beta - root) / gs[2, 2] - _BOUND_EPS)
    hi = math.floor((-beta + root) / gs[2, 2] + _BOUND_EPS)
    return int(lo), int(hi)


@njit(cache=True)
def _phase_row(x, n_lo, n_hi, out_re, out_im):
    """out[n - n_lo] = exp(2 pi i n x) for n_lo <= n <= n_hi, by the recurrence e^{i(n+1)p} = e^{inp} e^{ip}.

    Two sincos per atom and axis instead of one per index; rounding grows like |n| * 1e-16.
    """
    p = 2.0 * math.pi * x
    c, s = math.cos(p), math.sin(p)
    re, im = math.cos(n_lo * p), math.sin(n_lo * p)
    for i in range(n_hi - n_lo + 1):
        out_re[i] = re
        out_im[i] = im
        re, im = re * c - im * s, re * s + im * c


@njit(cache=True)
def _argsort_bucketed(keys, lo, hi):
    """Stable argsort of keys in [lo, hi] in O(n) expected time.

    Counting sort into n equal buckets, then insertion sort, which only undoes the few inversions
    inside buckets (|g|^2 of the reflections is spread almost uniformly). numba's mergesort is
    ~10x slower on the ~1000 reflections of a typical cell.
    """
    n = keys.shape[0]
    scale = n / (hi - lo) if hi > lo else 0.0
    bucket = np.empty(n, np.int64)
    starts = np.zeros(n + 1, np.int64)
    for i in range(n):
        b = min(max(int((keys[i] - lo) * scale), 0), n - 1)
        bucket[i] = b
        starts[b + 1] += 1
    for b in range(n):
        starts[b + 1] += starts[b]
    order = np.empty(n, np.int64)
    for i in range(n):
        order[starts[bucket[i]]] = i
        starts[bucket[i]] += 1
    for r in range(1, n):
        i = order[r]
        key = keys[i]
        q = r - 1
        while q >= 0 and keys[order[q]] > key:
            order[q + 1] = order[q]
            q -= 1
        order[q + 1] = i
    return order


@njit(cache=True)
def reflections(lattice, frac, z, occ, ff_a, ff_b, dw, wavelength, g_min, g_max):
    """Exact form factors (4 exponentials per element and distinct |g|); see ``_reflections_impl``."""
    empty = np.zeros((1, 1))
    return _reflections_impl(lattice, frac, z, occ, ff_a, ff_b, dw, wavelength, g_min, g_max, empty, empty, 0.0)


@njit(cache=True)
def form_factor_table(ff_a, ff_b, z, s2_max, step):
    """f(s^2) and df/d(s^2) on the grid s^2 = k step (k = 0..K) for the elements in ``z`` (other rows 0).

    f = Z - 41.78214 x sum_i a_i exp(-b_i x), f' = -41.78214 sum_i a_i exp(-b_i x) (1 - b_i x), x = s^2.
    Cubic Hermite interpolation on it errs by at most step^4 / 384 max|d4f/dx4|, about 2e-8 for
    step 2e-4 and the largest fit exponent b = 156 of the table.
    """
    n_k = int(s2_max / step) + 3
    tab = np.zeros((ff_a.shape[0], n_k))
    dtab = np.zeros((ff_a.shape[0], n_k))
    present = np.zeros(ff_a.shape[0], np.bool_)
    for j in range(z.shape[0]):
        present[z[j]] = True
    for ze in range(ff_a.shape[0]):
        if not present[ze]:
            continue
        for k in range(n_k):
            x = k * step
            acc = 0.0
            dacc = 0.0
            for q in range(4):
                e = ff_a[ze, q] * math.exp(-ff_b[ze, q] * x)
                acc += e
                dacc += e * (1.0 - ff_b[ze, q] * x)
            tab[ze, k] = ze - 41.78214 * x * acc
            dtab[ze, k] = -41.78214 * dacc
    return tab, dtab


@njit(cache=True, fastmath=_FASTMATH)
def _reflections_impl(lattice, frac, z, occ, ff_a, ff_b, dw, wavelength, g_min, g_max, ff_tab, ff_dtab, tab_step):
    """Half-space reflections of one structure with g_min <= |g| <= g_max.

    Parameters
    ----------
    lattice : (3, 3) rows a, b, c (Angstrom); frac : (n, 3); z : (n,) int atomic numbers (rows of the
    coefficient tables); occ : (n,); ff_a, ff_b : (Zmax+1, 4) form-factor coefficients;
    dw : (Zmax+1,) Debye-Waller B per element (Angstrom^2); wavelength (Angstrom).

    Returns
    -------
    hkl (M, 3) int64, g (M,) 1/Angstrom, intensity (M,) = 2 |F|^2 LP, sorted by |g|.
    """
    n_atoms = frac.shape[0]
    gs = _inv3(lattice @ lattice.T)
    g_max2 = g_max * g_max
    g_min2 = g_min * g_min
    hmax = int(math.floor(g_max * math.sqrt(np.sum(lattice[0] ** 2)) + _BOUND_EPS))
    kmax = int(math.floor(g_max * math.sqrt(np.sum(lattice[1] ** 2)) + _BOUND_EPS))
    lmax = int(math.floor(g_max * math.sqrt(np.sum(lattice[2] ** 2)) + _BOUND_EPS))

    # count reflections of the half-space (upper bound; the exact |g| test comes later)
    count = 0
    for h in range(0, hmax + 1):
        for k in range(-kmax if h > 0 else 0, kmax + 1):
            lo, hi = _l_interval(gs, h, k, g_max2)
            if h == 0 and k == 0:
                lo = max(lo, 1)
            if hi >= lo:
                count += hi - lo + 1
    hkl = np.empty((count, 3), np.int64)
    gvals = np.empty(count)
    inten = np.empty(count)
    if count == 0 or n_atoms == 0:
        return hkl[:0], gvals[:0], inten[:0]

    # atoms grouped by element
    order = np.argsort(z, kind="mergesort")
    zs = z[order]
    n_el = 1
    for j in range(1, n_atoms):
        if zs[j] != zs[j - 1]:
            n_el += 1
    el_start = np.empty(n_el + 1, np.int64)
    el_z = np.empty(n_el, np.int64)
    e = 0
    el_start[0] = 0
    el_z[0] = zs[0]
    for j in range(1, n_atoms):
        if zs[j] != zs[j - 1]:
            e += 1
            el_start[e] = j
            el_z[e] = zs[j]
    el_start[n_el] = n_atoms

    # phase tables e^{2 pi i n x}: x for h in [0, hmax], y for k, z for l in [-max, max]
    ex_re = np.empty((hmax + 1, n_atoms))
    ex_im = np.empty((hmax + 1, n_atoms))
    ey_re = np.empty((2 * kmax + 1, n_atoms))
    ey_im = np.empty((2 * kmax + 1, n_atoms))
    ez_re = np.empty((2 * lmax + 1, n_atoms))
    ez_im = np.empty((2 * lmax + 1, n_atoms))
    for jj in range(n_atoms):
        j = order[jj]
        _phase_row(frac[j, 0], 0, hmax, ex_re[:, jj], ex_im[:, jj])
        _phase_row(frac[j, 1], -kmax, kmax, ey_re[:, jj], ey_im[:, jj])
        _phase_row(frac[j, 2], -lmax, lmax, ez_re[:, jj], ez_im[:, jj])
    occ_sorted = occ[order]

    t_re = np.empty(n_atoms)
    t_im = np.empty(n_atoms)
    s_re = np.empty((count, n_el))
    s_im = np.empty((count, n_el))
    g2s = np.empty(count)
    m = 0
    for h in range(0, hmax + 1):
        for k in range(-kmax if h > 0 else 0, kmax + 1):
            lo, hi = _l_interval(gs, h, k, g_max2)
            if h == 0 and k == 0:
                lo = max(lo, 1)
            if hi < lo:
                continue
            for jj in range(n_atoms):
                xr = ex_re[h, jj]
                xi = ex_im[h, jj]
                yr = ey_re[k + kmax, jj]
                yi = ey_im[k + kmax, jj]
                t_re[jj] = occ_sorted[jj] * (xr * yr - xi * yi)
                t_im[jj] = occ_sorted[jj] * (xr * yi + xi * yr)
            for l in range(lo, hi + 1):
                g2 = (
                    gs[0, 0] * h * h + gs[1, 1] * k * k + gs[2, 2] * l * l
                    + 2.0 * (gs[0, 1] * h * k + gs[0, 2] * h * l + gs[1, 2] * k * l)
                )
                if g2 > g_max2 or g2 < g_min2:
                    continue
                li = l + lmax
                for e in range(n_el):
                    acc_re = 0.0
                    acc_im = 0.0
                    for jj in range(el_start[e], el_start[e + 1]):
                        zr = ez_re[li, jj]
                        zi = ez_im[li, jj]
                        acc_re += t_re[jj] * zr - t_im[jj] * zi
                        acc_im += t_re[jj] * zi + t_im[jj] * zr
                    s_re[m, e] = acc_re
                    s_im[m, e] = acc_im
                hkl[m, 0] = h
                hkl[m, 1] = k
                hkl[m, 2] = l
                g2s[m] = g2
                m += 1

    # |F|^2 LP in order of |g|: symmetry-equivalent reflections (same |g| to ~1e-16) share the
    # form factors and the Lorentz-polarisation factor, computed once per distinct |g|.
    order = _argsort_bucketed(g2s[:m], g_min2, g_max2)
    f = np.empty(n_el)
    last_g2 = -1.0
    g_rep = 0.0
    lp = 0.0
    for r in range(m):
        i = order[r]
        g2 = g2s[i]
        if abs(g2 - last_g2) > _SAME_G2 * g2:
            last_g2 = g2
            g_rep = math.sqrt(g2)  # one |g| per group: downstream work is per distinct value
            s2 = g2 / 4.0
            if tab_step > 0.0:  # cubic Hermite on the batch's table (see form_factor_table)
                u = s2 / tab_step
                k0 = int(u)
                t = u - k0
                t2 = t * t
                t3 = t2 * t
                w00 = 2.0 * t3 - 3.0 * t2 + 1.0
                w10 = (t3 - 2.0 * t2 + t) * tab_step
                w01 = 3.0 * t2 - 2.0 * t3
                w11 = (t3 - t2) * tab_step
            for e in range(n_el):
                ze = el_z[e]
                if tab_step > 0.0:
                    fe = (w00 * ff_tab[ze, k0] + w10 * ff_dtab[ze, k0]
                          + w01 * ff_tab[ze, k0 + 1] + w11 * ff_dtab[ze, k0 + 1])
                else:
                    acc = 0.0
                    for q in range(4):
                        acc += ff_a[ze, q] * math.exp(-ff_b[ze, q] * s2)
                    fe = ze - 41.78214 * s2 * acc
                if dw[ze] != 0.0:
                    fe *= math.exp(-dw[ze] * s2)
                f[e] = fe
            sin_t = wavelength * math.sqrt(g2) / 2.0
            if sin_t >= 1.0:  # 2theta = 180 degrees: LP diverges, no measurable peak
                sin_t = 1.0 - 1e-16
            cos_2t = 1.0 - 2.0 * sin_t * sin_t
            lp = (1.0 + cos_2t * cos_2t) / (sin_t * sin_t * math.sqrt(1.0 - sin_t * sin_t))
        f_re = 0.0
        f_im = 0.0
        for e in range(n_el):
            f_re += f[e] * s_re[i, e]
            f_im += f[e] * s_im[i, e]
        gvals[r] = g_rep
        inten[r] = 2.0 * (f_re * f_re + f_im * f_im) * lp
    return hkl[order], gvals[:m], inten[:m]


@njit(cache=True)
def merged_peaks(g, inten, wavelength, two_theta_tol, rel_tol):
    """Merge reflections sorted by |g| as pymatgen does (``physics.merge_peaks``), without hkl.

    Returns 2theta (degrees) and summed intensities (not normalised) of the kept peaks, sorted.
    """
    n = g.shape[0]
    tt = np.empty(n)
    ii = np.empty(n)
    p = -1
    last_key = -1
    last_g = -1.0
    two_theta = 0.0
    key = 0
    for i in range(n):
        if g[i] != last_g:  # equivalent reflections share |g|: one asin per distinct value
            last_g = g[i]
            two_theta = math.degrees(2.0 * math.asin(min(wavelength * g[i] / 2.0, 1.0)))
            key = int(np.rint(two_theta / two_theta_tol))  # half to even, like np.round in pymatgen
        if p < 0 or key != last_key:
            p += 1
            tt[p] = two_theta
            ii[p] = inten[i]
            last_key = key
        else:
            ii[p] += inten[i]
    n_peaks = p + 1
    if n_peaks == 0:
        return tt[:0], ii[:0]
    imax = np.max(ii[:n_peaks])
    k = 0
    for q in range(n_peaks):
        if ii[q] > rel_tol * imax:
            tt[k] = tt[q]
            ii[k] = ii[q]
            k += 1
    return tt[:k], ii[:k]


@njit(cache=True)
def _add_gaussian(out, i_first, n_points, x_first, dx, amp, inv2s2):
    """out[i_first + p] += amp exp(-(x_first + p dx)^2 inv2s2) for 0 <= p < n_points.

    Exact multiplicative recurrence: v(x + dx) = v(x) rho(x), rho(x + dx) = rho(x) exp(-2 dx^2 inv2s2).
    Four interleaved chains (p = 4t + c, stepping 4 dx with R <- R exp(-32 dx^2 inv2s2)) are
    independent multiplications that the CPU overlaps, instead of one latency-bound chain.
    Relative rounding error grows like n_points * 1e-16.
    """
    if n_points <= 0:
        return
    v0 = amp * math.exp(-x_first * x_first * inv2s2)
    rho0 = math.exp(-(2.0 * x_first * dx + dx * dx) * inv2s2)
    c1 = math.exp(-2.0 * dx * dx * inv2s2)
    rho1 = rho0 * c1
    rho2 = rho1 * c1
    rho3 = rho2 * c1
    rho4 = rho3 * c1
    rho5 = rho4 * c1
    rho6 = rho5 * c1
    v1 = v0 * rho0
    v2 = v1 * rho1
    v3 = v2 * rho2
    r0 = rho0 * rho1 * rho2 * rho3
    r1 = rho1 * rho2 * rho3 * rho4
    r2 = rho2 * rho3 * rho4 * rho5
    r3 = rho3 * rho4 * rho5 * rho6
    c4 = c1**16
    i = i_first
    for _ in range(n_points // 4):
        out[i] += v0
        out[i + 1] += v1
        out[i + 2] += v2
        out[i + 3] += v3
        v0 *= r0
        v1 *= r1
        v2 *= r2
        v3 *= r3
        r0 *= c4
        r1 *= c4
        r2 *= c4
        r3 *= c4
        i += 4
    rest = n_points % 4
    if rest > 0:
        out[i] += v0
    if rest > 1:
        out[i + 1] += v1
    if rest > 2:
        out[i + 2] += v2


@njit(cache=True)
def smear(two_theta, inten, size_angstrom, wavelength, k_shape, start, step, out):
    """Add area-normalised Gaussians (Scherrer width) for each peak onto a uniform grid.

    FWHM(2theta, rad) = K lambda / (tau cos theta), sigma = FWHM / (2 sqrt(2 ln 2)); each peak adds
    I / (sigma sqrt(2 pi)) exp(-(x - 2theta)^2 / (2 sigma^2)) for |x - 2theta| <= 7 sigma, by the
    recurrence of ``_add_gaussian`` (Scherrer, Nachr. Ges. Wiss.
    Goettingen 1918, 98; Langford & Wilson, J. Appl. Cryst. 11 (1978) 102).
    """
    n = out.shape[0]
    c_deg = FWHM_TO_SIGMA * scherrer_fwhm_compiled(wavelength, size_angstrom / 10.0, 1.0, k_shape)
    for q in range(two_theta.shape[0]):
        center = two_theta[q]
        sigma = c_deg / math.cos(math.radians(center / 2.0))
        half = WINDOW_SIGMAS * sigma
        i_lo = max(0, int(math.ceil((center - half - start) / step)))
        i_hi = min(n - 1, int(math.floor((center + half - start) / step)))
        if i_lo > i_hi:
            continue
        amp = inten[q] / (sigma * math.sqrt(2.0 * math.pi))
        inv2s2 = 1.0 / (2.0 * sigma * sigma)
        _add_gaussian(out, i_lo, i_hi - i_lo + 1, start + i_lo * step - center, step, amp, inv2s2)


@njit(cache=True)
def batch_patterns(
    lattices, frac, z, occ, offsets, ff_a, ff_b, dw, wavelength, g_min, g_max,
    sizes_angstrom, k_shape, start, step, two_theta_tol, rel_tol, out,
):
    """Simulate N normalised patterns into ``out`` (N, n_grid) float32; returns per-structure status

    (1 = ok, 0 = no peak in range, pattern left at zero)."""
    n_struct = lattices.shape[0]
    status = np.zeros(n_struct, np.int8)
    row = np.zeros(out.shape[1])
    if n_struct >= _TABLE_MIN_BATCH:  # a shared form-factor table pays for itself
        tab_step = _TABLE_STEP
        tab, dtab = form_factor_table(ff_a, ff_b, z, g_max * g_max / 4.0, tab_step)
    else:
        tab_step = 0.0
        tab = np.zeros((1, 1))
        dtab = tab
    for s in range(n_struct):
        a, b = offsets[s], offsets[s + 1]
        _, g, inten = _reflections_impl(lattices[s], frac[a:b], z[a:b], occ[a:b], ff_a, ff_b, dw, wavelength,
                                        g_min, g_max, tab, dtab, tab_step)
        tt, ii = merged_peaks(g, inten, wavelength, two_theta_tol, rel_tol)
        row[:] = 0.0
        smear(tt, ii, sizes_angstrom[s], wavelength, k_shape, start, step, row)
        peak = np.max(row)
        if peak > 0.0:
            for i in range(row.shape[0]):
                out[s, i] = row[i] / peak
            status[s] = 1
    return status
