"""What each console page shows, computed by the functions the JSON routes and the report
call (no second implementation of a KPI, a feed or a campaign write).

Each page function takes the service state and the page's query (a dict of strings: the
filters in the page's URL) and returns a :class:`Page`: tables (each exportable as CSV),
charts (Plotly figures, drawn by the page's script with the Plotly bundle ``/dashboard``
serves) and notices.
"""

from __future__ import annotations

import copy
import json
import math
import os
import queue
import threading
import time
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from feedwise.analytics.alerts import METRICS, alerts_frame
from feedwise.analytics.campaigns import campaign_pacing, campaign_results, frequency_distribution
from feedwise.analytics.kpis import kpi_change, kpi_summary
from feedwise.analytics.listening import (
    comments_from_scope,
    default_keywords,
    score_comments,
    sentiment_table,
    share_of_voice,
    top_comments,
)
from feedwise.analytics.profiles import read_profiles
from feedwise.analytics.segments import segment_table
from feedwise.analytics.suppression import suppress
from feedwise.errors import DataError, FeedwiseError
from feedwise.evidence.abtest import analyze_experiment
from feedwise.evidence.rollout import Arm, config_with, read_experiments
from feedwise.feed.config import FeedConfig
from feedwise.feed.engine import FeedEngine
from feedwise.feed.types import Feed, FeedRequest
from feedwise.report.graph import rank_creators, scored_creators
from feedwise.report.timing import timing_section
from feedwise.server.routes import campaigns as campaign_routes
from feedwise.server.routes import models as model_routes
from feedwise.server.routes import reports as report_routes
from feedwise.server.routes.listening import find_alerts
from feedwise.server.routes.messages import assistant

from . import memo
from .memo import MemoScope

#: Markers and dashes given to traces in turn, so no chart tells series apart by colour
#: alone (the legend names each, and each has its own symbol or dash).
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "star", "cross", "hexagon")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
PATTERNS = ("", "/", "x", ".", "\\", "+", "-", "|")
KPIS_SHOWN = ("users", "dau", "wau", "mau", "impressions", "clicks", "ctr",
              "engagement_rate", "hide_rate", "ad_impressions", "ad_ctr", "ad_load",
              "revenue", "ecpm")


@dataclass
class Table:
    name: str
    title: str
    frame: pd.DataFrame
    note: str = ""


@dataclass
class Chart:
    name: str
    title: str
    #: A Plotly figure as plain data (``{"data": [...], "layout": {...}}``).
    figure: dict
    #: One sentence saying what the chart shows (its accessible description).
    summary: str

    def json(self) -> str:
        return json.dumps(self.figure, default=str, allow_nan=False)


def values(v: Any) -> list:
    """A column as JSON-ready values (NaN and NaT as ``None``, numpy as Python)."""
    out = []
    for x in (v.tolist() if hasattr(v, "tolist") else list(v)):
        if x is None or (isinstance(x, float) and not math.isfinite(x)) or x is pd.NaT:
            out.append(None)
        elif hasattr(x, "isoformat"):
            out.append(x.isoformat())
        elif isinstance(x, np.generic):
            out.append(x.item())
        else:
            out.append(x)
    return out


def trace(kind: str, x: Any, y: Any, name: str, **kw: Any) -> dict:
    """One Plotly trace (``scatter`` or ``bar``) as data."""
    return {"type": kind, "x": values(x), "y": values(y), "name": name, **kw}


class Fig(dict):
    """A Plotly figure as plain data, built with ``add_scatter``/``add_bar`` like
    ``plotly.graph_objects.Figure`` (without its validation, which costs more than the
    page's queries)."""

    def __init__(self) -> None:
        super().__init__(data=[], layout={})

    def add_scatter(self, x: Any, y: Any, name: str, **kw: Any) -> None:
        self["data"].append(trace("scatter", x, y, name, **kw))

    def add_bar(self, x: Any, y: Any, name: str, **kw: Any) -> None:
        self["data"].append(trace("bar", x, y, name, **kw))

    def update_layout(self, **kw: Any) -> None:
        self["layout"].update(kw)


@dataclass
class Page:
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def table(self, name: str) -> Table | None:
        return next((t for t in self.tables if t.name == name), None)


# ---------------------------------------------------------------------------- helpers
#: Seconds an analytics result (KPIs of a window, alerts, listening, best time, creators)
#: is served as fresh for the same arguments. An older one (up to :data:`STALE_S`) is
#: served at once while the console's one background thread computes the new one, so
#: pages polled by several browsers run each query at most once per period and never wait
#: on it. Live views (the feed inspector, campaign and model lists) are never cached, and a
#: change made through the console clears the cache. Set ``FEEDWISE_CONSOLE_TTL_S``.
CACHE_TTL_S = float(os.environ.get("FEEDWISE_CONSOLE_TTL_S", "30"))
memo.configure(lambda: CACHE_TTL_S)  # the analytics' SQL per window (memo.py): as fresh
STALE_S = 3600.0
#: The background thread's budget: after a computation that took ``t`` seconds it rests
#: ``t * (1 / DUTY - 1)`` seconds, so the console's background analytics hold at most this
#: share of one core's time (feed requests share the process and its cores).
DUTY = float(os.environ.get("FEEDWISE_CONSOLE_DUTY", "0.25"))
#: Serving comes first: a background computation waits while the process uses more than
#: this many cores (feed requests being served), for at most :data:`MAX_DEFER_S` seconds,
#: and the pages show the figures they have meanwhile. ``FEEDWISE_CONSOLE_BUSY_CORES``.
BUSY_CORES = float(os.environ.get("FEEDWISE_CONSOLE_BUSY_CORES", "0.3"))
MAX_DEFER_S = 120.0
#: Compute the default views in the background from the first console request (the login
#: page): a page opened after logging in is then served from the cache. ``0`` turns it off.
WARM = os.environ.get("FEEDWISE_CONSOLE_WARM", "1") != "0"
_cache: dict[tuple, tuple[float, Any]] = {}
_inflight: dict[tuple, threading.Event] = {}
_queued: set[tuple] = set()
_jobs: queue.Queue = queue.Queue()
_worker: threading.Thread | None = None
_warmed: set[int] = set()
_owners: dict[int, weakref.ref] = {}
_generation = 0
_cache_lock = threading.Lock()


