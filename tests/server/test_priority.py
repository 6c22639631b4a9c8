"""Landings of served impressions run below the requests (server/priority.py)."""

from __future__ import annotations

import os
import sys
import threading

import pytest
from fastapi.testclient import TestClient
from service_world import make_world

from feedwise.server import priority
from feedwise.server.app import create_app
from feedwise.server.writer import Writer, columns_of
from feedwise.store import EventStore

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="per-thread niceness is Linux's")


def nice_of(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def test_lower_raises_one_threads_niceness_and_not_the_callers():
    ready, done = threading.Event(), threading.Event()
    lowered: list[bool] = []

    def run() -> None:
        lowered.append(priority.lower_this_thread(3))
        lowered.append(priority.lower_this_thread(0))  # nothing asked, nothing done
        ready.set()
        done.wait(10)

    t = threading.Thread(target=run)
    mine = nice_of(threading.get_native_id())
    t.start()
    ready.wait(10)
    try:
        assert lowered == [True, False]
        assert nice_of(t.native_id) == min(19, mine + 3)
        assert nice_of(threading.get_native_id()) == mine
    finally:
        done.set()
        t.join()


def test_the_writer_lands_served_rows_alone_below_itself_and_with_events_at_its_own(
        tmp_path):
    from datetime import UTC, datetime

    mine = nice_of(threading.get_native_id())
    now = round(datetime.now(UTC).timestamp() * 1e6)
    seen: list[int] = []

    def served(eid: str) -> dict:
        return {"event_id": [f"srv:{eid}:0"], "user_id": ["u"], "item_id": ["i"],
                "kind": ["impression"], "ts": [now], "position": [0], "propensity": [1.0]}

    def then() -> None:  # the ad state flushed in the landing's transaction
        seen.append(nice_of(threading.get_native_id()))

    with EventStore(tmp_path / "db.duckdb") as store:
        w = Writer(store, nice=5)  # not started: driven by hand, on this thread
        w.log_served(served("a"), then)
        w._land([])  # alone: on the lowered thread, while this one waits
        w.log_served(served("b"), then)
        w.submit_events(columns_of([{"event_id": "e1", "user_id": "u", "item_id": "i",
                                     "kind": "click", "ts": "2024-01-01T00:00:00Z"}]))
        w._land([w._q.get_nowait()])  # with an event batch: at the writer's priority
        assert seen == [min(19, mine + 5), mine]
        assert store.count_events() == 3
        w.close()
        plain = Writer(store)  # nice=0: every landing on the writer itself
        plain.log_served(served("c"), then)
        plain._land([])
        assert seen[-1] == mine and plain._below is None
        plain.close()


def test_the_service_lands_served_rows_below_its_requests(tmp_path):
    world = make_world(tmp_path, served_nice=7)
    mine = nice_of(threading.get_native_id())
    with TestClient(create_app(world.settings)) as c:
        writer = c.app.state.feedwise.writer
        got = writer._below.submit(lambda: nice_of(threading.get_native_id())).result(10)
        assert got == min(19, mine + 7)
        assert nice_of(threading.get_native_id()) == mine
        assert c.get("/healthz").status_code == 200
