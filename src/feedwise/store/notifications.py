"""Notifications: the queue of planned pushes and what became of each (``notifications``).

One row per notification, keyed by ``notification_id``. Its life::

    queued ──► sent ──► acked ──► opened
      │  ▲       │        └────────┘ (opened implies delivered)
      │  └─ failed (retry at next_attempt_at) ──► dead (no more tries)
      └──► cancelled (consent withdrawn, superseded)

Every change is a transition of :data:`TRANSITIONS`; a row already in the target state is
left alone, so marking twice changes nothing (idempotent). The table has a ``user_id``
column: erasure deletes a user's notifications, export includes them, and retention
purges them by ``ts`` (the planned send time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from feedwise.errors import DataError
from feedwise.store.base import StoreBase
from feedwise.store.tables import NOTIFICATION_COLUMNS

#: Target status -> the statuses a notification may move to it from.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "sent": ("queued", "failed"),
    "failed": ("sent",),
    "dead": ("queued", "sent", "failed"),
    "acked": ("sent",),
    "opened": ("sent", "acked"),
    "cancelled": ("queued", "failed"),
}
#: Statuses still waiting to go out.
PENDING = ("queued", "failed")
#: Statuses that count against a user's frequency cap (planned, out, or delivered).
COUNTED = ("queued", "failed", "sent", "acked", "opened")

_TIME_OF = {"sent": "sent_at", "acked": "acked_at", "opened": "opened_at"}


class Notifications(StoreBase):
    """The notification queue (part of :class:`~feedwise.store.EventStore`)."""

    def add_notifications(self, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> int:
        """Queue notifications (the ``notifications`` columns; ``notification_id``,
        ``user_id`` and ``ts`` required, ``status`` defaults to ``queued`` and
        ``attempts`` to 0). A row whose id is already stored is skipped, so planning the
        same notifications twice queues them once. Returns the rows added."""
        df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        if df.empty:
            return 0
        for col in ("notification_id", "user_id", "ts"):
            if col not in df.columns or df[col].isna().any():
                bad = ([] if col not in df.columns
                       else [int(i) + 1 for i in df.index[df[col].isna()][:5]])
                raise DataError(f"notifications: every row needs {col!r} (missing in rows "
                                f"{bad or 'all'}); give each notification an id, a user and "
                                "a planned send time")
        unknown = sorted(set(df.columns) - set(NOTIFICATION_COLUMNS))
        if unknown:
            raise DataError(f"notifications: unknown columns {unknown}; the columns are "
                            f"{list(NOTIFICATION_COLUMNS)}")
        df = df.copy()
        if "status" not in df.columns:
            df["status"] = "queued"
        df["status"] = df["status"].fillna("queued")
        if "attempts" not in df.columns:
            df["attempts"] = 0
        for c in NOTIFICATION_COLUMNS:
            if c not in df.columns:
                df[c] = None
        df = df[list(NOTIFICATION_COLUMNS)].drop_duplicates("notification_id")
        cols = ", ".join(f'"{c}"' for c in NOTIFICATION_COLUMNS)
        casts = ", ".join(f'CAST("{c}" AS {t})' for c, t in NOTIFICATION_COLUMNS.items())
        with self.transaction() as c:
            c.register("_fw_notifications", df)
            try:
                n = c.execute(f"INSERT OR IGNORE INTO notifications ({cols}) "
                              f"SELECT {casts} FROM _fw_notifications").fetchone()[0]
            finally:
                c.unregister("_fw_notifications")
        return int(n)

    def notifications(self, *, user_id: str | None = None, status: str | None = None,
                      since: datetime | None = None, until: datetime | None = None
                      ) -> pd.DataFrame:
        """Stored notifications (by planned time), optionally of one stored user id, one
        status, and planned within ``[since, until)``."""
        where, params = ["true"], []
        if user_id is not None:
            where.append("user_id = ?")
            params.append(str(user_id))
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        if until is not None:
            where.append("ts < ?")
            params.append(until)
        return self.query(f"SELECT * FROM notifications WHERE {' AND '.join(where)} "
                          "ORDER BY ts, notification_id", params)

    def due_notifications(self, now: datetime, *, limit: int = 1000) -> pd.DataFrame:
        """Notifications due at ``now``: queued with a planned time at or before it, or
        failed with their retry time at or before it (oldest first, at most ``limit``)."""
        return self.query("""SELECT * FROM notifications
            WHERE (status = 'queued' AND ts <= ?)
               OR (status = 'failed' AND coalesce(next_attempt_at, ts) <= ?)
            ORDER BY ts, notification_id LIMIT ?""", [now, now, int(limit)])

    def claim_notifications(self, ids: Sequence[str], *, batch: str, now: datetime
                            ) -> pd.DataFrame:
        """Mark the pending ones of ``ids`` sent in ``batch`` at ``now`` (one more
        attempt each) and return every notification of ``batch``: a retried request with
        the same batch id gets the same notifications back and sends nothing twice."""
        with self.transaction() as c:
            c.execute("""UPDATE notifications SET status = 'sent', batch = ?, sent_at = ?,
                    attempts = coalesce(attempts, 0) + 1
                WHERE notification_id IN (SELECT unnest(?)) AND status IN ('queued', 'failed')
                  AND coalesce(batch, '') <> ?""", [batch, now, [str(i) for i in ids], batch])
        return self.query("SELECT * FROM notifications WHERE batch = ? "
                          "ORDER BY ts, notification_id", [batch])

    def mark_notifications(self, ids: Sequence[str], status: str, *, now: datetime,
                           retry_at: datetime | None = None, reason: str | None = None) -> int:
        """Move ``ids`` to ``status`` (a key of :data:`TRANSITIONS`) where their current
        status allows it; ``failed`` takes the retry time ``retry_at``. Rows already in
        ``status`` (or past it) are left alone. Returns the rows changed."""
        if status not in TRANSITIONS:
            raise DataError(f"notification status {status!r} is not one of "
                            f"{sorted(TRANSITIONS)}")
        sets = ["status = ?"]
        params: list[Any] = [status]
        if status in _TIME_OF:
            sets.append(f"{_TIME_OF[status]} = coalesce({_TIME_OF[status]}, ?)")
            params.append(now)
        if status == "opened":
            sets.append("acked_at = coalesce(acked_at, ?)")
            params.append(now)
        if status == "failed":
            sets.append("next_attempt_at = ?")
            params.append(retry_at or now)
        if reason is not None:
            sets.append("reason = ?")
            params.append(reason)
        allowed = list(TRANSITIONS[status])
        with self.transaction() as c:
            n = c.execute(f"""UPDATE notifications SET {", ".join(sets)}
                WHERE notification_id IN (SELECT unnest(?)) AND status IN (SELECT unnest(?))""",
                          [*params, [str(i) for i in ids], allowed]).fetchone()[0]
        return int(n)

    def activity_hours(self, since: datetime | None = None, until: datetime | None = None
                       ) -> pd.DataFrame:
        """Events per user and UTC hour (``user_id, hour, n``; ``hour`` the start of the
        hour, UTC) within ``[since, until)``: what send times are learnt from (converted to
        each user's local clock by the caller)."""
        where, params = ["true"], []
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        if until is not None:
            where.append("ts < ?")
            params.append(until)
        return self.query(f"""SELECT user_id, date_trunc('hour', ts) AS hour, count(*) AS n
            FROM events WHERE {' AND '.join(where)} GROUP BY ALL ORDER BY user_id, hour""",
                          params)
