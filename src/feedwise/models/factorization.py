"""Shared machinery of the latent-factor models (ALS, BPR): confidence, fold-in, reasons.

The factorisation kernels are the ``implicit`` library's CPU ones; this module only prepares
their input, keeps the learned factors as plain arrays (saved as npz), folds in users who
were not in training by a least-squares solve against the fixed item factors, and explains
a recommendation by the liked item whose factor vector is closest to it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Literal

import numpy as np
import scipy.sparse as sp

from feedwise.errors import ConfigError
from feedwise.itemlist import ItemList
from feedwise.models.base import History, PerUser, Recommender, row_sizes

#: Most liked items compared per user when explaining (the heaviest ones).
_EXPLAIN_HISTORY = 200
#: Users implicit's top-k kernel scores at once per thread (``implicit.cpu.topk``).
_TOPK_ROWS = 100

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

    scores_from_history = True  # a user without training events has no factors of note

    derived_caches = Recommender.derived_caches + ("_unit",)  # unit-length item factors

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        return (self.user_factors_[rows] @ self.item_factors_.T).astype(np.float32)

    def _item_unit(self) -> np.ndarray:
        unit = getattr(self, "_unit", None)
        if unit is None:
            f = self.item_factors_.astype(np.float32)
            unit = f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-9)
            self._unit = unit
        return unit

    def _explain_liked(self, history: sp.csr_matrix, cols: Sequence[np.ndarray]
                       ) -> list[np.ndarray]:
        k = max((len(c) for c in cols), default=0)
        top = np.full((len(cols), k), -1, dtype=np.int64)
        for r, c in enumerate(cols):
            top[r, :len(c)] = c
        best = self._closest_liked(history, top)
        return [best[r, :len(c)] for r, c in enumerate(cols)]

    def _closest_liked(self, history: sp.csr_matrix, top: np.ndarray) -> np.ndarray:
        """For each recommended column in ``top`` (users x k, -1 = none), the liked item of
        the same user whose factor vector is closest (cosine); -1 without history."""
        unit = self._item_unit()
        counts = np.diff(history.indptr)
        width = int(min(counts.max(initial=0), _EXPLAIN_HISTORY))
        best = np.full(top.shape, -1, dtype=np.int64)
        if width == 0 or top.size == 0:
            return best
        liked = np.full((len(counts), width), -1, dtype=np.int64)
        for r in range(len(counts)):
            idx = history.indices[history.indptr[r]:history.indptr[r + 1]]
            if len(idx) > width:
                w = history.data[history.indptr[r]:history.indptr[r + 1]]
                idx = idx[np.argsort(-w, kind="stable")[:width]]
            liked[r, :len(idx)] = idx
        sims = np.einsum("ukf,ulf->ukl", unit[np.maximum(top, 0)], unit[np.maximum(liked, 0)])
        sims[np.broadcast_to((liked < 0)[:, None, :], sims.shape)] = -np.inf
        pick = np.take_along_axis(liked, np.argmax(sims, axis=2), axis=1)
        ok = (top >= 0) & (counts[:, None] > 0)
        best[ok] = pick[ok]
        return best

    def recommend(self, user_ids: Sequence[str] | str, n: int = 10, *,
                  exclude_seen: bool = True, exclude: PerUser = None,
                  candidates: PerUser = None, history: History = None,
                  exclude_negative: bool = True, batch_size: int = 512) -> list[ItemList]:
        """Top-``n`` items per user (see :meth:`Recommender.recommend`).

        Batches of training users without exclude / candidate lists or request-time events
        take a fast path: implicit's fused multi-threaded top-k over the factors, with seen
        and hidden items filtered inside the kernel. Everything else takes the base path.
        The kernel scores 100 users x every item per thread at once: it runs on as many
        threads as the memory budget holds such blocks, and where not even one fits, the
        base path (blocks sized to the budget) serves.
        """
        self._check_fitted()
        ids = [user_ids] if isinstance(user_ids, str) else [str(u) for u in user_ids]
        rows = np.fromiter((self.user_index_.get(u, -1) for u in ids), np.int64, len(ids))
        threads = getattr(self, "num_threads", 0)
        blocks = self.budget() // (_TOPK_ROWS * self.n_items * self._score_cell_bytes())
        if blocks < (threads or os.cpu_count() or 1):
            threads = int(blocks)  # fewer kernel threads, each with its block in the budget
        empty = row_sizes(self.seen_, rows) == 0  # served as unknown users, by the base
        if (exclude is not None or candidates is not None or history or n <= 0
                or (rows < 0).any() or empty.any() or blocks < 1):
            return super().recommend(ids, n, exclude_seen=exclude_seen, exclude=exclude,
                                     candidates=candidates, history=history,
                                     exclude_negative=exclude_negative,
                                     batch_size=batch_size)
        from implicit.cpu.topk import topk

        k = min(n, self.n_items)
        users = np.ascontiguousarray(self.user_factors_, dtype=np.float32)
        items = np.ascontiguousarray(self.item_factors_, dtype=np.float32)
        out: list[ItemList] = []
        step = max(batch_size, 1) * 8
        for start in range(0, len(rows), step):
            block = rows[start:start + step]
            seen = self.seen_[block]
            mask = sp.csr_matrix(seen.shape, dtype=np.float32)
            if exclude_seen:
                mask = mask + seen
            if exclude_negative and self.negatives_.nnz:
                mask = mask + self.negatives_[block]
            mask = sp.csr_matrix(mask)
            mask.data[:] = 1.0
            top, scores = topk(items, users[block], k, filter_query_items=mask,
                               num_threads=threads)
            valid = scores > -1e38
            top = np.where(valid, top, -1).astype(np.int64)
            best = self._closest_liked(seen, top)
            labels = self.item_ids_
            for b in range(len(block)):
                v = valid[b]
                cols = top[b][v]
                out.append(ItemList(labels[cols], scores[b][v],
                                    self.liked_reasons(best[b][v])))
        return out

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}
