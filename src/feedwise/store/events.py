"""Reads of the event log that commands and reports need (beyond the training view)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from feedwise.schema import ENGAGEMENT_KINDS, NEGATIVE_KINDS
from feedwise.store.base import StoreBase

#: What the engagement model learns from: impressions and the acts that label them.
_IMPRESSION_LOG_KINDS = ("impression", *ENGAGEMENT_KINDS, "dwell", *NEGATIVE_KINDS,
                         "ad_impression")


class EventReads(StoreBase):
    """Event-log reads (part of :class:`~feedwise.store.EventStore`)."""

    def last_event_time(self) -> datetime | None:
        """Time of the newest event (``None`` when the log is empty)."""
        return self.scalar("SELECT max(ts) FROM events")

    def impression_log(self) -> pd.DataFrame:
        """Impressions, engagements, dwells, hides, reports and ad impressions
        (``user_id, item_id, kind, ts, position, dwell_ms``): the engagement model's data."""
        marks = ", ".join("?" * len(_IMPRESSION_LOG_KINDS))
        return self.query("SELECT user_id, item_id, kind, ts, position, dwell_ms FROM events "
                          f"WHERE kind IN ({marks})", list(_IMPRESSION_LOG_KINDS))
