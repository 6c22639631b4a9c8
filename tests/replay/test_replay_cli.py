"""`feedwise evaluate --protocol replay` and `--model a,b,c` (one table)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.datasets import synthetic_social
from feedwise.store import EventStore

runner = CliRunner()


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("replaycli") / "fw.duckdb"
    w = synthetic_social(n_users=120, n_authors=25, n_posts=300, n_days=4, n_campaigns=1,
                         seed=9)
    with EventStore(path) as store:
        w.load_into(store)
    return str(path)


def test_several_models_one_table(db) -> None:
    res = runner.invoke(app, ["evaluate", "--model", "popularity,itemknn", "--split",
                              "temporal", "--db", db, "-f", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert {"metric", "popularity", "itemknn"} <= set(rows[0])
    assert any(r["metric"] == "ndcg" for r in rows)


def test_replay_protocol_json(db) -> None:
    res = runner.invoke(app, ["evaluate", "--protocol", "replay", "--model",
                              "popularity,itemknn", "--no-baselines", "--max-requests",
                              "40", "--db", db, "-f", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["policy"] for r in rows] == ["popularity", "itemknn"]
    for r in rows:
        assert 0 <= r["open_ndcg@10"] <= 1 and 0 <= r["auc"] <= 1
        assert r["requests_open"] > 0 and r["requests_impression"] > 0


def test_unknown_protocol_is_one_error_line(db) -> None:
    res = runner.invoke(app, ["evaluate", "--protocol", "nope", "--model", "popularity",
                              "--db", db])
    assert res.exit_code == 2 and "unknown protocol" in res.output
