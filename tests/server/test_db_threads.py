"""The service's store runs each statement on ``db_threads`` threads (one by default)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from service_world import make_world

from feedwise.server.app import create_app
from feedwise.store import EventStore


def threads_of(con) -> int:
    return int(con.execute("SELECT current_setting('threads')").fetchone()[0])


def test_set_threads_holds_for_the_store_and_its_new_connections(tmp_path):
    with EventStore(tmp_path / "db.duckdb") as store:
        store.set_threads(3)
        assert threads_of(store.con) == 3
        later = store._connect()
        try:
            assert threads_of(later) == 3  # a connection opened later keeps it
        finally:
            later.close()


def test_the_service_runs_its_statements_on_db_threads(tmp_path):
    world = make_world(tmp_path / "one")
    with TestClient(create_app(world.settings)) as c:
        assert threads_of(c.app.state.feedwise.store.con) == 1
    world = make_world(tmp_path / "default", db_threads=0)  # DuckDB's own default
    with EventStore(world.settings.db) as plain:
        default = threads_of(plain.con)
    with TestClient(create_app(world.settings)) as c:
        assert threads_of(c.app.state.feedwise.store.con) == default
