"""The creators' fit reads the follow log once and replays it at each window boundary:
the followers it counts are those ``edges_as_of`` counts at that time, act for act
(unfollow and follow again, undated acts, acts at the same instant in stored order)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from feedwise.graph import creators

T0 = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def store():
    from feedwise.store import EventStore

    s = EventStore(":memory:")
    rng = np.random.default_rng(3)
    rows = [  # hand-made cases first
        {"src_id": "a", "dst_id": "x", "kind": "follow"},  # undated: from the start
        {"src_id": "b", "dst_id": "x", "kind": "follow", "ts": T0.timestamp()},
        {"src_id": "b", "dst_id": "x", "kind": "unfollow", "ts": T0.timestamp() + 3600},
        {"src_id": "b", "dst_id": "x", "kind": "follow", "ts": T0.timestamp() + 7200},
        {"src_id": "c", "dst_id": "x", "kind": "follow", "ts": T0.timestamp() + 60},
        {"src_id": "c", "dst_id": "x", "kind": "unfollow", "ts": T0.timestamp() + 60},
        {"src_id": "d", "dst_id": "y", "kind": "unfollow", "ts": T0.timestamp()},
        {"src_id": "e", "dst_id": "y", "kind": "friend", "ts": T0.timestamp()},
    ]
    for _ in range(600):  # and a random log
        rows.append({"src_id": f"u{rng.integers(0, 25)}", "dst_id": f"v{rng.integers(0, 6)}",
                     "kind": str(rng.choice(["follow", "follow", "unfollow", "block"])),
                     "ts": T0.timestamp() + float(rng.integers(0, 40)) * 3600})
    s.add_edges(rows)
    yield s
    s.close()


def test_followers_from_one_read_equal_edges_as_of_at_every_time(store):
    reads = creators._SharedReads(store, T0, T0 + timedelta(days=2), False)
    times = [None, T0 - timedelta(days=1), T0, T0 + timedelta(seconds=60)] + [
        T0 + timedelta(hours=h, minutes=m) for h in range(0, 42, 3) for m in (0, 30)]
    for when in times:
        want = creators.followers_at(store, when)  # the store's replay
        got = reads.followers_at(when)
        assert got.dtype == want.dtype == np.float64
        assert got.sort_index().to_dict() == want.sort_index().to_dict(), when
    # the hand-made cases: a (undated) and b (followed again) follow x; c's acts tie and
    # the unfollow is stored last; d only unfollowed; a friend is no follower
    assert reads.followers_at(T0 + timedelta(hours=1, minutes=30)).get("x") == 1.0
    assert reads.followers_at(T0 + timedelta(hours=3)).get("x") == 2.0
    assert "y" not in reads.followers_at(None) or reads.followers_at(None)["y"] > 0


def test_an_empty_log_has_no_followers():
    from feedwise.store import EventStore

    with EventStore(":memory:") as s:
        got = creators._SharedReads(s, T0, T0 + timedelta(days=1), False).followers_at(T0)
        assert got.empty and got.dtype == np.float64
        assert creators.followers_at(s, T0).empty


def test_new_posts_read_once_are_the_author_tables_selection(store):
    store.upsert_items(pd.DataFrame({
        "item_id": [f"p{i}" for i in range(6)], "author_id": ["x", "y", None, "x", "y", "x"],
        "created_at": [T0 + timedelta(hours=10 * i) for i in range(6)]}))
    reads = creators._SharedReads(store, T0, T0 + timedelta(days=3), False)
    posts = store.posts()[["item_id", "author_id", "created_at"]].dropna(subset=["author_id"])
    created = pd.to_datetime(posts["created_at"], utc=True)
    for a, b in ((0, 24), (5, 31), (30, 60), (60, 70)):
        since, until = T0 + timedelta(hours=a), T0 + timedelta(hours=b)
        want = posts[(created >= since) & (created < until)]
        pd.testing.assert_frame_equal(reads.new_posts(since, until), want)
