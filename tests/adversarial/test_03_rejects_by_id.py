"""Item 3: export leaked other users' rejected rows; erasure deleted them.

Rejected rows were matched to a user by the id appearing anywhere in the raw row, so
``users export 1`` included the rejects of users 2 and 3 whose ``item_id`` or ``value``
was ``1``, and ``users erase 1`` deleted them. Now every rejected row carries the (stored)
user id parsed from it in ``rejects.user_id`` (NULL when the row had none), and export and
erasure find a user's rejects by that column only.
"""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.privacy import Pseudonymizer, erase_user, export_user
from feedwise.store import EventStore

SECRET = "s3cr3t-hmac-key-for-item-3-0123456789"
NOW = pd.Timestamp("2024-03-01", tz="UTC").to_pydatetime()
runner = CliRunner()


def _events(path):
    """Valid events of users 1, 2, 3 and rejects: one of user 1, one of user 2 whose
    item_id is 1, one of user 3 whose value is 1 (and context names 1), one with no user."""
    rows = [
        ("e1", "1", "a", "click", "2024-02-01T00:00:00Z", "", ""),
        ("e2", "2", "b", "click", "2024-02-01T00:00:00Z", "", ""),
        ("e3", "3", "c", "click", "2024-02-01T00:00:00Z", "", ""),
        ("r1", "1", "a", "teleport", "2024-02-01T00:00:00Z", "", ""),
        ("r2", "2", "1", "teleport", "2024-02-01T00:00:00Z", "1", ""),
        ("r3", "3", "c", "click", "yesterday", "1", '{"ref": "1"}'),
        ("r4", "", "1", "click", "2024-02-01T00:00:00Z", "1", ""),
    ]
    pd.DataFrame(rows, columns=["event_id", "user_id", "item_id", "kind", "ts", "value",
                                "context"]).to_csv(path, index=False)
    return path


def _rejects(db: str) -> list[str]:
    with EventStore(db, read_only=True) as s:
        return sorted(json.loads(r)["event_id"] for r in s.rejects()["raw"])


@pytest.mark.parametrize("pseudonymize", [False, True], ids=["plain", "pseudonyms"])
def test_export_and_erase_match_rejects_by_user_id(tmp_path, pseudonymize):
    p = Pseudonymizer(SECRET) if pseudonymize else None
    db = str(tmp_path / "s.duckdb")
    with EventStore(db, pseudonymizer=p) as s:
        rep = s.ingest(_events(tmp_path / "ev.csv"))
        assert (rep.accepted, rep.rejected) == (3, 4)
        stored = s.rejects().set_index(s.rejects()["raw"].map(
            lambda r: json.loads(r)["event_id"]))["user_id"].to_dict()
        assert stored["r1"] == s.user_key("1") and stored["r2"] == s.user_key("2")
        assert stored["r3"] == s.user_key("3") and pd.isna(stored["r4"])

        export = export_user(s, "1", now=NOW)
        assert [json.loads(r["raw"])["event_id"] for r in export["tables"]["rejects"]] == ["r1"]
        assert [e["event_id"] for e in export["tables"]["events"]] == ["e1"]

        deleted = erase_user(s, "1", now=NOW).deleted
        assert deleted["rejects"] == 1 and deleted["events"] == 1
    assert _rejects(db) == ["r2", "r3", "r4"]  # the others' rejects are all still there


def test_cli_export_and_erase_keep_to_the_user(tmp_path):
    db = str(tmp_path / "c.duckdb")
    env = {"FEEDWISE_PSEUDONYM_KEY": SECRET}
    res = runner.invoke(app, ["ingest", str(_events(tmp_path / "ev.csv")), "--db", db], env=env)
    assert res.exit_code == 0, res.output

    res = runner.invoke(app, ["users", "export", "1", "--db", db], env=env)
    assert res.exit_code == 0, res.output
    export = json.loads(res.stdout)
    assert [json.loads(r["raw"])["event_id"] for r in export["tables"]["rejects"]] == ["r1"]

    res = runner.invoke(app, ["users", "erase", "1", "--yes", "--db", db, "-f", "json"],
                        env=env)
    assert res.exit_code == 0, res.output
    deleted = {r["table"]: r["deleted"] for r in json.loads(res.stdout)}
    assert deleted["rejects"] == 1
    assert _rejects(db) == ["r2", "r3", "r4"]


def test_a_store_without_the_column_still_opens(tmp_path):
    """A store written before ``rejects.user_id`` existed opens, gains the column (its old
    rows have none, so no user is matched to them by text) and ingests."""
    db = str(tmp_path / "old.duckdb")
    con = duckdb.connect(db)
    con.execute("CREATE TABLE rejects (source VARCHAR, row BIGINT, field VARCHAR, "
                "reason VARCHAR, raw VARCHAR, rejected_at TIMESTAMPTZ)")
    con.execute("INSERT INTO rejects VALUES ('old.csv', 2, 'kind', 'unknown kind', "
                "'{\"user_id\": \"1\", \"kind\": \"x\"}', now())")
    con.close()
    with EventStore(db) as s:
        assert "user_id" in s.rejects().columns
        rep = s.ingest(_events(tmp_path / "ev.csv"))
        assert rep.rejected == 4
        assert len(export_user(s, "1", now=NOW)["tables"]["rejects"]) == 1
        assert erase_user(s, "1", now=NOW).deleted["rejects"] == 1
        assert len(s.rejects()) == 4  # the old row and the three of others
