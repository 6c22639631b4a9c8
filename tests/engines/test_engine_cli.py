"""`feedwise export`, `feedwise spark-report` and `feedwise spark-train` end to end."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from feedwise.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def db_file(world, tmp_path_factory):
    from feedwise.store import EventStore

    path = tmp_path_factory.mktemp("db") / "fw.duckdb"
    with EventStore(path) as store:
        world.load_into(store)
    return path


def test_export_command(db_file, tmp_path):
    out = tmp_path / "layout"
    r = runner.invoke(app, ["export", "--format", "parquet", "--out", str(out), "--db",
                            str(db_file), "--summary-format", "json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)[0]
    assert summary["events"] > 1000 and summary["days"] >= 24
    assert (out / "events").is_dir()
    again = runner.invoke(app, ["export", "--out", str(out), "--db", str(db_file)])
    assert again.exit_code == 2 and "not empty" in again.output
    bad = runner.invoke(app, ["export", "--format", "orc", "--out", str(tmp_path / "o"),
                              "--db", str(db_file)])
    assert bad.exit_code != 0


def test_spark_report_verified_json(spark, exported):
    r = runner.invoke(app, ["spark-report", "--events", str(exported), "--kpi", "ctr",
                            "--kpi", "campaigns", "--verify", "--format", "json",
                            "--master", "local[2]"])
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    assert set(body) == {"ctr", "campaigns"}
    assert len(body["campaigns"]) >= 1 and "spend" in body["campaigns"][0]


def test_spark_report_csv_and_bad_kpi(spark, exported):
    r = runner.invoke(app, ["spark-report", "--events", str(exported), "--kpi", "engagement",
                            "--format", "csv"])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0].startswith("kpi,kind,events")
    bad = runner.invoke(app, ["spark-report", "--events", str(exported), "--kpi", "moon"])
    assert bad.exit_code == 2 and "unknown KPI" in bad.output


def test_spark_train_command(spark, exported, tmp_path):
    from feedwise.models.base import Recommender

    out = tmp_path / "m"
    r = runner.invoke(app, ["spark-train", "--events", str(exported), "--out", str(out),
                            "--params", '{"factors": 4, "iterations": 2, "blocks": 2}',
                            "--since", "2024-01-10", "--format", "json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)[0]
    model = Recommender.load(out)
    assert model.name == "spark_als" and info["users"] == len(model.user_ids_)
    assert model.item_factors_.shape[1] == 4
    bad = runner.invoke(app, ["spark-train", "--events", str(exported), "--since", "soon"])
    assert bad.exit_code == 2 and "--since" in bad.output
