"""Small deployments for the issue-19 evidence tests: a synthetic social world (posts,
campaigns, users) in a deployment folder, a promoted popularity model, API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from feedwise.datasets import synthetic_social
from feedwise.deployment import Deployment
from feedwise.models import get_model
from feedwise.registry import ModelRegistry
from feedwise.server.auth import create_key
from feedwise.server.settings import Settings
from feedwise.store import EventStore


@dataclass
class Dep:
    dep: Deployment
    settings: Settings
    read: str
    admin: str
    mid: datetime
    users: list[str]

    @property
    def db(self) -> str:
        return str(self.dep.store_path)

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.read}"}


def make_deployment(root: Path, n_users: int = 300, seed: int = 5) -> Dep:
    """A deployment folder with a small synthetic world (campaigns live mid-window)."""
    dep = Deployment.init(root / "dep")
    w = synthetic_social(n_users=n_users, n_posts=800, n_days=6, n_authors=60, seed=seed)
    with EventStore(dep.store_path) as store:
        w.load_into(store)
        data = store.interactions()
    reg = ModelRegistry(dep.registry_dir)
    v = reg.register(get_model("popularity").fit(data))
    reg.promote(v.version)
    read, _ = create_key(dep.keys_path, ["read"])
    admin, _ = create_key(dep.keys_path, ["admin"])
    settings = Settings(db=str(dep.store_path), registry=str(dep.registry_dir),
                        keys_file=str(dep.keys_path), reload_interval_s=0)
    start, end = w.truth["start"], w.truth["end"]
    return Dep(dep, settings, read, admin, start + (end - start) / 2,
               [str(u) for u in w.users["user_id"]])
