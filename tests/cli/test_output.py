"""Output people can read: integers as integers, no ``nan``, no cut cells when piped, JSON
without escaped slashes, ``kpis --grain`` long by default."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.cli._common import Format, emit
from feedwise.store import EventStore

runner = CliRunner()
LONG = "/work/shared/data/lastfm-hetrec2011-2k/a-very-long-file-name-that-would-be-cut.dat"


def frame() -> pd.DataFrame:
    return pd.DataFrame({"source": [LONG, "b"], "count": [1961.0, 7.0],
                         "rate": [0.25, math.nan], "mixed": [3.0, 0.125],
                         "previous": [math.nan, 2.0]})


def test_table_not_cut_when_piped(capsys):
    emit(frame(), Format.table, title="t")
    out = capsys.readouterr().out
    assert LONG in out and "…" not in out  # the whole path on one line
    assert "1961" in out and "1961.0" not in out
    assert "0.2500" in out and "nan" not in out.lower()
    assert "–" in out  # a missing figure


def test_machine_formats(capsys):
    emit(frame(), Format.json)
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["count"] == 1961 and isinstance(rows[0]["count"], int)
    assert rows[0]["previous"] is None and rows[1]["mixed"] == 0.125
    emit(frame(), Format.json)
    assert "\\/" not in capsys.readouterr().out and LONG in json.dumps(rows)
    emit(frame(), Format.csv)
    text = capsys.readouterr().out
    assert "1961," in text and "1961.0" not in text and "nan" not in text.lower()
    emit(frame(), Format.jsonl)
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["previous"] is None and lines[0]["count"] == 1961


def test_kpis_long_by_default(tmp_path: Path):
    db = str(tmp_path / "k.duckdb")
    days = pd.date_range("2026-01-01", periods=31, freq="D", tz="UTC")
    ev = pd.DataFrame({"user_id": [f"u{i % 12}" for i in range(31 * 12)],
                       "item_id": [f"i{i % 5}" for i in range(31 * 12)],
                       "kind": "impression",
                       "ts": [d + pd.Timedelta(minutes=i) for d in days for i in range(12)]})
    with EventStore(db) as s:
        s.ingest(ev)
    base = ["kpis", "--db", db, "--from", "2026-01-01", "--to", "2026-02-01", "--k", "1",
            "--grain", "day"]
    res = runner.invoke(app, base)
    assert res.exit_code == 0, res.output
    header = next(x for x in res.stdout.splitlines() if "period" in x)
    assert [c.strip() for c in header.strip("┃ ").split("┃")] == ["period", "kpi", "label",
                                                                   "value"]
    res = runner.invoke(app, [*base, "--layout", "long", "-f", "csv"])
    long = pd.read_csv(pd.io.common.StringIO(res.stdout))
    assert list(long.columns) == ["period", "kpi", "label", "value"]
    assert long["period"].nunique() == 31
    assert long.query("kpi == 'active_users'")["value"].astype(float).eq(12).all()
    res = runner.invoke(app, [*base, "-f", "csv", "--layout", "wide"])  # one row per period
    wide = pd.read_csv(pd.io.common.StringIO(res.stdout))
    assert len(wide) == 31 and "active_users" in wide.columns
    res = runner.invoke(app, ["kpis", "--db", db, "--from", "2026-01-01", "--to",
                              "2026-01-02", "--k", "1"])  # nothing before: no previous
    assert res.exit_code == 0 and "nan" not in res.stdout.lower()
