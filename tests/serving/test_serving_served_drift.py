"""A served feed must not get slower with every feed served: the posts a user was already
served (excluded for a day) once made the candidate generator ask the materialised list for
``quota + served`` posts, more than the list holds, so every later request of that user went
down the direct path (the whole catalogue scored, every asked item explained). Measured by
operation counts (list hits, direct-path calls), not by timings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from feedwise.feed import FeedEngine
from feedwise.feed.config import CandidateConfig, FeedConfig
from feedwise.feed.materialised import MaterialisedLists, attach, shared_columns
from feedwise.feed.types import FeedRequest
from feedwise.models import get_model
from feedwise.store import EventStore

NOW = datetime(2024, 2, 1, tzinfo=UTC)
N_USERS, N_ITEMS, N_FEEDS = 12, 400, 8
LIST_N, QUOTA = 100, 30


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    rng = np.random.default_rng(0)
    rows = []
    for u in range(60):
        for j, i in enumerate(rng.choice(N_ITEMS, size=12, replace=False)):
            rows.append({"event_id": f"e{u}-{j}", "user_id": f"u{u}", "item_id": f"i{i}",
                         "kind": "click", "ts": NOW - timedelta(days=float(rng.uniform(1, 20)))})
    items = pd.DataFrame({
        "item_id": [f"i{k}" for k in range(N_ITEMS)], "kind": "post",
        "author_id": [f"a{k % 37}" for k in range(N_ITEMS)],
        "created_at": [NOW - timedelta(hours=2 * k + 1) for k in range(N_ITEMS)],
        "title": [f"post {k}" for k in range(N_ITEMS)],
        "tags": [[f"t{k % 5}"] for k in range(N_ITEMS)]})
    db = tmp_path_factory.mktemp("drift") / "db.duckdb"
    with EventStore(db) as store:
        store.upsert_items(items)
        store.ingest(pd.DataFrame(rows))
        data = store.interactions()
    return {"db": db, "model": get_model("als", factors=8, iterations=3).fit(data)}


def _engines(world: dict) -> tuple[FeedEngine, FeedEngine, object]:
    cfg = FeedConfig(candidates=CandidateConfig(
        pool_size=QUOTA + 40,
        quotas={"recommender": QUOTA, "followed": 10, "fresh": 15, "trending": 15}))
    with EventStore(world["db"], read_only=True) as store:
        direct = FeedEngine.from_store(store, world["model"], cfg)
        served = FeedEngine.from_store(store, world["model"], cfg)
    lists = MaterialisedLists.build(world["model"], n=LIST_N,
                                    extra_cols=shared_columns(served, world["model"]))
    return direct, served, attach(served, lists)


def _unseen_in_list(served: FeedEngine, src: object, req: FeedRequest) -> tuple[int, int]:
    """(posts of the user's list not served or hidden, what the generator used to ask)."""
    ctx = served.context(req)
    cols, _, _ = src.lists.row(req.user_id)
    idx = src.col2cat[np.asarray(cols)]
    idx = idx[idx >= 0]
    gone = np.union1d(ctx.served, ctx.excluded)
    return int((~np.isin(idx, gone)).sum()), QUOTA + len(ctx.served) + len(ctx.excluded)


def test_repeat_feeds_stay_on_the_list_and_equal_the_direct_path(world: dict) -> None:
    direct, served, src = _engines(world)
    users = [f"u{u}" for u in range(N_USERS)]
    same = n = outgrown = 0
    for r in range(N_FEEDS):  # each user's feeds in turn, recorded: served posts pile up
        for u in users:
            req = FeedRequest(user_id=u, n=20, now=NOW + timedelta(minutes=r), request_id="t",
                              context={"seed": r})
            outgrown += _unseen_in_list(served, src, req)[1] > LIST_N
            misses = src.misses
            a = [(s.item_id, s.reasons) for s in direct.compose(req).slots]
            b = [(s.item_id, s.reasons) for s in served.compose(req).slots]
            same += a == b
            n += 1
            # no direct-path call, however many posts the user was already served
            assert src.misses == misses, f"{u}, feed {r}: a direct-path call"
    # the old ask (quota + every served post) outgrew the list: the direct path, every time
    assert outgrown >= N_USERS * (N_FEEDS - 4)
    # the list is recomputed deeper now and then, not on every request
    assert src.deepened <= N_USERS * (N_FEEDS // 3 + 1), src.deepened
    assert src.hits >= N_USERS * N_FEEDS
    assert same / n >= 0.99, f"{same}/{n} feeds equal the direct path's"


def test_a_list_served_through_is_deepened_to_the_direct_paths_answer(world: dict) -> None:
    _, served, src = _engines(world)
    uid = "u1"
    ctx = served.context(FeedRequest(user_id=uid, n=20, now=NOW, request_id="t"))
    cols, _, _ = src.lists.row(uid)
    seen = np.zeros(served.catalog.n, bool)
    listed = src.col2cat[np.asarray(cols)]
    seen[listed[listed >= 0][:LIST_N - QUOTA // 2]] = True  # fewer than QUOTA left unseen
    misses, deepened = src.misses, src.deepened
    got = src.candidates_unseen(ctx, QUOTA, seen, QUOTA + int(seen.sum()))
    assert (src.misses, src.deepened) == (misses, deepened + 1)
    assert len(src.lists.row(uid)[0]) > LIST_N  # the deeper list serves the next requests
    # the same posts, in the same order, as the direct path's first QUOTA unseen ones
    want = src.direct.candidates(ctx, QUOTA + int(seen.sum())).index
    want = want[~seen[want]][:QUOTA]
    assert list(got.index) == list(want)
    again = src.candidates_unseen(ctx, QUOTA, seen, QUOTA + int(seen.sum()))
    assert list(again.index) == list(want) and src.deepened == deepened + 1


def test_impressions_of_service_made_request_ids_skip_the_stored_id_probe(tmp_path) -> None:
    """The writer's landing of served rows probed every stored event id for duplicates (a
    landing cost more the more the table held); rows whose request id the service made up
    (``new_id``) cannot be stored already and skip it; a client's id is still checked."""
    from feedwise.server.writer import Writer
    from feedwise.store.serving import SERVED_ID_PREFIX

    now = round(datetime.now(UTC).timestamp() * 1e6)

    def served(*ids: str, new: bool | None = None) -> dict:
        n = len(ids)
        out = {"event_id": [f"{SERVED_ID_PREFIX}{i}" for i in ids], "user_id": ["u"] * n,
               "item_id": ["i"] * n, "kind": ["impression"] * n, "ts": [now] * n,
               "position": list(range(n)), "propensity": [1.0] * n}
        if new is not None:
            out["new_id"] = [new] * n
        return out

    with EventStore(tmp_path / "s.duckdb") as store:
        statements: list[str] = []
        execute = store.con.execute
        store.con = _Spy(store.con, statements)
        assert store.log_served(served("a:0", "a:1", new=True)).landed == 2
        assert not any("FROM events" in q for q in statements)  # no probe of the table
        rep = store.log_served(served("a:0", "b:0"))  # a client's retry: checked
        assert (rep.landed, rep.duplicates) == (1, 1)
        assert any("FROM events" in q for q in statements)
        # the writer merges feeds that marked their rows with ones that did not
        statements.clear()
        w = Writer(store)
        w.log_served(served("c:0", new=True))
        w.log_served(served("b:0"))  # a retry with the client's id, in the same landing
        w._land([])
        assert any("FROM events" in q for q in statements)
        store.con = store.con.inner
        assert execute is not None and store.count_events() == 4


class _Spy:
    """A DuckDB connection that records the SQL it runs."""

    def __init__(self, inner: object, statements: list[str]) -> None:
        self.inner, self.statements = inner, statements

    def execute(self, q: str, *a: object, **k: object) -> object:
        self.statements.append(q)
        return self.inner.execute(q, *a, **k)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)
