"""Retention: events (and timed per-user rows) older than N days are purged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from feedwise.errors import ConfigError
from feedwise.privacy import RetentionScheduler, purge
from feedwise.store import EventStore

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def _store() -> EventStore:
    s = EventStore(":memory:")
    ages = [1, 5, 29, 31, 90, 400]
    s.ingest(pd.DataFrame({"user_id": [f"u{a}" for a in ages], "item_id": "i", "kind": "click",
                           "ts": [(NOW - timedelta(days=a)).isoformat() for a in ages]}))
    for a in ages:
        s.con.execute("INSERT INTO ad_impressions VALUES (?, 'c', 'ad', ?, 0.1, NULL)",
                      [f"u{a}", (NOW - timedelta(days=a)).timestamp()])
    return s


def test_purge_deletes_only_old_rows():
    with _store() as s:
        out = purge(s, 30, now=NOW)
        assert out["events"] == 3 and out["ad_impressions"] == 3
        assert sorted(s.events()["user_id"]) == ["u1", "u29", "u5"]
        assert s.scalar("SELECT count(*) FROM ad_impressions") == 3
        assert purge(s, 30, now=NOW)["events"] == 0
        with pytest.raises(ConfigError):
            purge(s, 0, now=NOW)


def test_scheduler_runs_purge():
    with _store() as s:
        sched = RetentionScheduler(s, 100, interval_s=3600, clock=lambda: NOW)
        assert sched.run_once()["events"] == 1
        sched.start()
        sched.stop()
        assert sched.runs >= 2
        assert s.count_events() == 5
