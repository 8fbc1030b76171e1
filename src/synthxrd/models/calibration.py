"""Temperature scaling (Guo, Pleiss, Sun & Weinberger, ICML 2017, arXiv 1706.04599).

One scalar T > 0 divides the logits: p = softmax(z / T). T is fitted on held-out labelled patterns
by minimising the negative log-likelihood NLL(T) = -mean_i log softmax(z_i / T)[y_i]; it changes no
ranking (top-k accuracy is unchanged) but makes the probabilities mean what they say. The fitted T
is stored in the checkpoint (``calibration``) and applied by :class:`synthxrd.predict.Predictor`.
"""

from __future__ import annotations

import numpy as np

from synthxrd.errors import DataError

__all__ = ["fit_temperature", "nll", "softmax"]

#: Search range of T (log-uniform bracket).
T_RANGE = (0.05, 20.0)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (float64, stable)."""
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the labels (class indices) under softmax(logits / T)."""
    z = np.asarray(logits, np.float64) / temperature
    m = z.max(axis=1, keepdims=True)
    log_norm = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    return float(np.mean(log_norm - z[np.arange(len(z)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in :data:`T_RANGE` minimising :func:`nll` (bounded scalar minimisation over log T).

    NLL(T) is convex in 1/T (a log-sum-exp of linear functions), so the 1-D search finds the
    global minimum.
    """
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, np.float64)
    y = np.asarray(labels, np.int64)
    if z.ndim != 2 or y.shape != (len(z),) or not len(z):
        raise DataError(f"fit_temperature: logits (N, C) and labels (N,) needed, got {z.shape} and {y.shape}")
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise DataError("fit_temperature: labels must be class indices 0..C-1")
    if not np.isfinite(z).all():
        raise DataError("fit_temperature: logits hold NaN or infinite values")
    res = minimize_scalar(lambda s: nll(z, y, float(np.exp(s))), bounds=np.log(T_RANGE), method="bounded",
                          options={"xatol": 1e-4})
    return float(np.exp(res.x))
