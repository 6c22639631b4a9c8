"""The stored social graph in the feed: follows, the network source and author affinity.

:func:`load_graph` reads ``store.edges_as_of(until, exclude_objectors=True)`` (the graph
standing when the engine's data ends: an edge made later is not used, so a replay at a
past time sees the graph of that time) into an engine:

* the ``follow`` edges to authors join the user's followed authors (the ``followed``
  source), beside the ``follows`` list of ``users.attributes``;
* those follows add to the user's author affinity (one engagement's worth, the mean
  stored affinity);
* :class:`NetworkSource` (``network``) proposes the newest posts of the authors followed
  by the people the user follows or befriends, with reasons such as "followed by 3 of
  your friends".

Relations of users who withdrew personalisation consent are left out (they profile no
one), and the source is personal (skipped for a user without that consent).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from feedwise.feed.catalog import Catalog, UserTable
from feedwise.feed.context import UserContext
from feedwise.itemlist import ItemList
from feedwise.store import EventStore


class NetworkSource:
    """Newest posts of authors followed by the people the user follows or befriends.

    Args:
        catalog: The engine's catalogue.
        users: The engine's user table (rows of the graph).
        limit: Most candidates it proposes per request.
        per_author: Newest posts taken from each such author.
    """

    personal = True
    name = "network"

    def __init__(self, catalog: Catalog, users: UserTable, limit: int = 20,
                 per_author: int = 2) -> None:
        self.catalog = catalog
        self.users = users
        self.limit = limit
        self.per_author = per_author
        n = users.n
        #: users x users: row follows, befriends or trusts column
        self.peers = sp.csr_matrix((n, n), dtype=np.float32)
        #: users x authors: row follows author (catalogue author codes)
        self.follows = sp.csr_matrix((n, len(catalog.authors)), dtype=np.float32)

    def load(self, edges: pd.DataFrame) -> None:
        """Take the graph (``src_id, dst_id, kind`` as :meth:`EventStore.edges_as_of`
        returns it) for the engine's users and authors."""
        n, cat = self.users.n, self.catalog
        rel = edges[edges["kind"].isin(("follow", "friend", "trust"))] if len(edges) else edges
        src = _codes(rel, "src_id", self.users.index)
        dst = _codes(rel, "dst_id", self.users.index)
        ok = (src >= 0) & (dst >= 0) & (src != dst)
        self.peers = _binary(src[ok], dst[ok], (n, n))
        fol = rel[rel["kind"] == "follow"] if len(rel) else rel
        fs = _codes(fol, "src_id", self.users.index)
        fa = _codes(fol, "dst_id", cat.author_index)
        ok = (fs >= 0) & (fa >= 0)
        self.follows = _binary(fs[ok], fa[ok], (n, len(cat.authors)))

    def candidates(self, ctx: UserContext, k: int) -> ItemList:
        r = ctx.row
        if r < 0 or r >= self.peers.shape[0] or self.follows.shape[1] == 0:
            return _nothing()
        peers = self.peers.indices[self.peers.indptr[r]:self.peers.indptr[r + 1]]
        if len(peers) == 0:
            return _nothing()
        counts = np.asarray(self.follows[peers].sum(axis=0)).ravel()
        own = set(self.users.followed(r).tolist())
        own |= set(self.follows.indices[self.follows.indptr[r]:self.follows.indptr[r + 1]]
                   .tolist())
        authors = np.flatnonzero(counts > 0)
        authors = np.array([a for a in authors if a not in own], np.int64)
        if len(authors) == 0:
            return _nothing()
        authors = authors[np.argsort(-counts[authors], kind="stable")]
        cat = self.catalog
        idx_parts, score_parts, why = [], [], []
        for a in authors[:max(k, 1)]:
            posts = cat.by_author[cat.author_start[a]:cat.author_start[a + 1]]
            posts = posts[cat.created_s[posts] <= ctx.now_s][:self.per_author]
            if len(posts) == 0:
                continue
            c = int(counts[a])
            fans = [p for p in peers if self.follows[p, a] > 0][:1]
            reason = (f"followed by {c} of your friends" if c > 1 else
                      f"followed by {self.users.user_ids[fans[0]]}, whom you follow"
                      if fans else "followed by your friends")
            idx_parts.append(posts)
            age_h = (ctx.now_s - cat.created_s[posts]) / 3600.0
            score_parts.append(np.log1p(c) - age_h / 48.0)
            why.extend([reason] * len(posts))
        if not idx_parts:
            return _nothing()
        idx = np.concatenate(idx_parts)
        score = np.concatenate(score_parts)
        order = np.argsort(-score, kind="stable")[:min(k, self.limit)]
        return ItemList(None, score[order], [why[i] for i in order], index=idx[order])

    def forget_user(self, user_id: str) -> bool:
        """Drop the user's row and column of the graph (their relations, and their being
        someone else's friend)."""
        r = self.users.index.get(str(user_id), -1)
        if r < 0 or r >= self.peers.shape[0]:
            return False
        keep = np.ones(self.peers.shape[0], np.float32)
        keep[r] = 0.0
        d = sp.diags(keep)
        self.peers = sp.csr_matrix(d @ self.peers @ d)
        self.peers.eliminate_zeros()
        self.follows = sp.csr_matrix(d @ self.follows)
        self.follows.eliminate_zeros()
        return True


def load_graph(engine: Any, store: EventStore, until: datetime | None = None) -> None:
    """Read the graph standing at ``until`` into ``engine`` (see the module): its
    ``network`` source, its users' followed authors and author affinity."""
    network = next((s for s in getattr(engine, "sources", ()) if isinstance(s, NetworkSource)),
                   None)
    if network is None or engine.users.n == 0:
        return
    edges = store.edges_as_of(until, exclude_objectors=True)
    if not len(edges):
        return
    network.load(edges)
    users = engine.users
    f = network.follows
    if f.nnz == 0:
        return
    old = users.follows
    if old.shape == f.shape:
        merged = old + f
    else:
        merged = f
    merged = sp.csr_matrix(merged)
    merged.data[:] = 1.0
    users.follows = merged
    aff = users.affinity
    bonus = float(aff.data.mean()) if aff.nnz else 1.0
    if aff.shape == f.shape:
        users.affinity = sp.csr_matrix(aff + bonus * f)
    elif aff.shape[1] == 0:
        users.affinity = sp.csr_matrix(bonus * f)
    users.affinity.sort_indices()


def _codes(df: pd.DataFrame, col: str, index: dict[str, int]) -> np.ndarray:
    if not len(df):
        return np.empty(0, np.int64)
    return df[col].astype(str).map(index).fillna(-1).to_numpy(np.int64)


def _binary(r: np.ndarray, c: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=shape)
    m.sum_duplicates()
    m.data[:] = 1.0
    m.sort_indices()
    return m


def _nothing() -> ItemList:
    return ItemList(None, np.empty(0), index=np.empty(0, np.int64))
