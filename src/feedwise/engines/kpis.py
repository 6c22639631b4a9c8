"""The KPI queries shared by the embedded (DuckDB) and the Spark engines.

Each KPI is one SQL query written once, over the relations ``events`` (the store's events
table, or the Parquet layout of :mod:`feedwise.engines.export`), ``items`` and
``campaigns``. The only differences between the dialects are date arithmetic and JSON
extraction, which :func:`kpi_sql` renders per engine, so both engines answer the same
question with the same query text and :func:`compare_kpis` can check their results are
equal.

Privacy, as in :mod:`feedwise.analytics` (see :class:`~feedwise.analytics.scope.Scope`):

* **Consent.** ``events`` holds only the events of users with analytics consent: a user
  whose ``consent_analytics`` is false in the store's ``users`` table (exported as
  ``users.parquet``) is left out; NULL or no row counts as granted. The filter is applied
  where each engine defines the ``events`` relation (:func:`consented_events_sql`), so the
  KPI text stays the same. An export without ``users.parquet`` (older layout) keeps every
  event.
* **Small groups.** After both engines' results are normalised, rows describing fewer than
  ``k`` users (default 10) are blanked (user-describing cells set to NaN, key columns kept)
  and marked in a boolean ``suppressed`` column (:func:`suppress_kpi`, using
  :func:`feedwise.analytics.suppression.suppress`). The group size each row is judged by:
  ``active_users`` by ``dau`` (blanks dau, wau, mau, stickiness, as the report's KPI
  series blanks periods with fewer than k active users); ``ctr`` by ``users`` (distinct
  users with an event that day); ``engagement`` by ``users`` of the kind; ``retention`` by
  ``cohort_size`` (a rate over a cohort describes the cohort, as in the report's retention
  tables); ``campaigns`` by ``users`` (distinct users with any ad event of the campaign,
  so reach below k is always blanked, as in the report's campaign table). ``k = 1`` shows
  every row.

The KPIs (all days are UTC calendar days; the session time zone must be UTC):

``active_users``
    Per day with events: ``dau`` (users with any event that day), ``wau`` (any event in the
    7 days ending that day), ``mau`` (30 days), ``stickiness`` = dau / mau.
``ctr``
    Per day: ``users`` (distinct users with any event), impressions, clicks, ``ctr`` =
    clicks / impressions; the same for ads (``ad_impression``, ``ad_click``).
``engagement``
    Per event kind: events, distinct users and items, and events per impression.
``retention``
    Users by first-seen week (ISO weeks starting Monday): for each week offset ``week``
    (0 = the cohort week), the users active that week and ``rate`` = users / cohort size.
``campaigns``
    Per campaign (ads linked by ``items.campaign_id``, else by ``context.campaign_id``):
    impressions, reach (distinct users shown an ad), ``users`` (distinct users with any ad
    event of the campaign), clicks, conversions, ``ctr``, ``cvr`` =
    conversions / clicks and ``spend`` under the report's money convention
    (:mod:`feedwise.analytics.scope`): an ad impression or click costs its ``value`` (the
    price charged), else its campaign's bid (``cpm``: bid / 1000 per impression, ``cpc``:
    bid per click); a conversion costs the bid of a ``cpa`` campaign.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from feedwise.analytics.suppression import suppress
from feedwise.errors import ConfigError, DataError

Dialect = Literal["duckdb", "spark"]

KPI_NAMES: tuple[str, ...] = ("active_users", "ctr", "engagement", "retention", "campaigns")

#: The columns that identify a row of each KPI (sorted on before comparing engines).
KPI_KEYS: dict[str, tuple[str, ...]] = {
    "active_users": ("day",),
    "ctr": ("day",),
    "engagement": ("kind",),
    "retention": ("cohort", "week"),
    "campaigns": ("campaign_id",),
}

#: Per KPI: the column holding the number of users a row describes, and the columns blanked
#: when that number is below k (see the module docstring).
KPI_SUPPRESSION: dict[str, tuple[str, tuple[str, ...]]] = {
    "active_users": ("dau", ("dau", "wau", "mau", "stickiness")),
    "ctr": ("users", ("users", "impressions", "clicks", "ctr", "ad_impressions", "ad_clicks",
                      "ad_ctr")),
    "engagement": ("users", ("events", "users", "items", "per_impression")),
    "retention": ("cohort_size", ("cohort_size", "users", "rate")),
    "campaigns": ("users", ("impressions", "reach", "users", "clicks", "conversions", "ctr",
                            "cvr", "spend")),
}


def consented_events_sql(events: str, users: str) -> str:
    """A SELECT of the events of ``events`` whose user has not refused analytics consent in
    ``users`` (``user_id``, ``consent_analytics``; NULL or no row = granted). Valid in both
    dialects; the engines define their ``events`` relation with it."""
    return (f"SELECT e.* FROM {events} e WHERE NOT EXISTS (SELECT 1 FROM {users} u "
            "WHERE u.user_id = e.user_id AND u.consent_analytics = false)")


def suppress_kpi(df: pd.DataFrame, name: str, k: int) -> pd.DataFrame:
    """Blank the rows of KPI table ``name`` describing 1 to ``k - 1`` users and add the
    boolean ``suppressed`` column (the rule per KPI is in the module docstring)."""
    users, cols = KPI_SUPPRESSION[name]
    return suppress(df, users, k, [c for c in cols if c in df.columns])


def _check_k(k: int) -> int:
    if int(k) < 1:
        raise ConfigError(f"k must be >= 1, not {k}")
    return int(k)


def _days(a: str, b: str, dialect: Dialect) -> str:
    """Whole days from date ``a`` to date ``b`` (``b - a``)."""
    if dialect == "duckdb":
        return f"date_diff('day', {a}, {b})"
    return f"datediff({b}, {a})"


def _json_campaign(col: str, dialect: Dialect) -> str:
    """``$.campaign_id`` of the JSON text ``col`` (NULL when absent or not JSON)."""
    if dialect == "duckdb":
        return f"try(json_extract_string({col}, '$.campaign_id'))"
    return f"get_json_object({col}, '$.campaign_id')"


def _check(dialect: str) -> None:
    if dialect not in ("duckdb", "spark"):
        raise ConfigError(f"unknown SQL dialect {dialect!r}; use 'duckdb' or 'spark'")


def kpi_sql(name: str, dialect: Dialect = "duckdb", *, events: str = "events",
            items: str = "items", campaigns: str = "campaigns") -> str:
    """The SQL text of KPI ``name`` in ``dialect``.

    Args:
        name: One of :data:`KPI_NAMES`.
        dialect: ``duckdb`` or ``spark``.
        events: Name of the events relation.
        items: Name of the items relation.
        campaigns: Name of the campaigns relation (bid model and bid, for spend).
    """
    _check(dialect)
    day = "CAST(ts AS DATE)"
    if name == "active_users":
        return f"""
