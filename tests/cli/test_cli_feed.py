"""``feedwise campaigns add/list`` and ``feedwise feed USER``."""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest
from feed_world import NOW, make_world
from typer.testing import CliRunner

from feedwise.cli import app

runner = CliRunner()

CAMPAIGNS_YAML = """
campaigns:
  - campaign_id: run1
    advertiser_id: acme
    bid_model: cpm
    bid: 8.0
    daily_budget: 5
    target_tags: [t1]
    frequency_caps: [[2, 3600], [5, 86400]]
    creatives:
      - {item_id: run1-a, title: "Run faster", tags: [t1]}
  - campaign_id: shoes
    advertiser_id: globex
    bid_model: cpc
    bid: 0.8
    creatives: [{item_id: shoes-a, title: "New shoes"}]
"""


def _store_with_world(db: str) -> None:
    from feedwise.store import EventStore

    world = make_world(11, n_items=60, n_campaigns=0)
    world["users"]["consent_ads"] = True
    world["users"]["consent_personalization"] = True
    events = pd.DataFrame({"user_id": [f"u{i % 12}" for i in range(300)],
                           "item_id": [f"p{(7 * i) % 60}" for i in range(300)],
                           "kind": ["impression", "click", "like"] * 100,
                           "ts": [NOW - timedelta(minutes=i) for i in range(300)]})
    with EventStore(db) as s:
        s.upsert_items(world["items"].drop(columns=["popularity"]))
        s.upsert_users(world["users"])
        s.ingest(events)


def test_campaigns_add_list_and_feed(tmp_path):
    db = str(tmp_path / "fw.duckdb")
    _store_with_world(db)
    f = tmp_path / "campaigns.yaml"
    f.write_text(CAMPAIGNS_YAML)
    res = runner.invoke(app, ["campaigns", "add", str(f), "--db", db])
    assert res.exit_code == 0, res.output
    assert "run1" in res.output and "shoes" in res.output
    res = runner.invoke(app, ["campaigns", "list", "--db", db, "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = {r["campaign_id"]: r for r in json.loads(res.output)}
    assert rows["run1"]["caps"] == "2/3600s, 5/86400s" and rows["shoes"]["bid_model"] == "cpc"

    res = runner.invoke(app, ["feed", "u1", "-n", "12", "--db", db, "--model", "popularity",
                              "--model-path", str(tmp_path / "model"), "--lambda", "0",
                              "--now", NOW.isoformat(), "--format", "json"])
    assert res.exit_code == 0, res.output
    slots = json.loads(res.output[res.output.index("["):])
    assert len(slots) == 12
    assert all(s["reasons"] for s in slots)
    ads = [s for s in slots if s["kind"] == "ad"]
    assert ads and all(s["reasons"].startswith("sponsored") for s in ads)
    assert {s["campaign_id"] for s in ads} <= {"run1", "shoes"}

    # --record persists the served ads' frequency and spend in the store
    res = runner.invoke(app, ["feed", "u1", "-n", "12", "--db", db, "--model", "popularity",
                              "--model-path", str(tmp_path / "model"), "--lambda", "0",
                              "--now", NOW.isoformat(), "--record", "--format", "json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["campaigns", "list", "--db", db, "--format", "json"])
    rows = {r["campaign_id"]: r for r in json.loads(res.output)}
    cpm = [s for s in ads if s["campaign_id"] == "run1"]
    assert rows["run1"]["spend_total"] == (cpm[0]["price"] if cpm else 0.0)


def test_campaigns_add_reports_the_bad_field(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps([{"campaign_id": "x", "advertiser_id": "a", "bid": -1,
                              "creatives": [{"item_id": "c"}]}]))
    res = runner.invoke(app, ["campaigns", "add", str(f), "--db", str(tmp_path / "x.duckdb")])
    assert res.exit_code == 2
    assert "campaign 1 (x)" in res.output and "'bid'" in res.output


def test_feed_rejects_a_bad_config(tmp_path):
    db = str(tmp_path / "fw.duckdb")
    _store_with_world(db)
    cfg = tmp_path / "feed.json"
    cfg.write_text(json.dumps({"max_ad_load": 3}))
    res = runner.invoke(app, ["feed", "u1", "--db", db, "--config", str(cfg), "--model",
                              "popularity", "--model-path", str(tmp_path / "m")])
    assert res.exit_code == 2 and "max_ad_load" in res.output


@pytest.mark.parametrize(("name", "text", "message"), [
    ("feed.yaml", "max_ad_load: [1\n", "cannot parse"),
    ("feed.json", "{", "cannot parse"),
    ("feed.yaml", "- 1\n- 2\n", "mapping"),
])
def test_feed_unparsable_config_is_a_clean_error(tmp_path, name, text, message):
    db = str(tmp_path / "fw.duckdb")
    _store_with_world(db)
    cfg = tmp_path / name
    cfg.write_text(text)
    res = runner.invoke(app, ["feed", "u1", "--db", db, "--config", str(cfg), "--model",
                              "popularity", "--model-path", str(tmp_path / "m")])
    assert res.exit_code == 2, res.output
    assert message in res.output and name in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_feed_missing_engagement_model_is_a_clean_error(tmp_path):
    db = str(tmp_path / "fw.duckdb")
    _store_with_world(db)
    res = runner.invoke(app, ["feed", "u1", "--db", db, "--model", "popularity",
                              "--model-path", str(tmp_path / "m"),
                              "--engagement", str(tmp_path / "nope")])
    assert res.exit_code == 2, res.output
    assert "engagement.json" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_feed_trains_the_engagement_model_on_impressions(tmp_path):
    db = str(tmp_path / "fw.duckdb")
    _store_with_world(db)
    res = runner.invoke(app, ["feed", "u2", "-n", "6", "--db", db, "--model", "popularity",
                              "--model-path", str(tmp_path / "m"), "--train-engagement",
                              "--now", NOW.isoformat(), "--format", "jsonl"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines() if line.startswith("{")]
    assert len(rows) == 6
