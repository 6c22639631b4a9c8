"""`Social`: candidates from the people a user follows or befriends."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from feedwise.errors import ConfigError, DataError
from feedwise.interactions import Interactions
from feedwise.models.base import Recommender
from feedwise.models.scratch import call_state

#: Weight of the popularity tie-break: far below one friend's engagement.
_TIE = 1e-3


def edge_matrix(edges: pd.DataFrame | None, user_index: dict[str, int], *,
                symmetric: bool, src: str = "src", dst: str = "dst") -> sp.csr_matrix:
    """Users x users matrix with 1 where row follows / befriends column (training users)."""
    n = len(user_index)
    if edges is None or len(edges) == 0:
        return sp.csr_matrix((n, n), dtype=np.float32)
    if src not in edges.columns and {"src_id", "dst_id"} <= set(edges.columns):
        # the store's graph (store.edges_as_of): relations that carry taste, not blocks
        src, dst = "src_id", "dst_id"
        if "kind" in edges.columns:
            edges = edges[edges["kind"].isin(("follow", "friend", "trust"))]
    for col in (src, dst):
        if col not in edges.columns:
            raise DataError(f"edges table needs columns {src!r} and {dst!r}; "
                            f"has {list(edges.columns)}")
    a = edges[src].astype(str).map(user_index)
    b = edges[dst].astype(str).map(user_index)
    ok = a.notna() & b.notna() & (a != b)
    r, c = a[ok].to_numpy(np.int64), b[ok].to_numpy(np.int64)
    if symmetric:
        r, c = np.r_[r, c], np.r_[c, r]
    m = sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(n, n))
    m.data[:] = 1.0  # duplicates count once
    return m


class Social(Recommender):
    """Scores an item by how many of the user's friends engaged with it.

    ``score(u, i) = Σ_{f ∈ friends(u)} x̂(f, i)`` where ``x̂`` is 1 for an engagement
    (``weighted=False``) or the friend's weight divided by their largest weight. A small
    popularity term breaks ties, so users with no friends (or friends with no history) get
    trending items. Pass the graph to ``fit(data, edges=df)`` with columns ``src, dst``:
    ``src`` follows / trusts / befriends ``dst`` and sees what ``dst`` engaged with; or the
    store's graph as of the training time, ``store.edges_as_of(until,
    exclude_objectors=True)`` (``src_id, dst_id, kind``; blocks are left out), which is
    what ``feedwise train`` and ``feedwise evaluate`` pass.

    Args:
        symmetric: Treat every edge as mutual (friendship graphs such as Last.fm).
        weighted: Use normalised interaction weights instead of 1 per engagement.
    """

    name = "social"
    derived_caches = Recommender.derived_caches + ("_x", "_xc")  # engagement, row/col

    def __init__(self, symmetric: bool = False, weighted: bool = False) -> None:
        self.symmetric = symmetric
        self.weighted = weighted

    def fit(self, data: Interactions, edges: pd.DataFrame | None = None) -> Self:
        """Fit on ``data`` with the social graph ``edges`` (``src`` follows ``dst``)."""
        self._edges = edges
        try:
            return super().fit(data)
        finally:
            del self._edges

    def _fit(self, data: Interactions) -> None:
        if not isinstance(self.symmetric, bool) or not isinstance(self.weighted, bool):
            raise ConfigError("symmetric and weighted must be booleans")
        self.friends_ = edge_matrix(getattr(self, "_edges", None), data.user_index,
                                    symmetric=self.symmetric)

    def _engagement(self) -> sp.csr_matrix:
        x = getattr(self, "_x", None)
        if x is None:
            x = sp.csr_matrix(self.seen_, dtype=np.float32, copy=True)
            if self.weighted:
                top = np.maximum(x.max(axis=1).toarray().ravel(), 1e-12)
                x.data = x.data / np.repeat(top, np.diff(x.indptr)).astype(np.float32)
            else:
                x.data[:] = 1.0
            self._x = x
        return x

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        s = np.asarray((self.friends_[rows] @ self._engagement()).toarray(), dtype=np.float32)
        return s + _TIE * self.popularity_ / (self.popularity_.max() + 1.0)

    def friends_of(self, user_id: str) -> list[str]:
        """Training users ``user_id`` follows."""
        self._check_fitted()
        r = self.user_index_.get(str(user_id))
        if r is None:
            return []
        return [str(self.user_ids_[c]) for c in self.friends_[r].indices]

    def recommend(self, user_ids, n=10, **kwargs):  # noqa: D102 - documented on base
        if isinstance(user_ids, str):
            user_ids = [user_ids]
        # _explain sees only history rows; it needs the users' friends, so the batch's rows
        # are kept (per thread) for the duration of the call.
        state = call_state(self)
        state.rows = [self.user_index_.get(str(u), -1) for u in user_ids] \
            if hasattr(self, "user_index_") else []
        state.explained = 0
        try:
            return super().recommend(user_ids, n, **kwargs)
        finally:
            state.rows = []

    def _explain(self, history: sp.csr_matrix, cols: list[np.ndarray]) -> list[list[str]]:
        state = call_state(self)
        rows, offset = getattr(state, "rows", []), getattr(state, "explained", 0)
        batch = [rows[offset + b] if offset + b < len(rows) else -1 for b in range(len(cols))]
        state.explained = offset + len(cols)
        return self.explain_rows(batch, cols)

    def explain_rows(self, rows: list[int], cols: list[np.ndarray]) -> list[list[str]]:
        """Reasons for items ``cols`` of the training users at matrix ``rows`` (-1: unknown):
        the friend who engaged with each item most strongly."""
        x = getattr(self, "_xc", None)
        if x is None:
            x = self._xc = self._engagement().tocsc()
        out = []
        for r, items in zip(rows, cols, strict=True):
            friends = self.friends_[r].indices if r >= 0 else np.array([], np.int64)
            reasons = []
            for i in items:
                col = x[:, i]
                fans = np.intersect1d(friends, col.indices[col.data > 0])
                if len(fans) == 0:
                    reasons.append(self.fallback_reason)
                    continue
                vals = np.asarray(col[fans].toarray()).ravel()
                f = fans[int(np.argmax(vals))]
                more = f" and {len(fans) - 1} more" if len(fans) > 1 else ""
                reasons.append(f"liked by your friend {self.user_ids_[f]}{more}")
            out.append(reasons)
        return out

    def _state(self) -> dict:
        return {"friends": self.friends_}