WITH ud AS (SELECT DISTINCT user_id, {day} AS day FROM {events}),
     days AS (SELECT DISTINCT day FROM ud),
     j AS (SELECT d.day, u.user_id, {_days('u.day', 'd.day', dialect)} AS ago
           FROM days d JOIN ud u ON u.day <= d.day AND {_days('u.day', 'd.day', dialect)} < 30)
SELECT day, dau, wau, mau, CAST(dau AS DOUBLE) / mau AS stickiness FROM (
  SELECT day,
         count(DISTINCT CASE WHEN ago = 0 THEN user_id END) AS dau,
         count(DISTINCT CASE WHEN ago < 7 THEN user_id END) AS wau,
         count(DISTINCT user_id) AS mau
  FROM j GROUP BY day) t
ORDER BY day"""
    if name == "ctr":
        return f"""
SELECT day, users, impressions, clicks,
       CAST(clicks AS DOUBLE) / NULLIF(impressions, 0) AS ctr,
       ad_impressions, ad_clicks, CAST(ad_clicks AS DOUBLE) / NULLIF(ad_impressions, 0) AS ad_ctr
FROM (SELECT {day} AS day, count(DISTINCT user_id) AS users,
             count(CASE WHEN kind = 'impression' THEN 1 END) AS impressions,
             count(CASE WHEN kind = 'click' THEN 1 END) AS clicks,
             count(CASE WHEN kind = 'ad_impression' THEN 1 END) AS ad_impressions,
             count(CASE WHEN kind = 'ad_click' THEN 1 END) AS ad_clicks
      FROM {events} GROUP BY {day}) t
ORDER BY day"""
    if name == "engagement":
        return f"""
SELECT kind, count(*) AS events, count(DISTINCT user_id) AS users,
       count(DISTINCT item_id) AS items,
       CAST(count(*) AS DOUBLE) / NULLIF((SELECT count(*) FROM {events}
                                          WHERE kind = 'impression'), 0) AS per_impression
