"""`feedwise frontier --logs`: the off-policy frontier from a logged-bandit file."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from feedwise.cli import app

runner = CliRunner()


def test_frontier_from_logs(tmp_path):
    from feedwise.evidence.frontier_ope import synthetic_frontier_log

    syn = synthetic_frontier_log(5_000, seed=0, lambdas=(0.0, 3.0), fixed_every=(3,))
    log = syn.log.copy()
    log["target_propensity_ad0"] = (log["item_id"] == "i0").astype(float)
    log["target_item_id_ad0"] = "i0"
    f = tmp_path / "log.csv"
    log.to_csv(f, index=False)
    res = runner.invoke(app, ["frontier", "--logs", str(f), "--bootstrap", "10",
                              "--features", "x0,x1", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = {r["policy"]: r for r in json.loads(res.stdout)}
    assert set(rows) == {"lambda=0", "lambda=3", "no-ads", "fixed-every-3", "uniform", "ad0"}
    assert rows["ad0"]["revenue_dr"] is not None and rows["ad0"]["estimator"] == "dr"
    assert rows["lambda=0"]["revenue_snips"] > rows["no-ads"]["revenue_snips"]
    assert rows["no-ads"]["pareto"] and not rows["uniform"]["pareto"]
    res = runner.invoke(app, ["frontier", "--logs", str(f), "--bootstrap", "0"])
    assert res.exit_code == 0, res.output
    assert "Off-policy frontier" in res.stdout
    bad = tmp_path / "bad.csv"
    log.drop(columns=[c for c in log.columns if c.startswith("target_")]).to_csv(bad,
                                                                                index=False)
    res = runner.invoke(app, ["frontier", "--logs", str(bad)])
    assert res.exit_code == 2 and "target_propensity_" in res.output
    assert "Traceback" not in res.output
