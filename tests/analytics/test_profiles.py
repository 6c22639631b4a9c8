"""Profiles and segments on the tiny hand-made world."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from analytics_tiny import END, START

from feedwise.analytics.profiles import UserProfiler, daypart_of, read_profiles
from feedwise.analytics.scope import Scope
from feedwise.analytics.segments import Segmenter, segment_table
from feedwise.errors import DataError, NotFittedError


def test_profiles_hand_computed(scope):
    p = UserProfiler().fit(scope).profiles_.set_index("user_id")
    assert list(p.index) == ["u1", "u2", "u3", "u5"]  # u4 withdrew consent
    assert p.loc["u1", "engagement_rate"] == pytest.approx(3 / 4)  # click, like, share / 4 imps
    assert p.loc["u2", "engagement_rate"] == pytest.approx(3 / 2)
    # u1 hid the ad one minute after seeing it: 1 hide after ads / 2 ad impressions
    assert p.loc["u1", "ad_sensitivity"] == pytest.approx(0.5)
    assert p.loc["u3", "ad_sensitivity"] == 0.0
    assert dict(p["daypart"]) == {"u1": "morning", "u2": "evening", "u3": "midday",
                                  "u5": "morning"}
    assert p.loc["u2", "peak_hour"] == 20
    hours = np.asarray(p.loc["u1", "active_hours"])
    assert hours.shape == (168,) and hours.sum() == pytest.approx(1.0)
    assert hours[0 * 24 + 8] == pytest.approx(6 / 13)  # Monday 08h: 6 of u1's 13 events
    assert hours[1 * 24 + 20] == pytest.approx(5 / 13)  # Tuesday 20h
    assert dict(p["lifecycle"]) == {"u1": "new", "u2": "new", "u3": "new", "u5": "active"}
    assert list(p["engagement_level"]) == ["medium", "high", "low", "low"]


def test_interest_weights_decay(scope):
    p = UserProfiler(half_life_days=14).fit(scope).profiles_.set_index("user_id")
    got = json.loads(p.loc["u1", "interests"])

    def w(weight: float, ts: str) -> float:
        age = (pd.Timestamp(END) - pd.Timestamp(ts)).total_seconds() / 86400
        return weight * 0.5 ** (age / 14)

    # p1 (video, music): click 1, like 2, dwell 0.5; p2 (news): share 4
    p1 = (w(1, "2026-01-05T08:01Z") + w(2, "2026-01-05T08:02Z") + w(0.5, "2026-01-05T09:10Z"))
    news = w(4, "2026-01-06T20:01Z")
    total = news + 2 * p1
    assert list(got) == ["news", "music", "video"]
    assert got["news"] == pytest.approx(news / total, abs=1e-4)
    assert got["video"] == pytest.approx(p1 / total, abs=1e-4)
    assert json.loads(p.loc["u3", "interests"]) == {}  # a report is no interest


def test_kept_interest_weights_sum_to_one(scope):
    # u1 has three tags; keeping the top two must still give weights that sum to 1
    p = UserProfiler(top_tags=2).fit(scope).profiles_.set_index("user_id")
    got = json.loads(p.loc["u1", "interests"])
    assert list(got) == ["news", "music"]
    assert sum(got.values()) == pytest.approx(1.0, abs=1e-3)


def test_lifecycle_at_risk_and_dormant(tiny):
    with Scope(tiny, START, END, k=1) as s:
        p = UserProfiler().fit(s, now=pd.Timestamp("2026-02-08", tz="UTC")).profiles_
    lc = dict(zip(p["user_id"], p["lifecycle"], strict=True))
    # u2 last seen Jan 11 (28 days before) -> at-risk; the others over 30 days -> dormant
    assert lc == {"u1": "dormant", "u2": "at-risk", "u3": "dormant", "u5": "dormant"}


def test_write_and_read_profiles(tiny):
    with Scope(tiny, START, END, k=1) as s:
        prof = UserProfiler().fit(s)
    with pytest.raises(NotFittedError):
        UserProfiler().write(tiny)
    assert read_profiles(tiny).empty
    assert prof.write(tiny) == 4
    stored = read_profiles(tiny)
    assert list(stored["user_id"]) == ["u1", "u2", "u3", "u5"]
    assert len(stored.loc[0, "active_hours"]) == 168
    assert json.loads(stored.loc[0, "interests"])["news"] > 0
    # u2 withdraws consent: the next write removes the stored profile
    tiny.upsert_users([{"user_id": "u2", "consent": {"analytics": False}}])
    with Scope(tiny, START, END, k=1) as s:
        UserProfiler().fit(s).write(tiny)
    assert "u2" not in set(read_profiles(tiny)["user_id"])


def test_segmenter_contract_and_table(scope):
    prof = UserProfiler().fit(scope).profiles_
    with pytest.raises(NotFittedError):
        Segmenter().predict(prof)
    with pytest.raises(DataError):
        Segmenter(n_clusters=5).fit(prof)  # 4 active users
    seg = Segmenter(n_clusters=2, seed=0).fit(prof)
    assert seg is not None and len(seg.descriptions_) == 2
    prof["segment"] = seg.predict(prof).to_numpy()
    assert set(prof["segment"]) <= {"S1", "S2"}
    tab = segment_table(prof, seg, k=1)
    assert list(tab["kind"]) == ["behaviour"] * 2 + ["lifecycle"] * 4
    assert tab.loc[tab["segment"] == "new", "users"].item() == 3
    small = segment_table(prof, seg, k=10)
    assert small.loc[small["kind"] == "behaviour", "description"].str.startswith(
        "(fewer than 10").all()
    assert math.isnan(small.loc[small["segment"] == "new", "users"].item())


def test_daypart_of():
    assert [daypart_of(h) for h in (0, 6, 11, 17, 22, 23)] == [
        "night", "morning", "midday", "evening", "night", "night"]