FROM {events} GROUP BY kind ORDER BY kind"""
    if name == "retention":
        week = "CAST(date_trunc('week', ts) AS DATE)"
        return f"""
WITH first AS (SELECT user_id, min({week}) AS cohort FROM {events} GROUP BY user_id),
     act AS (SELECT DISTINCT user_id, {week} AS wk FROM {events}),
     sizes AS (SELECT cohort, count(*) AS cohort_size FROM first GROUP BY cohort),
     j AS (SELECT f.cohort, CAST({_days('f.cohort', 'a.wk', dialect)} / 7 AS INTEGER) AS week,
                  a.user_id
           FROM first f JOIN act a ON f.user_id = a.user_id)
SELECT j.cohort, j.week, s.cohort_size, count(DISTINCT j.user_id) AS users,
       CAST(count(DISTINCT j.user_id) AS DOUBLE) / s.cohort_size AS rate
FROM j JOIN sizes s ON j.cohort = s.cohort
GROUP BY j.cohort, j.week, s.cohort_size
ORDER BY j.cohort, j.week"""
    if name == "campaigns":
        return f"""
SELECT campaign_id, impressions, reach, users, clicks, conversions,
       CAST(clicks AS DOUBLE) / NULLIF(impressions, 0) AS ctr,
       CAST(conversions AS DOUBLE) / NULLIF(clicks, 0) AS cvr, spend
FROM (SELECT e.campaign_id,
             count(CASE WHEN e.kind = 'ad_impression' THEN 1 END) AS impressions,
             count(DISTINCT CASE WHEN e.kind = 'ad_impression' THEN e.user_id END) AS reach,
             count(DISTINCT e.user_id) AS users,
             count(CASE WHEN e.kind = 'ad_click' THEN 1 END) AS clicks,
             count(CASE WHEN e.kind = 'conversion' THEN 1 END) AS conversions,
             CAST(sum(CASE WHEN e.kind = 'conversion' THEN
                               CASE WHEN lower(c.bid_model) = 'cpa' THEN c.bid ELSE 0 END
                           ELSE coalesce(e.value, CASE
                               WHEN lower(c.bid_model) = 'cpm' AND e.kind = 'ad_impression'
                                   THEN c.bid / 1000
                               WHEN lower(c.bid_model) = 'cpc' AND e.kind = 'ad_click'
                                   THEN c.bid
                               ELSE 0 END) END) AS DOUBLE) AS spend
      FROM (SELECT e.user_id, e.kind, e.value,
                   coalesce(i.campaign_id, {_json_campaign('e.context', dialect)}) AS campaign_id
            FROM {events} e LEFT JOIN {items} i ON e.item_id = i.item_id
            WHERE e.kind IN ('ad_impression', 'ad_click', 'conversion')) e
      LEFT JOIN {campaigns} c ON c.campaign_id = e.campaign_id
      WHERE e.campaign_id IS NOT NULL
      GROUP BY e.campaign_id) t
