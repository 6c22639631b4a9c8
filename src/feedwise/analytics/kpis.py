"""Engagement KPIs, computed in DuckDB SQL over a :class:`~feedwise.analytics.scope.Scope`.

Definitions (all over consenting users' events in ``[start, end)``):

- ``dau``: mean over the window's UTC days of distinct active users per day (an active
  user has any event that day; days without events count as 0).
- ``wau`` / ``mau``: distinct active users in the last 7 / 30 days of the window (the
  whole window when it is shorter).
- ``stickiness``: mean DAU over those last 30 days divided by ``mau``.
- ``ctr``: organic clicks / organic impressions.
- ``engagement_rate``: likes + comments + shares + saves per organic impression, and
  ``<kind>_rate`` for each of them.
- ``hide_rate`` / ``report_rate``: hides / reports per impression (organic + ad).
- ``avg_dwell_s``: mean ``dwell_ms`` of events that carry one, in seconds.
- ``ad_load``: ad impressions / all impressions; ``ad_ctr``: ad clicks / ad impressions.
- ``revenue``: what advertisers paid (see the money convention in
  :mod:`feedwise.analytics.scope`); ``ecpm``: revenue per 1000 ad impressions.
- sessions: see :mod:`feedwise.analytics.sessions`.

Every figure describes all users of the scope, so the summary is blanked when fewer
than ``k`` users are in it, and a series row when fewer than ``k`` users are active in
that period.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pandas as pd

from feedwise.analytics.scope import Scope, utc_wall
from feedwise.analytics.sessions import SessionConfig, _session_summary, session_summary_sql
from feedwise.analytics.suppression import suppress

Grain = Literal["hour", "day", "week", "month"]
GRAINS: tuple[str, ...] = ("hour", "day", "week", "month")
ENGAGE_KINDS: tuple[str, ...] = ("like", "comment", "share", "save")

#: Counts taken in one scan of ``ev``: name -> SQL aggregate.
_COUNTS: dict[str, str] = {
    "users": "count(DISTINCT user_id)",
    "events": "count(*)",
    "impressions": "count(*) FILTER (WHERE kind = 'impression')",
    "clicks": "count(*) FILTER (WHERE kind = 'click')",
    **{f"{k}s": f"count(*) FILTER (WHERE kind = '{k}')" for k in ENGAGE_KINDS},
    "hides": "count(*) FILTER (WHERE kind = 'hide')",
    "reports": "count(*) FILTER (WHERE kind = 'report')",
    "purchases": "count(*) FILTER (WHERE kind = 'purchase')",
    "ad_impressions": "count(*) FILTER (WHERE kind = 'ad_impression')",
    "ad_clicks": "count(*) FILTER (WHERE kind = 'ad_click')",
    "conversions": "count(*) FILTER (WHERE kind = 'conversion')",
    "avg_dwell_s": "avg(dwell_ms) / 1000.0",
}

#: The KPI tiles in report order: key -> (label, format, higher is better).
KPI_LABELS: dict[str, tuple[str, str, bool]] = {
    "dau": ("DAU", "int", True), "wau": ("WAU", "int", True), "mau": ("MAU", "int", True),
    "stickiness": ("Stickiness (DAU/MAU)", "pct", True),
    "sessions": ("Sessions", "int", True),
    "avg_length_s": ("Avg session length", "dur", True),
    "avg_depth": ("Avg session depth (items)", "num", True),
    "avg_dwell_s": ("Avg dwell", "dur", True),
    "ctr": ("CTR", "pct", True), "engagement_rate": ("Engagement rate", "pct", True),
    "like_rate": ("Like rate", "pct", True), "comment_rate": ("Comment rate", "pct", True),
    "share_rate": ("Share rate", "pct", True), "save_rate": ("Save rate", "pct", True),
    "hide_rate": ("Hide rate", "pct", False), "report_rate": ("Report rate", "pct", False),
    "ad_load": ("Ad load seen", "pct", False), "ad_ctr": ("Ad CTR", "pct", True),
    "revenue": ("Revenue", "money", True), "ecpm": ("eCPM", "money", True),
}


def _div(a: float, b: float) -> float:
    return float(a) / float(b) if b else float("nan")


def _rates(c: dict) -> dict[str, float]:
    imps = c["impressions"]
    all_imps = c["impressions"] + c["ad_impressions"]
    eng = sum(c[f"{k}s"] for k in ENGAGE_KINDS)
    out = {"ctr": _div(c["clicks"], imps), "engagement_rate": _div(eng, imps),
           **{f"{k}_rate": _div(c[f"{k}s"], imps) for k in ENGAGE_KINDS},
           "hide_rate": _div(c["hides"], all_imps), "report_rate": _div(c["reports"], all_imps),
           "ad_load": _div(c["ad_impressions"], all_imps),
           "ad_ctr": _div(c["ad_clicks"], c["ad_impressions"]),
           "ecpm": _div(1000.0 * c["revenue"], c["ad_impressions"])}
    return out


def _rates_frame(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`_rates` of every row of ``df`` at once (the same divisions, column-wise)."""
    def col(name: str) -> np.ndarray:
        return df[name].to_numpy(np.float64)

    def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.full(len(a), np.nan)
        np.divide(a, b, out=out, where=b != 0)
        return out

    imps, ad_imps = col("impressions"), col("ad_impressions")
    all_imps = imps + ad_imps
    eng = sum(df[f"{k}s"].to_numpy() for k in ENGAGE_KINDS).astype(np.float64)
    out = {"ctr": div(col("clicks"), imps), "engagement_rate": div(eng, imps),
           **{f"{k}_rate": div(col(f"{k}s"), imps) for k in ENGAGE_KINDS},
           "hide_rate": div(col("hides"), all_imps), "report_rate": div(col("reports"), all_imps),
           "ad_load": div(ad_imps, all_imps), "ad_ctr": div(col("ad_clicks"), ad_imps),
           "ecpm": div(1000.0 * col("revenue"), ad_imps)}
    return pd.DataFrame(out)


