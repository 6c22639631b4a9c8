"""Fixtures of the service tests: a small world (store + promoted model + keys) and servers."""

from __future__ import annotations

from pathlib import Path

import pytest
from service_world import LiveServer, World, make_world


@pytest.fixture()
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


@pytest.fixture()
def client(world: World):
    from fastapi.testclient import TestClient

    from feedwise.server.app import create_app

    with TestClient(create_app(world.settings)) as c:
        yield c


@pytest.fixture()
def live(world: World):
    from feedwise.server.app import create_app

    srv = LiveServer(create_app(world.settings)).start()
    yield srv
    srv.stop()
