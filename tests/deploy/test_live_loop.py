"""Issue 19: the whole loop runs on one deployment while ``feedwise serve`` holds its store.

A real ``feedwise serve`` (uvicorn, its own process) serves feeds to a client thread while
the CLI runs ``ingest``, ``kpis``, ``report``, ``profiles``, ``users export``, ``users
erase``, ``campaigns add`` and ``retrain --promote`` on the same store: reads go to
snapshots, writes through the service's admin API. Every command succeeds, the service
swaps to the promoted model within 2 s, the erased user gets no personal feed afterwards, no
feed request fails, and the KPIs equal those computed offline on a copy of the store.
"""

from __future__ import annotations

import json
import shutil
import threading
import time

import httpx
import pytest
from deploy_world import Served, world_events
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.deployment import Deployment
from feedwise.registry import ModelRegistry
from feedwise.server.auth import create_key

runner = CliRunner()

CAMPAIGNS_YAML = """
campaigns:
  - campaign_id: live1
    advertiser_id: acme
    bid_model: cpm
    bid: 8.0
    daily_budget: 5
    creatives:
      - {item_id: live1-a, title: "Run faster"}
"""
WINDOW = ["--from", "2024-01-01", "--to", "2024-03-01"]


def cli(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, f"feedwise {' '.join(args)} -> {res.exit_code}\n{res.output}"
    return res.stdout


class Client(threading.Thread):
    """Asks for feeds of every user in turn until stopped; keeps every status."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(daemon=True)
        self.url, self.key = url, key
        self.stop = threading.Event()
        self.statuses: list[int] = []
        self.errors: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30,
                          headers={"Authorization": f"Bearer {self.key}"}) as c:
            i = 0
            while not self.stop.is_set():
                try:
                    r = c.get(f"/v1/users/u{i % 120}/feed", params={"n": 5})
                    self.statuses.append(r.status_code)
                    if r.status_code != 200:
                        self.errors.append(r.text[:200])
                except httpx.HTTPError as e:
                    self.errors.append(repr(e))
                i += 1
                time.sleep(0.01)


@pytest.fixture()
def deployment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEEDWISE_DB", raising=False)
    monkeypatch.delenv("FEEDWISE_REGISTRY", raising=False)
    cli("init", "dep")
    dep = Deployment.for_store(tmp_path / "dep" / "feedwise.duckdb")
    world_events().to_csv(tmp_path / "events.csv", index=False)
    cli("ingest", "events.csv", "--db", str(dep.store_path))
    cli("train", "--model", "popularity", "--db", str(dep.store_path), "--promote")
    read, _ = create_key(dep.keys_path, ["read"])
    return dep, read


def test_the_cli_works_on_the_store_a_live_service_holds(deployment, tmp_path) -> None:
    dep, read = deployment
    db = str(dep.store_path)
    new = world_events(n_users=40, per_user=2, seed=7, prefix="late")
    new["ts"] = [f"2024-02-0{1 + i % 5}T12:00:00+00:00" for i in range(len(new))]
    new.to_csv(tmp_path / "late.csv", index=False)
    (tmp_path / "campaigns.yaml").write_text(CAMPAIGNS_YAML)
    with Served(dep.store_path) as srv:
        url = srv.url
        h = {"Authorization": f"Bearer {read}"}
        assert httpx.get(f"{url}/v1/models/current", headers=h).json()["version"] == "v0001"
        client = Client(url, read)
        client.start()
        try:
            # a write: landed by the service
            out = json.loads(cli("ingest", "late.csv", "--db", db, "-f", "json"))
            assert out[0]["accepted"] == len(new)
            # reads: on snapshots
            kpis_before = json.loads(cli("kpis", *WINDOW, "--db", db, "-f", "json"))
            assert kpis_before
            cli("report", *WINDOW, "--db", db, "--out", str(tmp_path / "r.html"))
            assert (tmp_path / "r.html").stat().st_size > 10_000
            cli("profiles", "--db", db, "-f", "json")  # --write: through the service
            export = json.loads(cli("users", "export", "u3", "--db", db))
            assert len(export["tables"]["events"]) >= 8
            # erasure, campaigns: through the service
            cli("users", "erase", "u5", "--yes", "--db", db, "-f", "json")
            gone = json.loads(cli("users", "export", "u5", "--db", db))
            assert all(len(rows) == 0 for rows in gone["tables"].values())
            cli("campaigns", "add", "campaigns.yaml", "--db", db)
            camps = json.loads(cli("campaigns", "list", "--db", db, "-f", "json"))
            assert "live1" in {c["campaign_id"] for c in camps}
            # retrain on a snapshot, promote, and the service swaps
            cli("retrain", "--model", "itemknn", "--promote", "--db", db, "-f", "json")
            t_done = time.monotonic()
            promoted = ModelRegistry(dep.registry_dir).promoted()
            assert promoted is not None and promoted.model == "itemknn"
            while True:
                served = httpx.get(f"{url}/v1/models/current", headers=h).json()["version"]
                if served == promoted.version or time.monotonic() - t_done > 2.0:
                    break
                time.sleep(0.05)
            swap_s = time.monotonic() - t_done
            assert served == promoted.version, f"still serving {served} after {swap_s:.2f} s"
            print(f"swapped to {served} {swap_s:.3f} s after retrain returned; "
                  f"{len(client.statuses)} feeds so far")
            # the erased user: no personal feed
            r = httpx.get(f"{url}/v1/users/u5/feed", headers=h, params={"n": 10})
            assert r.status_code == 200
            body = r.json()
            assert body["model_version"] == promoted.version
            assert not any("because you" in reason for s in body["slots"]
                           for reason in s["reasons"]), body["slots"]
            # a user who is not erased gets the new model's personal feed
            r = httpx.get(f"{url}/v1/users/u6/feed", headers=h, params={"n": 10}).json()
            assert any("because you" in reason for s in r["slots"] for reason in s["reasons"])
            kpis_live = json.loads(cli("kpis", *WINDOW, "--db", db, "-f", "json"))
        finally:
            client.stop.set()
            client.join(30)
    assert client.errors == [] and len(client.statuses) >= 20
    assert set(client.statuses) == {200}
    assert not dep.state_path.exists()  # the service removed its state file
    # KPIs offline, on a copy of the store, equal those read while the service ran
    copy = tmp_path / "copy" / "feedwise.duckdb"
    copy.parent.mkdir()
    shutil.copyfile(dep.store_path, copy)
    kpis_offline = json.loads(cli("kpis", *WINDOW, "--db", str(copy), "-f", "json"))
    assert kpis_live == kpis_offline
    assert kpis_live != kpis_before  # the erasure changed them (u5 is gone)
