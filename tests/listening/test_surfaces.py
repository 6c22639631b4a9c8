"""The listening surfaces: ``GET /v1/alerts`` and the webhook, ``feedwise listen`` and
``feedwise alerts``, the report section, integer counts in CSV, and TextProfileSource."""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from feedwise.analytics.alerts import BurstDetector
from feedwise.analytics.scope import Scope
from feedwise.cli import app as cli_app
from feedwise.datasets.synthetic import synthetic_social
from feedwise.datasets.synthetic_text import inject_bursts
from feedwise.feed.candidates import TextProfileSource
from feedwise.feed.catalog import Catalog
from feedwise.itemlist import ItemList
from feedwise.models import get_model
from feedwise.ranking.features import label_impressions
from feedwise.ranking.text import TextEngagement
from feedwise.registry import ModelRegistry
from feedwise.report.listening import listening_section, render_listening_html
from feedwise.server.app import create_app
from feedwise.server.auth import create_key
from feedwise.server.routes.listening import post_webhook
from feedwise.server.settings import Settings
from feedwise.store import EventStore

NOW = datetime.now(UTC).replace(microsecond=0)


def _shifted_world():
    """A 6-day world with one strong negative burst, moved so that it ends now."""
    w = synthetic_social(n_users=300, n_posts=900, n_days=6, n_campaigns=3, seed=5)
    bursts = inject_bursts(w, 1, seed=5, warmup_days=3.0, rate_per_hour=(18.0, 20.0),
                           hours=(2.5, 3.0))
    delta = pd.Timedelta(NOW - w.truth["end"]).floor("s")
    w.events["ts"] = pd.to_datetime(w.events["ts"], utc=True) + delta
    for col in ("created_at",):
        if col in w.items:
            w.items[col] = pd.to_datetime(w.items[col], utc=True) + delta
    if "ts" in w.edges:
        w.edges["ts"] = pd.to_datetime(w.edges["ts"], utc=True) + delta
    b = bursts[0]
    return w, b.keyword, b.onset + delta.to_pytimedelta()


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A store file of the shifted world, a registry with a promoted model and API keys."""
    root = tmp_path_factory.mktemp("listening")
    w, kw, onset = _shifted_world()
    db = root / "db.duckdb"
    with EventStore(db) as store:
        w.load_into(store)
        data = store.interactions()
    reg = ModelRegistry(root / "registry")
    reg.promote(reg.register(get_model("popularity").fit(data)).version)
    keys = root / "keys.json"
    admin, _ = create_key(keys, ["admin"])
    read, _ = create_key(keys, ["read"])
    settings = Settings(db=str(db), registry=str(reg.root), keys_file=str(keys),
                        reload_interval_s=0)
    return SimpleNamespace(root=root, db=db, world=w, keyword=kw, onset=onset,
                           settings=settings, admin=admin, read=read)


class _Receiver:
    """A local webhook receiver; ``hold`` (an Event) keeps each request open until set."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        got: list[dict] = []
        self.got = got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hold is not None:
                    hold.wait(30)
                got.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------- HTTP
def test_get_alerts_finds_the_burst_with_evidence(shop):
    with TestClient(create_app(shop.settings)) as c:
        r = c.get("/v1/alerts", params={"days": 4, "keyword": [shop.keyword, "cooking"]},
                  headers={"Authorization": f"Bearer {shop.read}"})
        assert r.status_code == 200, r.text
        doc = r.json()
        neg = [a for a in doc["alerts"] if a["metric"] == "negative"]
        assert [a["keyword"] for a in neg] == [shop.keyword]
        a = neg[0]
        detected = datetime.fromisoformat(a["detected_at"])
        assert shop.onset <= detected <= shop.onset + timedelta(hours=1)
        assert a["observed"] > a["baseline"] and a["samples"]
        assert shop.keyword.lower() in a["samples"][0]["text"].lower()
        assert isinstance(a["observed"], int)
        # a reader may not trigger the webhook; no key at all is refused
        assert c.post("/v1/alerts/notify", headers={
            "Authorization": f"Bearer {shop.read}"}).status_code in (401, 403)
        assert c.get("/v1/alerts").status_code == 401


