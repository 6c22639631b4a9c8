"""``GET /v1/alerts``: bursts of negative sentiment or volume per tracked keyword, and
``POST /v1/alerts/notify``: the same, with the new alerts posted to a webhook.

Alerts come from :class:`~feedwise.analytics.alerts.BurstDetector` over consenting users'
comments (:mod:`feedwise.analytics.listening`), scored by the default sentiment analyser.
The detector reads ``warmup_hours`` of history before the window so the baseline is learned
when the window opens.

The webhook is configured by the operator, never by the request: ``FEEDWISE_ALERT_WEBHOOK``
(an ``http(s)://`` URL). The POST of new alerts (JSON ``{"alerts": [...]}``) runs after the
response is sent, with a timeout (``FEEDWISE_ALERT_WEBHOOK_TIMEOUT_S``, default 2 s), so no
request waits on a slow receiver; alerts already delivered by this process (by
``alert_id``) are not sent again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Query
from pydantic import BaseModel

from feedwise.analytics.alerts import METRICS, Alert, BurstDetector
from feedwise.analytics.listening import comments_from_scope, default_keywords, score_comments
from feedwise.analytics.scope import Scope
from feedwise.errors import ConfigError
from feedwise.server.deps import AdminKey, ReadKey, State

router = APIRouter(tags=["listening"])
log = logging.getLogger("feedwise.server.alerts")
WEBHOOK_ENV = "FEEDWISE_ALERT_WEBHOOK"
TIMEOUT_ENV = "FEEDWISE_ALERT_WEBHOOK_TIMEOUT_S"
_sent: set[str] = set()
_sent_lock = threading.Lock()


class AlertsReport(BaseModel):
    start: datetime
    end: datetime
    keywords: list[str]
    alerts: list[dict[str, Any]]
    webhook: str | None = None


def find_alerts(state: Any, days: float, keywords: list[str] | None, metrics: list[str],
                k: int = 10, now: datetime | None = None, scope_cls: type[Scope] = Scope,
                analyser: Any = None) -> tuple[datetime, datetime, list[Alert], list[str]]:
    """Alerts detected in the last ``days`` days (with the detector's warm-up before);
    ``scope_cls``: a ``Scope`` subclass to read the comments on, ``analyser``: the
    sentiment analyser (default: the default one; the console passes one that remembers
    the texts it scored)."""
    det = BurstDetector()
    end = now or datetime.now(UTC)
    start = end - timedelta(days=days)
    with scope_cls(state.store, start - timedelta(hours=det.warmup_hours), end, k=k) as scope:
        comments = comments_from_scope(scope)
    scored = score_comments(comments, analyser)
    kws = keywords or default_keywords(scored)
    alerts = det.detect(scored, kws, metrics=metrics,
                        start=start - timedelta(hours=det.warmup_hours), end=end)
    return start, end, [a for a in alerts if a.detected_at >= start], kws


def post_webhook(url: str, alerts: list[dict[str, Any]], timeout_s: float) -> bool:
    """POST ``{"alerts": [...]}`` to ``url``; ``False`` (logged) on any failure or timeout."""
    body = json.dumps({"alerts": alerts}, default=str).encode()
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 (operator URL)
            ok = 200 <= resp.status < 300
    except Exception as e:  # a receiver's failure never fails the service
        log.warning("alert webhook failed: %s", type(e).__name__)
        return False
    if ok:
        with _sent_lock:
            _sent.update(a["alert_id"] for a in alerts)
    return ok


def _webhook() -> tuple[str | None, float]:
    url = os.environ.get(WEBHOOK_ENV) or None
    if url and not url.startswith(("http://", "https://")):
        raise ConfigError(f"{WEBHOOK_ENV} must be an http(s):// URL, got {url[:40]!r}")
    try:
        timeout = float(os.environ.get(TIMEOUT_ENV, "2"))
    except ValueError:
        raise ConfigError(f"{TIMEOUT_ENV} must be a number of seconds") from None
    return url, min(max(timeout, 0.1), 30.0)


Keywords = Annotated[list[str] | None, Query(description="Tracked keywords (repeat); "
                                             "default: the most-commented tags.")]
Days = Annotated[float, Query(gt=0, le=366)]
Metric = Annotated[list[Literal["negative", "volume"]] | None, Query()]


@router.get("/v1/alerts", response_model=AlertsReport, summary="Burst alerts per keyword")
def get_alerts(state: State, key: ReadKey, days: Days = 1.0, keyword: Keywords = None,
               metric: Metric = None, k: Annotated[int, Query(ge=1, le=10_000)] = 10
               ) -> AlertsReport:
    """Alerts of the last ``days`` days, each with its window, baseline, observed count and
    sample comments."""
    start, end, alerts, kws = find_alerts(state, days, keyword, list(metric or METRICS), k)
    return AlertsReport(start=start, end=end, keywords=kws,
                        alerts=[a.as_dict() for a in alerts])


@router.post("/v1/alerts/notify", response_model=AlertsReport,
             summary="Detect alerts and post the new ones to the configured webhook")
def notify_alerts(state: State, key: AdminKey, background: BackgroundTasks, days: Days = 1.0,
                  keyword: Keywords = None, metric: Metric = None,
                  k: Annotated[int, Query(ge=1, le=10_000)] = 10) -> AlertsReport:
    """Like ``GET /v1/alerts``; alerts not yet delivered go to ``FEEDWISE_ALERT_WEBHOOK``
    after the response (with a timeout)."""
    url, timeout = _webhook()
    start, end, alerts, kws = find_alerts(state, days, keyword, list(metric or METRICS), k)
    out = [a.as_dict() for a in alerts]
    with _sent_lock:
        new = [a for a in out if a["alert_id"] not in _sent]
    if url and new:
        background.add_task(post_webhook, url, new, timeout)
    return AlertsReport(start=start, end=end, keywords=kws, alerts=out,
                        webhook=(f"{len(new)} new alert(s) queued" if url and new else
                                 "no new alerts" if url else f"{WEBHOOK_ENV} not set"))
