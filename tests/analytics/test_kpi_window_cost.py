"""The cheaper KPIs of a never-opened window give the same figures, to the last bit, as
the forms they replace: the sessions cut in numpy from one sorted read (not three window
functions), the consent filter as an anti join (not a correlated NOT EXISTS), fewer
statements per summary, the rates of a series column-wise, and suppression of all
columns at once."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from analytics_tiny import START

from feedwise.analytics import kpis
from feedwise.analytics.scope import Scope, sessions_sql
from feedwise.analytics.sessions import session_summary_sql
from feedwise.analytics.suppression import suppress

KINDS = ["impression", "ad_impression", "click", "like", "comment", "share", "save", "hide",
         "report", "dwell", "ad_click", "conversion", "purchase"]
WINDOWS = [(0, 10), (0.5, 2.25), (3, 4), (9.9, 12), (20, 21)]  # days from START


@pytest.fixture(scope="module")
def world():
    """Events of 30 users over ten days (ties, gaps at and around the 30-minute rule),
    four users without analytics consent, one without a users row."""
    from feedwise.store import EventStore

    store = EventStore(":memory:")
    rng = np.random.default_rng(7)
    n = 3000
    gaps = rng.choice([0, 0, 5, 60, 600, 1799, 1800, 1801, 7200, 20000], size=n)
    ts = pd.Timestamp(START) + pd.to_timedelta(np.cumsum(gaps) % (10 * 86400), unit="s")
    users = rng.integers(0, 30, size=n)
    kinds = rng.choice(KINDS, size=n)
    rows = []
    for i in range(n):
        row = {"event_id": f"e{i}", "user_id": f"u{users[i]}", "item_id": f"p{i % 40}",
               "kind": str(kinds[i]), "ts": ts[i].isoformat()}
        if kinds[i] == "dwell":
            row["dwell_ms"] = int(rng.integers(100, 90_000))
        if kinds[i] in ("ad_impression", "ad_click", "conversion"):
            row["value"] = float(rng.uniform(0.001, 3.0))
        rows.append(row)
    store.add_events(rows)
    store.upsert_users([{"user_id": f"u{u}",
                         "consent": {"analytics": u not in (3, 11, 12, 27)}}
                        for u in range(29)])  # u29 has no row: it counts as consenting
    yield store
    store.close()


def scopes(store, k: int = 1):
    for a, b in WINDOWS:
        with Scope(store, START + timedelta(days=a), START + timedelta(days=b), k=k) as s:
            yield s


def test_sessions_cut_in_numpy_are_the_window_functions_rows(world):
    for s in scopes(world):
        for gap in (30.0, 5.0, 240.0):
            name = s.sessions_table(gap)
            s.cur.execute(f"CREATE OR REPLACE TEMP TABLE ref AS {sessions_sql(gap)}")
            got = s.query(f"SELECT * FROM {name} ORDER BY user_id, start")
            want = s.query("SELECT * FROM ref ORDER BY user_id, start")
            pd.testing.assert_frame_equal(got, want, check_exact=True)
            assert dict(got.dtypes) == dict(want.dtypes)
    with Scope(world, START - timedelta(days=9), START - timedelta(days=8), k=1) as s:
        assert s.query(f"SELECT count(*) AS n FROM {s.sessions_table()}")["n"][0] == 0


def test_large_windows_keep_the_window_functions(world, monkeypatch):
    from feedwise.analytics import scope as scope_mod

    with Scope(world, START, START + timedelta(days=10), k=1) as s:
        want = s.query(f"SELECT * FROM {s.sessions_table()} ORDER BY user_id, start")
    monkeypatch.setattr(scope_mod, "NUMPY_SESSIONS_MAX", 10)
    monkeypatch.setattr(scope_mod, "build_sessions", None)  # not called past the bound
    with Scope(world, START, START + timedelta(days=10), k=1) as s:
        got = s.query(f"SELECT * FROM {s.sessions_table()} ORDER BY user_id, start")
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_the_consent_anti_join_keeps_the_rows_not_exists_kept(world):
    no_row = seen = 0
    for s in scopes(world):
        want = s.cur.execute(
            "SELECT count(*) FROM events e WHERE e.ts >= ? AND e.ts < ? AND NOT EXISTS "
            "(SELECT 1 FROM users u WHERE u.user_id = e.user_id AND "
            "u.consent_analytics = false)", [s.start, s.end]).fetchone()[0]
        assert s.event_count() == want
        seen += want
        assert s.scalar("SELECT count(*) FROM ev WHERE user_id IN ('u3', 'u11')") == 0
        no_row += s.scalar("SELECT count(*) FROM ev WHERE user_id = 'u29'")
    assert seen > 0 and no_row > 0  # a user with no users row counts as consenting


def _reference_summary(s: Scope) -> dict[str, float]:
    """kpi_summary as it was: one statement per part, the sessions by window functions."""
    sel = ", ".join(f"{sql} AS {name}" for name, sql in kpis._COUNTS.items())
    c = s.query(f"SELECT {sel} FROM ev").iloc[0].to_dict()
    money = s.query("SELECT coalesce(sum(cost), 0) AS revenue, "
                    "coalesce(sum(conv_value), 0) AS conv_value FROM ad_ev").iloc[0]
    c.update(revenue=float(money["revenue"]), conv_value=float(money["conv_value"]))
    c = {k: float(v) if v is not None and not pd.isna(v) else float("nan")
         for k, v in c.items()}
    s.cur.execute(f"CREATE OR REPLACE TEMP TABLE ref AS {sessions_sql(30.0)}")
    row = s.query(session_summary_sql("ref")).iloc[0]
    users = int(row["users"])
    sess = {"sessions": float(row["sessions"]), "avg_length_s": row["avg_length_s"],
            "median_length_s": row["median_length_s"], "avg_depth": row["avg_depth"],
            "avg_events": row["avg_events"],
            "sessions_per_user": row["sessions"] / users if users else float("nan")}
    if users < s.k:
        sess = {key: float("nan") for key in sess}
    out = {**kpis.active_users(s), **{k: float(v) for k, v in sess.items()}}
    out.update(kpis._rates(c))
    out.update(avg_dwell_s=c["avg_dwell_s"], revenue=c["revenue"], users=c["users"],
               impressions=c["impressions"], ad_impressions=c["ad_impressions"],
               conv_value=c["conv_value"])
    if c["users"] < s.k:
        out = {key: float("nan") for key in out}
    return out


@pytest.mark.parametrize("k", [1, 20, 100])
def test_summary_in_fewer_statements_is_the_same_to_the_last_bit(world, k):
    for s in scopes(world, k):
        got, want = kpis.kpi_summary(s), _reference_summary(s)
        assert list(got) == list(want)
        assert repr(got) == repr(want)  # NaN where NaN, every float bit for bit


def test_series_rates_column_wise_are_the_rows_rates(world):
    for s in scopes(world, k=3):
        for grain in ("hour", "day", "week"):
            df = kpis.kpi_series(s, grain)
            if df.empty:
                continue
            base = df.rename(columns={"active_users": "users"})
            for i, row in enumerate(base.to_dict(orient="records")):
                if row["suppressed"]:
                    continue
                for name, v in kpis._rates(row).items():
                    assert repr(float(df[name].iloc[i])) == repr(v), (grain, name)
    zero = pd.DataFrame({c: [0, 3] for c in ("impressions", "ad_impressions", "clicks",
                                              "likes", "comments", "shares", "saves",
                                              "hides", "reports", "ad_clicks")})
    zero["revenue"] = [0.0, 1.5]
    got = kpis._rates_frame(zero)
    assert got.iloc[0].isna().all()
    assert list(got.iloc[1]) == list(kpis._rates(zero.iloc[1].to_dict()).values())


def test_suppression_of_all_columns_at_once_is_column_by_column():
    df = pd.DataFrame({"g": list("abcde"), "users": [0, 2, 5, 12, 3],
                       "n": [1, 2, 3, 4, 5], "x": [0.5, 1.5, np.nan, 2.5, 3.5],
                       "flag": [True, False, True, False, True]})
    for k, cols in ((4, None), (4, ["n", "x"]), (1, None), (20, ["users"])):
        got = suppress(df, "users", k, cols)
        want = df.copy()
        small = (want["users"] > 0) & (want["users"] < k)
        for c in (cols if cols is not None else ["users", "n", "x", "flag"]):
            if small.any():
                want[c] = want[c].astype("float64")
                want.loc[small, c] = np.nan
        want["suppressed"] = small.to_numpy()
        pd.testing.assert_frame_equal(got, want, check_exact=True)
