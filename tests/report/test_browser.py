"""The report renders in real headless Chromium: every chart drawn, no console errors."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from report_world import DAYS, START

from feedwise.report.builder import ReportConfig, build_report
from feedwise.report.html import write_html

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

CHART_STATE = """() => [...document.querySelectorAll('.plotly-graph-div')].map(d => {
    const svg = d.querySelector('svg.main-svg');
    const r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    const marks = d.querySelectorAll(
        'g.trace, g.point, image, path.js-line, .funnel, .bars path').length;
    return {id: d.id, traces: (d.data || []).length, w: r.width, h: r.height, marks: marks,
            canvas: d.querySelectorAll('canvas').length};
})"""


@pytest.fixture(scope="module")
def report_file(world_store, tmp_path_factory) -> Path:
    rep = build_report(world_store, START, START + timedelta(days=DAYS), ReportConfig(k=10))
    return write_html(rep, tmp_path_factory.mktemp("report") / "report.html")


def test_report_renders_in_chromium(report_file: Path, tmp_path: Path):
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report_file.as_uri(), wait_until="load")
            page.wait_for_function(
                "() => [...document.querySelectorAll('.plotly-graph-div')]"
                ".every(d => d.querySelector('svg.main-svg'))", timeout=30_000)
            charts = page.evaluate(CHART_STATE)
            text = page.inner_text("body")
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
    # self-contained: nothing fetched but the file itself
    assert all(u.startswith("file:") or u.startswith("data:") for u in requests), requests
    assert len(charts) == report_file.read_text().count('class="plotly-graph-div"') == 9
    for c in charts:
        assert c["traces"] > 0, c
        assert c["w"] > 100 and c["h"] > 100, c
        assert c["marks"] + c["canvas"] > 0, c
    for heading in ("Key figures", "Retention", "Funnel", "Segments", "Top content",
                    "Campaigns"):
        assert heading in text
    assert "Spring shoes" in text
    assert (tmp_path / "report.png").stat().st_size > 50_000
