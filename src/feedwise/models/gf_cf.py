"""`GFCF`: graph-filter collaborative filtering (Shen et al. 2021, "How powerful is graph
convolution for recommendation?")."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from feedwise.errors import ConfigError
from feedwise.interactions import Interactions
from feedwise.models.base import HistoryRecommender, binary, dense_block

#: Largest smaller side of ``R̃`` whose Gram (that side squared, float64) is solved densely
#: instead of by ARPACK (128 MB at 4,000, about three times that while solving; less where
#: the memory budget is smaller). ARPACK's vectors change from one run to the next
#: when singular values near the cut are close (Last.fm, 1,900 users x 18,000 artists: the
#: projection moved by up to 1e-3 between two fits of the same data in one process, enough
#: to flip a Hybrid calibration's choice); the dense solve gives the same vectors every run.
DENSE_GRAM_MAX = 4000


def _top_right_vectors(rn: sp.csr_matrix, k: int) -> np.ndarray:
    """The top ``k`` right singular vectors of ``rn`` (k x columns), from a dense
    eigendecomposition of its smaller Gram matrix."""
    from scipy.linalg import eigh

    rn = sp.csr_matrix(rn, dtype=np.float64)
    rows, cols = rn.shape
    if rows < cols:  # R̃ R̃ᵀ = U S² Uᵀ, then V = R̃ᵀ U / S
        w, u = eigh((rn @ rn.T).toarray(), subset_by_index=[rows - k, rows - 1])
        vt, norm = (rn.T @ u).T, np.sqrt(np.maximum(w, 0.0))
    else:  # R̃ᵀ R̃ = V S² Vᵀ
        w, v = eigh((rn.T @ rn).toarray(), subset_by_index=[cols - k, cols - 1])
        vt, norm = v.T, np.ones_like(w)
    # directions beyond the data's rank (empty or copied histories, k above the rank) are
    # left at zero: they add nothing to the filter
    live = w > max(float(w.max()), 0.0) * 1e-10
    vt = vt * np.where(live, 1.0 / np.where(live, norm, 1.0), 0.0)[:, None]
    return np.ascontiguousarray(vt[::-1])


class GFCF(HistoryRecommender):
    """Item-item graph filters on the degree-normalised interaction matrix, no training.

    With ``R̃ = D_u^-1/2 X D_i^-1/2`` (``X`` binary, ``D`` the user and item degrees), a
    user's scores are ``x_u (linear · R̃ᵀR̃ + ideal · D_i^-1/2 V Vᵀ D_i^1/2)``: a linear
    low-pass filter (the normalised item-item Gram) plus an *ideal* low-pass filter that
    keeps only the top ``factors`` right singular vectors ``V`` of ``R̃`` (one truncated
    SVD). ``linear=0`` leaves the ideal filter alone, a smooth low-rank view of the user
    that complements EASE-style item-item models in a :class:`Hybrid`.

    Cost: the SVD and ``factors x items`` floats; with ``linear > 0`` also the sparse
    ``R̃ᵀR̃`` (items x items, as dense as the co-engagement graph).

    Args:
        factors: Singular vectors kept by the ideal filter.
        ideal: Weight of the ideal low-pass filter.
        linear: Weight of the linear filter ``R̃ᵀR̃`` (0 = ideal filter only).
        random_state: Seed of the truncated SVD's start vector (ARPACK, used where both
            sides of the data exceed :data:`DENSE_GRAM_MAX`).
    """

    name = "gf-cf"

    def __init__(self, factors: int = 32, ideal: float = 0.5, linear: float = 1.0,
                 random_state: int = 0) -> None:
        self.factors = factors
        self.ideal = ideal
        self.linear = linear
        self.random_state = random_state

    def _fit(self, data: Interactions) -> None:
        if self.factors < 1 or self.ideal < 0 or self.linear < 0:
            raise ConfigError(f"need factors >= 1, ideal >= 0, linear >= 0; got "
                              f"factors={self.factors}, ideal={self.ideal}, "
                              f"linear={self.linear}")
        if self.ideal == 0 and self.linear == 0:
            raise ConfigError("ideal and linear are both 0: the model would score nothing")
        x = binary(data.matrix)
        du = np.asarray(x.sum(axis=1), dtype=np.float64).ravel()
        di = np.asarray(x.sum(axis=0), dtype=np.float64).ravel()
        inv_u = np.where(du > 0, 1.0 / np.sqrt(np.maximum(du, 1.0)), 0.0)
        inv_i = np.where(di > 0, 1.0 / np.sqrt(np.maximum(di, 1.0)), 0.0)
        rn = sp.csr_matrix(sp.diags(inv_u) @ x.astype(np.float64) @ sp.diags(inv_i))
        n = x.shape[1]
        if self.linear > 0:
            self.gram_ = sp.csr_matrix((rn.T @ rn).astype(np.float32) * np.float32(self.linear))
        else:
            self.gram_ = sp.csr_matrix((n, n), dtype=np.float32)
        self.item_in_ = inv_i.astype(np.float32)
        self.item_out_ = np.sqrt(di).astype(np.float32)
        self.factors_ = self._top_vectors(rn)

    def _top_vectors(self, rn: sp.csr_matrix) -> np.ndarray:
        """Top ``factors`` right singular vectors of ``rn`` (factors x items), scaled by
        ``sqrt(ideal)`` so that ``Vᵀ V`` carries the filter's weight."""
        k = min(self.factors, min(rn.shape))
        if self.ideal == 0 or k == 0:
            return np.zeros((0, rn.shape[1]), dtype=np.float32)
        if k >= min(rn.shape) - 1:  # svds needs k < min(shape): small data, dense SVD
            _, _, vt = np.linalg.svd(rn.toarray(), full_matrices=False)
            vt = vt[:k]
        elif min(rn.shape) <= min(DENSE_GRAM_MAX, np.sqrt(self.budget() / 24)):
            # the Gram, eigh's copy of it and its workspace: about 3 x 8 bytes a cell
            vt = _top_right_vectors(rn, k)
        else:
            _, _, vt = svds(sp.csc_matrix(rn), k=k, random_state=self.random_state)
        return (vt * np.sqrt(self.ideal)).astype(np.float32)

    def _score_matrix(self, x: sp.csr_matrix) -> np.ndarray:
        x = binary(x)
        out = np.asarray((x @ self.gram_).toarray(), dtype=np.float32)
        if len(self.factors_):
            low = np.asarray(x @ sp.diags(self.item_in_) @ self.factors_.T, dtype=np.float32)
            out += (low @ self.factors_) * self.item_out_[None, :]
        return out

    def score_columns(self, history: sp.csr_matrix, cols: np.ndarray) -> np.ndarray:
        """:meth:`_score_matrix` of one history row at ``cols`` (the liked items' rows of
        the Gram at those columns, the filter through the factors of those items)."""
        cols = np.asarray(cols, np.int64)
        if not history.has_canonical_format:
            history = sp.csr_matrix(history, copy=True)
            history.sum_duplicates()
        liked = history.indices
        val = np.ones(len(liked), np.float32)  # binary(history)
        out = np.asarray(val @ dense_block(self.gram_, liked, cols), np.float32).ravel() \
            if len(liked) and self.gram_.nnz else np.zeros(len(cols), np.float32)
        if len(self.factors_):
            low = (val * self.item_in_[liked]).astype(np.float32) @ self.factors_[:, liked].T
            out = out + (low.astype(np.float32) @ self.factors_[:, cols]) * self.item_out_[cols]
        return np.asarray(out, np.float32)

    def _explain_liked(self, history: sp.csr_matrix, cols: Sequence[np.ndarray]
                       ) -> list[np.ndarray]:
        out = []
        for r, items in enumerate(cols):
            liked = history.indices[history.indptr[r]:history.indptr[r + 1]]
            items = np.asarray(items, dtype=np.int64)
            if len(liked) == 0 or len(items) == 0:
                out.append(np.full(len(items), -1, np.int64))
                continue
            # contribution of each liked item (rows) to each recommended item (columns)
            # in float64, rounded: liked items with equal contributions (items with the
            # same users) tie exactly, so the first of them explains whichever items are
            # explained together (float32 products rounded by position broke ties apart)
            contrib = np.asarray(dense_block(self.gram_, liked, items), dtype=np.float64)
            if len(self.factors_):
                v = self.factors_
                contrib += ((self.item_in_[liked, None].astype(np.float64)
                             * (v[:, liked].T.astype(np.float64)
                                @ v[:, items].astype(np.float64)))
                            * self.item_out_[None, items].astype(np.float64))
            contrib = np.round(contrib, 12)
            best = np.argmax(contrib, axis=0)
            out.append(np.where(contrib[best, np.arange(len(items))] > 0,
                                liked[best].astype(np.int64), -1))
        return out

    def _state(self) -> dict:
        return {"gram": self.gram_, "factors": self.factors_, "item_in": self.item_in_,
                "item_out": self.item_out_}
