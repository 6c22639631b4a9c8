"""A small store world for the privacy tests (and the CLI's): posts, users, campaigns and event
files."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from feedwise.feed.campaigns import Campaign, Creative
from feedwise.privacy import Pseudonymizer
from feedwise.store import EventStore

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TAGS = ["cats", "dogs", "jazz", "rock", "chess", "golf"]
#: A distinctive external id, so scans for it cannot hit unrelated values.
TARGET = "alice.smith@example.org"
SECRET = "s3cr3t-hmac-key-for-tests-0123456789"


@dataclass
class World:
    store: EventStore
    events_file: Path
    pseudonymizer: Pseudonymizer | None
    target_events: int  # valid events of TARGET in events_file

    @property
    def target_key(self) -> str:
        return self.store.user_key(TARGET)


def user_ids(n: int = 24) -> list[str]:
    return [TARGET] + [f"user-{i:03d}" for i in range(1, n)]


def write_events(path: Path, seed: int = 0, n_users: int = 24, per_user: int = 12,
                 bad_rows: bool = True) -> tuple[Path, int]:
    """A CSV of clicks / likes / dwells over the last 30 days; TARGET also has bad rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in user_ids(n_users):
        for k in range(per_user):
            kind = str(rng.choice(["click", "like", "dwell", "impression"]))
            rows.append({"user_id": u, "item_id": f"p{rng.integers(60)}", "kind": kind,
                         "ts": (NOW - timedelta(days=float(rng.uniform(0.1, 30)))).isoformat(),
                         "dwell_ms": str(int(rng.integers(1000, 60000))) if kind == "dwell"
                         else "", "session_id": f"s{k % 3}",
                         "context": json.dumps({"surface": "home"})})
    n_target = per_user
    if bad_rows:
        rows.append({"user_id": TARGET, "item_id": "p1", "kind": "teleport",
                     "ts": NOW.isoformat(), "dwell_ms": "", "session_id": "", "context": ""})
        rows.append({"user_id": TARGET, "item_id": "p2", "kind": "click", "ts": "yesterday",
                     "dwell_ms": "", "session_id": "", "context": ""})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path, n_target


def items_frame(n: int = 60, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "item_id": [f"p{i}" for i in range(n)], "kind": "post",
        "author_id": [f"author-{i % 9}" for i in range(n)],
        "created_at": [NOW - timedelta(hours=float(h)) for h in rng.uniform(1, 300, n)],
        "title": [f"post {i}" for i in range(n)], "text": "",
        "tags": [[TAGS[i % len(TAGS)], TAGS[(i * 7 + 1) % len(TAGS)]] for i in range(n)],
        "campaign_id": None})


def campaigns() -> list[Campaign]:
    """One campaign targeted at every tag and one contextual (untargeted) campaign."""
    return [Campaign(campaign_id="targeted", advertiser_id="adv-1", bid_model="cpm", bid=5000.0,
                     creatives=[Creative(item_id="ad-targeted", tags=["cats"])],
                     target_tags=list(TAGS)),
            Campaign(campaign_id="contextual", advertiser_id="adv-2", bid_model="cpm", bid=1000.0,
                     creatives=[Creative(item_id="ad-contextual")])]


def make_world(tmp: Path, *, pseudonymize: bool = True, seed: int = 0) -> World:
    p = Pseudonymizer(SECRET) if pseudonymize else None
    store = EventStore(tmp / "privacy.duckdb", pseudonymizer=p)
    store.upsert_items(items_frame())
    store.upsert_campaigns(pd.DataFrame([c.to_row() for c in campaigns()]))
    users = [{"user_id": u, "attributes": {"interests": [TAGS[i % len(TAGS)]],
                                          "segments": [f"seg{i % 2}"]}}
             for i, u in enumerate(user_ids())]
    store.upsert_users(users)
    path, n = write_events(tmp / "events.csv", seed=seed)
    rep = store.ingest(path)
    assert rep.accepted == len(user_ids()) * 12 and rep.rejected == 2
    return World(store, path, p, n)


def digests(value: str) -> set[str]:
    """Plain hashes someone might store instead of the value."""
    b = value.encode()
    return {hashlib.sha256(b).hexdigest(), hashlib.md5(b).hexdigest(),  # noqa: S324
            hashlib.sha1(b).hexdigest()}  # noqa: S324


def scan_store(store: EventStore, needles: set[str]) -> list[tuple[str, str, str]]:
    """(table, column, needle) for every text value anywhere in the store holding a needle:
    every VARCHAR / JSON / VARCHAR[] column of every table (substring match)."""
    cols = store.query("""SELECT table_name, column_name, data_type
        FROM information_schema.columns WHERE table_schema = 'main'
        AND table_catalog = current_database()""")
    hits = []
    for t, c, dtype in cols.itertuples(index=False):
        d = str(dtype).upper()
        if not ("VARCHAR" in d or "JSON" in d or "[]" in d or "STRUCT" in d or "MAP" in d):
            continue
        expr = f'CAST("{c}" AS VARCHAR)'
        for nd in needles:
            n = store.scalar(f'SELECT count(*) FROM "{t}" WHERE strpos({expr}, ?) > 0', [nd])
            if n:
                hits.append((t, c, nd))
    return hits
