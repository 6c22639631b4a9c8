"""The synthetic social-feed generator: shapes, invariants, planted structure, determinism."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from feedwise.datasets import SocialWorld, synthetic_social
from feedwise.datasets.synthetic import _gumbel_topk, _pl_propensities, _window_counts
from feedwise.errors import ConfigError
from feedwise.schema import CAMPAIGN_COLUMNS, EVENT_COLUMNS, EVENT_KINDS, ITEM_COLUMNS, USER_COLUMNS

ARGS = dict(n_users=400, n_authors=60, n_posts=1500, n_days=6, n_topics=10, n_campaigns=6,
            feed_len=20, seed=3)


@pytest.fixture(scope="module")
def world() -> SocialWorld:
    return synthetic_social(**ARGS)


@pytest.fixture(scope="module")
def ev(world: SocialWorld) -> pd.DataFrame:
    return world.events


def test_shapes_and_columns(world: SocialWorld, ev: pd.DataFrame) -> None:
    assert list(ev.columns) == list(EVENT_COLUMNS)
    assert set(ev["kind"]) <= set(EVENT_KINDS)
    assert {"impression", "click", "like", "dwell", "hide", "ad_impression", "ad_click"} <= set(
        ev["kind"])
    assert isinstance(ev["ts"].dtype, pd.DatetimeTZDtype) and str(ev["ts"].dt.tz) == "UTC"
    assert ev["event_id"].is_unique
    assert ev["ts"].is_monotonic_increasing
    assert ev["context"].isna().all()
    assert set(ev["surface"]) == {"home", "explore"}
    assert set(world.items.columns) == set(ITEM_COLUMNS)
    assert list(world.users.columns) == list(USER_COLUMNS)
    assert list(world.campaigns.columns) == list(CAMPAIGN_COLUMNS)
    assert len(world.users) == ARGS["n_users"]
    assert len(world.campaigns) == ARGS["n_campaigns"]
    posts = world.items[world.items["kind"] == "post"]
    ads = world.items[world.items["kind"] == "ad"]
    assert len(posts) == ARGS["n_posts"] and len(ads) >= ARGS["n_campaigns"]
    assert posts["campaign_id"].isna().all() and ads["campaign_id"].notna().all()
    assert set(ads["campaign_id"]) == set(world.campaigns["campaign_id"])
    assert all(isinstance(t, list) and t and all(x.startswith("#") for x in t)
               for t in world.items["tags"])
    assert set(ev["item_id"]) <= set(world.items["item_id"])
    assert set(ev["user_id"]) <= set(world.users["user_id"])
    t = world.truth
    assert t["user_topic"].shape == (ARGS["n_users"], ARGS["n_topics"])
    assert np.allclose(t["user_topic"].sum(axis=1), 1.0)
    assert len(t["post_topic"]) == ARGS["n_posts"] and len(t["user_rhythm"]) == ARGS["n_users"]
    assert len(t["topic_names"]) == ARGS["n_topics"]
    # posts carry their topic's main hashtag
    main = np.array([t["topic_tags"][k][0] for k in t["post_topic"]])
    assert all(m in tags for m, tags in zip(main, posts["tags"], strict=True))


def test_propensities_and_positions(ev: pd.DataFrame) -> None:
    shown = ev["kind"].isin(["impression", "ad_impression"])
    p = ev.loc[shown, "propensity"]
    assert p.notna().all() and (p > 0).all() and (p <= 1).all()
    assert ev.loc[~shown, "propensity"].isna().all()
    assert ev["position"].between(0, ARGS["feed_len"] - 1).all()
    slots = ev[shown]
    assert not slots.duplicated(["session_id", "position"]).any()
    per_session = slots.groupby("session_id").size()
    assert per_session.max() <= ARGS["feed_len"]
    assert (per_session == ARGS["feed_len"]).mean() > 0.95


def test_responses_follow_what_was_shown(ev: pd.DataFrame) -> None:
    key = ["session_id", "item_id", "position"]
    imp = ev[ev["kind"] == "impression"][key]
    ad_imp = ev[ev["kind"] == "ad_impression"][key]
    clicks = ev[ev["kind"] == "click"][key]

    def within(sub: pd.DataFrame, ref: pd.DataFrame) -> bool:
        m = sub.merge(ref.drop_duplicates(), on=key, how="left", indicator=True)
        return bool((m["_merge"] == "both").all())

    for kind in ("click", "dwell"):
        assert within(ev[ev["kind"] == kind][key], imp)
    for kind in ("like", "comment", "share", "save"):
        assert within(ev[ev["kind"] == kind][key], clicks)
    assert within(ev[ev["kind"] == "ad_click"][key], ad_imp)
    assert within(ev[ev["kind"] == "conversion"][key], ev[ev["kind"] == "ad_click"][key])
    assert within(ev[ev["kind"] == "hide"][key], pd.concat([imp, ad_imp]))
    assert within(ev[ev["kind"] == "report"][key], ev[ev["kind"] == "hide"][key])
    # responses come after their impression
    first = ev[ev["kind"].isin(["impression", "ad_impression"])].set_index(key)["ts"]
    resp = ev[~ev["kind"].isin(["impression", "ad_impression"])]
    assert (resp["ts"].to_numpy() >= first.loc[pd.MultiIndex.from_frame(resp[key])].to_numpy()
            ).all()
    dw = ev["kind"] == "dwell"
    assert ev.loc[dw, "dwell_ms"].notna().all() and (ev.loc[dw, "dwell_ms"] > 0).all()
    assert ev.loc[~dw, "dwell_ms"].isna().all()
    assert (ev["kind"] == "dwell").sum() == (ev["kind"] == "click").sum()


def test_items_exist_before_they_are_shown(world: SocialWorld, ev: pd.DataFrame) -> None:
    imp = ev[ev["kind"] == "impression"]
    created = imp["item_id"].map(world.items.set_index("item_id")["created_at"])
    assert (imp["ts"] >= created).all()
    # feeds are fresh: most impressions are of posts under three days old
    age_days = (imp["ts"] - created).dt.total_seconds() / 86400
    assert age_days.quantile(0.95) <= 3.01


def test_planted_rhythms(world: SocialWorld, ev: pd.DataFrame) -> None:
    start = ev.groupby("session_id").agg(ts=("ts", "min"), user_id=("user_id", "first"))
    rhythm = dict(zip(world.users["user_id"], world.truth["user_rhythm"], strict=True))
    start["rhythm"] = start["user_id"].map(rhythm)
    start["hour"] = start["ts"].dt.hour
    evening = start.groupby("rhythm")["hour"].apply(lambda h: h.between(18, 23).mean())
    assert evening["evening"] > 0.6
    assert evening.idxmax() == "evening"
    assert evening["evening"] > 2 * evening.drop("evening").max()
    morning = start.groupby("rhythm")["hour"].apply(lambda h: h.between(6, 10).mean())
    assert morning.idxmax() == "morning"
    share = (world.truth["user_rhythm"] == "evening").mean()
    assert 0.2 < share < 0.4


def test_behaviour_follows_affinity(world: SocialWorld, ev: pd.DataFrame) -> None:
    t = world.truth
    uix = {u: i for i, u in enumerate(world.users["user_id"])}
    pix = {p: i for i, p in enumerate(world.items["item_id"][: ARGS["n_posts"]])}
    aff = t["user_topic"] / t["user_topic"].max(axis=1, keepdims=True)

    def mean_aff(kind: str) -> float:
        sub = ev[(ev["kind"] == kind) & ev["item_id"].str.startswith("p")]
        return float(aff[sub["user_id"].map(uix), t["post_topic"][sub["item_id"].map(pix)]]
                     .mean())

    assert mean_aff("click") > mean_aff("impression") + 0.1
    assert mean_aff("hide") < mean_aff("impression")
    imp = ev[ev["kind"] == "impression"]
    clk = ev[ev["kind"] == "click"]
    ctr = clk.groupby("position").size() / imp.groupby("position").size()
    assert ctr.loc[0] > 2 * ctr.loc[ARGS["feed_len"] - 1]  # position bias
    assert 0.01 < len(clk) / len(imp) < 0.2


def test_consent_and_ads(world: SocialWorld, ev: pd.DataFrame) -> None:
    users = world.users.set_index("user_id")
    for col in ("consent_personalization", "consent_ads", "consent_analytics"):
        assert users[col].dtype == bool
        assert 0.9 < users[col].mean() < 1.0
    ads = ev[ev["kind"] == "ad_impression"]
    assert users.loc[ads["user_id"].unique(), "consent_ads"].all()
    assert set(ads["position"]) <= set(world.truth["ad_positions"].tolist())
    attrs = [json.loads(a) for a in world.users["attributes"]]
    assert all({"interests", "follows"} <= set(a) for a in attrs)
    assert np.mean([bool(a["interests"]) for a in attrs]) > 0.7
    camps = world.campaigns.set_index("campaign_id")
    assert set(camps["bid_model"]) <= {"cpm", "cpc"}
    item_camp = world.items.set_index("item_id")["campaign_id"]
    ads = ads.assign(campaign_id=ads["item_id"].map(item_camp))
    # ad-impression value is the CPM price, ad-click value the CPC price
    cpm = ads["campaign_id"].map(camps["bid_model"]) == "cpm"
    assert np.allclose(ads.loc[cpm, "value"], ads.loc[cpm, "campaign_id"].map(camps["bid"]) / 1000)
    assert ads.loc[~cpm, "value"].isna().all()
    # shown only in flight, never over a frequency cap, never over budget
    assert (ads["ts"] >= ads["campaign_id"].map(camps["start_at"])).all()
    assert (ads["ts"] < ads["campaign_id"].map(camps["end_at"])).all()
    for cid, g in ads.groupby("campaign_id"):
        caps = json.loads(camps.loc[cid, "frequency_caps"])
        assert caps and all(len(c) == 2 for c in caps)
        secs = (g["ts"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
        users_c = g["user_id"].to_numpy()
        for max_n, window in caps:
            for u in np.unique(users_c):
                s = np.sort(secs[users_c == u])
                in_window = np.searchsorted(s, s, side="right") - np.searchsorted(
                    s, s - window, side="right")
                assert in_window.max() <= max_n, (cid, u, max_n, window)
    paid = ev[ev["kind"].isin(["ad_impression", "ad_click"])]
    spend = paid.assign(c=paid["item_id"].map(item_camp))
    total = spend.groupby("c")["value"].sum()
    assert (total <= camps.loc[total.index, "total_budget"] + 1e-9).all()
    spec = json.loads(camps["spec"].iloc[0])
    assert spec["campaign_id"] == camps.index[0] and spec["creatives"]


def test_campaign_spec_is_a_feed_campaign(world: SocialWorld) -> None:
    ads = pytest.importorskip("feedwise.feed.campaigns")
    campaigns = ads.campaigns_from_frame(world.campaigns)
    assert len(campaigns) == ARGS["n_campaigns"]
    assert all(c.frequency_caps for c in campaigns)


def test_determinism(world: SocialWorld) -> None:
    again = synthetic_social(**ARGS)
    pd.testing.assert_frame_equal(world.events, again.events)
    pd.testing.assert_frame_equal(world.items, again.items)
    pd.testing.assert_frame_equal(world.users, again.users)
    pd.testing.assert_frame_equal(world.campaigns, again.campaigns)
    assert np.array_equal(world.truth["user_topic"], again.truth["user_topic"])
    other = synthetic_social(**{**ARGS, "seed": 4, "n_days": 2})
    assert not set(other.events["event_id"]) & set(world.events["event_id"])
    assert not np.array_equal(other.truth["user_topic"], world.truth["user_topic"])


def test_load_into_store(store) -> None:
    w = synthetic_social(n_users=60, n_authors=10, n_posts=200, n_days=2, n_campaigns=3, seed=1)
    out = w.load_into(store)
    assert out["events"] == len(w.events) and out["rejected"] == 0
    assert out["items"] == len(w.items) and out["users"] == 60 and out["campaigns"] == 3
    assert store.count_events() == len(w.events)
    again = w.load_into(store)
    assert again["events"] == 0 and again["duplicates"] == len(w.events)
    stored = store.campaigns()
    assert list(stored.sort_values("campaign_id")["target_tags"].iloc[0]) == \
        list(w.campaigns["target_tags"].iloc[0])
    inter = store.interactions()
    assert inter.n_users > 0 and inter.negatives is not None


def test_small_and_degenerate_worlds() -> None:
    w = synthetic_social(n_users=5, n_authors=1, n_posts=3, n_days=1, n_topics=25,
                         n_campaigns=0, feed_len=5, seed=0)
    assert not (w.events["kind"] == "ad_impression").any()
    shown = w.events[w.events["kind"] == "impression"]
    assert not shown.duplicated(["session_id", "item_id"]).any()  # never twice in one feed
    assert len(w.truth["topic_names"]) == 25
    with pytest.raises(ConfigError):
        synthetic_social(n_users=0)


def test_plackett_luce_propensities_are_exact() -> None:
    rng = np.random.default_rng(0)
    logits = np.array([[*np.log([0.5, 0.3, 0.15, 0.05]), -np.inf]])  # last item impossible
    draws = 40_000
    picks = _gumbel_topk(rng, np.repeat(logits, draws, axis=0), 2)
    props = _pl_propensities(np.repeat(logits, draws, axis=0), picks)
    assert (picks != 4).all()
    first = np.bincount(picks[:, 0], minlength=5) / draws
    assert np.allclose(first, [0.5, 0.3, 0.15, 0.05, 0.0], atol=0.01)
    assert np.allclose(props[:, 0], np.exp(logits[0, picks[:, 0]]))
    # second slot: P(j | i first) = p_j / (1 - p_i)
    sel = picks[:, 0] == 0
    second = np.bincount(picks[sel, 1], minlength=5) / sel.sum()
    assert np.allclose(second, [0, 0.6, 0.3, 0.1, 0], atol=0.015)
    assert np.allclose(props[sel, 1], np.array([0, 0.6, 0.3, 0.1, 0])[picks[sel, 1]])


def test_window_counts() -> None:
    group = np.array([0, 0, 1, 0, 0, 1])
    ts = np.array([0.0, 10.0, 5.0, 15.0, 100.0, 6.0])
    assert _window_counts(group, ts, 20.0).tolist() == [0, 1, 0, 2, 0, 1]
