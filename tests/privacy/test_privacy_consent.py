"""Each consent flag, through the feed engine and analytics; changes apply next request."""

from __future__ import annotations

from datetime import timedelta

import pytest
from privacy_world import NOW, TARGET, make_world

from feedwise.analytics.scope import Scope
from feedwise.feed.config import FeedConfig
from feedwise.feed.engine import FeedEngine
from feedwise.feed.types import FeedRequest
from feedwise.models.itemknn import ItemKNN
from feedwise.privacy import apply_consent, get_consent, set_consent

NON_PERSONAL = {"trending", "fresh"}


@pytest.fixture()
def world(tmp_path):
    w = make_world(tmp_path)
    yield w
    w.store.close()


def _engine(w) -> FeedEngine:
    model = ItemKNN().fit(w.store.interactions())
    return FeedEngine.from_store(w.store, model, FeedConfig(ux_lambda=0.0, max_ad_load=0.3))


def _organic(feed):
    return [s for s in feed.slots if s.kind == "organic"]


def _ads(feed):
    return [s for s in feed.slots if s.kind == "ad"]


def _feeds(engine, key, k=4):
    return [engine.compose(FeedRequest(user_id=key, n=12, now=NOW + timedelta(minutes=m)))
            for m in range(k)]


def test_consent_record_has_time_source_and_log(world):
    w = world
    assert get_consent(w.store, TARGET).personalization  # default granted
    rec = set_consent(w.store, TARGET, ads=False, source="banner", now=NOW)
    assert (rec.personalization, rec.ads, rec.analytics) == (True, False, True)
    rec = set_consent(w.store, TARGET, analytics=False, source="settings",
                      now=NOW + timedelta(hours=1))
    got = get_consent(w.store, TARGET)
    assert (got.ads, got.analytics, got.source) == (False, False, "settings")
    assert got.updated_at == NOW + timedelta(hours=1)
    log = w.store.query("SELECT flag, granted, source FROM consent_log WHERE user_id = ? "
                        "ORDER BY recorded_at", [w.target_key])
    assert log.values.tolist() == [["ads", False, "banner"], ["analytics", False, "settings"]]
    with pytest.raises(Exception, match="source"):
        set_consent(w.store, TARGET, ads=True, source="", now=NOW)


def test_personalization_flag_through_engine(world):
    w = world
    key = w.target_key
    feeds = _feeds(_engine(w), key)
    personal = {s.source for f in feeds for s in _organic(f)} - NON_PERSONAL
    assert personal  # with consent the feed uses personal sources

    set_consent(w.store, TARGET, personalization=False, source="settings", now=NOW)
    feeds = _feeds(_engine(w), key)
    slots = [s for f in feeds for s in _organic(f)]
    assert slots and {s.source for s in slots} <= NON_PERSONAL
    assert not any(r.startswith("matches #") for s in slots for r in s.reasons)


def test_ads_flag_through_engine(world):
    w = world
    key = w.target_key
    ads = [s.campaign_id for f in _feeds(_engine(w), key) for s in _ads(f)]
    assert "targeted" in ads  # the high-bid targeted campaign wins with consent

    set_consent(w.store, TARGET, ads=False, source="settings", now=NOW)
    ads = [s for f in _feeds(_engine(w), key) for s in _ads(f)]
    assert ads and {s.campaign_id for s in ads} == {"contextual"}
    assert all(s.reasons == ("sponsored",) for s in ads)


def test_consent_change_applies_to_running_engine_next_request(world):
    w = world
    key = w.target_key
    engine = _engine(w)
    assert "targeted" in [s.campaign_id for f in _feeds(engine, key, 2) for s in _ads(f)]
    rec = set_consent(w.store, TARGET, ads=False, personalization=False, source="api", now=NOW)
    assert apply_consent(engine, key, rec)
    feeds = [engine.compose(FeedRequest(user_id=key, n=12, now=NOW + timedelta(hours=h)))
             for h in range(1, 4)]
    assert {s.campaign_id for f in feeds for s in _ads(f)} <= {"contextual"}
    assert {s.source for f in feeds for s in _organic(f)} <= NON_PERSONAL


def test_analytics_flag_excludes_events_from_reports(world):
    w = world
    q = "SELECT count(*) FROM ev WHERE user_id = ?"
    with Scope(w.store, NOW - timedelta(days=60), NOW + timedelta(days=1)) as s:
        assert s.scalar(q, [w.target_key]) == w.target_events
        total = s.scalar("SELECT count(*) FROM ev")
    set_consent(w.store, TARGET, analytics=False, source="settings", now=NOW)
    with Scope(w.store, NOW - timedelta(days=60), NOW + timedelta(days=1)) as s:
        assert s.scalar(q, [w.target_key]) == 0
        assert s.scalar("SELECT count(*) FROM ev") == total - w.target_events
