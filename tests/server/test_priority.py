"""Background threads (the writer, the database's own) run below the requests."""

from __future__ import annotations

import os
import sys
import threading

import pytest
from fastapi.testclient import TestClient
from service_world import make_world

from feedwise.server import priority
from feedwise.server.app import create_app
from feedwise.server.writer import Writer
from feedwise.store import EventStore

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="per-thread niceness is Linux's")


def nice_of(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def test_lower_raises_one_threads_niceness_and_not_the_callers():
    ready, done = threading.Event(), threading.Event()
    t = threading.Thread(target=lambda: (ready.set(), done.wait(10)))
    t.start()
    ready.wait(10)
    mine = nice_of(threading.get_native_id())
    try:
        assert priority.lower([t.native_id], 3) == 1
        assert nice_of(t.native_id) == min(19, mine + 3)
        assert nice_of(threading.get_native_id()) == mine
        assert priority.lower([t.native_id], 0) == 0  # nothing asked, nothing done
    finally:
        done.set()
        t.join()


def test_the_writer_lands_served_rows_below_itself_and_events_at_its_priority(tmp_path):
    from datetime import UTC, datetime

    mine = nice_of(threading.get_native_id())
    now = round(datetime.now(UTC).timestamp() * 1e6)
    with EventStore(tmp_path / "db.duckdb") as store:
        for nice, lowered in ((0, mine), (5, min(19, mine + 5))):
            seen = []
            w = Writer(store, nice=nice, poll_s=0.01).start()
            try:
                w.log_served({"event_id": [f"srv:{nice}:0"], "user_id": ["u"],
                              "item_id": ["i"], "kind": ["impression"], "ts": [now],
                              "position": [0], "propensity": [1.0]},
                             lambda seen=seen: seen.append(nice_of(threading.get_native_id())))
                writer = w.call(lambda _s: nice_of(threading.get_native_id())).result(10)
            finally:
                w.close()
            assert seen == [lowered]  # the landing and its ad state, on the lowered thread
            assert writer == mine  # event batches and calls keep the writer's priority
        assert store.count_events() == 2


def test_the_service_lands_served_rows_below_its_requests(tmp_path):
    world = make_world(tmp_path, served_nice=7)
    mine = nice_of(threading.get_native_id())
    with TestClient(create_app(world.settings)) as c:
        writer = c.app.state.feedwise.writer
        got = writer._below.submit(lambda: nice_of(threading.get_native_id())).result(10)
        assert got == min(19, mine + 7)
        assert nice_of(threading.get_native_id()) == mine
        assert c.get("/healthz").status_code == 200
