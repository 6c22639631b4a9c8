"""Campaign results: delivery, cost, outcomes and pacing per campaign.

Per campaign over the scope (ad events are tied to campaigns through their item, see
:mod:`feedwise.analytics.scope` for the money convention):

``impressions``, ``reach`` (distinct users), ``frequency`` (impressions / reach),
``clicks``, ``ctr``, ``spend``, ``cpm`` (spend per 1000 impressions), ``cpc``,
``conversions``, ``cvr`` (conversions / clicks), ``conv_value``, ``roas``
(conv_value / spend), ``planned`` spend and ``pacing`` (spend / planned).

Planned spend for the window: ``daily_budget`` × days of the window inside the
campaign's flight; without a daily budget, ``total_budget`` × the share of the flight
inside the window. A campaign reaching fewer than ``k`` users is blanked and marked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from feedwise.analytics.scope import Scope
from feedwise.analytics.suppression import suppress

FREQUENCY_BUCKETS: tuple[str, ...] = ("1", "2", "3", "4", "5-9", "10+")


def campaign_results(scope: Scope) -> pd.DataFrame:
    """One row per campaign with delivery in the scope (see the module docstring)."""
    df = scope.query("""SELECT a.campaign_id, any_value(c.name) AS name,
            count(*) FILTER (WHERE a.kind = 'ad_impression') AS impressions,
            count(DISTINCT a.user_id) FILTER (WHERE a.kind = 'ad_impression') AS reach,
            count(*) FILTER (WHERE a.kind = 'ad_click') AS clicks,
            sum(a.cost) AS spend,
            count(*) FILTER (WHERE a.kind = 'conversion') AS conversions,
            sum(a.conv_value) AS conv_value,
            count(DISTINCT a.user_id) AS users,
            any_value(c.daily_budget) AS daily_budget, any_value(c.total_budget) AS total_budget,
            any_value(c.start_at) AS start_at, any_value(c.end_at) AS end_at
        FROM ad_ev a LEFT JOIN campaigns c ON c.campaign_id = a.campaign_id
        WHERE a.campaign_id IS NOT NULL GROUP BY a.campaign_id ORDER BY spend DESC, 1""")
    if df.empty:
        return df.assign(suppressed=[])

    def div(a: pd.Series, b: pd.Series) -> pd.Series:
        return (a / b.where(b > 0)).astype("float64")

    df["frequency"] = div(df["impressions"], df["reach"])
    df["ctr"] = div(df["clicks"], df["impressions"])
    df["cpm"] = 1000 * div(df["spend"], df["impressions"])
    df["cpc"] = div(df["spend"], df["clicks"])
    df["cvr"] = div(df["conversions"], df["clicks"])
    df["roas"] = div(df["conv_value"], df["spend"])
    df["planned"] = [_planned(scope, r) for r in df.itertuples(index=False)]
    df["pacing"] = div(df["spend"], df["planned"])
    df = df.drop(columns=["daily_budget", "total_budget", "start_at", "end_at"])
    # reach describes users: judge the row by everyone it counts
    return suppress(df, "users", scope.k)


def _planned(scope: Scope, r) -> float:
    lo, hi = pd.Timestamp(scope.start), pd.Timestamp(scope.end)
    f_lo = pd.Timestamp(r.start_at) if pd.notna(r.start_at) else lo
    f_hi = pd.Timestamp(r.end_at) if pd.notna(r.end_at) else hi
    overlap = (min(hi, f_hi) - max(lo, f_lo)) / pd.Timedelta(days=1)
    overlap = max(0.0, overlap)
    if pd.notna(r.daily_budget) and r.daily_budget > 0:
        return float(r.daily_budget) * overlap
    if pd.notna(r.total_budget) and r.total_budget > 0 and pd.notna(r.start_at) \
            and pd.notna(r.end_at):
        flight = (f_hi - f_lo) / pd.Timedelta(days=1)
        return float(r.total_budget) * overlap / flight if flight > 0 else np.nan
    return np.nan


def frequency_distribution(scope: Scope) -> pd.DataFrame:
    """Users per campaign by how many of its ads they saw (buckets 1, 2, 3, 4, 5-9, 10+).

    Returns one row per campaign, one column per bucket; cells of 1 to ``k - 1`` users
    are NaN.
    """
    df = scope.query("""WITH f AS (SELECT campaign_id, user_id, count(*) AS n FROM ad_ev
                                   WHERE kind = 'ad_impression' AND campaign_id IS NOT NULL
                                   GROUP BY ALL)
        SELECT campaign_id, CASE WHEN n <= 4 THEN CAST(n AS VARCHAR)
                                 WHEN n < 10 THEN '5-9' ELSE '10+' END AS bucket,
               count(*) AS users FROM f GROUP BY ALL""")
    mat = df.pivot_table(index="campaign_id", columns="bucket", values="users",
                         aggfunc="sum").reindex(columns=list(FREQUENCY_BUCKETS)).fillna(0)
    return mat.astype("float64").mask((mat > 0) & (mat < scope.k))


def campaign_pacing(scope: Scope) -> pd.DataFrame:
    """Spend per campaign and UTC day against the day's plan (its ``daily_budget``, else
    ``total_budget`` spread evenly over the flight): ``campaign_id, day, spend, planned,
    users``; days of 1 to ``k - 1`` users blanked and marked ``suppressed``."""
    df = scope.query("""SELECT a.campaign_id, CAST(date_trunc('day', a.t) AS DATE) AS day,
            sum(a.cost) AS spend, count(DISTINCT a.user_id) AS users,
            any_value(c.daily_budget) AS daily_budget, any_value(c.total_budget) AS total,
            any_value(c.start_at) AS start_at, any_value(c.end_at) AS end_at
        FROM ad_ev a LEFT JOIN campaigns c ON c.campaign_id = a.campaign_id
        WHERE a.campaign_id IS NOT NULL GROUP BY ALL ORDER BY 1, 2""")
    if df.empty:
        return pd.DataFrame(columns=["campaign_id", "day", "spend", "planned", "users",
                                     "suppressed"])
    flight = (pd.to_datetime(df["end_at"], utc=True) - pd.to_datetime(df["start_at"], utc=True)
              ) / pd.Timedelta(days=1)
    spread = df["total"] / flight.where(flight > 0)
    df["planned"] = df["daily_budget"].where(df["daily_budget"] > 0, spread).astype("float64")
    df["spend"] = df["spend"].astype("float64")
    df = df[["campaign_id", "day", "spend", "planned", "users"]]
    return suppress(df, "users", scope.k, columns=["spend", "users"])
