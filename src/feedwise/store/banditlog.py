"""The store's logged feeds as a logged-bandit table (``feedwise export --format bandit``).

One row per logged impression that carries a position and a propensity (what the service
and the synthetic world log for every served slot): ``timestamp, user_id, session_id,
item_id, slot_kind (post | ad), position, propensity, policy, reward`` and the parts of the
reward. The reward of an impression is 1 when the same user engaged with the same item
(``click``, ``like``, ``comment``, ``share``, ``save``; ``ad_click`` or ``conversion`` for an
ad) within ``reward_window_s`` seconds after it, else 0; ``policy`` is the ``policy`` the
service wrote into the impression's context (NULL when none).
"""

from __future__ import annotations

import pandas as pd

from feedwise.store.base import StoreBase

#: Kinds that count as a reward of an organic (``post``) or an ad impression.
REWARD_KINDS: dict[str, tuple[str, ...]] = {
    "post": ("click", "like", "comment", "share", "save"),
    "ad": ("ad_click", "conversion"),
}


class BanditLog(StoreBase):
    """Logged feeds for off-policy evaluation (part of :class:`~feedwise.store.EventStore`)."""

    def logged_feeds(self, reward_window_s: float = 1800.0) -> pd.DataFrame:
        """Every logged impression with a position and a propensity, oldest first, with its
        reward (see the module docstring). Columns: ``timestamp, user_id, session_id,
        item_id, slot_kind, position, propensity, policy, reward, engaged, clicked``."""
        post = ", ".join(f"'{k}'" for k in REWARD_KINDS["post"])
        ad = ", ".join(f"'{k}'" for k in REWARD_KINDS["ad"])
        return self.query(f"""
            WITH imp AS (
                SELECT event_id, user_id, item_id, ts, position, propensity, session_id,
                       CASE WHEN kind = 'ad_impression' THEN 'ad' ELSE 'post' END AS slot_kind,
                       try(json_extract_string(context, '$.policy')) AS policy
                FROM events
                WHERE kind IN ('impression', 'ad_impression') AND position IS NOT NULL
                      AND propensity IS NOT NULL),
            resp AS (
                SELECT user_id, item_id, kind, ts FROM events
                WHERE kind IN ({post}, {ad})),
            hit AS (
                SELECT i.event_id,
                       bool_or((i.slot_kind = 'post' AND r.kind IN ({post}))
                               OR (i.slot_kind = 'ad' AND r.kind IN ({ad}))) AS engaged,
                       bool_or(r.kind IN ('click', 'ad_click')) AS clicked
                FROM imp i JOIN resp r ON r.user_id = i.user_id AND r.item_id = i.item_id
                     AND r.ts >= i.ts AND r.ts <= i.ts + to_microseconds(
                         CAST(? * 1000000 AS BIGINT))
                GROUP BY i.event_id)
            SELECT i.ts AS timestamp, i.user_id, i.session_id, i.item_id, i.slot_kind,
                   i.position, i.propensity, i.policy,
                   CAST(coalesce(h.engaged, FALSE) AS INTEGER) AS reward,
                   coalesce(h.engaged, FALSE) AS engaged,
                   coalesce(h.clicked, FALSE) AS clicked
            FROM imp i LEFT JOIN hit h USING (event_id)
            ORDER BY i.ts, i.session_id, i.position, i.event_id""", [reward_window_s])
