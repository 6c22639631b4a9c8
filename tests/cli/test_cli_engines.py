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
    assert summary["events"] > 1000 and summary["days"] >= 16
    assert (out / "events").is_dir()
    again = runner.invoke(app, ["export", "--out", str(out), "--db", str(db_file)])
    assert again.exit_code == 2 and "not empty" in again.output
    bad = runner.invoke(app, ["export", "--format", "orc", "--out", str(tmp_path / "o"),
                              "--db", str(db_file)])
    assert bad.exit_code != 0


def test_spark_report_verified_json(spark, exported):
    r = runner.invoke(app, ["spark-report", "--events", str(exported), "--kpi", "campaigns",
                            "--verify", "--format", "json", "--master", "local[2]"])
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    assert set(body) == {"campaigns"}
    assert len(body["campaigns"]) >= 1 and "spend" in body["campaigns"][0]


def test_kpi_tables_print_as_long_csv_and_json(capsys):
    import pandas as pd

    from feedwise.cli._common import Format
    from feedwise.cli.spark import emit_kpis

    tables = {"engagement": pd.DataFrame({"kind": ["click"], "events": [3]}),
              "ctr": pd.DataFrame({"day": ["2024-01-01"], "ctr": [0.5]})}
    emit_kpis(tables, Format.csv)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "kpi,kind,events,day,ctr" and lines[1].startswith("engagement,click,3")
    emit_kpis(tables, Format.json)
    assert json.loads(capsys.readouterr().out)["ctr"] == [{"day": "2024-01-01", "ctr": 0.5}]


def test_spark_report_rejects_unknown_kpi(spark, exported):
    bad = runner.invoke(app, ["spark-report", "--events", str(exported), "--kpi", "moon"])
    assert bad.exit_code == 2 and "unknown KPI" in bad.output


def test_spark_train_command_wiring(world_store, exported, tmp_path, monkeypatch):
    """The CLI parses and passes its options and saves the artifact (Spark itself is
    covered by test_spark_engine's full-path training; here the trainer is a stand-in)."""
    import numpy as np

    import feedwise.engines.spark as engine
    from feedwise.models.base import Recommender

    seen = {}

    def fake_train_als(spark, root, model, *, weights=None, since=None, until=None):
        seen.update(root=str(root), params=model.get_params(), since=since, until=until)
        data = world_store.interactions(since, until)
        rng = np.random.default_rng(0)
        k = model.factors
        return model.with_factors(data, rng.normal(size=(data.n_users, k)),
                                  rng.normal(size=(data.n_items, k)))

    monkeypatch.setattr(engine, "spark_session", lambda *a, **kw: None)
    monkeypatch.setattr(engine, "train_als", fake_train_als)
    out = tmp_path / "m"
    r = runner.invoke(app, ["spark-train", "--events", str(exported), "--out", str(out),
                            "--params", '{"factors": 4, "iterations": 2}',
                            "--since", "2024-01-10", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert seen["params"]["factors"] == 4 and seen["params"]["iterations"] == 2
    assert seen["since"].isoformat() == "2024-01-10T00:00:00+00:00" and seen["until"] is None
    info = json.loads(r.stdout)[0]
    model = Recommender.load(out)
    assert model.name == "spark_als" and info["users"] == len(model.user_ids_)
    assert model.item_factors_.shape[1] == 4
    bad = runner.invoke(app, ["spark-train", "--events", str(exported), "--since", "soon"])
    assert bad.exit_code == 2 and "--since" in bad.output
    typo = runner.invoke(app, ["spark-train", "--events", str(exported), "--params",
                               '{"rank": 4}'])
    assert typo.exit_code != 0 and "rank" in typo.output


def test_train_and_report_take_engine_spark(spark, world_store, exported, tmp_path,
                                           monkeypatch):
    """`feedwise train --engine spark` and `feedwise report --engine spark` reach the Spark
    engine (the trainer is a stand-in here; the report runs on the real local Spark)."""
    import numpy as np

    import feedwise.engines.spark as engine
    from feedwise.models.base import Recommender

    def fake_train_als(spark_, root, model, *, weights=None, since=None, until=None):
        data = world_store.interactions(since, until)
        rng = np.random.default_rng(0)
        return model.with_factors(data, rng.normal(size=(data.n_users, model.factors)),
                                  rng.normal(size=(data.n_items, model.factors)))

    monkeypatch.setattr(engine, "spark_session", lambda *a, **kw: None)
    monkeypatch.setattr(engine, "train_als", fake_train_als)
    out = tmp_path / "spark-model"
    r = runner.invoke(app, ["train", "--engine", "spark", "--events", str(exported), "--out",
                            str(out), "--params", '{"factors": 3}'])
    assert r.exit_code == 0, r.output
    assert Recommender.load(out).item_factors_.shape[1] == 3
    missing = runner.invoke(app, ["train", "--engine", "spark"])
    assert missing.exit_code == 2 and "--events" in missing.output
    monkeypatch.undo()

    rep = runner.invoke(app, ["report", "--engine", "spark", "--events", str(exported),
                              "--format", "json"])
    assert rep.exit_code == 0, rep.output
    tables = json.loads(rep.stdout)
    assert {"active_users", "ctr", "engagement", "retention", "campaigns"} <= set(tables)


def test_spark_report_and_report_engine_spark_pass_k(exported, monkeypatch):
    """`spark-report --k` and `report --engine spark --k` reach the Spark engine's k (the
    engine is a stand-in here; --verify runs the DuckDB side with the same k)."""
    import pandas as pd

    import feedwise.engines.spark as engine
    from feedwise.engines.kpis import duckdb_kpis

    seen = []

    def fake_report_spark(events, *, master=None, names=None, k=10, spark_conf=None):
        seen.append(k)
        return duckdb_kpis(events, list(names) if names else ["campaigns"], k=k)

    monkeypatch.setattr(engine, "report_spark", fake_report_spark)
    r = runner.invoke(app, ["spark-report", "--events", str(exported), "--kpi", "campaigns",
                            "--k", "1000", "--verify", "--format", "json"])
    assert r.exit_code == 0, r.output
    camp = pd.DataFrame(json.loads(r.stdout)["campaigns"])
    assert camp["suppressed"].all() and camp["reach"].isna().all()
    rep = runner.invoke(app, ["report", "--engine", "spark", "--events", str(exported),
                              "--k", "3", "--format", "json"])
    assert rep.exit_code == 0, rep.output
    assert seen == [1000, 3]
