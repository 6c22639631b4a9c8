"""Experiment outcomes over the event log: each user's variant and metric, in DuckDB SQL.

A user's assignment is read from the ``context`` JSON of their events (``{"experiment":
"...", "variant": "..."}``); their first assigned event starts their exposure, the metric
counts their events from then on, and the pre-period covariate is the same metric over
``pre_days`` before it. The statistics on top are :mod:`feedwise.evidence.abtest`.

Unlike the KPI modules this reads the store directly, not a :class:`~feedwise.analytics.
scope.Scope`: an experiment is analysed over every assigned user, without suppression.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from feedwise.errors import ConfigError, NotFoundError
from feedwise.schema import ENGAGEMENT_KINDS, utc
from feedwise.store import EventStore

_ENG = ", ".join(repr(k) for k in ENGAGEMENT_KINDS)
#: Per-user metrics: name -> SQL aggregate over the user's events.
METRICS_SQL: dict[str, str] = {
    "engagements": f"count(*) FILTER (WHERE kind IN ({_ENG}))",
    "clicks": "count(*) FILTER (WHERE kind IN ('click', 'ad_click'))",
    "impressions": "count(*) FILTER (WHERE kind IN ('impression', 'ad_impression'))",
    "hides": "count(*) FILTER (WHERE kind IN ('hide', 'report'))",
    "revenue": "coalesce(sum(value) FILTER (WHERE kind IN ('ad_click', 'ad_impression', "
               "'conversion', 'purchase')), 0)",
    "dwell_s": "coalesce(sum(dwell_ms) FILTER (WHERE kind = 'dwell'), 0) / 1000.0",
    "sessions": "count(DISTINCT session_id)",
    "events": "count(*)",
}
#: What :func:`experiment_outcomes` can count: :data:`METRICS_SQL` and conversion events.
_OUTCOMES_SQL: dict[str, str] = {**METRICS_SQL,
                                 "conversion": "count(*) FILTER (WHERE kind = 'conversion')"}


def experiment_outcomes(store: EventStore, experiment: str, metric: str, *,
                        pre_days: float = 14.0, until: datetime | None = None) -> pd.DataFrame:
    """Per-user variant, first assignment and ``metric`` after and before it.

    Args:
        store: The event store.
        experiment: Experiment name in the events' ``context`` JSON.
        metric: One of :data:`METRICS_SQL`, or ``conversion`` (conversion events).
        pre_days: Length of the pre-period before each user's first assignment.
        until: Ignore events at or after this time.

    Returns:
        Columns ``user_id, variant, assigned_at, y, x`` sorted by ``user_id`` (``y`` = the
        metric from the assignment on, ``x`` = over the pre-period; 0 without events).
        Users seen in more than one variant are dropped and counted in
        ``result.attrs['multi_variant_users']``.

    Raises:
        ConfigError: An unknown metric.
        NotFoundError: No events carry this experiment.
    """
    if metric not in _OUTCOMES_SQL:
        raise ConfigError(f"unknown metric {metric!r}; choose from {sorted(_OUTCOMES_SQL)}")
    expr = _OUTCOMES_SQL[metric]
    before = "" if until is None else "AND ts < ?"
    assign = store.query(
        f"""SELECT user_id, min(ts) AS assigned_at,
                  count(DISTINCT json_extract_string(context, '$.variant')) AS n_var,
                  min(json_extract_string(context, '$.variant')) AS variant
           FROM events WHERE context IS NOT NULL AND json_valid(context)
             AND json_extract_string(context, '$.experiment') = ?
             AND json_extract_string(context, '$.variant') IS NOT NULL {before}
           GROUP BY user_id""", [experiment] + ([] if until is None else [utc(until)]))
    if assign.empty:
        when = "" if until is None else f" before {utc(until).isoformat()}"
        raise NotFoundError(f"no events{when} carry experiment {experiment!r} in their context "
                            '(expected context like {"experiment": "...", "variant": "..."})')
    multi = int((assign["n_var"] > 1).sum())
    assign = assign[assign["n_var"] == 1].drop(columns="n_var")
    cur = store.cursor()
    cur.register("_fw_assign", assign)
    try:
        cond, params = "", []
        if until is not None:
            cond, params = "AND e.ts < ?", [utc(until)]
        y = cur.execute(f"""SELECT a.user_id, {expr} AS y FROM _fw_assign a
            JOIN events e ON e.user_id = a.user_id
            WHERE e.ts >= a.assigned_at {cond} GROUP BY a.user_id""", params).df()
        x = cur.execute(f"""SELECT a.user_id, {expr} AS x FROM _fw_assign a
            JOIN events e ON e.user_id = a.user_id
            WHERE e.ts < a.assigned_at AND epoch(e.ts) >= epoch(a.assigned_at) - ?
            GROUP BY a.user_id""", [float(pre_days) * 86400.0]).df()
    finally:
        cur.unregister("_fw_assign")
    y = y.merge(x, on="user_id", how="outer")
    out = assign.merge(y, on="user_id", how="left")
    out["y"] = out["y"].astype(np.float64).fillna(0.0)
    out["x"] = out["x"].astype(np.float64).fillna(0.0)
    out.attrs["multi_variant_users"] = multi
    return out.sort_values("user_id").reset_index(drop=True)
