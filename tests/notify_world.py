"""A small store of users in several zones for the notification tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from feedwise.store import EventStore

NOW = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)
ZONES = {"tokyo": "Asia/Tokyo", "berlin": "Europe/Berlin", "ny": "America/New_York",
         "nozone": None, "badzone": "Mars/Olympus"}


def fill(store: EventStore) -> EventStore:
    store.upsert_users([{"user_id": u, "timezone": z} for u, z in ZONES.items()]
                       + [{"user_id": "objector", "timezone": "Europe/Berlin",
                           "consent": {"personalization": False}},
                          {"user_id": "optout", "timezone": "Europe/Berlin",
                           "attributes": {"notifications": False}}])
    store.upsert_items([{"item_id": f"p{i}", "tags": ["music" if i % 2 else "sport"]}
                        for i in range(6)])
    events = [{"user_id": u, "item_id": f"p{i % 6}", "kind": "click",
               "ts": NOW - timedelta(days=i, hours=h)}
              for u, h in [("tokyo", 14), ("berlin", 3), ("ny", 20), ("nozone", 8),
                           ("badzone", 12), ("objector", 5), ("optout", 5)]
              for i in range(1, 12)]
    store.add_events(events)
    return store
