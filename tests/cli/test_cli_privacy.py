"""`feedwise users erase|export|consent` and `feedwise purge`."""

from __future__ import annotations

import json

from privacy_world import SECRET, TARGET, scan_store, write_events
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.privacy import Pseudonymizer
from feedwise.store import EventStore

runner = CliRunner()


def _run(*args: str, env: dict | None = None):
    res = runner.invoke(app, list(args), env=env)
    assert res.exit_code == 0, res.output
    return res


def test_rights_round_trip_with_pseudonyms(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    env = {"FEEDWISE_PSEUDONYM_KEY": SECRET}
    path, n = write_events(tmp_path / "ev.csv")
    _run("ingest", str(path), "--db", db, env=env)
    res = _run("users", "consent", TARGET, "--no-ads", "--source", "settings", "--db", db,
               "-f", "json", env=env)
    rec = json.loads(res.stdout)[0]
    assert (rec["ads"], rec["personalization"], rec["source"]) == (False, True, "settings")

    res = _run("users", "export", TARGET, "--db", db, env=env)
    export = json.loads(res.stdout)
    assert len(export["tables"]["events"]) == n and export["consent"]["ads"] is False
    assert SECRET not in res.output

    res = _run("users", "erase", TARGET, "--yes", "--db", db, "-f", "json", env=env)
    deleted = {r["table"]: r["deleted"] for r in json.loads(res.stdout)}
    assert deleted["events"] == n and deleted["users"] == 1 and deleted["consent_log"] == 1
    assert Pseudonymizer(SECRET)(TARGET) not in res.output and SECRET not in res.output
    with EventStore(db) as s:
        assert scan_store(s, {TARGET, Pseudonymizer(SECRET)(TARGET)}) == []
    res = _run("users", "export", TARGET, "--db", db, "-f", "csv", env=env)
    assert "events,0" in res.stdout


def test_erase_asks_for_confirmation(tmp_path):
    db = str(tmp_path / "c.duckdb")
    path, _ = write_events(tmp_path / "ev.csv")
    _run("ingest", str(path), "--db", db)
    res = runner.invoke(app, ["users", "erase", TARGET, "--db", db], input="n\n")
    assert res.exit_code != 0
    with EventStore(db) as s:
        assert s.count_events() > 0 and not s.is_erased(TARGET)


def test_purge_command(tmp_path):
    db = str(tmp_path / "p.duckdb")
    path, _ = write_events(tmp_path / "ev.csv")  # events 0.1 .. 30 days before 2026-03-02
    _run("ingest", str(path), "--db", db)
    with EventStore(db) as s:
        total = s.count_events()
    res = _run("purge", "--older-than-days", "100000", "--db", db, "-f", "json")
    assert {r["table"]: r["deleted"] for r in json.loads(res.stdout)}["events"] == 0
    res = _run("purge", "--older-than-days", "1", "--db", db, "-f", "json")
    assert {r["table"]: r["deleted"] for r in json.loads(res.stdout)}["events"] == total
    res = runner.invoke(app, ["purge", "--db", db])
    assert res.exit_code == 2 and "older-than-days" in res.output
