"""The synthetic world's social graph: follows, planted influencers and reshare cascades.

:func:`attach_graph` gives a :class:`~feedwise.datasets.synthetic.SocialWorld` its follow
graph as ``world.edges`` (columns ``src_id``, ``dst_id``, ``kind``, ``ts``), and, with
``cascades=True``, planted influencers, follows gained during the window and reshare
cascades appended to ``world.events``. It draws from its own random stream, so the rest of
the world (events, items, users) is the same with or without it.

The graph, step by step:

* **User → author follows**: exactly ``truth["follows"]`` (what the logging policy used),
  each dated before the window (1–365 days before ``start``).
* **User → user follows**: each user follows ``Poisson(6)`` other users (at least one),
  drawn from 200 random candidates by topical similarity (``log`` cosine of interests) plus
  a Gumbel draw; dated before the window. These carry reshares from user to user.
* **Planted influencers** (``cascades=True``): ``n_influencers`` authors drawn uniformly
  among those with at least the median follower count (an audience, but not by
  popularity), ids in ``truth["influencers"]``. Their followers reshare their posts
  ``influencer_boost`` times as often and their posts spread further.
* **Follower growth** (``cascades=True``): each author gains ``Poisson(0.04 x followers x
  (3 for an influencer))`` new followers during the window (``follow`` edges dated in it)
  and a few follows (1 %) end with an ``unfollow``.
* **Cascades** (``cascades=True``): a post of author ``a`` created at ``c`` is reshared by
  each follower ``f`` of ``a`` with probability ``0.01 x boost(a) x aff(f, topic) x (0.5 +
  quality)`` at ``c + Exp(2 h)`` (``parent_id`` = the post's item id); each reshare by ``s``
  is reshared again by each user following ``s`` with probability ``0.12 x v x aff`` at
  ``+ Exp(1.5 h)`` (``parent_id`` = the parent share's event id), where ``v`` is the post's
  virality (log-normal, x 1.6 for an influencer). A user reshares a post once; reshares
  after the window's end are not logged, and posts created before ``start`` (the warm-up
  days) get none. ``truth["cascade_size"]`` holds each post's
  reshare count in the log.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from feedwise.schema import EVENT_COLUMNS

EDGE_COLUMNS: tuple[str, ...] = ("src_id", "dst_id", "kind", "ts")
N_CANDIDATES = 200
FIRST_RATE = 0.01
NEXT_RATE = 0.12
FIRST_DELAY_H = 2.0
NEXT_DELAY_H = 1.5


def _to_ts(secs: np.ndarray) -> pd.DatetimeIndex:
    return pd.to_datetime(np.round(np.asarray(secs, np.float64) * 1e6).astype(np.int64),
                          unit="us", utc=True)


def _user_follows(rng: np.random.Generator, user_topic: np.ndarray) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """(src, dst) user indices of the user → user follows (no self-follows, no repeats)."""
    n = len(user_topic)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    unit = user_topic / np.linalg.norm(user_topic, axis=1, keepdims=True)
    k = np.clip(rng.poisson(6, n), 1, n - 1)
    m = min(N_CANDIDATES, n - 1)
    src, dst = [], []
    for lo in range(0, n, 2048):
        hi = min(lo + 2048, n)
        rows = np.arange(lo, hi)
        cand = (rows[:, None] + 1 + rng.integers(0, n - 1, (hi - lo, m))) % n  # never self
        sim = np.einsum("ij,ikj->ik", unit[rows], unit[cand])
        keys = np.log(sim + 0.02) + rng.gumbel(size=sim.shape)
        order = np.argsort(-keys, axis=1)
        for r in range(hi - lo):
            picked = pd.unique(cand[r, order[r]])[: k[lo + r]]
            src.append(np.full(len(picked), lo + r))
            dst.append(picked)
    return np.concatenate(src).astype(np.int64), np.concatenate(dst).astype(np.int64)


def attach_graph(world: Any, *, seed: int, cascades: bool = False,
                 n_influencers: int = 20, influencer_boost: float = 12.0,
                 influence: float = 0.0) -> None:
    """Give ``world`` its follow graph (``world.edges``) and, with ``cascades``, planted
    influencers, follower growth and reshare cascades (appended to ``world.events``).

    Args:
        world: The world, as :func:`~feedwise.datasets.synthetic_social` built it.
        seed: Seed of the graph's own random stream.
        cascades: Plant influencers and play reshare cascades.
        n_influencers: Planted influencers (capped at a tenth of the authors).
        influencer_boost: How much more often an influencer's followers reshare.
        influence: Social influence (``cascades`` only; 0, the default, plants none):
            each user who follows a resharer clicks the reshared post with probability
            ``influence x aff(user, topic)`` at ``+ Exp(3 h)`` (once per user and post,
            within the window; surface ``following``), ``truth["influenced_clicks"]``
            counts them. A world where what the people you follow reshare drives what
            you engage with: the graph then matters for the feed.
    """
    rng = np.random.default_rng([int(seed), 21])
    truth = world.truth
    follows: np.ndarray = truth["follows"]
    n_users, n_authors = follows.shape
    user_names = world.users["user_id"].to_numpy(dtype=object)
    n_posts = len(truth["post_author"])
    posts = world.items.iloc[:n_posts]
    author_names = np.array([f"a{i:05d}" for i in range(n_authors)], dtype=object)
    t_start = truth["start"].timestamp()
    t_end = truth["end"].timestamp()

    fu, fa = np.nonzero(follows)
    fa_ts = t_start - rng.uniform(1, 365, len(fu)) * 86400.0
    uu_src, uu_dst = _user_follows(rng, truth["user_topic"])
    uu_ts = t_start - rng.uniform(1, 365, len(uu_src)) * 86400.0
    parts = [pd.DataFrame({"src_id": user_names[fu], "dst_id": author_names[fa],
                           "kind": "follow", "ts": fa_ts}),
             pd.DataFrame({"src_id": user_names[uu_src], "dst_id": user_names[uu_dst],
                           "kind": "follow", "ts": uu_ts})]
    if not cascades:
        world.edges = _edges(parts)
        return

    k_inf = int(min(n_influencers, max(1, n_authors // 10)))
    n_fol = follows.sum(axis=0)
    # among the authors with an audience (at least the median follower count), uniformly:
    # influence is not popularity, but a post nobody sees is reshared by nobody
    pool = np.flatnonzero(n_fol >= np.median(n_fol))
    infl = np.sort(rng.choice(pool, size=min(k_inf, len(pool)), replace=False))
    is_infl = np.zeros(n_authors, bool)
    is_infl[infl] = True
    truth["influencers"] = list(author_names[infl])
    truth["influencer_index"] = infl

    # follower growth during the window, and a few unfollows
    gain = rng.poisson(0.04 * n_fol * np.where(is_infl, 3.0, 1.0) + 0.2)
    g_author = np.repeat(np.arange(n_authors), gain)
    g_user = rng.integers(0, n_users, len(g_author))
    new = ~follows[g_user, g_author]
    g_author, g_user = g_author[new], g_user[new]
    key = pd.Index(g_user.astype(np.int64) * n_authors + g_author)
    keep = ~key.duplicated()
    g_author, g_user = g_author[keep], g_user[keep]
    g_ts = rng.uniform(t_start, t_end, len(g_author))
    parts.append(pd.DataFrame({"src_id": user_names[g_user], "dst_id": author_names[g_author],
                               "kind": "follow", "ts": g_ts}))
    quit_ = rng.random(len(fu)) < 0.01
    parts.append(pd.DataFrame({"src_id": user_names[fu[quit_]],
                               "dst_id": author_names[fa[quit_]], "kind": "unfollow",
                               "ts": rng.uniform(t_start, t_end, int(quit_.sum()))}))
    world.edges = _edges(parts)

    # followers of each author at any time: the standing follows plus the new ones (a
    # follower only reshares posts created after they followed; unfollows end it)
    a_src = np.concatenate([fu, g_user])
    a_dst = np.concatenate([fa, g_author])
    a_from = np.concatenate([np.full(len(fu), -np.inf), g_ts])
    a_to = np.full(len(a_src), np.inf)
    a_to[: len(fu)][quit_] = parts[3]["ts"].to_numpy()
    order = np.argsort(a_dst, kind="stable")
    a_src, a_dst, a_from, a_to = a_src[order], a_dst[order], a_from[order], a_to[order]
    a_ptr = np.searchsorted(a_dst, np.arange(n_authors + 1))
    # followers of each user (who follows them): CSR by followed user
    order = np.argsort(uu_dst, kind="stable")
    u_fol, u_dst = uu_src[order], uu_dst[order]
    u_ptr = np.searchsorted(u_dst, np.arange(n_users + 1))

    user_topic = truth["user_topic"]
    aff = user_topic / user_topic.max(axis=1, keepdims=True)
    post_author = truth["post_author"]
    post_topic = truth["post_topic"]
    quality = truth["post_quality"]
    created = (pd.to_datetime(posts["created_at"], utc=True)
               - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(np.float64)
    virality = rng.lognormal(0.0, 0.5, n_posts) * np.where(is_infl[post_author], 1.6, 1.0)
    boost = np.where(is_infl[post_author], influencer_boost, 1.0)

    # generation 1: followers of the post's author
    cnt = a_ptr[post_author + 1] - a_ptr[post_author]
    p_idx = np.repeat(np.arange(n_posts), cnt)
    starts = np.repeat(a_ptr[post_author], cnt)
    within = np.arange(len(p_idx)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    e = starts + within
    f_user = a_src[e]
    live = ((a_from[e] <= created[p_idx]) & (a_to[e] > created[p_idx])
            & (created[p_idx] >= t_start))  # posts of the warm-up days get no cascade
    p = FIRST_RATE * boost[p_idx] * aff[f_user, post_topic[p_idx]] * (0.5 + quality[p_idx])
    hit = live & (rng.random(len(p)) < np.clip(p, 0, 1))
    post_of = [p_idx[hit]]
    user_of = [f_user[hit]]
    ts_of = [created[p_idx[hit]] + rng.exponential(FIRST_DELAY_H * 3600.0, int(hit.sum()))]
    parent_of: list[np.ndarray] = [np.full(int(hit.sum()), -1, np.int64)]
    seen = set((post_of[0].astype(np.int64) * n_users + user_of[0]).tolist())
    n_done = 0
    frontier = (post_of[0], user_of[0], ts_of[0], np.arange(len(post_of[0])))
    n_total = len(post_of[0])
    while len(frontier[0]):
        fp, fs, ft, fid = frontier
        cnt = u_ptr[fs + 1] - u_ptr[fs]
        rep = np.repeat(np.arange(len(fp)), cnt)
        pos = np.repeat(u_ptr[fs], cnt) + (np.arange(len(rep))
                                            - np.repeat(np.cumsum(cnt) - cnt, cnt))
        g = u_fol[pos]
        pp = fp[rep]
        prob = NEXT_RATE * virality[pp] * aff[g, post_topic[pp]]
        ok = rng.random(len(prob)) < np.clip(prob, 0, 0.95)
        rep, g, pp = rep[ok], g[ok], pp[ok]
        t = ft[rep] + rng.exponential(NEXT_DELAY_H * 3600.0, len(rep))
        # one reshare per user and post: the earliest offer wins
        order = np.argsort(t, kind="stable")
        rep, g, pp, t = rep[order], g[order], pp[order], t[order]
        keys = pp.astype(np.int64) * n_users + g
        first = ~pd.Index(keys).duplicated()
        fresh = np.array([k not in seen for k in keys.tolist()], bool) & first & (t < t_end)
        rep, g, pp, t, keys = rep[fresh], g[fresh], pp[fresh], t[fresh], keys[fresh]
        seen.update(keys.tolist())
        ids = np.arange(n_total, n_total + len(g))
        n_total += len(g)
        post_of.append(pp)
        user_of.append(g)
        ts_of.append(t)
        parent_of.append(fid[rep])
        frontier = (pp, g, t, ids)
        n_done += 1
    post_all = np.concatenate(post_of)
    user_all = np.concatenate(user_of)
    ts_all = np.concatenate(ts_of)
    parent_all = np.concatenate(parent_of)
    logged = ts_all < t_end
    # a first-generation reshare after the end is dropped, and so are its descendants
    # (their times are later still)
    ev_ids = np.array([f"{world.name}-r{i:07d}" for i in range(len(post_all))], dtype=object)
    post_names = posts["item_id"].to_numpy(dtype=object)
    parent_ids = np.where(parent_all < 0, post_names[post_all],
                          ev_ids[np.maximum(parent_all, 0)])
    shares = pd.DataFrame({
        "event_id": ev_ids, "user_id": user_names[user_all], "item_id": post_names[post_all],
        "kind": "share", "ts": _to_ts(ts_all), "dwell_ms": pd.array([pd.NA] * len(ev_ids),
                                                                   dtype="Int64"),
        "value": np.nan, "position": pd.array([pd.NA] * len(ev_ids), dtype="Int32"),
        "surface": "following", "session_id": None, "propensity": np.nan, "context": None,
        "text": None, "parent_id": parent_ids})[logged]
    shares = shares[list(EVENT_COLUMNS)]
    if influence > 0:
        clicks = _influenced(rng, influence, post_all[logged], user_all[logged],
                             ts_all[logged], u_ptr, u_fol, aff, post_topic, n_users, t_end,
                             user_names, post_names, world.name)[list(EVENT_COLUMNS)]
        truth["influenced_clicks"] = len(clicks)
        shares = pd.concat([shares, clicks], ignore_index=True)
    ev = world.events
    shares = shares.astype({c: ev[c].dtype for c in ("dwell_ms", "position")
                            if c in ev.columns}, errors="ignore")
    merged = pd.concat([ev, shares], ignore_index=True)
    world.events = merged.sort_values("ts", kind="stable").reset_index(drop=True)
    truth["cascade_size"] = np.bincount(post_all[logged], minlength=n_posts)
    truth["post_virality"] = virality
    truth["reshares"] = int(logged.sum())


def _influenced(rng: np.random.Generator, influence: float, post: np.ndarray,
                user: np.ndarray, ts: np.ndarray, u_ptr: np.ndarray, u_fol: np.ndarray,
                aff: np.ndarray, post_topic: np.ndarray, n_users: int, t_end: float,
                user_names: np.ndarray, post_names: np.ndarray, name: str
                ) -> pd.DataFrame:
    """Clicks planted by social influence: followers of each resharer click the post."""
    cnt = u_ptr[user + 1] - u_ptr[user]
    rep = np.repeat(np.arange(len(user)), cnt)
    pos = np.repeat(u_ptr[user], cnt) + (np.arange(len(rep))
                                          - np.repeat(np.cumsum(cnt) - cnt, cnt))
    g, pp = u_fol[pos], post[rep]
    ok = rng.random(len(g)) < np.clip(influence * aff[g, post_topic[pp]], 0, 1)
    g, pp = g[ok], pp[ok]
    t = ts[rep[ok]] + rng.exponential(3 * 3600.0, int(ok.sum()))
    order = np.argsort(t, kind="stable")
    g, pp, t = g[order], pp[order], t[order]
    keep = ~pd.Index(pp.astype(np.int64) * n_users + g).duplicated() & (t < t_end)
    g, pp, t = g[keep], pp[keep], t[keep]
    n = len(g)
    return pd.DataFrame({
        "event_id": np.array([f"{name}-i{i:07d}" for i in range(n)], dtype=object),
        "user_id": user_names[g], "item_id": post_names[pp], "kind": "click",
        "ts": _to_ts(t), "dwell_ms": pd.array([pd.NA] * n, dtype="Int64"),
        "value": np.nan, "position": pd.array([pd.NA] * n, dtype="Int32"),
        "surface": "following", "session_id": None, "propensity": np.nan,
        "context": None, "text": None, "parent_id": None})


def _edges(parts: list[pd.DataFrame]) -> pd.DataFrame:
    df = pd.concat(parts, ignore_index=True)
    df["ts"] = _to_ts(df["ts"].to_numpy())
    return df.sort_values(["ts", "src_id", "dst_id"], kind="stable").reset_index(drop=True)[
        list(EDGE_COLUMNS)]


def graph_truth(world: Any) -> dict[str, Any]:
    """The graph's ground truth: planted influencers, reshares per post (empty when the
    world was built without cascades)."""
    t = world.truth
    return {k: t[k] for k in ("influencers", "influencer_index", "cascade_size",
                              "post_virality", "reshares") if k in t}
