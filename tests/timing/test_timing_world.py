"""Time zones in the synthetic world, profiles on local time, zone inference, best time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from feedwise.analytics.besttime import PublishTimeModel, audience_users, best_time
from feedwise.analytics.profiles import UserProfiler
from feedwise.analytics.scope import Scope
from feedwise.analytics.timezones import ZoneInferer, resolve_zones
from feedwise.datasets.synthetic import synthetic_social
from feedwise.datasets.synthetic_time import Timing
from feedwise.errors import ConfigError, DataError, NotFittedError
from feedwise.localtime import utc_offset_hours
from feedwise.store import EventStore


@pytest.fixture(scope="module")
def world():
    w = synthetic_social(n_users=500, n_posts=2400, n_days=14, n_topics=4, n_campaigns=2,
                         seed=5, timing=Timing(publish_effect=0.8))
    store = EventStore(":memory:")
    w.load_into(store)
    scope = Scope(store, w.truth["start"], w.truth["end"], k=10)
    yield w, store, scope
    scope.close()
    store.close()


def test_world_has_zones_hidden_ones_and_truth(world):
    w, _, _ = world
    given = w.users["timezone"]
    assert given.isna().mean() == pytest.approx(0.25, abs=0.08)
    assert set(given.dropna()) <= set(Timing().zones)
    assert w.truth["publish_effect"].shape == (4, 24)
    assert w.truth["publish_clock"] == "America/New_York"


def test_untimed_world_is_unchanged():
    a = synthetic_social(n_users=50, n_posts=100, n_days=2, seed=9)
    b = synthetic_social(n_users=50, n_posts=100, n_days=2, seed=9)
    assert a.name == b.name and a.users["timezone"].isna().all()
    assert "publish_effect" not in a.truth
    pd.testing.assert_frame_equal(a.events, b.events)


def test_profiles_are_on_local_time_and_say_which_clock(world):
    w, _, scope = world
    p = UserProfiler().fit(scope).profiles_.set_index("user_id")
    truth = pd.DataFrame({"peak": w.truth["user_peak_local"],
                          "given": w.truth["user_timezone_given"]}, index=w.users["user_id"])
    p = p.join(truth)
    assert set(p["timezone_source"]) <= {"given", "inferred", "fallback"}
    assert (p.loc[p["given"], "timezone_source"] == "given").all()
    assert (p.loc[p["timezone_source"] == "given", "timezone_confidence"] == 1.0).all()
    m = p["events"] >= 30
    planted = np.floor(p["peak"]).astype(int) % 24
    d = np.abs((p["peak_hour"] - planted + 12) % 24 - 12)
    assert (d[m & p["given"]] <= 1).mean() >= 0.85
    # the UTC clock would put the same users' peaks hours away
    u = UserProfiler(clock="utc").fit(scope).profiles_.set_index("user_id").join(truth)
    du = np.abs((u["peak_hour"] - planted + 12) % 24 - 12)
    assert (du[m] <= 1).mean() < (d[m] <= 1).mean() - 0.2
    assert (u["timezone_source"] == "fallback").all()


def test_hidden_zones_are_inferred_better_than_chance(world):
    w, _, scope = world
    p = UserProfiler().fit(scope).profiles_.set_index("user_id")
    hidden = ~pd.Series(w.truth["user_timezone_given"], index=w.users["user_id"])
    zones = pd.Series(w.truth["user_timezone"], index=w.users["user_id"])
    h = p.index[hidden.reindex(p.index).to_numpy()]
    assert (p.loc[h, "timezone_source"] == "inferred").all()
    at = w.truth["end"]
    true_off = zones[h].map(lambda z: utc_offset_hours(z, at))
    est_off = p.loc[h, "timezone"].map(lambda z: utc_offset_hours(z, at))
    acc = (np.abs(true_off - est_off) <= 0.5).mean()
    assert acc >= 0.5  # six zones: chance (the largest zone) is 0.40
    conf = p.loc[h, "timezone_confidence"]
    right = np.abs(true_off - est_off) <= 0.5
    assert conf[right].mean() > conf[~right].mean()  # the confidence means something


def test_inference_needs_a_prior_and_says_so():
    users = pd.Index(["a", "b"])
    given = pd.Series({"a": "Europe/Paris", "b": "Nowhere/Land"})
    res = resolve_zones(users, given, pd.Series(["a", "b"]),
                        pd.Series(pd.to_datetime(["2025-01-01T10:00Z", "2025-01-01T11:00Z"])))
    assert res.loc["a", "source"] == "given"
    assert res.loc["b", "source"] == "fallback" and res.loc["b", "timezone"] == "UTC"
    assert "unknown zone 'Nowhere/Land'" in res.loc["b", "reason"]
    assert "needed to learn" in res.loc["b", "reason"]
    with pytest.raises(NotFittedError):
        ZoneInferer().infer(np.ones((1, 24)))
    with pytest.raises(ConfigError, match="known zone"):
        ZoneInferer(min_known=5).fit(np.ones((2, 24)), ["UTC", "UTC"])


def test_best_time_recovers_the_planted_publish_effect(world):
    w, _, scope = world
    adj, raw = [], []
    for t, tags in enumerate(w.truth["topic_tags"]):
        bt = best_time(scope, tag=tags[0])
        truth = w.truth["publish_effect"][t]
        adj.append(spearmanr(bt.hours["log_effect"], truth)[0])
        raw.append(spearmanr(np.log(bt.hours["raw_mean"] + 1e-9), truth)[0])
        assert (bt.hours["lo"] <= bt.hours["effect"]).all()
        assert (bt.hours["effect"] <= bt.hours["hi"]).all()
        assert bt.clock == "America/New_York" and "America/New_York time" in bt.recommendation
        assert bt.recommendation.startswith(f"post {tags[0]} on ")
    assert np.mean(adj) >= 0.8, (adj, raw)
    assert len(bt.grid) == 168 and (bt.grid["expected_lo"] <= bt.grid["expected_hi"]).all()


def test_best_time_audiences_and_errors(world):
    w, _, scope = world
    follows = w.users["attributes"].str.contains('"a00000"')
    ids = audience_users(scope, "followers:a00000")
    assert len(ids) >= follows.sum() > 0
    with pytest.raises(ConfigError, match="followers"):
        audience_users(scope, "friends-of:x")
    with pytest.raises(DataError, match="clock"):
        best_time(scope, clock="Nowhere/Land")
    with pytest.raises(DataError, match="at least 30 posts"):
        best_time(scope, tag="#no-such-tag")
    with pytest.raises(NotFittedError):
        PublishTimeModel().hour_effects()


def test_report_section_names_the_clock(world):
    from feedwise.report.timing import render_timing_html, timing_section

    _, _, scope = world
    sec = timing_section(scope)
    out = render_timing_html(sec)
    assert "America/New_York clock" in out and sec["recommendation"] in out
