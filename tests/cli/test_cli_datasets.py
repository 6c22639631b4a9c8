"""`feedwise datasets list | fetch | synthetic`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from feedwise.cli import app

runner = CliRunner()


def test_list_json() -> None:
    res = runner.invoke(app, ["datasets", "list", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert {r["name"] for r in rows} == {"movielens-100k", "movielens-latest-small",
                                        "lastfm-hetrec2011", "filmtrust"}
    assert all(r["source"].startswith("https://") for r in rows)


def test_fetch_local_and_ingest(shared_data: Path, tmp_path: Path) -> None:
    db = tmp_path / "f.duckdb"
    res = runner.invoke(app, ["datasets", "fetch", "filmtrust", "--data-dir", str(shared_data),
                              "--ingest", "--db", str(db), "--format", "json"])
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)[0]
    assert row["path"] == str(shared_data / "filmtrust")
    assert (row["events"], row["users"], row["items"], row["edges"]) == (35_497, 1_508, 2_071,
                                                                          1_853)
    assert row["accepted"] + row["duplicates"] == 35_497 and row["rejected"] == 0
    res = runner.invoke(app, ["datasets", "fetch", "filmtrust", "--data-dir", str(shared_data)])
    assert res.exit_code == 0 and "verified in" in res.stdout


@pytest.mark.parametrize("args, message", [
    (["datasets", "fetch", "nope"], "unknown dataset"),
    (["datasets", "fetch", "movielens-100k", "--data-dir", "/nonexistent"], "no movielens-100k"),
])
def test_fetch_errors_are_clean(args: list[str], message: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert message in res.output.replace("\n", " ")
    assert "Traceback" not in res.output


def test_synthetic_into_store_and_parquet(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    res = runner.invoke(app, ["datasets", "synthetic", "--users", "40", "--posts", "200",
                              "--authors", "10", "--days", "2", "--campaigns", "2",
                              "--db", str(db), "--parquet", str(tmp_path / "pq"),
                              "--format", "json"])
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)[0]
    assert row["accepted"] == row["events"] > 0 and row["rejected"] == 0
    import pandas as pd

    ev = pd.read_parquet(tmp_path / "pq" / "events.parquet")
    assert len(ev) == row["events"]


def test_synthetic_parquet_onto_a_file_is_a_clean_error(tmp_path: Path) -> None:
    f = tmp_path / "taken"
    f.write_text("x")
    res = runner.invoke(app, ["datasets", "synthetic", "--users", "10", "--posts", "50",
                              "--authors", "5", "--days", "1", "--campaigns", "1",
                              "--no-store", "--parquet", str(f)])
    assert res.exit_code == 2, res.output
    assert "takes a folder" in res.output.replace("\n", " ")
    assert "Traceback" not in res.output
