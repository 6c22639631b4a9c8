"""Materialised candidate lists: the same feeds as the direct path, refreshed by new events,
forgotten on erasure; sparse scoring of a few columns equals the dense row."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from fastapi.testclient import TestClient

from feedwise.feed import FeedEngine
from feedwise.feed.materialised import (
    MaterialisedLists,
    Refresher,
    _Positions,
    attach,
    shared_columns,
)
from feedwise.feed.types import FeedRequest
from feedwise.models import get_model
from feedwise.registry import ModelRegistry
from feedwise.server.app import create_app
from feedwise.server.auth import create_key
from feedwise.server.settings import Settings
from feedwise.store import EventStore

NOW = datetime(2024, 2, 1, tzinfo=UTC)
N_USERS, N_ITEMS = 240, 160


def _events(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(N_USERS):
        group = u % 4
        pool = [i for i in range(N_ITEMS) if i % 4 == group or rng.random() < 0.05]
        for j, i in enumerate(rng.choice(pool, size=10, replace=False)):
            rows.append({"event_id": f"e{u}-{j}", "user_id": f"u{u}", "item_id": f"i{i}",
                         "kind": rng.choice(["click", "like"]),
                         "ts": NOW - timedelta(days=float(rng.uniform(1, 30)))})
    return pd.DataFrame(rows)


def _items() -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": [f"i{k}" for k in range(N_ITEMS)], "kind": "post",
        "author_id": [f"a{k % 17}" for k in range(N_ITEMS)],
        "created_at": [NOW - timedelta(hours=3 * k) for k in range(N_ITEMS)],
        "title": [f"post {k}" for k in range(N_ITEMS)],
        "tags": [[f"t{k % 4}"] for k in range(N_ITEMS)]})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("serving")
    db = root / "db.duckdb"
    with EventStore(db) as store:
        store.upsert_items(_items())
        store.ingest(_events())
        data = store.interactions()
    knn = get_model("itemknn", k=20).fit(data)
    knn.memory_budget = "1MiB"  # the sparse path, as on a large catalogue
    models = {"itemknn": knn,
              "als": get_model("als", factors=16, iterations=5).fit(data)}
    return {"root": root, "db": db, "models": models}


def _feeds(engine: FeedEngine, users: list[str]) -> list[list[str]]:
    out = []
    for u in users:
        req = FeedRequest(user_id=u, n=20, now=NOW, request_id="t", context={"seed": 3})
        out.append([f"{s.item_id}|{'/'.join(s.reasons)}"
                    for s in engine.compose(req, record=False).slots])
    return out


@pytest.mark.parametrize("name", ["itemknn", "als"])
def test_materialised_feeds_equal_direct_feeds(world: dict, name: str) -> None:
    model = world["models"][name]
    users = [f"u{u}" for u in range(N_USERS)]
    with EventStore(world["db"], read_only=True) as store:
        direct = FeedEngine.from_store(store, model)
        served = FeedEngine.from_store(store, model)
    # the quota (a cut list still serves); the shared items' scores for dense models
    lists = MaterialisedLists.build(model, n=150, extra_cols=shared_columns(served, model))
    src = attach(served, lists)
    same = np.mean([a == b for a, b in zip(_feeds(direct, users), _feeds(served, users),
                                           strict=True)])
    assert src.hits >= N_USERS * 0.9  # served from the lists, not the direct path
    assert same >= 0.99, f"{name}: {same:.1%} of feeds (top 20 and reasons) equal"
    # a user the model does not know gets the direct path (popular items)
    ghost = _feeds(served, ["nobody"])[0]
    assert ghost == _feeds(direct, ["nobody"])[0] and src.misses >= 1


def test_refresh_puts_new_engagement_into_the_list(world: dict) -> None:
    model = world["models"]["itemknn"]
    lists = MaterialisedLists.build(model, n=50)
    ref = Refresher(lists, interval_s=60)
    before = lists.row("u0")[0].copy()
    # u0 (group 0) likes three posts of group 1; a new user likes one post
    assert ref.note(["u0"] * 3 + ["newbie"], ["i1", "i5", "i9", "i2"],
                    ["like", "like", "like", "click"]) == 4
    assert ref.note(["u0"], ["i3"], ["impression"]) == 0  # no weight, no refresh
    assert ref.run_once() == 2 and ref.pending() == 0
    cols, scores, _ = lists.row("u0")
    assert not np.array_equal(cols, before)
    liked = {model.item_index_[i] for i in ("i1", "i5", "i9")}
    assert liked.isdisjoint(cols.tolist())  # engaged items leave the list
    want = model.recommend(["u0"], 50, history={"u0": {"i1": 2.0, "i5": 2.0, "i9": 2.0}})[0]
    assert list(model.item_ids_[cols]) == list(want.ids[want.scores > 0][:len(cols)])
    new = lists.row("newbie")
    assert new is not None and len(new[0]) > 0
    lists.compact()
    assert lists.row("newbie") is not None and not lists.overlay
    assert lists.forget_user("newbie") and lists.row("newbie") is None


def test_sparse_score_columns_equal_dense_scores(world: dict) -> None:
    with EventStore(world["db"], read_only=True) as store:
        data = store.interactions()
    cols = np.arange(N_ITEMS)
    for model in (get_model("itemknn", k=20, normalize=True).fit(data),
                  world["models"]["itemknn"], get_model("rp3beta", k=30).fit(data)):
        for u in ("u3", "u17"):
            hist = model.history_matrix({u: {"i2": 3.0}}, [u])
            dense = model._score_matrix(sp.csr_matrix(hist))[0]
            got = model.score_columns(hist, cols)
            np.testing.assert_allclose(got, dense, rtol=1e-5, atol=1e-7)


def test_service_new_engagement_changes_next_feed_within_bound(world: dict,
                                                                tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    with EventStore(db) as store:
        store.upsert_items(_items())
        store.ingest(_events())
        data = store.interactions()
    reg = ModelRegistry(tmp_path / "registry")
    v = reg.register(get_model("itemknn", k=20).fit(data), data_window={"until": NOW})
    reg.promote(v.version)
    keys = tmp_path / "keys.json"
    read, _ = create_key(keys, ["read"])
    ingest, _ = create_key(keys, ["ingest"])
    admin, _ = create_key(keys, ["admin"])
    settings = Settings(db=str(db), registry=str(reg.root), keys_file=str(keys),
                        reload_interval_s=0, lists_refresh_s=0.1, writer_linger_s=0.0)
    rh, ih = {"Authorization": f"Bearer {read}"}, {"Authorization": f"Bearer {ingest}"}
    with TestClient(create_app(settings)) as c:
        state = c.app.state.feedwise
        assert state._lists is not None and len(state._lists[1]) == N_USERS
        first = c.get("/v1/users/fresh-user/feed?n=30", headers=rh).json()
        assert not any("because you liked" in r for s in first["slots"] for r in s["reasons"])
        ts = datetime.now(UTC).isoformat()
        r = c.post("/v1/events", headers=ih, json=[
            {"event_id": "x1", "user_id": "fresh-user", "item_id": "i6", "kind": "like",
             "ts": ts}])
        assert r.status_code == 200 and r.json()["accepted"] == 1
        t0, seen = time.monotonic(), None
        while time.monotonic() - t0 < 5.0:
            slots = c.get("/v1/users/fresh-user/feed?n=30", headers=rh).json()["slots"]
            if any("because you liked post 6" in r for s in slots for r in s["reasons"]):
                seen = time.monotonic() - t0
                break
            time.sleep(0.05)
        assert seen is not None, "the new engagement did not reach the feed within 5 s"
        assert state._lists[2].history_of("fresh-user") == {"i6": 2.0}
        # erasure: the user's list and pending history go at once (workers rebuild)
        seq = state.catalogue_seq
        assert state._lists[1].row("u5") is not None
        r = c.delete("/v1/users/u5", headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 200, r.text
        assert state._lists[1].row("u5") is None and state.catalogue_seq > seq
        r = c.delete("/v1/users/fresh-user", headers={"Authorization": f"Bearer {admin}"})
        assert state._lists[2].history_of("fresh-user") is None


@pytest.mark.parametrize("seed", range(20))
def test_positions_in_a_list_match_a_sorted_lookup(seed):
    """The scratch-array lookup of a list's positions against a plain reference: absent
    and unknown (-1) columns, repeated columns (the first position), empty lists."""
    rng = np.random.default_rng(seed)
    n_cols = int(rng.integers(1, 400))
    listed = rng.integers(0, n_cols, int(rng.integers(0, 60)))
    want = rng.integers(-1, n_cols, int(rng.integers(0, 80)))
    first = {}
    for p, c in enumerate(listed.tolist()):
        first.setdefault(c, p)
    expect = [first.get(c, -1) if c >= 0 else -1 for c in want.tolist()]
    lookup = _Positions()
    assert lookup(listed, want, n_cols).tolist() == expect
    assert lookup(listed, want, n_cols).tolist() == expect  # the scratch was cleared
    assert (lookup.at == -1).all()
