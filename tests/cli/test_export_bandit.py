"""``feedwise export --format bandit`` writes the store's logged feeds in the format
``feedwise offpolicy`` reads, and offpolicy reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.store import EventStore

runner = CliRunner()


@pytest.fixture()
def db(world_store, tmp_path: Path) -> str:
    path = tmp_path / "w.duckdb"
    with EventStore(str(path)) as s:
        s.ingest(world_store.query("SELECT * FROM events"), source_name="copy")
        s.upsert_items(world_store.query("SELECT * FROM items"))
    return str(path)


def test_export_bandit_is_what_offpolicy_reads(db: str, tmp_path: Path):
    out = tmp_path / "feeds.csv"
    res = runner.invoke(app, ["export", "--format", "bandit", "--out", str(out), "--db", db,
                              "--summary-format", "json"])
    assert res.exit_code == 0, res.output
    [summary] = json.loads(res.stdout[res.stdout.index("["):])
    log = pd.read_csv(out)
    with EventStore(db, read_only=True) as s:
        n_logged = s.scalar("SELECT count(*) FROM events WHERE kind IN ('impression', "
                            "'ad_impression') AND position IS NOT NULL AND propensity "
                            "IS NOT NULL")
        # the reward of a row: the same user engaged with the same item within 30 min
        row = log[log["reward"] == 1].iloc[0]
        hit = s.scalar("SELECT count(*) FROM events WHERE user_id = ? AND item_id = ? AND "
                       "kind IN ('click', 'like', 'comment', 'share', 'save', 'ad_click', "
                       "'conversion') AND ts >= CAST(? AS TIMESTAMPTZ) AND ts <= "
                       "CAST(? AS TIMESTAMPTZ) + INTERVAL 30 MINUTE",
                       [row["user_id"], row["item_id"], row["timestamp"], row["timestamp"]])
        assert hit >= 1
    assert summary["rows"] == len(log) == n_logged > 1000
    assert {"timestamp", "item_id", "position", "reward", "propensity", "target_propensity",
            "session_id", "policy", "slot_kind"} <= set(log.columns)
    assert set(log["slot_kind"]) == {"post", "ad"}
    assert 0 < log["reward"].mean() < 0.5
    assert log["propensity"].between(0, 1, inclusive="right").all()
    # offpolicy reads the file as written: the logging policy as its own target, so the
    # estimates are the logged reward per impression
    res = runner.invoke(app, ["offpolicy", str(out), "--bootstrap", "20", "-f", "json"])
    assert res.exit_code == 0, res.output
    est = {r["estimator"].lower(): r for r in json.loads(res.stdout)}
    assert est["snips"]["value"] == pytest.approx(log["reward"].mean(), rel=1e-6)
    assert est["ips"]["value"] == pytest.approx(log["reward"].mean(), rel=1e-6)
    # and frontier --logs-style per-slot estimates too
    res = runner.invoke(app, ["offpolicy", str(out), "--by-position", "-f", "csv"])
    assert res.exit_code == 0, res.output
    # an existing file is not overwritten unless asked
    res = runner.invoke(app, ["export", "--format", "bandit", "--out", str(out), "--db", db])
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = runner.invoke(app, ["export", "--format", "bandit", "--out", str(tmp_path / "x"),
                              "--db", db])
    assert res.exit_code == 2 and ".parquet" in res.output


def test_export_bandit_parquet_and_empty_store(db: str, tmp_path: Path):
    out = tmp_path / "feeds.parquet"
    res = runner.invoke(app, ["export", "--format", "bandit", "--out", str(out), "--db", db])
    assert res.exit_code == 0, res.output
    assert len(pd.read_parquet(out)) > 1000
    empty = str(tmp_path / "e.duckdb")
    EventStore(empty).close()
    res = runner.invoke(app, ["export", "--format", "bandit", "--out",
                              str(tmp_path / "e.csv"), "--db", empty])
    assert res.exit_code == 2 and "no logged feeds" in res.output
