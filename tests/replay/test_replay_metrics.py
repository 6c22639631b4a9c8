"""Replay evaluation (issue 18): metrics on a tiny hand-made log, computed by hand here."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from feedwise.evidence.replay_eval import (
    PostTable,
    Request,
    auc,
    logged_requests,
    mrr_mind,
    ndcg_labels,
    score_requests,
)

T0 = pd.Timestamp("2025-01-10 12:00", tz="UTC")


def _events() -> pd.DataFrame:
    """u1: a session s1 showing a, b, c, d at 12:00 (clicks b, likes d a minute later);
    a second session s2 an hour later showing e, f (no engagement). u2: no session ids,
    impressions of a, b at 12:00 and of c at 15:00 (two requests: a 3 h gap), a share of
    c at 15:05. A click by u1 on a 3 days later belongs to no request (past the gap)."""
    rows = []
    for i, it in enumerate("abcd"):
        rows.append(("u1", it, "impression", T0 + pd.Timedelta(seconds=2 * i), "s1"))
    rows += [("u1", "b", "click", T0 + pd.Timedelta(minutes=1), "s1"),
             ("u1", "d", "like", T0 + pd.Timedelta(minutes=1, seconds=5), "s1")]
    for i, it in enumerate("ef"):
        rows.append(("u1", it, "impression", T0 + pd.Timedelta(hours=1, seconds=i), "s2"))
    rows += [("u2", "a", "impression", T0, None), ("u2", "b", "impression", T0, None),
             ("u2", "c", "impression", T0 + pd.Timedelta(hours=3), None),
             ("u2", "c", "share", T0 + pd.Timedelta(hours=3, minutes=5), None),
             ("u1", "a", "click", T0 + pd.Timedelta(days=3), None)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "kind", "ts", "session_id"])


def test_requests_are_sessions_and_engagements_join_their_request() -> None:
    reqs = logged_requests(_events())
    got = [(q.user_id, q.candidates, q.engaged) for q in reqs]
    assert got == [("u1", ["a", "b", "c", "d"], {"b", "d"}), ("u2", ["a", "b"], set()),
                   ("u1", ["e", "f"], set()), ("u2", ["c"], {"c"})]
    assert reqs[0].ts == T0.timestamp()
    # only the requests starting at or after `since`
    later = logged_requests(_events(), since=T0 + pd.Timedelta(minutes=30))
    assert [(q.user_id, q.candidates) for q in later] == [("u1", ["e", "f"]), ("u2", ["c"])]


def test_metric_functions_by_hand() -> None:
    # ranked labels 0 1 0 1: engaged at ranks 2 and 4
    y = np.array([0, 1, 0, 1])
    assert mrr_mind(y) == pytest.approx((1 / 2 + 1 / 4) / 2)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    assert ndcg_labels(y, 5) == pytest.approx(dcg / (1 + 1 / math.log2(3)))
    assert ndcg_labels(y, 1) == 0.0
    # AUC: positives scored 3 and 1, negatives 4 and 2: one of four pairs in order
    assert auc([0, 1, 0, 1], [4, 3, 2, 1]) == pytest.approx(0.25)
    assert auc([0, 1, 1], [1, 1, 2]) == pytest.approx((0.5 + 1) / 2)  # a tie counts half
    assert math.isnan(auc([1, 1], [1, 2]))


class FixedScores:
    """A policy with one fixed score per post, recording every post it is asked about."""

    name = "fixed"

    def __init__(self, posts: PostTable, by_id: dict[str, float]) -> None:
        self.posts = posts
        self.by_id = by_id
        self.asked: list[tuple[float, np.ndarray]] = []

    def scores(self, user_id: str, items: np.ndarray, now_s: float) -> np.ndarray:
        self.asked.append((now_s, items.copy()))
        return np.array([self.by_id[self.posts.item_ids[i]] for i in items], float)


def test_both_scores_of_one_request_by_hand() -> None:
    now = T0.timestamp()
    ids = ["a", "b", "c", "d", "old", "seen", "future"]
    created = [now - 3600 * h for h in (1, 2, 3, 4, 100, 5)] + [now + 60]
    posts = PostTable(np.array(ids, object), np.array(created, float),
                      np.array(["x"] * len(ids), object))
    scores = {"a": 4, "b": 3, "c": 2, "d": 1, "old": 3.5, "seen": 10, "future": 99}
    pol = FixedScores(posts, scores)
    req = Request("u1", now, ["a", "b", "c", "d"], {"b", "d"})
    res = score_requests([pol], [req], posts, seen={"u1": {"seen"}})
    row = res.table.iloc[0]
    # impression re-ranking: order a b c d -> labels 0 1 0 1 (whatever order they came in)
    assert row["auc"] == pytest.approx(0.25)
    assert row["mrr"] == pytest.approx(0.375)
    ndcg = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert row["ndcg@5"] == pytest.approx(ndcg) and row["ndcg@10"] == pytest.approx(ndcg)
    # open retrieval over a, b, c, d, old (not "seen": engaged before; not "future"):
    # order a old b c d -> the engaged b, d at ranks 3 and 5
    open_ndcg = (1 / math.log2(4) + 1 / math.log2(6)) / (1 + 1 / math.log2(3))
    assert row["open_ndcg@10"] == pytest.approx(open_ndcg)
    assert row["open_recall@50"] == pytest.approx(1.0)
    assert row["requests_open"] == 1 and row["requests_impression"] == 1
    # nothing created after the request's time was put to the policy, nor "seen"
    for t, items in pol.asked:
        assert (posts.created_s[items] <= t).all()
    assert all(posts.index["seen"] not in items for _, items in pol.asked[1:])


def test_recall_at_50_counts_the_top_50_only() -> None:
    now = T0.timestamp()
    n = 60
    ids = np.array([f"p{i}" for i in range(n)], object)
    posts = PostTable(ids, np.full(n, now - 10.0), np.array(["x"] * n, object))
    pol = FixedScores(posts, {f"p{i}": float(n - i) for i in range(n)})  # p0 best
    req = Request("u", now, [], {"p0", "p49", "p55"})  # ranks 1, 50, 56
    row = score_requests([pol], [req], posts).table.iloc[0]
    assert row["open_recall@50"] == pytest.approx(2 / 3)
    assert row["open_ndcg@10"] == pytest.approx(1 / (1 + 1 / math.log2(3) + 1 / math.log2(4)))
    assert row["requests_impression"] == 0  # no candidates: no impression score
