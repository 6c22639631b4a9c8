"""Item 11: deep JSON gave 500s.

100k-deep bodies gave ``RecursionError`` 500s; ``PUT /v1/users/x`` with attributes 500
levels deep committed, and ``GET`` on that user answered 500 from then on. Now every body
(and each NDJSON line) may nest at most ``MAX_JSON_DEPTH`` (32) levels, checked before it is
decoded: deeper answers 400 naming the limit (an NDJSON line: that row is reported and the
others land), on every route, with or without a key; nothing deeper is stored, and values
stored before the limit existed are sent back clipped, never as a 500.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from service_world import make_world

from feedwise.server.app import create_app
from feedwise.server.bodies import MAX_JSON_DEPTH, scan_json
from feedwise.store import EventStore

EV = {"user_id": "u1", "item_id": "i1", "kind": "click", "ts": "2024-03-01T00:00:00Z"}
DEEP = b"[" * 100_000 + b"]" * 100_000
FLAGS = {"personalization": True, "ads": True, "analytics": True}


def nested(depth: int) -> dict:
    """``{"x": {"x": ...}}`` ``depth`` objects deep (built without recursion)."""
    v: dict = {}
    for _ in range(depth - 1):
        v = {"x": v}
    return v


@pytest.fixture()
def client(world):
    with TestClient(create_app(world.settings), raise_server_exceptions=False) as c:
        yield c


def _json(client, method, path, body: bytes, key: str | None, world):
    return client.request(method, path, content=body,
                          headers={**world.headers(key), "Content-Type": "application/json"})


def test_deep_bodies_answer_400_on_every_route_never_500(client, world):
    for method, path, key in [("POST", "/v1/events", world.ingest),
                              ("PUT", "/v1/users/x", world.admin),
                              ("PATCH", "/v1/users/x", world.admin),
                              ("PUT", "/v1/items/i1", world.admin),
                              ("PUT", "/v1/campaigns/c1", world.admin),
                              ("PUT", "/v1/users/x", None)]:  # no key: still no 500
        r = _json(client, method, path, DEEP, key, world)
        assert r.status_code in (400, 401), (method, path, r.status_code, r.text[:200])
        if key is not None:
            assert r.status_code == 400 and f"deeper than {MAX_JSON_DEPTH}" in r.json()[
                "detail"], (method, path, r.text[:200])
    # just past the limit is refused too, and a body at the limit is read
    over = json.dumps([{**EV, "context": nested(MAX_JSON_DEPTH - 1)}]).encode()
    assert scan_json(over).depth == MAX_JSON_DEPTH + 1
    r = _json(client, "POST", "/v1/events", over, world.ingest, world)
    assert r.status_code == 400 and "32" in r.json()["detail"]
    ok = json.dumps([{**EV, "event_id": "at-limit", "context": nested(MAX_JSON_DEPTH - 2)}])
    r = _json(client, "POST", "/v1/events", ok.encode(), world.ingest, world)
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text


def test_a_deep_ndjson_line_is_reported_and_the_others_land(client, world):
    lines = [json.dumps({**EV, "event_id": "nd-1"}).encode(), DEEP, b"[[[[",
             json.dumps({**EV, "event_id": "nd-2", "context": nested(40)}).encode(),
             json.dumps({**EV, "event_id": "nd-3"}).encode()]
    r = client.post("/v1/events", content=b"\n".join(lines),
                    headers={**world.headers(world.ingest),
                             "Content-Type": "application/x-ndjson"})
    assert r.status_code == 200, r.text[:300]
    b = r.json()
    assert (b["received"], b["accepted"], b["rejected"]) == (5, 2, 3)
    errs = {e["index"]: e["reason"] for e in b["errors"]}
    assert "deeper than 32" in errs[1] and "deeper than 32" in errs[3]
    assert "not valid JSON" in errs[2]  # a broken line does not make the next ones deep


def test_user_attributes_are_bounded_so_get_always_answers(client, world):
    h = world.headers(world.admin)
    for depth in (MAX_JSON_DEPTH + 1, 500):
        r = client.put(f"/v1/users/deep{depth}", json={"consent": FLAGS,
                                                       "attributes": nested(depth)}, headers=h)
        assert r.status_code in (400, 422), r.text[:200]
        assert client.get(f"/v1/users/deep{depth}", headers=h).status_code == 404  # nothing
    # at the limit (the body: 1 + attributes' depth) it is stored and read back as sent
    attrs = nested(MAX_JSON_DEPTH - 1)
    r = client.put("/v1/users/ok", json={"consent": FLAGS, "attributes": attrs}, headers=h)
    assert r.status_code == 200, r.text[:200]
    got = client.get("/v1/users/ok", headers=h)
    assert got.status_code == 200 and got.json()["attributes"] == attrs


def test_attributes_stored_before_the_limit_are_read_back_clipped(tmp_path):
    world = make_world(tmp_path)
    deep_500 = json.dumps(nested(500))
    deep_5000 = '{"x":' * 5000 + "1" + "}" * 5000  # too deep for Python's decoder
    with EventStore(world.settings.db) as s:  # as an older version wrote them
        s.upsert_users(pd.DataFrame({"user_id": ["old500", "old5000"],
                                     "attributes": [deep_500, deep_5000]}))
    with TestClient(create_app(world.settings), raise_server_exceptions=False) as client:
        h = world.headers(world.admin)
        r = client.get("/v1/users/old500", headers=h)
        assert r.status_code == 200, r.text[:200]
        assert "nested deeper than 32 levels" in r.text
        r = client.get("/v1/users/old5000", headers=h)
        assert r.status_code == 200 and "_unreadable" in r.json()["attributes"]
        # and a PUT replaces them
        r = client.put("/v1/users/old500", json={"consent": FLAGS, "attributes": {"a": 1}},
                       headers=h)
        assert r.status_code == 200 and r.json()["attributes"] == {"a": 1}
