"""Each guardrail catches the violation it is written for (so the property tests can fail)."""

from __future__ import annotations

from datetime import timedelta

from feed_world import NOW

from feedwise.feed import Campaign, Creative, FeedConfig, QuietHours
from feedwise.feed.adstate import AdImpression, AdState
from feedwise.feed.campaigns import CampaignBook
from feedwise.feed.guardrails import GuardrailState, check_all
from feedwise.feed.types import Feed, FeedRequest, Slot

BOOK = CampaignBook([
    Campaign(campaign_id="c1", advertiser_id="a", bid=5, target_tags=["t"],
             creatives=[Creative(item_id="ad1")], frequency_caps=[(1, 3600)],
             daily_budget=1.0),
    Campaign(campaign_id="c2", advertiser_id="a", bid=5, creatives=[Creative(item_id="ad2")],
             end_at=NOW - timedelta(hours=1)),
])


def organic(i: int, source: str = "trending") -> Slot:
    return Slot(item_id=f"p{i}", source=source, reasons=("r",))


def ad(cid: str) -> Slot:
    return Slot(item_id=f"ad{cid[-1]}", kind="ad", campaign_id=cid, source="ad",
                reasons=("sponsored",))


def rules(feed: Feed, config: FeedConfig, ads: AdState | None = None, **kw) -> set[str]:
    state = GuardrailState(config, BOOK, ads or AdState(BOOK), personal_sources=frozenset(
        {"recommender"}), **kw)
    return {v.rule for v in check_all(feed, state)}


def test_clean_feed_passes():
    cfg = FeedConfig(first_ad_slot=1, min_ad_gap=1, max_ad_load=0.5)
    feed = Feed(FeedRequest("u", n=4, now=NOW), (organic(0), ad("c1"), organic(1), organic(2)))
    assert rules(feed, cfg) == set()


def test_each_rule_fires():
    cfg = FeedConfig(first_ad_slot=1, min_ad_gap=2, max_ad_load=0.25,
                     quiet_hours=[QuietHours(start=11, end=13)])
    slots = (ad("c1"), ad("c2"), organic(0, "recommender"), organic(0))
    feed = Feed(FeedRequest("u", n=4, now=NOW), slots)
    ads = AdState(BOOK)
    for k in range(2):
        ads.record(AdImpression("u", 0, "ad1", NOW.timestamp() - k, 0.0), 0.0)
    ads.spend_today[0] = 2.0  # beyond the daily budget of 1.0
    got = rules(feed, cfg, ads, consent_ads=False, consent_personalization=False)
    assert got == {"ad_load", "first_ad_slot", "min_ad_gap", "one_ad_per_advertiser",
                   "quiet_hours", "frequency_cap", "budget", "consent", "schedule",
                   "distinct_items"}


def test_author_cap_is_caught():
    cfg = FeedConfig()
    cfg.rerank.max_per_author = 1
    slots = tuple(Slot(item_id=f"p{i}", author_id="x", reasons=("r",)) for i in range(2))
    assert rules(Feed(FeedRequest("u", n=2, now=NOW), slots), cfg) == {"max_per_author"}


def test_bad_propensity_is_caught():
    feed = Feed(FeedRequest("u", n=1, now=NOW), (Slot(item_id="p", propensity=0.0),))
    assert rules(feed, FeedConfig()) == {"propensity"}
