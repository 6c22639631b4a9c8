"""Replay of open retrieval: the FeedEngine as it would have served at a past time.

A temporal split of a store's log at ``cut``: the engine is built from what was known
before it (the posts created by then, the events before it, the social graph standing
then) and composes one feed per held-out user at ``cut``; the posts that user engaged
with in the ``horizon`` after the cut (among those available at the cut) are the relevant
ones, and NDCG@10 of the feed's organic posts measures it. Nothing after the cut reaches
the engine: the past store holds only the earlier events and posts, and the graph is
read ``as of`` the cut (a follow made later is in the store, and not used).

:func:`graph_lift` measures the engine with and without the graph sources (the stored
edges: followed authors, the ``network`` source, the ``reshared`` source (what the people
a user follows shared before the cut) and its ranking bonus, follow-based author affinity)
on the synthetic world.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from feedwise.datasets import synthetic_social
from feedwise.datasets.synthetic_graph import attach_graph
from feedwise.feed.engine import FeedEngine
from feedwise.feed.types import FeedRequest
from feedwise.models import get_model
from feedwise.schema import ENGAGEMENT_KINDS, utc
from feedwise.store import EventStore

_COPY = ("items", "users", "campaigns")


def past_store(store: EventStore, cut: datetime, *, graph: bool = True) -> EventStore:
    """An in-memory store of what was known before ``cut``: the posts created by then,
    the events before it, the users and campaigns, and (with ``graph``) every stored edge
    (read as of the cut by whoever uses them)."""
    past = EventStore(":memory:")
    posts = store.items()
    created = pd.to_datetime(posts["created_at"], utc=True)
    past.upsert_items(posts[created.isna() | (created <= pd.Timestamp(cut))])
    past.upsert_users(store.users())
    if len(store.campaigns()):
        past.upsert_campaigns(store.campaigns())
    ev = store.events()
    past.ingest(ev[pd.to_datetime(ev["ts"], utc=True) < pd.Timestamp(utc(cut))],
                source_name="replay:past")
    if graph:
        log = store.edge_log()
        if len(log):
            past.add_edges(log[["edge_id", "src_id", "dst_id", "kind", "ts"]],
                           source_name="replay:edges")
    return past


def ndcg_at(ranked: list[str], relevant: set[str], k: int = 10) -> float:
    gains = [1.0 / np.log2(i + 2) for i, it in enumerate(ranked[:k]) if it in relevant]
    ideal = sum(1.0 / np.log2(i + 2) for i in range(min(len(relevant), k)))
    return float(sum(gains) / ideal) if ideal else 0.0


def replay_open_retrieval(store: EventStore, cut: datetime, *, graph: bool = True,
                          horizon: timedelta = timedelta(days=2), k: int = 10,
                          max_users: int | None = 400, model: str = "itemknn",
                          seed: int = 0) -> dict[str, float]:
    """NDCG@k of the engine's feeds at ``cut`` for the users who engaged after it.

    Returns:
        ``ndcg``, ``users`` (scored), ``seconds``.
    """
    t0 = time.perf_counter()
    past = past_store(store, cut, graph=graph)
    try:
        available = set(past.items()["item_id"].astype(str))
        later = store.events()
        when = pd.to_datetime(later["ts"], utc=True)
        later = later[(when >= pd.Timestamp(utc(cut))) & (when < pd.Timestamp(utc(cut + horizon)))
                      & later["kind"].isin(ENGAGEMENT_KINDS)
                      & later["item_id"].astype(str).isin(available)]
        relevant = later.groupby("user_id")["item_id"].agg(lambda s: set(map(str, s)))
        users = sorted(relevant.index)
        if max_users is not None and len(users) > max_users:
            users = sorted(np.random.default_rng(seed).choice(users, max_users,
                                                              replace=False))
        rec = get_model(model).fit(past.interactions(until=cut))
        engine = FeedEngine.from_store(past, rec, until=cut, seed=seed)
        scores = []
        for u in users:
            feed = engine.compose(FeedRequest(user_id=str(u), n=k, now=cut,
                                              context={"seed": seed}), record=False)
            organic = [s.item_id for s in feed.slots if s.kind == "organic"]
            scores.append(ndcg_at(organic, relevant[u], k))
    finally:
        past.close()
    return {"ndcg": float(np.mean(scores)) if scores else 0.0, "users": len(scores),
            "seconds": round(time.perf_counter() - t0, 1)}


#: The kinds of synthetic world :func:`graph_lift` replays: (cascades, social influence).
WORLDS: dict[str, tuple[bool, float]] = {
    "follow graph": (False, 0.0),
    "cascades": (True, 0.0),
    "cascades + social influence": (True, 1.0),
}


def _world(n_users: int, seed: int, cascades: bool, influence: float) -> Any:
    size = {"n_users": n_users, "n_authors": max(40, n_users // 10),
            "n_posts": max(1000, n_users * 2), "n_days": 10, "seed": seed}
    if influence <= 0:
        return synthetic_social(**size, cascades=cascades)
    # the same world, its graph attached again with social influence planted (the graph's
    # own random stream: the follows are those of the plain world)
    world = synthetic_social(**size)
    attach_graph(world, seed=seed, cascades=True, influence=influence)
    return world


def interval95(values: list[float]) -> tuple[float, float, float]:
    """Mean and Student-t 95% interval of ``values`` (the seeds' lifts)."""
    x = np.asarray([v for v in values if np.isfinite(v)], np.float64)
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(x.mean())
    if len(x) < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return m, m - half, m + half


def graph_lift(n_users: int = 600, seeds: tuple[int, ...] = (7, 8, 9, 10, 11),
               k: int = 10, worlds: tuple[str, ...] = tuple(WORLDS),
               max_users: int | None = 400) -> list[dict]:
    """Rows for the benchmark: the engine's open-retrieval NDCG@k on synthetic worlds
    (cut at 80% of their events) with and without the graph sources, per world and seed,
    and per kind of world (:data:`WORLDS`) the mean relative lift over the seeds with its
    95% interval. In the plain world engagement does not depend on user-to-user follows;
    with cascades reshares travel along them; with social influence users also click what
    the people they follow reshared."""
    rows = []
    for kind in worlds:
        casc, influence = WORLDS[kind]
        name = f"synthetic {n_users} users, {kind}"
        lifts, diffs = [], []
        for seed in seeds:
            world = _world(n_users, seed, casc, influence)
            store = EventStore(":memory:")
            try:
                world.load_into(store)
                cut = pd.to_datetime(world.events["ts"], utc=True).quantile(0.8)
                res = {}
                for graph in (False, True):
                    r = replay_open_retrieval(store, cut.to_pydatetime(), graph=graph, k=k,
                                              max_users=max_users)
                    res[graph] = r["ndcg"]
                    rows.append({"benchmark": "replay", "dataset": f"{name}, seed {seed}",
                                 "method": "engine with graph sources" if graph
                                 else "engine without graph sources",
                                 "metric": f"ndcg@{k}", "value": round(r["ndcg"], 4),
                                 "users": r["users"], "seconds": r["seconds"]})
            finally:
                store.close()
            lifts.append(res[True] / res[False] - 1 if res[False] else float("nan"))
            diffs.append(res[True] - res[False])
        m, lo, hi = interval95(lifts)
        rows.append({"benchmark": "replay", "dataset": f"{name}, seeds {list(seeds)}",
                     "method": "mean lift from the graph sources", "metric": "relative",
                     "value": round(m, 4), "ci95": [round(lo, 4), round(hi, 4)],
                     "per_seed": [round(x, 4) for x in lifts],
                     "mean_ndcg_difference": round(float(np.mean(diffs)), 4)})
    return rows
