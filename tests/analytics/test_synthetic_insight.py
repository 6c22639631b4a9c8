"""Profiles, segments and KPIs on the synthetic social world, checked against its truth."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from feedwise.analytics import kpis
from feedwise.analytics.profiles import UserProfiler
from feedwise.analytics.scope import Scope
from feedwise.analytics.segments import Segmenter


@pytest.fixture(scope="module")
def world():
    from feedwise.datasets.synthetic import synthetic_social
    from feedwise.store import EventStore

    w = synthetic_social(n_users=300, n_days=14, seed=3)
    store = EventStore(":memory:")
    w.load_into(store)
    scope = Scope(store, w.truth["start"], w.truth["end"], k=10)
    prof = UserProfiler().fit(scope)
    seg = Segmenter(n_clusters=5, seed=0).fit(prof.profiles_)
    prof.profiles_["segment"] = seg.predict(prof.profiles_).to_numpy()
    df = prof.profiles_.set_index("user_id")
    df["truth"] = pd.Series(w.truth["user_rhythm"], index=w.users["user_id"])
    yield w, scope, df, seg
    scope.close()
    store.close()


def test_planted_rhythms_are_recovered(world):
    _, _, df, _ = world
    assert (df["daypart"] == df["truth"]).mean() >= 0.9
    evening = df["truth"] == "evening"
    profiled = df["daypart"] == "evening"
    assert (profiled & evening).sum() >= 0.9 * evening.sum()  # evening users appear as such
    assert (profiled & evening).sum() >= 0.9 * profiled.sum()  # and few others join them


def test_an_evening_segment_holds_the_evening_users(world):
    _, _, df, seg = world
    evening_segments = [n for n, d in zip(seg.names_, seg.descriptions_, strict=True)
                        if d.startswith("evening users")]
    assert evening_segments
    members = df["segment"].isin(evening_segments)
    evening = df["truth"] == "evening"
    assert (members & evening).sum() >= 0.7 * evening.sum()
    assert (members & evening).sum() >= 0.85 * members.sum()


def test_top_interest_tag_is_from_the_users_top_topic(world):
    w, _, df, _ = world
    tags = w.truth["topic_tags"]
    top_topic = dict(zip(w.users["user_id"], w.truth["user_topic"].argmax(axis=1), strict=True))
    hits = [next(iter(json.loads(s)), None) in tags[top_topic[u]]
            for u, s in df["interests"].items() if s != "{}"]
    assert len(hits) > 250 and np.mean(hits) >= 0.7


def test_consent_and_kpis_match_an_independent_count(world):
    w, scope, df, _ = world
    refused = set(w.users.loc[~w.users["consent_analytics"].astype(bool), "user_id"])
    assert refused and not refused & set(df.index)
    ev = w.events[~w.events["user_id"].isin(refused) & (w.events["ts"] < w.truth["end"])]
    n = ev["kind"].value_counts()
    s = kpis.kpi_summary(scope)
    assert s["users"] == ev["user_id"].nunique()
    assert s["ctr"] == pytest.approx(n["click"] / n["impression"])
    assert s["ad_ctr"] == pytest.approx(n["ad_click"] / n["ad_impression"])
    charged = ev.loc[ev["kind"].isin(["ad_impression", "ad_click"]), "value"].sum()
    assert s["revenue"] == pytest.approx(charged)
