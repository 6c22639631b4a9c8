"""Forgetting a user in a running engine, consent changes, and loading from the store."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
from feed_world import NOW, build_engine, make_world

from feedwise.feed import FactorSource, FeedConfig, FeedEngine, FeedRequest
from feedwise.feed.loader import load_engine
from feedwise.models.popularity import Popularity


def _store_world(store, seed: int = 3):
    world = make_world(seed, n_items=60, n_users=8)
    store.upsert_items(world["items"].drop(columns=["popularity"]))
    store.upsert_users(world["users"])
    store.upsert_campaigns(pd.DataFrame([c.to_row() for c in world["campaigns"]]))
    rng = np.random.default_rng(seed)
    n = 200
    store.ingest(pd.DataFrame({
        "user_id": [f"u{rng.integers(8)}" for _ in range(n)],
        "item_id": [f"p{rng.integers(60)}" for _ in range(n)],
        "kind": rng.choice(["click", "like", "dwell", "hide", "report"], n,
                           p=[0.5, 0.2, 0.2, 0.05, 0.05]),
        "ts": [NOW - timedelta(hours=float(h)) for h in rng.uniform(0, 48, n)]}))
    return world


def _feed(engine, user, seed=1):
    return engine.compose(FeedRequest(user, n=10, now=NOW, context={"seed": seed}),
                          record=False)


def test_a_forgotten_user_gets_the_feed_of_a_stranger(store):
    _store_world(store)
    model = Popularity().fit(store.interactions())
    engine = FeedEngine.from_store(store, model, FeedConfig(ux_lambda=0.0))
    for k in range(3):
        engine.compose(FeedRequest("u1", n=10, now=NOW + timedelta(minutes=k)))
    engine.record_feedback("u1", "p3", "hide", NOW)
    assert "u1" in engine.state.served and "u1" in engine.state.hidden
    assert _feed(engine, "u1").item_ids != _feed(engine, "stranger").item_ids
    assert engine.forget_user("u1")
    assert not model.knows_user("u1") and engine.users.row("u1") < 0
    assert "u1" not in engine.state.served and "u1" not in engine.state.hidden
    assert "u1" not in engine.state.fatigue.authors and "u1" not in engine.state.ads.freq
    assert _feed(engine, "u1").item_ids == _feed(engine, "stranger").item_ids
    assert not engine.forget_user("u1")


def test_a_factor_source_forgets_its_user_row():
    world = make_world(4, n_items=40)
    src = FactorSource(world["user_factors"], world["item_factors"], {"u0": 0, "u1": 1})
    engine = FeedEngine(src, world["items"], world["campaigns"], users=world["users"])
    assert len(src.candidates(engine.context(FeedRequest("u1", n=5, now=NOW)), 5)) == 5
    assert engine.forget_user("u1")
    assert "u1" not in src.user_index and not src.user_factors[1].any()
    assert world["user_factors"][1].any()  # the caller's array is left alone
    assert len(src.candidates(engine.context(FeedRequest("u1", n=5, now=NOW)), 5)) == 0


def test_set_consent_takes_effect_on_the_next_request():
    world = make_world(5)
    engine = build_engine(world, FeedConfig(ux_lambda=0.0))
    req = FeedRequest("u2", n=10, now=NOW)
    assert engine.set_consent("u2", personalization=False, ads=False)
    ctx = engine.context(req)
    assert not ctx.consent_ads and not ctx.consent_personalization
    slots = _feed(engine, "u2").slots
    assert not any(s.kind == "ad" and s.reasons != ("sponsored",) for s in slots)
    assert engine.set_consent("u2", personalization=True, ads=True)
    assert engine.context(req).consent_personalization
    assert not engine.set_consent("nobody", personalization=False, ads=False)


def test_the_loader_reads_the_store_through_named_methods(store):
    _store_world(store)
    cut = NOW - timedelta(hours=24)
    counts = store.engagement_counts(cut)
    ev = store.events()
    early = ev[(ev["ts"] < pd.Timestamp(cut)) & ev["kind"].isin(["click", "like", "dwell"])]
    assert counts == early.groupby("item_id")["user_id"].nunique().astype(float).to_dict()
    recent = store.recent_feedback(6)
    assert set(recent["kind"]) <= {"hide", "report"} and recent["ts"].is_monotonic_increasing
    assert (recent["ts"] >= ev["ts"].max() - pd.Timedelta(hours=6)).all()
    aff = store.author_tag_affinity()
    assert list(aff.columns) == ["user_id", "author_id", "tag", "n"] and len(aff)
    a = load_engine(FeedEngine, store, None, FeedConfig(), until=cut)
    b = FeedEngine.from_store(store, None, FeedConfig(), until=cut)
    assert type(a) is FeedEngine
    assert _feed(a, "u1").item_ids == _feed(b, "u1").item_ids
    assert (a.users.interests != b.users.interests).nnz == 0
