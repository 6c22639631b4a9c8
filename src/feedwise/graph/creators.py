"""Creators and influence: per author reach, engagement, follower growth, audience overlap
with a segment, and an influence score that predicts future reshares.

:func:`author_table` measures every author over a window ``[since, until)`` from named store
reads (:meth:`~feedwise.store.EventStore.author_delivery`, ``share_events``, ``posts``,
``edges_as_of``):

* ``reach``: distinct users shown or engaging with the author's posts; ``engagement_rate``:
  engagements (click, like, comment, share, save) per impression;
* ``followers`` at ``until`` and ``follower_growth`` (followers at ``until`` minus at
  ``since``, from the stored graph as of each time);
* ``posts_created`` in the window, ``reshares`` of those posts logged in the window,
  ``reshares_per_post`` and their mean ``structural_virality``.

:class:`InfluenceModel` turns these into an influence score: a ridge regression of
``log1p`` of the author's reshares per post in the *next* window on the (logged) measures
of this one, fit on one pair of windows and applied to the latest. The score is the
predicted reshares per post of the author's next posts.

:func:`audience_overlap` is the share of an author's engaged users in a segment
(``user_profiles.segment``) and its lift over the segment's share of all engaged users;
:func:`partners` ranks the creators to partner with for a segment by expected reshares
reaching it (influence score x segment share), among authors engaged by at least ``k``
users.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from feedwise.errors import DataError
from feedwise.graph.cascades import _Saved, cascade_nodes, ridge_fit
from feedwise.schema import utc
from feedwise.store import EventStore

INFLUENCE_FEATURES: tuple[str, ...] = (
    "log_reshares_per_post", "log_reshares", "log_followers", "log_growth",
    "log_per_follower", "engagement_rate", "log_reach", "log_posts", "virality")
AUTHOR_COLUMNS: tuple[str, ...] = (
    "author_id", "posts", "impressions", "reach", "engagements", "engaged_users",
    "engagement_rate", "followers", "follower_growth", "posts_created", "reshares",
    "reshares_per_post", "typical_reshares", "structural_virality")


def followers_at(store: EventStore, when: datetime | None) -> pd.Series:
    """Followers per followed id (``follow`` edges standing at ``when``)."""
    if isinstance(store, _SharedReads):  # several boundaries of one fit: one read
        return store.followers_at(when)
    e = store.edges_as_of(when, kinds=("follow",))
    if e.empty:
        return pd.Series(dtype=float)
    return e.groupby("dst_id").size().astype(float)


def author_table(store: EventStore, since: datetime, until: datetime, *,
                 exclude_objectors: bool = False) -> pd.DataFrame:
    """Every author's measures over ``[since, until)`` (:data:`AUTHOR_COLUMNS`), most
    reshared per post first.

    Args:
        store: The store.
        since: Start of the window (inclusive).
        until: End of the window (exclusive).
        exclude_objectors: Leave out users who withdrew analytics consent.
    """
    since, until = utc(since), utc(until)
    if until <= since:
        raise DataError(f"author_table: the window ends ({until.isoformat()}) before it "
                        f"starts ({since.isoformat()})")
    deliv = store.author_delivery(since, until, exclude_objectors=exclude_objectors)
    if isinstance(store, _SharedReads):  # the posts read and parsed once per fit
        new = store.new_posts(since, until)
    else:
        posts = store.posts()[["item_id", "author_id", "created_at"]].dropna(
            subset=["author_id"])
        created = pd.to_datetime(posts["created_at"], utc=True)
        new = posts[(created >= since) & (created < until)]
    shares = store.share_events(since, until, exclude_objectors=exclude_objectors)
    shares = shares[shares["item_id"].isin(new["item_id"])]
    cas = _cascade_sizes(shares)
    a_of = pd.Series(new["author_id"].to_numpy(), index=new["item_id"].astype(str))
    cas["author_id"] = a_of.reindex(cas["item_id"].astype(str)).to_numpy()
    cas["log_size"] = np.log1p(cas["size"].astype(float))
    g = cas.groupby("author_id")
    if len(cas):  # one reduction per column: agg's results, faster
        per = pd.DataFrame({"reshares": g["size"].sum(), "log_sum": g["log_size"].sum(),
                            "structural_virality": g["structural_virality"].mean()})
    else:  # no share (agg keeps the empty frame's column types)
        per = g.agg(reshares=("size", "sum"), log_sum=("log_size", "sum"),
                    structural_virality=("structural_virality", "mean"))
    n_new = new.groupby("author_id").size()
    f1, f0 = followers_at(store, until), followers_at(store, since)
    authors = pd.Index(sorted(set(deliv["author_id"]) | set(n_new.index)), name="author_id")
    # the columns as arrays, one frame at the end (the same values and types as setting
    # them one by one on the reindexed delivery frame, at a fraction of the cost)
    d = deliv.set_index("author_id").reindex(authors)
    p = per.reindex(authors)
    cols: dict[str, Any] = {"author_id": authors}
    for c in ("posts", "impressions", "reach", "engagements", "engaged_users"):
        cols[c] = d[c].fillna(0).astype(np.int64).to_numpy()
    imps = cols["impressions"]
    cols["engagement_rate"] = cols["engagements"] / np.where(imps > 0, imps, np.nan)
    fol = f1.reindex(authors).fillna(0).to_numpy()
    cols["followers"] = fol
    cols["follower_growth"] = fol - f0.reindex(authors).fillna(0).to_numpy()
    made = n_new.reindex(authors).fillna(0).astype(np.int64).to_numpy()
    cols["posts_created"] = made
    cols["reshares"] = p["reshares"].fillna(0).astype(np.int64).to_numpy()
    made_or_nan = np.where(made > 0, made, np.nan)
    cols["reshares_per_post"] = cols["reshares"] / made_or_nan
    # robust to one viral post: expm1 of the mean log1p(reshares) over the posts created
    log_mean = p["log_sum"].fillna(0).to_numpy() / made_or_nan
    cols["typical_reshares"] = np.expm1(log_mean)
    cols["structural_virality"] = p["structural_virality"].to_numpy()
    out = pd.DataFrame({c: cols[c] for c in AUTHOR_COLUMNS})
    return out.sort_values(["reshares_per_post", "author_id"], ascending=[False, True],
                           na_position="last", kind="stable").reset_index(drop=True)


def _cascade_sizes(shares: pd.DataFrame) -> pd.DataFrame:
    """``item_id``, ``size`` and ``structural_virality`` of each post's cascade, in the
    order of :func:`~feedwise.graph.cascades.cascade_table` (largest first): the two
    columns of it the author table reads, without its timing columns. The Wiener index
    is a sum of whole numbers, so the virality is the same to the last bit."""
    nodes = cascade_nodes(shares)
    if nodes.empty:  # as cascade_table's empty frame
        return pd.DataFrame(columns=["item_id", "size", "structural_virality"])
    items, inv = np.unique(nodes["item_id"].astype(str).to_numpy(), return_inverse=True)
    parent, depth = nodes["parent"].to_numpy(), nodes["depth"].to_numpy()
    sub = np.ones(len(nodes), np.float64)  # subtree sizes, deepest level first
    for d in range(int(depth.max()), 1, -1):
        at = np.flatnonzero(depth == d)
        np.add.at(sub, parent[at], sub[at])
    size = np.bincount(inv, minlength=len(items)).astype(np.int64)
    nn = (size + 1).astype(np.float64)[inv]
    wiener = np.bincount(inv, weights=sub * (nn - sub), minlength=len(items))
    pairs = (size + 1) * size / 2.0
    out = pd.DataFrame({"item_id": items.astype(object), "size": size,
                        "structural_virality": wiener / pairs})
    return out.sort_values(["size", "item_id"], ascending=[False, True],
                           kind="stable").reset_index(drop=True)


def influence_features(table: pd.DataFrame) -> pd.DataFrame:
    """:data:`INFLUENCE_FEATURES` of an :func:`author_table` (indexed by author id)."""
    t = table.set_index("author_id")
    rpp = t["reshares_per_post"].fillna(0.0)
    fol = t["followers"].astype(float)
    return pd.DataFrame({
        "log_reshares_per_post": np.log1p(rpp),
        "log_reshares": np.log1p(t["reshares"].astype(float)),
        "log_followers": np.log1p(fol),
        "log_growth": np.log1p(t["follower_growth"].clip(lower=0).astype(float)),
        "log_per_follower": np.log1p(100.0 * rpp / np.maximum(fol, 1.0)),
        "engagement_rate": t["engagement_rate"].fillna(0.0),
        "log_reach": np.log1p(t["reach"].astype(float)),
        "log_posts": np.log1p(t["posts_created"].astype(float)),
        "virality": t["structural_virality"].fillna(0.0),
    }, index=t.index)


class InfluenceModel(_Saved):
    """Influence score: predicted reshares per post of an author's next posts.

    A ridge regression of ``log1p(reshares per post in the next window)`` on
    :func:`influence_features` of the current one; fit on authors who posted in both.

    Args:
        alpha: Ridge penalty (relative to the number of authors).
    """

    _arrays = ("mean_", "scale_", "coef_")
    _state = ("intercept_",)
    _params = ("alpha",)

    def __init__(self, alpha: float = 0.1) -> None:
        self.alpha = alpha

    def fit(self, earlier: pd.DataFrame, later: pd.DataFrame) -> InfluenceModel:
        """Fit on the :func:`author_table` of an earlier window (features) and of the
        window after it (target: reshares per post)."""
        x = influence_features(earlier)
        y = later.set_index("author_id")["reshares_per_post"].reindex(x.index)
        ok = y.notna().to_numpy()
        if ok.sum() < 3:
            raise DataError(f"InfluenceModel.fit: {int(ok.sum())} authors posted in both "
                            "windows; need at least 3 (widen the windows)")
        self.mean_, self.scale_, self.coef_, self.intercept_ = ridge_fit(
            x.to_numpy(np.float64)[ok], np.log1p(y.to_numpy(np.float64)[ok]), self.alpha)
        return self

    def score(self, table: pd.DataFrame) -> pd.Series:
        """The influence score of each author of ``table`` (indexed by author id)."""
        self._check()
        x = influence_features(table)
        z = (x.to_numpy(np.float64) - self.mean_) / self.scale_
        return pd.Series(np.expm1(z @ self.coef_ + self.intercept_).clip(min=0.0),
                         index=x.index, name="influence_score")


def fit_influence(store: EventStore, start: datetime, end: datetime, *, n_windows: int = 2,
                  alpha: float = 0.1, exclude_objectors: bool = False
                  ) -> tuple[InfluenceModel, pd.DataFrame]:
    """Split ``[start, end)`` into ``n_windows`` equal windows, fit :class:`InfluenceModel`
    on each consecutive pair (features of one window, reshares per post of the next,
    stacked) and score the last window's authors.

    Returns:
        The model, and the last window's :func:`author_table` with its
        ``influence_score``: the reshares per post it predicts for the window after.
    """
    if n_windows < 2:
        raise DataError(f"fit_influence: n_windows={n_windows}; need at least 2")
    start, end = utc(start), utc(end)
    step = (end - start) / n_windows
    reads = _SharedReads(store, start, end, exclude_objectors)
    tables = [author_table(reads, start + i * step, start + (i + 1) * step,
                           exclude_objectors=exclude_objectors) for i in range(n_windows)]
    earlier = pd.concat([t.assign(author_id=t["author_id"].astype(str) + f"\x00{i}")
                         for i, t in enumerate(tables[:-1])], ignore_index=True)
    later = pd.concat([t.assign(author_id=t["author_id"].astype(str) + f"\x00{i}")
                       for i, t in enumerate(tables[1:])], ignore_index=True)
    model = InfluenceModel(alpha=alpha).fit(earlier, later)
    last = tables[-1]
    return model, last.assign(influence_score=model.score(last).reindex(last["author_id"])
                              .to_numpy())


class _SharedReads:
    """The store reads of :func:`author_table`, shared by the windows of one
    :func:`fit_influence`: the posts once, the share events of the whole span once (each
    window takes its rows, in the same order), the followers once per window boundary (a
    window's end is the next one's start)."""

    def __init__(self, store: EventStore, start: datetime, end: datetime,
                 exclude_objectors: bool) -> None:
        self.store, self.start, self.end = store, start, end
        self.exclude_objectors = exclude_objectors
        self._posts: pd.DataFrame | None = None
        self._shares: pd.DataFrame | None = None
        self._edges: dict[tuple, pd.DataFrame] = {}
        self._follow_log: tuple | None = None
        self._new: tuple | None = None

    def author_delivery(self, since: datetime, until: datetime, *,
                        exclude_objectors: bool = False) -> pd.DataFrame:
        return self.store.author_delivery(since, until, exclude_objectors=exclude_objectors)

    def posts(self) -> pd.DataFrame:
        if self._posts is None:
            self._posts = self.store.posts()
        return self._posts.copy()

    def new_posts(self, since: datetime, until: datetime) -> pd.DataFrame:
        """The posts (with an author) created in ``[since, until)``, as
        :func:`author_table` selects them: ``item_id``, ``author_id``, ``created_at``."""
        if self._new is None:
            posts = self.posts()[["item_id", "author_id", "created_at"]].dropna(
                subset=["author_id"])
            self._new = (posts, pd.to_datetime(posts["created_at"], utc=True))
        posts, created = self._new
        return posts[(created >= since) & (created < until)]

    def share_events(self, since: datetime, until: datetime, *,
                     exclude_objectors: bool = False) -> pd.DataFrame:
        if (exclude_objectors != self.exclude_objectors or since < self.start
                or until > self.end):
            return self.store.share_events(since, until, exclude_objectors=exclude_objectors)
        if self._shares is None:
            self._shares = self.store.share_events(self.start, self.end,
                                                   exclude_objectors=exclude_objectors)
        sh = self._shares
        if sh.empty:
            return sh.copy()
        ts = pd.to_datetime(sh["ts"], utc=True)
        return sh[(ts >= since) & (ts < until)].reset_index(drop=True)

    def followers_at(self, when: datetime | None) -> pd.Series:
        """:func:`followers_at` ``when``, from the edge log read once for every boundary.

        The same replay as ``edges_as_of(when, kinds=("follow",))``: the follow and
        unfollow acts at or before ``when`` (and undated ones) in the stored order
        (undated first, then by time, ties as stored); a pair follows when its last act
        is a follow."""
        if self._follow_log is None:  # the follow/unfollow acts, coded once
            log = self.store.edge_log()
            log = log[log["kind"].isin(["follow", "unfollow"])]
            src, _ = pd.factorize(log["src_id"], use_na_sentinel=False)
            dst, labels = pd.factorize(log["dst_id"], use_na_sentinel=False)
            ts = pd.to_datetime(log["ts"], utc=True)
            self._follow_log = (src.astype(np.int64) * max(1, len(labels)) + dst, dst,
                                np.asarray(labels, dtype=object),
                                (log["kind"] == "follow").to_numpy(bool),
                                ts.isna().to_numpy(), ts.to_numpy("datetime64[ns]"))
        pair, dst, labels, follows, undated, ts = self._follow_log
        if when is None:
            rows = np.arange(len(pair))
        else:
            rows = np.flatnonzero(undated | (ts <= np.datetime64(utc(when).replace(
                tzinfo=None), "ns")))
        # each pair's last act (rows are in replay order): the first seen from the end
        _, from_end = np.unique(pair[rows][::-1], return_index=True)
        last = rows[len(rows) - 1 - from_end]
        standing = last[follows[last]]
        if not len(standing):
            return pd.Series(dtype=float)
        n = np.bincount(dst[standing], minlength=len(labels))
        keep = n > 0
        return pd.Series(n[keep].astype(float), index=pd.Index(labels[keep], name="dst_id"))

    def edges_as_of(self, until: datetime | None = None, kinds: tuple = ("follow",),
                    **kw: object) -> pd.DataFrame:
        key = (until, tuple(kinds), tuple(sorted(kw.items())))
        if key not in self._edges:
            self._edges[key] = self.store.edges_as_of(until, kinds, **kw)
        return self._edges[key].copy()


def audience_overlap(store: EventStore, since: datetime, until: datetime, segment: str, *,
                     segments: pd.Series | None = None,
                     exclude_objectors: bool = True) -> pd.DataFrame:
    """Per author: ``audience`` (engaged users), ``in_segment`` (of them in ``segment``),
    ``segment_share`` and ``segment_lift`` (share over the segment's share of every
    engaged user).

    Args:
        segments: User id -> segment (default: the stored ``user_profiles.segment``).
    """
    seg = segments if segments is not None else _stored_segments(store)
    if seg.empty:
        raise DataError("audience_overlap: no segments; run `feedwise profiles` first")
    if segment not in set(seg.dropna().astype(str)):
        known = ", ".join(sorted(set(seg.dropna().astype(str)))[:10])
        raise DataError(f"audience_overlap: unknown segment {segment!r}; known: {known}")
    aud = store.author_audience(since, until, exclude_objectors=exclude_objectors)
    aud["in_seg"] = (seg.astype(str).reindex(aud["user_id"].astype(str)).to_numpy()
                     == segment)
    per = aud.groupby("author_id").agg(audience=("user_id", "nunique"),
                                       in_segment=("in_seg", "sum"))
    users = aud.drop_duplicates("user_id")
    base = float(users["in_seg"].mean()) if len(users) else float("nan")
    per["segment_share"] = per["in_segment"] / per["audience"]
    per["segment_lift"] = per["segment_share"] / base if base > 0 else np.nan
    return per.reset_index()


def _stored_segments(store: EventStore) -> pd.Series:
    prof = store.profiles()
    if prof.empty or "segment" not in prof:
        return pd.Series(dtype=object)
    return pd.Series(prof["segment"].to_numpy(), index=prof["user_id"].astype(str))


def partners(scored: pd.DataFrame, overlap: pd.DataFrame, *, k: int = 10,
             top_n: int = 10) -> pd.DataFrame:
    """Creators to partner with for a segment: authors of ``scored`` (an author table
    with ``influence_score``) joined with :func:`audience_overlap`, engaged by at least
    ``k`` users, ranked by ``segment_reshares`` = influence score x segment share."""
    df = scored.merge(overlap, on="author_id", how="inner")
    df = df[df["audience"] >= k].copy()
    df["segment_reshares"] = df["influence_score"] * df["segment_share"]
    return df.sort_values(["segment_reshares", "author_id"], ascending=[False, True],
                          kind="stable").head(top_n).reset_index(drop=True)


def recall_at(scores: pd.Series, truth: list[str] | set[str], n: int | None = None) -> float:
    """Share of ``truth`` among the top ``n`` (default ``len(truth)``) of ``scores``."""
    truth = set(truth)
    if not truth:
        return float("nan")
    n = n or len(truth)
    top = scores.sort_values(ascending=False, kind="stable").index[:n]
    return len(truth & set(top)) / len(truth)
