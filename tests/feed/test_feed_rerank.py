"""Re-ranking, fatigue, exploration, candidates and injected predictors."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from feed_world import NOW, build_engine, make_world

from feedwise.feed import (
    Catalog,
    ExplorationConfig,
    FeedConfig,
    FeedEngine,
    FeedRequest,
    RerankConfig,
)
from feedwise.feed.exploration import Explorer
from feedwise.feed.rerank import FatigueState, Reranker


def tiny_catalog(authors: list[int], topics: list[int], age_h: list[float] | None = None
                 ) -> Catalog:
    n = len(authors)
    tags = sp.csr_matrix((np.ones(n, np.float32), (np.arange(n), topics)),
                         shape=(n, max(topics) + 1))
    created = NOW.timestamp() - 3600.0 * np.asarray(age_h or [100.0] * n)
    return Catalog(np.array([f"p{i}" for i in range(n)], dtype=object), np.asarray(authors),
                   np.array([f"a{i}" for i in range(max(authors) + 1)], dtype=object),
                   created, tags, {f"t{i}": i for i in range(max(topics) + 1)})


def _rank(cat, values, n, cfg, fatigue=None, explore=None, seed=0):
    r = Reranker(cfg, cat)
    ex = Explorer(explore or ExplorationConfig())
    return r.rank(np.arange(cat.n), np.asarray(values, float), n, NOW.timestamp(), ex,
                  np.random.default_rng(seed), fatigue)


def test_author_decay_spreads_one_authors_posts():
    cat = tiny_catalog([0, 0, 0, 1, 2], [0, 1, 2, 3, 4])
    values = [1.0, 0.99, 0.98, 0.6, 0.55]
    plain = _rank(cat, values, 5, RerankConfig(author_decay=1.0, mmr_lambda=0,
                                               freshness_weight=0))
    assert list(plain.order[:3]) == [0, 1, 2]
    decayed = _rank(cat, values, 5, RerankConfig(author_decay=0.5, mmr_lambda=0,
                                                 freshness_weight=0))
    assert list(decayed.order[:3]) == [0, 3, 4] or list(decayed.order[:2]) == [0, 3]
    assert np.all(decayed.propensities == 1.0)


def test_mmr_prefers_a_new_topic():
    cat = tiny_catalog([0, 1, 2], [0, 0, 1])
    values = [1.0, 0.95, 0.8]
    off = _rank(cat, values, 3, RerankConfig(author_decay=1, mmr_lambda=0, freshness_weight=0))
    on = _rank(cat, values, 3, RerankConfig(author_decay=1, mmr_lambda=0.5, freshness_weight=0))
    assert list(off.order) == [0, 1, 2]
    assert list(on.order) == [0, 2, 1]


def test_freshness_lifts_new_posts():
    cat = tiny_catalog([0, 1], [0, 1], age_h=[200.0, 1.0])
    cfg = RerankConfig(author_decay=1, mmr_lambda=0, freshness_weight=1.0)
    assert list(_rank(cat, [1.0, 0.9], 2, cfg).order) == [1, 0]


def test_fatigue_window_then_ramp_back():
    cfg = RerankConfig(fatigue_window_hours=10, fatigue_ramp_hours=10, fatigue_floor=0.0)
    age = np.array([0.0, 5.0, 10.0, 15.0, 20.0, 30.0]) * 3600
    assert FatigueState.weight(age, cfg) == pytest.approx([0, 0, 0, 0.5, 1, 1])
    st = FatigueState()
    st.record("u", author=3, topics=np.array([7]), ts=NOW.timestamp() - 3600)
    f = st.factors("u", np.array([3, 1, 1]), np.array([0, 7, 0]), NOW.timestamp(), cfg)
    assert list(f) == [0.0, 0.0, 1.0]
    assert st.factors("other", np.array([3]), np.array([7]), NOW.timestamp(), cfg) is None


def test_hidden_author_is_suppressed_then_returns():
    world = make_world(5, n_items=60)
    cfg = FeedConfig(rerank=RerankConfig(fatigue_window_hours=24, fatigue_ramp_hours=24),
                     exclude_served_within_s=0)
    engine = build_engine(world, cfg)
    feed = engine.compose(FeedRequest("u1", n=10, now=NOW), record=False)
    first = feed.slots[0]
    engine.record_feedback("u1", first.item_id, "hide", NOW)
    later = engine.compose(FeedRequest("u1", n=10, now=NOW + timedelta(hours=1)), record=False)
    assert first.item_id not in later.item_ids
    assert first.author_id not in {s.author_id for s in later.slots if s.kind == "organic"}
    back = engine.compose(FeedRequest("u1", n=10, now=NOW + timedelta(days=5)), record=False)
    assert first.item_id not in back.item_ids  # a hidden post never comes back
    assert engine.check(back) == []


@pytest.mark.parametrize("method", ["epsilon", "softmax"])
def test_exploration_propensities_are_exact(method):
    ex = Explorer(ExplorationConfig(method=method, epsilon=0.3, top_k=3, temperature=0.5))
    scores = np.array([2.0, -np.inf, 1.5, 1.0, 0.2])
    idx, p = ex.probabilities(scores)
    assert p.sum() == pytest.approx(1.0) and 1 not in idx and 4 not in idx
    rng = np.random.default_rng(0)
    draws = [ex.choose(scores, rng) for _ in range(4000)]
    for i, pi in zip(idx, p, strict=True):
        freq = np.mean([d[0] == i for d in draws])
        assert abs(freq - pi) < 0.03
        assert all(abs(q - pi) < 1e-12 for j, q in draws if j == i)
    if method == "epsilon":
        assert p[list(idx).index(0)] == pytest.approx(0.7 + 0.1)


def test_softmax_temperature_is_in_the_units_of_the_scores():
    # documented: p ∝ exp(score / T) on the raw scores, not normalised by their spread
    scores = np.array([2.0, 1.5, 1.0, 0.2])
    _, p = Explorer(ExplorationConfig(method="softmax", top_k=4, temperature=0.5)
                    ).probabilities(scores)
    z = np.exp((scores - scores.max()) / 0.5)
    assert p == pytest.approx(z / z.sum())
    # scaling the scores and T together changes nothing; scaling the scores alone does
    _, p10 = Explorer(ExplorationConfig(method="softmax", top_k=4, temperature=5.0)
                      ).probabilities(10 * scores)
    assert p10 == pytest.approx(p)
    _, sharp = Explorer(ExplorationConfig(method="softmax", top_k=4, temperature=0.5)
                        ).probabilities(10 * scores)
    assert sharp[0] > p[0] + 0.1


def test_engine_logs_exploration_propensities():
    world = make_world(6, n_items=80)
    cfg = FeedConfig(exploration=ExplorationConfig(method="epsilon", epsilon=0.5, top_k=4))
    engine = build_engine(world, cfg, seed=1)
    feed = engine.compose(FeedRequest("u2", n=20, now=NOW))
    organic = [s for s in feed.slots if s.kind == "organic"]
    assert any(s.propensity < 1 for s in organic)
    assert all(0 < s.propensity <= 1 for s in feed.slots)
    assert all("exploring" in s.reasons for s in organic if s.propensity < 1)


def test_feed_is_never_empty_for_unknown_users_and_falls_back():
    world = make_world(7, n_items=30, n_campaigns=0)
    engine = FeedEngine(None, world["items"], [], FeedConfig())
    feed = engine.compose(FeedRequest("nobody", n=10, now=NOW))
    assert len(feed) == 10
    assert {s.source for s in feed.slots} <= {"fresh", "trending"}
    # every post already served: the catalogue runs dry and served posts come back
    for k in range(5):
        f = engine.compose(FeedRequest("nobody", n=10, now=NOW + timedelta(minutes=k + 1)))
        assert len(f) == 10


def test_candidate_quotas_and_dedup():
    world = make_world(8, n_items=100)
    cfg = FeedConfig()
    cfg.candidates.quotas = {"recommender": 10, "followed": 0, "fresh": 5, "trending": 5}
    cfg.candidates.pool_size = 20
    engine = build_engine(world, cfg)
    ctx = engine.context(FeedRequest("u1", n=5, now=NOW))
    pool = engine.generator.generate(ctx, 5)
    assert len(pool) == 20 and len(np.unique(pool.items)) == 20
    names = np.array(pool.sources)[pool.source]
    assert (names == "recommender").sum() == 10 and (names == "followed").sum() == 0


def test_injected_predictors_drive_the_ranking():
    world = make_world(9, n_items=40)

    class Oracle:
        def predict(self, ctx, items, rec_score):
            return -items.astype(float)  # prefers low catalogue indices

    class FreeAds:
        def predict(self, ctx, creatives, exposure):
            return np.zeros(len(creatives))

    cfg = FeedConfig(rerank=RerankConfig(author_decay=1, mmr_lambda=0, freshness_weight=0))
    engine = build_engine(world, cfg, engagement=Oracle(), ux_cost=FreeAds())
    ctx = engine.context(FeedRequest("u0", n=5, now=NOW))
    pool_items = engine.generator.generate(ctx, 5).items
    feed = engine.compose(FeedRequest("u0", n=5, now=NOW))
    organic = [engine.catalog.index[s.item_id] for s in feed.slots if s.kind == "organic"]
    assert organic == sorted(pool_items)[:len(organic)]


def test_recommender_source_with_a_fitted_model(store):
    from feedwise.models.popularity import Popularity

    world = make_world(10, n_items=40, n_campaigns=2)
    events = pd.DataFrame({"user_id": [f"u{i % 5}" for i in range(60)],
                           "item_id": [f"p{(7 * i) % 40}" for i in range(60)], "kind": "click",
                           "ts": [NOW - timedelta(hours=i) for i in range(60)]})
    store.ingest(events)
    store.upsert_items(world["items"].drop(columns=["popularity"]))
    store.upsert_users(world["users"])
    model = Popularity().fit(store.interactions())
    engine = FeedEngine.from_store(store, model)
    feed = engine.compose(FeedRequest("u1", n=8, now=NOW))
    assert len(feed) == 8 and engine.check(feed) == []
    assert any(s.source == "recommender" for s in feed.slots)
    seen = set(model.recommend(["u1"], 40, exclude_seen=False)[0].ids) - set(
        model.recommend(["u1"], 40)[0].ids)
    assert not seen & {s.item_id for s in feed.slots if s.source == "recommender"}


def test_state_can_be_copied_and_swapped_for_replays():
    world = make_world(12, n_items=60, n_campaigns=6, budget=None)
    engine = build_engine(world, FeedConfig(ux_lambda=0.0, first_ad_slot=0))
    start = engine.state.copy()
    reqs = [FeedRequest(f"u{k % 3}", n=10, now=NOW + timedelta(minutes=k),
                        context={"seed": k}) for k in range(6)]
    first = [engine.compose(r).item_ids for r in reqs]
    assert engine.state.served and not start.served
    engine.state = start  # replay from the saved state: the same feeds again
    assert [engine.compose(r).item_ids for r in reqs] == first


def test_hides_in_the_store_survive_a_restart(store):
    world = make_world(13, n_items=50, n_campaigns=0)
    store.upsert_items(world["items"].drop(columns=["popularity"]))
    store.upsert_users(world["users"])
    engine = FeedEngine.from_store(store)
    top = engine.compose(FeedRequest("u1", n=5, now=NOW), record=False).slots[0]
    store.ingest(pd.DataFrame({"user_id": ["u1"], "item_id": [top.item_id], "kind": ["hide"],
                               "ts": [NOW - timedelta(minutes=5)]}))
    again = FeedEngine.from_store(store)
    feed = again.compose(FeedRequest("u1", n=5, now=NOW), record=False)
    assert top.item_id not in feed.item_ids
    assert top.author_id not in {s.author_id for s in feed.slots}


def test_author_cap_does_not_shorten_the_feed_when_other_authors_have_posts():
    # the 50 best posts are one author's: a shortlist of the top 40 alone would hold one
    # eligible post under max_per_author=1, though ten other authors have posts
    cat = tiny_catalog([0] * 50 + list(range(1, 11)), list(range(60)))
    values = np.r_[np.linspace(2.0, 1.5, 50), np.linspace(1.0, 0.5, 10)]
    cfg = RerankConfig(max_per_author=1, mmr_lambda=0, freshness_weight=0)
    res = _rank(cat, values, 5, cfg)
    assert list(res.order) == [0, 50, 51, 52, 53]
    explored = _rank(cat, values, 5, cfg, explore=ExplorationConfig(method="epsilon", top_k=3))
    assert len(explored.order) == 5
    assert len(set(cat.author[explored.order])) == 5


@pytest.mark.parametrize("method", ["none", "epsilon", "softmax"])
def test_a_nan_engagement_value_ranks_last_and_spoils_nothing(method):
    cat = tiny_catalog([0, 1, 2, 3], [0, 1, 2, 3])
    cfg = RerankConfig(mmr_lambda=0, freshness_weight=0)
    res = _rank(cat, [0.1, 0.2, np.nan, 0.9], 4, cfg,
                explore=ExplorationConfig(method=method, epsilon=0.0, top_k=1))
    assert list(res.order) == [3, 1, 0, 2]
    assert np.all(np.isfinite(res.scores))


def test_engine_survives_a_predictor_that_returns_nan():
    world = make_world(9, n_items=40)

    class Patchy:
        def predict(self, ctx, items, rec_score):
            v = np.linspace(1.0, 0.0, len(items))
            v[1] = np.nan
            return v

    engine = build_engine(world, FeedConfig(), engagement=Patchy())
    feed, stats = engine.compose_with_stats(FeedRequest("u0", n=8, now=NOW))
    assert len(feed) == 8 and engine.check(feed) == []
    assert np.isfinite(stats.organic_value)


def test_recommender_reasons_do_not_leak_to_the_next_user():
    from feedwise.feed.candidates import RecommenderSource
    from feedwise.itemlist import ItemList

    cat = tiny_catalog([0, 1, 2], [0, 1, 2])

    class Rec:
        def recommend(self, users, k):
            reasons = ["because you liked p2", "because you liked p2"] if users[0] == "a" else None
            return [ItemList(np.array(["p0", "p1"], dtype=object), np.array([2.0, 1.0]),
                             reasons)]

    src = RecommenderSource(Rec(), cat)
    ctx = FeedEngine(None, pd.DataFrame({"item_id": ["p0"]})).context
    a = src.candidates(ctx(FeedRequest("a", n=2, now=NOW)), 2)
    assert list(a.index) == [0, 1] and list(a.ids) == ["p0", "p1"]
    assert a.reasons == ["because you liked p2", "because you liked p2"]
    assert src.candidates(ctx(FeedRequest("b", n=2, now=NOW)), 2).reasons is None


def test_a_popularity_array_of_the_wrong_length_is_named():
    from feedwise.errors import DataError

    items = pd.DataFrame({"item_id": ["p0", "p1", "ad1"], "kind": ["post", "post", "ad"]})
    with pytest.raises(DataError, match="popularity has 3 values for 2 posts"):
        Catalog.from_frame(items, popularity=np.array([1.0, 2.0, 3.0]))
