"""The rights through the HTTP API: consent per flag, DELETE (erasure) and export."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from privacy_service import make_service
from privacy_world import TARGET, digests, scan_store

from feedwise.privacy import Pseudonymizer
from feedwise.server.app import create_app
from feedwise.store import EventStore

PERSONAL_REASONS = ("recommended for you", "whom you follow", "matches #")


@pytest.fixture()
def service(tmp_path, monkeypatch):
    return make_service(tmp_path, monkeypatch)


def _feed(client, svc, user=TARGET, n=12):
    r = client.get(f"/v1/users/{user}/feed", params={"n": n}, headers=svc.headers(svc.read))
    assert r.status_code == 200, r.text
    return r.json()["slots"]


def _put(client, svc, **consent):
    r = client.put(f"/v1/users/{TARGET}", json={"consent": consent},
                   headers=svc.headers(svc.admin))
    assert r.status_code == 200, r.text
    return r.json()


def _personal(slots) -> bool:
    return any(p in r for s in slots if s["kind"] == "organic" for r in s["reasons"]
               for p in PERSONAL_REASONS)


def test_consent_flags_through_api_take_effect_next_request(service):
    svc = service
    with TestClient(create_app(svc.settings)) as client:
        slots = [s for _ in range(3) for s in _feed(client, svc)]
        assert _personal(slots)
        assert "targeted" in {s["campaign_id"] for s in slots if s["kind"] == "ad"}
        recs = client.get(f"/v1/users/{TARGET}/recommendations",
                          headers=svc.headers(svc.read)).json()["items"]

        out = _put(client, svc, personalization=False, ads=True, analytics=True)
        served = client.app.state.feedwise.served
        assert not served.model.knows_user(client.app.state.feedwise.user_key(TARGET))
        assert out["user_id"] == TARGET and out["consent"]["personalization"] is False
        slots = [s for _ in range(3) for s in _feed(client, svc)]
        assert slots and not _personal(slots)
        anon = client.get("/v1/users/somebody-new/recommendations",
                          headers=svc.headers(svc.read)).json()["items"]
        got = client.get(f"/v1/users/{TARGET}/recommendations",
                         headers=svc.headers(svc.read)).json()["items"]
        assert [i["item_id"] for i in got] == [i["item_id"] for i in anon] != \
            [i["item_id"] for i in recs]

        _put(client, svc, personalization=True, ads=False, analytics=True)
        slots = [s for _ in range(3) for s in _feed(client, svc)]
        ads = [s for s in slots if s["kind"] == "ad"]
        assert ads and {s["campaign_id"] for s in ads} == {"contextual"}

        _put(client, svc, personalization=True, ads=True, analytics=False)
        exported = client.get(f"/v1/users/{TARGET}/export", headers=svc.headers(svc.admin))
        log = exported.json()["tables"]["consent_log"]
        assert [(r["flag"], r["granted"]) for r in log if r["flag"] == "analytics"][-1] == \
            ("analytics", False)
        assert {r["source"] for r in log} == {"api"}
        state = client.app.state.feedwise
        state.writer.call(lambda s: None).result(10)
        from datetime import UTC, datetime, timedelta

        from feedwise.analytics.scope import Scope

        now = datetime.now(UTC)
        with Scope(state.store, now - timedelta(days=400), now + timedelta(days=1)) as s:
            assert s.scalar("SELECT count(*) FROM ev WHERE user_id = ?",
                            [state.user_key(TARGET)]) == 0
            assert s.scalar("SELECT count(*) FROM ev") > 0


def test_delete_and_export_through_api(service):
    svc = service
    key = Pseudonymizer(__import__("privacy_world").SECRET)(TARGET)
    with TestClient(create_app(svc.settings)) as client:
        for _ in range(2):
            _feed(client, svc)  # impressions of TARGET are logged
        state = client.app.state.feedwise
        state.writer.call(lambda s: None).result(10)
        held = state.store.events("user_id = ?", [key])
        assert len(held) > svc.world.target_events
        r = client.get(f"/v1/users/{TARGET}/export", headers=svc.headers(svc.admin))
        assert r.status_code == 200
        export = r.json()
        assert {e["event_id"] for e in export["tables"]["events"]} == set(held["event_id"])
        assert client.get(f"/v1/users/{TARGET}/export",
                          headers=svc.headers(svc.read)).status_code == 403

        before = client.get(f"/v1/users/{TARGET}/recommendations",
                            headers=svc.headers(svc.read)).json()["items"]
        r = client.delete(f"/v1/users/{TARGET}", headers=svc.headers(svc.admin))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["deleted"]["events"] == len(held) and body["models"] >= 1
        assert body["engines"] == 1
        served = state.served
        assert not served.model.knows_user(key)
        anon = client.get("/v1/users/somebody-new/recommendations",
                          headers=svc.headers(svc.read)).json()["items"]
        after = client.get(f"/v1/users/{TARGET}/recommendations",
                           headers=svc.headers(svc.read)).json()["items"]
        assert [i["item_id"] for i in after] == [i["item_id"] for i in anon] != \
            [i["item_id"] for i in before]
        assert {i["reason"] for i in after} <= {"trending", "popular"}
        _feed(client, svc)  # a request after erasure logs nothing about the user
        events = [{"user_id": TARGET, "item_id": "p3", "kind": "like",
                   "ts": "2026-03-01T00:00:00Z"}]
        # the admin key is told (an ingest key is not: tests/adversarial/test_16_probe_ids.py)
        r = client.post("/v1/events", json=events, headers=svc.headers(svc.admin))
        assert r.status_code in (200, 202), r.text
        assert r.json()["accepted"] == 0 and r.json()["errors"][0]["field"] == "user_id"
        full = {"consent": {"personalization": True, "ads": True, "analytics": True}}
        assert client.put(f"/v1/users/{TARGET}", json=full,
                          headers=svc.headers(svc.admin)).status_code == 404
        assert client.patch(f"/v1/users/{TARGET}", json={},
                            headers=svc.headers(svc.admin)).status_code == 404
        state.writer.call(lambda s: None).result(10)
    with EventStore(svc.settings.db, pseudonymizer=svc.world.pseudonymizer) as store:
        print(store.events("user_id = ?", [key]).to_string())
        assert scan_store(store, {TARGET, key} | digests(TARGET) | digests(key)) == []
        assert store.ingest(svc.world.events_file).erased == svc.world.target_events + 2


def test_server_purges_on_schedule(service, monkeypatch):
    svc = service
    monkeypatch.setenv("FEEDWISE_RETENTION_DAYS", "1")  # the world's events are older
    with TestClient(create_app(svc.settings)) as client:
        state = client.app.state.feedwise
        assert state.retention is not None
        deadline = time.monotonic() + 10
        while state.retention.runs == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert state.retention.runs >= 1
        assert state.store.count_events() == 0
