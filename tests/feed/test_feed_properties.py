"""Property tests: no composed feed ever breaks a guardrail; λ trades revenue for UX."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from feed_world import NOW, build_engine, make_world
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedwise.feed import ExplorationConfig, FeedConfig, FeedRequest, QuietHours, RerankConfig
from feedwise.feed.config import AdConfig

configs = st.builds(
    lambda lam, load, first, gap, one, quiet, method, no_consent, pacing, per_author: FeedConfig(
        ux_lambda=lam, max_ad_load=load, first_ad_slot=first, min_ad_gap=gap,
        one_ad_per_advertiser=one, quiet_hours=quiet,
        rerank=RerankConfig(max_per_author=per_author),
        exploration=ExplorationConfig(method=method, epsilon=0.3, top_k=4),
        ads=AdConfig(no_consent=no_consent, pacing=pacing, reserve_ecpm=0.2)),
    lam=st.sampled_from([0.0, 0.001, 0.01, 0.1, 1.0]),
    load=st.floats(0.0, 0.6), first=st.integers(0, 6), gap=st.integers(0, 5),
    one=st.booleans(),
    quiet=st.sampled_from([[], [QuietHours(start=22, end=6)], [QuietHours(start=11, end=13)]]),
    method=st.sampled_from(["none", "epsilon", "softmax"]),
    no_consent=st.sampled_from(["none", "non_targeted"]), pacing=st.booleans(),
    per_author=st.sampled_from([None, 1, 2, 3]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), config=configs, n=st.integers(1, 30),
       n_campaigns=st.integers(0, 12), budget=st.sampled_from([None, 0.01, 0.05, 1.0]),
       steps=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 900)), min_size=1,
                      max_size=12))
def test_no_feed_ever_breaks_a_guardrail(seed, config, n, n_campaigns, budget, steps):
    world = make_world(seed, n_items=60, n_campaigns=n_campaigns, budget=budget,
                       schedules=True)
    engine = build_engine(world, config, seed=seed)
    t = NOW
    for user, dt in steps:  # consecutive requests: caps and budgets carry over
        t = t + timedelta(seconds=dt)
        req = FeedRequest(f"u{user}", n=n, now=t)
        feed = engine.compose(req)
        assert 0 < len(feed) <= n
        assert all(s.reasons for s in feed.slots)
        assert engine.check(feed) == [], engine.check(feed)
        b = engine.book
        assert np.all(engine.state.ads.spend_today <= b.daily_budget + 1e-12)
        assert np.all(engine.state.ads.spend_total <= b.total_budget + 1e-12)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), first=st.integers(0, 3), gap=st.integers(0, 3),
       load=st.sampled_from([0.1, 0.25, 0.5]))
def test_revenue_and_ux_cost_fall_monotonically_as_lambda_rises(seed, first, gap, load):
    world = make_world(seed, n_items=80, n_campaigns=10, budget=None, caps=False)
    requests = [FeedRequest(f"u{u}", n=20, now=NOW + timedelta(minutes=u),
                            context={"seed": u}) for u in range(12)]
    lambdas = [0.0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 1.0, 1e9, float("inf")]
    revenue, cost, n_ads = [], [], []
    for lam in lambdas:
        cfg = FeedConfig(ux_lambda=lam, first_ad_slot=first, min_ad_gap=gap, max_ad_load=load)
        engine = build_engine(world, cfg)
        stats = [engine.compose_with_stats(r, record=False)[1] for r in requests]
        revenue.append(sum(s.revenue for s in stats))
        cost.append(sum(s.ux_cost for s in stats))
        n_ads.append(sum(s.n_ads for s in stats))
    assert all(a >= b - 1e-12 for a, b in zip(revenue, revenue[1:], strict=False)), revenue
    assert all(a >= b - 1e-12 for a, b in zip(cost, cost[1:], strict=False)), cost
    assert all(a >= b for a, b in zip(n_ads, n_ads[1:], strict=False)), n_ads
    assert n_ads[-1] == 0 and n_ads[-2] == 0


def _greedy_positions(n: int, first: int, gap: int, k: int) -> list[int]:
    out, p = [], first
    while p < n and len(out) < k:
        out.append(p)
        p += gap + 1
    return out


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), first=st.integers(0, 5), gap=st.integers(0, 4),
       load=st.sampled_from([0.1, 0.2, 0.5, 1.0]), n=st.integers(5, 25))
def test_lambda_zero_is_revenue_greedy_within_the_hard_rules(seed, first, gap, load, n):
    world = make_world(seed, n_items=80, n_campaigns=10, budget=None, caps=False)
    cfg = FeedConfig(ux_lambda=0.0, first_ad_slot=first, min_ad_gap=gap, max_ad_load=load)
    engine = build_engine(world, cfg)
    for u in range(6):
        req = FeedRequest(f"u{u}", n=n, now=NOW, context={"seed": u})
        ctx = engine.context(req)
        plan = engine.plan_ads(ctx, n, np.random.default_rng(u))
        feed, stats = engine.compose_with_stats(req, record=False)
        k = len(plan) if plan is not None else 0
        expected = _greedy_positions(n, first, gap, min(k, cfg.max_ads(n)))
        # every position the rules allow gets the next-best ad in auction order
        assert feed.ad_slots == expected
        if plan is not None:
            assert [feed.slots[i].campaign_id for i in feed.ad_slots] == [
                engine.book.ids[c] for c in plan.auction.campaigns[:len(expected)]]
            assert stats.revenue == np.float64(plan.auction.revenue[:len(expected)].sum())


def test_huge_lambda_shows_no_ads(world):
    engine = build_engine(world, FeedConfig(ux_lambda=1e12, max_ad_load=0.5, first_ad_slot=0))
    for u in range(10):
        assert engine.compose(FeedRequest(f"u{u}", n=20, now=NOW)).ad_slots == []
    zero = build_engine(world, FeedConfig(ux_lambda=0.0, max_ad_load=0.5, first_ad_slot=0))
    assert sum(len(zero.compose(FeedRequest(f"u{u}", n=20, now=NOW)).ad_slots)
               for u in range(10)) > 0
