"""docs/campaigns.md's example YAML is accepted by ``campaigns add`` as written, and
``campaigns list`` shows the same spend as the report."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.store import EventStore

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def doc_yaml() -> str:
    m = re.search(r"```yaml\n(.*?)```", (ROOT / "docs" / "campaigns.md").read_text(), re.S)
    assert m
    return m.group(1)


def test_the_documented_campaign_file_is_accepted(tmp_path: Path):
    f = tmp_path / "spring.yaml"
    f.write_text(doc_yaml())
    db = str(tmp_path / "c.duckdb")
    res = runner.invoke(app, ["campaigns", "add", str(f), "--db", db])
    assert res.exit_code == 0, res.output
    assert "spring-shoes" in res.output and "city-bikes" in res.output
    res = runner.invoke(app, ["campaigns", "list", "--db", db, "-f", "json"])
    assert res.exit_code == 0, res.output
    rows = {r["campaign_id"]: r for r in json.loads(res.stdout)}
    spring = rows["spring-shoes"]
    assert spring["bid"] == 4 and spring["daily_budget"] == 50
    assert spring["caps"] == "3/3600s, 10/86400s" and spring["creatives"] == 2
    assert rows["city-bikes"]["bid_model"] == "cpc"
    with EventStore(db, read_only=True) as s:
        assert s.get_item("ad-spring-1")["kind"] == "ad"
        assert s.get_item("ad-spring-1")["campaign_id"] == "spring-shoes"
    # a wrong field is one line naming file, campaign and field
    f.write_text(doc_yaml().replace("bid: 4.0", "bid: -1"))
    res = runner.invoke(app, ["campaigns", "add", str(f), "--db", db])
    assert res.exit_code == 2 and "campaign 1 (spring-shoes), field 'bid'" in res.output


def test_campaigns_list_spend_is_the_reports(world_store, tmp_path: Path):
    """The world's ad events carry the money; the serving ledger is empty (no service ran):
    list used to print 0 there while the report printed the events' spend."""
    from feedwise.analytics import Scope
    from feedwise.analytics.campaigns import campaign_results

    db = tmp_path / "w.duckdb"
    with EventStore(str(db)) as s:
        for name in ("events", "items", "campaigns", "users"):
            df = world_store.query(f"SELECT * FROM {name}")
            if name == "events":
                s.ingest(df, source_name="copy")
            elif name == "items":
                s.upsert_items(df)
            elif name == "campaigns":
                s.upsert_campaigns(df)
            else:
                s.upsert_users(df)
        assert s.campaign_spend().empty
        with Scope(s, datetime(1970, 1, 1, tzinfo=UTC), datetime.now(UTC), k=1) as scope:
            report = campaign_results(scope).set_index("campaign_id")["spend"]
    assert report.sum() > 0
    res = runner.invoke(app, ["campaigns", "list", "--db", str(db), "-f", "json"])
    assert res.exit_code == 0, res.output
    listed = {r["campaign_id"]: r["spend_total"] for r in json.loads(res.stdout)}
    for cid, spend in report.items():
        assert abs(listed[cid] - spend) < 1e-9, (cid, listed[cid], spend)