def counts(scope: Scope) -> dict[str, float]:
    """Raw event counts of the scope (one scan), plus ``revenue`` and ``conv_value``."""
    sel = ", ".join(f"{sql} AS {name}" for name, sql in _COUNTS.items())
    # one statement: the counts of ev and the money of ad_ev (the same aggregates as two)
    c = scope.row(f"""SELECT * FROM (SELECT {sel} FROM ev),
            (SELECT coalesce(sum(cost), 0) AS revenue,
                    coalesce(sum(conv_value), 0) AS conv_value FROM ad_ev)""")
    c.update(revenue=float(c["revenue"]), conv_value=float(c["conv_value"]))
    return {k: (float(v) if v is not None and not pd.isna(v) else float("nan"))
            for k, v in c.items()}


def active_users(scope: Scope) -> dict[str, float]:
    """DAU (mean per day), WAU and MAU (last 7 / 30 days) and stickiness of the scope.

    Days are 24-hour blocks counted back from the window's end, so "the last 7 days" is
    exactly the 168 hours before it whatever time the window starts (for windows of whole
    UTC days these are the UTC days).
    """
    return _active(scope.query(_active_sql(scope), [scope.end]).iloc[0])


def _active_sql(scope: Scope) -> str:
    """The select list of :func:`active_users` (its row: ``dau``, ``wau``, ``mau``,
    ``dau30``), reading ``ev`` with the window's end as its one parameter."""
    ndays = max(1, math.ceil(scope.days))
    last30 = min(30, ndays)
    return f"""
        WITH d AS (SELECT DISTINCT user_id,
                          CAST(floor((epoch(?::TIMESTAMPTZ) - epoch(ts)) / 86400) AS INTEGER)
                              AS back
                   FROM ev)
        SELECT (SELECT count(*) FROM d) / {ndays}::DOUBLE AS dau,
               (SELECT count(DISTINCT user_id) FROM d WHERE back < 7) AS wau,
               (SELECT count(DISTINCT user_id) FROM d WHERE back < 30) AS mau,
               (SELECT count(*) FROM d WHERE back < {last30}) / {last30}::DOUBLE
                   AS dau30"""


