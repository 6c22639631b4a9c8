"""A tiny served world for the worker tests and ``benchmarks/serve_adcaps.py``: posts of a
few authors over three tags, six clicks per user on their tag's posts, an ItemKNN model
promoted in a registry, and read, ingest and admin keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from feedwise.models import get_model
from feedwise.registry import ModelRegistry
from feedwise.server.auth import create_key
from feedwise.store import EventStore


def served_world(root: Path, n_items: int = 120, n_users: int = 150, *, authors: int = 9,
                 hours_apart: float = 5.0, seed: int = 0,
                 now: datetime | None = None) -> dict:
    now = now or datetime.now(UTC)
    rng = np.random.default_rng(seed)
    db = root / "db.duckdb"
    items = pd.DataFrame({
        "item_id": [f"i{k}" for k in range(n_items)], "kind": "post",
        "author_id": [f"a{k % authors}" for k in range(n_items)],
        "created_at": [now - timedelta(hours=hours_apart * k + 1) for k in range(n_items)],
        "title": [f"post {k}" for k in range(n_items)],
        "tags": [[f"t{k % 3}"] for k in range(n_items)]})
    rows = [{"event_id": f"e{u}-{j}", "user_id": f"u{u}", "item_id": f"i{i}", "kind": "click",
             "ts": now - timedelta(days=float(rng.uniform(1, 20)))}
            for u in range(n_users)
            for j, i in enumerate(rng.choice(range(u % 3, n_items, 3), 6, replace=False))]
    with EventStore(db) as store:
        store.upsert_items(items)
        store.ingest(pd.DataFrame(rows))
        data = store.interactions()
    reg = ModelRegistry(root / "registry")
    reg.promote(reg.register(get_model("itemknn", k=15).fit(data)).version)
    keys = root / "keys.json"
    return {"db": db, "registry": reg.root, "keys": keys,
            "read": create_key(keys, ["read"])[0], "ingest": create_key(keys, ["ingest"])[0],
            "admin": create_key(keys, ["admin"])[0]}
