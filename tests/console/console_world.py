"""A small demo deployment for the console's tests and benchmark: the synthetic social world
(posts, comments with text, shares, campaigns), two registered models with evaluation
figures (one promoted), stored profiles and segments, customer messages with a knowledge
base, an applied frontier policy and a running experiment, and read and admin keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from feedwise.analytics.profiles import UserProfiler
from feedwise.analytics.scope import Scope
from feedwise.analytics.segments import Segmenter
from feedwise.datasets.synthetic import synthetic_social
from feedwise.deployment import Deployment
from feedwise.evaluation import evaluate, temporal_split
from feedwise.evidence.rollout import ArmSpec, policy_doc, start_experiment
from feedwise.models import get_model
from feedwise.registry import ModelRegistry
from feedwise.server.auth import create_key
from feedwise.server.settings import Settings
from feedwise.store import EventStore

START = datetime(2024, 3, 4, tzinfo=UTC)


@dataclass
class ConsoleWorld:
    root: Path
    db: Path
    settings: Settings
    read: str
    admin: str
    registry: ModelRegistry


def build_world(root: Path, *, n_users: int = 120, n_posts: int = 200, n_days: int = 10,
                seed: int = 3, db_name: str = "feedwise.duckdb") -> ConsoleWorld:
    """The world in ``root`` (store ``db_name``, ``registry/``, ``keys.json``)."""
    root.mkdir(parents=True, exist_ok=True)
    db = root / db_name
    world = synthetic_social(n_users=n_users, n_authors=15, n_posts=n_posts, n_days=n_days,
                             n_campaigns=3, start=START, seed=seed, cascades=True)
    end = START + timedelta(days=n_days)
    with EventStore(db) as store:
        world.load_into(store)
        data = store.interactions()
        with Scope(store, START, end, k=5) as scope:
            prof = UserProfiler().fit(scope)
        seg = Segmenter(n_clusters=3, seed=0).fit(prof.profiles_)
        prof.profiles_["segment"] = seg.predict(prof.profiles_).to_numpy()
        prof.write(store)
        store.add_answers([
            {"answer_id": "refund", "questions": ["how do I get a refund?", "money back"],
             "answer": "Refunds: open Orders, choose the order and press Refund.",
             "intent": "refund"},
            {"answer_id": "password", "questions": ["I forgot my password", "cannot log in"],
             "answer": "Reset your password from the login page (Forgot password).",
             "intent": "account"}], now=end)
        users = list(world.users["user_id"].astype(str).head(12))
        texts = ["I want my money back for this order", "I cannot log in to my account",
                 "where is my parcel?", "love the new feed!"]
        store.add_messages([{"message_id": f"m{i}", "user_id": u, "channel": "dm",
                             "text": texts[i % len(texts)],
                             "ts": end - timedelta(hours=2 + i)}
                            for i, u in enumerate(users)])
    split = temporal_split(data, test_fraction=0.2)
    reg = ModelRegistry(root / "registry")
    versions = []
    for name in ("popularity", "itemknn"):
        figures = evaluate(get_model(name), split, k=10, beyond=False,
                           metrics=("ndcg", "recall", "hit_rate"))
        quality = figures[figures["metric"].isin(["ndcg", "recall", "hit_rate"])]
        versions.append(reg.register(get_model(name).fit(data), metrics={
            f"{r.metric}@10": float(r.value) for r in quality.itertuples()}))
    reg.promote(versions[0].version)
    dep = Deployment.for_store(db)
    dep.write_policy(policy_doc({"ux_lambda": 0.05}, source="frontier", evidence={
        "method": "simulated frontier (demo)", "revenue_per_user": 0.8,
        "session_depth": 11.2, "d7_return": 0.61, "no_ads_session_depth": 11.5,
        "no_ads_d7_return": 0.62}))
    start_experiment(dep, "lambda-test", [ArmSpec(name="control", share=0.5),
                                          ArmSpec(name="low-ads", share=0.5, ux_lambda=0.5)])
    keys = root / "keys.json"
    admin, _ = create_key(keys, ["admin"])
    read, _ = create_key(keys, ["read"])
    settings = Settings(db=str(db), registry=str(reg.root), keys_file=str(keys),
                        reload_interval_s=0)
    return ConsoleWorld(root, db, settings, read, admin, reg)
