"""Small random worlds (posts, users, campaigns, factors) for the feed engine and feed CLI
tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from feedwise.feed import Campaign, Creative, FactorSource, FeedConfig, FeedEngine

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TAGS = [f"t{i}" for i in range(8)]


def make_world(seed: int = 0, n_items: int = 120, n_users: int = 12, n_campaigns: int = 8,
               n_authors: int = 15, budget: float | None = 0.05, caps: bool = True,
               targeted: float = 0.4, cpc: float = 0.5, advertisers: int | None = None,
               schedules: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    items = pd.DataFrame({
        "item_id": [f"p{i}" for i in range(n_items)], "kind": "post",
        "author_id": [f"a{rng.integers(n_authors)}" for _ in range(n_items)],
        "created_at": [NOW - timedelta(hours=float(h)) for h in rng.uniform(0, 240, n_items)],
        "tags": [list(rng.choice(TAGS, 2, replace=False)) for _ in range(n_items)],
        "popularity": rng.poisson(5, n_items)})
    users = pd.DataFrame({
        "user_id": [f"u{i}" for i in range(n_users)],
        "consent_ads": rng.random(n_users) > 0.25,
        "consent_personalization": rng.random(n_users) > 0.25,
        "attributes": [json.dumps({"interests": list(rng.choice(TAGS, 2, replace=False)),
                                   "segments": [f"s{rng.integers(3)}"],
                                   "follows": [f"a{rng.integers(n_authors)}"]})
                       for _ in range(n_users)]})
    adv = advertisers or max(n_campaigns // 2, 1)
    camps = []
    for i in range(n_campaigns):
        is_cpc = bool(rng.random() < cpc)
        camps.append(Campaign(
            campaign_id=f"c{i}", advertiser_id=f"adv{rng.integers(adv)}",
            creatives=[Creative(item_id=f"cr{i}-{k}", tags=[str(rng.choice(TAGS))],
                                quality=float(rng.uniform(0.3, 1.0)))
                       for k in range(int(rng.integers(1, 3)))],
            bid_model="cpc" if is_cpc else "cpm",
            bid=float(rng.uniform(0.2, 2.0) if is_cpc else rng.uniform(1.0, 12.0)),
            daily_budget=budget if budget is None else float(budget * rng.uniform(0.5, 2)),
            total_budget=None if budget is None else float(budget * rng.uniform(1, 3)),
            target_tags=[str(rng.choice(TAGS))] if rng.random() < targeted else [],
            target_segments=[f"s{rng.integers(3)}"] if rng.random() < targeted / 2 else [],
            frequency_caps=([(int(rng.integers(1, 3)), float(rng.choice([600, 3600])))]
                            if caps and rng.random() < 0.8 else []),
            **(_schedule(rng) if schedules else {})))
    uf = rng.normal(size=(n_users, 6)).astype(np.float32)
    itf = rng.normal(size=(n_items, 6)).astype(np.float32)
    return {"items": items, "users": users, "campaigns": camps, "user_factors": uf,
            "item_factors": itf}


def _schedule(rng: np.random.Generator) -> dict:
    """A random flight window around NOW and, sometimes, active hours."""
    out: dict = {}
    r = rng.random()
    if r < 0.3:
        out["start_at"] = NOW + timedelta(minutes=float(rng.uniform(-60, 60)))
    elif r < 0.5:
        out["end_at"] = NOW + timedelta(minutes=float(rng.uniform(-30, 90)))
    if rng.random() < 0.3:
        out["active_hours"] = sorted({int(h) for h in rng.integers(0, 24, 6)} | {12})
    if rng.random() < 0.1:
        out["status"] = "paused"
    return out


def build_engine(world: dict, config: FeedConfig | None = None, **kw) -> FeedEngine:
    return FeedEngine(FactorSource(world["user_factors"], world["item_factors"]),
                      world["items"], world["campaigns"], config or FeedConfig(),
                      users=world["users"], **kw)
