"""Materialised lists of a dense blend (the default ``auto``, a calibrated hybrid on a
catalogue): the same feeds and reasons as the direct path, with pool items outside a list
and the shown posts' reasons worded from what explains them, kept with the list, or computed
from the user's row state kept with it, never from a row over the catalogue; both survive
save / load (feed workers map them)."""

from __future__ import annotations

import numpy as np
import pytest
from test_serving_materialised import N_USERS, _events, _feeds, _items

from feedwise.feed import FeedEngine
from feedwise.feed.materialised import MaterialisedLists, Refresher, attach
from feedwise.models import get_model
from feedwise.store import EventStore


@pytest.fixture(scope="module")
def blend(tmp_path_factory: pytest.TempPathFactory) -> dict:
    db = tmp_path_factory.mktemp("dense") / "db.duckdb"
    with EventStore(db) as store:
        store.upsert_items(_items())
        store.ingest(_events())
        data = store.interactions()
    comps = [("norm-ease", 2.0, {}), ("time-ease", 0.5, {}), ("rp3beta", 0.2, {}),
             ("content", 0.15, {}), ("gf-cf", 1.2, {"linear": 0.0})]
    model = get_model("hybrid", components=comps, calibrate=False).fit(data, items=_items())
    return {"db": db, "model": model}


def test_dense_blend_lists_equal_direct_feeds_without_dense_rows(blend: dict,
                                                                 monkeypatch) -> None:  # noqa: ANN001
    model = blend["model"]
    users = [f"u{u}" for u in range(0, N_USERS, 2)]
    with EventStore(blend["db"], read_only=True) as store:
        direct = FeedEngine.from_store(store, model)
        served = FeedEngine.from_store(store, model)
    want = _feeds(direct, users)
    # the quota (150: a cut list still serves), and no shared items' scores: pool items
    # outside a list (trending, newest) are scored from the state
    lists = MaterialisedLists.build(model, n=150)
    assert lists.n_state == 3 * len(model.models_)
    src = attach(served, lists)
    dense = []
    for name in ("_scores_for", "score_row"):  # any dense row of the blend is counted
        real = getattr(model, name)
        monkeypatch.setattr(model, name, lambda *a, _r=real, **k: dense.append(1) or _r(*a, **k))
    outside = []
    real_cols = model.score_columns
    monkeypatch.setattr(model, "score_columns",
                        lambda h, c, **k: outside.append(len(c)) or real_cols(h, c, **k))
    by_parts, by_winner, by_liked = _count_reasons(model, monkeypatch)
    got = _feeds(served, users)
    same = np.mean([a == b for a, b in zip(want, got, strict=True)])
    assert src.hits >= len(users) * 0.9
    assert same >= 0.99, f"{same:.1%} of feeds (top 20 and reasons) equal"
    assert sum(outside) > 0  # pool items outside the short lists were scored by column
    assert not dense, "a dense row of the blend was scored while serving from the lists"
    # the listed posts shown are worded from the liked item kept with the list (or, where
    # its component names none, explained by that component); only the others score
    # every component at their columns again
    assert sum(by_liked) > 3 * (sum(by_winner) + sum(by_parts)), (
        sum(by_liked), sum(by_winner), sum(by_parts))


def _count_reasons(model, monkeypatch) -> tuple[list[int], list[int], list[int]]:  # noqa: ANN001
    """Posts explained by scoring every component at their columns, by the component kept
    with the list, and worded from the liked item kept with it (appended per call)."""
    by_parts, by_winner, by_liked = [], [], []
    for name, seen in (("explain_columns", by_parts), ("explain_winners", by_winner)):
        real = getattr(model, name)
        monkeypatch.setattr(model, name, lambda u, h, c, *a, _r=real, _s=seen:
                            _s.append(len(c)) or _r(u, h, c, *a))
    real = model.winner_reasons
    monkeypatch.setattr(model, "winner_reasons",
                        lambda w, g: by_liked.append(len(w)) or real(w, g))
    return by_parts, by_winner, by_liked


def test_row_state_survives_save_and_load(blend: dict, tmp_path) -> None:  # noqa: ANN001
    model = blend["model"]
    lists = MaterialisedLists.build(model, n=30, users=["u1", "u2", "u3"])
    assert lists.state_row("u2") is not None and not len(lists.extra_cols)
    lists.update(["u2"], {"u2": {"i9": 2.0}})  # a refresh recomputes the state too
    _, _, fresh = model._scores_and_state(["u2"], {"u2": {"i9": 2.0}})
    np.testing.assert_allclose(lists.state_row("u2"), fresh[0], rtol=1e-6)
    # what explains each item is recomputed with it: the direct path's component, and
    # the liked item it names (worded as the direct path words it)
    cols, why = lists.why_row("u2")
    hist = model.history_matrix({"u2": {"i9": 2.0}}, ["u2"])
    want = model._explain(hist, [cols])[0]
    assert model.explain_winners("u2", hist, cols, why["k"]) == want
    assert len(np.unique(why["k"])) > 1  # not one component for everything
    named = np.flatnonzero(why["liked"] >= 0)
    assert len(named)
    assert model.winner_reasons(why["k"][named], why["liked"][named]) == [want[j]
                                                                          for j in named]
    lists.save(tmp_path / "lists")
    back = MaterialisedLists.load(model, tmp_path / "lists", n=30)
    assert back.n_state == lists.n_state
    for u in ("u1", "u2", "u3"):
        np.testing.assert_array_equal(back.state_row(u), lists.state_row(u))
        np.testing.assert_array_equal(back.why_row(u)[1], lists.why_row(u)[1])
    assert back.forget_user("u2") and back.row("u2") is None and back.why_row("u2") is None
    back.compact()
    assert back.why_row("u2") is None and len(back.why) == len(back.cols)
    np.testing.assert_array_equal(back.why_row("u3")[1], lists.why_row("u3")[1])


