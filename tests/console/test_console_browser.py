"""The console in real headless Chromium (Debian's), offline, on a small demo deployment:
logins with read and admin keys, every page drawn with charts and tables and no console
error, accessibility basics (axe-core), a read session refused on submit, a campaign made
through the form listed by the CLI and served in feeds, the inspector equal to
``GET /v1/users/{id}/feed`` at the same ``now``, promotion from the page.

One server, one browser and one page per view; screenshots go to
``tests/console/screenshots/`` (git-ignored)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from console_world import build_world
from service_world import LiveServer

from feedwise.server.app import create_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).parent / "screenshots"
#: Each page with the filters its view is shared with (k = 3: the demo world is small; the
#: world's dates, so events other tests record at the real now do not move the window).
WORLD = "start=2024-03-04&end=2024-03-13"
PAGES = {"overview": f"?k=3&{WORLD}", "inspector": "", "campaigns": f"?k=3&{WORLD}",
         "models": "", "audience": f"?k=3&user=u000001&{WORLD}",
         "listening": f"?k=3&{WORLD}", "care": f"?{WORLD}"}
#: axe-core rules for the basics the issue names (labels, headings, names of controls).
AXE_RULES = ["label", "select-name", "button-name", "link-name", "input-button-name",
             "heading-order", "page-has-heading-one", "empty-heading", "document-title",
             "html-has-lang", "role-img-alt", "svg-img-alt", "aria-allowed-attr",
             "aria-valid-attr-value", "duplicate-id-aria", "form-field-multiple-labels",
             "list", "listitem", "th-has-data-cells"]
CHARTS = """() => [...document.querySelectorAll('div.chart')].map(d => {
    const svg = d.querySelector('svg.main-svg');
    const r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    const traces = d.data || [];
    const looks = traces.map(t => JSON.stringify([(t.marker || {}).symbol,
        (t.line || {}).dash, ((t.marker || {}).pattern || {}).shape]));
    return {id: d.id, traces: traces.length, distinct: new Set(looks).size,
            legend: d.layout ? d.layout.showlegend !== false : false,
            points: traces.reduce((a, t) => a + (t.y || []).filter(v => v !== null).length, 0),
            w: r.width, h: r.height, label: d.getAttribute('aria-label') || ''};
})"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    from feedwise.server.console import views

    world = build_world(tmp_path_factory.mktemp("console"))
    SHOTS.mkdir(exist_ok=True)
    warm, views.WARM = views.WARM, False  # these pages use k=3: no default view to warm
    with LiveServer(create_app(world.settings)) as srv, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield world, srv, browser
        finally:
            browser.close()
            views.WARM = warm


class Tab:
    """One browser context logged in with one key, recording console errors and requests."""

    def __init__(self, browser, srv, key: str) -> None:
        self.srv = srv
        self.ctx = browser.new_context(viewport={"width": 1366, "height": 900})
        self.page = self.ctx.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text)
                     if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        # log in through the form, landing on the lightest page (the tests open the others)
        self.page.goto(f"{srv.url}/console/login?next=%2Fconsole%2Fmodels")
        self.page.fill("#f-key", key)
        self.page.click("form.login button[type=submit]")
        self.page.wait_for_url("**/console/models")

    def open(self, path: str):
        self.page.goto(f"{self.srv.url}{path}", wait_until="load")
        self.page.wait_for_function(
            "() => [...document.querySelectorAll('div.chart')].every(d => d.dataset.drawn)"
            " && !document.querySelector('section.lazy')", timeout=20_000)
        return self.page

    def close(self) -> None:
        self.ctx.close()


@pytest.fixture(scope="module")
def admin(env):
    world, srv, browser = env
    tab = Tab(browser, srv, world.admin)
    yield tab
    tab.close()


@pytest.fixture(scope="module")
def reader(env):
    world, srv, browser = env
    tab = Tab(browser, srv, world.read)
    yield tab
    tab.close()


