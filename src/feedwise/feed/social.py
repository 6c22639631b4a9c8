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
* :class:`ResharedSource` (``reshared``) proposes the posts the people the user follows
  shared in the hours before the request time (``store.share_events`` up to ``until``,
  then only shares before the request's ``now``), "shared by 3 people you follow", and
  gives the ranking a bonus for them.

Relations of users who withdrew personalisation consent are left out (they profile no
one), and the source is personal (skipped for a user without that consent).
"""

from __future__ import annotations

from datetime import datetime, timedelta
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
        r = _drop_peer(self, user_id)
        if r is None:
            return False
        self.follows = _masked(self.follows, r, cols=False)
        return True


def _masked(m: sp.spmatrix, r: int, *, cols: bool) -> sp.csr_matrix:
    """``m`` with row ``r`` (and column ``r`` when ``cols``) zeroed out and dropped."""
    keep = np.ones(m.shape[0], np.float32)
    keep[r] = 0.0
    d = sp.diags(keep)
    out = sp.csr_matrix(d @ m @ d if cols else d @ m)
    out.eliminate_zeros()
    return out


def _drop_peer(source, user_id: str) -> int | None:
    """Forget ``user_id`` in a source's ``peers`` graph (their relations, and their being
    someone else's peer); returns the user's row, or None when the graph has no such user."""
    r = source.users.index.get(str(user_id), -1)
    if r < 0 or r >= source.peers.shape[0]:
        return None
    source.peers = _masked(source.peers, r, cols=True)
    return r


class ResharedSource:
    """Posts the people the user follows (or befriends, or trusts) shared recently.

    A post shared by followees in the ``window_hours`` before the request time (and only
    before it: a share at or after ``now`` is not used) is a candidate; its score is the sum
    over those followees of ``0.5 ** (age_h / half_life_hours)`` (how many, and how
    recently), its reason "shared by 3 people you follow" (or "shared by X, whom you
    follow"). Posts the user shared themself, and posts created after ``now``, are left out.
    :meth:`bonus` gives the engine's ranking the same score for any post of the pool
    (``weight`` times it, capped), so a post the recommender proposed too still counts
    its followees' shares.

    Shares and follows of users who withdrew personalisation consent are not loaded (they
    profile no one), and the source is personal.

    Args:
        catalog: The engine's catalogue.
        users: The engine's user table.
        limit: Most candidates it proposes per request.
        window_hours: How far back shares count.
        half_life_hours: Half-life of a share's weight.
        weight: Weight of :meth:`bonus` in the ranking value (0: candidates only).

    The defaults (24 h window, 3 h half-life, weight 1 on the heuristic's [0, 1] value)
    were chosen on the replay of validation worlds (seeds 100-102, docs/graph.md), not on
    the reported seeds.
    """

    personal = True
    name = "reshared"

    def __init__(self, catalog: Catalog, users: UserTable, limit: int = 30,
                 window_hours: float = 24.0, half_life_hours: float = 3.0,
                 weight: float = 1.0) -> None:
        self.catalog = catalog
        self.users = users
        self.limit = limit
        self.window_hours = window_hours
        self.half_life_hours = half_life_hours
        self.weight = weight
        n = users.n
        #: users x users: row follows, befriends or trusts column
        self.peers = sp.csr_matrix((n, n), dtype=np.float32)
        # shares grouped by sharer row: CSR-like pointers into item / time arrays
        self.share_ptr = np.zeros(n + 1, np.int64)
        self.share_item = np.empty(0, np.int64)
        self.share_s = np.empty(0, np.float64)

    def load(self, edges: pd.DataFrame, shares: pd.DataFrame) -> None:
        """Take the graph (``src_id, dst_id, kind``, objectors already left out) and the
        share events (``user_id, item_id, ts``) of the engine's users and posts."""
        n = self.users.n
        rel = edges[edges["kind"].isin(("follow", "friend", "trust"))] if len(edges) else edges
        src = _codes(rel, "src_id", self.users.index)
        dst = _codes(rel, "dst_id", self.users.index)
        ok = (src >= 0) & (dst >= 0) & (src != dst)
        self.peers = _binary(src[ok], dst[ok], (n, n))
        u = _codes(shares, "user_id", self.users.index)
        it = _codes(shares, "item_id", self.catalog.index)
        ts = ((pd.to_datetime(shares["ts"], utc=True) - pd.Timestamp(0, tz="UTC"))
              .dt.total_seconds().to_numpy(np.float64) if len(shares) else np.empty(0))
        ok = (u >= 0) & (it >= 0)
        u, it, ts = u[ok], it[ok], np.asarray(ts, np.float64)[ok]
        order = np.lexsort((ts, u))
        self.share_item, self.share_s = it[order], ts[order]
        self.share_ptr = np.searchsorted(u[order], np.arange(n + 1)).astype(np.int64)

    def _counted(self, ctx: UserContext) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                  np.ndarray]:
        """Posts shared by the user's followees in the window before ``now``: catalogue
        indices, score, number of followees, and one sharer row each."""
        empty = np.empty(0, np.int64)
        r = ctx.row
        if r < 0 or r >= self.peers.shape[0] or len(self.share_item) == 0:
            return empty, np.empty(0), empty, empty
        peers = self.peers.indices[self.peers.indptr[r]:self.peers.indptr[r + 1]]
        if len(peers) == 0:
            return empty, np.empty(0), empty, empty
        lo, hi = self.share_ptr[peers], self.share_ptr[peers + 1]
        cnt = hi - lo
        pos = np.repeat(lo, cnt) + (np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt))
        who = np.repeat(peers, cnt)
        item, t = self.share_item[pos], self.share_s[pos]
        keep = (t < ctx.now_s) & (t >= ctx.now_s - self.window_hours * 3600.0)
        keep &= self.catalog.created_s[item] <= ctx.now_s
        item, t, who = item[keep], t[keep], who[keep]
        if len(item) == 0:
            return empty, np.empty(0), empty, empty
        # one share per followee and post (the latest)
        order = np.lexsort((-t, who, item))
        item, t, who = item[order], t[order], who[order]
        first = np.ones(len(item), bool)
        first[1:] = (item[1:] != item[:-1]) | (who[1:] != who[:-1])
        item, t, who = item[first], t[first], who[first]
        own = self.share_item[self.share_ptr[r]:self.share_ptr[r + 1]]
        own = own[self.share_s[self.share_ptr[r]:self.share_ptr[r + 1]] < ctx.now_s]
        if len(own):
            mine = np.isin(item, own)
            item, t, who = item[~mine], t[~mine], who[~mine]
        if len(item) == 0:
            return empty, np.empty(0), empty, empty
        w = 0.5 ** ((ctx.now_s - t) / 3600.0 / self.half_life_hours)
        posts, start, count = np.unique(item, return_index=True, return_counts=True)
        score = np.add.reduceat(w, start)
        return posts, score, count, who[start]

    def candidates(self, ctx: UserContext, k: int) -> ItemList:
        posts, score, count, who = self._counted(ctx)
        if len(posts) == 0:
            return _nothing()
        order = np.lexsort((-self.catalog.created_s[posts], -score))[:min(k, self.limit)]
        why = [f"shared by {int(count[i])} people you follow" if count[i] > 1 else
               f"shared by {self.users.user_ids[who[i]]}, whom you follow" for i in order]
        return ItemList(None, score[order], why, index=posts[order])

    def bonus(self, ctx: UserContext, items: np.ndarray) -> tuple[np.ndarray, list]:
        """Ranking bonus of ``items`` (``weight`` x the share score, the score capped at
        2) and each one's reason (``None`` where no followee shared it)."""
        out = np.zeros(len(items))
        why: list = [None] * len(items)
        if self.weight <= 0 or not ctx.consent_personalization or len(items) == 0:
            return out, why
        posts, score, count, who = self._counted(ctx)
        if len(posts) == 0:
            return out, why
        at = np.searchsorted(posts, items)
        at = np.minimum(at, len(posts) - 1)
        hit = posts[at] == items
        out[hit] = self.weight * np.minimum(score[at[hit]], 2.0)
        for j in np.flatnonzero(hit):
            i = at[j]
            why[j] = (f"shared by {int(count[i])} people you follow" if count[i] > 1 else
                      f"shared by {self.users.user_ids[who[i]]}, whom you follow")
        return out, why

    def forget_user(self, user_id: str) -> bool:
        """Drop the user's row and column of the graph and their shares."""
        r = _drop_peer(self, user_id)
        if r is None:
            return False
        lo, hi = int(self.share_ptr[r]), int(self.share_ptr[r + 1])
        if hi > lo:
            self.share_item = np.delete(self.share_item, np.s_[lo:hi])
            self.share_s = np.delete(self.share_s, np.s_[lo:hi])
            self.share_ptr[r + 1:] -= hi - lo
        return True


def load_graph(engine: Any, store: EventStore, until: datetime | None = None) -> None:
    """Read the graph standing at ``until`` into ``engine`` (see the module): its
    ``network`` and ``reshared`` sources, its users' followed authors and author
    affinity."""
    srcs = getattr(engine, "sources", ())
    network = next((s for s in srcs if isinstance(s, NetworkSource)), None)
    reshared = next((s for s in srcs if isinstance(s, ResharedSource)), None)
    if (network is None and reshared is None) or engine.users.n == 0:
        return
    edges = store.edges_as_of(until, exclude_objectors=True)
    if not len(edges):
        return
    if reshared is not None:
        since = (until - timedelta(hours=reshared.window_hours)
                 if until is not None else None)
        shares = store.share_events(since, until)
        objectors = store.opted_out_users()
        if objectors and len(shares):
            shares = shares[~shares["user_id"].astype(str).isin(objectors)]
        reshared.load(edges, shares)
    if network is None:
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
