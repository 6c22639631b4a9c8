"""``/v1/admin/...``: snapshots are consistent under concurrent writes; exec needs the runner
``feedwise serve`` installs; reload swaps at once; every route needs an admin key."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from deploy_world import world_events
from fastapi.testclient import TestClient

from feedwise.models import get_model
from feedwise.registry import ModelRegistry
from feedwise.server.app import create_app
from feedwise.server.auth import create_key
from feedwise.server.settings import Settings
from feedwise.store import EventStore

BATCH = 25


def _app(tmp_path):  # noqa: ANN202 - (app, admin key, ingest key, registry)
    db = tmp_path / "s.duckdb"
    with EventStore(db) as store:
        store.ingest(world_events(n_users=40, per_user=4))
        data = store.interactions()
        sid = store.store_id()
    reg = ModelRegistry(tmp_path / "s.models", store_id=sid)
    reg.promote(reg.register(get_model("popularity").fit(data)).version)
    keys = tmp_path / "keys.json"
    admin, _ = create_key(keys, ["admin"])
    ingest, _ = create_key(keys, ["ingest"])
    settings = Settings(db=str(db), registry=str(reg.root), keys_file=str(keys),
                        reload_interval_s=0, log_impressions=False)
    return create_app(settings), admin, ingest, reg


def test_snapshots_hold_whole_batches_while_events_land(tmp_path) -> None:
    app, admin, ingest, _ = _app(tmp_path)
    h_admin = {"Authorization": f"Bearer {admin}"}
    stop = threading.Event()
    sent: list[int] = []
    with TestClient(app) as c:
        base = c.app.state.feedwise.store.count_events()

        def produce() -> None:
            t0 = datetime(2024, 3, 1, tzinfo=UTC)
            b = 0
            while not stop.is_set() and b < 200:
                events = [{"event_id": f"b{b}-{j}", "user_id": f"u{j}", "item_id": f"i{j}",
                           "kind": "click", "ts": (t0 + timedelta(seconds=b)).isoformat()}
                          for j in range(BATCH)]
                r = c.post("/v1/events", json=events,
                           headers={"Authorization": f"Bearer {ingest}"})
                assert r.status_code == 200, r.text
                sent.append(b)
                b += 1

        t = threading.Thread(target=produce)
        t.start()
        counts = []
        try:
            for _ in range(6):
                r = c.post("/v1/admin/snapshot", headers=h_admin)
                assert r.status_code == 200, r.text
                path = r.json()["path"]
                with EventStore(path, read_only=True) as snap:
                    counts.append(snap.count_events())
                    assert snap.store_id() == r.json()["store_id"]
        finally:
            stop.set()
            t.join(60)
        assert sent
        assert all((n - base) % BATCH == 0 for n in counts), (base, counts)
        assert counts == sorted(counts)
        # without an admin key: refused
        assert c.post("/v1/admin/snapshot").status_code == 401
        r = c.post("/v1/admin/snapshot", headers={"Authorization": f"Bearer {ingest}"})
        assert r.status_code == 403


def test_exec_needs_the_runner_of_feedwise_serve_and_reload_swaps(tmp_path) -> None:
    app, admin, _, reg = _app(tmp_path)
    h = {"Authorization": f"Bearer {admin}"}
    with TestClient(app) as c:
        r = c.post("/v1/admin/exec", json={"argv": ["kpis"]}, headers=h)
        assert r.status_code == 409 and "feedwise serve" in r.json()["detail"]
        seen: list[list[str]] = []

        def runner(argv, store):  # noqa: ANN001, ANN202
            seen.append(argv)
            return {"exit_code": 3, "stdout": f"{store.count_events()} events\n",
                    "stderr": ""}

        c.app.state.admin_runner = runner
        r = c.post("/v1/admin/exec", json={"argv": ["kpis", "-f", "json"]}, headers=h)
        assert r.status_code == 200
        assert r.json()["exit_code"] == 3 and r.json()["stdout"] == "160 events\n"
        assert seen == [["kpis", "-f", "json"]]
        assert c.post("/v1/admin/exec", json={"argv": []}, headers=h).status_code == 422
        # a promotion is served at once on /reload (the watcher is off here)
        state = c.app.state.feedwise
        with EventStore(tmp_path / "other.duckdb") as other:
            other.ingest(world_events(n_users=20, per_user=3, seed=3))
            data = other.interactions()
        reg.promote(reg.register(get_model("itemknn").fit(data)).version)
        assert state.served.version == "v0001"
        r = c.post("/v1/admin/reload", headers=h)
        assert r.json() == {"swapped": True, "version": "v0002"}
        assert state.served.version == "v0002"


def test_snapshots_left_by_their_readers_go_when_the_service_closes(tmp_path) -> None:
    from pathlib import Path

    app, admin, _, _ = _app(tmp_path)
    with TestClient(app) as c:
        r = c.post("/v1/admin/snapshot", headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 200, r.text
        path = Path(r.json()["path"])
        assert path.is_file()
    assert not path.exists()