def test_every_page_renders_for_admin_with_charts_tables_and_a11y(env, admin):
    from axe_playwright_python.sync_playwright import Axe

    world, srv, _ = env
    admin.errors.clear()
    axe = Axe()
    csv_url = None
    for name, query in PAGES.items():
        page = admin.open(f"/console/{name}{query}")
        assert page.locator("h1").count() == 1
        charts = page.evaluate(CHARTS)
        assert charts, f"{name}: no chart"
        for c in charts:
            assert c["traces"] > 0 and c["points"] > 0, (name, c)
            assert c["w"] > 100 and c["h"] > 100, (name, c)
            # not colour alone: each series its own marker, dash or pattern, and a legend
            assert c["distinct"] == c["traces"] and c["legend"] and c["label"], (name, c)
        rows = page.locator("table tbody tr").count()
        assert rows > 0, f"{name}: every table is empty"
        assert page.locator("a[download]").count() >= 1  # CSV export of the tables
        found = axe.run(page, options={"runOnly": {"type": "rule", "values": AXE_RULES}})
        bad = [(v["id"], [n["target"] for n in v["nodes"]][:3])
               for v in found.response["violations"]]
        assert bad == [], f"{name}: {bad}"
        page.screenshot(path=str(SHOTS / f"admin-{name}.png"), full_page=True)
        if name == "overview":
            csv_url = page.locator("#table-kpis a[download]").get_attribute("href")
    assert admin.errors == []
    assert all(u.startswith(srv.url) or u.startswith("data:") for u in admin.requests)
    # a table's CSV: the same rows, the URL keeps the filters
    url = csv_url
    assert url and "k=3" in url and "format=csv" in url and "table=kpis" in url
    csv = admin.page.request.get(f"{srv.url}{url}")
    assert csv.ok and csv.text().startswith("kpi,value,previous,change")


def test_read_key_sees_disabled_forms_and_the_server_refuses_a_submit(env, reader):
    world, srv, _ = env
    head = {"Authorization": f"Bearer {world.read}"}
    served = httpx.get(f"{srv.url}/v1/models/current", headers=head).json()["version"]
    other = "v0002" if served == "v0001" else "v0001"
    page = reader.open("/console/campaigns?k=3")
    assert page.locator("form.campaign fieldset[disabled]").count() == 2
    assert page.locator("form.campaign button[type=submit]").is_disabled()
    assert "Read-only key" in page.inner_text("#campaign-form")
    # force the form open (as a crafted page could) and submit it
    page.evaluate("""() => { document.querySelectorAll('form.campaign [disabled]')
                             .forEach(e => e.disabled = false); }""")
    page.fill("#f-campaign_id", "sneaky")
    page.fill("#f-advertiser_id", "adv")
    page.fill("#f-bid", "5")
    with page.expect_response("**/console/campaigns") as got:
        page.click("form.campaign button[type=submit]")
    assert got.value.status == 403
    text = page.inner_text("main")
    assert "admin scope" in text and "read" in text
    page.screenshot(path=str(SHOTS / "read-refused.png"), full_page=True)
    # the browser reports the refused page's 403 as a failed load, and nothing else
    assert reader.errors and all("403" in e for e in reader.errors), reader.errors
    reader.errors.clear()
    # the promote form too, posted straight to the server
    models = reader.open("/console/models")
    assert models.locator("#promote button[type=submit]").is_disabled()
    csrf = models.locator("#promote input[name=csrf]").get_attribute("value")
    r = models.request.post(f"{srv.url}/console/models/promote",
                            form={"csrf": csrf, "version": other})
    assert r.status == 403 and "admin scope" in r.text()
    assert httpx.get(f"{srv.url}/v1/models/current", headers=head).json()["version"] \
        == served
    # a form without the session's CSRF token is refused too (admin or not)
    r = models.request.post(f"{srv.url}/console/models/promote", form={"version": other})
    assert r.status == 403 and "security token" in r.text()
    # the session cookie, logout, and pages asking for a key again
    c = {c["name"]: c for c in reader.ctx.cookies()}["fw_console"]
    assert c["httpOnly"] and c["sameSite"] == "Lax" and world.read not in c["value"]
    reader.page.click("form.logout button")
    reader.page.wait_for_url("**/console/login")
    reader.page.goto(f"{srv.url}/console/models")
    assert "/console/login" in reader.page.url and "next=" in reader.page.url
    reader.page.fill("#f-key", "fw_nope_nope")
    reader.page.click("form.login button[type=submit]")
    assert "not valid" in reader.page.inner_text("main")
    r = httpx.get(f"{srv.url}/console/overview", follow_redirects=False)
    assert r.status_code == 303 and "/console/login" in r.headers["location"]


