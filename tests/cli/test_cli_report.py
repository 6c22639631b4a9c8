"""``feedwise report`` end to end on a file store."""

from __future__ import annotations

import json

import plotly.offline
from report_world import load_world, make_world
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.store import EventStore


def test_report_command_writes_html_and_profiles(tmp_path):
    db = tmp_path / "fw.duckdb"
    with EventStore(db) as s:
        load_world(s, make_world(n_users=40, n_days=14))
    out = tmp_path / "r" / "report.html"
    res = CliRunner().invoke(app, ["report", "--db", str(db), "--from", "2026-02-02",
                                   "--to", "2026-02-16", "--out", str(out), "--k", "5",
                                   "--segments", "3", "--write-profiles", "-f", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout[res.stdout.index("["):])
    assert {r["section"] for r in rows} >= {"kpis", "retention", "campaigns", "total"}
    html = out.read_text()
    rest = html.replace(plotly.offline.get_plotlyjs(), "")
    assert "<script src" not in rest and "cdn" not in rest
    assert html.count('class="plotly-graph-div"') == 9
    with EventStore(db, read_only=True) as s:
        assert s.scalar("SELECT count(*) FROM user_profiles") > 30


def test_report_command_clean_errors(tmp_path):
    db = tmp_path / "fw.duckdb"
    EventStore(db).close()
    r = CliRunner().invoke(app, ["report", "--db", str(db), "--out", str(tmp_path / "x.html")])
    assert r.exit_code == 2 and "no events" in r.output
    r = CliRunner().invoke(app, ["report", "--db", str(db), "--from", "2026-03-01",
                                 "--to", "2026-02-01"])
    assert r.exit_code == 2 and "not after start" in r.output
    r = CliRunner().invoke(app, ["report", "--db", str(db), "--from", "yesterday"])
    assert r.exit_code == 2 and "ISO" in r.output
