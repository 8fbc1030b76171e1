"""Compiled kernel of whole-pattern refinement (private; :func:`profile_block_numpy` is the test oracle)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["profile_block", "profile_block_numpy", "phase_column", "phase_column_numpy"]

_G = 2.0 * math.sqrt(math.log(2.0) / math.pi)  # Gaussian of unit FWHM: height at its centre
_L = 2.0 / math.pi  # Lorentzian of unit FWHM: height at its centre
_K = 4.0 * math.log(2.0)


@njit(cache=True)
def profile_block(tt, centre, fwhm, amp, col, eta, window, ncol):
    """(ncol, N) float64: row c is the sum over the peaks p with col[p] = c of amp[p] times the
    area-normalised pseudo-Voigt of FWHM fwhm[p] at centre[p], evaluated at the points tt
    (increasing) within centre +- window x FWHM."""
    n = tt.shape[0]
    out = np.zeros((ncol, n))
    for p in range(centre.shape[0]):
        c = centre[p]
        h = fwhm[p]
        lo = np.searchsorted(tt, c - window * h)
        hi = np.searchsorted(tt, c + window * h)
        a = amp[p] / h
        row = col[p]
        for i in range(lo, min(hi, n)):
            u = (tt[i] - c) / h
            u2 = u * u
            out[row, i] += a * (eta * _L / (1.0 + 4.0 * u2) + (1.0 - eta) * _G * math.exp(-_K * u2))
    return out


def profile_block_numpy(tt, centre, fwhm, amp, col, eta, window, ncol):
    """Plain numpy twin of :func:`profile_block` (the same windows)."""
    out = np.zeros((ncol, len(tt)))
    for p in range(len(centre)):
        inside = (tt >= centre[p] - window * fwhm[p]) & (tt < centre[p] + window * fwhm[p])
        u = (tt[inside] - centre[p]) / fwhm[p]
        shape = eta * _L / (1 + 4 * u * u) + (1 - eta) * _G * np.exp(-_K * u * u)
        out[col[p], inside] += amp[p] / fwhm[p] * shape
    return out


@njit(cache=True)
def phase_column(tt, q, f2, lam, ratio, zero, widths, eta, window):
    """(N,) float64: the calculated pattern of one phase with fixed intensities at unit scale.

    For every reflection (1/d^2 = ``q``, intensity ``f2`` = |F|^2 m times any texture factor) and line
    (wavelength ``lam[j]``, relative intensity ``ratio[j]``): centre 2theta = 2 asin(lam sqrt(q) / 2) +
    ``zero`` (degrees), theta = centre / 2, FWHM from ``widths`` (w0 + w1 tan(theta) for two values,
    Caglioti sqrt(max(U tan^2 + V tan + W, 1e-6)) for three), amplitude ratio f2 LP(theta), with
    LP = (1 + cos^2 2theta) / (sin^2 theta cos theta), and the area-normalised pseudo-Voigt of
    :func:`profile_block` within centre +- window x FWHM. Reflections beyond 2theta = 180 are left out."""
    n = tt.shape[0]
    out = np.zeros(n)
    for j in range(lam.shape[0]):
        for p in range(q.shape[0]):
            s = lam[j] * math.sqrt(max(q[p], 0.0)) / 2.0
            if s >= 1.0:
                continue
            c = math.degrees(2.0 * math.asin(s)) + zero
            theta = math.radians(c) / 2.0
            t = math.tan(min(max(theta, 0.0), 1.55))
            if widths.shape[0] == 2:
                h = widths[0] + widths[1] * t
            else:
                h = math.sqrt(max(widths[0] * t * t + widths[1] * t + widths[2], 1e-6))
            if c + window * h < tt[0] or c - window * h > tt[n - 1]:
                continue
            lp = (1.0 + math.cos(2.0 * theta) ** 2) / (math.sin(theta) ** 2 * math.cos(theta))
            a = ratio[j] * lp * f2[p] / h
            lo = np.searchsorted(tt, c - window * h)
            hi = np.searchsorted(tt, c + window * h)
            for i in range(lo, min(hi, n)):
                u = (tt[i] - c) / h
                u2 = u * u
                out[i] += a * (eta * _L / (1.0 + 4.0 * u2) + (1.0 - eta) * _G * math.exp(-_K * u2))
    return out


def phase_column_numpy(tt, q, f2, lam, ratio, zero, widths, eta, window):
    """Plain numpy twin of :func:`phase_column` (through :func:`profile_block_numpy`)."""
    out = np.zeros(len(tt))
    for lam_j, ratio_j in zip(lam, ratio):
        s = lam_j * np.sqrt(np.maximum(q, 0)) / 2
        ok = s < 1
        c = np.degrees(2 * np.arcsin(s[ok])) + zero
        theta = np.radians(c) / 2
        t = np.tan(np.clip(theta, 0, 1.55))
        h = widths[0] + widths[1] * t if len(widths) == 2 else \
            np.sqrt(np.maximum(widths[0] * t * t + widths[1] * t + widths[2], 1e-6))
        lp = (1 + np.cos(2 * theta) ** 2) / (np.sin(theta) ** 2 * np.cos(theta))
        out += profile_block_numpy(tt, c, h, ratio_j * lp * np.asarray(f2)[ok], np.zeros(len(c), np.int64), eta,
                                   window, 1)[0]
    return out
