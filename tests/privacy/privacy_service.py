"""The service over the privacy world: pseudonymised store, promoted model, API keys."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from privacy_world import SECRET, World, make_world

from feedwise.models import get_model
from feedwise.registry import ModelRegistry
from feedwise.server.auth import create_key
from feedwise.server.settings import Settings


@dataclass
class Service:
    world: World
    settings: Settings
    admin: str
    read: str
    ingest: str

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


def make_service(root: Path, monkeypatch) -> Service:
    """Build the world, register a model trained on it, close the store (the app opens it)
    and point FEEDWISE_PSEUDONYM_KEY at the world's secret."""
    w = make_world(root)
    reg = ModelRegistry(root / "registry")
    v = reg.register(get_model("itemknn", k=20).fit(w.store.interactions()))
    reg.promote(v.version)
    w.store.close()
    keys = root / "keys.json"
    admin, _ = create_key(keys, ["admin"])
    read, _ = create_key(keys, ["read"])
    ingest, _ = create_key(keys, ["ingest"])
    monkeypatch.setenv("FEEDWISE_PSEUDONYM_KEY", SECRET)
    settings = Settings(db=str(root / "privacy.duckdb"), registry=str(reg.root),
                        keys_file=str(keys), reload_interval_s=0)
    return Service(w, settings, admin, read, ingest)
