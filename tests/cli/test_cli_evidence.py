"""`feedwise frontier`, `feedwise abtest` and `feedwise offpolicy`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from feedwise.cli import app

runner = CliRunner()


def test_frontier_json_and_chart(tmp_path):
    cfg = tmp_path / "sim.yaml"
    cfg.write_text("n_items: 300\nn_candidates: 60\nn_ads: 20\n")
    chart = tmp_path / "frontier.html"
    res = runner.invoke(app, ["frontier", "--users", "100", "--config", str(cfg),
                              "--lambdas", "0.003,0.3", "--guardrails", "0.25,1,1",
                              "--fixed", "4", "--budget", "0.05", "--all",
                              "--engine-lambdas", "0.002",
                              "--chart", str(chart), "--no-png", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    names = [r["policy"] for r in rows]
    assert names[:3] == ["no-ads", "fixed-every-4", "revenue-greedy"]
    assert len(rows) == 6
    assert rows[-1]["family"] == "feedengine" and rows[-1]["policy"].startswith("FeedEngine")
    assert chart.exists()


def test_frontier_averages_over_seeds(tmp_path):
    cfg = tmp_path / "sim.yaml"
    cfg.write_text("n_items: 300\nn_candidates: 60\nn_ads: 20\n")
    base = ["frontier", "--users", "100", "--config", str(cfg), "--lambdas", "0.003",
            "--guardrails", "0.25,1,1", "--fixed", "4", "--all", "--format", "json"]
    runs = {}
    for extra in (["--seed", "1"], ["--seed", "2"], ["--seeds", "1,2"]):
        res = runner.invoke(app, base + extra)
        assert res.exit_code == 0, res.output
        runs[extra[1]] = {r["policy"]: r for r in json.loads(res.stdout)}
    for name, row in runs["1,2"].items():
        assert row["seeds"] == 2
        mean = (runs["1"][name]["revenue_per_user"] + runs["2"][name]["revenue_per_user"]) / 2
        assert abs(row["revenue_per_user"] - mean) < 1e-9  # JSON keeps 10 decimals


def test_frontier_bad_config_is_a_clean_error(tmp_path):
    cfg = tmp_path / "sim.json"
    cfg.write_text('{"n_users": -1}')
    res = runner.invoke(app, ["frontier", "--config", str(cfg)])
    assert res.exit_code == 2
    assert "n_users" in res.output and "Traceback" not in res.output


def test_abtest_commands(tmp_path):
    from datetime import UTC, datetime, timedelta

    from feedwise.store import EventStore

    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    rows = []
    for u in range(200):
        ctx = json.dumps({"experiment": "exp1", "variant": ["control", "treatment"][u % 2]})
        for d in range(u % 4):
            rows.append({"user_id": f"u{u}", "item_id": "i1", "kind": "like",
                         "ts": (t0 - timedelta(days=d + 1)).isoformat()})
        for d in range(u % 5 + u % 2):
            rows.append({"user_id": f"u{u}", "item_id": "i2", "kind": "click",
                         "ts": (t0 + timedelta(hours=d)).isoformat(), "context": ctx})
    db = str(tmp_path / "fw.duckdb")
    with EventStore(db) as s:
        s.add_events(rows)
    res = runner.invoke(app, ["abtest", "analyze", "exp1", "--db", db, "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert {r["test"] for r in out} == {"welch_t", "cuped_welch_t"}
    res = runner.invoke(app, ["abtest", "srm", "exp1", "--db", db])
    assert res.exit_code == 0 and "ok" in res.output
    res = runner.invoke(app, ["abtest", "sample-size", "--baseline", "0.1", "--mde", "0.02",
                              "--format", "json"])
    assert json.loads(res.stdout)[0]["control"] > 3000
    res = runner.invoke(app, ["abtest", "analyze", "nope", "--db", db])
    assert res.exit_code == 2 and "nope" in res.output


def test_offpolicy_command(tmp_path):
    from feedwise.evidence.logs import synthetic_bandit_log

    syn = synthetic_bandit_log(5_000, seed=0)
    log = syn.log.copy()
    log["target_item_id"] = "i3"
    f = tmp_path / "log.csv"
    log.to_csv(f, index=False)
    res = runner.invoke(app, ["offpolicy", str(f), "--features", "x0,x1", "--bootstrap", "20",
                              "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = {r["estimator"]: r for r in json.loads(res.stdout)}
    assert set(rows) == {"dm", "ips", "snips", "dr", "switch-dr"}
    assert abs(rows["snips"]["value"] - syn.true_value) / syn.true_value < 0.25
    res = runner.invoke(app, ["offpolicy", str(f), "--by-position", "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.stdout)[-1]["position"] == -1
    res = runner.invoke(app, ["offpolicy", str(tmp_path / "missing.csv")])
    assert res.exit_code == 2 and "not found" in res.output
