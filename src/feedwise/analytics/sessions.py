"""Sessions: runs of one user's events with no gap longer than the inactivity limit.

A new session starts at a user's first event in the window and at every event that
follows the previous one by more than ``gap_minutes`` (30 by default, the usual web
analytics rule). A session's *length* is the time from its first to its last event; its
*depth* is the number of items it showed (organic and ad impressions).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from feedwise.analytics.scope import Scope


class SessionConfig(BaseModel):
    """How events are cut into sessions.

    Attributes:
        gap_minutes: Inactivity (minutes) after which the next event opens a new session.
    """

    gap_minutes: float = Field(default=30.0, gt=0)


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
    row = scope.query(session_summary_sql(scope.sessions_table(cfg.gap_minutes))).iloc[0]
    return _session_summary(row, scope.k)


def session_summary_sql(table: str) -> str:
    """The query of :func:`session_summary` over the session table ``table``."""
    return f"""SELECT count(*) AS sessions, avg(length_s) AS avg_length_s,
            median(length_s) AS median_length_s, avg(depth) AS avg_depth,
            avg(n_events) AS avg_events, count(DISTINCT user_id) AS users
        FROM {table}"""


def _session_summary(row: Any, k: int) -> dict[str, float]:
    """:func:`session_summary`'s dict from its query's row (``k``: the scope's)."""
    users = int(row["users"])
    out = {"sessions": float(row["sessions"]), "avg_length_s": row["avg_length_s"],
           "median_length_s": row["median_length_s"], "avg_depth": row["avg_depth"],
           "avg_events": row["avg_events"],
           "sessions_per_user": row["sessions"] / users if users else float("nan")}
    if users < k:
        out = {key: float("nan") for key in out}
    return {key: float(v) if v is not None else float("nan") for key, v in out.items()}