def test_refresh_round_stops_at_its_busy_share(blend: dict) -> None:
    model = blend["model"]
    lists = MaterialisedLists.build(model, n=30, users=[f"u{k}" for k in range(12)])
    # a round's share: one block (no flood share: every user pending is a flood here)
    ref = Refresher(lists, interval_s=1e-6, chunk=4, flood_busy=0.25)
    users = [f"u{k}" for k in range(10)]
    assert ref.note(users, ["i3"] * 10, ["like"] * 10) == 10
    before = lists.state_row("u0").copy()
    # the cost of a user is unknown: the first block is one user, which measures it
    assert ref.run_once() == 1 and ref.pending() == 9
    assert list(ref._pending) == users[1:]  # the rest wait at the front, in order
    assert not np.array_equal(lists.state_row("u0"), before)  # refreshed with the like
    # later rounds take what the budget holds at the measured cost: here one user
    assert ref.per_user_s > 0
    assert ref.run_once() == 1 and ref.pending() == 8
    assert list(ref._pending) == users[2:]
    big = Refresher(lists, interval_s=60, chunk=4)  # a budget for every user: blocks of 4
    big.note(users, ["i5"] * 10, ["like"] * 10)
    assert big.run_once() == 10 and big.pending() == 0
    # a round that overran its budget is followed by a longer wait: the refresh keeps to
    # its busy share (0.25) of a core
    assert ref.last_round_s > ref.interval_s
    assert ref.pause_s() == pytest.approx(ref.last_round_s * 0.75 / 0.25)
    assert Refresher(lists, interval_s=0.5).pause_s() == 0.5  # nothing ran yet
    while ref.pending():
        ref.run_once()
    assert ref.refreshed == 10


def test_refresh_leaves_the_cores_to_serving_in_a_flood(blend: dict) -> None:
    """More users pending than a few rounds at ``busy`` recompute: the refresh cannot keep
    up whatever its share, so it takes ``flood_busy`` (and waits accordingly) until the
    pending users fit again."""
    lists = MaterialisedLists.build(blend["model"], n=30, users=[f"u{k}" for k in range(12)])
    ref = Refresher(lists, interval_s=0.5, busy=0.25, flood_busy=0.05, flood_rounds=2)
    users = [f"u{k}" for k in range(10)]
    ref.note(users, ["i3"] * 10, ["like"] * 10)
    assert ref._share() == 0.25  # the cost of a user is not known yet: no flood
    ref.per_user_s = 0.1  # a round at busy recomputes 1.25 users: 10 pending are a flood
    assert ref.run_once() == 1 and ref.share == 0.05
    assert ref.pause_s() == pytest.approx(max(0.5, ref.last_round_s * 0.95 / 0.05))
    with ref._lock:  # two pending fit in two rounds at busy: the full share again
        for u in users[3:]:
            del ref._pending[u]
    ref.per_user_s = 0.1
    assert ref.pending() == 2 and ref._share() == 0.25


def test_reasons_from_kept_components_while_engagement_awaits_refresh(blend: dict,
                                                                       monkeypatch) -> None:  # noqa: ANN001
    """Under ingest most users have engagement awaiting a refresh: their shown posts are
    still explained by what was kept with the list (as stale as the list), never by
    scoring every component again; once refreshed, what explains them is that of the
    history with the engagement."""
    model = blend["model"]
    users = [f"u{u}" for u in range(1, 9)]
    lists = MaterialisedLists.build(model, n=150, users=users)
    ref = Refresher(lists, interval_s=60)
    with EventStore(blend["db"], read_only=True) as store:
        served = FeedEngine.from_store(store, model)
    attach(served, lists, ref)
    assert ref.note(users, ["i7"] * len(users), ["like"] * len(users)) == len(users)
    by_parts, by_winner, by_liked = _count_reasons(model, monkeypatch)
    _feeds(served, users)
    assert sum(by_liked) + sum(by_winner) > 3 * sum(by_parts), (
        sum(by_liked), sum(by_winner), sum(by_parts))
    assert ref.run_once() == len(users)
    cols, why = lists.why_row("u3")
    hist = model.history_matrix({"u3": ref.history_of("u3")}, ["u3"])
    model._scores_for(["u3"], {"u3": ref.history_of("u3")})
    want = model._explain(hist, [cols])[0]
    assert model.explain_winners("u3", hist, cols, why["k"]) == want
    named = np.flatnonzero(why["liked"] >= 0)
    assert model.winner_reasons(why["k"][named], why["liked"][named]) == [want[j]
                                                                          for j in named]
