"""Compiled kernel of whole-pattern refinement (private; :func:`profile_block_numpy` is the test oracle)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["profile_block", "profile_block_numpy"]

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
