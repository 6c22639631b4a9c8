"""KPIs, sessions, funnels, cohorts, content and campaigns against hand-computed values."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from analytics_tiny import END, START

from feedwise.analytics import campaigns, cohorts, content, funnels, kpis, sessions
from feedwise.analytics.scope import Scope
from feedwise.analytics.sessions import SessionConfig
from feedwise.errors import ConfigError


def test_summary_matches_hand_computed(scope):
    s = kpis.kpi_summary(scope)
    # u4 withdrew consent: only u1, u2, u3, u5 count
    assert s["users"] == 4
    assert s["dau"] == pytest.approx(6 / 7)  # user-days: Jan5 x3, Jan6, Jan7, Jan11
    assert s["wau"] == 4 and s["mau"] == 4
    assert s["stickiness"] == pytest.approx((6 / 7) / 4)
    assert s["impressions"] == 8 and s["ad_impressions"] == 3
    assert s["ctr"] == pytest.approx(2 / 8)
    assert s["engagement_rate"] == pytest.approx(4 / 8)
    for k in ("like", "comment", "share", "save"):
        assert s[f"{k}_rate"] == pytest.approx(1 / 8)
    assert s["hide_rate"] == pytest.approx(1 / 11)
    assert s["report_rate"] == pytest.approx(1 / 11)
    assert s["ad_load"] == pytest.approx(3 / 11)
    assert s["ad_ctr"] == pytest.approx(1 / 3)
    # two CPM-priced ad impressions at bid 2.0 (0.002 each) + one charged 0.01 explicitly
    assert s["revenue"] == pytest.approx(0.014)
    assert s["ecpm"] == pytest.approx(1000 * 0.014 / 3)
    assert s["conv_value"] == pytest.approx(50.0)
    assert s["avg_dwell_s"] == pytest.approx(3.0)


def test_wau_is_the_last_168_hours_of_a_window_that_starts_mid_day(tiny):
    from datetime import timedelta

    # 7.5 days: u5's only event (Jan 5 10:00) is within the last 7 days before END
    with Scope(tiny, START - timedelta(hours=12), END, k=1) as s:
        a = kpis.active_users(s)
    assert a["wau"] == 4 and a["mau"] == 4
    assert a["dau"] == pytest.approx(6 / 8)  # the same 6 user-days over 8 (partial) days


def test_sessions_30_minute_rule(scope):
    df = sessions.sessions(scope)
    assert list(df.groupby("user_id").size()) == [3, 2, 1, 1]
    assert sorted(df["length_s"]) == [0, 60, 120, 300, 420, 600, 600]
    assert df["depth"].sum() == 11
    s = sessions.session_summary(scope)
    assert s["sessions"] == 7
    assert s["avg_length_s"] == pytest.approx(300.0)
    assert s["median_length_s"] == pytest.approx(300.0)
    assert s["avg_depth"] == pytest.approx(11 / 7)
    assert s["sessions_per_user"] == pytest.approx(7 / 4)
    # with a 60-minute gap u1's 08:07 -> 09:00 pause no longer splits a session
    assert sessions.session_summary(scope, SessionConfig(gap_minutes=60))["sessions"] == 6


def test_series_per_day(scope):
    df = kpis.kpi_series(scope, "day")
    assert list(df["active_users"]) == [3, 1, 1, 1]
    assert list(df["sessions"]) == [4, 1, 1, 1]
    assert df["revenue"].sum() == pytest.approx(0.014)
    assert df.loc[0, "ctr"] == pytest.approx(2 / 5)
    week = kpis.kpi_series(scope, "week")
    assert len(week) == 1 and week.loc[0, "active_users"] == 4
    with pytest.raises(ConfigError):
        kpis.kpi_series(scope, "fortnight")


def test_change_and_previous_period(tiny):
    with Scope(tiny, START, END, k=1) as cur:
        prev = cur.previous()
        assert prev.end == cur.start
        p = kpis.kpi_summary(prev)
        c = kpis.kpi_summary(cur)
    assert math.isnan(p["ctr"])  # nobody consenting in the week before but u5
    ch = kpis.kpi_change(c, p)
    assert math.isnan(ch["ctr"])
    assert kpis.kpi_change({"x": 3.0}, {"x": 2.0})["x"] == pytest.approx(0.5)


def test_small_groups_are_suppressed(tiny):
    with Scope(tiny, START, END) as s:  # default k = 10 > 4 users
        assert all(math.isnan(v) for v in kpis.kpi_summary(s).values())
        series = kpis.kpi_series(s, "day")
        assert series["suppressed"].all() and series["ctr"].isna().all()
        assert campaigns.campaign_results(s)["suppressed"].all()
        assert content.top_posts(s).empty
        f = funnels.funnel(s)
        assert f.loc[f["suppressed"], "pairs"].isna().all()
        assert (f.loc[~f["suppressed"], "pairs"] == 0).all()  # zero users describe nobody


def test_bad_windows_raise(tiny):
    with pytest.raises(ConfigError):
        Scope(tiny, END, START)
    with pytest.raises(ConfigError):
        Scope(tiny, START, END, k=0)


def test_materialized_scope_gives_same_numbers(tiny):
    with Scope(tiny, START, END, k=1, materialize=True) as s:
        assert kpis.kpi_summary(s)["revenue"] == pytest.approx(0.014)


def test_funnel_per_surface(scope):
    df = funnels.funnel(scope)
    home = df[df["surface"] == "home"].set_index("step")
    assert list(home["pairs"]) == [7, 3, 2, 1]
    assert list(home["users"]) == [3, 2, 2, 1]
    assert list(home["rate_from_prev"]) == pytest.approx([1, 3 / 7, 2 / 3, 1 / 2])
    assert home.loc["purchase", "rate_from_start"] == pytest.approx(1 / 7)
    explore = df[df["surface"] == "explore"].set_index("step")
    assert list(explore["pairs"]) == [1, 0, 0, 0]
    assert set(df["surface"]) == {"home", "explore"}  # u1's later 'feed' impression: p2 is home


def test_retention(tiny):
    with Scope(tiny, START, END, k=1) as s:
        d = cohorts.day_retention(s)
        assert len(d) == 1 and d.loc[0, "users"] == 3  # u5 was first seen in December
        assert d.loc[0, "d1"] == pytest.approx(1 / 3)  # only u1 came back the next day
        assert math.isnan(d.loc[0, "d7"])  # u3's day 7 lies after the window
    with Scope(tiny, START, datetime(2026, 1, 19, tzinfo=UTC), k=1) as s:
        d = cohorts.day_retention(s)
        assert d.loc[0, "d7"] == 0.0
        w = cohorts.week_retention(s)
        assert w.loc[0, "week0"] == 1.0
        assert w.loc[0, "week1"] == pytest.approx(1 / 3)  # u1 on Jan 13


def test_content(scope):
    posts = content.top_posts(scope)
    assert list(posts["item_id"]) == ["p1", "p2"]  # the ad a1 is not a post
    assert list(posts["engagements"]) == [4, 2]
    assert list(posts["engagement_rate"]) == pytest.approx([1.0, 0.5])
    tags = content.top_tags(scope).set_index("tag")
    assert tags.loc["video", "engagements"] == 4 and tags.loc["news", "engagements"] == 2
    authors = content.top_authors(scope)
    assert list(authors["author_id"]) == ["A", "B"]
    bt = content.best_time(scope)
    assert bt.shape == (7, 24)
    assert bt.loc["Sun", 18] == pytest.approx(1.0)  # p1 was posted Sunday 18:30
    assert bt.loc["Mon", 7] == pytest.approx(0.5)
    assert bt.notna().sum().sum() == 2
    tr = content.trending(scope, recent_days=1)
    assert list(tr["tag"]) == ["news"]  # saved on the last day; video had no recent users
    assert tr.loc[0, "lift"] == pytest.approx(2 / (1 + 1 / 6))
    items = content.trending(scope, recent_days=1, by="item")
    assert list(items["item"]) == ["p2"] and items.loc[0, "recent_per_day"] == 1.0
    heat = content.activity_heatmap(scope)
    assert heat.loc["Mon", 8] == 1 and heat.to_numpy().sum() == 7


def test_trending_rejects_bad_arguments(scope):
    with pytest.raises(ConfigError, match="by"):
        content.trending(scope, by="items")  # would come back labelled "items" as posts
    with pytest.raises(ConfigError, match="recent_days"):
        content.trending(scope, recent_days=0)  # would silently come back empty


def test_campaigns(scope):
    r = campaigns.campaign_results(scope).iloc[0]
    assert r["campaign_id"] == "c1" and r["name"] == "Winter sale"
    assert (r["impressions"], r["reach"], r["clicks"], r["conversions"]) == (3, 2, 1, 1)
    assert r["spend"] == pytest.approx(0.014)
    assert r["frequency"] == pytest.approx(1.5)
    assert r["ctr"] == pytest.approx(1 / 3)
    assert r["cpm"] == pytest.approx(1000 * 0.014 / 3)
    assert r["cpc"] == pytest.approx(0.014)
    assert r["cvr"] == pytest.approx(1.0)
    assert r["roas"] == pytest.approx(50 / 0.014)
    assert r["planned"] == pytest.approx(7.0)  # daily budget 1.0 x 7 days in flight
    assert r["pacing"] == pytest.approx(0.002)
    f = campaigns.frequency_distribution(scope)
    assert f.loc["c1", "1"] == 1 and f.loc["c1", "2"] == 1 and f.loc["c1", "3"] == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sessions_match_a_plain_python_cut(store, seed):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n = 400
    gaps = rng.choice([5, 60, 600, 1700, 1900, 7200], size=n)  # around the 30-min rule
    users = rng.integers(0, 6, size=n)
    ts = pd.Timestamp(START) + pd.to_timedelta(np.cumsum(gaps), unit="s")
    kinds = rng.choice(["impression", "ad_impression", "click", "like"], size=n)
    store.add_events([{"event_id": f"x{i}", "user_id": f"u{users[i]}", "item_id": "p",
                       "kind": kinds[i], "ts": ts[i].isoformat()} for i in range(n)])
    with Scope(store, START, START + pd.Timedelta(days=30), k=1) as s:
        got = sessions.sessions(s)
    rows = []
    df = pd.DataFrame({"u": [f"u{x}" for x in users], "ts": ts, "kind": kinds})
    for u, g in df.sort_values(["u", "ts"]).groupby("u"):
        new = g["ts"].diff().dt.total_seconds().fillna(1e9) > 1800
        for _, sg in g.groupby(new.cumsum()):
            rows.append((u, sg["ts"].min(), (sg["ts"].max() - sg["ts"].min()).total_seconds(),
                         len(sg), int(sg["kind"].isin(["impression", "ad_impression"]).sum())))
    want = pd.DataFrame(rows, columns=["user_id", "start", "length_s", "n_events", "depth"])
    assert len(got) == len(want)
    assert list(got["user_id"]) == list(want["user_id"])
    assert list(got["n_events"]) == list(want["n_events"])
    assert list(got["depth"]) == list(want["depth"])
    assert np.allclose(got["length_s"], want["length_s"])
    assert (got.groupby("user_id")["session_no"].apply(lambda x: list(x) == list(
        range(1, len(x) + 1)))).all()
