"""``feedwise kpis`` and ``feedwise profiles`` on the tiny world."""

from __future__ import annotations

import json

import pytest
from analytics_tiny import load_tiny
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.store import EventStore


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "fw.duckdb"
    with EventStore(path) as s:
        load_tiny(s)
    return str(path)


def test_kpis_command(db):
    r = CliRunner().invoke(app, ["kpis", "--db", db, "--from", "2026-01-05", "--to",
                                 "2026-01-12", "--k", "1", "-f", "json"])
    assert r.exit_code == 0, r.output
    got = {row["kpi"]: row for row in json.loads(r.stdout)}
    assert got["ctr"]["value"] == pytest.approx(0.25)
    assert got["revenue"]["value"] == pytest.approx(0.014)
    assert got["sessions"]["value"] == 7
    r = CliRunner().invoke(app, ["kpis", "--db", db, "--from", "2026-01-05", "--to",
                                 "2026-01-12", "--k", "1", "--grain", "day", "-f", "csv",
                                 "--layout", "wide"])
    assert r.exit_code == 0 and r.stdout.count("\n") == 5  # header + 4 active days
    r = CliRunner().invoke(app, ["kpis", "--db", db, "--from", "2026-01-05", "--to",
                                 "2026-01-12", "--k", "1", "--grain", "day", "-f", "csv"])
    header, *lines = r.stdout.splitlines()  # long by default: one row per day and figure
    assert header.split(",")[:2] == ["period", "kpi"] and len(lines) % 4 == 0 and lines
    r = CliRunner().invoke(app, ["kpis", "--db", db, "--from", "2026-01-05", "--to",
                                 "2026-01-12", "-f", "json"])  # default k = 10 > 4 users
    assert all(row["value"] is None for row in json.loads(r.stdout))


def test_profiles_command(db):
    r = CliRunner().invoke(app, ["profiles", "--db", db, "--from", "2026-01-05", "--to",
                                 "2026-01-12", "--k", "1", "--segments", "2", "-f", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout[r.stdout.index("["):])
    assert [x["segment"] for x in rows] == ["S1", "S2", "new", "active", "at-risk", "dormant"]
    with EventStore(db, read_only=True) as s:
        assert s.scalar("SELECT count(*) FROM user_profiles") == 4
    r = CliRunner().invoke(app, ["profiles", "--db", db, "--segments", "9", "--k", "1"])
    assert r.exit_code == 2 and "cannot form 9 segments" in r.output
