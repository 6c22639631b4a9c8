"""Content insight: top posts, tags and authors; best time to post; trending.

Engagements are clicks, likes, comments, shares and saves. A row's ``users`` is the
number of distinct users with any event on it; rows below ``k`` are blanked and marked
(and left out of the top lists).
"""

from __future__ import annotations

import pandas as pd

from feedwise.analytics.scope import Scope, utc_wall
from feedwise.analytics.suppression import suppress, suppress_matrix
from feedwise.errors import ConfigError

ENGAGEMENTS = "('click', 'like', 'comment', 'share', 'save')"
WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

_AGG = f"""count(*) FILTER (WHERE e.kind = 'impression') AS impressions,
           count(*) FILTER (WHERE e.kind IN {ENGAGEMENTS}) AS engagements,
           count(*) FILTER (WHERE e.kind = 'share') AS shares,
           count(DISTINCT e.user_id) AS users"""


def _finish(df: pd.DataFrame, k: int, n: int) -> pd.DataFrame:
    df["engagement_rate"] = (df["engagements"] / df["impressions"]).where(df["impressions"] > 0)
    df = suppress(df, "users", k)
    return df[~df["suppressed"]].head(n).reset_index(drop=True)


_PAIR_AGG = """sum(p.impressions) AS impressions, sum(p.engagements) AS engagements,
                sum(p.shares) AS shares"""


def top_posts(scope: Scope, n: int = 10) -> pd.DataFrame:
    """The ``n`` organic posts with most engagements (title, author, counts, rate)."""
    df = scope.query(f"""SELECT p.item_id, any_value(i.title) AS title,
            any_value(i.author_id) AS author_id, {_PAIR_AGG}, count(*) AS users
        FROM {scope.pairs_table()} p LEFT JOIN items i ON i.item_id = p.item_id
        WHERE coalesce(i.kind, 'post') <> 'ad' AND p.organic
        GROUP BY p.item_id ORDER BY engagements DESC, users DESC, p.item_id""")
    return _finish(df, scope.k, n)


def top_tags(scope: Scope, n: int = 10) -> pd.DataFrame:
    """The ``n`` tags whose posts drew most engagements."""
    df = scope.query(f"""SELECT t.tag, {_PAIR_AGG}, count(DISTINCT p.user_id) AS users
        FROM {scope.pairs_table()} p
        JOIN (SELECT item_id, unnest(tags) AS tag FROM items
              WHERE coalesce(kind, 'post') <> 'ad') t ON t.item_id = p.item_id
        GROUP BY t.tag ORDER BY engagements DESC, users DESC, t.tag""")
    return _finish(df, scope.k, n)


def top_authors(scope: Scope, n: int = 10) -> pd.DataFrame:
    """The ``n`` authors whose posts drew most engagements (with their post count)."""
    df = scope.query(f"""SELECT i.author_id, count(DISTINCT p.item_id) AS posts, {_PAIR_AGG},
            count(DISTINCT p.user_id) AS users
        FROM {scope.pairs_table()} p JOIN items i ON i.item_id = p.item_id
        WHERE i.author_id IS NOT NULL AND coalesce(i.kind, 'post') <> 'ad'
        GROUP BY i.author_id ORDER BY engagements DESC, users DESC, i.author_id""")
    return _finish(df, scope.k, n)


def best_time(scope: Scope) -> pd.DataFrame:
    """Engagement per impression by the weekday × hour (UTC) a post was published.

    A post's publish time is its ``created_at``; events on posts without one fall back to
    the event's own time. Returns a 7 × 24 matrix (index: weekday names, columns: hours)
    with cells of fewer than ``k`` users (or no impressions) set to NaN.
    """
    pub = f"coalesce({utc_wall('i.created_at')}, e.t)"
    df = scope.query(f"""SELECT isodow({pub}) - 1 AS weekday, hour({pub}) AS hour, {_AGG}
        FROM ev e LEFT JOIN items i ON i.item_id = e.item_id
        WHERE coalesce(i.kind, 'post') <> 'ad' AND e.kind NOT LIKE 'ad_%'
        GROUP BY ALL""")
    idx, cols = range(7), range(24)
    imps = df.pivot_table(index="weekday", columns="hour", values="impressions",
                          aggfunc="sum").reindex(index=idx, columns=cols)
    eng = df.pivot_table(index="weekday", columns="hour", values="engagements",
                         aggfunc="sum").reindex(index=idx, columns=cols)
    users = df.pivot_table(index="weekday", columns="hour", values="users",
                           aggfunc="sum").reindex(index=idx, columns=cols).fillna(0)
    rate = (eng / imps.where(imps > 0)).astype("float64")
    out = suppress_matrix(rate, users, scope.k)
    out.index = list(WEEKDAYS)
    return out


def activity_heatmap(scope: Scope) -> pd.DataFrame:
    """Distinct active users by weekday × hour (UTC) of their events (7 × 24, <k -> NaN)."""
    df = scope.query("""SELECT isodow(t) - 1 AS weekday, hour(t) AS hour,
            count(DISTINCT user_id) AS users FROM ev GROUP BY ALL""")
    users = df.pivot_table(index="weekday", columns="hour", values="users",
                           aggfunc="sum").reindex(index=range(7), columns=range(24)).fillna(0)
    out = suppress_matrix(users.astype("float64"), users, scope.k)
    out.index = list(WEEKDAYS)
    return out


def trending(scope: Scope, recent_days: float = 1.0, n: int = 10,
             by: str = "tag") -> pd.DataFrame:
    """Tags (``by="tag"``) or posts (``by="item"``) whose engagement is speeding up.

    Velocity is engagements per day in the last ``recent_days`` of the window against
    the per-day baseline over the rest of it: ``lift = (recent + 1) / (baseline + 1)``
    (the +1 keeps a brand-new tag with two likes from topping the list). Rows whose recent
    engagement comes from fewer than ``k`` users (or none) are left out.
    """
    if by not in ("tag", "item"):
        raise ConfigError(f"by must be 'tag' or 'item', not {by!r}")
    if not recent_days > 0:
        raise ConfigError(f"recent_days must be > 0, not {recent_days}")
    days = scope.days
    if days <= recent_days:
        recent_days = days / 2
    cut = scope.end - pd.Timedelta(days=recent_days)
    key = "t.tag" if by == "tag" else "e.item_id"
    src = ("JOIN (SELECT item_id, unnest(tags) AS tag FROM items) t ON t.item_id = e.item_id"
           if by == "tag" else "")
    df = scope.query(f"""SELECT {key} AS key,
            count(*) FILTER (WHERE e.ts >= ?) / {recent_days}::DOUBLE AS recent_per_day,
            count(*) FILTER (WHERE e.ts < ?) / {days - recent_days}::DOUBLE AS baseline_per_day,
            count(DISTINCT e.user_id) FILTER (WHERE e.ts >= ?) AS users
        FROM ev e {src} WHERE e.kind IN {ENGAGEMENTS} GROUP BY 1""", [cut, cut, cut])
    df = df.rename(columns={"key": by})
    df["lift"] = (df["recent_per_day"] + 1) / (df["baseline_per_day"] + 1)
    df = df[df["users"] >= scope.k].sort_values(["lift", by], ascending=[False, True])
    return df.head(n).reset_index(drop=True)
