"""`EASE`: embarrassingly shallow autoencoder (Steck 2019), a closed-form item-item model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp

from feedwise.errors import ConfigError
from feedwise.interactions import Interactions
from feedwise.models.base import HistoryRecommender, dense_block
from feedwise.models.memory import available_memory, format_bytes

#: Below every score EASE gives a modelled item: items left out of the model by the memory
#: guard rank after them (by popularity) but stay reachable through candidate lists.
_UNMODELLED = -1e3


def _spd_inverse(g: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix via LAPACK ``potrf`` + ``potri``
    (about a third of the flops of a general inverse; may overwrite ``g``)."""
    potrf, potri = la.lapack.get_lapack_funcs(("potrf", "potri"), (g,))
    # g is symmetric, so its transpose is the same matrix in Fortran order: LAPACK then
    # works in place instead of copying n x n floats
    c, info = potrf(g.T, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise ConfigError(f"EASE Gram matrix is not positive definite (LAPACK info={info}); "
                          "raise l2")
    inv, info = potri(c, lower=False, overwrite_c=True)
    if info != 0:
        raise ConfigError(f"EASE inversion failed (LAPACK info={info}); raise l2")
    n, step = inv.shape[0], 1024
    for start in range(0, n, step):  # mirror the upper triangle in place, block by block
        stop = min(start + step, n)
        blk = inv[start:stop, start:stop]
        blk[...] = np.triu(blk) + np.triu(blk, 1).T
        inv[stop:, start:stop] = inv[start:stop, stop:].T
    return inv


class EASE(HistoryRecommender):
    """Linear item-item autoencoder with a zero diagonal, solved in closed form.

    With ``G = XᵀX + λI`` and ``P = G⁻¹``, the weights are ``B = I - P · diag(1/diag(P))``
    and a user's scores are ``x_u B``. ``dropout`` adds the emphasised-denoising penalty of
    EDLAE (Steck 2020, "Autoencoders that don't overfit towards the identity"): the diagonal
    of ``G`` grows by ``dropout / (1 - dropout) * diag(XᵀX)``, shrinking popular items'
    self-reconstruction more. ``G`` is dense (items x items, float32) and inverted
    by Cholesky. Memory guard: when the catalogue needs more than ``max_memory_mb`` for the
    dense solve (about three items x items float32 arrays), only the most-engaged items that
    fit (and have at least ``min_support`` users) are modelled; the rest rank after them by
    popularity. ``topk`` prunes ``B`` to its largest weights per column and serves from a
    sparse matrix, which bounds serving memory for large catalogues.

    EASE is dense by nature: ``max_memory_mb`` is its own budget (the learned state, not a
    working block of the process-wide memory budget), at most
    ``floor(sqrt(max_memory_mb * 2**20 / 12))`` items modelled (13,377 at the default 2048).
    A solve larger than the memory the machine has available fails fast with a
    :class:`ConfigError` naming ``max_memory_mb`` before anything is allocated, instead of
    a ``MemoryError`` (or the kernel's OOM killer) part way through.

    Args:
        l2: Regularisation λ (larger for denser data; ~100-1000 for MovieLens).
        dropout: EDLAE dropout probability in [0, 1) (0 = plain EASE).
        binary: Use 1 per interaction instead of its weight.
        min_support: Items with fewer users are not modelled (default 2: an item engaged by
            one user carries almost no co-engagement, and dropping them cuts the solve ~10x
            on long-tail catalogues such as Last.fm).
        max_memory_mb: Budget of the dense solve.
        topk: Keep the ``topk`` largest weights per item column (``None`` = dense ``B``).
    """

    name = "ease"

    def __init__(self, l2: float = 300.0, dropout: float = 0.25, binary: bool = True,
                 min_support: int = 2, max_memory_mb: float = 2048.0, topk: int | None = None
                 ) -> None:
        self.l2 = l2
        self.dropout = dropout
        self.binary = binary
        self.min_support = min_support
        self.max_memory_mb = max_memory_mb
        self.topk = topk

    def _prepare(self, m: sp.csr_matrix) -> sp.csr_matrix:
        x = sp.csr_matrix(m, dtype=np.float32, copy=True)
        if self.binary:
            x.data[:] = 1.0
        return x

    def max_items(self) -> int:
        """How many items the dense solve may model within ``max_memory_mb``."""
        return int(np.sqrt(self.max_memory_mb * 2**20 / (3 * 4)))

    def _check_params(self) -> None:
        if self.l2 <= 0:
            raise ConfigError(f"l2 must be positive, got {self.l2}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.topk is not None and self.topk <= 0:
            raise ConfigError(f"topk must be positive or None, got {self.topk}")

    def _modelled(self, x: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """The item columns the solve models (enough support, most supported first, within
        the memory budget; sorted) and every column's support. Sets ``modelled_``."""
        support = np.diff(x.tocsc().indptr)
        order = np.argsort(-support, kind="stable")
        keep = np.sort(order[support[order] >= max(self.min_support, 1)][:self.max_items()])
        self._check_solve_fits(len(keep))
        self.modelled_ = keep.astype(np.int64)
        return keep, support

    def _check_solve_fits(self, m: int) -> None:
        """Refuse a dense solve of ``m`` items that the machine cannot hold."""
        need = 3 * 4 * m * m
        free = available_memory()
        if free is not None and need > free:
            raise ConfigError(
                f"{type(self).__name__}: the dense solve of {m:,} items needs about "
                f"{format_bytes(need)} (three {m:,} x {m:,} float32 matrices, within "
                f"max_memory_mb={self.max_memory_mb:g}), but only {format_bytes(free)} is "
                f"available; lower max_memory_mb (at most {free / 3 / 2**20:.0f} fits now) "
                f"or raise min_support")

    def _fit(self, data: Interactions) -> None:
        self._check_params()
        x = self._prepare(data.matrix)
        keep, _ = self._modelled(x)
        self.weights_ = self.solve(x[:, keep], self.l2, self.topk, dropout=self.dropout)

    @staticmethod
    def gram(x: sp.csr_matrix) -> np.ndarray:
        """Dense ``XᵀX`` in float32."""
        return np.asarray((x.T @ x).toarray(), dtype=np.float32)

    @staticmethod
    def solve(x: sp.csr_matrix, l2: float, topk: int | None = None,
              gram: np.ndarray | None = None, dropout: float = 0.0,
              overwrite_gram: bool = False) -> np.ndarray | sp.csr_matrix:
        """EASE weights ``B`` for ``x`` (a precomputed ``gram`` is reused, e.g. in tuning;
        with ``overwrite_gram`` it is solved in place: no second ``m x m`` copy)."""
        g = EASE.gram(x) if gram is None else gram if overwrite_gram else gram.copy()
        diag = np.diag(g).copy()
        g[np.diag_indices_from(g)] += np.float32(l2) + np.float32(dropout / (1 - dropout)) * diag
        p = _spd_inverse(g)
        del g
        # P is symmetric: its transpose is the same matrix in C order (no copy), which
        # sparse @ dense products read as is instead of copying all of B on every call
        p = p.T if not p.flags.c_contiguous and p.flags.f_contiguous else p
        d = np.diag(p).copy()
        p /= -d  # column j divided by -P_jj
        p[np.diag_indices_from(p)] = 0.0
        return EASE.prune(p.astype(np.float32, copy=False), topk)

    @staticmethod
    def prune(b: np.ndarray, topk: int | None) -> np.ndarray | sp.csr_matrix:
        """``b`` with only the ``topk`` largest-magnitude weights of each column kept
        (sparse), or ``b`` itself when ``topk`` is ``None`` or covers every row."""
        if topk is None or topk >= b.shape[0]:
            return b
        top = np.argpartition(-np.abs(b), topk - 1, axis=0)[:topk]
        vals = np.take_along_axis(b, top, axis=0)
        cols = np.broadcast_to(np.arange(b.shape[1]), top.shape)
        return sp.csr_matrix((vals.ravel(), (top.ravel(), cols.ravel())), shape=b.shape)

    def _modelled_scores(self, x: sp.csr_matrix) -> np.ndarray:
        """Scores of the modelled items for histories ``x`` (prepared, modelled columns)."""
        w = self.weights_
        part = (x @ w) if not sp.issparse(w) else (x @ w).toarray()
        return np.asarray(part, dtype=np.float32)

    def _score_matrix(self, x: sp.csr_matrix) -> np.ndarray:
        x = self._prepare(x)[:, self.modelled_]
        part = self._modelled_scores(x)
        if len(self.modelled_) == self.n_items:
            return part
        pop = self.popularity_ / (self.popularity_.max() + 1.0)
        out = np.broadcast_to((_UNMODELLED + pop).astype(np.float32),
                              (x.shape[0], self.n_items)).copy()
        out[:, self.modelled_] = part
        return out

    def _positions(self) -> np.ndarray:
        """Each item column's position among the modelled items (-1: not modelled)."""
        cached = getattr(self, "_pos", None)  # (modelled_, positions), rebuilt with it
        if cached is None or cached[0] is not self.modelled_ or len(cached[1]) != self.n_items:
            pos = np.full(self.n_items, -1, dtype=np.int64)
            pos[self.modelled_] = np.arange(len(self.modelled_))
            cached = self._pos = (self.modelled_, pos)
        return cached[1]

    def _weights_at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``weights_[rows][:, cols]`` (modelled positions) as a dense block."""
        return np.asarray(dense_block(self.weights_, rows, cols), dtype=np.float32)

    def score_columns(self, history: sp.csr_matrix, cols: np.ndarray) -> np.ndarray:
        """:meth:`_score_matrix` of one history row at ``cols``: the history's rows of the
        weights at those columns (``len(history) x len(cols)``), no row over the catalogue."""
        cols = np.asarray(cols, np.int64)
        pos = self._positions()
        liked, vals = self._row_values(history)
        lp = pos[liked]
        keep = lp >= 0
        pc = pos[cols]
        ok = pc >= 0
        if len(self.modelled_) == self.n_items:
            out = np.zeros(len(cols), np.float32)
        else:
            pop = self.popularity_[cols] / (self.popularity_.max() + 1.0)
            out = (_UNMODELLED + pop).astype(np.float32)
        if ok.any():
            out[ok] = (vals[keep] @ self._weights_at(lp[keep], pc[ok])) if keep.any() else 0.0
        return out

    def _row_values(self, history: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """One history row's columns and its values as :meth:`_prepare` leaves them
        (float32), read from the row's arrays (no sparse matrix built per request)."""
        if not history.has_canonical_format:
            history = sp.csr_matrix(history, copy=True)
            history.sum_duplicates()
        v = (np.ones(history.nnz, np.float32) if self.binary
             else np.asarray(history.data, np.float32))
        return history.indices, v

    def _explain_liked(self, history: sp.csr_matrix, cols: Sequence[np.ndarray]
                       ) -> list[np.ndarray]:
        pos = self._positions()
        x = self._prepare(history)
        out = []
        for r, items in enumerate(cols):
            liked = x.indices[x.indptr[r]:x.indptr[r + 1]]
            weight = x.data[x.indptr[r]:x.indptr[r + 1]]
            keep = pos[liked] >= 0
            liked, weight = liked[keep], weight[keep]
            items = np.asarray(items, np.int64)
            because = np.full(len(items), -1, np.int64)
            ok = np.flatnonzero(pos[items] >= 0) if len(liked) else np.empty(0, np.int64)
            if len(ok):
                # each item's share of the score x_u B per liked item (one block of B)
                contrib = self._weights_at(pos[liked], pos[items[ok]]) * weight[:, None]
                best = np.argmax(contrib, axis=0)
                named = contrib[best, np.arange(len(ok))] > 0
                because[ok[named]] = liked[best[named]]
            out.append(because)
        return out

    def _state(self) -> dict:
        return {"modelled": self.modelled_, "weights": self.weights_}