def test_notify_posts_new_alerts_once_to_the_webhook(shop, monkeypatch):
    from feedwise.server.routes import listening as route

    monkeypatch.setattr(route, "_sent", set())
    with _Receiver() as rx, TestClient(create_app(shop.settings)) as c:
        monkeypatch.setenv("FEEDWISE_ALERT_WEBHOOK", rx.url)
        h = {"Authorization": f"Bearer {shop.admin}"}
        params = {"days": 4, "keyword": [shop.keyword], "metric": ["negative"]}
        r = c.post("/v1/alerts/notify", params=params, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["webhook"] == "1 new alert(s) queued"
        assert len(rx.got) == 1  # TestClient runs the background task before returning
        assert [a["keyword"] for a in rx.got[0]["alerts"]] == [shop.keyword]
        again = c.post("/v1/alerts/notify", params=params, headers=h).json()
        assert again["webhook"] == "no new alerts" and len(rx.got) == 1
        monkeypatch.setenv("FEEDWISE_ALERT_WEBHOOK", "ftp://nope")
        assert c.post("/v1/alerts/notify", params=params, headers=h).status_code == 422


def test_slow_or_dead_webhook_gives_up_without_raising():
    hold = threading.Event()
    with _Receiver(hold) as rx:
        # the receiver holds the request until released: the post gives up at its timeout
        # while the receiver still holds it (the release comes only after the return)
        ok = post_webhook(rx.url, [{"alert_id": "slow1"}], timeout_s=0.2)
        still_holding = not hold.is_set()
        hold.set()
        assert ok is False and still_holding
    with _Receiver() as rx:
        dead = rx.url
    assert post_webhook(dead, [{"alert_id": "dead1"}], timeout_s=0.5) is False
    from feedwise.server.routes import listening as route

    assert "slow1" not in route._sent and "dead1" not in route._sent


# ---------------------------------------------------------------------------- CLI
def test_cli_listen_prints_tables_and_integer_csv(shop):
    runner = CliRunner()
    r = runner.invoke(cli_app, ["listen", "--db", str(shop.db), "--keyword", "running",
                                "--keyword", "cooking", "--k", "1"])
    assert r.exit_code == 0, r.output
    assert "sentiment by keyword" in r.output and "share of voice" in r.output
    r = runner.invoke(cli_app, ["listen", "--db", str(shop.db), "--keyword", "running",
                                "--grain", "day", "--k", "1", "--format", "csv"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert rows and {"group", "period", "comments", "users"} <= set(rows[0])
    for row in rows:  # counts print as integers, not 18.0
        for col in ("comments", "users", "negative", "neutral", "positive"):
            assert row[col].isdigit(), (col, row[col])
    bad = runner.invoke(cli_app, ["listen", "--db", str(shop.db), "--grain", "week"])
    assert bad.exit_code == 2 and "error:" in bad.output


def test_cli_alerts_reports_the_burst(shop):
    runner = CliRunner()
    since = (shop.onset - timedelta(days=1)).date().isoformat()
    r = runner.invoke(cli_app, ["alerts", "--db", str(shop.db), "--keyword", shop.keyword,
                                "--keyword", "cooking", "--from", since, "--format", "json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    neg = [a for a in got if a["metric"] == "negative"]
    assert [a["keyword"] for a in neg] == [shop.keyword]
    assert neg[0]["samples"] and neg[0]["observed"] >= 4
    r = runner.invoke(cli_app, ["alerts", "--db", str(shop.db), "--keyword", shop.keyword,
                                "--from", since])
    assert r.exit_code == 0 and shop.keyword in r.output
    bad = runner.invoke(cli_app, ["alerts", "--db", str(shop.db), "--metric", "loud"])
    assert bad.exit_code == 2 and "error:" in bad.output


# ---------------------------------------------------------------------------- report
def test_report_section_renders(shop):
    w = shop.world
    with EventStore(shop.db, read_only=True) as store:
        start = pd.Timestamp(w.events["ts"].min()).to_pydatetime()
        with Scope(store, start, NOW + timedelta(hours=1), k=3) as scope:
            sec = listening_section(scope)
        with Scope(store, NOW + timedelta(days=1), NOW + timedelta(days=2), k=3) as scope:
            empty = listening_section(scope)
    assert sec["comments"] > 100
    assert len(sec["keywords"]) and (sec["keywords"]["users"] >= 3).all()
    page = render_listening_html(sec)
    assert "<h2>Listening</h2>" in page and "Share of voice" in page
    assert str(sec["keywords"]["group"].iloc[0]) in page
    assert "user_id" not in page and "<script" not in page
    assert empty == {"comments": 0} and render_listening_html(empty) == ""


# ---------------------------------------------------------------------------- ranking
def test_text_profile_source_ranks_live_posts_by_learned_profile():
    w = synthetic_social(n_users=300, n_posts=600, n_days=4, n_campaigns=0, seed=9,
                         text_effect=1.5)
    imps = label_impressions(w.events)
    posts = w.items[w.items["kind"] == "post"].reset_index(drop=True)
    texts = pd.Series(posts["text"].to_numpy(), index=posts["item_id"])
    m = TextEngagement(features="hashing").fit(texts, imps, label="click")
    cat = Catalog.from_frame(posts)
    src = TextProfileSource(m, cat, texts.reindex(cat.item_ids).tolist())
    user = next(u for u in imps["user_id"].astype(str).unique()
                if m.user_vector(u) is not None)
    now_s = float(np.median(cat.created_s))
    got = src.candidates(SimpleNamespace(user_id=user, now_s=now_s), 20)
    assert isinstance(got, ItemList) and len(got) == 20
    idx = np.asarray(got.index)
    assert (cat.created_s[idx] <= now_s).all()  # nothing from the future
    assert np.all(np.diff(np.asarray(got.scores)) <= 1e-6)  # best first
    # the order is the learned profile's: appeal + the user's text profile
    expect = src.appeal + src.item_vectors @ np.asarray(m.user_vector(user), np.float32)
    live = np.flatnonzero(cat.created_s <= now_s)
    best = live[np.argsort(-expect[live], kind="stable")[:20]]
    assert set(idx) == set(best)
    # posts with engaging words outrank posts with dull ones among the candidates
    hooks = [texts[cat.item_ids[i]] for i in idx]
    assert sum("giveaway" in t or "exclusive" in t for t in hooks) > sum(
        "repost" in t or "rerun" in t for t in hooks)
    assert len(src.candidates(SimpleNamespace(user_id="nobody", now_s=now_s), 5)) == 0
    assert src.forget_user(user) and len(src.candidates(
        SimpleNamespace(user_id=user, now_s=now_s), 5)) == 0


def test_detector_counts_a_user_once_per_hour():
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    rows = [{"event_id": f"b{i}", "user_id": f"u{i % 40}", "item_id": "p1",
             "ts": t0 + timedelta(hours=i * 72 / 40), "text": "acme is fine",
             "label": "neutral"} for i in range(40)]
    # one user posting twelve comments in 24 minutes: a session, not a storm
    rows += [{"event_id": f"s{i}", "user_id": "chatty", "item_id": "p1",
              "ts": t0 + timedelta(hours=60, minutes=2 * i), "text": "acme acme",
              "label": "neutral"} for i in range(12)]
    c = pd.DataFrame(rows)
    assert BurstDetector().detect(c, ["acme"], metrics=["volume"]) == []
    loud = BurstDetector(dedup_minutes=0).detect(c, ["acme"], metrics=["volume"])
    assert len(loud) == 1  # counted comment by comment, the session looks like a burst
    # twelve different people in the same 24 minutes are a burst
    c2 = c.assign(user_id=[*c["user_id"][:40], *(f"v{i}" for i in range(12))])
    assert len(BurstDetector().detect(c2, ["acme"], metrics=["volume"])) == 1
