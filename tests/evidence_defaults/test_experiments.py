"""Issue 19: experiments in the live service — sticky hash assignment logged with every feed,
``abtest analyze`` over the store, ``registry promote --experiment``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from evworld import make_deployment
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.deployment import Deployment
from feedwise.errors import ConfigError
from feedwise.evidence.abtest import analyze_experiment, srm_check
from feedwise.evidence.rollout import (
    Rollout,
    assign,
    parse_arms,
    read_experiments,
    start_experiment,
)
from feedwise.server.app import create_app
from feedwise.store import EventStore

runner = CliRunner()
T0 = datetime(2026, 3, 2, tzinfo=UTC)


def test_ten_thousand_users_split_evenly_and_stick(tmp_path):
    dep = Deployment.init(tmp_path / "d")
    start_experiment(dep, "split", parse_arms("control=0.5;treatment=0.5:ux_lambda=0.02"),
                     salt="split-2026")
    users = [f"user{i}" for i in range(10_000)]
    first = Rollout(dep)
    arms = [first.arm(u).variant for u in users]
    counts = {a: arms.count(a) for a in set(arms)}
    srm = srm_check(counts, {"control": 0.5, "treatment": 0.5})
    assert srm["p_value"] > 0.01 and not srm["srm"], counts
    # the same arm on every request, and after a restart (a fresh Rollout reads the file)
    assert [first.arm(u).variant for u in users[:500]] == arms[:500]
    again = Rollout(Deployment.for_store(dep.store_path))
    assert [again.arm(u).variant for u in users] == arms
    # a treatment arm is its own policy version; control serves the applied policy
    t = next(u for u, a in zip(users, arms, strict=True) if a == "treatment")
    c = next(u for u, a in zip(users, arms, strict=True) if a == "control")
    assert again.arm(t).describe() == {"version": "split/treatment", "lambda": 0.02,
                                        "source": "experiment:split/treatment",
                                        "experiment": "split", "variant": "treatment"}
    assert again.arm(c).version == "default" and again.arm(c).ux_lambda == 0.01
    # another experiment (another salt) splits independently of this one
    other = read_experiments(dep)[0].model_copy(update={"salt": "another"})
    flips = sum(assign(other, u).name != a for u, a in zip(users[:2000], arms[:2000],
                                                           strict=True))
    assert 800 < flips < 1200


def test_uneven_shares_and_bad_arms(tmp_path):
    dep = Deployment.init(tmp_path / "d")
    with pytest.raises(ConfigError, match="sum to"):
        start_experiment(dep, "bad", parse_arms("a=0.5;b=0.2"))
    with pytest.raises(ConfigError, match="FIELD=VALUE"):
        parse_arms("a=0.5;b=0.5:colour=red")
    exp = start_experiment(dep, "uneven", parse_arms("control=0.9;treatment=0.1:"
                                                     "max_ad_load=0.1"), salt="s")
    share = np.mean([assign(exp, f"u{i}").name == "treatment" for i in range(20_000)])
    assert abs(share - 0.1) < 0.01
    with pytest.raises(ConfigError, match="is running"):
        start_experiment(dep, "second", parse_arms("control=0.5;treatment=0.5"))


def test_the_service_serves_and_logs_each_users_arm(tmp_path):
    d = make_deployment(tmp_path, n_users=200)
    res = runner.invoke(app, ["abtest", "start", "lam", "--arms",
                              "control=0.5;treatment=0.5:ux_lambda=0", "--db", d.db])
    assert res.exit_code == 0, res.output
    users = d.users[:40]
    seen: dict[str, set] = {}
    with TestClient(create_app(d.settings)) as c:
        for _ in range(2):  # twice: sticky across requests
            for u in users:
                r = c.get(f"/v1/users/{u}/feed", headers=d.headers(), params={"n": 10})
                assert r.status_code == 200, r.text
                pol = r.json()["policy"]
                seen.setdefault(u, set()).add((pol["variant"], pol["version"], pol["lambda"]))
    with TestClient(create_app(d.settings)) as c:  # a restart: the same arms
        for u in users[:10]:
            pol = c.get(f"/v1/users/{u}/feed", headers=d.headers(), params={"n": 10}
                        ).json()["policy"]
            seen[u].add((pol["variant"], pol["version"], pol["lambda"]))
    assert all(len(s) == 1 for s in seen.values()), seen
    arms = {next(iter(s))[0] for s in seen.values()}
    assert arms == {"control", "treatment"}
    for s in seen.values():
        variant, version, lam = next(iter(s))
        assert (version, lam) == (("lam/treatment", 0.0) if variant == "treatment"
                                  else ("default", 0.01))
    # every served impression carries the assignment, where `abtest analyze` reads it
    with EventStore(d.db) as store:
        for u in users[:10]:
            ctx = [json.loads(r["context"]) for r in store.user_rows(u)["events"]
                   if str(r["event_id"]).startswith("srv:")]  # served by the service
            assert ctx and {(x["experiment"], x["variant"]) for x in ctx} == {
                ("lam", next(iter(seen[u]))[0])}
        out = analyze_experiment(store, "lam", "impressions")
    assert set(out["users"]["variant"]) == {"control", "treatment"}
    assert len(out["users"]) == len(users)
    res = runner.invoke(app, ["abtest", "analyze", "lam", "--metric", "impressions",
                              "--db", d.db])
    assert res.exit_code == 0, res.output
    assert "SRM check: ok" in res.output


def test_analyze_finds_a_planted_effect_and_promote_applies_the_winner(tmp_path):
    dep = Deployment.init(tmp_path / "d")
    exp = start_experiment(dep, "ctr", parse_arms(
        "control=0.5;treatment=0.5:ux_lambda=0.004,max_ad_load=0.25"), salt="ctr-2026")
    rollout = Rollout(dep)
    rng = np.random.default_rng(7)
    rows = []
    for i in range(10_000):
        u = f"user{i}"
        arm = rollout.arm(u)
        ctx = json.dumps({"policy_version": arm.version, **arm.log_context()})
        ts = T0 + timedelta(seconds=i)
        rows.append({"event_id": f"imp{i}", "user_id": u, "item_id": "p1",
                     "kind": "impression", "ts": ts.isoformat(), "context": ctx})
        if rng.random() < (0.13 if arm.variant == "treatment" else 0.10):  # planted +3 pts
            rows.append({"event_id": f"c{i}", "user_id": u, "item_id": "p1", "kind": "click",
                         "ts": (ts + timedelta(minutes=1)).isoformat()})
    with EventStore(dep.store_path) as store:
        store.add_events(rows)
        out = analyze_experiment(store, "ctr", "clicked", expected=exp.expected)
    assert out["srm"]["p_value"] > 0.01
    r = out["results"].iloc[0]
    print(out["srm"], r.to_dict())
    assert r["ci_low"] > 0 and r["ci_low"] < 0.03 < r["ci_high"]
    res = runner.invoke(app, ["abtest", "analyze", "ctr", "--metric", "clicked", "--db",
                              str(dep.store_path), "--format", "json"])
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)[0]
    assert row["variant"] == "treatment" and row["ci_low"] > 0
    # the winner becomes the applied policy; the experiment stops
    res = runner.invoke(app, ["registry", "promote", "--experiment", "ctr", "--metric",
                              "clicked", "--db", str(dep.store_path)])
    assert res.exit_code == 0, res.output
    doc = dep.read_policy()
    assert doc["source"] == "experiment:ctr/treatment" and doc["ux_lambda"] == 0.004
    assert doc["max_ad_load"] == 0.25 and doc["evidence"]["ci_low"] > 0
    assert read_experiments(dep)[0].status == "stopped"
    fresh = Rollout(dep)
    assert fresh.arm("user1").describe() == {"version": doc["version"], "lambda": 0.004,
                                             "source": "experiment:ctr/treatment"}


def test_promote_refuses_without_a_winner(tmp_path):
    dep = Deployment.init(tmp_path / "d")
    start_experiment(dep, "flat", parse_arms("control=0.5;treatment=0.5:ux_lambda=0.02"),
                     salt="flat-2026")
    rollout = Rollout(dep)
    rng = np.random.default_rng(1)
    rows = []
    for i in range(2000):
        arm = rollout.arm(f"u{i}")
        rows.append({"event_id": f"s{i}", "user_id": f"u{i}", "item_id": "p", "kind":
                     "impression", "ts": (T0 + timedelta(seconds=i)).isoformat(),
                     "context": json.dumps(arm.log_context())})
        if rng.random() < 0.1:
            rows.append({"event_id": f"c{i}", "user_id": f"u{i}", "item_id": "p",
                         "kind": "click", "ts": (T0 + timedelta(seconds=i, minutes=1)
                                                 ).isoformat()})
    with EventStore(dep.store_path) as store:
        store.add_events(rows)
    res = runner.invoke(app, ["registry", "promote", "--experiment", "flat", "--metric",
                              "clicked", "--db", str(dep.store_path)])
    assert res.exit_code == 2 and "nothing promoted" in res.output, res.output
    assert dep.read_policy() is None and read_experiments(dep)[0].status == "running"


def test_a_model_version_arm_serves_that_version(tmp_path):
    from feedwise.models import get_model
    from feedwise.registry import ModelRegistry

    d = make_deployment(tmp_path, n_users=200)
    reg = ModelRegistry(d.dep.registry_dir)
    with EventStore(d.db) as store:
        v2 = reg.register(get_model("itemknn", k=20).fit(store.interactions())).version
    promoted = reg.promoted_version()
    res = runner.invoke(app, ["abtest", "start", "knn", "--arms",
                              f"control=0.5;treatment=0.5:model_version={v2}", "--salt",
                              "knn-2026", "--db", d.db])
    assert res.exit_code == 0, res.output
    with TestClient(create_app(d.settings)) as c:
        state = c.app.state.feedwise
        assert set(state.served.arms) == {v2} and set(state.served.arm_models) == {v2}
        got = {}
        for u in d.users[:30]:
            body = c.get(f"/v1/users/{u}/feed", headers=d.headers(), params={"n": 10}).json()
            got[body["policy"]["variant"]] = body
        assert got["treatment"]["model_version"] == v2
        assert got["treatment"]["policy"]["model_version"] == v2
        assert got["control"]["model_version"] == promoted
        # `feed` (CLI) serves a treatment user that version too, and says so
        tu = got["treatment"]["user_id"]
        res = runner.invoke(app, ["feed", tu, "-n", "5", "--db", d.db, "--now",
                                  d.mid.isoformat(), "--format", "json"])
        assert res.exit_code == 0, res.output
        pol = json.loads(res.stdout)[0]["policy"]
        assert (pol["variant"], pol["model_version"]) == ("treatment", v2)
        # erasure reaches the arm's model too (it is served, so it must forget)
        gone = d.users[5]
        assert state.served.arm_models[v2].knows_user(gone)
        r = c.delete(f"/v1/users/{gone}", headers=d.headers(d.admin))
        assert r.status_code == 200, r.text
        assert not any(m.knows_user(gone) for m in state.served.models)
        # stopping it: everyone on the promoted model again, on the next tick
        res = runner.invoke(app, ["abtest", "stop", "knn", "--db", d.db])
        assert res.exit_code == 0, res.output
        state.tick()
        assert state.served.arms == {}
        u = d.users[0]
        body = c.get(f"/v1/users/{u}/feed", headers=d.headers(), params={"n": 10}).json()
        assert body["model_version"] == promoted and body["policy"]["source"] == "default"
