"""What the feed reads back: engagement counts, recent feedback and affinities."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from feedwise.schema import utc
from feedwise.store.base import StoreBase

#: Event kinds that count as engagement for popularity (dwell included).
_POPULARITY_KINDS = "('click','like','comment','share','save','dwell','rating')"
#: Event kinds that build interests and author affinity (no dwell).
_AFFINITY_KINDS = "('click','like','comment','share','save','rating')"


def _before(until: datetime | None) -> tuple[str, list]:
    """SQL condition (``AND ts < ?``, or nothing) and parameters of the optional bound."""
    return ("", []) if until is None else ("AND ts < ?", [utc(until)])


class Feedback(StoreBase):
    """What the feed reads back (part of :class:`~feedwise.store.EventStore`)."""

    def engagement_counts(self, until: datetime | None = None) -> dict[str, float]:
        """Item id -> distinct users who engaged with it (events before ``until``)."""
        cond, params = _before(until)
        df = self.query(f"""SELECT item_id, count(DISTINCT user_id) AS n FROM events
            WHERE kind IN {_POPULARITY_KINDS} {cond}
            GROUP BY item_id""", params)
        return dict(zip(df["item_id"].astype(str), df["n"].astype(float), strict=True))

    def recent_feedback(self, hours: int, until: datetime | None = None) -> pd.DataFrame:
        """Hides and reports (``user_id, item_id, kind, ts``, oldest first) of the last
        ``hours`` before the latest event (events before ``until``)."""
        cond, params = _before(until)
        return self.query(f"""SELECT user_id, item_id, kind, ts FROM events
            WHERE kind IN ('hide', 'report') {cond}
              AND ts >= (SELECT max(ts) FROM events WHERE TRUE {cond}) - to_hours({int(hours)})
            ORDER BY ts""", params * 2)

    def author_tag_affinity(self, until: datetime | None = None) -> pd.DataFrame:
        """Engagement counts per user, author and tag of the item (``user_id, author_id,
        tag, n``; events before ``until``)."""
        cond, params = _before(until)
        return self.query(f"""SELECT e.user_id, i.author_id, t.tag, count(*) AS n
            FROM events e JOIN items i USING (item_id), unnest(coalesce(i.tags, []::VARCHAR[]))
                 AS t(tag)
            WHERE e.kind IN {_AFFINITY_KINDS} {cond}
            GROUP BY ALL""", params)
