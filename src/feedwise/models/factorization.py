"""Shared machinery of the latent-factor models (ALS, BPR): confidence, fold-in, reasons.

The factorisation kernels are the ``implicit`` library's CPU ones; this module only prepares
their input, keeps the learned factors as plain arrays (saved as npz), folds in users who
were not in training by a least-squares solve against the fixed item factors, and explains
a recommendation by the liked item whose factor vector is closest to it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Literal

import numpy as np
import scipy.sparse as sp

from feedwise.errors import ConfigError
from feedwise.models.base import Recommender

Weighting = Literal["linear", "log", "binary"]


def confidence(m: sp.csr_matrix, alpha: float, weighting: Weighting) -> sp.csr_matrix:
    """Hu, Koren & Volinsky (2008) confidence ``C = 1 + alpha * f(w)`` of each positive pair.

    ``f`` is the identity (``linear``), ``log1p`` (``log``; tames play counts in the
    thousands) or the constant 1 (``binary``).
    """
    if weighting not in ("linear", "log", "binary"):
        raise ConfigError(f"weighting must be 'linear', 'log' or 'binary', got {weighting!r}")
    if alpha < 0:
        raise ConfigError(f"alpha must be >= 0, got {alpha}")
    c = sp.csr_matrix(m, dtype=np.float32, copy=True)
    w = np.maximum(c.data, 0)
    f = w if weighting == "linear" else np.log1p(w) if weighting == "log" else np.ones_like(w)
    c.data = (1.0 + alpha * f).astype(np.float32)
    c.eliminate_zeros()
    return c


@contextmanager
def blas_single_thread():
    """Run implicit's kernels with BLAS pinned to one thread (implicit's own advice: its
    threads already parallelise over users, and nested BLAS threads thrash)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        yield
        return
    with threadpool_limits(1, "blas"):
        yield


def solve_users(item_factors: np.ndarray, conf: sp.csr_matrix, regularization: float
                ) -> np.ndarray:
    """Least-squares user factors for rows of a confidence matrix, items held fixed.

    Solves ``(YᵀY + Yᵀ(Cu - I)Y + λI) x_u = Yᵀ Cu p_u`` per user (the ALS user step).
    """
    y = item_factors.astype(np.float64)
    yty = y.T @ y
    k = y.shape[1]
    out = np.zeros((conf.shape[0], k), dtype=np.float32)
    for r in range(conf.shape[0]):
        idx = conf.indices[conf.indptr[r]:conf.indptr[r + 1]]
        if len(idx) == 0:
            continue
        c = conf.data[conf.indptr[r]:conf.indptr[r + 1]].astype(np.float64)
        yu = y[idx]
        a = yty + (yu.T * (c - 1.0)) @ yu + regularization * np.eye(k)
        b = yu.T @ c
        out[r] = np.linalg.solve(a, b)
    return out


class FactorModel(Recommender):
    """A recommender whose scores are ``user_factors_ @ item_factors_.T``."""

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        return (self.user_factors_[rows] @ self.item_factors_.T).astype(np.float32)

    def _item_unit(self) -> np.ndarray:
        unit = getattr(self, "_unit", None)
        if unit is None or unit.shape != self.item_factors_.shape:
            f = self.item_factors_.astype(np.float32)
            unit = f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-9)
            self._unit = unit
        return unit

    def _explain(self, history: sp.csr_matrix, cols: list[np.ndarray]) -> list[list[str]]:
        unit = self._item_unit()
        out = []
        for r, items in enumerate(cols):
            liked = history.indices[history.indptr[r]:history.indptr[r + 1]]
            if len(liked) == 0 or len(items) == 0:
                out.append([self.fallback_reason] * len(items))
                continue
            sims = unit[items] @ unit[liked].T
            best = liked[np.argmax(sims, axis=1)]
            out.append([f"because you liked {self.item_labels_[j]}" for j in best])
        return out

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}
