"""`TimeEASE`: EASE on temporal co-engagement — items engaged next to each other in time."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from feedwise.errors import ConfigError
from feedwise.interactions import Interactions
from feedwise.models.base import binary
from feedwise.models.ease import EASE


def temporal_gram(matrix: sp.csr_matrix, last_ts: sp.csr_matrix | None, window: int,
                  decay: float) -> sp.csr_matrix:
    """Sparse items x items weights of temporal adjacency.

    Each user's items are ordered by event time; two items ``d`` places apart
    (``1 <= d <= window``) add ``decay ** (d - 1)`` to both of their cells. The diagonal holds
    each item's number of users. Without event times, or when no user has two distinct event
    times (a data set stamped with one fixed time), there is no order: this is ``XᵀX``.
    """
    x = binary(matrix)
    n = x.shape[1]
    if last_ts is None or sp.csr_matrix(last_ts).nnz != x.nnz:
        return sp.csr_matrix(x.T @ x)
    t = sp.csr_matrix(last_ts, dtype=np.float64, copy=True)
    t.sort_indices()
    rows = np.repeat(np.arange(t.shape[0]), np.diff(t.indptr))
    order = np.lexsort((t.indices, t.data, rows))  # by user, then time, then item
    users, items = rows[order], t.indices[order]
    same_user = users[:-1] == users[1:]
    if not (t.data[order][:-1][same_user] != t.data[order][1:][same_user]).any():
        return sp.csr_matrix(x.T @ x)  # no user has two event times: there is no order
    src, dst, val = [np.arange(n)], [np.arange(n)], [np.asarray(x.sum(axis=0)).ravel()]
    for d in range(1, window + 1):
        same = users[:-d] == users[d:]
        if not same.any():
            break
        a, b = items[:-d][same], items[d:][same]
        w = np.full(len(a), decay ** (d - 1), dtype=np.float32)
        src += [a, b]
        dst += [b, a]
        val += [w, w]
    g = sp.coo_matrix((np.concatenate(val).astype(np.float32),
                       (np.concatenate(src), np.concatenate(dst))), shape=(n, n))
    return g.tocsr()  # duplicates summed


class TimeEASE(EASE):
    """EASE whose Gram matrix counts temporal adjacency instead of plain co-engagement.

    Each user's items are put in event-time order, and two items ``d`` places apart
    (``d <= window``) co-occur with weight ``decay ** (d - 1)``: items people engage with
    one after the other (a session, a browsing order, a season) weigh more than items that
    merely share a user years apart. The closed-form EASE solve (``l2``, ``dropout``, memory
    guard, ``topk``) and serving are :class:`EASE`'s, so scores for a user are ``x_u B``
    and fold-in needs no event times. Without event times (or with one fixed time for every
    event) it is plain EASE.
    Blended with plain EASE (the default :class:`Hybrid`) it adds the sequence signal EASE
    ignores.

    Args:
        l2: Regularisation λ.
        window: Neighbours in each user's time order that co-occur.
        decay: Weight ratio of each further neighbour (1 = flat window).
        dropout: EDLAE dropout (see :class:`EASE`).
        binary: Use 1 per interaction when scoring (the Gram is always binary).
        min_support: Items with fewer users are not modelled.
        max_memory_mb: Budget of the dense solve.
        topk: Keep the ``topk`` largest weights per item column (``None`` = dense).
    """

    name = "time-ease"

    def __init__(self, l2: float = 200.0, window: int = 40, decay: float = 0.9,
                 dropout: float = 0.0, binary: bool = True, min_support: int = 2,
                 max_memory_mb: float = 2048.0, topk: int | None = None) -> None:
        super().__init__(l2=l2, dropout=dropout, binary=binary, min_support=min_support,
                         max_memory_mb=max_memory_mb, topk=topk)
        self.window = window
        self.decay = decay

    def _fit(self, data: Interactions) -> None:
        if self.window < 1 or not 0 < self.decay <= 1:
            raise ConfigError(f"need window >= 1 and 0 < decay <= 1, got window={self.window}, "
                              f"decay={self.decay}")
        self._check_params()
        x = self._prepare(data.matrix)
        keep, _ = self._modelled(x)
        g = temporal_gram(data.matrix, data.last_ts, self.window, self.decay)
        g = np.asarray(g[keep][:, keep].toarray(), dtype=np.float32)
        self.weights_ = self.solve(x[:, keep], self.l2, self.topk, gram=g, dropout=self.dropout,
                                   overwrite_gram=True)
