"""The HTTP API against the real app (TestClient): auth, bodies, idempotency, resources."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from service_world import make_world

from feedwise.server.app import create_app
from feedwise.store import EventStore

EV = {"user_id": "u1", "item_id": "i1", "kind": "like", "ts": "2024-02-01T10:00:00Z"}


def count(world, where: str = "TRUE", params: list | None = None) -> int:
    """Events in the world's store (opened read-only: call only while no app runs)."""
    with EventStore(world.settings.db, read_only=True) as s:
        return int(s.scalar(f"SELECT count(*) FROM events WHERE {where}", params))


def live_count(client) -> int:
    """Events in the running app's store, once its writer has landed what is queued."""
    state = client.app.state.feedwise
    state.writer.call(lambda s: None).result(10)
    return state.store.count_events()


# ---------------------------------------------------------------------- auth
@pytest.mark.parametrize("method,path,body", [
    ("get", "/v1/users/u1/feed", None), ("get", "/v1/users/u1/recommendations", None),
    ("get", "/v1/items/i1/similar", None), ("post", "/v1/events", [EV]),
    ("put", "/v1/items/x", {}), ("get", "/v1/campaigns", None), ("get", "/v1/reports/kpis", None),
    ("post", "/v1/models/v0002/promote", None)])
def test_missing_or_wrong_key_is_401_without_detail(client, world, method, path, body):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"},
                    {"Authorization": f"Bearer {world.admin}x"},
                    {"Authorization": f"Bearer {world.admin[:-1]}"}):
        r = client.request(method, path, json=body, headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.json() == {"detail": "unauthorized"}
        assert r.headers["www-authenticate"] == "Bearer"


def test_scopes_are_enforced_with_403(client, world):
    read, ingest = world.headers(world.read), world.headers(world.ingest)
    assert client.post("/v1/events", json=[EV], headers=read).status_code == 403
    assert client.get("/v1/users/u1/feed", headers=ingest).status_code == 403
    assert client.put("/v1/items/x", json={}, headers=read).status_code == 403
    assert client.patch("/v1/campaigns/c", json={}, headers=read).json() == {"detail": "forbidden"}
    assert client.post("/v1/events", json=[EV], headers=ingest).status_code == 200
    assert client.get("/v1/users/u1/feed", headers=read).status_code == 200
    # admin implies every scope
    assert client.get("/v1/users/u1/feed", headers=world.headers(world.admin)).status_code == 200


def test_keys_file_holds_only_hashes(world):
    text = (world.root / "keys.json").read_text()
    for key in (world.admin, world.read, world.ingest):
        assert key not in text and key.split("_", 2)[2] not in text


def test_public_endpoints_and_cors_off_by_default(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["model_version"] == "v0001"
    assert client.get("/docs").status_code == 200
    assert "/v1/events" in client.get("/openapi.json").json()["paths"]
    r = client.options("/v1/users/u1/feed", headers={"Origin": "https://evil.example",
                                                     "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in r.headers


# ---------------------------------------------------------------------- feed & recs
def test_feed_slots_are_logged_as_impressions_with_propensity_and_request_id(client, world):
    h = {**world.headers(world.read), "X-Request-ID": "req-42"}
    r = client.get("/v1/users/u1/feed?n=5", headers=h)
    assert r.status_code == 200
    body = r.json()
    assert body["request_id"] == "req-42" and len(body["slots"]) == 5
    assert all(s["propensity"] == 1.0 and s["reasons"] for s in body["slots"])
    # seen items are not served again
    store = client.app.state.feedwise.store
    seen = set(store.query("SELECT item_id FROM events WHERE user_id='u1' AND kind='click'")
               ["item_id"])
    assert not seen & {s["item_id"] for s in body["slots"]}
    client.get("/v1/users/u1/feed?n=5", headers=h)  # a retry logs nothing twice
    live_count(client)  # waits for the writer
    imp = store.query("SELECT * FROM events WHERE kind='impression' ORDER BY position")
    assert len(imp) == 5
    assert list(imp["item_id"]) == [x["item_id"] for x in body["slots"]]
    assert (imp["propensity"] == 1.0).all()
    assert all(json.loads(c)["request_id"] == "req-42" for c in imp["context"])


def test_unknown_user_gets_a_non_personal_feed_and_unknown_item_is_404(client, world):
    h = world.headers(world.read)
    r = client.get("/v1/users/nobody/feed?n=3", headers=h)
    assert r.status_code == 200 and len(r.json()["slots"]) == 3
    r = client.get("/v1/items/nope/similar", headers=h)
    assert r.status_code == 404
    r = client.get("/v1/items/i0/similar?n=3", headers=h)
    assert r.status_code == 200 and len(r.json()["items"]) == 3
    r = client.get("/v1/users/u2/recommendations?n=4", headers=h)
    assert [x["rank"] for x in r.json()["items"]] == [1, 2, 3, 4]


@pytest.mark.parametrize("query", ["n=0", "n=-1", "n=abc", "n=100000", "n=201"])
def test_bad_n_is_422(client, world, query):
    r = client.get(f"/v1/users/u1/feed?{query}", headers=world.headers(world.read))
    assert r.status_code == 422


def test_consent_withdrawn_makes_feed_non_personal(client, world):
    h = world.headers(world.admin)
    personal = client.get("/v1/users/u1/recommendations?n=5", headers=h).json()["items"]
    r = client.patch("/v1/users/u1", json={"consent": {"personalization": False}}, headers=h)
    assert r.status_code == 200 and r.json()["consent"]["personalization"] is False
    after = client.get("/v1/users/u1/recommendations?n=5", headers=h).json()["items"]
    assert [x["item_id"] for x in after] != [x["item_id"] for x in personal]
    assert all(not x["reason"].startswith("because") for x in after)
    assert client.get("/v1/users/u1", headers=h).json()["consent"]["personalization"] is False


# ---------------------------------------------------------------------- events
def test_events_store_valid_rows_and_report_bad_ones(client, world):
    before = live_count(client)
    batch = [EV, {**EV, "kind": "bogus"}, {**EV, "ts": "yesterday"}, "str",
             {**EV, "extra": 1}, {**EV, "dwell_ms": -5}, {**EV, "user_id": {"a": 1}},
             {**EV, "item_id": "i2", "propensity": 0.5, "context": {"a": 1}}]
    r = client.post("/v1/events", json=batch, headers=world.headers(world.ingest))
    assert r.status_code == 200
    b = r.json()
    assert (b["received"], b["accepted"], b["duplicates"], b["rejected"]) == (8, 2, 0, 6)
    assert [(e["index"], e["field"]) for e in b["errors"]] == [
        (1, "kind"), (2, "ts"), (3, ""), (4, "extra"), (5, "dwell_ms"), (6, "user_id")]
    assert all(e["reason"] for e in b["errors"])
    assert live_count(client) == before + 2


def test_event_retries_are_idempotent(client, world):
    # an admin key sees what the store did (an ingest key sees no difference between a new
    # row and a stored one: tests/adversarial/test_16_probe_ids.py)
    h = world.headers(world.admin)
    batch = [{**EV, "item_id": f"i{i}"} for i in range(10)] + [{**EV, "event_id": "e-1"}]
    before = live_count(client)
    first = client.post("/v1/events", json=batch, headers=h).json()
    assert (first["accepted"], first["duplicates"]) == (11, 0)
    for _ in range(3):
        again = client.post("/v1/events", json=batch, headers=h).json()
        assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 11, 0)
    # a partly new retry stores only the new rows; duplicates inside one batch count once
    more = batch + [{**EV, "item_id": "i99"}, {**EV, "item_id": "i99"}]
    r = client.post("/v1/events", json=more, headers=h).json()
    assert (r["accepted"], r["duplicates"]) == (1, 12)
    assert live_count(client) == before + 12
    # the ingest key's retry is just as idempotent; only duplicates within the batch show
    ing = client.post("/v1/events", json=more, headers=world.headers(world.ingest)).json()
    assert (ing["accepted"], ing["duplicates"], ing["rejected"]) == (12, 1, 0)
    assert live_count(client) == before + 12


def test_ndjson_batches_with_a_broken_line(client, world):
    lines = [json.dumps(EV), "{not json", json.dumps({**EV, "item_id": "i7"}), ""]
    r = client.post("/v1/events", content="\n".join(lines).encode(),
                    headers={**world.headers(world.ingest),
                             "Content-Type": "application/x-ndjson"})
    b = r.json()
    assert r.status_code == 200 and b["accepted"] == 2 and b["received"] == 3
    assert b["errors"][0]["index"] == 1


def test_an_event_with_broken_unicode_is_rejected_alone(client, world):
    """A lone UTF-16 surrogate (valid JSON, not valid text) is one bad row, not a 500 that
    loses the valid rows of the batch; the error names the field."""
    good = json.dumps({**EV, "item_id": "i-unicode-ok"})
    body = ("[" + good + "," + json.dumps(EV)[:-1] + ', "session_id": "s\\ud800"},'
            '{"\\udc00": 1}]').encode()
    assert b"\\ud800" in body and b"\\udc00" in body
    before = live_count(client)
    r = client.post("/v1/events", content=body, headers={
        **world.headers(world.ingest), "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    b = r.json()
    assert (b["received"], b["accepted"], b["rejected"]) == (3, 1, 2)
    assert [e["index"] for e in b["errors"]] == [1, 2]
    assert b["errors"][0]["field"] == "session_id" and "surrogate" in b["errors"][0]["reason"]
    assert live_count(client) == before + 1


@pytest.mark.parametrize("path,body", [
    ("/v1/items/p-bad", b'{"title": "x\\ud800"}'),
    ("/v1/users/u-bad", b'{"attributes": {"name": "x\\ud800"}}'),
    ("/v1/campaigns/c-bad", b'{"advertiser_id": "a\\udc00", "bid": 1}'),
    ("/v1/campaigns/c-nan", b'{"advertiser_id": "a", "bid": NaN}')])
def test_bodies_with_broken_unicode_or_nan_are_422_naming_the_field(client, world, path,
                                                                    body):
    """The 422 used to echo the input, and rendering a lone surrogate or NaN failed: 500."""
    r = client.put(path, content=body, headers={**world.headers(world.admin),
                                                "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    field = {"p-bad": "title", "u-bad": "attributes.name", "c-bad": "advertiser_id",
             "c-nan": "bid"}[path.split("/")[-1]]
    assert field in r.text
    assert client.get(path, headers=world.headers(world.admin)).status_code == 404


@pytest.mark.parametrize("body,status", [(b"{not json", 400), (b"[1,2", 400), (b"42", 422),
                                         (b"\xff\xfe", 400), (b'[{"value": NaN}]', 400)])
def test_malformed_event_bodies(client, world, body, status):
    r = client.post("/v1/events", content=body, headers={**world.headers(world.ingest),
                                                         "Content-Type": "application/json"})
    assert r.status_code == status, r.text


def test_huge_payloads_are_413(tmp_path):
    world = make_world(tmp_path, max_body_bytes=10_000, max_batch_events=50)
    with TestClient(create_app(world.settings)) as c:
        h = world.headers(world.ingest)
        r = c.post("/v1/events", json=[EV] * 51, headers=h)
        assert r.status_code == 413
        r = c.post("/v1/events", content=b"[" + b" " * 20_000 + b"]",
                   headers={**h, "Content-Type": "application/json"})
        assert r.status_code == 413
        assert c.post("/v1/events", json=[EV] * 50, headers=h).status_code == 200


# ---------------------------------------------------------------------- resources
def test_items_roundtrip_and_wrong_types(client, world):
    h = world.headers(world.admin)
    r = client.put("/v1/items/p1", json={"title": "Hello", "tags": ["a", "b"]}, headers=h)
    assert r.status_code == 200
    got = client.get("/v1/items/p1", headers=world.headers(world.read)).json()
    assert got["title"] == "Hello" and got["tags"] == ["a", "b"] and got["item_id"] == "p1"
    assert client.get("/v1/items/missing", headers=h).status_code == 404
    for bad in ({"tags": "notalist"}, {"kind": "video"}, {"unknown": 1}, [1, 2]):
        assert client.put("/v1/items/p2", json=bad, headers=h).status_code == 422
    page = client.get("/v1/items?limit=10", headers=h).json()
    assert [i["item_id"] for i in page["items"]] == ["p1"]


def test_campaigns_put_get_patch(client, world):
    h = world.headers(world.admin)
    body = {"advertiser_id": "adv", "name": "spring", "bid": 2.5, "daily_budget": 100,
            "target_tags": ["x"], "frequency_caps": [{"max_impressions": 3, "window_s": 86400}]}
    assert client.put("/v1/campaigns/c1", json=body, headers=h).status_code == 200
    r = client.patch("/v1/campaigns/c1", json={"status": "paused", "daily_budget": 50},
                     headers=h)
    assert r.status_code == 200
    c = client.get("/v1/campaigns/c1", headers=world.headers(world.read)).json()
    assert (c["status"], c["daily_budget"], c["bid"], c["frequency_caps"]) == (
        "paused", 50.0, 2.5, [{"max_impressions": 3, "window_s": 86400.0}])
    assert c["creatives"] == [{"item_id": "c1-creative", "title": None, "text": None,
                               "tags": [], "quality": 1.0}]
    assert client.put("/v1/campaigns/c2", json={"bid": 1}, headers=h).status_code == 422
    assert client.patch("/v1/campaigns/nope", json={"status": "paused"},
                        headers=h).status_code == 404
    for bad in ({"bid": -1}, {"status": "deleted"}, {"daily_budget": "lots"}, {"bid": 0}):
        assert client.patch("/v1/campaigns/c1", json=bad, headers=h).status_code == 422
    listed = client.get("/v1/campaigns?status=paused", headers=h).json()["campaigns"]
    assert [x["campaign_id"] for x in listed] == ["c1"]


def test_reports_and_dashboard(client, world):
    r = client.get("/v1/reports/kpis?days=3650", headers=world.headers(world.read))
    assert r.status_code == 200 and r.json()["source"] in ("analytics", "basic")
    page = client.get("/dashboard")
    assert page.status_code == 200 and "/v1/reports/kpis" in page.text
    assert world.admin not in page.text


def test_metrics_count_feeds_and_events(client, world):
    client.get("/v1/users/u1/feed?n=4", headers=world.headers(world.read))
    client.post("/v1/events", json=[{**EV, "item_id": "i3"}],
                headers=world.headers(world.ingest))
    client.app.state.feedwise.writer.call(lambda s: None).result(10)
    assert client.get("/metrics").status_code == 401  # not public by default
    text = client.get("/metrics", headers=world.headers(world.admin)).text
    assert 'feedwise_model_version_info{model="itemknn",version="v0001"} 1.0' in text
    assert "feedwise_feeds_served_total 1.0" in text
    assert 'feedwise_request_seconds_count{method="GET",route="/v1/users/{user_id}/feed"' in text
    # 4 impressions + 1 posted event
    assert "feedwise_events_ingested_total 5.0" in text


def test_promote_swaps_model_and_unknown_version_is_404(client, world):
    h = world.headers(world.admin)
    r = client.post("/v1/models/v0002/promote", headers=h)
    assert r.status_code == 200 and r.json()["version"] == "v0002"
    assert client.get("/v1/users/u1/feed?n=2", headers=h).json()["model_version"] == "v0002"
    assert client.post("/v1/models/v0099/promote", headers=h).status_code == 404
    assert client.post("/v1/models/latest/promote", headers=h).status_code == 422


def test_not_ready_without_a_promoted_model(tmp_path):
    world = make_world(tmp_path)
    (world.registry.root / "promoted.json").unlink()
    with TestClient(create_app(world.settings)) as c:
        assert c.get("/readyz").status_code == 503
        r = c.get("/v1/users/u1/feed", headers=world.headers(world.read))
        assert r.status_code == 503
        assert c.get("/healthz").status_code == 200


def test_shutdown_flushes_queued_writes(tmp_path):
    world = make_world(tmp_path)
    before = count(world)
    with TestClient(create_app(world.settings)) as c:
        for i in range(20):
            c.get(f"/v1/users/u{i}/feed?n=5", headers=world.headers(world.read))
    # the app is shut down here: every queued impression must have landed
    assert count(world) == before + 100


def test_feed_engine_serves_when_the_catalogue_has_posts(tmp_path):
    pytest.importorskip("feedwise.feed.engine")
    world = make_world(tmp_path)
    with TestClient(create_app(world.settings)) as c:
        h = world.headers(world.admin)
        for i in range(24):
            r = c.put(f"/v1/items/i{i}", json={"author_id": f"a{i % 7}", "tags": [f"t{i % 4}"]},
                      headers=h)
            assert r.status_code == 200
        r = c.put("/v1/campaigns/c1", json={"advertiser_id": "a", "bid": 500,
                                            "target_tags": ["t1"]}, headers=h)
        assert r.status_code == 200
        body = c.get("/v1/users/u1/feed?n=10", headers=h).json()
        assert body["policy"] != "model:itemknn" and len(body["slots"]) == 10
        assert all(0 < s["propensity"] <= 1 for s in body["slots"])
        assert c.patch("/v1/campaigns/c1", json={"status": "paused"},
                       headers=h).status_code == 200
        assert c.get("/v1/users/u2/feed?n=10", headers=h).status_code == 200


@pytest.mark.parametrize("method,body", [
    ("delete", None), ("patch", {"consent": {"personalization": False}}),
    ("put", {"consent": {"personalization": False, "ads": True, "analytics": True}})])
def test_erasure_or_objection_during_a_model_swap_reaches_the_new_model(
        tmp_path, monkeypatch, method, body):
    """A swap that loaded its model (and dropped the users erased so far) before the
    erasure committed must not go on to serve the erased user's profile."""
    import threading
    import time

    from feedwise.models import get_model
    from feedwise.server import deps

    world = make_world(tmp_path)
    with EventStore(world.settings.db, read_only=True) as s:
        v3 = world.registry.register(get_model("itemknn", k=10).fit(s.interactions()))
    loaded, go = threading.Event(), threading.Event()
    forget = deps.forget_erased

    def slow_forget(store, model):  # noqa: ANN001, ANN202
        n = forget(store, model)
        if model is not None and loaded.is_set() is False:
            loaded.set()
            go.wait(10)
        return n

    with TestClient(create_app(world.settings)) as c:
        state = c.app.state.feedwise
        monkeypatch.setattr(deps, "forget_erased", slow_forget)
        world.registry.promote(v3.version)
        swap = threading.Thread(target=state.reload)
        swap.start()
        assert loaded.wait(10)
        out = {}
        req = threading.Thread(target=lambda: out.setdefault("r", c.request(
            method, "/v1/users/u1", json=body, headers=world.headers(world.admin))))
        req.start()
        time.sleep(0.5)
        go.set()
        swap.join(10)
        req.join(10)
        assert out["r"].status_code == 200, out["r"].text
        assert state.served.version == v3.version
        assert not state.served.model.knows_user("u1")


def test_get_user_reports_null_consent_flags_as_granted(tmp_path):
    """Rows upserted without the flag columns hold NULLs, which the service applies as
    granted: GET reports the same."""
    import pandas as pd

    from feedwise.privacy import get_consent

    w = make_world(tmp_path)
    with EventStore(w.settings.db) as store:
        store.upsert_users(pd.DataFrame({"user_id": ["u-null"], "attributes": ['{"a": 1}']}))
        assert store.scalar("SELECT consent_personalization IS NULL AND consent_ads IS NULL "
                            "AND consent_analytics IS NULL FROM users WHERE user_id = 'u-null'")
        assert get_consent(store, "u-null").ads is True
    with TestClient(create_app(w.settings)) as c:
        r = c.get("/v1/users/u-null", headers=w.headers(w.admin))
        assert r.status_code == 200
        assert r.json()["consent"] == {"personalization": True, "ads": True, "analytics": True}
        st = c.app.state.feedwise
        assert "u-null" not in st.no_personalization and "u-null" not in st.no_ads


def test_cors_preflight_allows_delete_for_erasure(tmp_path):
    w = make_world(tmp_path, cors_origins=["https://admin.example"])
    with TestClient(create_app(w.settings)) as c:
        r = c.options("/v1/users/u1", headers={"Origin": "https://admin.example",
                                               "Access-Control-Request-Method": "DELETE",
                                               "Access-Control-Request-Headers": "Authorization"})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://admin.example"
        assert "DELETE" in r.headers["access-control-allow-methods"]
        r = c.options("/v1/users/u1", headers={"Origin": "https://evil.example",
                                               "Access-Control-Request-Method": "DELETE"})
        assert "access-control-allow-origin" not in r.headers