def _active(row: Any) -> dict[str, float]:
    mau = float(row["mau"])
    return {"dau": float(row["dau"]), "wau": float(row["wau"]), "mau": mau,
            "stickiness": _div(row["dau30"], mau)}


def kpi_summary(scope: Scope, sessions: SessionConfig | None = None) -> dict[str, float]:
    """Every KPI of the scope as one dict (see the module docstring for definitions).

    Returns NaN for every KPI when the scope holds fewer than ``scope.k`` users.
    """
    c = counts(scope)
    # active users and the session summary in one statement (the same aggregates)
    cfg = sessions or SessionConfig()
    row = scope.row(f"""WITH a AS ({_active_sql(scope)}),
            s AS ({session_summary_sql(scope.sessions_table(cfg.gap_minutes))})
        SELECT * FROM a, s""", [scope.end])
    out: dict[str, float] = {**_active(row), **_session_summary(row, scope.k)}
    out.update(_rates(c))
    out.update(avg_dwell_s=c["avg_dwell_s"], revenue=c["revenue"], users=c["users"],
               impressions=c["impressions"], ad_impressions=c["ad_impressions"],
               conv_value=c["conv_value"])
    if c["users"] < scope.k:
        out = {key: float("nan") for key in out}
    return out


def kpi_change(current: dict[str, float], previous: dict[str, float]) -> dict[str, float]:
    """Relative period-over-period change ``(cur - prev) / |prev|`` per KPI (NaN if undefined)."""
    out = {}
    for key, cur in current.items():
        prev = previous.get(key, float("nan"))
        ok = not (math.isnan(cur) or math.isnan(prev)) and prev != 0
        out[key] = (cur - prev) / abs(prev) if ok else float("nan")
    return out


def kpi_series(scope: Scope, grain: Grain = "day",
               sessions: SessionConfig | None = None) -> pd.DataFrame:
    """KPIs per period (``date_trunc(grain, ts)``, UTC) over the scope.

    Columns: ``period``, ``active_users`` (DAU/WAU/MAU at day/week/month grain), the
    raw counts, ``sessions``, ``revenue`` and the rates of :func:`kpi_summary`. Rows with
    fewer than ``k`` active users are blanked and marked ``suppressed``.
    """
    if grain not in GRAINS:
        from feedwise.errors import ConfigError

        raise ConfigError(f"grain must be one of {GRAINS}, not {grain!r}")
    cfg = sessions or SessionConfig()
    sel = ", ".join(f"{sql} AS {name}" for name, sql in _COUNTS.items())
    df = scope.query(f"""
        WITH e AS (SELECT date_trunc('{grain}', t) AS period, {sel} FROM ev GROUP BY 1),
             s AS (SELECT date_trunc('{grain}', {utc_wall('start')}) AS period,
                          count(*) AS sessions,
                          avg(length_s) AS avg_length_s
                   FROM {scope.sessions_table(cfg.gap_minutes)} GROUP BY 1),
             r AS (SELECT date_trunc('{grain}', t) AS period, sum(cost) AS revenue
                   FROM ad_ev GROUP BY 1)
        SELECT e.*, coalesce(s.sessions, 0) AS sessions, s.avg_length_s,
               coalesce(r.revenue, 0) AS revenue
        FROM e LEFT JOIN s USING (period) LEFT JOIN r USING (period)
        ORDER BY period""")
    if df.empty:
        return df.assign(active_users=[], suppressed=[])
    df["period"] = pd.to_datetime(df["period"]).dt.tz_localize("UTC")
    rates = _rates_frame(df)
    df = pd.concat([df, rates], axis=1).rename(columns={"users": "active_users"})
    return suppress(df, "active_users", scope.k)
