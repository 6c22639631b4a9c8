"""Retention cohorts: users grouped by the UTC week (Monday) of their first event ever.

A user's first-seen time is their first event in the store's history (not just the
window); users first seen inside the scope are reported, by the week of that event.

- ``dN`` (N in 1, 7, 30): share of the cohort active on day N after their first-seen
  day (exactly that UTC day), counted only once the whole cohort could have reached it
  by the scope's end (else NaN).
- ``weekN``: share of the cohort active in week N after its first-seen week (week 0
  is 100 %), shown while that week has started before the scope's end.

A cohort smaller than ``k`` users is blanked and marked.
"""

from __future__ import annotations

import pandas as pd

from feedwise.analytics.scope import Scope
from feedwise.analytics.suppression import suppress

DAY_MARKS: tuple[int, ...] = (1, 7, 30)


def _first_seen_sql() -> str:
    return """first AS (SELECT user_id, first_ts,
                            CAST(date_trunc('day', first_ts) AS DATE) AS first_day,
                            CAST(date_trunc('week', first_ts) AS DATE) AS cohort
                     FROM user_span),
              act AS (SELECT user_id, day FROM user_days)"""


def day_retention(scope: Scope, marks: tuple[int, ...] = DAY_MARKS) -> pd.DataFrame:
    """D1/D7/D30 (or ``marks``) return rates per weekly cohort.

    Columns: ``cohort`` (week start), ``users``, ``d<N>`` for each mark, ``suppressed``.
    """
    cols = ", ".join(
        f"count(DISTINCT a.user_id) FILTER (WHERE a.day = f.first_day + {n}) "
        f"/ count(DISTINCT f.user_id)::DOUBLE AS d{n}, "
        f"max(f.first_day) + {n} AS _last_{n}" for n in marks)
    df = scope.query(f"""WITH {_first_seen_sql()}
        SELECT f.cohort, count(DISTINCT f.user_id) AS users, {cols}
        FROM first f LEFT JOIN act a ON a.user_id = f.user_id
        WHERE f.first_ts >= ? GROUP BY f.cohort ORDER BY f.cohort""",
                      [scope.start])
    last_day = (pd.Timestamp(scope.end) - pd.Timedelta(microseconds=1)).tz_localize(None)
    last_day = last_day.normalize()
    for n in marks:
        # a cohort's mark is only defined once its latest member could have returned
        immature = pd.to_datetime(df[f"_last_{n}"]) > last_day
        df[f"d{n}"] = df[f"d{n}"].astype("float64").mask(immature)
        df = df.drop(columns=f"_last_{n}")
    return suppress(df, "users", scope.k)


def week_retention(scope: Scope, max_weeks: int = 12) -> pd.DataFrame:
    """Week-N return rates: one row per cohort, columns ``week0`` … ``week<max_weeks>``.

    A cell is NaN when week N of that cohort starts after the scope's end.
    """
    df = scope.query(f"""WITH {_first_seen_sql()},
        w AS (SELECT f.cohort, f.user_id,
                     CAST(date_diff('day', f.cohort, CAST(date_trunc('week', a.day) AS DATE)) / 7
                          AS INTEGER) AS week
              FROM first f JOIN act a ON a.user_id = f.user_id
              WHERE f.first_ts >= ?)
        SELECT cohort, week, count(DISTINCT user_id) AS active FROM w
        WHERE week <= {int(max_weeks)} GROUP BY ALL""",
                      [scope.start])
    if df.empty:
        return pd.DataFrame(columns=["cohort", "users", "suppressed"])
    df["cohort"] = pd.to_datetime(df["cohort"])
    mat = df.pivot_table(index="cohort", columns="week", values="active", fill_value=0)
    sizes = mat[0]
    end = pd.Timestamp(scope.end).tz_localize(None)
    rates = mat.div(sizes, axis=0)
    rates = rates.reindex(columns=range(max_weeks + 1), fill_value=0.0)
    for w in rates.columns:
        started = rates.index + pd.Timedelta(days=7 * int(w)) < end
        rates[w] = rates[w].where(started)
    rates.columns = [f"week{w}" for w in rates.columns]
    out = rates.reset_index()
    out.insert(1, "users", sizes.to_numpy())
    out = out.dropna(axis=1, how="all")
    return suppress(out, "users", scope.k)
