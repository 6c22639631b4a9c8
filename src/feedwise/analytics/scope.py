"""`Scope`: the slice of the store every analytics query reads.

A scope is a time window ``[start, end)`` over the store plus the privacy rules of
aggregates: events of users whose ``consent_analytics`` is false never enter it, and
``k`` is the smallest group a reported cell may describe (see
:mod:`feedwise.analytics.suppression`). Users with no row in ``users`` count as
consenting (consent defaults to granted, as in :class:`feedwise.schema.Consent`).

Every query of one scope runs on one private DuckDB cursor, on which these temporary
views (or tables, with ``materialize=True``) exist:

``ev``
    events of consenting users in ``[start, end)`` (columns :data:`EV_COLUMNS`, plus
    ``t``: the UTC wall-clock time as a naive timestamp, for fast hour/day parts).
``hist``
    events of consenting users before ``end`` (always a view).
``user_span``
    ``user_id``, ``first_ts``, ``last_ts`` over ``hist`` (first-seen, lifecycle).
``user_days``
    distinct ``user_id``, ``day`` (UTC date) of ``hist`` (retention).
``ad_ev``
    ``ev`` rows of ad kinds (``ad_impression``, ``ad_click``, ``conversion``) with their
    ``campaign_id`` (from the item, else ``context.campaign_id``), the ``cost`` the
    advertiser paid for the event and the ``conv_value`` it earned.

Money convention: an ad event's ``value`` is what the platform charged for it; where it
is missing, the campaign's bid prices it (``cpm``: ``bid / 1000`` per ad impression,
``cpc``: ``bid`` per ad click, ``cpa``: ``bid`` per conversion). A conversion's
``value`` is the advertiser's conversion value (for ROAS), never platform revenue.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from feedwise.errors import ConfigError
from feedwise.schema import EVENT_KINDS, utc
from feedwise.store import EventStore

AD_KINDS: tuple[str, ...] = ("ad_impression", "ad_click", "conversion")
#: Kinds that show an item (a session's depth counts them).
IMPRESSION_KINDS: tuple[str, ...] = ("impression", "ad_impression")
#: Funnel steps (name, event kinds that reach it), in order; see
#: :mod:`feedwise.analytics.funnels`.
STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("impression", ("impression", "ad_impression")),
    ("click", ("click", "ad_click")),
    ("engage", ("like", "comment", "share")),
    ("purchase", ("purchase", "conversion")),
)
#: Columns of ``ev`` (the event columns analytics read).
EV_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "kind", "ts", "dwell_ms", "value",
                               "surface")


_KIND_ENUM = "ENUM(" + ", ".join(f"'{k}'" for k in EVENT_KINDS) + ")"


def utc_wall(col: str) -> str:
    """SQL for the UTC wall-clock time (naive ``TIMESTAMP``) of a ``TIMESTAMPTZ`` column.

    Hour, weekday and day of a naive timestamp skip the time-zone machinery that
    ``TIMESTAMPTZ`` parts go through, which is many times faster on large scans.
    """
    return f"make_timestamp(epoch_us({col}))"


def _lit(ts: datetime) -> str:
    return f"TIMESTAMPTZ '{utc(ts).isoformat()}'"


def sessions_sql(gap_minutes: float = 30.0, source: str = "ev") -> str:
    """SQL yielding one row per session of ``source`` (see :mod:`feedwise.analytics.sessions`).

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


#: Windows of at most this many events have their sessions cut in numpy
#: (:func:`build_sessions`); larger ones by :func:`sessions_sql` (the same rows).
NUMPY_SESSIONS_MAX = 500_000


def build_sessions(cur: duckdb.DuckDBPyConnection, name: str, gap_minutes: float = 30.0,
                   source: str = "ev") -> None:
    """Create the temporary table ``name``: the rows of :func:`sessions_sql` over
    ``source``, cut in numpy from one sorted read of the events.

    A session starts at a user's first event and wherever ``epoch(ts)`` (seconds, as
    DuckDB's ``epoch`` computes them: microseconds / 1e6) is more than the gap after the
    previous event's; the table's ``length_s`` is computed by DuckDB as in the SQL. The
    same sessions as :func:`sessions_sql`, several times cheaper than its window
    functions on a window of a few thousand events.
    """
    imp = ", ".join(f"'{k}'" for k in IMPRESSION_KINDS)
    r = cur.execute(f"SELECT user_id, epoch_us(ts) AS us, kind IN ({imp}) AS imp "
                    f"FROM {source} ORDER BY user_id, ts").fetchnumpy()
    uid = np.asarray(r["user_id"], dtype=object)
    us = np.asarray(r["us"], dtype=np.int64)
    is_imp = np.asarray(r["imp"], dtype=bool)
    n = len(us)
    new_user = np.ones(n, dtype=bool)
    new_user[1:] = uid[1:] != uid[:-1]
    sec = us / 1e6
    first = new_user.copy()
    first[1:] |= (sec[1:] - sec[:-1]) > float(gap_minutes) * 60.0
    f = np.flatnonzero(first)
    last = np.append(f[1:] - 1, n - 1) if n else f
    imps = np.concatenate([[0], np.cumsum(is_imp, dtype=np.int64)])
    user_start = np.flatnonzero(new_user[f])  # index of each user's first session
    per_user = np.diff(np.append(user_start, len(f)))
    session_no = (np.arange(len(f)) - np.repeat(user_start, per_user) + 1).astype(np.int32)
    ts_type = pa.timestamp("us", tz="UTC")
    src = pa.table({"user_id": pa.array(uid[f].tolist(), pa.string()),
                    "session_no": pa.array(session_no, pa.int32()),
                    "start": pa.array(us[f], ts_type), "end": pa.array(us[last], ts_type),
                    "n_events": pa.array((last - f + 1).astype(np.int64), pa.int64()),
                    "depth": pa.array(imps[last + 1] - imps[f], pa.int64())})
    view = f"_src_{name}"
    cur.register(view, src)
    try:
        cur.execute(f"""CREATE OR REPLACE TEMP TABLE {name} AS
            SELECT user_id, session_no, start, "end", epoch("end") - epoch(start) AS length_s,
                   n_events, depth FROM {view}""")
    finally:
        cur.unregister(view)


