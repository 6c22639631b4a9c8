"""Item 15: objections to profiling are honoured in training.

``feedwise train``, ``feedwise retrain`` and Spark training read the events of users who
withdrew ``personalization`` (objected to profiling); only the server stripped them from the
models it loaded. Now the training view itself (``EventStore.interactions``, and the Spark
path over an export's ``users.parquet``) leaves their events out, so no model trained by
feedwise holds an objector.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from engine_world import spark  # noqa: E402, F401 - the shared local Spark session
from service_world import T0, world_events
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.errors import DataError
from feedwise.models.base import Recommender
from feedwise.privacy import set_consent
from feedwise.registry import ModelRegistry
from feedwise.store import EventStore

OBJECTOR = "u3"
OTHERS = ("u5", "u6", "u7")  # ads and analytics withdrawn, a NULL flag, no users row
runner = CliRunner()


@pytest.fixture()
def db(tmp_path) -> str:
    path = str(tmp_path / "obj.duckdb")
    with EventStore(path) as store:
        store.ingest(world_events(n_users=40, n_items=40, per_user=8))
        now = T0 + timedelta(days=31)
        set_consent(store, OBJECTOR, personalization=False, source="settings", now=now)
        set_consent(store, "u5", ads=False, analytics=False, source="settings", now=now)
        store.upsert_users(pd.DataFrame({"user_id": ["u6"], "attributes": ["{}"]}))
        assert store.opted_out_users() == {OBJECTOR}
    return path


def _run(*args: str):
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res


def _assert_no_objector(model: Recommender) -> None:
    assert OBJECTOR not in model.user_index_
    assert not model.knows_user(OBJECTOR)
    assert all(model.knows_user(u) for u in OTHERS)


def test_the_training_view_leaves_objectors_out(db):
    with EventStore(db, read_only=True) as store:
        data = store.interactions()
        assert OBJECTOR not in data.user_index and set(OTHERS) <= set(data.user_index)
        everything = store.interactions(exclude_objectors=False)
        assert OBJECTOR in everything.user_index
        assert everything.nnz - data.nnz == 8


def test_cli_train_and_its_registry_version_hold_no_objector(db, tmp_path):
    out, reg = tmp_path / "models" / "itemknn", tmp_path / "registry"
    res = _run("train", "--model", "itemknn", "--out", str(out), "--registry", str(reg),
               "--db", db)
    assert "objected to profiling" in res.output
    _assert_no_objector(Recommender.load(out))
    registry = ModelRegistry(reg)
    _assert_no_objector(registry.load(registry.versions()[-1].version))


def test_cli_retrain_holds_no_objector(db, tmp_path):
    reg = tmp_path / "registry"
    res = _run("retrain", "--model", "itemknn", "--registry", str(reg), "--db", db,
               "--now", (T0 + timedelta(days=31)).isoformat(), "-f", "json")
    version = json.loads(res.stdout)[0]["candidate_version"]
    _assert_no_objector(ModelRegistry(reg).load(version))


def test_retrain_function_holds_no_objector(db, tmp_path):
    from feedwise.server.retrain import RetrainConfig, retrain

    registry = ModelRegistry(tmp_path / "registry")
    with EventStore(db) as store:
        d = retrain(store, registry, RetrainConfig(model="popularity"),
                    datetime(2024, 2, 1, tzinfo=UTC))
    _assert_no_objector(registry.load(d.candidate_version))


# ---------------------------------------------------------------------- Spark
def test_export_writes_personalization_consent(db, tmp_path):
    from feedwise.engines.export import export_parquet

    with EventStore(db, read_only=True) as store:
        export_parquet(store, tmp_path / "layout")
    users = pd.read_parquet(tmp_path / "layout" / "users.parquet")
    assert "consent_personalization" in users.columns
    assert set(users.loc[users["consent_personalization"] == False, "user_id"]  # noqa: E712
               ) == {OBJECTOR}


def test_spark_training_holds_no_objector(db, tmp_path, spark):  # noqa: F811
    from feedwise.engines.export import export_parquet
    from feedwise.engines.spark import spark_interactions, train_spark
    from feedwise.models.spark_als import SparkALS

    layout = tmp_path / "layout"
    with EventStore(db, read_only=True) as store:
        export_parquet(store, layout)
        embedded = store.interactions()
    out = tmp_path / "models" / "spark_als"
    # `feedwise train --engine spark` / `feedwise spark-train` run this
    model = train_spark(str(layout), out=out, master="local[2]",
                        model=SparkALS(factors=2, iterations=1))
    _assert_no_objector(model)
    assert sorted(model.user_index_) == sorted(embedded.user_ids)  # the embedded view's users
    _assert_no_objector(Recommender.load(out))

    # an export written before the flag was exported cannot honour objections: refused
    users = pd.read_parquet(layout / "users.parquet")
    users.drop(columns=["consent_personalization"]).to_parquet(layout / "users.parquet")
    with pytest.raises(DataError, match="consent_personalization"):
        spark_interactions(spark, layout)
