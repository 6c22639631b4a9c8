"""`RP3beta`: random walks of length three with a popularity penalty (Paudel et al. 2017)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from feedwise.errors import ConfigError
from feedwise.interactions import Interactions
from feedwise.models.base import HistoryRecommender, binary


class RP3beta(HistoryRecommender):
    """Item-item graph model: the probability of walking item -> user -> item, sharpened by
    ``alpha`` and divided by the destination's popularity to the power ``beta``.

    ``W[i, j] = (P_iu P_ui)[i, j] ** alpha / pop(j) ** beta`` where ``P_ui`` and ``P_iu``
    are the row-normalised user -> item and item -> user transition matrices; each item
    keeps its ``k`` largest outgoing weights, and ``score(u, j) = Σ_i x(u, i) W[i, j]``.
    ``beta`` > 0 lifts long-tail items that a plain co-occurrence model buries.

    Args:
        alpha: Exponent of the walk probabilities.
        beta: Popularity penalty exponent.
        k: Neighbours kept per item.
        block_size: Items whose rows are computed at once (bounds memory).
    """

    name = "rp3beta"

    def __init__(self, alpha: float = 1.0, beta: float = 0.5, k: int = 100,
                 block_size: int = 2048) -> None:
        self.alpha = alpha
        self.beta = beta
        self.k = k
        self.block_size = block_size

    def _fit(self, data: Interactions) -> None:
        if self.k <= 0 or self.alpha <= 0 or self.beta < 0:
            raise ConfigError(f"need k > 0, alpha > 0, beta >= 0; got k={self.k}, "
                              f"alpha={self.alpha}, beta={self.beta}")
        x = binary(data.matrix)
        pui = normalize(x, norm="l1", axis=1)
        piu = normalize(x.T.tocsr(), norm="l1", axis=1)
        pop = np.asarray(x.sum(axis=0)).ravel()
        penalty = np.power(np.maximum(pop, 1.0), -self.beta).astype(np.float32)
        n = x.shape[1]
        k = min(self.k, max(n - 1, 1))
        rows, cols, vals = [], [], []
        for start in range(0, n, self.block_size):
            stop = min(start + self.block_size, n)
            w = (piu[start:stop] @ pui).toarray().astype(np.float32)
            if self.alpha != 1.0:
                np.power(w, self.alpha, out=w)
            w *= penalty[None, :]
            w[np.arange(stop - start), np.arange(start, stop)] = 0.0
            top = np.argpartition(-w, k - 1, axis=1)[:, :k]
            v = np.take_along_axis(w, top, axis=1)
            keep = (v > 0).ravel()
            rows.append(np.repeat(np.arange(start, stop), k)[keep])
            cols.append(top.ravel()[keep])
            vals.append(v.ravel()[keep])
        self.weights_ = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows),
                                                              np.concatenate(cols))),
                                      shape=(n, n), dtype=np.float32)

    def _score_matrix(self, x: sp.csr_matrix) -> np.ndarray:
        return np.asarray((binary(x) @ self.weights_).toarray(), dtype=np.float32)

    def _explain(self, history: sp.csr_matrix, cols: list[np.ndarray]) -> list[list[str]]:
        wt = getattr(self, "_wt", None)
        if wt is None:
            wt = self._wt = self.weights_.T.tocsr()  # row j: the items walking into j
        out = []
        for r, items in enumerate(cols):
            liked = history.indices[history.indptr[r]:history.indptr[r + 1]]
            reasons = []
            for j in items:
                into = wt[j]
                mask = np.isin(into.indices, liked)
                if not mask.any():
                    reasons.append(self.fallback_reason)
                    continue
                i = into.indices[mask][int(np.argmax(into.data[mask]))]
                reasons.append(f"because you liked {self.item_labels_[i]}")
            out.append(reasons)
        return out

    def _state(self) -> dict:
        return {"weights": self.weights_}
