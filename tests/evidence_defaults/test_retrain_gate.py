"""Issue 19: a retrain gate that can say no — a relative tolerance against the promoted
model on the same newest slice, and the candidate must beat popularity there."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.datasets import synthetic_social
from feedwise.deployment import Deployment
from feedwise.registry import ModelRegistry
from feedwise.server.retrain import RetrainConfig, retrain
from feedwise.store import EventStore

runner = CliRunner()


@pytest.fixture()
def world(tmp_path):
    dep = Deployment.init(tmp_path / "d")
    w = synthetic_social(n_users=400, n_posts=1500, n_days=10, seed=3)
    with EventStore(dep.store_path) as store:
        w.load_into(store)
    return dep, w.truth["end"]


def test_retrain_refuses_a_popularity_model_below_the_current_one(world):
    dep, end = world
    reg = ModelRegistry(dep.registry_dir)
    with EventStore(dep.store_path) as store:
        first = retrain(store, reg, RetrainConfig(model="itemknn"), end - timedelta(days=2))
        assert first.action == "promote" and first.ndcg_popularity is not None
        assert first.ndcg_candidate > first.ndcg_popularity  # it beat popularity
        current = reg.promoted_version()
    # the CLI, as a user runs it: popularity scores far below the promoted ItemKNN
    res = runner.invoke(app, ["retrain", "--model", "popularity", "--db",
                              str(dep.store_path), "--now", end.isoformat(), "-f", "json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)[0]
    assert d["action"] == "keep", d
    assert d["ndcg_candidate"] < d["ndcg_current"] * (1 - 0.05)
    assert "relative tolerance 0.05" in d["reason"]
    assert reg.promoted_version() == current  # not promoted
    # the decision and both figures are recorded: decisions.jsonl and the version's metadata
    last = reg.decisions()[-1]
    assert last["action"] == "keep"
    assert last["ndcg_current"] == pytest.approx(d["ndcg_current"])
    assert last["ndcg_candidate"] == pytest.approx(d["ndcg_candidate"])
    gate = reg.get(d["candidate_version"]).config["gate"]
    assert gate["decision"] == "keep" and gate["current_version"] == current
    assert gate["ndcg_candidate"] == pytest.approx(d["ndcg_candidate"])
    assert gate["ndcg_current"] == pytest.approx(d["ndcg_current"])
    # a tolerance as large as the drop lets it through (the tolerance is relative)
    loose = 1 - d["ndcg_candidate"] / d["ndcg_current"] + 0.01
    with EventStore(dep.store_path) as store:
        d2 = retrain(store, reg, RetrainConfig(model="popularity", tolerance=loose), end)
    assert d2.action == "promote"


def test_a_candidate_must_beat_popularity(world):
    dep, end = world
    reg = ModelRegistry(dep.registry_dir)
    with EventStore(dep.store_path) as store:
        # BPR at its defaults learns nothing useful from 400 users in 10 days (NDCG@10
        # 0.0000 on the newest slice); nothing is promoted yet, so only popularity can say no
        d = retrain(store, reg, RetrainConfig(model="bpr"), end)
    assert d.ndcg_popularity is not None and d.ndcg_candidate <= d.ndcg_popularity
    assert d.action == "keep" and "does not beat popularity" in d.reason
    assert reg.promoted_version() is None
    assert reg.decisions()[-1]["ndcg_popularity"] == pytest.approx(d.ndcg_popularity)