class Scope:
    """Consenting users' events in ``[start, end)`` on a private cursor of ``store``.

    Args:
        store: An :class:`~feedwise.store.EventStore`.
        start: Inclusive start (tz-aware; naive is taken as UTC).
        end: Exclusive end.
        k: Smallest number of users a reported cell may describe (default 10).
        materialize: Copy the window into temporary tables once instead of filtering
            the events table on every query (faster when many sections read it).
    """

    def __init__(self, store: EventStore, start: datetime, end: datetime, *, k: int = 10,
                 materialize: bool = False) -> None:
        self._settle(store, start, end, k, materialize)
        self.cur: duckdb.DuckDBPyConnection = store.cursor()
        self._built: set[str] = set()
        self._create()

    def _settle(self, store: EventStore, start: datetime, end: datetime, k: int,
                materialize: bool) -> None:
        """Check and keep the window, ``k`` and the store (every scope's first step)."""
        self.start, self.end = utc(start), utc(end)
        if self.end <= self.start:
            raise ConfigError(f"empty window: end {self.end.isoformat()} is not after start "
                              f"{self.start.isoformat()}; pass --from earlier than --to")
        if k < 1:
            raise ConfigError(f"k must be >= 1, not {k}")
        self.store, self.k, self.materialize = store, int(k), materialize

    @property
    def days(self) -> float:
        """Length of the window in days."""
        return (self.end - self.start) / timedelta(days=1)

    def shifted(self, delta: timedelta) -> Scope:
        """The same scope moved by ``delta`` (e.g. ``-(end - start)`` for the previous period)."""
        return Scope(self.store, self.start + delta, self.end + delta, k=self.k,
                     materialize=self.materialize)

    def previous(self) -> Scope:
        """The period of equal length just before this one."""
        return self.shifted(-(self.end - self.start))

    def _create(self) -> None:
        for sql in self._view_sql().values():
            self.cur.execute(sql)

    def _view_sql(self) -> dict[str, str]:
        """The statements creating the scope's views (or tables), by name, in an order in
        which each reads only those before it."""
        kind = "TABLE" if self.materialize else "VIEW"
        # events of users who withheld analytics consent left out: an anti join, the rows
        # NOT EXISTS (SELECT 1 FROM users u WHERE u.user_id = e.user_id AND
        # u.consent_analytics = false) keeps (a NULL user_id matches no user, so it stays),
        # planned as one hash join instead of a decorrelated subquery on every read
        events = ("events e ANTI JOIN (SELECT user_id FROM users "
                  "WHERE consent_analytics = false) nc ON nc.user_id = e.user_id")
        window = f"e.ts >= {_lit(self.start)} AND e.ts < {_lit(self.end)}"
        out: dict[str, str] = {}
        out["hist"] = (f"""CREATE OR REPLACE TEMP VIEW hist AS SELECT e.* FROM {events}
            WHERE e.ts < {_lit(self.end)}""")
        # only the columns the analytics read, so materialising stays cheap; a copy holds
        # the kind as an ENUM, which the many per-kind filters compare faster than text
        cols = ", ".join(f"CAST(e.kind AS {_KIND_ENUM}) AS kind" if col == "kind" and
                         self.materialize else f"e.{col}" for col in EV_COLUMNS)
        cols += f", {utc_wall('e.ts')} AS t"
        out["ev"] = (f"""CREATE OR REPLACE TEMP {kind} ev AS
            SELECT {cols} FROM {events} WHERE {window}""")
        out["user_span"] = (f"""CREATE OR REPLACE TEMP {kind} user_span AS
            SELECT user_id, min(ts) AS first_ts, max(ts) AS last_ts FROM hist
            GROUP BY user_id""")
        out["user_days"] = (f"""CREATE OR REPLACE TEMP {kind} user_days AS
            SELECT DISTINCT user_id, CAST({utc_wall('ts')} AS DATE) AS day FROM hist""")
        kinds = ", ".join(f"'{k}'" for k in AD_KINDS)
        camp = "coalesce(i.campaign_id, try(json_extract_string(e.context, '$.campaign_id')))"
        out["ad_ev"] = (f"""CREATE OR REPLACE TEMP {kind} ad_ev AS
            SELECT {', '.join('e.' + col for col in EV_COLUMNS)}, {utc_wall('e.ts')} AS t,
                   {camp} AS campaign_id,
                   CASE WHEN e.kind = 'conversion' THEN
                            CASE WHEN lower(c.bid_model) = 'cpa' THEN c.bid ELSE 0 END
                        ELSE coalesce(e.value, CASE
                            WHEN lower(c.bid_model) = 'cpm' AND e.kind = 'ad_impression'
                                THEN c.bid / 1000
                            WHEN lower(c.bid_model) = 'cpc' AND e.kind = 'ad_click' THEN c.bid
                            ELSE 0 END) END AS cost,
                   CASE WHEN e.kind = 'conversion' THEN coalesce(e.value, 0) ELSE 0 END
                       AS conv_value
            FROM {events}
            LEFT JOIN items i ON i.item_id = e.item_id
            LEFT JOIN campaigns c ON c.campaign_id = {camp}
            WHERE {window} AND e.kind IN ({kinds})""")
        return out

    def sessions_table(self, gap_minutes: float = 30.0) -> str:
        """Name of a temporary table of this scope's sessions (built on first use).

        See :func:`sessions_sql` for its columns: the same rows, cut from the events
        sorted once (:func:`build_sessions`) when the window holds at most
        :data:`NUMPY_SESSIONS_MAX` events.
        """
        name = f"sess_{int(round(gap_minutes * 60))}"
        if name not in self._built:
            # the window's events (consenting or not: an upper bound) decide how: a
            # sorted read into numpy up to NUMPY_SESSIONS_MAX, DuckDB's window functions
            # beyond (they need no Python object per event)
            n = self.cur.execute("SELECT count(*) FROM events WHERE ts >= ? AND ts < ?",
                                 [self.start, self.end]).fetchone()[0]
            if n <= NUMPY_SESSIONS_MAX:
                build_sessions(self.cur, name, gap_minutes)
            else:
                self.cur.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS "
                                 f"{sessions_sql(gap_minutes)}")
            self._built.add(name)
        return name

    def pairs_table(self) -> str:
        """Name of a temporary table with one row per (user, item) of ``ev`` (built once).

        Columns: ``user_id``, ``item_id``, ``surface`` (of the first impression, else
        ``'unknown'``), ``f0``..``f3`` (the pair has an event of funnel step 0..3, see
        :data:`STEPS`), ``impressions`` (organic), ``engagements`` (click, like, comment,
        share, save), ``shares`` and ``organic`` (the pair has an event other than an ad
        impression or ad click). Funnels and top content share it, so the big group-by over
        events runs once per report.
        """
        if "pairs" not in self._built:
            def kinds(ks) -> str:
                return ", ".join(f"'{k}'" for k in ks)

            flags = ", ".join(f"bool_or(kind IN ({kinds(ks)})) AS f{i}"
                              for i, (_, ks) in enumerate(STEPS))
            self.cur.execute(f"""CREATE OR REPLACE TEMP TABLE pairs AS
                SELECT user_id, item_id,
                       coalesce(arg_min(surface, ts) FILTER (WHERE kind IN
                                ({kinds(STEPS[0][1])})), 'unknown') AS surface,
                       {flags},
                       count(*) FILTER (WHERE kind = 'impression') AS impressions,
                       count(*) FILTER (WHERE kind IN ('click', 'like', 'comment', 'share',
                                                      'save')) AS engagements,
                       count(*) FILTER (WHERE kind = 'share') AS shares,
                       bool_or(kind NOT IN ('ad_impression', 'ad_click')) AS organic
                FROM ev GROUP BY user_id, item_id""")
            self._built.add("pairs")
        return "pairs"

    def event_count(self) -> int:
        """Number of consenting users' events in the window (rows of ``ev``)."""
        return int(self.scalar("SELECT count(*) FROM ev"))

    def query(self, sql: str, params: list | tuple | None = None) -> pd.DataFrame:
        """Run ``sql`` (which may read ``ev``, ``hist``, ``ad_ev``) and return a DataFrame."""
        return self.cur.execute(sql, list(params or [])).df()

    def row(self, sql: str, params: list | tuple | None = None) -> dict:
        """Run ``sql`` and return its first row as a dict of Python values (``{}`` when
        empty): for one-row results, without a DataFrame."""
        res = self.cur.execute(sql, list(params or []))
        names = [d[0] for d in res.description]
        first = res.fetchone()
        return dict(zip(names, first, strict=True)) if first is not None else {}

    def scalar(self, sql: str, params: list | tuple | None = None):
        """Run ``sql`` and return the first column of its first row (``None`` when empty)."""
        row = self.cur.execute(sql, list(params or [])).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        self.cur.close()

    def __enter__(self) -> Scope:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
