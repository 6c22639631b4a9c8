"""Item 6: impossible timestamps were accepted.

``"infinity"``, the year 290000 and unix 99999999999 (the year 5138) landed through the API
and the CLI; afterwards ``kpis``, ``report`` and ``profiles`` failed with ``OverflowError``.
Now a time outside [1970-01-01, now + 1 day] (``now`` taken when the batch is ingested) is
rejected with the row's reason, by the one rule every ingest path checks, and the insight
commands run after such an ingest attempt.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from service_world import make_world
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.server.app import create_app
from feedwise.store import EventStore

runner = CliRunner()
GOOD = "2024-02-01T10:00:00Z"
#: ts text -> a word the reason must hold
IMPOSSIBLE = {
    "infinity": "outside",
    "-infinity": "outside",
    "290000-01-01T00:00:00Z": "outside",
    "99999999999": "outside",  # unix seconds of the year 5138
    "-1": "outside",  # 1969-12-31T23:59:59Z
    "1969-12-31T23:59:59Z": "outside",
    "1e300": "outside",
    "nan": "unparsable",
}


def _rows(prefix: str = "t") -> list[dict]:
    rows = [{"event_id": f"{prefix}-ok", "user_id": "u1", "item_id": "i1", "kind": "click",
             "ts": GOOD}]
    for j, ts in enumerate(IMPOSSIBLE):
        rows.append({"event_id": f"{prefix}-{j}", "user_id": "u1", "item_id": "i1",
                     "kind": "click", "ts": ts})
    return rows


def _assert_ts_rejects(rej: pd.DataFrame) -> None:
    assert list(rej["field"]) == ["ts"] * len(IMPOSSIBLE)
    for reason, word in zip(rej["reason"], IMPOSSIBLE.values(), strict=True):
        assert word in reason, reason
        if word == "outside":
            assert "1970-01-01" in reason and "now + 1 day" in reason


def test_store_rejects_times_outside_1970_to_tomorrow(store: EventStore) -> None:
    rep = store.add_events(_rows(), source_name="api-batch")
    assert (rep.accepted, rep.rejected) == (1, len(IMPOSSIBLE))
    _assert_ts_rejects(store.rejects("api-batch"))
    # the bounds: 1970-01-01T00:00:00Z and now + 23 h land, now + 25 h does not
    now = datetime.now(UTC)
    edge = [{"user_id": "u2", "item_id": "i", "kind": "click", "ts": ts} for ts in
            ("1970-01-01T00:00:00Z", now.isoformat(), (now + timedelta(hours=23)).isoformat(),
             (now + timedelta(hours=25)).isoformat())]
    rep = store.add_events(edge, source_name="edges")
    assert (rep.accepted, rep.rejected) == (3, 1)
    assert list(store.rejects("edges")["row"]) == [4]


@pytest.mark.parametrize("unit,scale", [("s", 1), ("ms", 1_000), ("us", 1_000_000)])
def test_numeric_times_out_of_range_in_every_unit(store: EventStore, unit: str,
                                                  scale: int) -> None:
    ok = 1_706_781_600
    df = pd.DataFrame({"user_id": ["a"] * 4, "item_id": ["x", "y", "z", "w"],
                       "kind": ["click"] * 4,
                       "ts": np.array([ok, 99_999_999_999, 10**15, -5], dtype="float64")
                       * scale})
    rep = store.ingest(df, ts_unit=unit, source_name=unit)
    assert (rep.accepted, rep.rejected) == (1, 3)
    assert all("outside" in r for r in store.rejects(unit)["reason"])


def test_typed_sources_out_of_range(tmp_path, store: EventStore) -> None:
    """Typed timestamps (Parquet, DataFrames) keep the same rule."""
    far = pd.Timestamp("2200-01-01", tz="UTC")
    t = pa.table({"user_id": ["a", "b", "c"], "item_id": ["x", "y", "z"],
                  "kind": ["click"] * 3,
                  "ts": pa.array([pd.Timestamp(GOOD), far, pd.Timestamp("1950-06-01", tz="UTC")],
                                 pa.timestamp("us", tz="UTC"))})
    pq.write_table(t, tmp_path / "typed.parquet")
    rep = store.ingest(tmp_path / "typed.parquet")
    assert (rep.accepted, rep.rejected) == (1, 2)
    assert set(store.rejects()["row"]) == {2, 3}


def test_api_rejects_impossible_times_with_the_row_reason(tmp_path) -> None:
    world = make_world(tmp_path)
    rows = _rows("api")
    with TestClient(create_app(world.settings)) as client:
        r = client.post("/v1/events", json=rows, headers=world.headers(world.ingest))
        assert r.status_code == 200, r.text
        got = r.json()
    assert (got["accepted"], got["rejected"]) == (1, len(IMPOSSIBLE))
    assert [e["index"] for e in got["errors"]] == list(range(1, len(rows)))
    assert {e["field"] for e in got["errors"]} == {"ts"}
    assert all(w in e["reason"] for e, w in zip(got["errors"], IMPOSSIBLE.values(),
                                                strict=True))


def test_cli_rejects_them_and_insight_commands_still_run(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = str(tmp_path / "fw.duckdb")
    f = tmp_path / "events.csv"
    good = [{"event_id": f"g{i}", "user_id": f"u{i % 7}", "item_id": f"i{i % 5}",
             "kind": "click", "ts": f"2024-02-{1 + i % 20:02d}T10:00:00Z"} for i in range(60)]
    pd.DataFrame(good + _rows("cli")[1:]).to_csv(f, index=False)
    res = runner.invoke(app, ["ingest", str(f), "--db", db, "--format", "json"])
    assert res.exit_code == 0, res.output
    assert '"rejected":' + str(len(IMPOSSIBLE)) in res.stdout.replace(" ", "")
    with EventStore(db, read_only=True) as store:
        assert store.count_events() == 60
        _assert_ts_rejects(store.rejects(str(f)))
        assert store.scalar("SELECT max(ts) FROM events") < datetime.now(UTC)
    for args in (["kpis"], ["profiles"], ["report", "--out", str(tmp_path / "r.html")]):
        res = runner.invoke(app, [*args, "--db", db])
        assert res.exit_code == 0, (args, res.output)
        assert "OverflowError" not in res.output


def test_the_typed_rule_spark_checks_holds_the_range(store: EventStore) -> None:
    """The Spark engine's ingest checks :func:`typed_valid` (the typed rules): it holds the
    range too, so a cluster-side ingest drops the same rows."""
    from feedwise.store.ingest import typed_valid

    now = pd.Timestamp.now(tz="UTC")
    df = pd.DataFrame({"event_id": ["ok", "old", "future", "tomorrow"],
                       "user_id": "u", "item_id": "i", "kind": "click",
                       "ts": [pd.Timestamp(GOOD), pd.Timestamp("1969-07-20", tz="UTC"),
                              now + pd.Timedelta(days=400), now + pd.Timedelta(hours=20)],
                       "dwell_ms": None, "value": None, "position": None, "propensity": None,
                       "text": None})
    cur = store.cursor()
    cur.register("_typed", df)
    kept = cur.execute(f"SELECT event_id FROM _typed WHERE {typed_valid()} ORDER BY 1").fetchall()
    assert kept == [("ok",), ("tomorrow",)]


def test_purge_removes_impossible_times_an_older_store_holds(store: EventStore) -> None:
    """A store written before ingest rejected such times may hold them: retention removes
    them (they broke kpis/report/profiles until deleted by hand)."""
    from feedwise.privacy import purge

    now = datetime(2026, 6, 1, tzinfo=UTC)
    store.ingest(pd.DataFrame(_rows()))
    kept = store.count_events()
    # written as an older feedwise would have: straight into the table
    store.con.execute("INSERT INTO events (event_id, user_id, item_id, kind, ts) VALUES "
                      "('old-1', 'u1', 'i1', 'click', 'infinity'), "
                      "('old-2', 'u1', 'i1', 'click', TIMESTAMPTZ '2900-01-01 00:00:00+00')")
    assert store.count_events() == kept + 2
    out = purge(store, 36500, now=now)
    assert out["events"] == 2
    assert store.count_events() == kept
