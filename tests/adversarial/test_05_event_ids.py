"""Item 5: acknowledged events lost to id collisions.

Impressions took their ids from ``X-Request-ID`` (``order-42:0``), were inserted without
checking stored ids, and ``events`` had no unique key: a client's later
``{"event_id": "order-42:0", "kind": "purchase"}`` was answered ``duplicates: 1`` and never
stored, the reverse order stored two rows with one id, and a retried feed after a restart
stored every impression twice.

Now: the service's own ids live in the ``srv:`` namespace that no client may write (such
rows are rejected with a reason), every write path of ``events`` checks the stored ids
under the store's write lock, and a retried feed (same ``X-Request-ID``) logs nothing twice,
across restarts too.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from feedwise.errors import DataError
from feedwise.server.app import create_app
from feedwise.server.writer import Writer
from feedwise.store import EventStore
from feedwise.store.serving import SERVED_ID_PREFIX

TS = "2024-02-01T10:00:00Z"


def _landed(client) -> EventStore:
    """The running app's store once its writer has landed everything queued."""
    state = client.app.state.feedwise
    state.writer.call(lambda s: None).result(10)
    return state.store


def _ids(store: EventStore, where: str, params: list) -> list[tuple[str, str]]:
    return [tuple(r) for r in store.cursor().execute(
        f"SELECT event_id, kind FROM events WHERE {where} ORDER BY event_id", params
    ).fetchall()]


def _no_repeated_id(store: EventStore) -> None:
    assert store.cursor().execute("SELECT event_id, count(*) FROM events GROUP BY 1 "
                                  "HAVING count(*) > 1").fetchall() == []


def _feed(client, world, rid: str, n: int = 5) -> list[str]:
    r = client.get(f"/v1/users/u1/feed?n={n}",
                   headers={**world.headers(world.read), "X-Request-ID": rid})
    assert r.status_code == 200, r.text
    return [s["item_id"] for s in r.json()["slots"]]


def _post(client, world, *events: dict) -> dict:
    r = client.post("/v1/events", json=list(events), headers=world.headers(world.ingest))
    assert r.status_code == 200, r.text
    return r.json()


def test_client_event_after_a_feed_with_its_id_is_stored(world):
    purchase = {"event_id": "order-42:0", "user_id": "u1", "item_id": "i1",
                "kind": "purchase", "ts": TS}
    with TestClient(create_app(world.settings)) as client:
        slots = _feed(client, world, "order-42")
        got = _post(client, world, purchase)
        assert (got["accepted"], got["duplicates"], got["rejected"]) == (1, 0, 0)
        store = _landed(client)
        assert _ids(store, "event_id = ?", ["order-42:0"]) == [("order-42:0", "purchase")]
        served = _ids(store, "event_id LIKE ?", [f"{SERVED_ID_PREFIX}order-42:%"])
        assert len(served) == len(slots) and {k for _, k in served} <= {"impression",
                                                                         "ad_impression"}
        _no_repeated_id(store)


def test_client_event_before_a_feed_with_its_id_keeps_one_row_per_id(world):
    with TestClient(create_app(world.settings)) as client:
        got = _post(client, world, {"event_id": "order-43:0", "user_id": "u1",
                                    "item_id": "i1", "kind": "purchase", "ts": TS})
        assert got["accepted"] == 1
        slots = _feed(client, world, "order-43")
        store = _landed(client)
        assert _ids(store, "event_id = ?", ["order-43:0"]) == [("order-43:0", "purchase")]
        assert len(_ids(store, "event_id LIKE ?", [f"{SERVED_ID_PREFIX}order-43:%"])) == len(
            slots)
        _no_repeated_id(store)


def test_clients_cannot_write_the_servers_namespace(world, tmp_path):
    bad = {"event_id": f"{SERVED_ID_PREFIX}order-44:0", "user_id": "u1", "item_id": "i1",
           "kind": "purchase", "ts": TS}
    with TestClient(create_app(world.settings)) as client:
        got = _post(client, world, bad, {**bad, "event_id": "fine-1"})
        assert (got["accepted"], got["rejected"]) == (1, 1)
        err = got["errors"][0]
        assert err["index"] == 0 and err["field"] == "event_id"
        assert SERVED_ID_PREFIX in err["reason"] and "reserved" in err["reason"]
        store = _landed(client)
        assert _ids(store, "event_id LIKE ?", [f"{SERVED_ID_PREFIX}%"]) == []
    # files are clients too: the row is rejected with the same reason, the rest lands
    f = tmp_path / "ev.csv"
    pd.DataFrame([bad, {**bad, "event_id": "fine-2"}]).to_csv(f, index=False)
    with EventStore(world.settings.db) as store:
        rep = store.ingest(f)
        assert (rep.accepted, rep.rejected) == (1, 1)
        rej = store.rejects(str(f))
        assert list(rej["field"]) == ["event_id"] and "reserved" in rej["reason"].iloc[0]


def test_retried_feed_is_idempotent_across_restarts(world):
    def run() -> tuple[list[str], int]:
        with TestClient(create_app(world.settings)) as client:
            slots = _feed(client, world, "retry-7", n=6)
            _feed(client, world, "retry-7", n=6)  # a retry in the same process
            store = _landed(client)
            return slots, len(_ids(store, "event_id LIKE ?", [f"{SERVED_ID_PREFIX}retry-7:%"]))

    slots, first = run()
    assert first == len(slots) == 6
    _, again = run()  # a new process: no memory of the first one
    assert again == 6
    with EventStore(world.settings.db, read_only=True) as store:
        _no_repeated_id(store)


def test_every_write_path_of_events_checks_stored_ids(tmp_path):
    now = round(datetime.now(UTC).timestamp() * 1e6)

    def served(*ids: str) -> dict:
        n = len(ids)
        return {"event_id": list(ids), "user_id": ["u"] * n, "item_id": ["i"] * n,
                "kind": ["impression"] * n, "ts": [now] * n, "position": list(range(n)),
                "propensity": [1.0] * n}

    with EventStore(tmp_path / "s.duckdb") as store:
        a, b = f"{SERVED_ID_PREFIX}r1:0", f"{SERVED_ID_PREFIX}r1:1"
        assert store.log_served(served(a, b, a)).landed == 2  # a repeat inside the batch
        rep = store.log_served(served(a, b))  # the same batch again
        assert (rep.landed, rep.duplicates) == (0, 2)
        with pytest.raises(DataError, match=SERVED_ID_PREFIX):
            store.log_served(served("r2:0"))  # the service's ids carry the prefix
        # the writer, with no memory of what it served before (a new process)
        w = Writer(store)
        w.log_served(served(a, f"{SERVED_ID_PREFIX}r1:2"))
        w._land([])
        assert store.count_events() == 3
        # a file repeating a stored client id counts as a duplicate, never a second row
        store.ingest(pd.DataFrame([{"event_id": "c1", "user_id": "u", "item_id": "i",
                                    "kind": "click", "ts": TS}]))
        rep = store.ingest(pd.DataFrame([{"event_id": "c1", "user_id": "u", "item_id": "i",
                                          "kind": "click", "ts": TS}]))
        assert (rep.accepted, rep.duplicates) == (0, 1)
        _no_repeated_id(store)
