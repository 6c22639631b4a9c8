"""The HTML report: sections, period-over-period tiles, suppression marks, offline."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import plotly.offline
import pytest
from report_world import DAYS, START

from feedwise.errors import DataError
from feedwise.report import ReportConfig, build_report, charts, render_html


@pytest.fixture(scope="module")
def second_half(world_store):
    mid = START + timedelta(days=DAYS // 2)
    return build_report(world_store, mid, START + timedelta(days=DAYS), ReportConfig(k=10))


def test_report_sections_and_change(second_half):
    rep = second_half
    assert set(rep.timings) == {"window", "kpis", "trends", "retention", "activity", "funnel",
                                "profiles+segments", "content", "campaigns"}
    assert rep.previous["users"] > 10  # the first half is the previous period
    assert rep.change["dau"] == pytest.approx(rep.summary["dau"] / rep.previous["dau"] - 1)
    html = render_html(rep)
    assert html.count('class="tile"') == 20
    assert html.count("vs previous") >= 18 and "no previous period" not in html
    assert "Spring shoes" in html and "Coffee club" in html
    # the planted evening sharers come out as a described segment
    assert any(d.startswith("evening users") and "high share rate" in d
               for d in rep.segments["description"])
    js = plotly.offline.get_plotlyjs()
    assert js in html  # plotly.js inlined once ...
    rest = html.replace(js, "")
    assert "<script src" not in rest and "cdn" not in rest  # ... and nothing loaded from afar
    assert "(<k)" not in html and "&lt;k" in html  # the mark is escaped, never a tag


def test_everything_suppressed_when_k_is_large(world_store):
    rep = build_report(world_store, START, START + timedelta(days=DAYS), ReportConfig(k=1000))
    assert all(pd.isna(v) for v in rep.summary.values())
    assert rep.top_posts.empty
    life = rep.segments[rep.segments["kind"] == "lifecycle"]
    assert (life["suppressed"] | (life["users"] == 0)).all()
    html = render_html(rep)
    assert html.count('<div class="value">&lt;k</div>') == 20


def test_empty_window_raises(world_store):
    with pytest.raises(DataError, match="no events"):
        build_report(world_store, START - timedelta(days=60), START - timedelta(days=30))


def test_charts_handle_empty_tables():
    empty = pd.DataFrame()
    for fig in (charts.trend_lines(empty), charts.funnel_chart(empty),
                charts.campaign_chart(empty), charts.frequency_chart(empty)):
        assert fig.layout.annotations  # a readable "no data" note instead of a blank plot


def test_header_states_the_previous_period_length(world_store):
    mid = START + timedelta(days=DAYS // 2)
    rep = build_report(world_store, mid, mid + timedelta(hours=36), ReportConfig(k=5))
    assert "the 1.5 days before" in render_html(rep)  # the compared period, not rounded
