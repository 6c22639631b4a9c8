"""Retention: purge per-user rows older than a number of days, once or on a schedule."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from feedwise.errors import ConfigError
from feedwise.schema import utc
from feedwise.store import EventStore

log = logging.getLogger("feedwise.privacy")


def purge(store: EventStore, older_than_days: float, *, now: datetime) -> dict[str, int]:
    """Delete per-user rows older than ``older_than_days`` (retention).

    Every table with both a ``user_id`` and a ``ts`` column is purged (``events``, ad
    impressions, ...; a numeric ``ts`` is taken as unix seconds), and ``rejects`` by
    ``rejected_at``. Rows dated after ``now`` + 1 day go too: ingest rejects such times,
    but a store written before it did may hold them, and they break every report.
    Reports computed before keep their aggregates; erasure tombstones and the consent log
    are kept (they prove what was done and agreed).

    Returns:
        Rows deleted per table.
    """
    if older_than_days <= 0:
        raise ConfigError(f"--older-than-days must be positive, got {older_than_days}")
    cutoff = utc(now) - timedelta(days=older_than_days)
    out = store.purge_before(cutoff, not_after=utc(now) + timedelta(days=1))
    log.info("retention purge before %s: %d rows deleted", cutoff.isoformat(),
             sum(out.values()))
    return out


class RetentionScheduler:
    """Runs :func:`purge` every ``interval_s`` seconds on a daemon thread (server use).

    Args:
        store: The store.
        days: Retention in days.
        interval_s: Seconds between purges (the first runs at :meth:`start`).
        clock: Returns the current time (tz-aware); the edge of the app reads the clock.
    """

    def __init__(self, store: EventStore, days: float, interval_s: float = 3600.0, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if days <= 0 or interval_s <= 0:
            raise ConfigError("retention days and interval must be positive")
        self.store, self.days, self.interval_s, self.clock = store, days, interval_s, clock
        self.runs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> dict[str, int]:
        out = purge(self.store, self.days, now=self.clock())
        self.runs += 1
        return out

    @property
    def running(self) -> bool:
        """Whether the background purge thread has been started."""
        return self._thread is not None

    def start(self) -> RetentionScheduler:
        def loop() -> None:
            while True:
                try:
                    self.run_once()
                except Exception:  # noqa: BLE001 - keep the schedule alive
                    log.exception("retention purge failed; retrying next interval")
                if self._stop.wait(self.interval_s):
                    return

        self._thread = threading.Thread(target=loop, name="feedwise-retention", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
