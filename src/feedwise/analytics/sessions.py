"""Sessions: runs of one user's events with no gap longer than the inactivity limit.

A new session starts at a user's first event in the window and at every event that
follows the previous one by more than ``gap_minutes`` (30 by default, the usual web
analytics rule). A session's *length* is the time from its first to its last event; its
*depth* is the number of items it showed (organic and ad impressions).
"""

from __future__ import annotations

import pandas as pd
from pydantic import BaseModel, Field

from feedwise.analytics.scope import Scope

IMPRESSION_KINDS: tuple[str, ...] = ("impression", "ad_impression")


class SessionConfig(BaseModel):
    """How events are cut into sessions.

    Attributes:
        gap_minutes: Inactivity (minutes) after which the next event opens a new session.
    """

    gap_minutes: float = Field(default=30.0, gt=0)


def sessions_sql(gap_minutes: float = 30.0, source: str = "ev") -> str:
    """SQL yielding one row per session of ``source``.

    Columns: ``user_id``, ``session_no`` (1-based per user), ``start``, ``end``,
    ``length_s``, ``n_events``, ``depth``.
    """
    gap_s = float(gap_minutes) * 60.0
    imp = ", ".join(f"'{k}'" for k in IMPRESSION_KINDS)
    # One sort: every window of `o` shares (user_id, ts). Only the first and last event of
    # each session survive the filter, and running counts give each session's size and
    # depth, so the second window runs over two rows per session.
    return f"""
        WITH o AS (
            SELECT user_id, ts,
                   coalesce(epoch(ts) - lag(epoch(ts)) OVER w > {gap_s}, true) AS first,
                   coalesce(epoch(lead(ts) OVER w) - epoch(ts) > {gap_s}, true) AS last,
                   row_number() OVER w AS n,
                   sum(CASE WHEN kind IN ({imp}) THEN 1 ELSE 0 END) OVER w AS d,
                   CASE WHEN kind IN ({imp}) THEN 1 ELSE 0 END AS is_imp
            FROM {source}
            WINDOW w AS (PARTITION BY user_id ORDER BY ts ROWS UNBOUNDED PRECEDING)),
        b AS (
            SELECT user_id, ts, first, last, n, d, is_imp, lead(ts) OVER p AS next_ts,
                   lead(n) OVER p AS next_n, lead(d) OVER p AS next_d
            FROM o WHERE first OR last
            WINDOW p AS (PARTITION BY user_id ORDER BY n)),
        s AS (
            SELECT user_id, ts AS start, n, d, is_imp,
                   CASE WHEN last THEN ts ELSE next_ts END AS "end",
                   CASE WHEN last THEN n ELSE next_n END AS end_n,
                   CASE WHEN last THEN d ELSE next_d END AS end_d
            FROM b WHERE first)
        SELECT user_id,
               CAST(row_number() OVER (PARTITION BY user_id ORDER BY n) AS INTEGER)
                   AS session_no,
               start, "end", epoch("end") - epoch(start) AS length_s,
               end_n - n + 1 AS n_events, CAST(end_d - d + is_imp AS BIGINT) AS depth
        FROM s"""


def sessions(scope: Scope, config: SessionConfig | None = None) -> pd.DataFrame:
    """One row per session in the scope, ordered by user and start."""
    cfg = config or SessionConfig()
    return scope.query(f"SELECT * FROM {scope.sessions_table(cfg.gap_minutes)} "
                       "ORDER BY user_id, start")


def session_summary(scope: Scope, config: SessionConfig | None = None) -> dict[str, float]:
    """Count, mean/median length (s), mean depth and sessions per user of the scope.

    The figures describe every user of the scope, so they are suppressed (NaN) when the
    scope has fewer than ``scope.k`` users.
    """
    cfg = config or SessionConfig()
    row = scope.query(f"""SELECT count(*) AS sessions, avg(length_s) AS avg_length_s,
            median(length_s) AS median_length_s, avg(depth) AS avg_depth,
            avg(n_events) AS avg_events, count(DISTINCT user_id) AS users
        FROM {scope.sessions_table(cfg.gap_minutes)}""").iloc[0]
    users = int(row["users"])
    out = {"sessions": float(row["sessions"]), "avg_length_s": row["avg_length_s"],
           "median_length_s": row["median_length_s"], "avg_depth": row["avg_depth"],
           "avg_events": row["avg_events"],
           "sessions_per_user": row["sessions"] / users if users else float("nan")}
    if users < scope.k:
        out = {key: float("nan") for key in out}
    return {key: float(v) if v is not None else float("nan") for key, v in out.items()}
