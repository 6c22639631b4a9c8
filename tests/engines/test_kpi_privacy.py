"""The engine KPIs count only users with analytics consent and suppress small groups, on
the store and on its Parquet export (the Spark side is in test_spark_engine.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from feedwise.engines.export import MANIFEST, export_parquet
from feedwise.engines.kpis import compare_kpis, duckdb_kpis
from feedwise.errors import ConfigError


@pytest.fixture()
def layout(private, tmp_path):
    out = tmp_path / "layout"
    export_parquet(private, out)
    return out


def test_export_writes_users_with_analytics_consent(private, layout):
    users = pd.read_parquet(layout / "users.parquet")
    assert {"user_id", "consent_analytics"} <= set(users.columns)
    got = dict(zip(users["user_id"], users["consent_analytics"], strict=True))
    assert not pd.isna(got["nc"]) and not got["nc"]
    assert set(got) == {"v0", "v1", "nc"} and pd.isna(got["v0"])
    assert json.loads((layout / MANIFEST).read_text())["users"] == 3


@pytest.mark.parametrize("where", ["store", "export"])
def test_user_without_analytics_consent_is_absent(private, layout, where):
    k = duckdb_kpis(private if where == "store" else layout, k=1)
    au = k["active_users"].set_index("day")
    # 12 u + v0 (NULL consent) + v1 (true) + v2 (no row); nc is not counted
    assert au.loc["2024-01-01", "dau"] == 15
    assert "2024-01-20" not in au.index  # only nc was active that day
    assert "like" not in set(k["engagement"]["kind"])
    assert k["engagement"].set_index("kind").loc["impression", "users"] == 17
    assert "nc_only" not in set(k["campaigns"]["campaign_id"])
    ret = k["retention"].set_index(["cohort", "week"])
    assert ret.loc[("2024-01-01", 0), "cohort_size"] == 15
    assert k["ctr"].set_index("day").loc["2024-01-01", "impressions"] == 15


def test_export_without_users_keeps_every_event(private, layout):
    """An older layout has no users.parquet: nothing to filter by, every event counts."""
    (layout / "users.parquet").unlink()
    k = duckdb_kpis(layout, k=1)
    assert k["active_users"].set_index("day").loc["2024-01-01", "dau"] == 16
    assert "nc_only" in set(k["campaigns"]["campaign_id"])


@pytest.mark.parametrize("where", ["store", "export"])
def test_groups_below_k_are_suppressed(private, layout, where):
    k = duckdb_kpis(private if where == "store" else layout)  # default k = 10
    camp = k["campaigns"].set_index("campaign_id")
    assert camp.loc["big", "reach"] == 12 and not camp.loc["big", "suppressed"]
    assert camp.loc["small", "suppressed"]
    assert camp.loc["small", ["impressions", "reach", "users", "clicks", "spend"]].isna().all()
    ret = k["retention"].set_index(["cohort", "week"])
    assert ret.loc[("2024-01-01", 0), "cohort_size"] == 15
    small = ret.loc[("2024-01-15", 0)]
    assert small["suppressed"] and np.isnan(small["cohort_size"]) and np.isnan(small["rate"])
    au = k["active_users"].set_index("day")
    assert au.loc["2024-01-01", "dau"] == 15 and au.loc["2024-01-15", "suppressed"]
    assert au.loc["2024-01-15", ["dau", "wau", "mau", "stickiness"]].isna().all()
    ctr = k["ctr"].set_index("day")
    assert ctr.loc["2024-01-15", "suppressed"] and np.isnan(ctr.loc["2024-01-15", "impressions"])
    eng = k["engagement"].set_index("kind")
    assert eng.loc["click", "suppressed"] and np.isnan(eng.loc["click", "events"])
    assert eng.loc["impression", "users"] == 17


def test_k_1_shows_everything_and_engines_paths_agree(private, layout):
    a, b = duckdb_kpis(private, k=1), duckdb_kpis(layout, k=1)
    assert compare_kpis(a, b) == []
    assert compare_kpis(duckdb_kpis(private), duckdb_kpis(layout)) == []
    for name, df in a.items():
        assert not df["suppressed"].any(), name
    camp = a["campaigns"].set_index("campaign_id")
    assert camp.loc["small", "reach"] == 3
    ret = a["retention"].set_index(["cohort", "week"])
    assert ret.loc[("2024-01-15", 0), "cohort_size"] == 2
    with pytest.raises(ConfigError, match="k must be"):
        duckdb_kpis(private, k=0)
