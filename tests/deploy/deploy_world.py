"""A small deployment for the issue-19 tests: a folder made by ``feedwise init``, a store
with users in four taste groups, a promoted model, keys, and a live ``feedwise serve``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from feedwise.deployment import Deployment

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def world_events(n_users: int = 120, n_items: int = 60, per_user: int = 8, seed: int = 0,
                 prefix: str = "w") -> pd.DataFrame:
    """Users in 4 taste groups clicking items of their group over 30 days."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        group = u % 4
        pool = [i for i in range(n_items) if i % 4 == group]
        for j, i in enumerate(rng.choice(pool, size=per_user, replace=False)):
            ts = T0 + timedelta(days=float(rng.uniform(0, 30)))
            rows.append({"event_id": f"{prefix}{u}-{j}", "user_id": f"u{u}",
                         "item_id": f"i{i}", "kind": "click", "ts": ts.isoformat()})
    return pd.DataFrame(rows)


def feedwise_exe() -> list[str]:
    """The ``feedwise`` command of this interpreter's environment."""
    exe = Path(sys.executable).with_name("feedwise")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "from feedwise.cli import app; app()"]


class Served:
    """``feedwise serve`` on a deployment, in a subprocess (port 0: it picks one)."""

    def __init__(self, db: Path, env: dict[str, str] | None = None) -> None:
        self.dep = Deployment.for_store(db)
        self.db = db
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.log = db.parent / "serve.log"

    def start(self, timeout: float = 60) -> Served:
        self.proc = subprocess.Popen(
            [*feedwise_exe(), "serve", "--db", str(self.db), "--port", "0",
             "--log-level", "warning"], env=self.env, stdout=open(self.log, "w"),  # noqa: SIM115
            stderr=subprocess.STDOUT, cwd=self.db.parent.parent)
        deadline = time.monotonic() + timeout
        while self.dep.server() is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"feedwise serve did not start:\n{self.log.read_text()}")
            time.sleep(0.1)
        return self

    @property
    def url(self) -> str:
        state = self.dep.server()
        assert state is not None
        return state["url"]

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def read_json(text: str):  # noqa: ANN201 - parsed JSON
    return json.loads(text)
