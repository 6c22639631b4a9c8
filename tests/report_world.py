"""A small random social world (users with daily rhythms, posts, ads, campaigns) for the report
tests and the CLI's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

START = datetime(2026, 2, 2, tzinfo=UTC)  # a Monday
DAYS = 28
TAGS = ["video", "music", "news", "sport", "food", "travel", "tech", "art"]
RHYTHM_HOUR = {"morning": 8, "midday": 13, "evening": 20, "night": 23}


def make_world(n_users: int = 90, n_days: int = DAYS, seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    rhythms = rng.choice(list(RHYTHM_HOUR), size=n_users, p=[0.3, 0.2, 0.35, 0.15])
    users = pd.DataFrame({"user_id": [f"u{i}" for i in range(n_users)],
                          "consent_analytics": rng.random(n_users) > 0.05})
    posts = pd.DataFrame({
        "item_id": [f"p{i}" for i in range(150)], "kind": "post",
        "author_id": [f"author{i % 12}" for i in range(150)],
        "title": [f"Post {i}" for i in range(150)],
        "tags": [list(rng.choice(TAGS, size=2, replace=False)) for _ in range(150)],
        "created_at": [START + timedelta(hours=float(h)) for h in rng.uniform(-48, 24 * n_days,
                                                                               150)]})
    ads = pd.DataFrame({"item_id": [f"ad{i}" for i in range(4)], "kind": "ad",
                        "campaign_id": [f"c{i % 2}" for i in range(4)],
                        "title": [f"Ad {i}" for i in range(4)]})
    campaigns = pd.DataFrame({
        "campaign_id": ["c0", "c1"], "name": ["Spring shoes", "Coffee club"],
        "bid_model": ["cpm", "cpc"], "bid": [3.0, 0.4], "daily_budget": [2.0, 1.0],
        "start_at": [START, START + timedelta(days=7)],
        "end_at": [START + timedelta(days=n_days), START + timedelta(days=n_days + 7)],
        "status": "active"})
    rows = []
    surfaces = ["home", "explore"]
    for u in range(n_users):
        evening = rhythms[u] == "evening"
        late_joiner = u % 6 == 0
        for d in range(n_days):
            if (late_joiner and d < 10) or rng.random() > 0.55:
                continue
            t = START + timedelta(days=d, hours=RHYTHM_HOUR[rhythms[u]] + rng.normal(0, 0.7))
            surface = surfaces[int(rng.random() < 0.3)]
            for slot in range(int(rng.integers(4, 14))):
                t += timedelta(seconds=float(rng.uniform(5, 60)))
                if slot % 5 == 4:
                    ad = f"ad{rng.integers(4)}"
                    rows.append((u, ad, "ad_impression", t, None, None, surface))
                    if rng.random() < 0.08:
                        rows.append((u, ad, "ad_click", t + timedelta(seconds=2), None, None,
                                     None))
                        if rng.random() < 0.3:
                            rows.append((u, ad, "conversion", t + timedelta(seconds=60), None,
                                         float(rng.uniform(10, 80)), None))
                    if rng.random() < 0.04:
                        rows.append((u, ad, "hide", t + timedelta(seconds=3), None, None, None))
                    continue
                item = f"p{rng.integers(150)}"
                rows.append((u, item, "impression", t, None, None, surface))
                if rng.random() < 0.18:
                    rows.append((u, item, "click", t + timedelta(seconds=1), None, None, None))
                    rows.append((u, item, "dwell", t + timedelta(seconds=2),
                                 int(rng.uniform(2000, 30000)), None, None))
                    if rng.random() < 0.02:
                        rows.append((u, item, "purchase", t + timedelta(seconds=20), None,
                                     20.0, None))
                for kind, p in (("like", 0.12), ("comment", 0.03),
                                ("share", 0.08 if evening else 0.015), ("save", 0.03),
                                ("hide", 0.015)):
                    if rng.random() < p:
                        rows.append((u, item, kind, t + timedelta(seconds=3), None, None, None))
    ev = pd.DataFrame(rows, columns=["u", "item_id", "kind", "ts", "dwell_ms", "value",
                                     "surface"])
    ev["user_id"] = "u" + ev.pop("u").astype(str)
    ev["event_id"] = [f"e{i}" for i in range(len(ev))]
    ev["ts"] = pd.to_datetime(ev["ts"], utc=True)
    return {"events": ev, "items": pd.concat([posts, ads], ignore_index=True),
            "users": users, "campaigns": campaigns,
            "rhythm": pd.Series(rhythms, index=users["user_id"])}


def load_world(store, world: dict[str, pd.DataFrame]) -> None:
    rep = store.ingest(world["events"])
    assert rep.rejected == 0, store.rejects().head()
    store.upsert_items(world["items"])
    store.upsert_users(world["users"])
    store.upsert_campaigns(world["campaigns"])
