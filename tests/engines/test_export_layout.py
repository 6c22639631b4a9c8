"""The Parquet export and the DuckDB reference KPIs (no Spark needed)."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from feedwise.engines.export import MANIFEST, events_glob, export_parquet
from feedwise.engines.kpis import KPI_NAMES, compare_kpis, duckdb_kpis, kpi_sql
from feedwise.errors import ConfigError, DataError


def test_export_is_date_partitioned_and_complete(world_store, exported):
    days = sorted(p.name for p in (exported / "events").iterdir())
    assert days and all(d.startswith("date=") for d in days)
    n_days = world_store.scalar("SELECT count(DISTINCT CAST(ts AS DATE)) FROM events")
    assert len(days) == n_days
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    back = con.execute(f"SELECT * FROM read_parquet('{events_glob(exported)}', "
                       "hive_partitioning = true) ORDER BY event_id").df()
    orig = world_store.query("SELECT * FROM events ORDER BY event_id")
    assert len(back) == len(orig)
    assert (back["event_id"].to_numpy() == orig["event_id"].to_numpy()).all()
    assert (back["kind"].to_numpy() == orig["kind"].to_numpy()).all()
    # every row sits in the partition of its own UTC day
    assert (pd.to_datetime(back["date"]).dt.date == back["ts"].dt.tz_convert("UTC").dt.date
            ).all()
    np.testing.assert_array_equal(back["ts"].to_numpy(), orig["ts"].to_numpy())
    manifest = json.loads((exported / MANIFEST).read_text())
    assert manifest["events"] == len(orig) and manifest["days"] == n_days
    assert (exported / "items.parquet").exists() and (exported / "campaigns.parquet").exists()


def test_export_refuses_to_clobber(world_store, tmp_path):
    out = tmp_path / "x"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(ConfigError, match="not empty"):
        export_parquet(world_store, out)
    with pytest.raises(ConfigError, match="not a feedwise export"):
        export_parquet(world_store, out, overwrite=True)
    assert (out / "keep.txt").read_text() == "precious"
    fresh = tmp_path / "y"
    first = export_parquet(world_store, fresh)
    again = export_parquet(world_store, fresh, overwrite=True)
    assert again.events == first.events


def test_export_of_empty_store_fails(store, tmp_path):
    with pytest.raises(DataError, match="no events"):
        export_parquet(store, tmp_path / "empty")


def test_duckdb_kpis_on_store_equal_kpis_on_export(world_store, exported):
    a, b = duckdb_kpis(world_store), duckdb_kpis(exported)
    assert set(a) == set(KPI_NAMES)
    assert compare_kpis(a, b) == []
    assert len(a["campaigns"]) > 0 and a["campaigns"]["impressions"].sum() > 0
    assert a["retention"]["week"].max() >= 2


@pytest.fixture()
def tiny(store):
    ev = [("e1", "u1", "p1", "impression", "2024-01-01T08:00:00Z", None),
          ("e2", "u1", "p1", "click", "2024-01-01T08:01:00Z", None),
          ("e3", "u1", "p2", "impression", "2024-01-08T09:00:00Z", None),
          ("e4", "u2", "p2", "impression", "2024-01-02T10:00:00Z", None),
          ("e5", "u2", "a1", "ad_impression", "2024-01-02T10:00:05Z", 0.5),
          ("e6", "u2", "a1", "ad_click", "2024-01-02T10:00:09Z", 1.0),
          ("e7", "u2", "a1", "conversion", "2024-01-03T23:59:59Z", 30.0),
          ("e8", "u3", "p1", "like", "2024-01-09T00:00:00Z", None)]
    store.ingest(pd.DataFrame(ev, columns=["event_id", "user_id", "item_id", "kind", "ts",
                                           "value"]))
    store.upsert_items(pd.DataFrame({"item_id": ["p1", "p2", "a1"],
                                     "kind": ["post", "post", "ad"],
                                     "campaign_id": [None, None, "c1"]}))
    return store


def test_kpis_hand_computed(tiny):
    k = duckdb_kpis(tiny, k=1)
    au = k["active_users"].set_index("day")
    assert au["dau"].tolist() == [1, 1, 1, 1, 1]
    assert au.loc["2024-01-08", "wau"] == 2  # u2 (Jan 2-3) and u1 (Jan 8)
    assert au.loc["2024-01-09", "wau"] == 3 and au.loc["2024-01-09", "mau"] == 3
    assert au.loc["2024-01-09", "stickiness"] == pytest.approx(1 / 3)
    ctr = k["ctr"].set_index("day")
    assert ctr.loc["2024-01-01", "ctr"] == 1.0 and ctr.loc["2024-01-02", "ctr"] == 0.0
    assert ctr.loc["2024-01-02", "ad_ctr"] == 1.0
    assert np.isnan(ctr.loc["2024-01-03", "ctr"])  # no impressions that day
    eng = k["engagement"].set_index("kind")
    assert eng.loc["impression", "events"] == 3 and eng.loc["impression", "users"] == 2
    assert eng.loc["like", "per_impression"] == pytest.approx(1 / 3)
    ret = k["retention"]
    assert ret[["cohort", "week", "cohort_size", "users"]].values.tolist() == [
        ["2024-01-01", 0, 2, 2], ["2024-01-01", 1, 2, 1], ["2024-01-08", 0, 1, 1]]
    camp = k["campaigns"].iloc[0]
    assert camp["campaign_id"] == "c1"
    assert (camp["impressions"], camp["reach"], camp["clicks"], camp["conversions"]) == (
        1, 1, 1, 1)
    assert camp["spend"] == pytest.approx(1.5) and camp["cvr"] == 1.0


def test_compare_kpis_reports_a_difference(tiny):
    a = duckdb_kpis(tiny, k=1)
    b = {k: v.copy() for k, v in a.items()}
    b["active_users"].loc[0, "dau"] += 1
    b["campaigns"].loc[0, "spend"] *= 1.001
    diffs = compare_kpis(a, b)
    assert any(d.startswith("active_users.dau") for d in diffs)
    assert any(d.startswith("campaigns.spend") for d in diffs)


def test_unknown_kpi_and_dialect():
    with pytest.raises(ConfigError, match="unknown KPI"):
        kpi_sql("revenue_per_moon")
    with pytest.raises(ConfigError, match="dialect"):
        kpi_sql("ctr", "oracle")  # type: ignore[arg-type]
    assert "datediff(" in kpi_sql("active_users", "spark")
    assert "date_diff('day'" in kpi_sql("active_users", "duckdb")


def test_duckdb_kpis_on_missing_layout(tmp_path):
    with pytest.raises(DataError, match="no events/ folder"):
        duckdb_kpis(tmp_path)


def test_campaign_spend_follows_the_reports_money_convention(priced, tmp_path):
    """Ad events without a logged price are charged by their campaign's bid model, and an
    ad tied to its campaign through ``context`` counts, as in the report's campaign table."""
    from datetime import UTC, datetime

    from feedwise.analytics.campaigns import campaign_results
    from feedwise.analytics.scope import Scope

    camp = duckdb_kpis(priced, k=1)["campaigns"].set_index("campaign_id")
    assert camp.loc["m", "impressions"] == 3 and camp.loc["m", "reach"] == 2
    assert camp["spend"].to_dict() == pytest.approx({"a": 5.0, "c": 0.8, "m": 0.006})
    scope = Scope(priced, datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC),
                  k=1)
    try:
        report = campaign_results(scope).set_index("campaign_id")
    finally:
        scope.close()
    assert report["spend"].to_dict() == pytest.approx(camp["spend"].to_dict())
    export_parquet(priced, tmp_path / "layout")
    assert compare_kpis(duckdb_kpis(priced, k=1), duckdb_kpis(tmp_path / "layout", k=1)) == []
