"""The event relay (``server/relay.py``): a worker reads an event batch (the key, the body's
limits) and hands it to the owner over a socket pair; the owner decodes, checks and stores
it. In-process: the owner app and a worker app joined by a real socket pair. A batch sent
to the worker is answered as the owner answers the same batch and stored once, errors
included; a worker whose owner is gone answers 503 at once."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from worker_world import served_world

from feedwise.server.app import create_app
from feedwise.server.relay import DeltaAsk, RelayOwner, RelayWorker
from feedwise.server.routes.workers import relay_handler
from feedwise.server.settings import Settings
from feedwise.server.workers import create_worker_app
from feedwise.server.writer import WriterClosedError

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def pair(tmp_path):  # noqa: ANN001, ANN201
    w = served_world(tmp_path, 40, 30, seed=3, now=NOW)
    settings = Settings(db=str(w["db"]), registry=str(w["registry"]), keys_file=str(w["keys"]),
                        reload_interval_s=0, writer_linger_s=0.0, workers=2,
                        impressions_flush_s=10, lists_refresh_s=60, worker_poll_s=60)
    with TestClient(create_app(settings)) as owner:
        mine, theirs = socket.socketpair()
        relay = RelayOwner(relay_handler(owner.app.state.feedwise))
        relay.serve(mine)
        owner.headers.update({"Authorization": f"Bearer {w['admin']}"})
        with TestClient(create_worker_app(settings, "", w["admin"], client=owner,
                                          relay=RelayWorker(theirs))) as worker:
            yield owner, worker, w, mine


def _batch(prefix: str) -> list[dict]:
    rows = [{"event_id": f"{prefix}{j}", "user_id": f"u{j % 30}", "item_id": f"i{j % 40}",
             "kind": "like", "ts": NOW.isoformat()} for j in range(20)]
    rows[3]["kind"] = "no-such-kind"  # rejected, by index and field
    rows[7] = {**rows[7], "ts": "yesterday"}
    rows.append(dict(rows[0]))  # the same id twice in one batch: stored once
    return rows


def _post(client: TestClient, key: str, rows: list[dict]) -> dict:
    r = client.post("/v1/events", content=json.dumps(rows),
                    headers={"Authorization": f"Bearer {key}",
                             "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    return r.json()


def _stored(owner: TestClient, prefix: str) -> int:
    store = owner.app.state.feedwise.store
    return int(store.scalar("SELECT count(*) FROM events WHERE event_id LIKE ?",
                            [prefix + "%"]))


def test_a_batch_through_the_relay_is_answered_and_stored_as_through_the_owner(pair) -> None:  # noqa: ANN001
    owner, worker, w, _ = pair
    for key in ("ingest", "admin"):
        direct = _post(owner, w[key], _batch(f"o-{key}-"))
        relayed = _post(worker, w[key], _batch(f"r-{key}-"))
        assert relayed == direct
        assert relayed["accepted"] == 18 and relayed["rejected"] == 2
        assert {(e["index"], e["field"]) for e in relayed["errors"]} == {(3, "kind"),
                                                                          (7, "ts")}
        assert _stored(owner, f"r-{key}-") == _stored(owner, f"o-{key}-") == 18
    # a retry: the admin key is told of stored ids; an ingest key is not (events.py)
    for key in ("ingest", "admin"):
        again = _post(worker, w[key], _batch(f"r-{key}-"))
        assert again == _post(owner, w[key], _batch(f"o-{key}-"))
        assert again["accepted"] == (0 if key == "admin" else 18)
    assert _stored(owner, "r-") == 36  # nothing stored twice
    # the worker checks the key itself
    bad = worker.post("/v1/events", content="[]", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    # what the owner decides from the body comes back as the owner answers it
    ndjson = "\n".join(json.dumps(r) for r in _batch("n-"))
    big = json.dumps(_batch("b-") * 200)  # more events than max_batch_events
    for body, ctype in (("[{", "application/json"), (big, "application/json"),
                        (ndjson, "application/x-ndjson")):
        h = {"Authorization": f"Bearer {w['admin']}", "Content-Type": ctype}
        got = [c.post("/v1/events", content=body, headers=h) for c in (worker, owner)]
        assert got[0].status_code == got[1].status_code != 500
        assert got[0].json() == got[1].json() or got[0].json()["accepted"] == 18


def test_a_worker_whose_owner_is_gone_answers_503_at_once(pair) -> None:  # noqa: ANN001
    _, worker, w, mine = pair
    mine.shutdown(socket.SHUT_RDWR)  # the owner's end: as if the owner died
    relay = worker.app.state.feedwise.writer.relay
    relay._reader.join(5)  # noqa: SLF001 - the reader has seen the end of the stream
    r = worker.post("/v1/events", content=json.dumps(_batch("gone-")),
                    headers={"Authorization": f"Bearer {w['ingest']}"})
    assert r.status_code == 503 and "owner" in r.json()["detail"]
    with pytest.raises(WriterClosedError):
        relay.submit(b"[]")


def test_rows_waiting_when_the_owner_goes_fail_instead_of_hanging(tmp_path) -> None:  # noqa: ANN001
    mine, theirs = socket.socketpair()
    relay = RelayWorker(theirs)
    fut = relay.submit(b"[]")
    assert mine.recv(4)  # the frame reached the owner's end, which then closes
    mine.close()
    with pytest.raises(WriterClosedError, match="owner"):
        fut.result(5)
    relay.close()


def test_a_workers_impressions_reach_the_owner_through_the_relay_not_http(pair) -> None:  # noqa: ANN001
    owner, worker, w, _ = pair
    fwd = worker.app.state.feedwise.writer

    class NoHTTP:
        calls = 0

        def post(self, *a, **k):  # noqa: ANN002, ANN003, ANN202
            NoHTTP.calls += 1
            raise httpx.ConnectError("no HTTP here")

    fwd.client = NoHTTP()
    rids = [f"relay-imp-{k}" for k in range(5)]
    for k, rid in enumerate(rids):
        r = worker.get(f"/v1/users/u{k}/feed?n=6", headers={"Authorization": f"Bearer {w['admin']}",
                                                            "X-Request-ID": rid})
        assert r.status_code == 200 and r.json()["slots"], r.text
    slots = fwd.pending()
    assert slots >= 5
    assert fwd.flush() == slots and fwd.pending() == 0
    owner.app.state.feedwise.writer.call(lambda store: None).result(10)  # landed by now
    stored = owner.app.state.feedwise.store
    got = int(stored.scalar("SELECT count(*) FROM events WHERE event_id LIKE 'srv:relay-imp-%'"))
    assert got == slots and NoHTTP.calls == 0
    # a flush the owner cannot take stays with the worker, in order, for the next one
    worker.get("/v1/users/u7/feed?n=4", headers={"Authorization": f"Bearer {w['admin']}",
                                                 "X-Request-ID": "relay-imp-late"})
    held = fwd.pending()
    fwd.relay = None  # ...over HTTP, which fails here
    assert fwd.flush(attempts=1) == 0 and fwd.pending() == held and NoHTTP.calls == 1


def test_a_poll_through_the_relay_is_answered_as_over_http(pair) -> None:  # noqa: ANN001
    owner, worker, w, _ = pair
    _post(owner, w["admin"], _batch("poll-"))  # engagement for the delta to carry
    relay = worker.app.state.feedwise.writer.relay
    for ask in (DeltaAsk(0), DeltaAsk(0, since_post=0, since_ad=0, worker="w1")):
        http = owner.get("/v1/workers/delta", params={
            "since": ask.since, "since_post": ask.since_post, "since_ad": ask.since_ad,
            "worker": ask.worker})
        assert http.status_code == 200
        got = json.loads(relay.submit(ask).result(10))
        assert got == http.json()
        assert len(got["events"]["user_id"]) >= 18


def test_the_owner_recomputes_the_lists_and_the_worker_takes_them_from_its_poll(pair) -> None:  # noqa: ANN001
    owner, worker, w, _ = pair
    ost, wst = owner.app.state.feedwise, worker.app.state.feedwise
    assert ost._lists is not None and wst._lists is not None  # noqa: SLF001
    o_lists, o_refresher = ost._lists[1], ost._lists[2]  # noqa: SLF001
    _, w_lists, w_refresher = wst._lists  # noqa: SLF001
    assert not w_refresher.recompute and w_refresher._thread is None  # noqa: SLF001
    _post(owner, w["admin"], _batch("lists-"))  # likes of u0..u19
    ost.writer.call(lambda store: None).result(10)  # landed and noted
    assert o_refresher.pending() >= 18
    while o_refresher.pending():
        o_refresher.run_once()
    users = [u for u in o_lists.overlay if u in {f"u{j}" for j in range(20)}]
    assert len(users) >= 18
    wst.poll()
    assert w_refresher.pending() == 0  # noted for the fold-in, never recomputed here
    assert w_refresher.history_of("u1")  # the engagement itself did arrive
    for u in users:  # the owner's lists, bit for bit
        o_row, w_row = o_lists.overlay[u], w_lists.overlay[u]
        assert np.array_equal(o_row[0], w_row[0]) and np.array_equal(o_row[1], w_row[1])
        assert o_row[2] == w_row[2]
        assert (o_row[3] is None) == (w_row[3] is None)
        assert o_row[3] is None or np.array_equal(o_row[3], w_row[3])
        assert w_lists.row(u)[0].tolist() == o_lists.row(u)[0].tolist()
    seq = wst._lists_seq  # noqa: SLF001
    assert seq == ost.worker_lists.seq >= len(users)
    wst.poll()  # nothing new: the cursor stays
    assert wst._lists_seq == seq  # noqa: SLF001