def cached(state: Any, key: tuple, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, reused per ``key`` (see :data:`CACHE_TTL_S`).

    A result being computed (by the background thread, or another request) is waited
    for, not computed twice."""
    full = (id(state), *key)
    while True:
        now = time.monotonic()
        with _cache_lock:
            _owned_by(state)
            hit = _cache.get(full)
            age = now - hit[0] if hit is not None else None
            if age is not None and age < CACHE_TTL_S:
                return hit[1]
            if age is not None and age < STALE_S:
                _submit_locked(full, lambda: fn(*args, **kwargs))
                return hit[1]
            event = _inflight.get(full)
            if event is None:
                event = _inflight[full] = threading.Event()
                break
        event.wait(120.0)  # computed elsewhere: take its result (or compute on failure)
        with _cache_lock:
            if full not in _cache and _inflight.get(full) is event:
                _inflight.pop(full, None)
    try:
        gen, t0, prev = _generation, time.monotonic(), memo.begin()
        try:
            value = fn(*args, **kwargs)
        finally:
            oldest = memo.end(prev)
        _store(full, value, gen, min(t0, oldest))
        return value
    finally:
        with _cache_lock:
            _inflight.pop(full, None)
        event.set()


#: Two threads for the independent parts of one page (the overview's comparison period, the
#: audience's best time and creators): their SQL runs while the request's own thread works
#: (DuckDB releases the GIL), so a page with new filters waits about for its longest part.
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="feedwise-console-page")


#: The default sentiment analyser with the scores of the texts it has read (a comment is
#: scored once, whatever window and page it shows in; memo.ScoreMemo).
SCORES = memo.ScoreMemo()


def ahead(state: Any, key: tuple, fn: Any, *args: Any, **kwargs: Any) -> Future:
    """:func:`cached` started on the page pool; ``.result()`` takes it (or its error).
    On the background thread it runs in place (that thread keeps to its one-core budget)."""
    if threading.current_thread() is _worker:
        done: Future = Future()
        try:
            done.set_result(cached(state, key, fn, *args, **kwargs))
        except Exception as e:  # noqa: BLE001 - handed to .result(), as the pool would
            done.set_exception(e)
        return done
    return _pool.submit(cached, state, key, fn, *args, **kwargs)


def _owned_by(state: Any) -> None:
    """Forget results of an earlier service whose ``id`` this one reuses (the cache is
    keyed by the service's ``id``). Called holding the lock."""
    ref = _owners.get(id(state))
    if ref is not None and ref() is state:
        return
    for k in [k for k in _cache if k[0] == id(state)]:
        del _cache[k]
    _warmed.discard(id(state))
    try:
        _owners[id(state)] = weakref.ref(state)
    except TypeError:  # not weakly referable: keep the results (as before)
        pass


def _store(full: tuple, value: Any, gen: int, stamp: float) -> None:
    """Keep ``value`` unless the cache was cleared since it began (a console write),
    dated ``stamp``: when its computation began, or when the oldest memoised query
    result it used was computed (:mod:`.memo`), so its age counts from its oldest data."""
    with _cache_lock:
        if gen != _generation:
            return
        if len(_cache) > 256:
            _cache.clear()
        _cache[full] = (stamp, value)


def _submit_locked(full: tuple, job: Any) -> None:
    """Queue ``job`` (refreshing ``full``) for the background thread, once per key."""
    global _worker
    if full in _queued or full in _inflight:
        return
    _queued.add(full)
    _jobs.put((full, job))
    if _worker is None or not _worker.is_alive():
        _worker = threading.Thread(target=_work, name="feedwise-console-analytics",
                                   daemon=True)
        _worker.start()


def _work() -> None:
    """The console's background thread: one job at a time, within :data:`DUTY`."""
    while True:
        full, job = _jobs.get()
        _wait_for_quiet()
        t0 = time.monotonic()
        try:
            if full is None:
                job()  # a warm-up: runs pages, whose cached() calls fill the cache
            else:
                with _cache_lock:
                    event = _inflight.setdefault(full, threading.Event())
                try:
                    gen, t1, prev = _generation, time.monotonic(), memo.begin()
                    try:
                        value = job()
                    finally:
                        oldest = memo.end(prev)
                    _store(full, value, gen, min(t1, oldest))
                finally:
                    with _cache_lock:
                        _inflight.pop(full, None)
                    event.set()
        except Exception:  # noqa: BLE001 - the stale value stays; the next request retries
            pass
        finally:
            with _cache_lock:
                _queued.discard(full)
        if 0 < DUTY < 1:
            time.sleep(min(30.0, (time.monotonic() - t0) * (1 / DUTY - 1)))


def _wait_for_quiet() -> None:
    """Wait (up to :data:`MAX_DEFER_S`) until the process's CPU use over a quarter second
    (every thread: requests, the writer, DuckDB) is under :data:`BUSY_CORES`."""
    deadline = time.monotonic() + MAX_DEFER_S
    while time.monotonic() < deadline:
        c0, t0 = time.process_time(), time.monotonic()
        time.sleep(0.25)
        if (time.process_time() - c0) / max(time.monotonic() - t0, 1e-3) < BUSY_CORES:
            return


def warm(state: Any) -> None:
    """Compute the default view of each analytics page in the background, once per
    service (called on the first console request)."""
    if not WARM:
        return
    with _cache_lock:
        _owned_by(state)
        if id(state) in _warmed:
            return
        _warmed.add(id(state))

    def run() -> None:
        for fn in (overview, overview_alerts, campaigns, listening, audience):
            try:
                fn(state, {})
            except Exception:  # noqa: BLE001, S112 - a page that cannot show yet says so itself
                continue

    with _cache_lock:
        _submit_locked(None, run)


def _wkey(q: dict) -> tuple[str, str]:
    """The window as the page's URL gives it: a default window ("the last days up to the
    newest event") keeps its key while events arrive, so its stale result is shown while
    the new one is computed."""
    return (q.get("start") or "", q.get("end") or "")


def clear_cache() -> None:
    global _generation
    with _cache_lock:
        _cache.clear()
        _generation += 1
    memo.clear()


def parse_time(text: str | None, *, end_of_day: bool = False) -> datetime | None:
    """A date (``2024-03-01``) or an ISO time from a query; ``None`` when empty.

    Raises:
        DataError: Text that is neither.
    """
    if not text:
        return None
    try:
        t = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise DataError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO time") from None
    if t.tzinfo is None:
        t = t.tz_localize("UTC")
    if end_of_day and len(text) == 10:
        t = t + pd.Timedelta(days=1)
    return t.to_pydatetime().astimezone(UTC)


def _int(q: dict, name: str, default: int, lo: int, hi: int) -> int:
    try:
        v = int(q.get(name) or default)
    except ValueError:
        raise DataError(f"{name} must be a whole number between {lo} and {hi}") from None
    if not lo <= v <= hi:
        raise DataError(f"{name} must be between {lo} and {hi}, not {v}")
    return v


def window(state: Any, q: dict, days: float = 14.0) -> tuple[datetime, datetime]:
    """The page's ``[start, end)`` from ``start``/``end`` (dates; ``end`` inclusive),
    by default the ``days`` up to the newest event (the JSON route's rule)."""
    start = parse_time(q.get("start"))
    end = parse_time(q.get("end"), end_of_day=True)
    start, end = report_routes._window(state, start, end, days)
    if end <= start:
        raise DataError(f"empty window: end {end:%Y-%m-%d} is not after start {start:%Y-%m-%d}")
    return start, end


def distinct(fig: dict) -> dict:
    """Give each trace its own marker symbol, dash or bar pattern (not colour alone) and
    the console's layout."""
    for i, tr in enumerate(fig["data"]):
        if tr["type"] == "bar":
            tr.setdefault("marker", {})["pattern"] = {"shape": PATTERNS[i % len(PATTERNS)]}
        else:
            tr.setdefault("marker", {})["symbol"] = SYMBOLS[i % len(SYMBOLS)]
            tr.setdefault("line", {})["dash"] = DASHES[i % len(DASHES)]
            tr.setdefault("mode", "lines+markers")
    fig["layout"] = {"margin": {"t": 30, "l": 50, "r": 20, "b": 40}, "height": 320,
                     "legend": {"orientation": "h", "y": -0.2}, "showlegend": True,
                     **fig["layout"]}
    return fig


def _clean(df: pd.DataFrame) -> pd.DataFrame:
    """Round floats for display and CSV (4 significant places after the point)."""
    out = df.copy()
    cols = [c for c, t in out.dtypes.items() if pd.api.types.is_float_dtype(t)]
    if cols and out.columns.is_unique:
        out[cols] = out[cols].round(4)  # one pass over the float columns
    else:
        for c in cols:
            out[c] = out[c].round(4)
    return out


def _records_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows) if rows else pd.DataFrame()


# ---------------------------------------------------------------------------- overview
def overview(state: Any, q: dict) -> Page:
    """KPIs of the window against the comparison period, trends, pacing, alerts."""
    start, end = window(state, q)
    k = _int(q, "k", 10, 1, 10_000)
    grain = q.get("grain") or "day"
    if grain not in ("hour", "day", "week", "month"):
        raise DataError("grain is hour, day, week or month")
    compare = q.get("compare") or "previous"
    if compare not in ("previous", "none"):
        raise DataError("compare is previous or none")
    p_start = start - (end - start)
    prev_f = (ahead(state, ("previous", _wkey(q), k), _summary, state, p_start, start, k)
              if compare == "previous" else None)
    summary, series, pacing, notice = cached(state, ("kpis", _wkey(q), grain, k),
                                             report_routes._analytics, state, start, end,
                                             grain, k, MemoScope)
    page = Page(extra={"start": start, "end": end, "k": k, "grain": grain,
                       "compare": compare})
    prev: dict = {}
    if prev_f is not None:
        prev = prev_f.result()
        page.extra["previous"] = (p_start, start)
    change = kpi_change(summary, prev) if prev else {}
    hidden = bool(notice.get("summary"))
    rows = []
    for name in KPIS_SHOWN:
        if name not in summary:
            continue
        v = summary.get(name)
        rows.append({"kpi": name,
                     "value": "suppressed" if hidden and _missing(v) else _num(v),
                     "previous": _num(prev.get(name)) if prev else None,
                     "change": _num(change.get(name)) if change else None})
    page.extra["cards"] = rows
    page.tables.append(Table("kpis", "KPIs", pd.DataFrame(rows)))
    parts = []
    if notice.get("summary"):
        parts.append(f"the window's summary ({notice['users']} users)")
    if notice.get("periods"):
        parts.append(f"{notice['periods']} of {notice['of_periods']} periods")
    if notice.get("campaign_days"):
        parts.append(f"{notice['campaign_days']} of {notice['of_campaign_days']} "
                     "campaign-days")
    if parts:
        page.notices.append(f"Suppressed: figures describing fewer than k = {k} users are "
                            f"hidden in {', '.join(parts)}. Widen the dates or lower k.")
    sdf = pd.DataFrame(series)
    if not sdf.empty:
        page.tables.append(Table("series", "KPIs per " + grain, _clean(sdf)))
        x = sdf["period"].astype(str)
        fig = Fig()
        for col in ("active_users", "users"):
            if col in sdf:
                fig.add_scatter(x=x, y=sdf[col], name="active users")
                break
        page.charts.append(Chart("trend", "Active users", distinct(fig),
                                 f"Active users per {grain} from {start:%Y-%m-%d}."))
        fig2 = Fig()
        for col in ("impressions", "ad_impressions", "clicks"):
            if col in sdf:
                fig2.add_bar(x=x, y=sdf[col], name=col.replace("_", " "))
        page.charts.append(Chart("volume", "Impressions and clicks", distinct(fig2),
                                 f"Impressions, ad impressions and clicks per {grain}."))
    pdf = pd.DataFrame(pacing)
    if not pdf.empty:
        page.tables.append(Table("pacing", "Campaign spend per day against plan", _clean(pdf)))
        page.charts.append(pacing_chart(pdf))
    return page


def overview_alerts(state: Any, q: dict) -> Page:
    """The overview's "Alerts waiting" (loaded after the page: listening bursts take the
    comments' sentiment, the slowest part of the overview)."""
    start, end = window(state, q)
    k = _int(q, "k", 10, 1, 10_000)
    # the pacing curve alone (as the KPI report computes it; its SQL is the overview's,
    # which the page computed just before with the same filters: a memo hit)
    pacing = cached(state, ("pacing", _wkey(q), k), _pacing, state, start, end, k)
    table = cached(state, ("alerts", _wkey(q), k), alerts, state, end, k, pd.DataFrame(pacing))
    return Page(tables=[Table("alerts", "Alerts waiting", table,
                              "listening bursts of the last day, each campaign's latest "
                              "day off plan (over 120% or under 50%), experiments failing "
                              "the sample-ratio check")])


def _pacing(state: Any, start: datetime, end: datetime, k: int) -> list[dict]:
    with MemoScope(state.store, start, end, k=k) as scope:
        return campaign_pacing(scope).to_dict(orient="records")


def _summary(state: Any, start: datetime, end: datetime, k: int) -> dict:
    """The comparison period's KPIs (as the report compares, report/builder.py)."""
    with MemoScope(state.store, start, end, k=k) as scope:
        return kpi_summary(scope)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else round(f, 4)


def pacing_chart(pdf: pd.DataFrame) -> Chart:
    fig = Fig()
    for cid, g in pdf.groupby("campaign_id", sort=True):
        fig.add_scatter(x=g["day"].astype(str), y=g["spend"], name=f"{cid} spend")
        if g["planned"].notna().any():
            fig.add_scatter(x=g["day"].astype(str), y=g["planned"], name=f"{cid} plan",
                            mode="lines")
    return Chart("pacing", "Campaign pacing: spend per day against plan", distinct(fig),
                 "Each campaign's spend per day (markers) and its daily plan (lines).")


def alerts(state: Any, end: datetime, k: int, pacing: pd.DataFrame) -> pd.DataFrame:
    """Alerts waiting: listening bursts of the last day, campaign-days off plan, and
    experiments failing the sample-ratio check."""
    rows: list[dict] = []
    try:
        # burst detection applies no k: one run per window end, whatever k the view has
        _, _, found, _ = cached(state, ("bursts-1d", end), find_alerts, state, 1.0, None,
                                list(METRICS), k, now=end, scope_cls=MemoScope,
                                analyser=SCORES)
        for r in alerts_frame(found).to_dict(orient="records"):
            rows.append({"kind": "listening", "subject": str(r.get("keyword", "")),
                         "detail": f"{r.get('metric', '')} burst, level {_num(r.get('level'))}"
                                   f" vs baseline {_num(r.get('baseline'))}",
                         "at": str(r.get("detected_at", ""))})
    except (FeedwiseError, ValueError, KeyError) as e:
        rows.append({"kind": "listening", "subject": "-", "detail": f"not checked: {e}",
                     "at": ""})
    if not pacing.empty and "planned" in pacing:
        # each campaign's latest day with a plan: is it on pace now?
        last = (pacing.dropna(subset=["spend", "planned"]).sort_values("day")
                .groupby("campaign_id", sort=True).tail(1))
        for r in last.itertuples(index=False):
            if r.planned > 0 and (r.spend > 1.2 * r.planned or r.spend < 0.5 * r.planned):
                rows.append({"kind": "pacing", "subject": str(r.campaign_id),
                             "detail": f"spent {r.spend:.2f} against a plan of "
                                       f"{r.planned:.2f} ({r.spend / r.planned:.0%})",
                             "at": str(r.day)})
    for exp in _experiments(state):
        if exp.status != "running":
            continue
        try:  # the whole experiment so far: the same for every window and k
            res = cached(state, ("experiment", exp.name, repr(exp.expected)),
                         analyze_experiment, state.store, exp.name, expected=exp.expected)
        except (FeedwiseError, ValueError, KeyError):
            continue
        srm = res.get("srm") or {}
        if srm and srm.get("srm"):
            rows.append({"kind": "guardrail", "subject": exp.name,
                         "detail": f"sample-ratio mismatch (p = {_num(srm.get('p_value'))})",
                         "at": ""})
    return pd.DataFrame(rows, columns=["kind", "subject", "detail", "at"])


def _experiments(state: Any) -> list:
    dep = state.rollout.deployment
    if dep is None:
        return []
    try:
        return read_experiments(dep)
    except FeedwiseError:
        return []


# ---------------------------------------------------------------------------- feed
@dataclass
class Preview:
    label: str
    feed: Feed
    arm: Arm
    violations: list[str]


def _view(engine: FeedEngine) -> FeedEngine:
    """A copy of the engine whose cross-request state and generator are copies: composing
    on it shows what the next request would get and changes nothing that serves.

    The copy is taken between requests without the engine's lock (a request composing at
    that moment can change a dict being copied: the copy is then taken again). Composing
    on it takes the engine's lock, like a request."""
    view = copy.copy(engine)
    for attempt in range(5):
        try:
            view.state = engine.state.copy()
            break
        except RuntimeError:  # "dictionary changed size during iteration"
            if attempt == 4:
                raise
            time.sleep(0.001)
    view.rng = copy.deepcopy(engine.rng)
    return view


def policy_choices(state: Any) -> list[tuple[str, str]]:
    """``(value, label)`` of the policies the inspector can compose with."""
    out = [("served", "as served (the user's arm)"),
           ("default", f"default settings (λ = {FeedConfig().ux_lambda:g})"),
           ("no-ads", "no ads")]
    exp = state.rollout.experiment
    if exp is not None:
        out += [(f"arm:{a.name}", f"experiment {exp.name}: arm {a.name}") for a in exp.arms]
    for lam in (0.0, 0.01, 0.1, 1.0):
        out.append((f"lambda:{lam:g}", f"λ = {lam:g}"))
    return out


def compose_preview(state: Any, served: Any, user_id: str, n: int, now: datetime,
                    policy: str = "served") -> Preview:
    """The feed ``GET /v1/users/{id}/feed`` would serve ``user_id`` at ``now`` under
    ``policy`` (``served``, ``default``, ``no-ads``, ``arm:<name>``, ``lambda:<x>``),
    composed as that route composes it (the same request, the user's arm, the rollout's
    compose) on a copy of the served engine, so nothing is recorded or logged."""
    uid = state.user_key(user_id)
    req = FeedRequest(user_id=uid, n=n, now=now, request_id="console-preview",
                      context={"surface": "feed", "session_id": None,
                               "consent_personalization": uid not in state.no_personalization,
                               "consent_ads": uid not in state.no_ads})
    arm = state.rollout.arm(uid)
    engine = served.policy
    arms = dict(served.arms)
    if isinstance(engine, FeedEngine):
        engine = _view(engine)
        arms = {v: _view(p) if isinstance(p, FeedEngine) else p for v, p in arms.items()}
    label = dict(policy_choices(state)).get(policy)
    if label is None:
        raise DataError(f"unknown policy {policy!r}; choose one of "
                        f"{', '.join(v for v, _ in policy_choices(state))}")
    if policy == "default":
        arm = Arm("default", FeedConfig().ux_lambda, "console")
    elif policy == "no-ads":
        arm = Arm("no-ads", arm.ux_lambda, "console", overrides={"max_ad_load": 0.0})
    elif policy.startswith("arm:"):
        exp = state.rollout.experiment
        spec = next(a for a in exp.arms if a.name == policy[4:])
        over = spec.overrides()
        arm = Arm(f"{exp.name}/{spec.name}", float(over.get("ux_lambda", arm.ux_lambda)),
                  f"experiment:{exp.name}/{spec.name}", exp.name, spec.name, over,
                  spec.model_version)
    elif policy.startswith("lambda:"):
        arm = Arm(policy, float(policy[7:]), "console", overrides={"ux_lambda": float(policy[7:])})
    if policy == "default" and isinstance(engine, FeedEngine):
        feed = engine.compose_under(req, config_with(FeedConfig(), {}), record=False)
    else:
        feed = state.rollout.compose(engine, req, arm, arms, record=False)
    violations: list[str] = []
    if isinstance(engine, FeedEngine):
        violations = [str(v) for v in engine.check(feed)]
    return Preview(label, feed, arm, violations)


def slots_frame(feed: Feed) -> pd.DataFrame:
    rows = [{"position": i, "item_id": s.item_id, "kind": s.kind,
             "source": getattr(s, "source", None) or ("ad" if s.kind == "ad" else ""),
             "score": _num(s.score), "propensity": round(float(s.propensity), 4),
             "campaign_id": s.campaign_id or "", "reasons": "; ".join(s.reasons)}
            for i, s in enumerate(feed.slots)]
    return pd.DataFrame(rows, columns=["position", "item_id", "kind", "source", "score",
                                       "propensity", "campaign_id", "reasons"])


def inspector(state: Any, q: dict) -> Page:
    served = state.served
    if served is None:
        raise DataError("no model is promoted yet: promote one on the Models page")
    user = (q.get("user") or "").strip()
    some: list[str] = []
    if not user:  # suggestions only when no user is named (a large table costs a scan)
        some = [str(u) for u in state.store.users()["user_id"].head(50)]
        user = some[0] if some else ""
    if not user:
        raise DataError("the store holds no users yet")
    n = _int(q, "n", 20, 1, min(200, state.settings.max_n))
    now = parse_time(q.get("now")) or datetime.now(UTC)
    a, b = q.get("policy") or "served", q.get("compare") or "no-ads"
    page = Page(extra={"user": user, "n": n, "now": now, "policy": a, "compare": b,
                       "choices": policy_choices(state),
                       "users": some})
    previews = [compose_preview(state, served, user, n, now, a),
                compose_preview(state, served, user, n, now, b)]
    page.extra["previews"] = previews
    page.extra["model_version"] = served.version
    for tag, p in zip(("a", "b"), previews, strict=True):
        page.tables.append(Table(f"slots_{tag}", f"Policy {tag.upper()}: {p.label}",
                                 slots_frame(p.feed),
                                 "; ".join(p.violations) or "no guardrail violated"))
    fig = Fig()
    for p in previews:
        df = slots_frame(p.feed)
        fig.add_scatter(x=df["position"], y=df["score"], name=p.label,
                        text=values(df["kind"]), mode="lines+markers")
    page.charts.append(Chart("scores", "Slot scores by position", distinct(fig),
                             "The score of each slot by position under both policies."))
    return page


# ---------------------------------------------------------------------------- campaigns
CAMPAIGN_FIELDS = ("campaign_id", "advertiser_id", "name", "bid_model", "bid", "daily_budget",
                   "total_budget", "start_at", "end_at", "target_tags", "status",
                   "cap_impressions", "cap_window_h", "creative_title", "creative_text")


def campaigns(state: Any, q: dict) -> Page:
    start, end = window(state, q)
    k = _int(q, "k", 10, 1, 10_000)
    listed = campaign_routes.list_campaigns(state, None).campaigns
    page = Page(extra={"start": start, "end": end, "k": k, "campaigns": listed})
    rows = [{"campaign_id": c.campaign_id, "name": c.name, "advertiser_id": c.advertiser_id,
             "status": c.status, "bid_model": c.bid_model, "bid": c.bid,
             "daily_budget": c.daily_budget, "total_budget": c.total_budget,
             "start_at": c.start_at.isoformat() if c.start_at else "",
             "end_at": c.end_at.isoformat() if c.end_at else "",
             "frequency_caps": "; ".join(f"{f.max_impressions} per {f.window_s / 3600:g} h"
                                         for f in c.frequency_caps),
             "creatives": len(c.creatives)} for c in listed]
    page.tables.append(Table("campaigns", "Campaigns", pd.DataFrame(rows)))
    # the pacing curve alone (the KPIs' other tables are the overview's): the same
    # campaign_pacing the KPI report runs, on the same window's memoised SQL
    res, freq, pacing = cached(state, ("campaigns", _wkey(q), k), _delivery, state, start,
                               end, k)
    if not res.empty:
        cols = [c for c in ("campaign_id", "name", "impressions", "reach", "clicks", "spend",
                            "ctr", "cpm", "cpc", "conversions", "roas", "pacing",
                            "suppressed") if c in res]
        page.tables.append(Table("results", "Delivery: CTR, CPM, ROAS", _clean(res[cols])))
        fig = Fig()
        fig.add_bar(x=res["campaign_id"], y=res["ctr"], name="CTR")
        fig.add_bar(x=res["campaign_id"], y=res["roas"], name="ROAS", yaxis="y2")
        fig.update_layout(yaxis2={"overlaying": "y", "side": "right"}, barmode="group")
        page.charts.append(Chart("results", "CTR and ROAS per campaign", distinct(fig),
                                 "Click-through rate and return on ad spend per campaign."))
    else:
        page.notices.append("No ad delivery in this window.")
    pdf = pd.DataFrame(pacing)
    if not pdf.empty:
        page.charts.append(pacing_chart(pdf))
        page.tables.append(Table("pacing", "Spend per day against plan", _clean(pdf)))
    if not freq.empty:
        f = freq.reset_index().rename(columns={"index": "campaign_id"})
        caps = {c.campaign_id: min((x.max_impressions for x in c.frequency_caps), default=None)
                for c in listed}
        hits = []
        for r in f.to_dict(orient="records"):
            cap = caps.get(r["campaign_id"])
            hits.append(_cap_hits(r, cap))
        f["users_at_cap"] = hits
        page.tables.append(Table("frequency", "Users by ads seen (frequency-cap hits)",
                                 _clean(f), "users_at_cap: users who saw at least the "
                                 "campaign's smallest cap in the window"))
    creatives = [{"campaign_id": c.campaign_id, "item_id": cr.item_id,
                  "title": cr.title or "", "text": cr.text or "", "tags": " ".join(cr.tags)}
                 for c in listed for cr in c.creatives]
    page.tables.append(Table("creatives", "Creatives", pd.DataFrame(creatives)))
    page.extra["creatives"] = creatives
    return page


def _delivery(state: Any, start: datetime, end: datetime, k: int
              ) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    with MemoScope(state.store, start, end, k=k) as scope:
        return (campaign_results(scope), frequency_distribution(scope),
                campaign_pacing(scope).to_dict(orient="records"))


def _cap_hits(row: dict, cap: int | None) -> float | None:
    if cap is None:
        return None
    total = 0.0
    for bucket, lo in (("1", 1), ("2", 2), ("3", 3), ("4", 4), ("5-9", 5), ("10+", 10)):
        v = row.get(bucket)
        if lo >= cap and v is not None and not (isinstance(v, float) and np.isnan(v)):
            total += float(v)
    return total


def campaign_body(form: dict) -> tuple[str, Any, dict[str, str]]:
    """``(campaign id, CampaignBody or None, field errors)`` from the campaign form."""
    errors: dict[str, str] = {}
    cid = (form.get("campaign_id") or "").strip()
    if not cid:
        errors["campaign_id"] = "an id is required"
    elif len(cid) > 256 or any(c.isspace() for c in cid):
        errors["campaign_id"] = "at most 256 characters, no spaces"
    doc: dict[str, Any] = {}
    for f in ("advertiser_id", "name", "bid_model", "status"):
        if form.get(f):
            doc[f] = form[f].strip()
    for f in ("bid", "daily_budget", "total_budget"):
        v = (form.get(f) or "").strip()
        if v:
            try:
                doc[f] = float(v)
            except ValueError:
                errors[f] = "a number, e.g. 2.5"
    for f in ("start_at", "end_at"):
        try:
            t = parse_time((form.get(f) or "").strip() or None)
        except DataError:
            errors[f] = "a date and time, e.g. 2024-03-01T00:00"
            continue
        if t is not None:
            doc[f] = t
    tags = [t for t in (form.get("target_tags") or "").replace(",", " ").split() if t]
    doc["target_tags"] = tags
    cap, win = (form.get("cap_impressions") or "").strip(), (form.get("cap_window_h") or "")
    if cap:
        try:
            doc["frequency_caps"] = [{"max_impressions": int(cap),
                                      "window_s": float(win or 24) * 3600}]
        except ValueError:
            errors["cap_impressions"] = "a whole number of impressions"
    title, text = form.get("creative_title") or "", form.get("creative_text") or ""
    if cid and (title or text):
        doc["creatives"] = [{"item_id": f"{cid}-creative", "title": title or None,
                             "text": text or None, "tags": tags}]
    if doc.get("start_at") and doc.get("end_at") and doc["end_at"] <= doc["start_at"]:
        errors["end_at"] = "must be after the start"
    body = None
    try:
        body = campaign_routes.CampaignBody(**doc)
    except ValidationError as e:
        for err in e.errors():
            loc = err["loc"][0] if err["loc"] else "form"
            name = {"frequency_caps": "cap_impressions", "creatives": "creative_title"}.get(
                str(loc), str(loc))
            errors.setdefault(name, err["msg"].removeprefix("Value error, "))
    return cid, (None if errors else body), errors


def campaign_form_values(c: Any) -> dict[str, str]:
    """The form's fields for an existing campaign (a ``CampaignOut``)."""
    cr = c.creatives[0] if c.creatives else None
    cap = c.frequency_caps[0] if c.frequency_caps else None
    return {"campaign_id": c.campaign_id, "advertiser_id": c.advertiser_id, "name": c.name,
            "bid_model": c.bid_model, "bid": f"{c.bid:g}",
            "daily_budget": f"{c.daily_budget:g}" if c.daily_budget else "",
            "total_budget": f"{c.total_budget:g}" if c.total_budget else "",
            "start_at": c.start_at.strftime("%Y-%m-%dT%H:%M") if c.start_at else "",
            "end_at": c.end_at.strftime("%Y-%m-%dT%H:%M") if c.end_at else "",
            "target_tags": " ".join(c.target_tags), "status": c.status,
            "cap_impressions": str(cap.max_impressions) if cap else "",
            "cap_window_h": f"{cap.window_s / 3600:g}" if cap else "",
            "creative_title": (cr.title or "") if cr else "",
            "creative_text": (cr.text or "") if cr else ""}


# ---------------------------------------------------------------------------- models
def models(state: Any, q: dict) -> Page:
    vl = model_routes.list_versions(state, None)
    cur = model_routes.current(state, None)
    page = Page(extra={"versions": vl.versions, "promoted": vl.promoted,
                       "served": cur.version})
    rows = []
    metric_names: list[str] = []
    for v in vl.versions:
        row = {"version": v.version, "model": v.model, "created_at": v.created_at.isoformat(),
               "promoted": "yes" if v.version == vl.promoted else "",
               "served": "yes" if v.version == cur.version else ""}
        for m, x in sorted(v.metrics.items()):
            row[m] = _num(x)
            if m not in metric_names:
                metric_names.append(m)
        rows.append(row)
    page.tables.append(Table("versions", "Registered versions", pd.DataFrame(rows)))
    if metric_names:
        fig = Fig()
        for m in metric_names[:6]:
            fig.add_bar(x=[r["version"] for r in rows], y=[r.get(m) for r in rows], name=m)
        fig.update_layout(barmode="group")
        page.charts.append(Chart("metrics", "Evaluation figures per version", distinct(fig),
                                 "Each version's offline evaluation figures, grouped."))
    else:
        page.notices.append("No version carries evaluation figures yet (versions trained by "
                            "feedwise retrain carry their validation figures).")
    applied = state.rollout.applied
    lam = state.rollout.config.ux_lambda
    page.extra["applied"] = applied
    page.extra["lambda"] = lam
    ev = (applied or {}).get("evidence") or {}
    pol = [{"setting": k, "value": str(v)} for k, v in (applied or {}).items()
           if k != "evidence"] or [{"setting": "ux_lambda", "value": f"{lam:g} (default)"}]
    page.tables.append(Table("policy", "Applied policy", pd.DataFrame(pol)))
    if "session_depth" in ev and "no_ads_session_depth" in ev:
        fig = Fig()
        fig.add_scatter(x=[ev["no_ads_session_depth"]], y=[0.0], name="no ads",
                        mode="markers+text", text=["no ads"], textposition="top center")
        fig.add_scatter(x=[ev["session_depth"]], y=[ev.get("revenue_per_user", 0.0)],
                        name=f"applied λ = {lam:g}", mode="markers+text",
                        text=[f"λ = {lam:g}"], textposition="top center")
        fig.update_layout(xaxis={"title": {"text": "session depth"}},
                          yaxis={"title": {"text": "revenue per user"}})
        page.charts.append(Chart("frontier", "Frontier: the applied point against no ads",
                                 distinct(fig), "Revenue per user against session depth of "
                                 "the applied policy and of serving no ads."))
    else:
        page.notices.append("No frontier applied yet: feedwise frontier --apply writes one.")
    exps = []
    effects = []
    for exp in _experiments(state):
        row = {"experiment": exp.name, "status": exp.status,
               "arms": ", ".join(a.name for a in exp.arms), "effect": "", "srm": ""}
        try:
            res = analyze_experiment(state.store, exp.name, expected=exp.expected)
            r = res["results"]
            if len(r):
                first = r.iloc[0]
                row["effect"] = (f"{first['variant']}: {first['diff']:+.4f} "
                                 f"[{first['ci_low']:+.4f}, {first['ci_high']:+.4f}], "
                                 f"p = {first['p_value']:.3f}")
                effects.extend({"experiment": exp.name, **x}
                               for x in _clean(r).to_dict(orient="records"))
            srm = res.get("srm") or {}
            row["srm"] = (("MISMATCH" if srm.get("srm") else "ok") +
                          f" (p = {_num(srm.get('p_value'))})") if srm else "one arm only"
        except (FeedwiseError, ValueError, KeyError) as e:
            row["effect"] = f"not yet measurable: {e}"
        exps.append(row)
    page.tables.append(Table("experiments", "Experiments", pd.DataFrame(
        exps, columns=["experiment", "status", "arms", "effect", "srm"])))
    if effects:
        page.tables.append(Table("effects", "Experiment effects", pd.DataFrame(effects)))
    return page


# ---------------------------------------------------------------------------- audience
def audience(state: Any, q: dict) -> Page:
    start, end = window(state, q, days=28.0)
    k = _int(q, "k", 10, 1, 10_000)
    page = Page(extra={"start": start, "end": end, "k": k})
    # best time to post applies no k (it reports hours, not users), and the creators'
    # influence fit does not depend on k (k only filters the ranking): one of each per
    # window, both started now and taken below
    timing_f = ahead(state, ("timing", _wkey(q)), _scoped, state, start, end, 10,
                     timing_section)
    creators_f = ahead(state, ("creators", _wkey(q)), scored_creators, state.store, start,
                       end)
    # the stored profiles' segments do not depend on the window: one table per k
    seg = cached(state, ("segments", k), _segments, state, k)
    if seg is not None:
        page.tables.append(Table("segments", "Segments", _clean(seg)))
        size_col = next((c for c in ("users", "size", "n_users") if c in seg), None)
        label = next((c for c in ("segment", "name", "label") if c in seg), seg.columns[0])
        if size_col:
            fig = Fig()
            fig.add_bar(x=seg[label].astype(str), y=seg[size_col], name="users",
                        text=values(seg[size_col]), textposition="outside")
            page.charts.append(Chart("segments", "Users per segment", distinct(fig),
                                     "How many users each segment holds."))
    else:
        page.notices.append("No stored profiles: feedwise profiles --write stores them.")
    user = (q.get("user") or "").strip()
    page.extra["user"] = user
    if user:
        prof = read_profiles(state.store)  # one user's profile: always read live
        uid = state.user_key(user)
        flags = state.store.consent(uid) or {}
        consent = {str(k2).removeprefix("consent_"): bool(v) for k2, v in flags.items()
                   if isinstance(v, bool | np.bool_)}
        page.extra["consent"] = consent
        if consent.get("analytics", True) is False:
            page.notices.append(f"{user} has not consented to analytics: no profile shown.")
        else:
            row = prof[prof["user_id"] == uid] if "user_id" in prof else prof.iloc[0:0]
            if row.empty:
                page.notices.append(f"No stored profile for {user}.")
            else:
                rec = row.iloc[0].to_dict()
                page.tables.append(Table("profile", f"Profile of {user}", pd.DataFrame(
                    [{"field": c, "value": str(v)} for c, v in rec.items()
                     if c != "user_id"])))
    timing = timing_f.result()
    hours = timing.get("hours")
    if timing.get("recommendation"):
        page.extra["best_time"] = timing["recommendation"]
    elif timing.get("note"):
        page.notices.append(timing["note"])
    if isinstance(hours, pd.DataFrame) and not hours.empty:
        h = hours.reset_index() if "hour" not in hours else hours
        page.tables.append(Table("best_time", f"Best time to post ({timing.get('clock')})",
                                 _clean(h)))
        ycol = next((c for c in ("effect", "lift", "estimate", "coef") if c in h),
                    h.columns[-1])
        fig = Fig()
        fig.add_bar(x=h["hour"] if "hour" in h else h.index, y=h[ycol], name=str(ycol))
        page.charts.append(Chart("best_time", "Publish-hour effect", distinct(fig),
                                 "The audience-adjusted effect of each publishing hour."))
    try:
        cr = rank_creators(creators_f.result(), k=k)
    except (DataError, ValueError) as e:
        cr = pd.DataFrame()
        page.notices.append(f"creators: {e}")
    page.tables.append(Table("creators", "Creators by influence", _clean(cr)))
    return page


def _segments(state: Any, k: int) -> pd.DataFrame | None:
    """The segments of the stored profiles (``None`` when none are stored)."""
    # the stored profiles do not depend on k: read once for every k (a copy each time)
    prof = cached(state, ("profiles",), read_profiles, state.store).copy()
    if not len(prof):
        return None
    seg = segment_table(prof, None, k)
    if "segment" in prof and prof["segment"].notna().any():
        counts = prof["segment"].dropna().astype(str).value_counts()
        beh = pd.DataFrame({"kind": "behaviour", "segment": counts.index,
                            "users": counts.to_numpy(),
                            "description": "behavioural segment (stored profiles)"})
        beh["share"] = beh["users"] / len(prof)
        seg = pd.concat([suppress(beh, "users", k, ["users", "share"]), seg],
                        ignore_index=True)
    return seg


def _scoped(state: Any, start: datetime, end: datetime, k: int, fn: Any) -> Any:
    with MemoScope(state.store, start, end, k=k) as scope:
        return fn(scope)


# ---------------------------------------------------------------------------- listening
def listening(state: Any, q: dict) -> Page:
    start, end = window(state, q)
    k = _int(q, "k", 10, 1, 10_000)
    page = Page(extra={"start": start, "end": end, "k": k})
    # the window's comments, scored once (k applies to the tables made of them)
    scored = cached(state, ("comments", _wkey(q)), _scored_comments, state, start, end)
    sec = cached(state, ("listening", _wkey(q), k), _listening_tables, scored, k)
    if not sec.get("comments"):
        page.notices.append("No comments with text in this window.")
    for name, title in (("keywords", "Sentiment by topic"), ("share_of_voice", "Share of voice"),
                        ("top_negative", "Most-reached negative comments"),
                        ("top_positive", "Most-reached positive comments")):
        df = sec.get(name)
        if isinstance(df, pd.DataFrame):
            page.tables.append(Table(name, title, _clean(df)))
    kw = sec.get("keywords")
    if isinstance(kw, pd.DataFrame) and not kw.empty:
        key = next((c for c in ("keyword", "topic") if c in kw), kw.columns[0])
        fig = Fig()
        for col, nm in (("positive_share", "positive"), ("negative_share", "negative")):
            if col in kw:
                fig.add_bar(x=kw[key].astype(str), y=kw[col], name=nm)
        fig.update_layout(barmode="group")
        page.charts.append(Chart("sentiment", "Sentiment by topic", distinct(fig),
                                 "Share of positive and negative comments per topic."))
    days = max(1.0, (end - start).total_seconds() / 86400)
    try:
        # burst detection applies no k: one run per window
        _, _, found, _ = cached(state, ("bursts", _wkey(q)), find_alerts, state,
                                min(days, 7.0), None, list(METRICS), k, now=end,
                                scope_cls=MemoScope, analyser=SCORES)
        page.tables.append(Table("alerts", "Alerts", _clean(alerts_frame(found))))
    except (FeedwiseError, ValueError) as e:
        page.notices.append(f"alerts: {e}")
    return page


def _scored_comments(state: Any, start: datetime, end: datetime) -> pd.DataFrame:
    """The window's comments with their sentiment (as :func:`~feedwise.report.listening.
    listening_section` scores them; it applies no k)."""
    with MemoScope(state.store, start, end, k=10) as scope:
        comments = comments_from_scope(scope)
    return score_comments(comments, SCORES) if not comments.empty else comments


def _listening_tables(scored: pd.DataFrame, k: int, n_top: int = 3) -> dict[str, Any]:
    """The tables of :func:`~feedwise.report.listening.listening_section` the page shows
    (its per-day table is not shown, so not computed), by the same functions."""
    if scored.empty:
        return {"comments": 0}
    kws = default_keywords(scored)
    return {"comments": len(scored),
            "keywords": sentiment_table(scored, "keyword", None, keywords=kws, k=k),
            "share_of_voice": share_of_voice(scored, kws, k=k),
            "top_negative": top_comments(scored, "negative", n_top, k=k),
            "top_positive": top_comments(scored, "positive", n_top, k=k)}


# ---------------------------------------------------------------------------- care
def care(state: Any, q: dict) -> Page:
    start, end = window(state, q, days=30.0)
    page = Page(extra={"start": start, "end": end})
    msgs = state.store.messages(start, end)
    if msgs.empty:
        page.notices.append("No customer messages in this window.")
        page.tables.append(Table("queue", "Care queue", pd.DataFrame(
            columns=["message_id", "channel", "ts", "text", "intent", "suggested reply"])))
        return page
    queue = msgs[msgs["resolved_at"].isna()].sort_values("ts", ascending=False).head(50)
    helper = assistant(state) if len(queue) else None
    rows = []
    for r in queue.to_dict(orient="records"):
        d = helper.handle(r["text"]) if helper is not None else {}
        sug = (d.get("suggestions") or [{}])[0]
        rows.append({"message_id": r["message_id"], "channel": r.get("channel") or "",
                     "ts": str(r["ts"]), "text": r["text"], "intent": d.get("intent") or "",
                     "routing": (d.get("routing") or {}).get("decision", ""),
                     "suggested reply": sug.get("answer", "") if sug else ""})
    page.tables.append(Table("queue", f"Care queue ({len(queue)} open)", pd.DataFrame(rows)))
    by = msgs.assign(day=pd.to_datetime(msgs["ts"], utc=True).dt.strftime("%Y-%m-%d"),
                     open=msgs["resolved_at"].isna()).groupby("day")["open"].agg(["size", "sum"])
    fig = Fig()
    fig.add_bar(x=by.index, y=by["size"], name="messages")
    fig.add_bar(x=by.index, y=by["sum"], name="still open")
    page.charts.append(Chart("messages", "Messages per day", distinct(fig),
                             "Customer messages per day and how many are still open."))
    return page


PAGES = {"overview": overview, "inspector": inspector, "campaigns": campaigns,
         "models": models, "audience": audience, "listening": listening, "care": care}
TITLES = {"overview": "Overview", "inspector": "Feed inspector", "campaigns": "Campaigns",
          "models": "Models & policies", "audience": "Audience", "listening": "Listening",
          "care": "Care"}

