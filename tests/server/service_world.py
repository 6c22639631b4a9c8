"""A small world for the service tests: a store, a promoted model, API keys; live servers."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from feedwise.models import get_model
from feedwise.registry import ModelRegistry
from feedwise.server.app import create_app
from feedwise.server.auth import create_key
from feedwise.server.settings import Settings
from feedwise.store import EventStore

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def world_events(n_users: int = 120, n_items: int = 60, per_user: int = 8, seed: int = 0
                 ) -> pd.DataFrame:
    """Users in 4 taste groups clicking items of their group over 30 days."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        group = u % 4
        pool = [i for i in range(n_items) if i % 4 == group]
        for j, i in enumerate(rng.choice(pool, size=per_user, replace=False)):
            ts = T0 + timedelta(days=float(rng.uniform(0, 30)))
            rows.append({"event_id": f"w{u}-{j}", "user_id": f"u{u}", "item_id": f"i{i}",
                         "kind": "click", "ts": ts})
    return pd.DataFrame(rows)


@dataclass
class World:
    root: Path
    settings: Settings
    admin: str
    read: str
    ingest: str
    registry: ModelRegistry

    def headers(self, key: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"} if key else {}


def make_world(root: Path, **overrides) -> World:
    db = root / "db.duckdb"
    with EventStore(db) as store:
        store.ingest(world_events())
        data = store.interactions()
    reg = ModelRegistry(root / "registry")
    v1 = reg.register(get_model("itemknn", k=20).fit(data),
                      data_window={"until": T0 + timedelta(days=30)})
    reg.register(get_model("popularity").fit(data))
    reg.promote(v1.version)
    keys = root / "keys.json"
    admin, _ = create_key(keys, ["admin"])
    read, _ = create_key(keys, ["read"])
    ingest, _ = create_key(keys, ["ingest"])
    settings = Settings(db=str(db), registry=str(reg.root), keys_file=str(keys),
                        **{"reload_interval_s": 0, **overrides})
    return World(root, settings, admin, read, ingest, reg)



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn serving an app on 127.0.0.1 in a thread of the test process."""

    def __init__(self, app, **config) -> None:
        """``config``: uvicorn settings over the defaults (``log_level="warning"``)."""
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = {"log_level": "warning", "lifespan": "on", **config}
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    **settings))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture()
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


@pytest.fixture()
def client(world: World):
    with TestClient(create_app(world.settings)) as c:
        yield c


@pytest.fixture()
def live(world: World):
    with LiveServer(create_app(world.settings)) as srv:
        yield srv
