"""Listening analytics, burst alerts, the synthetic comment text and text-aware ranking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from feedwise.analytics.alerts import BurstDetector, match_bursts
from feedwise.analytics.listening import (
    comments_from_frame,
    comments_from_scope,
    mentions,
    score_comments,
    sentiment_table,
    share_of_voice,
    top_comments,
)
from feedwise.analytics.scope import Scope
from feedwise.datasets.synthetic import synthetic_social
from feedwise.datasets.synthetic_text import inject_bursts
from feedwise.errors import ConfigError, NotFittedError
from feedwise.ranking.text import TextEngagement


@pytest.fixture(scope="module")
def world():
    w = synthetic_social(n_users=300, n_posts=900, n_days=12, n_campaigns=4, seed=5)
    bursts = inject_bursts(w, 2, seed=5, rate_per_hour=(15.0, 20.0))
    return w, bursts


@pytest.fixture(scope="module")
def scored(world):
    w, _ = world
    return score_comments(comments_from_frame(w.events, w.items, w.campaigns))


def test_comment_events_carry_text_with_planted_sentiment(world, scored):
    w, _ = world
    c = w.events[w.events["kind"] == "comment"]
    assert c["text"].notna().all() and len(c) > 50
    assert w.events.loc[w.events["kind"] != "comment", "text"].isna().all()
    # the analyser reads the planted label of the world's own comments
    n = len(w.truth["comment_sentiment"])
    planted = np.array(["negative", "neutral", "positive"])[w.truth["comment_sentiment"]]
    own = scored[~scored["event_id"].str.contains("burst")].reset_index(drop=True)
    assert len(own) == n
    assert (own["label"].to_numpy() == planted).mean() > 0.9


def test_default_world_unchanged_apart_from_text():
    a = synthetic_social(n_users=120, n_posts=300, n_days=3, seed=2)
    b = synthetic_social(n_users=120, n_posts=300, n_days=3, seed=2, text_effect=0.0)
    assert a.name != b.name  # the flag is part of the world's tag
    cols = ["user_id", "item_id", "kind", "ts"]
    pd.testing.assert_frame_equal(a.events[cols], b.events[cols])  # no effect: same log
    assert (b.items["text"].str.len() >= a.items["text"].str.len()).all()
    c = synthetic_social(n_users=120, n_posts=300, n_days=3, seed=2, text_effect=2.0)
    assert len(c.events) != len(a.events)


def test_bursts_are_detected_and_quiet_world_is_quiet(world, scored):
    w, bursts = world
    kws = list(w.truth["brands"]) + list(w.truth["topic_names"])
    alerts = BurstDetector().detect(scored, kws, start=w.truth["start"], end=w.truth["end"])
    m = match_bursts(alerts, bursts)
    assert m["recall"] == 1.0 and m["precision"] == 1.0
    a = next(x for x in alerts if x.metric == "negative")
    assert a.observed >= 4 and a.baseline < a.observed and a.samples
    assert a.window_start < a.window_end
    quiet = synthetic_social(n_users=300, n_posts=900, n_days=12, n_campaigns=4, seed=5)
    qs = score_comments(comments_from_frame(quiet.events, quiet.items, quiet.campaigns))
    assert BurstDetector().detect(qs, kws, metrics=["negative"]) == []


def test_tables_have_intervals_and_suppress_small_groups(scored):
    t = sentiment_table(scored, "keyword", "day", keywords=["running", "cooking"], k=1)
    assert {"negative_lo", "negative_hi", "net_lo", "net_hi", "period"} <= set(t.columns)
    ok = t.dropna(subset=["negative_share"])
    assert ((ok["negative_lo"] <= ok["negative_share"]) &
            (ok["negative_share"] <= ok["negative_hi"])).all()
    big = sentiment_table(scored, "keyword", None, keywords=["running"], k=10_000)
    assert big.empty  # fewer users than k: dropped
    tags = sentiment_table(scored, "tag", None, k=5)
    assert (tags["users"] >= 5).all() and len(tags)
    sov = share_of_voice(scored, ["running", "cooking", "travel"], k=1)
    assert sov["share"].sum() == pytest.approx(1.0)
    top = top_comments(scored, "negative", 3, k=5)
    assert len(top) <= 3 and (top["reach"] >= 5).all() and "user_id" not in top


def test_keyword_matching_is_whole_word():
    m = mentions(["I love #Running", "runningshoes", "RUNNING late", None], ["running"])
    assert m["running"].tolist() == [True, False, True, False]
    with pytest.raises(ConfigError):
        mentions(["x"], ["  "])


def test_bad_text_never_raises():
    now = datetime(2025, 1, 10, tzinfo=UTC)
    texts = ["", "\x00\x01\xff binary", "x" * 1_000_000, "😀😀", "好评 great", None,
             b"\xff\xfe"]
    ev = pd.DataFrame({"event_id": [f"e{i}" for i in range(len(texts))],
                       "user_id": "u1", "item_id": "p1", "kind": "comment",
                       "ts": [now + timedelta(minutes=i) for i in range(len(texts))],
                       "text": texts})
    c = score_comments(comments_from_frame(ev))
    assert len(c) == len(texts) - 1  # None: a comment without text is no text comment
    assert c["reason"].notna().any()
    t = sentiment_table(c, "keyword", "hour", keywords=["great"], k=1)
    assert len(t) <= 1
    assert BurstDetector().detect(c, ["great"]) == []
    assert BurstDetector().detect(c.iloc[0:0], ["great"]) == []


def test_from_scope_matches_frame_and_respects_consent(world):
    from feedwise.store import EventStore

    w, _ = world
    users = w.users.copy()
    users.loc[0, "consent_analytics"] = False
    with EventStore(":memory:") as store:
        store.upsert_items(w.items)
        store.upsert_users(users)
        store.upsert_campaigns(w.campaigns)
        store.ingest(w.events)
        with Scope(store, w.truth["start"], w.truth["end"] + timedelta(days=1), k=1) as s:
            c = comments_from_scope(s)
    frame = comments_from_frame(w.events, w.items, w.campaigns)
    refused = users.loc[0, "user_id"]
    assert refused not in set(c["user_id"])
    refusing = set(users.loc[~users["consent_analytics"].astype(bool), "user_id"])
    assert len(c) == int((~frame["user_id"].isin(refusing)).sum())


def test_text_engagement_learns_planted_words_and_saves(tmp_path):
    w = synthetic_social(n_users=300, n_posts=600, n_days=4, n_campaigns=0, seed=9,
                         text_effect=1.5)
    from feedwise.ranking.features import label_impressions

    imps = label_impressions(w.events)
    texts = pd.Series(w.items["text"].to_numpy(), index=w.items["item_id"])
    m = TextEngagement(features="hashing", signals=("text_appeal", "text_match"))
    with pytest.raises(NotFittedError):
        m.transform(["u"], ["p"])
    oof = m.fit_transform(texts, imps, label="click")
    assert oof.shape == (len(imps), 2)
    # posts with engaging words score a higher appeal than posts with dull ones
    good = m.vectors(["giveaway exclusive secret"]) @ m.coef_
    bad = m.vectors(["repost rerun longread"]) @ m.coef_
    assert good[0] > bad[0]
    m.save(tmp_path / "text")
    m2 = TextEngagement.load(tmp_path / "text")
    u, i = imps["user_id"].head(20), imps["item_id"].head(20)
    np.testing.assert_allclose(m.transform(u, i, texts), m2.transform(u, i, texts), atol=1e-6)
    assert m2.forget_user(str(u.iloc[0])) and m2.user_vector(str(u.iloc[0])) is None
