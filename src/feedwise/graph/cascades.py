"""Reshare cascades: trees of shares, their shape, and early prediction of their final size.

A share event names what it re-shared in ``parent_id``: another share's ``event_id`` (a
reshare of a reshare) or the post's item id (NULL means the same). The cascade of a post is
the tree whose root is the post and whose nodes are its shares. A share whose parent is not
a share of the same post (an ``erased:`` placeholder left by erasure, a share filtered out,
a parent never ingested, a parent that would close a cycle) hangs from the root and is
counted in ``orphans``.

Per post (:func:`cascade_table`):

* ``size``: shares in the cascade (nodes without the root);
* ``depth``: the longest root-to-node path (a star is 1, a chain of k shares is k);
* ``max_breadth``: the most nodes at one depth;
* ``structural_virality``: Goel et al. (2016), the mean shortest-path distance between all
  pairs of the ``size + 1`` nodes (the root included): the tree's Wiener index divided by
  ``n (n - 1) / 2``, computed in O(n) as ``sum over edges of s (n - s)`` (``s``: the nodes
  below the edge). NaN for a post with no share;
* ``time_to_half_s``: seconds from the cascade's start (the post's creation time, or its
  first share when that is unknown or later) to its ``ceil(size / 2)``-th share.

Early prediction (:class:`CascadeSizePredictor`): from what is known ``horizon_s`` (one
hour) after the start (size, growth in the last 20 minutes, depth, breadth, structural
virality, delay of the first share, share of direct reshares, the author's followers, the
early sharers' followers summed, and the author's reshares per post before the start), a
ridge regression of ``log1p`` of the final size. :class:`SzaboHuberman` is the log-linear
baseline ``log final = a + log size_at_horizon`` with ``a`` fit by the same loss. Both are
scored by :func:`msle`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from feedwise.errors import DataError, NotFittedError

CASCADE_COLUMNS: tuple[str, ...] = (
    "item_id", "size", "depth", "max_breadth", "structural_virality", "time_to_half_s",
    "start", "first_share", "last_share", "orphans")
FEATURES: tuple[str, ...] = (
    "log_size", "log_recent", "depth", "breadth", "virality", "log_first_delay",
    "direct_share", "log_followers", "log_author_prior", "log_author_posts",
    "log_sharer_reach")


def _ts_seconds(s: pd.Series) -> np.ndarray:
    """UTC times (any resolution) as float unix seconds."""
    t = pd.to_datetime(s, utc=True)
    return (t - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(np.float64)


def cascade_nodes(shares: pd.DataFrame) -> pd.DataFrame:
    """Every share as a node of its post's cascade: ``event_id``, ``user_id``, ``item_id``,
    ``ts``, ``parent`` (the row position of its parent share, -1 for the root), ``depth``
    (1 for a direct reshare of the post) and ``orphan`` (its named parent was not found).

    Args:
        shares: Share events with ``event_id``, ``item_id``, ``parent_id``, ``ts`` (and
            optionally ``user_id``), as :meth:`EventStore.share_events` returns them.
    """
    missing = {"event_id", "item_id", "parent_id", "ts"} - set(shares.columns)
    if missing:
        raise DataError(f"cascade_nodes: shares lack column(s) {sorted(missing)}; pass "
                        "store.share_events()")
    df = shares.reset_index(drop=True)
    df = df[~df["event_id"].duplicated()].reset_index(drop=True)
    n = len(df)
    pos = pd.Series(np.arange(n), index=pd.Index(df["event_id"].astype(str)))
    pid = df["parent_id"]
    named = pid.notna() & (pid.astype(str) != df["item_id"].astype(str))
    parent = np.full(n, -1, np.int64)
    look = pos.reindex(pid[named].astype(str)).to_numpy()
    found = ~np.isnan(look)
    idx = np.flatnonzero(named.to_numpy())
    cand = look[found].astype(np.int64)
    same_post = (df["item_id"].to_numpy()[cand] == df["item_id"].to_numpy()[idx[found]])
    parent[idx[found][same_post]] = cand[same_post]
    orphan = np.zeros(n, bool)
    orphan[idx] = True
    orphan[idx[found][same_post]] = False
    # depth by pointer jumping; nodes never reached (a cycle) hang from the root
    depth = np.where(parent < 0, 1, 0)
    for _ in range(n + 1):
        todo = np.flatnonzero(depth == 0)
        if not len(todo):
            break
        ready = depth[parent[todo]] > 0
        if not ready.any():
            parent[todo] = -1
            orphan[todo] = True
            depth[todo] = 1
            continue
        depth[todo[ready]] = depth[parent[todo[ready]]] + 1
    out = pd.DataFrame({"event_id": df["event_id"].to_numpy(), "item_id": df["item_id"],
                        "ts": pd.to_datetime(df["ts"], utc=True), "parent": parent,
                        "depth": depth, "orphan": orphan})
    if "user_id" in df:
        out.insert(1, "user_id", df["user_id"].to_numpy())
    return out


def cascade_table(shares: pd.DataFrame, starts: Mapping[str, Any] | pd.Series | None = None,
                  *, horizon_s: float | None = None) -> pd.DataFrame:
    """Size, depth, breadth, structural virality and time to half size of each post's
    cascade (the columns of :data:`CASCADE_COLUMNS`), largest first.

    Args:
        shares: Share events (:meth:`EventStore.share_events`).
        starts: Item id -> the post's creation time; a cascade starts there (or at its
            first share, when earlier or unknown).
        horizon_s: Only the shares at most this many seconds after the start (the cascade
            as seen then).
    """
    nodes = cascade_nodes(shares)
    if nodes.empty:
        return pd.DataFrame(columns=list(CASCADE_COLUMNS))
    t = _ts_seconds(nodes["ts"])
    first = pd.Series(t).groupby(nodes["item_id"].to_numpy()).min()
    st = first.copy()
    if starts is not None:
        known = pd.Series(starts)
        known = pd.Series(_ts_seconds(pd.Series(known.to_numpy())), index=known.index.astype(
            str)).reindex(first.index.astype(str))
        st = pd.Series(np.fmin(known.to_numpy(), first.to_numpy()), index=first.index)
    if horizon_s is not None:
        keep = t <= st.reindex(nodes["item_id"]).to_numpy() + horizon_s
        sub = shares.reset_index(drop=True)
        sub = sub[~sub["event_id"].duplicated()].reset_index(drop=True)[keep]
        nodes = cascade_nodes(sub)
        if nodes.empty:
            return pd.DataFrame(columns=list(CASCADE_COLUMNS))
        t = _ts_seconds(nodes["ts"])
    return _metrics(nodes, t, st)


def _metrics(nodes: pd.DataFrame, t: np.ndarray, st: pd.Series) -> pd.DataFrame:
    item = nodes["item_id"].astype(str).to_numpy()
    parent = nodes["parent"].to_numpy()
    depth = nodes["depth"].to_numpy()
    n = len(nodes)
    # subtree sizes, deepest level first
    sub = np.ones(n, np.float64)
    for d in range(int(depth.max()), 1, -1):
        at = np.flatnonzero(depth == d)
        np.add.at(sub, parent[at], sub[at])
    g = pd.DataFrame({"item_id": item, "depth": depth, "sub": sub, "t": t,
                      "orphan": nodes["orphan"].to_numpy()})
    size = g.groupby("item_id").size()
    nn = (size + 1).reindex(g["item_id"]).to_numpy().astype(np.float64)
    g["w"] = g["sub"] * (nn - g["sub"])
    wiener = g.groupby("item_id")["w"].sum()
    pairs = (size + 1) * size / 2.0
    breadth = g.groupby(["item_id", "depth"]).size().groupby(level=0).max()
    g = g.sort_values(["item_id", "t"], kind="stable")
    g["rank"] = g.groupby("item_id").cumcount() + 1
    half_at = np.ceil(size / 2.0)
    at_half = g[g["rank"].to_numpy() == half_at.reindex(g["item_id"]).to_numpy()]
    t_half = at_half.set_index("item_id")["t"]
    start = st.copy()
    start.index = start.index.astype(str)
    start = start.reindex(size.index)
    out = pd.DataFrame({
        "item_id": size.index,
        "size": size.to_numpy(),
        "depth": g.groupby("item_id")["depth"].max().reindex(size.index).to_numpy(),
        "max_breadth": breadth.reindex(size.index).to_numpy(),
        "structural_virality": (wiener / pairs).reindex(size.index).to_numpy(),
        "time_to_half_s": (t_half.reindex(size.index) - start).to_numpy(),
        "start": pd.to_datetime(start.to_numpy(), unit="s", utc=True),
        "first_share": pd.to_datetime(g.groupby("item_id")["t"].min().reindex(
            size.index).to_numpy(), unit="s", utc=True),
        "last_share": pd.to_datetime(g.groupby("item_id")["t"].max().reindex(
            size.index).to_numpy(), unit="s", utc=True),
        "orphans": g.groupby("item_id")["orphan"].sum().reindex(size.index).to_numpy(),
    })
    return out.sort_values(["size", "item_id"], ascending=[False, True],
                           kind="stable").reset_index(drop=True)


def structural_virality(parents: Mapping[Any, Any]) -> float:
    """Structural virality of one tree given as node -> parent (the root's parent ``None``
    or absent as a key): the mean shortest-path distance over all pairs of nodes."""
    nodes = set(parents) | {p for p in parents.values() if p is not None}
    n = len(nodes)
    if n < 2:
        return float("nan")
    children: dict[Any, list[Any]] = {}
    for c, p in parents.items():
        if p is not None:
            children.setdefault(p, []).append(c)
    roots = [v for v in nodes if parents.get(v) is None]
    if len(roots) != 1:
        raise DataError(f"structural_virality: expected one root, found {len(roots)}")
    order, stack = [], [roots[0]]
    while stack:
        v = stack.pop()
        order.append(v)
        stack.extend(children.get(v, []))
    if len(order) != n:
        raise DataError("structural_virality: the parents do not form one tree")
    size = {v: 1 for v in nodes}
    wiener = 0.0
    for v in reversed(order):
        if parents.get(v) is not None:
            size[parents[v]] += size[v]
            wiener += size[v] * (n - size[v])
    return wiener / (n * (n - 1) / 2.0)


def spread_levels(shares: pd.DataFrame, item_id: str) -> list[int]:
    """Shares of one post per depth (index 0: direct reshares of the post)."""
    nodes = cascade_nodes(shares[shares["item_id"].astype(str) == str(item_id)])
    if nodes.empty:
        return []
    return np.bincount(nodes["depth"].to_numpy() - 1).astype(int).tolist()


# ---------------------------------------------------------------------- early prediction
def early_features(shares: pd.DataFrame, starts: Mapping[str, Any] | pd.Series,
                   authors: Mapping[str, Any] | pd.Series,
                   followers: Mapping[str, float] | pd.Series | None = None, *,
                   horizon_s: float = 3600.0, prior_days: float = 7.0) -> pd.DataFrame:
    """Features of each cascade as seen ``horizon_s`` after its start (one row per post with
    a share by then, indexed by item id; columns :data:`FEATURES` plus ``size_at_horizon``
    and ``start``).

    Only shares up to the horizon are read: the author's prior (reshares per post of the
    author's posts, counted over the ``prior_days`` before this cascade's start) uses the
    shares logged before the start.

    Args:
        shares: Share events (:meth:`EventStore.share_events`).
        starts: Item id -> the post's creation time.
        authors: Item id -> author id.
        followers: Followed id (authors and users) -> followers, e.g. at the start of the
            period (:func:`feedwise.graph.creators.followers_at`): the author's audience
            and, summed over the early sharers, the audience they pass the post on to.
        horizon_s: How long after the start the cascade is seen.
        prior_days: The author's history window.
    """
    early = cascade_table(shares, starts, horizon_s=horizon_s)
    if early.empty:
        return pd.DataFrame(columns=[*FEATURES, "size_at_horizon", "start"])
    early = early.set_index("item_id")
    st = _ts_seconds(early["start"])
    nodes = cascade_nodes(shares)
    t = _ts_seconds(nodes["ts"])
    node_start = pd.Series(st, index=early.index).reindex(nodes["item_id"]).to_numpy()
    seen = t <= node_start + horizon_s
    recent = seen & (t > node_start + horizon_s * 2.0 / 3.0)
    direct = seen & (nodes["depth"].to_numpy() == 1)
    item = nodes["item_id"].astype(str).to_numpy()
    n_recent = pd.Series(recent.astype(float)).groupby(item).sum().reindex(early.index)
    n_direct = pd.Series(direct.astype(float)).groupby(item).sum().reindex(early.index)
    auth = pd.Series(authors)
    auth.index = auth.index.astype(str)
    a_of = auth.reindex(early.index).astype(object).to_numpy()
    fol = (pd.Series(followers, dtype=float) if followers is not None
           else pd.Series(dtype=float))
    # the author's history: shares of their posts logged before this start
    s_author = auth.reindex(item).to_numpy()
    prior = np.zeros(len(early))
    n_posts = np.zeros(len(early))
    all_st = pd.Series(starts)
    all_st = pd.Series(_ts_seconds(pd.Series(all_st.to_numpy())), index=all_st.index.astype(str))
    post_author = auth.reindex(all_st.index).to_numpy()
    win = prior_days * 86400.0
    for a in pd.unique(a_of[pd.notna(a_of)]):
        rows = np.flatnonzero(a_of == a)
        ts_a = np.sort(t[s_author == a])
        ps_a = np.sort(all_st.to_numpy()[post_author == a])
        s0 = st[rows]
        prior[rows] = (np.searchsorted(ts_a, s0, "left")
                       - np.searchsorted(ts_a, s0 - win, "left"))
        n_posts[rows] = (np.searchsorted(ps_a, s0, "left")
                         - np.searchsorted(ps_a, s0 - win, "left"))
    # the audience the early sharers pass it on to: their followers, summed
    if "user_id" in nodes:
        u_fol = fol.reindex(nodes["user_id"].astype(str)).fillna(0).to_numpy()
    else:
        u_fol = np.zeros(len(nodes))
    reach = pd.Series(np.where(seen, u_fol, 0.0)).groupby(item).sum()
    size = early["size"].to_numpy(np.float64)
    out = pd.DataFrame({
        "log_size": np.log1p(size),
        "log_recent": np.log1p(n_recent.fillna(0).to_numpy()),
        "depth": early["depth"].to_numpy(np.float64),
        "breadth": early["max_breadth"].to_numpy(np.float64),
        "virality": early["structural_virality"].fillna(0).to_numpy(np.float64),
        "log_first_delay": np.log1p(np.maximum(_ts_seconds(early["first_share"]) - st, 0)),
        "direct_share": n_direct.fillna(0).to_numpy() / np.maximum(size, 1),
        "log_followers": np.log1p(fol.reindex(a_of).fillna(0).to_numpy()),
        "log_author_prior": np.log1p(prior / np.maximum(n_posts, 1)),
        "log_author_posts": np.log1p(n_posts),
        "log_sharer_reach": np.log1p(reach.reindex(early.index).fillna(0).to_numpy()),
        "size_at_horizon": size,
        "start": early["start"].to_numpy(),
    }, index=early.index)
    return out


def msle(pred: np.ndarray, actual: np.ndarray) -> float:
    """Mean squared log error: mean of ``(log1p(pred) - log1p(actual))**2``."""
    p, a = np.asarray(pred, np.float64), np.asarray(actual, np.float64)
    return float(np.mean((np.log1p(np.maximum(p, 0)) - np.log1p(a)) ** 2))


class _Saved:
    """Save/load of small estimators as ``.npz`` (arrays) + ``.json`` (everything else)."""

    _arrays: tuple[str, ...] = ()
    _state: tuple[str, ...] = ()
    _params: tuple[str, ...] = ()

    def _check(self) -> None:
        if not all(hasattr(self, a) for a in self._arrays + self._state):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")

    def save(self, path: str | Path) -> None:
        """Write ``path`` + ``.npz`` and ``path`` + ``.json`` (no pickle)."""
        self._check()
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        np.savez(p.with_suffix(".npz"), **{a: getattr(self, a) for a in self._arrays})
        meta = {"class": type(self).__name__,
                "params": {k: getattr(self, k) for k in self._params},
                "state": {k: getattr(self, k) for k in self._state}}
        p.with_suffix(".json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Any:
        """Read what :meth:`save` wrote."""
        p = Path(path)
        meta = json.loads(p.with_suffix(".json").read_text())
        if meta.get("class") != cls.__name__:
            raise DataError(f"{p}: holds a {meta.get('class')}, not a {cls.__name__}")
        obj = cls(**meta["params"])
        for k, v in meta["state"].items():
            setattr(obj, k, v)
        with np.load(p.with_suffix(".npz"), allow_pickle=False) as z:
            for a in cls._arrays:
                setattr(obj, a, z[a])
        return obj


def ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray, float]:
    """Ridge regression on standardised columns: (mean, scale, coef, intercept)."""
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    z = (x - mu) / sd
    y0 = y.mean()
    coef = np.linalg.solve(z.T @ z + alpha * len(z) * np.eye(z.shape[1]), z.T @ (y - y0))
    return mu, sd, coef, float(y0)


class CascadeSizePredictor(_Saved):
    """Final cascade size from its first hour: ridge regression of ``log1p(final size)`` on
    :data:`FEATURES` (standardised).

    Args:
        alpha: Ridge penalty (relative to the number of rows). With ``alphas``, the one
            with the least MSLE on the latest ``validation`` share of the training rows
            (by start time) is used, then the model is refit on all of them.
        alphas: Candidate penalties.
        validation: Share of the training rows held out to choose ``alpha``.
    """

    _arrays = ("mean_", "scale_", "coef_")
    _state = ("intercept_", "alpha_")
    _params = ("alpha", "alphas", "validation")

    def __init__(self, alpha: float = 0.01, alphas: list[float] | None = None,
                 validation: float = 0.25) -> None:
        self.alpha = alpha
        self.alphas = list(alphas) if alphas is not None else None
        self.validation = validation

    def fit(self, features: pd.DataFrame, final_size: np.ndarray | pd.Series
            ) -> CascadeSizePredictor:
        """Fit on early features (:func:`early_features`) and final sizes (same rows)."""
        x = features[list(FEATURES)].to_numpy(np.float64)
        y = np.log1p(np.asarray(final_size, np.float64))
        if len(x) < 5:
            raise DataError(f"CascadeSizePredictor.fit: {len(x)} cascades; need at least 5")
        alpha = self.alpha
        if self.alphas:
            order = (np.argsort(_ts_seconds(features["start"]), kind="stable")
                     if "start" in features else np.arange(len(x)))
            cut = int(len(x) * (1 - self.validation))
            tr, va = order[:cut], order[cut:]
            best = None
            for a in self.alphas:
                mu, sd, c, b = ridge_fit(x[tr], y[tr], a)
                err = float(np.mean(((x[va] - mu) / sd @ c + b - y[va]) ** 2))
                if best is None or err < best[0]:
                    best = (err, a)
            alpha = best[1] if best else alpha
        self.mean_, self.scale_, self.coef_, self.intercept_ = ridge_fit(x, y, alpha)
        self.alpha_ = float(alpha)
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Predicted final sizes (shares), never below the size already seen."""
        self._check()
        x = features[list(FEATURES)].to_numpy(np.float64)
        pred = np.expm1((x - self.mean_) / self.scale_ @ self.coef_ + self.intercept_)
        return np.maximum(pred, features["size_at_horizon"].to_numpy(np.float64))


class SzaboHuberman(_Saved):
    """The log-linear baseline (Szabo and Huberman 2010): ``final = exp(a) x size at the
    horizon``, with ``a`` the offset of least MSLE on the training cascades."""

    _state = ("a_",)

    def fit(self, features: pd.DataFrame, final_size: np.ndarray | pd.Series) -> SzaboHuberman:
        s = features["size_at_horizon"].to_numpy(np.float64)
        f = np.asarray(final_size, np.float64)
        if not len(s):
            raise DataError("SzaboHuberman.fit: no cascades")
        res = minimize_scalar(lambda a: msle(np.exp(a) * s, f), bounds=(-5.0, 10.0),
                              method="bounded")
        self.a_ = float(res.x)
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        self._check()
        return np.exp(self.a_) * features["size_at_horizon"].to_numpy(np.float64)
