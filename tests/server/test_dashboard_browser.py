"""``/dashboard`` and ``/docs`` in real headless Chromium, offline: charts drawn, no console
errors, no request outside the server; a notice where figures are suppressed."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from service_world import LiveServer

from feedwise.models import get_model
from feedwise.registry import ModelRegistry
from feedwise.server.app import create_app
from feedwise.server.auth import create_key
from feedwise.server.settings import Settings
from feedwise.store import EventStore

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
CHARTS = """() => ['c1', 'c2', 'c3'].map(id => {
    const d = document.getElementById(id);
    const svg = d.querySelector('svg.main-svg');
    const r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    return {id, traces: (d.data || []).length, w: r.width, h: r.height,
            marks: d.querySelectorAll('g.trace path, g.point, path.js-line').length};
})"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo world (synthetic social feeds with campaigns) served by a live server."""
    from feedwise.datasets.synthetic import synthetic_social

    root = tmp_path_factory.mktemp("demo")
    db = root / "demo.duckdb"
    world = synthetic_social(n_users=100, n_authors=12, n_posts=150, n_days=12,
                             n_campaigns=3, start=datetime(2024, 3, 4, tzinfo=UTC), seed=3)
    with EventStore(db) as store:
        world.load_into(store)
        data = store.interactions()
    reg = ModelRegistry(root / "registry")
    reg.promote(reg.register(get_model("popularity").fit(data)).version)
    keys = root / "keys.json"
    read, _ = create_key(keys, ["read"])
    settings = Settings(db=str(db), registry=str(reg.root), keys_file=str(keys),
                        reload_interval_s=0)
    with LiveServer(create_app(settings)) as srv:
        yield srv, read


def browse(url: str, shot: Path, act) -> tuple[list[str], list[str], object]:
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
            page.goto(url, wait_until="load")
            got = act(page)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    return errors, requests, got


def test_dashboard_offline_with_default_controls(demo, tmp_path: Path):
    srv, read = demo

    def act(page):
        page.fill("#key", read)
        page.click("button")
        page.wait_for_function("() => ['c1','c2','c3'].every(id => document.getElementById(id)"
                               ".querySelector('svg.main-svg'))", timeout=30_000)
        page.wait_for_function("() => document.querySelectorAll('.kpi').length > 0")
        charts = page.evaluate(CHARTS)
        cards = page.inner_text("#kpis")
        start = page.input_value("#from")
        default_notice = page.inner_text("#notice")
        page.screenshot(path=str(tmp_path / "dashboard-default.png"), full_page=True)
        # a k above every group: the notice says what is hidden
        page.fill("#k", "10000")
        page.click("button")
        page.wait_for_function("() => document.getElementById('notice').textContent"
                               ".includes('k = 10000')", timeout=30_000)
        assert page.is_visible("#notice")
        return charts, cards, start, default_notice, page.inner_text("#notice")

    shot = tmp_path / "dashboard.png"
    errors, requests, got = browse(f"{srv.url}/dashboard", shot, act)
    charts, cards, start, default_notice, notice = got
    assert errors == []
    assert all(u.startswith(srv.url) or u.startswith("data:") for u in requests), requests
    for c in charts:
        assert c["traces"] > 0 and c["marks"] > 0, c
        assert c["w"] > 100 and c["h"] > 100, c
    assert any(ch.isdigit() for ch in cards) and cards.count("–") < 5
    # the default window is the 30 days up to the demo log's newest event (not up to now)
    assert "2024-02-10" <= start <= "2024-03-04", start
    assert "Suppressed" in notice and "k = 10000" in notice
    assert "summary" in notice and "periods" in notice
    assert "k = 10000" not in default_notice
    assert (tmp_path / "dashboard-default.png").stat().st_size > 50_000
    assert shot.stat().st_size > 30_000


def test_docs_offline(demo, tmp_path: Path):
    srv, _ = demo

    def act(page):
        page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
        return page.locator(".swagger-ui .opblock").count()

    shot = tmp_path / "docs.png"
    errors, requests, ops = browse(f"{srv.url}/docs", shot, act)
    assert errors == []
    assert all(u.startswith(srv.url) or u.startswith("data:") for u in requests), requests
    assert ops > 20  # every route drawn
    assert shot.stat().st_size > 30_000
