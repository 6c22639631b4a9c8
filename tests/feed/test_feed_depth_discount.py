"""``ux_depth_discount``: deeper slots cost less UX, so ads move down and never vanish."""

from __future__ import annotations

from datetime import timedelta

from feed_world import NOW, build_engine, make_world

from feedwise.feed import FeedConfig, FeedRequest


def _ads(engine, requests):
    return [[k for k, s in enumerate(engine.compose(r, record=False).slots) if s.kind == "ad"]
            for r in requests]


def test_depth_discount_zero_is_the_old_rule_and_positive_adds_deep_ads():
    world = make_world(3, n_items=80, n_campaigns=10, budget=None, caps=False)
    reqs = [FeedRequest(f"u{u}", n=20, now=NOW + timedelta(minutes=u), context={"seed": u})
            for u in range(10)]
    base = dict(first_ad_slot=1, min_ad_gap=1, max_ad_load=0.25)
    plain = _ads(build_engine(world, FeedConfig(ux_lambda=0.05, **base)), reqs)
    zero = _ads(build_engine(world, FeedConfig(ux_lambda=0.05, ux_depth_discount=0.0, **base)),
                reqs)
    deep = _ads(build_engine(world, FeedConfig(ux_lambda=0.05, ux_depth_discount=1.0, **base)),
                reqs)
    assert plain == zero
    assert sum(map(len, deep)) >= sum(map(len, plain))
    # the discount only ever lowers the cost, so every feed has at least as many ads
    assert all(len(d) >= len(p) for d, p in zip(deep, plain, strict=True))
    inf = _ads(build_engine(world, FeedConfig(ux_lambda=float("inf"), ux_depth_discount=1.0,
                                              **base)), reqs)
    assert not any(inf)
