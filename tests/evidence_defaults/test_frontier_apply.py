"""Issue 19: ``frontier --apply`` writes the policy; ``feed`` and ``serve`` use it and every
feed says which policy version served it."""

from __future__ import annotations

import json

import pytest
from evworld import make_deployment
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.cli.frontier import DEFAULT_BUDGET
from feedwise.server.app import create_app

runner = CliRunner()
SIM = "n_items: 300\nn_candidates: 60\nn_ads: 20\nworld_seed: 3\n"


@pytest.fixture(scope="module")
def dep(tmp_path_factory):
    return make_deployment(tmp_path_factory.mktemp("apply"))


def _apply(tmp_path, db, lambdas="0.004,0.02,0.3", budget="0.5"):
    cfg = tmp_path / "sim.yaml"
    cfg.write_text(SIM)
    return runner.invoke(app, ["frontier", "--users", "60", "--days", "8", "--config", str(cfg),
                               "--engine-lambdas", lambdas, "--guardrails", "0.25,2,2",
                               "--lambdas", "0.01", "--fixed", "4", "--budget", budget,
                               "--apply", "--db", db, "--format", "json"])


def test_default_budget_places_ads():
    assert DEFAULT_BUDGET == 0.05


def test_apply_then_feed_and_serve_report_the_policy(dep, tmp_path):
    assert dep.dep.read_policy() is None
    res = _apply(tmp_path, dep.db)
    assert res.exit_code == 0, res.output
    doc = dep.dep.read_policy()
    assert doc["version"] == "p0001" and doc["source"] == "frontier"
    rows = {r["policy"]: r for r in json.loads(res.stdout)}
    chosen = [r for r in rows.values() if r["recommended"]]
    assert len(chosen) == 1 and chosen[0]["family"] == "feedengine"
    assert doc["ux_lambda"] == pytest.approx(chosen[0]["ux_lambda"])
    assert (doc["max_ad_load"], doc["first_ad_slot"], doc["min_ad_gap"]) == (0.25, 2, 2)
    ev = doc["evidence"]
    assert ev["budget"] == 0.5 and ev["world_seed"] == 3
    assert ev["session_depth"] >= 0.5 * ev["no_ads_session_depth"]
    assert ev["revenue_per_user"] == pytest.approx(chosen[0]["revenue_per_user"])

    # feed (CLI) uses it and says so
    user, now = dep.users[0], dep.mid.isoformat()
    res = runner.invoke(app, ["feed", user, "-n", "10", "--db", dep.db, "--model",
                              "popularity", "--now", now, "--format", "json"])
    assert res.exit_code == 0, res.output
    slots = json.loads(res.stdout)
    assert slots and all(s["policy"]["version"] == "p0001" for s in slots)
    assert slots[0]["policy"]["lambda"] == pytest.approx(doc["ux_lambda"])
    assert slots[0]["policy"]["source"] == "frontier"
    # --lambda overrides the applied policy, and says so
    res = runner.invoke(app, ["feed", user, "-n", "10", "--db", dep.db, "--model",
                              "popularity", "--now", now, "--lambda", "0", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["policy"] == {
        "version": "override", "lambda": 0.0, "source": "override",
        "name": "feed_engine(lambda=0)"}

    # serve uses it: the engine's λ and guardrails, the version in every feed's JSON
    with TestClient(create_app(dep.settings)) as c:
        state = c.app.state.feedwise
        assert state.served.policy.config.ux_lambda == pytest.approx(doc["ux_lambda"])
        assert state.served.policy.config.max_ad_load == 0.25
        r = c.get(f"/v1/users/{user}/feed", headers=dep.headers(), params={"n": 10})
        assert r.status_code == 200, r.text
        pol = r.json()["policy"]
        assert (pol["version"], pol["source"]) == ("p0001", "frontier")
        assert pol["lambda"] == pytest.approx(doc["ux_lambda"])
        # a new --apply reaches the running service on its next tick
        res = _apply(tmp_path, dep.db, lambdas="0.03", budget="1.0")
        assert res.exit_code == 0, res.output
        assert dep.dep.read_policy()["version"] == "p0002"
        state.tick()
        r = c.get(f"/v1/users/{dep.users[1]}/feed", headers=dep.headers(), params={"n": 10})
        pol = r.json()["policy"]
        assert (pol["version"], pol["lambda"]) == ("p0002", 0.03)
        assert state.served.policy.config.ux_lambda == 0.03
    # the impressions the service logged carry the policy version that served them
    from feedwise.store import EventStore

    with EventStore(dep.db) as store:
        versions = {json.loads(r["context"]).get("policy_version")
                    for u in dep.users[:2] for r in store.user_rows(u)["events"]
                    if r["kind"] in ("impression", "ad_impression") and r["context"]}
    assert {"p0001", "p0002"} <= versions


def test_apply_without_a_fitting_setting_is_a_clean_error(dep, tmp_path):
    before = dep.dep.read_policy()
    res = _apply(tmp_path, dep.db, lambdas="0.0001", budget="0")
    assert res.exit_code == 2, res.output
    assert "nothing to apply" in res.output and "Traceback" not in res.output
    assert dep.dep.read_policy() == before
