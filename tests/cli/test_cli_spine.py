"""The spine through the `feedwise` command: ingest, train, evaluate, recommend, demo."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from feedwise.cli import app

runner = CliRunner()


@pytest.fixture()
def ml_db(tmp_path, shared_data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = str(tmp_path / "fw.duckdb")
    res = runner.invoke(app, ["ingest", str(shared_data / "movielens-100k" / "u.data"),
                              "--mapping", "movielens-100k", "--db", db, "--format", "json"])
    assert res.exit_code == 0, res.output
    return db, json.loads(res.stdout)


def test_ingest_reports_json(ml_db) -> None:
    _, report = ml_db
    assert report[0]["accepted"] == 100_000 and report[0]["rejected"] == 0


def test_train_evaluate_recommend(ml_db, tmp_path) -> None:
    db, _ = ml_db
    res = runner.invoke(app, ["train", "--model", "itemknn", "--db", db])
    assert res.exit_code == 0, res.output
    # registered in the store's registry (issue 19: never ./models of the working folder)
    assert (tmp_path / "fw.models" / "versions" / "v0001" / "model.npz").exists()
    assert not (tmp_path / "models").exists()

    res = runner.invoke(app, ["evaluate", "--model", "popularity", "--split", "random",
                              "--db", db, "-f", "csv"])
    assert res.exit_code == 0, res.output
    assert "ndcg" in res.stdout and res.stdout.startswith("model,metric,k,value")

    res = runner.invoke(app, ["recommend", "196", "-n", "3", "--db", db, "-f", "json"])
    recs = json.loads(res.stdout)
    assert [r["rank"] for r in recs] == [1, 2, 3]
    assert all(r["reason"].startswith("because you liked") for r in recs)

    res = runner.invoke(app, ["recommend", "--all", "-n", "2", "--db", db, "-f", "jsonl"])
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(lines) == 943 * 2 and len({x["user_id"] for x in lines}) == 943


def test_train_hybrid_reports_its_calibration(ml_db, tmp_path) -> None:
    db, _ = ml_db
    params = json.dumps({"components": [["ease", 1.0, {}], ["popularity", 0.5, {}]],
                         "calibration_splits": 1})
    res = runner.invoke(app, ["train", "--model", "hybrid", "--params", params, "--db", db])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "calibrated the blend on 1 validation split(s)" in out and "ndcg@10" in out
    from feedwise.models import Recommender

    back = Recommender.load(tmp_path / "fw.models" / "versions" / "v0001")  # its registry
    assert back.calibration_ is not None and back.calibration_.chosen >= back.calibration_.given


def test_errors_are_clean(tmp_path) -> None:
    res = runner.invoke(app, ["ingest", str(tmp_path / "nope.csv"), "--db",
                              str(tmp_path / "x.duckdb")])
    assert res.exit_code == 2
    assert "file not found" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["evaluate", "--model", "nosuch", "--db",
                              str(tmp_path / "x.duckdb")])
    assert res.exit_code == 2 and "unknown model" in res.output


@pytest.mark.parametrize(("params", "message"), [
    ("notjson", "not valid JSON"),
    ('{"k": ', "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"nope": 1}', "does not fit model"),
])
@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_bad_params_are_clean(tmp_path, command: str, params: str, message: str) -> None:
    res = runner.invoke(app, [command, "--model", "itemknn", "--params", params, "--db",
                              str(tmp_path / "x.duckdb")])
    assert res.exit_code == 2, res.output
    assert message in res.output.replace("\n", " ") and "--params" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_demo_runs_end_to_end(tmp_path) -> None:
    # a tiny world through the same command (the default size is timed by `make demo`)
    res = runner.invoke(app, ["demo", "--users", "100", "--days", "3", "--posts", "400",
                              "--requests", "20", "--db", str(tmp_path / "demo.duckdb")])
    assert res.exit_code == 0, res.output
    assert "ndcg" in res.output and "itemknn" in res.output
    # issue 18: the default says what it picked, the feed carries ads within its
    # guardrails, the new feed is estimated off-policy, and the report is written
    assert "auto picked" in res.output and "guardrail violations: 0" in res.output
    assert "new feed, DR" in res.output and (tmp_path / "demo.report.html").exists()


def test_train_registers_and_promotes(ml_db, tmp_path) -> None:
    from feedwise.registry import ModelRegistry

    db, _ = ml_db
    reg = tmp_path / "registry"
    res = runner.invoke(app, ["train", "--model", "popularity", "--db", db, "--registry",
                              str(reg), "--promote"])
    assert res.exit_code == 0, res.output
    meta, model = ModelRegistry(reg).load_promoted()
    assert meta.model == "popularity" and meta.data_window.n_events == 100_000
    assert meta.data_window.until is not None and model.knows_user("196")


@pytest.mark.parametrize(("args", "message"), [
    (["retrain", "--params", '{"k": '], "--params is not valid JSON"),
    (["retrain", "--params", "[1]"], "--params must be a JSON object"),
    (["retrain", "--now", "garbage"], "--now 'garbage' is not a date or time"),
    (["feed", "u1", "--now", "garbage"], "--now 'garbage' is not a date or time"),
])
def test_retrain_and_feed_name_the_bad_option(tmp_path, args: list[str], message: str) -> None:
    res = runner.invoke(app, [*args, "--db", str(tmp_path / "x.duckdb")])
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert message in res.output.replace("\n", " "), res.output


def test_train_gives_content_models_the_posts_table(ml_db, tmp_path) -> None:
    """`feedwise train` passes the store's posts to models that read them: a post nobody has
    engaged with yet joins the catalogue and is scored by its text; ads do not join."""
    from feedwise.models import Recommender
    from feedwise.store import EventStore

    db, _ = ml_db
    with EventStore(db) as store:
        store.upsert_items([{"item_id": "50", "title": "Star Wars", "tags": ["space"]},
                            {"item_id": "fresh", "title": "Star Wars: a new saga",
                             "tags": ["space"]},
                            {"item_id": "ad-1", "kind": "ad", "title": "Buy space boots"}])
        store.upsert_items(pd.DataFrame({"item_id": ["fresh2"], "title": ["More Star Wars"]}))
    res = runner.invoke(app, ["train", "--model", "content", "--db", db])
    assert res.exit_code == 0, res.output
    model = Recommender.load(tmp_path / "fw.models" / "versions" / "v0001")  # its registry
    assert {"fresh", "fresh2"} <= set(model.item_ids_) and "ad-1" not in set(model.item_ids_)
    assert np.isfinite(model.score("1", ["fresh"])[0])
