"""A tiny hand-made world whose KPIs are computed by hand in the tests.

Window: Mon 2026-01-05 00:00 to Mon 2026-01-12 00:00 UTC. Users u1, u2, u3 and u5
consent; u4 withdrew analytics consent (its many events must never count); u5 was first
seen before the window; u1 comes back on 2026-01-13 (after the window).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

START = datetime(2026, 1, 5, tzinfo=UTC)
END = datetime(2026, 1, 12, tzinfo=UTC)

# user, "MM-DD HH:MM[:SS]", item, kind, extras
EVENTS = [
    ("u1", "01-05 08:00", "p1", "impression", {"surface": "home"}),
    ("u1", "01-05 08:01", "p1", "click", {}),
    ("u1", "01-05 08:02", "p1", "like", {}),
    ("u1", "01-05 08:05", "p2", "impression", {"surface": "home"}),
    ("u1", "01-05 08:06", "a1", "ad_impression", {"surface": "home"}),
    ("u1", "01-05 08:07", "a1", "hide", {}),
    ("u1", "01-05 09:00", "p1", "impression", {"surface": "home"}),
    ("u1", "01-05 09:10", "p1", "dwell", {"dwell_ms": 4000}),
    ("u1", "01-06 20:00", "p2", "impression", {"surface": "feed"}),
    ("u1", "01-06 20:01", "p2", "share", {}),
    ("u1", "01-06 20:02", "a1", "ad_impression", {"surface": "feed"}),
    ("u1", "01-06 20:03", "a1", "ad_click", {}),
    ("u1", "01-06 20:10", "a1", "conversion", {"value": 50.0}),
    ("u2", "01-05 20:00", "p1", "impression", {"surface": "home"}),
    ("u2", "01-05 20:01", "p1", "click", {}),
    ("u2", "01-05 20:02", "p1", "comment", {}),
    ("u2", "01-05 20:05", "p1", "purchase", {"value": 20.0}),
    ("u2", "01-11 21:00", "p2", "impression", {"surface": "home"}),
    ("u2", "01-11 21:01", "p2", "save", {}),
    ("u2", "01-11 21:02", "p2", "dwell", {"dwell_ms": 2000}),
    ("u3", "01-07 12:00", "p1", "impression", {"surface": "home"}),
    ("u3", "01-07 12:00:30", "p1", "report", {}),
    ("u3", "01-07 12:01", "a1", "ad_impression", {"surface": "home", "value": 0.01}),
    ("u5", "12-20 10:00", "p1", "impression", {"surface": "home"}),
    ("u5", "01-05 10:00", "p2", "impression", {"surface": "explore"}),
    ("u1", "01-13 09:00", "p1", "impression", {"surface": "home"}),
] + [("u4", f"01-05 10:{m:02d}", "p1", kind, {"surface": "home"})
     for m in range(20) for kind in ("impression", "click", "like", "ad_impression")]


def _ts(s: str) -> str:
    md, hm = s.split(" ")
    year = 2025 if md.startswith("12") else 2026
    return f"{year}-{md}T{hm}{'' if hm.count(':') == 2 else ':00'}+00:00"


def load_tiny(store) -> None:
    rows = [{"event_id": f"e{i}", "user_id": u, "item_id": it, "kind": k, "ts": _ts(t), **x}
            for i, (u, t, it, k, x) in enumerate(EVENTS)]
    rep = store.add_events(rows)
    assert rep.accepted == len(rows), rep
    store.upsert_items([
        {"item_id": "p1", "author_id": "A", "tags": ["video", "music"], "title": "Post one",
         "created_at": datetime(2026, 1, 4, 18, 30, tzinfo=UTC)},
        {"item_id": "p2", "author_id": "B", "tags": ["news"], "title": "Post two",
         "created_at": datetime(2026, 1, 5, 7, 0, tzinfo=UTC)},
        {"item_id": "a1", "kind": "ad", "campaign_id": "c1", "title": "Ad one"},
    ])
    store.upsert_users([{"user_id": u} for u in ("u1", "u2", "u3", "u5")]
                       + [{"user_id": "u4", "consent": {"analytics": False}}])
    store.upsert_campaigns(pd.DataFrame([{
        "campaign_id": "c1", "name": "Winter sale", "bid_model": "cpm", "bid": 2.0,
        "daily_budget": 1.0, "start_at": datetime(2026, 1, 1, tzinfo=UTC),
        "end_at": datetime(2026, 1, 31, tzinfo=UTC), "status": "active"}]))
