"""Item 16 (part): ``/metrics`` was public, with no way to protect it short of a ``read`` key.

Its counters are a side channel (``feedwise_events_duplicate`` moves when an ingest key
posts a row that was already stored, which is what ``tests/adversarial/test_16_probe_ids.py``
keeps out of the ingest answer) and its latencies describe the traffic. Now ``/metrics``
needs a key by default (``metrics_public: false``), of the scope ``metrics_scope``
(default ``metrics``: a key made for the scraper that can read nothing else; ``admin``
always passes). ``FEEDWISE_METRICS_PUBLIC=true`` opens it again.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from feedwise.cli import app as cli
from feedwise.server.app import create_app
from feedwise.server.settings import Settings


def test_metrics_need_a_metrics_key_by_default(world):
    res = CliRunner().invoke(cli, ["keys", "create", "--scope", "metrics", "--keys-file",
                                   world.settings.keys_file])
    assert res.exit_code == 0, res.output
    scraper = res.output.strip().splitlines()[-1]
    assert scraper.startswith("fw_")
    with TestClient(create_app(world.settings)) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers=world.headers("fw_x_wrong")).status_code == 401
        for key in (world.read, world.ingest):  # keys handed to clients do not read them
            assert c.get("/metrics", headers=world.headers(key)).status_code == 403
        for key in (scraper, world.admin):
            r = c.get("/metrics", headers=world.headers(key))
            assert r.status_code == 200 and "feedwise_events_duplicate" in r.text
        # the scraper's key reads nothing else
        assert c.get("/v1/users/u1/feed", headers=world.headers(scraper)).status_code == 403
        assert c.post("/v1/events", json=[], headers=world.headers(scraper)
                      ).status_code == 403


def test_metrics_scope_and_public_are_settings(world, monkeypatch):
    s = world.settings.model_copy(update={"metrics_scope": "read"})
    with TestClient(create_app(s)) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers=world.headers(world.read)).status_code == 200
        assert c.get("/metrics", headers=world.headers(world.ingest)).status_code == 403
    monkeypatch.setenv("FEEDWISE_METRICS_PUBLIC", "true")
    s = Settings(**{k: v for k, v in world.settings.model_dump().items()
                    if k != "metrics_public"})
    assert s.metrics_public is True
    with TestClient(create_app(s)) as c:
        assert c.get("/metrics").status_code == 200
