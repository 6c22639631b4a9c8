"""A live uvicorn on 127.0.0.1 driven by httpx: hot swap under load, concurrent ingestion."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from service_world import LiveServer, make_world

from feedwise.server.app import create_app
from feedwise.store import EventStore


def _feeds(url: str, key: str, n_requests: int, out: list, errors: list) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                      timeout=30) as c:
        for i in range(n_requests):
            try:
                r = c.get(f"/v1/users/u{i % 50}/feed?n=5")
            except httpx.HTTPError as e:  # a dropped connection is a failure too
                errors.append(repr(e))
                continue
            if r.status_code != 200 or len(r.json()["slots"]) != 5:
                errors.append((r.status_code, r.text[:200]))
            else:
                out.append(r.json()["model_version"])


def test_hot_swap_under_concurrent_requests_fails_nothing(tmp_path):
    world = make_world(tmp_path)
    srv = LiveServer(create_app(world.settings)).start()
    try:
        versions: list[str] = []
        errors: list = []
        threads = [threading.Thread(target=_feeds, args=(srv.url, world.read, 80, versions,
                                                         errors)) for _ in range(4)]
        for t in threads:
            t.start()
        with httpx.Client(base_url=srv.url, headers=world.headers(world.admin),
                          timeout=30) as admin:
            for target in ("v0002", "v0001", "v0002"):
                while len(versions) < {"v0002": 60, "v0001": 160}[target] and any(
                        t.is_alive() for t in threads) and len(versions) < 300:
                    time.sleep(0.01)
                r = admin.post(f"/v1/models/{target}/promote")
                assert r.status_code == 200 and r.json()["version"] == target
        for t in threads:
            t.join(120)
        assert errors == []
        assert len(versions) == 320
        assert {"v0001", "v0002"} <= set(versions)
        # the last promotion holds (the feed threads may all finish before it lands)
        with httpx.Client(base_url=srv.url, headers=world.headers(world.read)) as c:
            assert c.get("/v1/users/u1/feed?n=5").json()["model_version"] == "v0002"
    finally:
        srv.stop()


def test_server_picks_up_a_promotion_written_by_another_process(tmp_path):
    world = make_world(tmp_path, reload_interval_s=0.05)
    srv = LiveServer(create_app(world.settings)).start()
    try:
        with httpx.Client(base_url=srv.url, headers=world.headers(world.read)) as c:
            assert c.get("/v1/models/current").json()["version"] == "v0001"
            world.registry.promote("v0002", reason="test")  # what `feedwise retrain` does
            seen = None
            for _ in range(400):  # bounded wait for the watcher
                seen = c.get("/v1/models/current").json()["version"]
                if seen == "v0002":
                    break
                time.sleep(0.025)
            assert seen == "v0002"
            assert c.get("/v1/users/u1/feed?n=3").json()["model_version"] == "v0002"
    finally:
        srv.stop()


def test_concurrent_ingestion_and_feeds_lose_no_event(tmp_path):
    world = make_world(tmp_path)
    with EventStore(world.settings.db, read_only=True) as s:
        before = s.count_events()
    srv = LiveServer(create_app(world.settings)).start()
    stopped = False
    try:
        def post(worker: int) -> tuple[int, int]:
            accepted = dups = 0
            # admin: an ingest key is never told which rows were stored before
            with httpx.Client(base_url=srv.url, headers=world.headers(world.admin),
                              timeout=60) as c:
                for b in range(10):
                    batch = [{"event_id": f"L{worker}-{b}-{j}", "user_id": f"u{j % 40}",
                              "item_id": f"i{j % 60}", "kind": "click",
                              "ts": "2024-03-01T00:00:00Z"} for j in range(200)]
                    r = c.post("/v1/events", json=batch)
                    assert r.status_code == 200
                    accepted += r.json()["accepted"]
                    if b == 3:  # a client retry of an already-stored batch
                        dups += c.post("/v1/events", json=batch).json()["duplicates"]
            return accepted, dups

        versions: list[str] = []
        errors: list = []
        readers = [threading.Thread(target=_feeds, args=(srv.url, world.read, 60, versions,
                                                         errors)) for _ in range(3)]
        for t in readers:
            t.start()
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(post, range(4)))
        for t in readers:
            t.join(120)
        assert errors == []
        assert [r[0] for r in results] == [2000] * 4
        assert [r[1] for r in results] == [200] * 4
        srv.stop()
        stopped = True
        with EventStore(world.settings.db, read_only=True) as s:
            assert s.count_events() == before + 8000 + len(versions) * 5
            assert s.scalar("SELECT count(*) FROM events WHERE kind = 'impression'") == len(
                versions) * 5
    finally:
        if not stopped:
            srv.stop()
