"""What makes a console view with new filters cheap keeps every figure the same: the
query memo (a view that changes only k, the grain or the comparison re-runs no SQL of a
window already computed), the k-free parts kept per window (best time, the creators'
influence fit, the scored comments, burst detection), and the cheaper creators fit
(shared reads, the cascade sizes without the timing columns)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from console_world import START, build_world

from feedwise.analytics.listening import comments_from_scope, score_comments
from feedwise.analytics.scope import Scope
from feedwise.graph import creators
from feedwise.graph.cascades import cascade_table
from feedwise.report.graph import rank_creators, scored_creators, top_creators
from feedwise.report.listening import listening_section
from feedwise.report.timing import timing_section
from feedwise.server.console import memo, views
from feedwise.server.deps import ServiceState
from feedwise.server.routes.listening import find_alerts

END = START + timedelta(days=10)


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    old = os.environ.get("FEEDWISE_CONSOLE_WARM")
    world = build_world(tmp_path_factory.mktemp("console-memo"))
    st = ServiceState(world.settings)
    yield st
    st.close()
    views.clear_cache()
    if old is not None:
        os.environ["FEEDWISE_CONSOLE_WARM"] = old


def page_data(page: views.Page) -> dict:
    """Everything a page shows: its tables, chart data and notices."""
    return {"tables": {t.name: t.frame.to_json(orient="split", date_format="iso",
                                               double_precision=15) for t in page.tables},
            "charts": {c.name: c.json() for c in page.charts},
            "notices": list(page.notices)}


def plain(state, monkeypatch, fn, q: dict) -> dict:
    """The page computed with no memo, no cache and no k-free reuse (plain ``Scope``)."""
    views.clear_cache()
    with monkeypatch.context() as m:
        m.setattr(views, "MemoScope", Scope)
        out = page_data(fn(state, q))
    views.clear_cache()
    return out


PAGES = {"overview": views.overview, "alerts": views.overview_alerts,
         "campaigns": views.campaigns, "audience": views.audience,
         "listening": views.listening}


@pytest.mark.parametrize("name", list(PAGES))
def test_a_view_with_new_filters_shows_the_figures_computed_afresh(state, monkeypatch, name):
    fn = PAGES[name]
    views.clear_cache()
    base = {"start": "2024-03-05", "end": "2024-03-12"}
    fn(state, {**base, "k": "3"})  # the window computed once, with another k
    views_ = [{**base, "k": "4"}]
    if name == "overview":  # the filters only the overview has
        views_.append({**base, "k": "2", "grain": "week", "compare": "none"})
    for q in views_:
        before = memo.stats()
        shown = page_data(fn(state, q))
        after = memo.stats()
        assert shown == plain(state, monkeypatch, fn, q), (name, q)
        if name in ("overview", "campaigns") and "grain" not in q:
            # a new k over a window already computed runs no SQL at all
            assert after["misses"] == before["misses"], (name, q)
            assert after["hits"] > before["hits"]


def test_k_free_parts_do_not_depend_on_k(state):
    store = state.store
    start, end = START + timedelta(days=1), END
    with Scope(store, start, end, k=2) as a, Scope(store, start, end, k=50) as b:
        ta, tb = timing_section(a), timing_section(b)
        assert ta["recommendation"] == tb["recommendation"]
        pd.testing.assert_frame_equal(ta["hours"], tb["hours"])
        ca, cb = comments_from_scope(a), comments_from_scope(b)
        pd.testing.assert_frame_equal(ca, cb)
    fa = find_alerts(state, 3.0, None, ["negative", "volume"], 2, now=end)
    fb = find_alerts(state, 3.0, None, ["negative", "volume"], 50, now=end)
    assert [x.to_dict() for x in fa[2]] == [x.to_dict() for x in fb[2]]
    scored = scored_creators(store, start, end)
    pd.testing.assert_frame_equal(rank_creators(scored, k=3), top_creators(store, start, end,
                                                                           k=3))
    assert len(rank_creators(scored, k=1)) >= len(rank_creators(scored, k=10))
    # the listening tables the page shows are listening_section's
    with Scope(store, start, end, k=3) as s:
        sec = listening_section(s)
        tables = views._listening_tables(score_comments(comments_from_scope(s)), 3)
    assert tables["comments"] == sec["comments"]
    for key in ("keywords", "share_of_voice", "top_negative", "top_positive"):
        pd.testing.assert_frame_equal(tables[key], sec[key])


def test_the_cheaper_creators_fit_is_the_same_to_the_last_bit(state):
    store = state.store
    shares = store.share_events(START, END)
    ref = cascade_table(shares)[["item_id", "size", "structural_virality"]]
    got = creators._cascade_sizes(shares)
    pd.testing.assert_frame_equal(got.astype({"item_id": str}),
                                  ref.astype({"item_id": str, "size": "int64"}),
                                  check_exact=True)
    assert creators._cascade_sizes(shares.iloc[0:0]).empty
    for a, b, ex in ((START, END, True), (START + timedelta(hours=30), END, False)):
        mid = a + (b - a) / 2
        reads = creators._SharedReads(store, a, b, ex)
        for lo, hi in ((a, mid), (mid, b)):
            pd.testing.assert_frame_equal(
                creators.author_table(reads, lo, hi, exclude_objectors=ex),
                creators.author_table(store, lo, hi, exclude_objectors=ex), check_exact=True)


def test_memo_results_are_copies_dated_by_their_oldest_query_and_cleared_by_writes(state):
    views.clear_cache()
    store = state.store
    start, end = START, END
    with memo.MemoScope(store, start, end, k=3) as s:
        df = s.query("SELECT count(*) AS n FROM ev")
        assert s._cur is not None  # a miss opened the cursor
        df["n"] = -1
    with memo.MemoScope(store, start, end, k=3) as s:
        assert s.query("SELECT count(*) AS n FROM ev")["n"].iloc[0] > 0  # not the edit
        assert s._cur is None  # a hit touches DuckDB not at all
    t_query = time.monotonic()
    time.sleep(0.05)
    q = {"start": "2024-03-04", "end": "2024-03-13", "k": "3"}
    views.overview(state, q)  # its SQL computed now
    time.sleep(0.05)
    t_second = time.monotonic()
    views.overview(state, {**q, "k": "4"})  # the same SQL, from the memo
    stamps = {k[-1]: v[0] for k, v in views._cache.items() if k[1] == "kpis"}
    assert t_query < stamps[4] < t_second  # dated by the results it reused, not by now
    views.clear_cache()  # a console write
    assert memo.stats()["entries"] == 0


def test_pages_that_need_windows_before_the_data_still_answer(state):
    start = datetime(2024, 2, 20, tzinfo=UTC)
    page = views.audience(state, {"start": f"{start:%Y-%m-%d}", "end": "2024-03-01"})
    assert page.table("creators") is not None
    views.clear_cache()


def test_remembered_sentiment_scores_are_the_analysers_row_for_row():
    from feedwise.analytics.listening import default_analyser

    texts = ["love the new feed!", "this is awful, I want a refund", "", "   ",
             "love the new feed!", "x" * 3000, "neutral words about a parcel"]
    ref = default_analyser().analyse(texts)
    sm = memo.ScoreMemo()
    first = sm.analyse(texts[:3])
    pd.testing.assert_frame_equal(first, ref.iloc[:3].reset_index(drop=True))
    pd.testing.assert_frame_equal(sm.analyse(texts), ref)  # partly remembered
    pd.testing.assert_frame_equal(sm.analyse(texts[::-1]),
                                  ref.iloc[::-1].reset_index(drop=True))
    pd.testing.assert_frame_equal(sm.analyse([]), default_analyser().analyse([]))


def test_the_memo_keeps_a_bounded_number_of_cells(state, monkeypatch):
    memo.clear()
    monkeypatch.setattr(memo, "MAX_CELLS", 10)
    with memo.MemoScope(state.store, START, END, k=3) as s:
        for i in range(6):
            assert s.scalar(f"SELECT {i}") == i
            s.query(f"SELECT {i} AS a, {i} AS b, {i} AS c")
    assert memo._cells[0] <= 10
    assert memo._cells[0] == sum(memo._size(v) for _, v in memo._memo.values())
    memo.clear()
    assert memo._cells[0] == 0
