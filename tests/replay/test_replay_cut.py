"""Replay evaluation (issue 18): nothing after a request's time reaches the policy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feedwise.datasets import synthetic_social
from feedwise.evidence import replay_eval
from feedwise.models import Popularity
from feedwise.store import EventStore


@pytest.fixture(scope="module")
def world():
    w = synthetic_social(n_users=150, n_authors=30, n_posts=400, n_days=4, n_campaigns=2,
                         seed=5)
    store = EventStore(":memory:")
    w.load_into(store)
    yield store
    store.close()


class Spy(Popularity):
    """Popularity that records the data it was fitted on and the users it scored."""

    fits: list = []

    def fit(self, data, **kwargs):  # noqa: ANN001, ANN201, ANN003
        Spy.fits.append((data, kwargs))
        return super().fit(data)


def test_policies_see_only_the_past(world, monkeypatch) -> None:
    asked: list[tuple[float, np.ndarray]] = []
    real = replay_eval.ModelPolicy.scores

    def spy_scores(self, user_id, items, now_s):  # noqa: ANN001, ANN202
        asked.append((now_s, items.copy()))
        return real(self, user_id, items, now_s)

    monkeypatch.setattr(replay_eval.ModelPolicy, "scores", spy_scores)
    monkeypatch.setattr(replay_eval, "get_model", lambda name, **kw: Spy())
    Spy.fits.clear()
    events = world.events()
    cut = pd.to_datetime(events["ts"], utc=True).quantile(0.8).to_pydatetime()
    res = replay_eval.replay_evaluate(world, models=["spy"], cut=cut, baselines=False,
                                      engine=True, engine_model="spy", max_requests=60)
    # the model was fitted once (shared by the engine) on events strictly before the cut
    assert len(Spy.fits) == 1
    data, side = Spy.fits[0]
    assert data.until == cut and float(data.last_ts.data.max()) < cut.timestamp()
    if "edges" in side:
        assert (pd.to_datetime(side["edges"]["since"], utc=True).dropna() <= cut).all()
    # every post put to a policy existed at the request's time, every request after the cut
    posts = replay_eval.PostTable.from_frame(world.posts())
    assert asked and all((posts.created_s[items] <= t).all() for t, items in asked)
    assert min(t for t, _ in asked) >= cut.timestamp()
    assert res.table.set_index("policy").loc["spy", "requests_open"] > 0
    # the whole engine at a request proposes only posts that existed then
    engine = replay_eval.replay_engine(world, Spy().fit(world.interactions(until=cut)), cut)
    pol = replay_eval.EnginePolicy(engine, posts)
    reqs = replay_eval.logged_requests(events, since=cut, posts=posts.item_ids)[:20]
    for q in reqs:
        top = pol.rank(q.user_id, posts.available(q.ts), q.ts, 50)
        assert len(top) and (posts.created_s[top] <= q.ts).all()
        s = pol.scores(q.user_id, posts.lookup(q.candidates), q.ts)
        assert np.isfinite(s).all()


def test_a_post_created_later_changes_nothing_before_it(world) -> None:
    """Moving a post's creation after a request removes it from that request's open
    retrieval and leaves the scores of the other posts unchanged."""
    events = world.events()
    cut = pd.to_datetime(events["ts"], utc=True).quantile(0.8).to_pydatetime()
    frame = world.posts()
    posts = replay_eval.PostTable.from_frame(frame)
    req = next(q for q in replay_eval.logged_requests(events, since=cut,
                                                      posts=posts.item_ids)
               if q.engaged and len(set(q.candidates) - q.engaged))
    model = Popularity().fit(world.interactions(until=cut))
    pol = replay_eval.ModelPolicy(model, posts, "pop")
    moved = replay_eval.PostTable(posts.item_ids, posts.created_s.copy(), posts.author)
    avail = posts.available(req.ts)
    best = avail[np.nanargmax(pol.scores(req.user_id, avail, req.ts))]
    moved.created_s[best] = req.ts + 1.0
    assert best not in moved.available(req.ts) and best in avail
    pol2 = replay_eval.ModelPolicy(model, moved, "pop")
    assert np.array_equal(pol2.scores(req.user_id, avail, req.ts),
                          pol.scores(req.user_id, avail, req.ts), equal_nan=True)
    # the policy is asked about the posts available then only: the moved post is gone
    asked: list[np.ndarray] = []
    real = pol2.scores
    pol2.scores = lambda u, items, t: (asked.append(items.copy()), real(u, items, t))[1]
    replay_eval.score_requests([pol2], [req], moved)
    assert asked and all(best not in items for items in asked)


def test_offpolicy_estimate_of_the_engine(world) -> None:
    from feedwise.evidence.replay_ope import new_feed_estimate, session_log

    events = world.events()
    cut = pd.to_datetime(events["ts"], utc=True).quantile(0.8).to_pydatetime()
    posts = replay_eval.PostTable.from_frame(world.posts())
    log = session_log(events, posts, cut, max_sessions=25)
    assert log["session_id"].nunique() == 25 and (log["t"] >= cut.timestamp()).all()
    # the reward of a logged slot: the user engaged with that post in that session
    s0 = log.iloc[0]
    mine = events[(events["session_id"] == s0["session_id"])
                  & (events["item_id"].astype(str) == s0["item_id"])]
    assert s0["reward"] == float(mine["kind"].isin(["click", "like", "comment", "share",
                                                     "save"]).any())
    engine = replay_eval.replay_engine(world, Popularity().fit(world.interactions(until=cut)),
                                       cut)
    est = new_feed_estimate(replay_eval.EnginePolicy(engine, posts), log, n_bootstrap=50)
    t = est["table"].set_index("estimator")
    logged = t.loc["logged policy (on-policy mean)"]
    assert logged["value"] == pytest.approx(log["reward"].mean())
    assert logged["ci_low"] <= logged["value"] <= logged["ci_high"]
    assert {"new feed, SNIPS", "new feed, DR"} <= set(t.index)
    assert 0.0 <= est["match_rate"] <= 1.0 and est["rows"] == len(log)


def test_engine_engagement_model_is_trained_before_the_cut(world) -> None:
    """The replay's engine gets its engagement model from the impressions before the cut
    only: deleting every engagement at or after the cut (the impressions stay, so the
    log's span and the protocol's parts are the same) leaves its coefficients unchanged."""
    from feedwise.schema import ENGAGEMENT_KINDS

    events = world.events()
    t = pd.to_datetime(events["ts"], utc=True)
    cut = t.quantile(0.8).to_pydatetime()
    full = replay_eval.point_in_time_engagement_model(world, cut)
    assert full is not None
    later = (t >= pd.Timestamp(cut)).to_numpy() & events["kind"].isin(ENGAGEMENT_KINDS)
    assert later.sum() > 50
    past = EventStore(":memory:")
    past.upsert_items(world.items())
    past.upsert_users(world.users())
    past.ingest(events[~later.to_numpy()])
    past.add_edges(world.edge_log())
    trunc = replay_eval.point_in_time_engagement_model(past, cut)
    assert trunc is not None
    assert sorted(full.models_) == sorted(trunc.models_)
    for o, m in full.models_.items():
        np.testing.assert_allclose(m.coef_, trunc.models_[o].coef_, rtol=1e-6, atol=1e-9)
    # and the protocol sees a difference when the past changes (the test can fail)
    early = (t < pd.Timestamp(cut)).to_numpy() & events["kind"].isin(ENGAGEMENT_KINDS)
    other = EventStore(":memory:")
    other.upsert_items(world.items())
    other.upsert_users(world.users())
    other.ingest(events[~(early.to_numpy() & (np.arange(len(events)) % 2 == 0))])
    other.add_edges(world.edge_log())
    changed = replay_eval.point_in_time_engagement_model(other, cut)
    assert changed is not None and not np.allclose(
        full.models_["click"].coef_, changed.models_["click"].coef_)
