"""``feedwise serve --workers 2``: two worker processes serve feeds while the owner stands
by, connections kept open spread evenly over them, they learn a new post within the bound,
and every event and impression sent through any process is stored exactly once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from worker_world import served_world

from feedwise.store import EventStore

NOW = datetime.now(UTC)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_serve_learn_fresh_posts_and_lose_no_event(tmp_path: Path) -> None:
    w = served_world(tmp_path)
    port = _port()
    env = {**os.environ, "FEEDWISE_DB": str(w["db"]), "FEEDWISE_REGISTRY": str(w["registry"]),
           "FEEDWISE_KEYS_FILE": str(w["keys"]), "FEEDWISE_RELOAD_INTERVAL_S": "0.5",
           "FEEDWISE_IMPRESSIONS_FLUSH_S": "0.05",
           # the workers learn the new post below by their poll alone
           "FEEDWISE_LISTS_REFRESH_S": "60", "FEEDWISE_WORKER_POLL_S": "0.2"}
    proc = subprocess.Popen([sys.executable, "-c", "from feedwise.cli import app; app()",
                             "serve", "--port", str(port), "--workers", "2",
                             "--log-level", "warning"], env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    rh, ih = ({"Authorization": f"Bearer {w[k]}"} for k in ("read", "ingest"))
    ah = {"Authorization": f"Bearer {w['admin']}"}
    feeds = slots = 0
    workers: set[str] = set()
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2:  # the owner answers first; the workers join once loaded
            assert time.monotonic() < deadline and proc.poll() is None, "no workers came up"
            with httpx.Client(base_url=url, timeout=10) as c:  # a new connection each time
                try:
                    r = c.get("/v1/users/u1/feed?n=10", headers=rh)
                except httpx.HTTPError:
                    time.sleep(0.2)
                    continue
                assert r.status_code == 200
                feeds, slots = feeds + 1, slots + len(r.json()["slots"])
                workers.update({r.headers.get("x-feedwise-worker")} - {None})
            time.sleep(0.1)
        # connections kept open spread evenly over the workers, none to the owner
        # (server/tcp.py)
        clients = [httpx.Client(base_url=url, timeout=10) for _ in range(4)]
        by = []
        try:
            for c in clients:  # one after the other, each kept open
                r = c.get("/v1/users/u2/feed?n=10", headers=rh)
                feeds, slots = feeds + 1, slots + len(r.json()["slots"])
                by.append(r.headers.get("x-feedwise-worker"))
        finally:
            for c in clients:
                c.close()
        assert sorted(by.count(x) for x in (None, *workers)) == [0, 2, 2], by
        # a large page is composed by the owner (owner_feeds_above_n), a small one is not;
        # /metrics is the owner's
        with httpx.Client(base_url=url, timeout=10) as c:
            def composed_by_owner() -> float:
                text = c.get("/metrics", headers=ah).text
                return float(next(x.split()[-1] for x in text.splitlines()
                                  if x.startswith("feedwise_feeds_served_total")))

            n0 = composed_by_owner()
            r = c.get("/v1/users/u3/feed?n=10", headers=rh)
            feeds, slots = feeds + 1, slots + len(r.json()["slots"])
            n1 = composed_by_owner()
            r = c.get("/v1/users/u3/feed?n=80", headers=rh)
            assert r.status_code == 200 and len(r.json()["slots"]) > 50
            assert r.headers.get("x-feedwise-worker") in workers  # through a worker
            feeds, slots = feeds + 1, slots + len(r.json()["slots"])
            assert (n1, composed_by_owner()) == (n0, n0 + 1)
        # events through many connections (both processes), then a new #t0 post
        sent = 0
        for b in range(12):
            with httpx.Client(base_url=url, timeout=10) as c:
                batch = [{"event_id": f"x{b}-{j}", "user_id": f"u{(b * 7 + j) % 150}",
                          "item_id": f"i{j % 120}", "kind": "like", "ts": NOW.isoformat()}
                         for j in range(50)]
                r = c.post("/v1/events", headers=ih, content=json.dumps(batch))
                assert r.status_code == 200 and r.json()["accepted"] == 50
                sent += 50
        with httpx.Client(base_url=url, timeout=10) as c:
            before = c.get("/v1/workers/state", headers=ah).json()
            r = c.put("/v1/items/new-post", headers=ah, json={
                "author_id": "a1", "title": "new", "tags": ["t0"],
                "created_at": datetime.now(UTC).isoformat()})
            assert r.status_code == 200
            after = c.get("/v1/workers/state", headers=ah).json()
            assert Path(before["lists"]).is_dir()
        # appended live and passed to workers in the delta: no snapshot, no rebuild
        assert after["catalogue_seq"] == before["catalogue_seq"]
        assert after["post_seq"] == before["post_seq"] + 1
        t0, seen_by = time.monotonic(), set()
        while time.monotonic() - t0 < 5.0 and not (seen_by & workers):
            with httpx.Client(base_url=url, timeout=10) as c:
                # 50 slots: composed by a worker (a larger page would be the owner's)
                r = c.get("/v1/users/u0/feed?n=50", headers=rh)
                feeds, slots = feeds + 1, slots + len(r.json()["slots"])
                if b"new-post" in r.content:
                    seen_by.add(r.headers.get("x-feedwise-worker", "owner"))
        assert seen_by & workers, "the worker did not serve the new post within 5 s"
    finally:
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=90)[1].decode()
    # uvicorn ends by raising the SIGINT it caught: 130, or -2 (no lost events either way)
    assert proc.returncode in (0, 130, -signal.SIGINT), err[-2000:]
    with EventStore(w["db"], read_only=True) as s:
        assert s.scalar("SELECT count(*) FROM events WHERE event_id LIKE 'x%'") == sent
        imp = s.scalar("SELECT count(*) FROM events WHERE kind IN "
                       "('impression', 'ad_impression')")
        dup = s.scalar("SELECT count(*) - count(DISTINCT event_id) FROM events")
    assert imp == slots and dup == 0  # every served slot stored once, whoever served it
    # the lists saved for the worker lived while it ran and are gone with the service
    assert before["lists"] is not None and not Path(before["lists"]).exists()


if sys.platform != "linux":  # pragma: no cover - shared sockets and /proc
    pytestmark = pytest.mark.skip("Linux only")
