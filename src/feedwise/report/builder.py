"""`InsightReport`: every behaviour-insight section of one window, computed once.

:func:`build_report` runs the analytics of :mod:`feedwise.analytics` over one
:class:`~feedwise.analytics.scope.Scope` (consent-aware, small groups suppressed),
timing each section, and :mod:`feedwise.report.html` renders the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from feedwise.analytics import campaigns, cohorts, content, funnels, kpis
from feedwise.analytics.profiles import UserProfiler
from feedwise.analytics.scope import Scope
from feedwise.analytics.segments import Segmenter, segment_table
from feedwise.analytics.sessions import SessionConfig
from feedwise.errors import DataError
from feedwise.report.care import care_tables
from feedwise.report.graph import graph_sections
from feedwise.report.listening import listening_section
from feedwise.report.timing import timing_section
from feedwise.schema import utc
from feedwise.store import EventStore


class ReportConfig(BaseModel):
    """What the report computes.

    Attributes:
        k: Smallest group a reported cell may describe.
        grain: Period of the trend lines (``hour``, ``day``, ``week``, ``month``).
        session_gap_minutes: Inactivity that ends a session.
        n_segments: Behavioural (k-means) segments.
        seed: Seed of the clustering.
        top_n: Rows of each top-content list.
        trending_days: The recent window of trending detection, in days.
        write_profiles: Store the user profiles (``user_profiles``) for the feed engine.
        materialize: Copy the window into temporary tables before the sections run.
    """

    k: int = Field(default=10, ge=1)
    grain: str = "day"
    session_gap_minutes: float = Field(default=30.0, gt=0)
    n_segments: int = Field(default=5, ge=1)
    seed: int = 0
    top_n: int = Field(default=10, ge=1)
    trending_days: float = Field(default=1.0, gt=0)
    write_profiles: bool = False
    materialize: bool = True


@dataclass
class InsightReport:
    """The computed sections of one report (every table already suppressed)."""

    start: datetime
    end: datetime
    config: ReportConfig
    summary: dict[str, float] = field(default_factory=dict)
    previous: dict[str, float] = field(default_factory=dict)
    change: dict[str, float] = field(default_factory=dict)
    series: pd.DataFrame = field(default_factory=pd.DataFrame)
    retention: pd.DataFrame = field(default_factory=pd.DataFrame)
    day_retention: pd.DataFrame = field(default_factory=pd.DataFrame)
    activity: pd.DataFrame = field(default_factory=pd.DataFrame)
    best_time: pd.DataFrame = field(default_factory=pd.DataFrame)
    timing: dict[str, Any] = field(default_factory=dict)  # report/timing.py
    listening: dict[str, Any] = field(default_factory=dict)  # report/listening.py
    funnel: pd.DataFrame = field(default_factory=pd.DataFrame)
    segments: pd.DataFrame = field(default_factory=pd.DataFrame)
    top_posts: pd.DataFrame = field(default_factory=pd.DataFrame)
    top_tags: pd.DataFrame = field(default_factory=pd.DataFrame)
    top_authors: pd.DataFrame = field(default_factory=pd.DataFrame)
    trending: pd.DataFrame = field(default_factory=pd.DataFrame)
    campaigns: pd.DataFrame = field(default_factory=pd.DataFrame)
    frequency: pd.DataFrame = field(default_factory=pd.DataFrame)
    creators: pd.DataFrame = field(default_factory=pd.DataFrame)
    viral_posts: pd.DataFrame = field(default_factory=pd.DataFrame)
    care: dict[str, pd.DataFrame] = field(default_factory=dict)
    partner_segment: str | None = None
    profiles_written: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    cpu_timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (tables as lists of records)."""
        out: dict[str, Any] = {"start": self.start.isoformat(), "end": self.end.isoformat(),
                               "k": self.config.k, "summary": self.summary,
                               "change": self.change, "timings": self.timings,
                               "notes": self.notes}
        for name in ("series", "retention", "day_retention", "funnel", "segments",
                     "top_posts", "top_tags", "top_authors", "trending", "campaigns"):
            out[name] = getattr(self, name).to_dict(orient="records")
        return out


#: Sections in the order they are computed: name -> what they show.
SECTIONS: tuple[str, ...] = ("window", "kpis", "trends", "retention", "activity", "funnel",
                             "profiles+segments", "content", "campaigns")


