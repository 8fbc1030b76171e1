"""Compiled kernels of search-match (private; ``render_rows_numpy`` is the test oracle)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["render_rows", "render_selected", "render_rows_numpy"]

#: Gaussians are evaluated within +-WINDOW sigma (exp(-4.5^2/2) = 4e-5 of the height is dropped).
WINDOW = 4.5


@njit(cache=True)
def render_rows(offsets, position, height, sigma, start, step, n_grid):
    """(N, G) float32: row i is the sum over its peaks p of height_p exp(-(x - position_p)^2 / 2 sigma_p^2)
    on the grid x_g = start + g step; peaks off the grid are skipped."""
    return render_selected(offsets, np.arange(offsets.shape[0] - 1), position, height, sigma, start, step, n_grid)


@njit(cache=True)
def render_selected(offsets, which, position, height, sigma, start, step, n_grid):
    """As :func:`render_rows` for the entries ``which`` only: (len(which), G) float32."""
    out = np.zeros((which.shape[0], n_grid), np.float32)
    for i in range(which.shape[0]):
        e = which[i]
        for p in range(offsets[e], offsets[e + 1]):
            s = sigma[p]
            c = (position[p] - start) / step
            half = WINDOW * s / step
            lo = max(0, int(math.ceil(c - half)))
            hi = min(n_grid - 1, int(math.floor(c + half)))
            inv = step * step / (2.0 * s * s)
            for g in range(lo, hi + 1):
                t = g - c
                out[i, g] += height[p] * math.exp(-t * t * inv)
    return out


def render_rows_numpy(offsets, position, height, sigma, start, step, n_grid):
    """Plain numpy twin of :func:`render_rows` (full Gaussians, no window)."""
    x = start + step * np.arange(n_grid)
    out = np.zeros((len(offsets) - 1, n_grid))
    for i in range(len(offsets) - 1):
        sl = slice(offsets[i], offsets[i + 1])
        out[i] = (height[sl, None] * np.exp(-((x[None] - position[sl, None]) ** 2) / (2 * sigma[sl, None] ** 2))).sum(0)
    return out


@njit(cache=True)
def max_cosine(num, inv_lib, inv_query):
    """best[b, n] = max_s num[n, b * S + s] inv_lib[n, s] inv_query[b, s] and its argmax s.

    ``num`` (N, B S) dot products of library rows with shifted patterns, ``inv_lib`` (N, S) inverse
    library norms inside each shift's coverage, ``inv_query`` (B, S) inverse pattern norms."""
    n, s = inv_lib.shape
    b = inv_query.shape[0]
    best = np.empty((b, n), np.float32)
    arg = np.empty((b, n), np.int32)
    for i in range(n):
        for j in range(b):
            top = -np.inf
            k_top = 0
            for k in range(s):
                v = num[i, j * s + k] * inv_lib[i, k] * inv_query[j, k]
                if v > top:
                    top = v
                    k_top = k
            best[j, i] = top
            arg[j, i] = k_top
    return best, arg