ORDER BY campaign_id"""
    raise ConfigError(f"unknown KPI {name!r}; KPIs are {', '.join(KPI_NAMES)}")


def run_kpis(execute: Callable[[str], pd.DataFrame], dialect: Dialect,
             names: tuple[str, ...] | list[str] = KPI_NAMES, *, k: int = 10,
             events: str = "events") -> dict[str, pd.DataFrame]:
    """Run KPI queries through ``execute`` (SQL text -> DataFrame), normalise the results
    and suppress rows describing fewer than ``k`` users (:func:`suppress_kpi`).

    Args:
        execute: Runs SQL text, returns a DataFrame.
        dialect: ``duckdb`` or ``spark``.
        names: Which KPIs.
        k: Smallest number of users a shown row may describe (1 shows everything).
        events: Name of the (consent-filtered) events relation.
    """
    k = _check_k(k)
    return {n: suppress_kpi(normalise(execute(kpi_sql(n, dialect, events=events)), n), n, k)
            for n in names}


def duckdb_kpis(source, names: tuple[str, ...] | list[str] = KPI_NAMES, *, k: int = 10
                ) -> dict[str, pd.DataFrame]:
    """The KPIs computed by DuckDB over a store or over an export's Parquet layout.

    Only users with analytics consent are counted, and rows describing fewer than ``k``
    users are suppressed (see the module docstring).

    Args:
        source: An :class:`~feedwise.store.EventStore`, or the folder written by
            :func:`~feedwise.engines.export.export_parquet`.
        names: Which KPIs.
        k: Smallest number of users a shown row may describe (default 10).
    """
    import duckdb

    from feedwise.engines.export import events_glob

    if hasattr(source, "cursor"):
        cur = source.cursor()
        try:
            cur.execute("CREATE OR REPLACE TEMP VIEW kpi_events AS "
                        + consented_events_sql("events", "users"))
            return run_kpis(lambda q: cur.execute(q).df(), "duckdb", names, k=k,
                            events="kpi_events")
        finally:
            cur.close()
    root = Path(source)
    if not (root / "events").is_dir():
        raise DataError(f"{root}: no events/ folder; write one with "
                        "`feedwise export --format parquet --out DIR`")
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone='UTC'")
        raw = f"read_parquet('{_q(events_glob(root))}', hive_partitioning = true)"
        users = root / "users.parquet"
        if users.exists():  # older layouts have no users: every event counts
            con.execute("CREATE VIEW events AS " + consented_events_sql(
                raw, f"read_parquet('{_q(users)}')"))
        else:
            con.execute(f"CREATE VIEW events AS SELECT * FROM {raw}")
        for name, empty in (("items", "CAST(NULL AS VARCHAR) AS item_id, "
                                      "CAST(NULL AS VARCHAR) AS campaign_id"),
                            ("campaigns", "CAST(NULL AS VARCHAR) AS campaign_id, "
                                          "CAST(NULL AS VARCHAR) AS bid_model, "
                                          "CAST(NULL AS DOUBLE) AS bid")):
            path = root / f"{name}.parquet"  # absent in older layouts: an empty view
            con.execute(f"CREATE VIEW {name} AS " + (
                f"SELECT * FROM read_parquet('{_q(path)}')" if path.exists()
                else f"SELECT {empty} WHERE FALSE"))
        return run_kpis(lambda q: con.execute(q).df(), "duckdb", names, k=k)
    finally:
        con.close()


def normalise(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """Engine-neutral dtypes: days as ISO strings, counts as int64, ratios as float64."""
    out = df.copy()
    for c in out.columns:
        s = out[c]
        if c in ("day", "cohort"):
            out[c] = pd.to_datetime(s).dt.strftime("%Y-%m-%d")
        elif c in ("kind", "campaign_id"):
            out[c] = s.astype(str)
        elif pd.api.types.is_integer_dtype(s) or c in ("week", "dau", "wau", "mau", "events",
                                                        "users", "items", "cohort_size",
                                                        "impressions", "clicks", "reach",
                                                        "conversions", "ad_impressions",
                                                        "ad_clicks"):
            out[c] = pd.to_numeric(s).astype(np.int64)
        else:
            out[c] = pd.to_numeric(s, errors="coerce").astype(np.float64)
    keys = list(KPI_KEYS.get(name, ()))
    if keys:
        out = out.sort_values(keys, kind="stable").reset_index(drop=True)
    return out


def compare_kpis(a: Mapping[str, pd.DataFrame], b: Mapping[str, pd.DataFrame], *,
                 rtol: float = 1e-9) -> list[str]:
    """Differences between two KPI result sets (empty when equal).

    Counts and keys must match exactly; ratios and sums within ``rtol`` (float sums may be
    added in another order by another engine).
    """
    diffs: list[str] = []
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            diffs.append(f"{name}: only in one result")
            continue
        x, y = a[name], b[name]
        if list(x.columns) != list(y.columns):
            diffs.append(f"{name}: columns {list(x.columns)} != {list(y.columns)}")
            continue
        if len(x) != len(y):
            diffs.append(f"{name}: {len(x)} rows != {len(y)} rows")
            continue
        for c in x.columns:
            u, v = x[c].to_numpy(), y[c].to_numpy()
            if u.dtype.kind == "f" or v.dtype.kind == "f":
                u, v = u.astype(float), v.astype(float)
                ok = np.isclose(u, v, rtol=rtol, atol=0.0, equal_nan=True)
            else:
                ok = u == v
            if not np.all(ok):
                r = int(np.flatnonzero(~np.asarray(ok))[0])
                diffs.append(f"{name}.{c}: row {r}: {_fmt(u[r])} != {_fmt(v[r])}")
    return diffs


def _fmt(v: object) -> str:
    return repr(float(v)) if isinstance(v, float) and not math.isnan(v) else repr(v)


def _q(p: object) -> str:
    return str(p).replace("'", "''")
