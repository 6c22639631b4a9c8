"""``POST /v1/notifications/due`` / ``outcomes`` and ``feedwise notify plan``."""

from __future__ import annotations

import json
from datetime import timedelta

from fastapi.testclient import TestClient
from notify_world import NOW, fill
from service_world import make_world
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.notifications import plan
from feedwise.server.app import create_app
from feedwise.store import EventStore


def test_the_endpoint_hands_out_due_notifications_once_and_records_outcomes(tmp_path):
    world = make_world(tmp_path)
    with EventStore(world.settings.db) as store:
        fill(store)
        planned = plan(store, NOW, write=True)
    later = (NOW + timedelta(hours=23)).isoformat()
    with TestClient(create_app(world.settings)) as c:
        h = {**world.headers(world.ingest), "X-Request-ID": "batch-1"}
        assert c.post("/v1/notifications/due", json={"now": later},
                      headers=world.headers(world.read)).status_code == 403
        r = c.post("/v1/notifications/due", json={"now": later}, headers=h)
        assert r.status_code == 200, r.text
        got = r.json()["notifications"]
        assert r.json()["batch"] == "batch-1" and got
        assert {n["notification_id"] for n in got} <= set(planned["notification_id"])
        assert all(n["status"] == "sent" and 0 < n["propensity"] <= 1 for n in got)
        again = c.post("/v1/notifications/due", json={"now": later}, headers=h).json()
        assert again["notifications"] == got  # the same batch: the same, nothing re-sent
        other = c.post("/v1/notifications/due", json={"now": later},
                       headers={**h, "X-Request-ID": "batch-2"}).json()
        assert other["notifications"] == []
        ids = [n["notification_id"] for n in got]
        body = {"ids": ids, "outcome": "opened", "now": later}
        assert c.post("/v1/notifications/outcomes", json=body, headers=h).json() == {
            "changed": len(ids)}
        assert c.post("/v1/notifications/outcomes", json=body, headers=h).json() == {
            "changed": 0}
        bad = c.post("/v1/notifications/outcomes", json={"ids": ids, "outcome": "lost"},
                     headers=h)
        assert bad.status_code == 422


def test_notify_plan_prints_and_queues(tmp_path):
    db = tmp_path / "n.duckdb"
    with EventStore(db) as store:
        fill(store)
    runner = CliRunner()
    r = runner.invoke(app, ["notify", "plan", "--db", str(db), "--now", NOW.isoformat(),
                            "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert {x["user_id"] for x in rows} == {"tokyo", "berlin", "ny", "nozone", "badzone"}
    with EventStore(db) as store:
        assert store.notifications().empty  # dry run by default
    r = runner.invoke(app, ["notify", "plan", "--db", str(db), "--now", NOW.isoformat(),
                            "--write"])
    assert r.exit_code == 0, r.output
    with EventStore(db) as store:
        assert len(store.notifications()) == 5
    bad = runner.invoke(app, ["notify", "plan", "--db", str(db), "--quiet", "night"])
    assert bad.exit_code == 2 and "error:" in bad.output and "22-8" in bad.output
    bad = runner.invoke(app, ["notify", "plan", "--db", str(db), "--fallback-zone", "Mars/X"])
    assert bad.exit_code == 2 and "Mars/X" in bad.output
