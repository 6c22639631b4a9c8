"""Prometheus metrics of the service (one registry per app, so apps never share counters)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    """The service's counters, histograms and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.latency = Histogram("feedwise_request_seconds", "HTTP request latency",
                                 ["method", "route", "status"], buckets=BUCKETS, registry=r)
        self.events_ingested = Counter("feedwise_events_ingested",
                                       "Events landed in the store", registry=r)
        self.events_duplicate = Counter("feedwise_events_duplicate",
                                        "Events already stored (retries)", registry=r)
        self.events_rejected = Counter("feedwise_events_rejected",
                                       "Events rejected by validation", registry=r)
        self.feeds_served = Counter("feedwise_feeds_served", "Feeds composed", registry=r)
        self.slots_served = Counter("feedwise_slots_served", "Slots served", ["kind"],
                                    registry=r)
        self.ads_served = Counter("feedwise_ads_served", "Ad slots served", registry=r)
        self.model_version = Gauge("feedwise_model_version_info",
                                   "1 for the served model version", ["version", "model"],
                                   registry=r)
        self.model_swaps = Counter("feedwise_model_swaps", "Hot swaps to a new version",
                                   registry=r)
        self.writer_pending = Gauge("feedwise_writer_pending_jobs",
                                    "Jobs queued for the writer", registry=r)

    def on_ingest(self, accepted: int, duplicates: int, rejected: int) -> None:
        self.events_ingested.inc(accepted)
        self.events_duplicate.inc(duplicates)
        self.events_rejected.inc(rejected)

    def set_model(self, version: str, model: str) -> None:
        self.model_version.clear()
        self.model_version.labels(version=version, model=model).set(1)


class LatencyMiddleware:
    """Pure ASGI middleware timing every HTTP request by route template (not raw path)."""

    def __init__(self, app: Any, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = {"code": 500}

        async def _send(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                status["code"] = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, _send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "<unmatched>"
            self.metrics.latency.labels(scope["method"], path, str(status["code"])).observe(
                time.perf_counter() - t0)
