"""Item 4: erasure missed data.

After ``DELETE /v1/users/u`` (or ``feedwise users erase``) registry versions on disk still
held the user's pseudonym, seen items and factors; ``items.author_id``, other users'
``attributes.follows`` and ``events.context`` kept the id; the CLI left ``./models/*``
recommending to the user; exports and the database file (deleted rows stay in DuckDB's
file) kept it too.

The test builds a small pseudonymised deployment in a temporary folder (the store file, a
registry with two versions, a ``models`` folder as the CLI writes it, a Parquet export and
a saved user export), erases one user through the CLI or through the API, then scans every
table (every column, as text) and every file under the folder (raw bytes in UTF-8, UTF-16
and UTF-32 – NumPy stores text as UTF-32 –, the members of every ``.npz`` unzipped, the
values of every Parquet file, the DuckDB file after its checkpoint) and every log record
(every level, from 1 up) for the raw id, its pseudonym, and the md5 / sha1 / sha256 hex of
both, and finds none. The posts the user authored follow the documented policy (deleted;
other users' events on them stay).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from service_world import LiveServer
from typer.testing import CliRunner

from feedwise.cli import app as cli_app
from feedwise.engines.export import export_parquet
from feedwise.models.als import ALS
from feedwise.models.base import Recommender
from feedwise.models.itemknn import ItemKNN
from feedwise.privacy import Pseudonymizer, dumps_export, export_user, set_consent
from feedwise.registry import ModelRegistry
from feedwise.server.app import create_app
from feedwise.server.auth import create_key
from feedwise.server.settings import Settings
from feedwise.store import EventStore

TARGET = "erasure-target-7f3a"
SECRET = "s3cr3t-hmac-key-for-item-4-0123456789"
NOW = datetime(2024, 3, 1, tzinfo=UTC)
OTHERS = [f"user-{i:03d}" for i in range(1, 16)]
#: Posts the target authored (the policy: deleted; others' events on them stay).
AUTHORED = ["t0", "t1", "t2"]
#: Other users who follow the target (every second one).
FOLLOWERS = len(OTHERS[::2])


# ---------------------------------------------------------------------- the deployment
def _events() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    rows = []
    for u in [TARGET, *OTHERS]:
        for k in range(10):
            item = f"p{rng.integers(30)}" if k % 3 else AUTHORED[k % 3]
            rows.append({"event_id": f"{u}-{k}", "user_id": u, "item_id": item,
                         "kind": "click", "ts": (NOW - timedelta(hours=k + 1)).isoformat(),
                         "context": ""})
    # other users' events whose context names the target (a share, a mention)
    rows.append({"event_id": "share-1", "user_id": OTHERS[0], "item_id": "p1", "kind": "share",
                 "ts": NOW.isoformat(), "context": json.dumps({"shared_by": TARGET,
                                                               "surface": "home"})})
    rows.append({"event_id": "share-2", "user_id": OTHERS[1], "item_id": "p2", "kind": "click",
                 "ts": NOW.isoformat(), "context": json.dumps({"with": [TARGET, OTHERS[2]]})})
    # rejected rows: the target's own, and another user's whose context names the target
    rows.append({"event_id": "bad-1", "user_id": TARGET, "item_id": "p1", "kind": "teleport",
                 "ts": NOW.isoformat(), "context": ""})
    rows.append({"event_id": "bad-2", "user_id": OTHERS[3], "item_id": "p1", "kind": "teleport",
                 "ts": NOW.isoformat(), "context": json.dumps({"ref": TARGET})})
    return pd.DataFrame(rows)


def build(root: Path) -> dict[str, Path]:
    """Store, registry (two versions, one promoted), models/itemknn, Parquet export and a
    saved user export of the target, all under ``root``."""
    db = root / "feedwise.duckdb"
    with EventStore(db, pseudonymizer=Pseudonymizer(SECRET)) as s:
        items = pd.DataFrame({"item_id": [f"p{i}" for i in range(30)] + AUTHORED,
                              "kind": "post",
                              "author_id": [f"author-{i % 5}" for i in range(30)] + [TARGET] * 3,
                              "title": [f"post {i}" for i in range(33)],
                              "tags": [["cats", "jazz"][i % 2:i % 2 + 1] for i in range(33)],
                              "created_at": NOW - timedelta(days=1)})
        s.upsert_items(items)
        s.upsert_users([{"user_id": u, "attributes": {
            "interests": ["cats"], "follows": [TARGET, "author-1"] if i % 2 else ["author-2"]}}
            for i, u in enumerate([TARGET, *OTHERS])])
        ev = root.parent / "events.csv"  # the source file: outside the deployment
        _events().to_csv(ev, index=False)
        rep = s.ingest(ev)
        assert rep.rejected == 2, rep
        set_consent(s, TARGET, ads=False, source="banner", now=NOW)
        key = s.user_key(TARGET)
        s.save_profiles(pd.DataFrame([{
            "user_id": key, "interests": "cats", "active_hours": [0.0] * 24,
            "daypart": "evening", "peak_hour": 20, "engagement_rate": 0.5,
            "engagement_level": "high", "ad_sensitivity": 0.1, "lifecycle": "active",
            "segment": "fans", "updated_at": NOW}]))
        s.save_ad_state(pd.DataFrame([{"user_id": key, "campaign_id": "c1", "item_id": "ad1",
                                       "ts": NOW.timestamp(), "price": 0.01,
                                       "request_id": "r1"}]),
                        pd.DataFrame([{"campaign_id": "c1", "day": 19783, "spend_today": 0.01,
                                       "spend_total": 0.01, "updated_at": NOW.timestamp()}]))
        data = s.interactions()
        reg = ModelRegistry(root / "registry")
        reg.register(ItemKNN(k=10).fit(data))
        v2 = reg.register(ALS(factors=4, iterations=2, num_threads=1).fit(data))
        reg.promote(v2.version)
        ItemKNN(k=10).fit(data).save(root / "models" / "itemknn")
        export_parquet(s, root / "exports" / "parquet")
        (root / "exports" / f"{TARGET}.json").write_text(
            dumps_export(export_user(s, TARGET, now=NOW)))
    return {"db": db, "registry": root / "registry", "models": root / "models",
            "exports": root / "exports"}


# ---------------------------------------------------------------------- the scan
def needles(key: str) -> set[str]:
    out = set()
    for v in (TARGET, key):
        b = v.encode()
        out |= {v, hashlib.md5(b).hexdigest(), hashlib.sha1(b).hexdigest(),  # noqa: S324
                hashlib.sha256(b).hexdigest()}
    return out | {n.upper() for n in out}


def _in_bytes(data: bytes, found: set[str], where: str, hits: list) -> None:
    for n in found:
        for enc in ("utf-8", "utf-16-le", "utf-32-le"):
            if n.encode(enc) in data:
                hits.append((where, n, enc))
                break


def scan_files(root: Path, ns: set[str]) -> list[tuple[str, str, str]]:
    hits: list[tuple[str, str, str]] = []
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = str(f.relative_to(root))
        data = f.read_bytes()
        _in_bytes(data, ns, rel, hits)
        if f.suffix == ".npz":
            with zipfile.ZipFile(f) as z:
                for m in z.namelist():
                    _in_bytes(z.read(m), ns, f"{rel}:{m}", hits)
        if f.suffix == ".parquet":
            text = json.dumps(pq.ParquetFile(f).read().to_pylist(), default=str)
            _in_bytes(text.encode(), ns, f"{rel}:values", hits)
    return hits


def scan_tables(db: Path, ns: set[str]) -> list[tuple[str, str, str]]:
    hits = []
    with EventStore(db, read_only=True) as s:
        cols = s.query("SELECT table_name, column_name FROM information_schema.columns "
                       "WHERE table_schema = 'main' AND table_catalog = current_database()")
        for t, c in cols.itertuples(index=False):
            for n in ns:
                if s.scalar(f'SELECT count(*) FROM "{t}" WHERE strpos(CAST("{c}" AS VARCHAR), '
                            "?) > 0", [n]):
                    hits.append((t, c, n))
    return hits


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=1)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in ("httpx", "httpcore"):  # the test's own client
            return
        self.lines.append(f"{record.name} {record.levelno} {self.format(record)}")


@pytest.fixture()
def logs():
    """Every record of every logger, from level 1 (below uvicorn's trace, 5) up."""
    handler = _Records()
    handler.setFormatter(logging.Formatter("%(message)s %(exc_text)s"))
    loggers = [logging.getLogger(n) for n in ("", "uvicorn", "uvicorn.error",
                                               "uvicorn.access", "uvicorn.asgi")]
    saved = [(lg, lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.setLevel(1)
        lg.propagate = True  # an earlier uvicorn with its default config turned it off
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)
        for lg, level, propagate in saved:
            lg.setLevel(level)
            lg.propagate = propagate


# ---------------------------------------------------------------------- the checks
def _check_after(root: Path, paths: dict[str, Path], key: str) -> None:
    ns = needles(key)
    assert scan_tables(paths["db"], ns) == []
    assert scan_files(root, ns) == []
    with EventStore(paths["db"], read_only=True) as s:
        # the authored posts are deleted; other users' events on them stay
        assert set(s.items()["item_id"]) & set(AUTHORED) == set()
        assert set(s.events("item_id IN ('t0', 't1', 't2')")["user_id"])
        # other users keep their other follows and their events, context scrubbed
        follows = [json.loads(a).get("follows") for a in s.users()["attributes"]]
        assert ["author-1"] in follows and ["author-2"] in follows
        share = s.events("event_id = 'share-1'")
        assert json.loads(share["context"].iloc[0]) == {"shared_by": None, "surface": "home"}
        other = s.events("event_id = 'share-2'")
        assert json.loads(other["context"].iloc[0]) == {"with": [OTHERS[2]]}
        assert len(s.rejects()) == 1  # the other user's reject stays (context scrubbed)
        assert s.scalar("SELECT count(*) FROM tombstones") == 1
    reg = ModelRegistry(paths["registry"])
    for meta in reg.versions():  # rewritten, still loadable, the user unknown
        assert meta.erased_users == 1 and meta.retired_at is None
        assert not reg.load(meta.version).knows_user(key)
    model = Recommender.load(paths["models"] / "itemknn")  # the CLI's model folder
    anon = model.recommend(["somebody-new"], 5, exclude_seen=False)[0]
    mine = model.recommend([key], 5, exclude_seen=False)[0]
    assert list(mine.ids) == list(anon.ids)
    manifest = json.loads((paths["exports"] / "parquet" / "_feedwise.json").read_text())
    assert manifest["erased_users"] == 1
    events = pq.read_table(paths["exports"] / "parquet" / "events", partitioning="hive")
    assert events.num_rows == manifest["events"] == 15 * 10 + 2  # still one readable layout
    assert not (paths["exports"] / f"{TARGET}.json").exists()
    assert not Path(f"{paths['db']}.wal").exists()


def _check_before(root: Path, paths: dict[str, Path], key: str) -> None:
    """The scan finds the user everywhere first (so its silence afterwards means something)."""
    ns = needles(key)
    tables = {t for t, _, _ in scan_tables(paths["db"], ns)}
    assert {"events", "users", "items", "rejects", "consent_log", "user_profiles",
            "ad_impressions"} <= tables
    where = {h[0].split("/")[0] for h in scan_files(root, ns)}
    assert {"feedwise.duckdb", "registry", "models", "exports"} <= where


def test_cli_erasure_leaves_no_trace(tmp_path, monkeypatch, logs):
    root = tmp_path / "deployment"
    paths = build(root)
    key = Pseudonymizer(SECRET)(TARGET)
    _check_before(root, paths, key)
    monkeypatch.chdir(root)  # a ./models folder is cleaned only when named (--models)
    res = CliRunner().invoke(cli_app, [
        "users", "erase", TARGET, "--yes", "--db", str(paths["db"]), "--registry",
        str(paths["registry"]), "--models", str(paths["models"]), "--exports",
        str(paths["exports"]), "-f", "json"],
        env={"FEEDWISE_PSEUDONYM_KEY": SECRET})
    assert res.exit_code == 0, res.output
    _check_after(root, paths, key)
    rows = {r["table"]: r for r in json.loads(res.stdout)}
    assert rows["events"]["deleted"] == 10 and rows["items"]["deleted"] == len(AUTHORED)
    assert rows["users.attributes"]["rewritten"] == FOLLOWERS
    assert rows["saved models (registry, model folders)"]["rewritten"] == 3
    ns = needles(key)
    assert [n for n in ns if n in res.output] == []
    assert [(line, n) for line in logs.lines for n in ns if n in line] == []


def test_api_erasure_leaves_no_trace(tmp_path, monkeypatch, logs):
    root = tmp_path / "deployment"
    paths = build(root)
    key = Pseudonymizer(SECRET)(TARGET)
    monkeypatch.setenv("FEEDWISE_PSEUDONYM_KEY", SECRET)
    monkeypatch.setenv("FEEDWISE_ERASURE_PATHS",
                       f"{paths['models']}{os.pathsep}{paths['exports']}")
    admin, _ = create_key(root / "keys.json", ["admin"])
    settings = Settings(db=str(paths["db"]), registry=str(paths["registry"]),
                        keys_file=str(root / "keys.json"), reload_interval_s=0)
    app = create_app(settings)
    # uvicorn at its trace level with its own logging off (records reach the root
    # logger), access log on
    with LiveServer(app, log_config=None, log_level="trace", access_log=True) as srv:
        r = httpx.delete(f"{srv.url}/v1/users/{TARGET}",
                         headers={"Authorization": f"Bearer {admin}"}, timeout=60)
        assert r.status_code == 200, r.text
        assert not app.state.feedwise.served.model.knows_user(key)
    assert any(line.startswith("uvicorn") for line in logs.lines)  # its logs were captured
    _check_after(root, paths, key)
    body = r.json()
    assert body["deleted"]["events"] == 10 and body["deleted"]["items"] == len(AUTHORED)
    assert body["files"]["models_rewritten"] == 3 and body["compacted"] is True
    assert body["models"] == 1 and body["engines"] == 1  # the served model and feed engine
    assert body["files"]["user_exports"] == 1 and body["files"]["export_files"] >= 3
    ns = needles(key)
    assert [n for n in ns if n in r.text] == []
    assert [(line, n) for line in logs.lines for n in ns if n in line] == []
