"""Compiled kernels of :mod:`synthxrd.augment` (private; the numpy functions of
:mod:`synthxrd.simulate.physics`, re-exported by ``augment``, are the readable reference and the test oracle).

* :func:`build_lines` turns the unmerged reflections of each crystal into the line list of one
  measurement: per-reflection texture (March-Dollase) factors, merging of reflections at the
  same 2theta, Debye-Waller factors per merged peak, an impurity phase, the K-alpha2 satellite, peak shifts and the
  Thompson-Cox-Hastings width and mixing of every line.
* :func:`render_lines` adds area-normalised pseudo-Voigt lines to uniform measurement grids: the
  Gaussian part within +-7 sigma by the multiplicative recurrence of
  :func:`synthxrd.simulate._kernels._add_gaussian`, the Lorentzian part (a division per point;
  the loop vectorises) within +-w FWHM, w from :func:`lorentz_half_window` (shorter for weak
  lines), its amplitude divided by the fraction of the Lorentzian's area inside the window so that
  every line keeps its integrated intensity exactly.
* :func:`add_background` adds Bernstein-polynomial, Gaussian-bump and amorphous-hump backgrounds.
* :func:`resample_uniform` is :func:`synthxrd.io.resample` for uniform measurement grids (box
  average of the piecewise-linear interpolant where the measurement is finer than the model grid,
  linear interpolation where it is coarser, 0 outside the measured range), ~25x faster.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from synthxrd.simulate._kernels import _add_gaussian, scherrer_fwhm_compiled
from synthxrd.simulate.common import WINDOW_SIGMAS
from synthxrd.simulate.physics import FWHM_TO_SIGMA

#: Reassociation lets the Lorentzian loop vectorise; no 'nnan'/'ninf' (see ``_kernels._FASTMATH``).
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
_GAUSS_HEIGHT = 2.0 * math.sqrt(math.log(2.0) / math.pi)  # height x FWHM of an area-1 Gaussian
_LORENTZ_HEIGHT = 2.0 / math.pi  # height x FWHM of an area-1 Lorentzian
#: Smallest FWHM (degrees) a line may have: guards against a zero width when every broadening
#: term of a hand-made parameter set is 0.
MIN_FWHM = 1e-6


@njit(cache=True)
def tch(hg, hl):
    """Thompson-Cox-Hastings (1987) FWHM H and mixing eta of the pseudo-Voigt that approximates
    the Voigt of Gaussian FWHM ``hg`` and Lorentzian FWHM ``hl`` (<= 1 % error in the FWHM)."""
    h5 = (hg**5 + 2.69269 * hg**4 * hl + 2.42843 * hg**3 * hl**2 + 4.47163 * hg**2 * hl**3
          + 0.07842 * hg * hl**4 + hl**5)
    h = h5 ** 0.2
    if h <= MIN_FWHM:
        return MIN_FWHM, 0.0
    q = hl / h
    eta = 1.36603 * q - 0.47719 * q * q + 0.11116 * q * q * q
    return h, min(max(eta, 0.0), 1.0)


@njit(cache=True)
def line_width(two_theta, wavelength, k_shape, size_a, strain, u, v, w, x, y, xi):
    """(FWHM in degrees, eta) of a line at ``two_theta`` (degrees) for ``wavelength`` (Angstrom).

    H_G^2 = U tan^2 + V tan + W + (1 - xi)^2 (H_size^2 + H_strain^2),
    H_L = X tan + Y / cos + xi (H_size + H_strain),
    H_size = (180/pi) K lambda / (tau cos theta), H_strain = (180/pi) 4 eps tan theta; then :func:`tch`.
    """
    theta = math.radians(0.5 * two_theta)
    c = math.cos(theta)
    t = math.tan(theta)
    h_size = scherrer_fwhm_compiled(wavelength, size_a / 10.0, c, k_shape)
    h_strain = math.degrees(4.0 * strain * t)
    hg2 = u * t * t + v * t + w + (1.0 - xi) ** 2 * (h_size * h_size + h_strain * h_strain)
    hl = x * t + y / c + xi * (h_size + h_strain)
    return tch(math.sqrt(max(hg2, 0.0)), max(hl, 0.0))


@njit(cache=True)
def _merge_into(tt, inten, a, b, scale, merge_tol, out_tt, out_i, n):
    """Append reflections tt[a:b] (sorted) to out_* merging runs within merge_tol degrees; returns n."""
    first = -1.0e300
    for r in range(a, b):
        if n > 0 and tt[r] - first <= merge_tol:
            out_i[n - 1] += scale[r - a] * inten[r]
        else:
            first = tt[r]
            out_tt[n] = tt[r]
            out_i[n] = scale[r - a] * inten[r]
            n += 1
    return n


@njit(cache=True)
def _texture_factors(hkl, a, b, recip, direction, r, out):
    """out[q - a] = March-Dollase P(alpha) of rows a..b: (r^2 cos^2 alpha + sin^2 alpha / r)^(-3/2)."""
    if r == 1.0:
        for q in range(a, b):
            out[q - a] = 1.0
        return
    d0 = direction[0] * recip[0, 0] + direction[1] * recip[1, 0] + direction[2] * recip[2, 0]
    d1 = direction[0] * recip[0, 1] + direction[1] * recip[1, 1] + direction[2] * recip[2, 1]
    d2 = direction[0] * recip[0, 2] + direction[1] * recip[1, 2] + direction[2] * recip[2, 2]
    dn = math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
    d0 /= dn
    d1 /= dn
    d2 /= dn
    r2 = r * r
    inv_r = 1.0 / r
    for q in range(a, b):
        h, k, l = hkl[q, 0], hkl[q, 1], hkl[q, 2]
        g0 = h * recip[0, 0] + k * recip[1, 0] + l * recip[2, 0]
        g1 = h * recip[0, 1] + k * recip[1, 1] + l * recip[2, 1]
        g2 = h * recip[0, 2] + k * recip[1, 2] + l * recip[2, 2]
        gg = g0 * g0 + g1 * g1 + g2 * g2
        c2 = min((g0 * d0 + g1 * d1 + g2 * d2) ** 2 / gg, 1.0) if gg > 0.0 else 1.0
        base = r2 * c2 + (1.0 - c2) * inv_r
        out[q - a] = 1.0 / (base * math.sqrt(base))


@njit(cache=True)
def _debye_waller(tt, inten, a, b, dw_b, wavelength):
    """inten[a:b] *= exp(-2 B s^2), s = sin(theta)/lambda (one factor per merged peak)."""
    if dw_b == 0.0:
        return
    for p in range(a, b):
        s = math.sin(math.radians(0.5 * tt[p])) / wavelength
        inten[p] *= math.exp(-2.0 * dw_b * s * s)


@njit(cache=True)
def _strongest(tt, inten, a, b, lo, hi):
    """Largest inten[a:b] with lo <= tt <= hi, or the largest of all if none is in [lo, hi]."""
    top = 0.0
    top_all = 0.0
    for p in range(a, b):
        top_all = max(top_all, inten[p])
        if lo <= tt[p] <= hi:
            top = max(top, inten[p])
    return top if top > 0.0 else top_all


@njit(cache=True)
def build_lines(
    two_theta, intensity, hkl, offsets, recip, tex_dir, tex_r, dw_b, imp_index, imp_frac,
    wavelength, lam_ratio, ratio2, zero, disp_over_r, size_a, strain, u, v, w, x, y, xi,
    k_shape, merge_tol, rel_drop, top_lo, top_hi, capacity,
):
    """Line lists of N measurements from the reflections of a :class:`ReflectionBatch`.

    Parameters (arrays of length N unless noted): two_theta, intensity, hkl, offsets: the
    reflections; recip (N, 3, 3) reciprocal bases (rows a*, b*, c*); tex_dir (N, 3) preferred
    direction as reciprocal-lattice indices; tex_r March-Dollase r (1 = no texture); dw_b B in
    Angstrom^2; imp_index crystal of the impurity phase (-1 = none), imp_frac its strongest
    peak relative to the main phase's; wavelength (Angstrom) of the reflections; lam_ratio
    lambda2/lambda1 (scalar); ratio2 I(K-alpha2)/I(K-alpha1) (0 = single line); zero (degrees);
    disp_over_r displacement s / radius R; size_a crystallite size in Angstrom; strain eps; u, v, w
    (deg^2), x, y (deg), xi: profile parameters; k_shape Scherrer K; merge_tol (degrees); rel_drop:
    merged peaks below this fraction of the strongest are dropped; top_lo, top_hi: 2theta range
    (degrees, the model grid) in which "strongest" is taken (all peaks if none lies in it);
    capacity: size of the output.

    Returns
    -------
    line_offsets (N + 1,), center (L,) degrees, inten (L,), fwhm (L,) degrees, eta (L,).
    """
    n_pat = offsets.shape[0] - 1
    center = np.empty(capacity)
    inten = np.empty(capacity)
    fwhm = np.empty(capacity)
    eta = np.empty(capacity)
    line_offsets = np.zeros(n_pat + 1, np.int64)
    max_rows = 0
    for i in range(n_pat):
        max_rows = max(max_rows, offsets[i + 1] - offsets[i])
    factors = np.empty(max_rows)
    ones = np.ones(max_rows)
    peak_tt = np.empty(2 * max_rows)
    peak_i = np.empty(2 * max_rows)
    lam2 = wavelength * lam_ratio
    m = 0
    for i in range(n_pat):
        a, b = offsets[i], offsets[i + 1]
        _texture_factors(hkl, a, b, recip[i], tex_dir[i], tex_r[i], factors)
        n_main = _merge_into(two_theta, intensity, a, b, factors, merge_tol, peak_tt, peak_i, 0)
        _debye_waller(peak_tt, peak_i, 0, n_main, dw_b[i], wavelength)
        top = _strongest(peak_tt, peak_i, 0, n_main, top_lo, top_hi)
        n_peaks = n_main
        j = imp_index[i]
        if j >= 0 and imp_frac[i] > 0.0 and top > 0.0:
            aj, bj = offsets[j], offsets[j + 1]
            n_peaks = _merge_into(two_theta, intensity, aj, bj, ones, merge_tol, peak_tt, peak_i, n_main)
            _debye_waller(peak_tt, peak_i, n_main, n_peaks, dw_b[i], wavelength)
            top_imp = _strongest(peak_tt, peak_i, n_main, n_peaks, top_lo, top_hi)
            scale = imp_frac[i] * top / top_imp if top_imp > 0.0 else 0.0
            for p in range(n_main, n_peaks):
                peak_i[p] *= scale
        cut = rel_drop * top
        for p in range(n_peaks):
            ip = peak_i[p]
            if not ip > cut:
                continue
            tt = peak_tt[p]
            h, e = line_width(tt, wavelength, k_shape, size_a[i], strain[i], u[i], v[i], w[i], x[i], y[i], xi[i])
            theta = math.radians(0.5 * tt)
            center[m] = tt + zero[i] - math.degrees(2.0 * disp_over_r[i] * math.cos(theta))
            inten[m] = ip
            fwhm[m] = h
            eta[m] = e
            m += 1
            if ratio2[i] > 0.0:
                s2 = math.sin(theta) * lam_ratio
                if s2 < 1.0:
                    theta2 = math.asin(s2)
                    tt2 = math.degrees(2.0 * theta2)
                    h, e = line_width(tt2, lam2, k_shape, size_a[i], strain[i], u[i], v[i], w[i], x[i], y[i], xi[i])
                    center[m] = tt2 + zero[i] - math.degrees(2.0 * disp_over_r[i] * math.cos(theta2))
                    inten[m] = ratio2[i] * ip
                    fwhm[m] = h
                    eta[m] = e
                    m += 1
        line_offsets[i + 1] = m
    return line_offsets, center[:m], inten[:m], fwhm[:m], eta[:m]


@njit(cache=True, fastmath=_FASTMATH)
def _add_lorentzian(out, i_first, n_points, x_first, dx, amp, k):
    """out[i_first + p] += amp / (1 + k (x_first + p dx)^2) for 0 <= p < n_points (vectorises)."""
    for p in range(n_points):
        t = x_first + p * dx
        out[i_first + p] += amp / (1.0 + k * t * t)


@njit(cache=True)
def lorentz_window_fraction(window):
    """Area fraction of a Lorentzian inside +-window FWHM: (2/pi) arctan(2 window)."""
    return 2.0 / math.pi * math.atan(2.0 * window)


@njit(cache=True)
def add_pseudo_voigt(out, start, step, center, intensity, h, eta, window):
    """Add one area-normalised pseudo-Voigt (integrated intensity ``intensity``) to a uniform grid.

    Gaussian part within +-7 sigma, Lorentzian part within +-``window`` FWHM with its amplitude
    divided by :func:`lorentz_window_fraction` (the truncated tail area is put back into the window).
    """
    n = out.shape[0]
    if eta < 1.0:
        sigma = h * FWHM_TO_SIGMA
        half = WINDOW_SIGMAS * sigma
        i_lo = max(0, int(math.ceil((center - half - start) / step)))
        i_hi = min(n - 1, int(math.floor((center + half - start) / step)))
        if i_lo <= i_hi:
            amp = (1.0 - eta) * intensity * _GAUSS_HEIGHT / h
            _add_gaussian(out, i_lo, i_hi - i_lo + 1, start + i_lo * step - center, step, amp,
                          1.0 / (2.0 * sigma * sigma))
    if eta > 0.0:
        half = window * h
        i_lo = max(0, int(math.ceil((center - half - start) / step)))
        i_hi = min(n - 1, int(math.floor((center + half - start) / step)))
        if i_lo <= i_hi:
            amp = eta * intensity * _LORENTZ_HEIGHT / (h * lorentz_window_fraction(window))
            _add_lorentzian(out, i_lo, i_hi - i_lo + 1, start + i_lo * step - center, step, amp, 4.0 / (h * h))


@njit(cache=True)
def lorentz_half_window(eta, intensity, h, top_height, tail_tol, min_window, max_window):
    """Half-width (in FWHM) of a line's Lorentzian window: where eta L falls to ``tail_tol`` x
    ``top_height``, 0.5 sqrt(eta I 2/(pi H) / (tol top) - 1), clipped to [min_window, max_window]."""
    if tail_tol <= 0.0 or top_height <= 0.0:
        return max_window
    ratio = eta * intensity * _LORENTZ_HEIGHT / h / (tail_tol * top_height)
    w = 0.5 * math.sqrt(max(ratio - 1.0, 0.0))
    return min(max(w, min_window), max_window)


@njit(cache=True)
def render_lines(center, inten, fwhm, eta, line_offsets, starts, steps, point_offsets, window, tail_tol,
                 min_window, out):
    """Add the lines of measurement i onto out[point_offsets[i]:point_offsets[i + 1]] (its grid:
    starts[i] + k steps[i]); returns the maximum of each measurement's profile (N,).

    The Lorentzian window of each line is :func:`lorentz_half_window` with ``top_height`` the
    largest single-line peak height of the measurement (tail_tol = 0: always ``window``).
    """
    n_pat = line_offsets.shape[0] - 1
    peak = np.zeros(n_pat)
    for i in range(n_pat):
        row = out[point_offsets[i]:point_offsets[i + 1]]
        top_height = 0.0
        for q in range(line_offsets[i], line_offsets[i + 1]):
            height = inten[q] * (eta[q] * _LORENTZ_HEIGHT + (1.0 - eta[q]) * _GAUSS_HEIGHT) / fwhm[q]
            top_height = max(top_height, height)
        for q in range(line_offsets[i], line_offsets[i + 1]):
            w = lorentz_half_window(eta[q], inten[q], fwhm[q], top_height, tail_tol, min_window, window)
            add_pseudo_voigt(row, starts[i], steps[i], center[q], inten[q], fwhm[q], eta[q], w)
        top = 0.0
        for k in range(row.shape[0]):
            top = max(top, row[k])
        peak[i] = top
    return peak


@njit(cache=True)
def add_background(out, starts, steps, point_offsets, scale, lo, hi, bern, bump_c, bump_fwhm, bump_h,
                   hump_c, hump_fwhm, hump_h):
    """out[point] = out[point] / scale[i] + background_i(x) on each measurement's grid.

    background(x) = sum_k bern[i, k] C(D, k) t^k (1 - t)^(D - k), t = (x - lo)/(hi - lo) clipped to
    [0, 1] (Bernstein form: non-negative weights give a non-negative polynomial), plus Gaussians
    bump_h exp(-4 ln2 (x - bump_c)^2 / bump_fwhm^2) and the hump hump_h exp(-4 ln2 (x - hump_c)^2 / hump_fwhm^2).
    """
    n_pat = point_offsets.shape[0] - 1
    deg = bern.shape[1] - 1
    n_bumps = bump_c.shape[1]
    binom = np.empty(deg + 1)
    binom[0] = 1.0
    for k in range(1, deg + 1):
        binom[k] = binom[k - 1] * (deg - k + 1) / k
    c4 = 4.0 * math.log(2.0)
    powers = np.empty(deg + 1)
    for i in range(n_pat):
        inv = 1.0 / scale[i] if scale[i] > 0.0 else 1.0
        for p in range(point_offsets[i], point_offsets[i + 1]):
            xx = starts[i] + (p - point_offsets[i]) * steps[i]
            t = min(max((xx - lo) / (hi - lo), 0.0), 1.0)
            # Bernstein sum: t^k (1-t)^(D-k)
            powers[0] = 1.0
            for k in range(1, deg + 1):
                powers[k] = powers[k - 1] * t
            acc = 0.0
            one_t = 1.0
            for k in range(deg, -1, -1):
                acc += bern[i, k] * binom[k] * powers[k] * one_t
                one_t *= 1.0 - t
            for q in range(n_bumps):
                if bump_h[i, q] != 0.0:
                    d = (xx - bump_c[i, q]) / bump_fwhm[i, q]
                    acc += bump_h[i, q] * math.exp(-c4 * d * d)
            if hump_h[i] != 0.0:
                d = (xx - hump_c[i]) / hump_fwhm[i]
                acc += hump_h[i] * math.exp(-c4 * d * d)
            out[p] = out[p] * inv + acc


@njit(cache=True)
def resample_uniform(values, starts, steps, point_offsets, g_start, g_step, out):
    """Resample each measurement (uniform grid starts[i] + k steps[i]) onto the model grid in ``out``.

    The rule of :func:`synthxrd.io.resample`: grid points outside [x_0, x_last] (1e-6 grid steps of
    slack) are 0; where steps[i] < g_step the value is the mean of the piecewise-linear interpolant
    over the cell [g - g_step/2, g + g_step/2] clipped to the measured range; otherwise the linear
    interpolation at g.
    """
    n_pat = point_offsets.shape[0] - 1
    n_grid = out.shape[1]
    eps = 1e-6 * g_step
    for i in range(n_pat):
        y = values[point_offsets[i]:point_offsets[i + 1]]
        n = y.shape[0]
        x0 = starts[i]
        dx = steps[i]
        x_last = x0 + (n - 1) * dx
        if n < 2:
            continue
        box = dx < g_step
        cum = np.empty(n)
        if box:
            cum[0] = 0.0
            for k in range(1, n):
                cum[k] = cum[k - 1] + 0.5 * (y[k] + y[k - 1]) * dx
        for j in range(n_grid):
            g = g_start + j * g_step
            if g < x0 - eps or g > x_last + eps:
                out[i, j] = 0.0
                continue
            if box:
                lo = min(max(g - 0.5 * g_step, x0), x_last)
                hi = min(max(g + 0.5 * g_step, x0), x_last)
                if hi > lo:
                    out[i, j] = (_antiderivative(y, cum, x0, dx, hi) - _antiderivative(y, cum, x0, dx, lo)) / (hi - lo)
                    continue
            gg = min(max(g, x0), x_last)
            k = min(max(int((gg - x0) / dx), 0), n - 2)
            f = (gg - (x0 + k * dx)) / dx
            out[i, j] = y[k] + f * (y[k + 1] - y[k])


@njit(cache=True)
def _antiderivative(y, cum, x0, dx, t):
    n = y.shape[0]
    k = min(max(int((t - x0) / dx), 0), n - 2)
    d = t - (x0 + k * dx)
    slope = (y[k + 1] - y[k]) / dx
    return cum[k] + y[k] * d + 0.5 * slope * d * d

