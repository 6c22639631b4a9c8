"""Ad load holds on the feed the user sees, not on the slots requested.

When organic posts run out (a tiny catalogue, an author cap, hidden posts) the feed is
shorter than ``n``; ads must not fill the slots no post was left for.
"""

from __future__ import annotations

import pytest
from feed_world import NOW, build_engine, make_world

from feedwise.feed import Campaign, Creative, FeedConfig, FeedRequest
from feedwise.feed.adstate import AdState
from feedwise.feed.campaigns import CampaignBook
from feedwise.feed.config import AdConfig
from feedwise.feed.guardrails import AdLoadGuardrail, GuardrailState
from feedwise.feed.types import Feed, Slot


def _campaigns(k: int = 6) -> list[Campaign]:
    return [Campaign(campaign_id=f"c{i}", advertiser_id=f"adv{i}", bid=10.0 - i,
                     creatives=[Creative(item_id=f"cr{i}")]) for i in range(k)]


def _engine(n_items: int, load: float = 0.2, gap: int = 0, first: int = 0, **cfg):
    world = make_world(0, n_items=n_items, n_campaigns=0)
    world["campaigns"] = _campaigns()
    world["users"]["consent_ads"] = True
    config = FeedConfig(ux_lambda=0.0, max_ad_load=load, first_ad_slot=first,
                        min_ad_gap=gap, ads=AdConfig(pacing=False, reserve_ecpm=0.0), **cfg)
    return build_engine(world, config)


def _share(feed: Feed) -> float:
    return len(feed.ad_slots) / len(feed) if len(feed) else 0.0


@pytest.mark.parametrize("load", [0.1, 0.2, 0.25, 1 / 3, 0.5, 0.6])
@pytest.mark.parametrize("n_items", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("gap", [0, 1])
def test_tiny_catalogue_keeps_the_ad_share_of_the_composed_feed(load, n_items, gap):
    engine = _engine(n_items, load=load, gap=gap)
    feed = engine.compose(FeedRequest("u1", n=10, now=NOW), record=False)
    n_org = len(feed) - len(feed.ad_slots)
    assert 0 < n_org <= n_items
    assert _share(feed) <= load + 1e-9, [s.kind for s in feed.slots]
    assert engine.check(feed) == []
    # and as many ads as that share allows are still shown (λ = 0, gap permitting)
    if gap == 0:
        assert len(feed.ad_slots) == min(engine.config.max_ads(10),
                                         int(load * n_org / (1 - load) + 1e-9))


def test_review_reproduction_three_posts_ten_slots():
    # λ=0, n=10, load 0.2, gap 0, 3 posts: was [organic, organic, ad, ad, organic] (40 %)
    engine = _engine(3, load=0.2, first=2)
    feed = engine.compose(FeedRequest("u1", n=10, now=NOW), record=False)
    assert [s.kind for s in feed.slots].count("organic") == 3
    assert feed.ad_slots == []  # 1 ad in 4 slots would be 25 % > 20 %
    engine5 = _engine(4, load=0.2, first=2)
    feed5 = engine5.compose(FeedRequest("u1", n=10, now=NOW), record=False)
    assert len(feed5) == 5 and len(feed5.ad_slots) == 1  # 1 ad in 5 slots: exactly 20 %


def test_all_posts_hidden_gives_no_ads():
    engine = _engine(3, load=0.5)
    for k in range(engine.catalog.n):
        engine.record_feedback("u1", str(engine.catalog.item_ids[k]), "hide", NOW)
    feed = engine.compose(FeedRequest("u1", n=10, now=NOW), record=False)
    assert feed.ad_slots == [] and len(feed) == 0


def test_author_cap_shortens_the_feed_and_the_ads_with_it():
    world = make_world(1, n_items=60, n_campaigns=0, n_authors=2)
    world["campaigns"] = _campaigns()
    world["users"]["consent_ads"] = True
    cfg = FeedConfig(ux_lambda=0.0, max_ad_load=0.25, first_ad_slot=0, min_ad_gap=0,
                     ads=AdConfig(pacing=False, reserve_ecpm=0.0))
    cfg.rerank.max_per_author = 1
    engine = build_engine(world, cfg)
    feed = engine.compose(FeedRequest("u1", n=20, now=NOW), record=False)
    assert len(feed) - len(feed.ad_slots) == 2
    assert _share(feed) <= 0.25 and engine.check(feed) == []


def test_enough_posts_keeps_the_old_cap_of_the_requested_slots():
    engine = _engine(80, load=0.2)
    feed = engine.compose(FeedRequest("u1", n=10, now=NOW), record=False)
    assert len(feed) == 10 and feed.ad_slots == [0, 1]  # floor(0.2 × 10), greedy at λ=0


def test_full_ad_load_allows_ads_only():
    # max_ad_load = 1 puts no limit on the share (the config's explicit choice)
    assert FeedConfig(max_ad_load=1.0).max_ads_shown(10, 0) == 10


@pytest.mark.parametrize("load", [0.0, 0.1, 0.2, 0.25, 0.3, 1 / 3, 0.4, 0.5, 0.6, 0.75,
                                  0.9, 0.99, 1.0])
def test_max_ads_shown_is_the_largest_count_the_guardrail_accepts(load):
    cfg = FeedConfig(max_ad_load=load)
    for n in range(1, 41):
        for organic in range(0, n + 1):
            a = cfg.max_ads_shown(n, organic)
            assert 0 <= a <= cfg.max_ads(n)
            if organic == n:
                assert a == cfg.max_ads(n)  # enough posts: unchanged
            # a ads and `organic` posts (or n slots when the posts fill them) pass ...
            assert a <= cfg.max_ads(min(n, a + organic))
            # ... and one more would not
            if a < cfg.max_ads(n):
                assert a + 1 > cfg.max_ads(min(n, a + 1 + organic))


def _slot(kind: str, i: int) -> Slot:
    if kind == "ad":
        return Slot(item_id=f"cr{i}", kind="ad", campaign_id=f"c{i}", source="ad",
                    reasons=("sponsored",))
    return Slot(item_id=f"p{i}", source="trending", reasons=("r",))


def test_guardrail_measures_the_composed_feed():
    book = CampaignBook(_campaigns())
    state = GuardrailState(FeedConfig(max_ad_load=0.2), book, AdState(book))
    kinds = ["organic", "organic", "ad", "ad", "organic"]
    short = Feed(FeedRequest("u", n=10, now=NOW),
                 tuple(_slot(k, i) for i, k in enumerate(kinds)))
    got = AdLoadGuardrail().check(short, state)
    assert [v.rule for v in got] == ["ad_load"] and "5 slots" in got[0].message
    ads_only = Feed(FeedRequest("u", n=10, now=NOW), (_slot("ad", 0),))
    assert AdLoadGuardrail().check(ads_only, state) != []
    ok = Feed(FeedRequest("u", n=10, now=NOW),
              tuple(_slot(k, i) for i, k in enumerate(kinds[:2] + ["ad"] + kinds[:2])))
    assert AdLoadGuardrail().check(ok, state) == []
