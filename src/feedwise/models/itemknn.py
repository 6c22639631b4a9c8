"""`ItemKNN`: classic item-item collaborative filtering with cosine similarity."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from feedwise.errors import ConfigError
from feedwise.interactions import Interactions
from feedwise.models.base import HistoryRecommender


class ItemKNN(HistoryRecommender):
    """Item-based neighbourhood model (Sarwar et al. 2001; Deshpande & Karypis 2004).

    ``sim(i, j)`` is the cosine between the item columns of the user x item matrix (with an
    optional shrinkage term). Each item keeps its ``k`` most similar neighbours ``N_k(i)``,
    and a user's score for ``i`` is the neighbourhood formula

        score(u, i) = sum_{j in N_k(i) ∩ I(u)} sim(i, j) * r(u, j)

    divided by ``sum |sim(i, j)|`` over the same ``j`` when ``normalize`` is set.

    Args:
        k: Neighbours kept per item.
        shrink: Shrinkage added to the cosine denominator (damps rare co-occurrence).
        binary: Treat every interaction as 1 (implicit feedback) instead of its weight.
        normalize: Use the weighted-average form of the formula.
        block_size: Items whose similarities are computed at once (bounds memory).
    """

    name = "itemknn"

    def __init__(self, k: int = 50, shrink: float = 10.0, binary: bool = True,
                 normalize: bool = False, block_size: int = 2048) -> None:
        self.k = k
        self.shrink = shrink
        self.binary = binary
        self.normalize = normalize
        self.block_size = block_size

    def _prepare(self, m: sp.csr_matrix) -> sp.csr_matrix:
        m = sp.csr_matrix(m, dtype=np.float32)
        if self.binary:
            m = m.copy()
            m.data[:] = 1.0
        return m

    def _fit(self, data: Interactions) -> None:
        if self.k <= 0:
            raise ConfigError(f"k must be positive, got {self.k}")
        x = self._prepare(data.matrix)
        xt = x.T.tocsr()  # items x users
        norms = np.sqrt(np.asarray(xt.multiply(xt).sum(axis=1)).ravel())
        xn = normalize(xt, axis=1) if self.shrink == 0 else xt
        n = xt.shape[0]
        k = min(self.k, n - 1) if n > 1 else 1
        rows, cols, vals = [], [], []
        for start in range(0, n, self.block_size):
            stop = min(start + self.block_size, n)
            block = (xn[start:stop] @ xn.T).toarray()
            if self.shrink:
                block /= np.outer(norms[start:stop], norms) + self.shrink
            block[np.arange(stop - start), np.arange(start, stop)] = 0.0
            top = np.argpartition(-block, k - 1, axis=1)[:, :k]
            v = np.take_along_axis(block, top, axis=1)
            keep = v > 0
            rows.append(np.repeat(np.arange(start, stop), k)[keep.ravel()])
            cols.append(top.ravel()[keep.ravel()])
            vals.append(v.ravel()[keep.ravel()])
        # sim_[i, j] = sim(i, j) for j in N_k(i)
        self.sim_ = sp.csr_matrix((np.concatenate(vals).astype(np.float32),
                                   (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
        self.sim_t_ = self.sim_.T.tocsr()

    def _score_matrix(self, x: sp.csr_matrix) -> np.ndarray:
        x = self._prepare(x)
        scores = (x @ self.sim_t_).toarray()
        if self.normalize:
            denom = (sp.csr_matrix((np.ones_like(x.data), x.indices, x.indptr), shape=x.shape)
                     @ abs(self.sim_t_)).toarray()
            scores = np.divide(scores, denom, out=np.zeros_like(scores), where=denom > 0)
        return scores.astype(np.float32)

    def _explain(self, history: sp.csr_matrix, cols: list[np.ndarray]) -> list[list[str]]:
        x = self._prepare(history)
        out = []
        for r, items in enumerate(cols):
            liked = x.indices[x.indptr[r]:x.indptr[r + 1]]
            w = x.data[x.indptr[r]:x.indptr[r + 1]]
            if len(liked) == 0 or len(items) == 0:
                out.append([self.fallback_reason] * len(items))
                continue
            # every item's contribution from every liked item, in one sub-matrix
            contrib = self.sim_[np.asarray(items)][:, liked].toarray() * w
            best = contrib.argmax(axis=1)
            top = contrib[np.arange(len(items)), best]
            out.append([f"because you liked {self.item_labels_[liked[j]]}" if c > 0
                        else self.fallback_reason for j, c in zip(best, top, strict=True)])
        return out

    def similar_items(self, item_id: str, n: int = 10):  # noqa: D102 - documented on base
        from feedwise.errors import NotFoundError
        from feedwise.itemlist import ItemList

        self._check_fitted()
        c = self.item_index_.get(str(item_id))
        if c is None:
            raise NotFoundError(f"unknown item {item_id!r}")
        row = self.sim_[c]
        order = np.argsort(-row.data, kind="stable")[:n]
        cols = row.indices[order]
        return ItemList(self.item_ids_[cols], row.data[order],
                        [f"similar to {self.item_labels_[c]}"] * len(cols))

    def _state(self) -> dict:
        return {"sim": self.sim_}

    def _set_state(self, state: dict) -> None:
        self.sim_ = state["sim"]
        self.sim_t_ = self.sim_.T.tocsr()