def test_campaign_form_validates_then_creates_a_live_campaign(env, admin):
    world, srv, _ = env
    admin.errors.clear()
    page = admin.open("/console/campaigns?k=3")
    page.fill("#f-campaign_id", "spring")
    page.fill("#f-advertiser_id", "acme")
    page.fill("#f-bid", "-3")
    page.click("form.campaign button[type=submit]")
    page.wait_for_selector(".field.invalid")
    assert "greater than 0" in page.inner_text("#e-bid")
    assert admin.errors and all("422" in e for e in admin.errors), admin.errors
    admin.errors.clear()  # the browser logs the 422 answer as a failed load
    now = datetime.now(UTC)
    page.fill("#f-bid", "400")
    page.fill("#f-name", "Spring sale")
    page.fill("#f-daily_budget", "5000")
    page.fill("#f-start_at", (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"))
    page.fill("#f-end_at", (now + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M"))
    page.fill("#f-creative_title", "Spring sale: 30% off")
    page.click("form.campaign button[type=submit]")
    page.wait_for_url("**/console/campaigns?saved=spring")
    assert "Saved campaign spring" in page.inner_text("main")
    assert "Spring sale: 30% off" in page.inner_text(".creatives")
    page.screenshot(path=str(SHOTS / "admin-campaign-saved.png"), full_page=True)
    # the CLI lists it (the command goes to the live service, as with `feedwise serve`)
    from typer.testing import CliRunner

    from feedwise.cli import app
    from feedwise.deployment import Deployment

    key_file = world.root / "admin.key"
    key_file.write_text(world.admin)
    dep = Deployment.for_store(world.db)
    dep.write_server_state({"url": srv.url, "pid": os.getpid(), "db": str(world.db.resolve()),
                            "registry": str(world.settings.registry),
                            "admin_key_file": str(key_file.resolve()),
                            "started_at": now.isoformat()})
    try:
        out = CliRunner().invoke(app, ["campaigns", "list", "--db", str(world.db),
                                       "--format", "json"])
    finally:
        dep.clear_server_state(pid=os.getpid())
    assert out.exit_code == 0, out.output
    assert "spring" in out.output
    # live now: served in feeds
    head = {"Authorization": f"Bearer {world.read}"}
    seen = 0
    for u in range(1, 31):
        r = httpx.get(f"{srv.url}/v1/users/u{u:06d}/feed", headers=head)
        assert r.status_code == 200
        seen += sum(s["campaign_id"] == "spring" for s in r.json()["slots"])
        if seen >= 2:
            break
    assert seen >= 2
    # pause it from the list: it stops serving
    page.click("form[action='/console/campaigns/spring/status'] button")
    page.wait_for_url("**/console/campaigns?saved=spring")
    for u in range(1, 6):
        r = httpx.get(f"{srv.url}/v1/users/u{u:06d}/feed", headers=head)
        assert all(s["campaign_id"] != "spring" for s in r.json()["slots"])


def test_inspector_shows_the_served_feed_at_the_same_now(env, admin, monkeypatch):
    import feedwise.server.routes.feed as feed_route

    world, srv, _ = env
    now = datetime.now(UTC).replace(microsecond=0)

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):  # noqa: ANN001, ANN206 - the route's clock, stopped at now
            return now

    for user in ("u000003", "u000007"):
        page = admin.open(f"/console/inspector?user={user}&n=15&policy=served"
                          f"&compare=no-ads&now={now.isoformat().replace('+00:00', 'Z')}")
        a = page.locator("section.policy").first.locator("li.slot")
        shown = [(a.nth(i).get_attribute("data-item"), a.nth(i).get_attribute("data-kind"))
                 for i in range(a.count())]
        assert shown
        b = page.locator("section.policy").nth(1).locator("li.slot[data-kind=ad]").count()
        assert b == 0  # policy B: no ads
        monkeypatch.setattr(feed_route, "datetime", Frozen)
        try:
            r = httpx.get(f"{srv.url}/v1/users/{user}/feed?n=15",
                          headers={"Authorization": f"Bearer {world.read}"})
        finally:
            monkeypatch.undo()
        served = [(s["item_id"], s["kind"]) for s in r.json()["slots"]]
        assert served == shown, (user, served, shown)


def test_promoting_on_the_page_changes_the_served_version(env, admin):
    world, srv, _ = env
    admin.errors.clear()
    head = {"Authorization": f"Bearer {world.read}"}
    before = httpx.get(f"{srv.url}/v1/models/current", headers=head).json()["version"]
    other = "v0002" if before == "v0001" else "v0001"
    page = admin.open("/console/models")
    page.select_option("#f-version", other)
    page.click("#promote button[type=submit]")
    page.wait_for_url(f"**/console/models?promoted={other}")
    assert f"now serving {other}" in page.inner_text("main")
    assert httpx.get(f"{srv.url}/v1/models/current", headers=head).json()["version"] \
        == other
    r = httpx.get(f"{srv.url}/v1/users/u000001/feed", headers=head)
    assert r.json()["model_version"] == other
    # roll back
    page.select_option("#f-version", before)
    page.click("#promote button[type=submit]")
    page.wait_for_url(f"**/console/models?promoted={before}")
    assert httpx.get(f"{srv.url}/v1/models/current", headers=head).json()["version"] \
        == before
    assert admin.errors == []


def _login(c: httpx.Client, key: str, nxt: str = "/console/overview") -> httpx.Response:
    token = c.get("/console/login").text.split('name="csrf" value="')[1].split('"')[0]
    return c.post("/console/login", data={"key": key, "csrf": token, "next": nxt})


def until(get, ok, timeout: float = 5.0):
    """``get()`` again until ``ok`` of its answer, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        r = get()
        if ok(r) or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


def test_sessions_are_signed_revocable_and_profiles_consent_aware(env):
    from feedwise.server.auth import create_key, revoke_key

    world, srv, _ = env
    keys_file = world.settings.keys_file
    key, rec = create_key(keys_file, ["read"], name="temp")
    c = httpx.Client(base_url=srv.url)
    # the key ring re-reads the keys file within 0.5 s: log in as soon as it knows the key
    r = until(lambda: _login(c, key, "/console/care"), lambda r: r.status_code == 303)
    assert r.status_code == 303 and r.headers["location"] == "/console/care"
    assert c.get("/console/care").status_code == 200
    # a cookie altered by one character is not a session
    good = c.cookies["fw_console"]
    bad = httpx.Client(base_url=srv.url, cookies={"fw_console": good[:-1] + (
        "0" if good[-1] != "0" else "1")})
    assert bad.get("/console/care").status_code == 303
    # the consent-aware profile: withheld once the user objects to analytics
    user = "u000005"
    shown = c.get(f"/console/audience?k=3&user={user}").text
    assert f"Profile of {user}" in shown
    admin = {"Authorization": f"Bearer {world.admin}"}
    assert httpx.patch(f"{srv.url}/v1/users/{user}", headers=admin,
                       json={"consent": {"analytics": False}}).status_code == 200
    hidden = c.get(f"/console/audience?k=3&user={user}").text
    assert "has not consented to analytics" in hidden and f"Profile of {user}" not in hidden
    # a revoked key ends its console sessions (the key ring reloads within 0.5 s)
    assert revoke_key(keys_file, rec.key_id)
    r = until(lambda: c.get("/console/care"), lambda r: r.status_code == 303)
    assert r.status_code == 303


def test_a_bad_filter_is_named_on_the_page(env):
    world, srv, _ = env
    c = httpx.Client(base_url=srv.url)
    _login(c, world.read)
    r = c.get("/console/overview?start=yesterday")
    assert r.status_code == 422 and "is not a date (YYYY-MM-DD)" in r.text
    r = c.get("/console/overview?k=3&format=csv&table=nope")
    assert r.status_code == 404
