"""The replay of open retrieval: nothing after the cut reaches the engine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feedwise.datasets import synthetic_social
from feedwise.evidence.replay import ndcg_at, past_store, replay_open_retrieval
from feedwise.store import EventStore


def test_ndcg_by_hand():
    assert ndcg_at(["a", "b", "c"], {"a"}) == 1.0
    assert ndcg_at(["x", "a"], {"a"}) == pytest.approx(1 / np.log2(3))
    assert ndcg_at(["x", "a"], {"a", "b"}) == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    assert ndcg_at([], {"a"}) == 0.0


@pytest.fixture(scope="module")
def world_store():
    w = synthetic_social(n_users=150, n_authors=20, n_posts=400, n_days=5, seed=3)
    s = EventStore(":memory:")
    w.load_into(s)
    yield w, s
    s.close()


def test_the_past_store_holds_nothing_after_the_cut(world_store):
    w, s = world_store
    cut = pd.to_datetime(w.events["ts"], utc=True).quantile(0.8).to_pydatetime()
    with past_store(s, cut) as past:
        assert pd.to_datetime(past.events()["ts"], utc=True).max() < pd.Timestamp(cut)
        created = pd.to_datetime(past.items()["created_at"], utc=True)
        assert (created.dropna() <= pd.Timestamp(cut)).all()
        later = s.edges_as_of()
        then = past.edges_as_of(cut)
        assert len(then) <= len(later)
        assert (pd.to_datetime(then["since"], utc=True).dropna() <= pd.Timestamp(cut)).all()
    with past_store(s, cut, graph=False) as bare:
        assert bare.edge_log().empty


def test_replay_scores_both_variants(world_store):
    w, s = world_store
    cut = pd.to_datetime(w.events["ts"], utc=True).quantile(0.8).to_pydatetime()
    a = replay_open_retrieval(s, cut, graph=False, max_users=40)
    b = replay_open_retrieval(s, cut, graph=True, max_users=40)
    assert a["users"] == b["users"] > 0
    assert 0 <= a["ndcg"] <= 1 and 0 <= b["ndcg"] <= 1


def test_interval95_by_hand():
    from feedwise.evidence.replay import interval95

    m, lo, hi = interval95([0.1, 0.3])
    # t(0.975, 1) = 12.706; sd = 0.1414; half = 12.706 * 0.1414 / sqrt(2) = 1.2706
    assert m == pytest.approx(0.2)
    assert hi - m == pytest.approx(1.2706, rel=1e-3) and m - lo == pytest.approx(hi - m)
    assert np.isnan(interval95([0.5])[1])


def test_social_influence_plants_clicks_by_followers_of_resharers():
    from feedwise.datasets.synthetic_graph import attach_graph

    plain = synthetic_social(n_users=150, n_authors=20, n_posts=400, n_days=5, seed=4)
    base_events = plain.events.copy()
    attach_graph(plain, seed=4, cascades=True)
    assert "influenced_clicks" not in plain.truth  # off by default
    w = synthetic_social(n_users=150, n_authors=20, n_posts=400, n_days=5, seed=4)
    attach_graph(w, seed=4, cascades=True, influence=1.0)
    assert w.truth["influenced_clicks"] > 0
    pd.testing.assert_frame_equal(w.edges, plain.edges)
    planted = w.events[w.events["event_id"].str.contains("-i")]
    assert len(planted) == w.truth["influenced_clicks"]
    assert (planted["kind"] == "click").all() and not planted["event_id"].isin(
        base_events["event_id"]).any()
    # every planted click is by a follower of someone who reshared that post earlier
    follows = w.edges[w.edges["kind"] == "follow"]
    shares = w.events[w.events["kind"] == "share"]
    for _, c in planted.head(30).iterrows():
        followees = set(follows.loc[follows["src_id"] == c["user_id"], "dst_id"])
        before = shares[(shares["item_id"] == c["item_id"]) & (shares["ts"] < c["ts"])]
        assert followees & set(before["user_id"])
