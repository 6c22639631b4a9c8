"""What reshare cascades and creator measures read: share events with their parents, and
per-author delivery (``feedwise.graph.cascades``, ``feedwise.graph.creators``).

A share names what it re-shared in ``events.parent_id``: another event's id (a reshare of a
reshare) or an item id (the post itself; NULL means the same). Erasure keeps the shape of
other users' cascades without naming the erased user: :func:`anonymise_parent_links`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pandas as pd

from feedwise.schema import utc
from feedwise.store.base import StoreBase

#: Prefix of the placeholder that replaces a ``parent_id`` naming an erased user's event.
ERASED_PARENT_PREFIX = "erased:"
#: Event kinds counted as engagement with an author's posts.
_ENGAGEMENT = "('click','like','comment','share','save')"


def _window(since: datetime | None, until: datetime | None, alias: str = "") -> tuple[str,
                                                                                       list]:
    col = f"{alias}ts"
    conds, params = [], []
    if since is not None:
        conds.append(f"{col} >= ?")
        params.append(utc(since))
    if until is not None:
        conds.append(f"{col} < ?")
        params.append(utc(until))
    return "".join(f" AND {c}" for c in conds), params


def _objectors(exclude: bool, alias: str = "") -> str:
    """SQL condition leaving out users who withdrew analytics consent."""
    if not exclude:
        return ""
    return (f" AND {alias}user_id NOT IN (SELECT user_id FROM users "
            "WHERE consent_analytics = false)")


def anonymise_parent_links(c: Any, ids: list[str]) -> int:
    """Inside an erasure transaction (``c``, before the user's events are deleted): every
    other user's event whose ``parent_id`` names an event of ``ids`` gets a placeholder
    ``erased:<random hex>`` instead, one per erased parent (so reshares of the same erased
    share stay siblings), drawn at random: it says nothing about the user or the event.
    Returns the events rewritten."""
    parents = [r[0] for r in c.execute(
        """SELECT DISTINCT p.event_id FROM events p JOIN events e ON e.parent_id = p.event_id
           WHERE p.user_id IN (SELECT unnest(?)) AND e.user_id NOT IN (SELECT unnest(?))""",
        [ids, ids]).fetchall()]
    if not parents:
        return 0
    mapping = pd.DataFrame({"old": parents, "new": [ERASED_PARENT_PREFIX + uuid.uuid4().hex
                                                    for _ in parents]})
    c.register("_fw_erased_parents", mapping)
    try:
        n = c.execute("""UPDATE events SET parent_id = m.new FROM _fw_erased_parents m
            WHERE events.parent_id = m.old AND events.user_id NOT IN (SELECT unnest(?))""",
                      [ids]).fetchone()[0]
    finally:
        c.unregister("_fw_erased_parents")
    return int(n)


class Cascades(StoreBase):
    """Share events and per-author delivery (part of :class:`~feedwise.store.EventStore`)."""

    def share_events(self, since: datetime | None = None, until: datetime | None = None, *,
                     exclude_objectors: bool = False) -> pd.DataFrame:
        """Share events (``event_id, user_id, item_id, parent_id, ts``, oldest first) in
        ``[since, until)``; ``exclude_objectors`` leaves out users who withdrew analytics
        consent."""
        cond, params = _window(since, until)
        return self.query(f"""SELECT event_id, user_id, item_id, parent_id, ts FROM events
            WHERE kind = 'share'{cond}{_objectors(exclude_objectors)}
            ORDER BY ts, event_id""", params)

    def author_delivery(self, since: datetime | None = None, until: datetime | None = None,
                        *, exclude_objectors: bool = False) -> pd.DataFrame:
        """Per author of posts, their delivery in ``[since, until)``: ``author_id``,
        ``posts`` (posts with an event in the window), ``impressions``, ``reach`` (distinct
        users shown or engaging), ``engagements`` (clicks, likes, comments, shares,
        saves), ``engaged_users`` and ``shares``."""
        cond, params = _window(since, until, "e.")
        return self.query(f"""SELECT i.author_id,
                count(DISTINCT e.item_id) AS posts,
                count(*) FILTER (WHERE e.kind = 'impression') AS impressions,
                count(DISTINCT e.user_id) AS reach,
                count(*) FILTER (WHERE e.kind IN {_ENGAGEMENT}) AS engagements,
                count(DISTINCT e.user_id) FILTER (WHERE e.kind IN {_ENGAGEMENT})
                    AS engaged_users,
                count(*) FILTER (WHERE e.kind = 'share') AS shares
            FROM events e JOIN items i ON i.item_id = e.item_id
            WHERE i.author_id IS NOT NULL AND coalesce(i.kind, 'post') <> 'ad'
              {cond}{_objectors(exclude_objectors, "e.")}
            GROUP BY i.author_id ORDER BY i.author_id""", params)

    def author_audience(self, since: datetime | None = None, until: datetime | None = None,
                        *, exclude_objectors: bool = False) -> pd.DataFrame:
        """Who engaged with each author's posts in ``[since, until)``: ``author_id``,
        ``user_id``, ``engagements``."""
        cond, params = _window(since, until, "e.")
        return self.query(f"""SELECT i.author_id, e.user_id, count(*) AS engagements
            FROM events e JOIN items i ON i.item_id = e.item_id
            WHERE i.author_id IS NOT NULL AND e.kind IN {_ENGAGEMENT}
              {cond}{_objectors(exclude_objectors, "e.")}
            GROUP BY ALL ORDER BY 1, 2""", params)