def build_report(store: EventStore, start: datetime, end: datetime,
                 config: ReportConfig | None = None, *, now: datetime | None = None,
                 progress: Callable[[str], None] | None = None) -> InsightReport:
    """Compute every section of the insight report for ``[start, end)``.

    Args:
        store: The :class:`~feedwise.store.EventStore`.
        start: Inclusive start of the window.
        end: Exclusive end of the window.
        config: Report settings (default :class:`ReportConfig`).
        now: The time profiles and lifecycle stages are judged at (default ``end``).
        progress: Called with each section's name as it starts (for progress bars).

    Raises:
        DataError: The window holds no events of consenting users.
    """
    cfg = config or ReportConfig()
    start, end = utc(start), utc(end)
    rep = InsightReport(start=start, end=end, config=cfg)
    sess = SessionConfig(gap_minutes=cfg.session_gap_minutes)

    def section(name: str):
        if progress is not None:
            progress(name)
        return _Timer(rep.timings, rep.cpu_timings, name)

    with section("window"):
        scope = Scope(store, start, end, k=cfg.k, materialize=cfg.materialize)
    try:
        if not scope.event_count():
            raise DataError(f"no events of consenting users between {start.isoformat()} and "
                            f"{end.isoformat()}; check --from/--to or ingest events first")
        with section("kpis"):
            rep.summary = kpis.kpi_summary(scope, sess)
            with scope.previous() as prev:
                rep.previous = kpis.kpi_summary(prev, sess)
            rep.change = kpis.kpi_change(rep.summary, rep.previous)
        with section("trends"):
            rep.series = kpis.kpi_series(scope, cfg.grain, sess)  # type: ignore[arg-type]
        with section("retention"):
            rep.retention = cohorts.week_retention(scope)
            rep.day_retention = cohorts.day_retention(scope)
        with section("activity"):
            rep.activity = content.activity_heatmap(scope)
            rep.best_time = content.best_time(scope)
            rep.timing = timing_section(scope)  # audience-adjusted, on a named clock
        with section("funnel"):
            rep.funnel = funnels.funnel(scope)
        with section("profiles+segments"):
            prof = UserProfiler().fit(scope, now=now)
            seg: Segmenter | None = None
            n_active = int((prof.profiles_["events"] > 0).sum())
            if n_active >= max(cfg.n_segments, 2 * cfg.k):
                seg = Segmenter(n_clusters=cfg.n_segments, seed=cfg.seed).fit(prof.profiles_)
                prof.profiles_["segment"] = seg.predict(prof.profiles_).to_numpy()
            else:
                rep.notes.append(f"only {n_active} active users: behavioural segments need "
                                 f"at least {max(cfg.n_segments, 2 * cfg.k)}")
            rep.segments = segment_table(prof.profiles_, seg, cfg.k)
            if cfg.write_profiles:
                rep.profiles_written = prof.write(store)
        with section("content"):
            rep.top_posts = content.top_posts(scope, cfg.top_n)
            rep.top_tags = content.top_tags(scope, cfg.top_n)
            rep.top_authors = content.top_authors(scope, cfg.top_n)
            rep.trending = content.trending(scope, cfg.trending_days, cfg.top_n)
        with section("campaigns"):
            rep.campaigns = campaigns.campaign_results(scope)
            rep.frequency = campaigns.frequency_distribution(scope)
        with section("content"):  # comments: sentiment, share of voice (report/listening.py)
            rep.listening = listening_section(scope)
        with section("content"):  # creators and cascades (report/graph.py), timed as content
            prof_df = prof.profiles_
            segs = (pd.Series(prof_df["segment"].to_numpy(), index=prof_df["user_id"]
                              if "user_id" in prof_df else prof_df.index)
                    if "segment" in prof_df else None)
            g = graph_sections(store, start, end, k=cfg.k, top_n=cfg.top_n, segments=segs)
            rep.creators, rep.viral_posts = g["creators"], g["viral_posts"]
            rep.partner_segment = g["partner_segment"]
            rep.notes.extend(g["notes"])
        with section("content"):  # customer care (report/care.py), timed as content
            rep.care = care_tables(store, start, end, k=cfg.k)
    finally:
        scope.close()
    return rep


class _Timer:
    """Adds a block's wall and process CPU seconds (all threads) to two dicts."""

    def __init__(self, wall: dict[str, float], cpu: dict[str, float], name: str) -> None:
        self.wall, self.cpu, self.name = wall, cpu, name

    def __enter__(self) -> _Timer:
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall[self.name] = self.wall.get(self.name, 0.0) + time.perf_counter() - self.t0
        self.cpu[self.name] = self.cpu.get(self.name, 0.0) + time.process_time() - self.c0
