"""The FastAPI app: ``create_app(settings)`` wires settings, state, routers and errors.

Run it with ``feedwise serve`` (uvicorn, one process: DuckDB has one writer) or, for a
quick look, ``uvicorn --factory feedwise.server.app:create_app``. OpenAPI docs are at
``/docs``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from feedwise.errors import (
    AuthError,
    ConfigError,
    ConsentError,
    DataError,
    FeedwiseError,
    NotFoundError,
)
from feedwise.privacy.redaction import install as install_log_redaction
from feedwise.server.apidocs import install_docs
from feedwise.server.bodies import BodyGuard
from feedwise.server.console import router as console_router
from feedwise.server.deps import ServiceState, serving_runtime
from feedwise.server.metrics import LatencyMiddleware
from feedwise.server.routes import (
    admin,
    campaigns,
    edges,
    events,
    feed,
    health,
    items,
    listening,
    messages,
    models,
    notifications,
    recommendations,
    reports,
    users,
    workers,
)
from feedwise.server.settings import Settings, get_settings
from feedwise.server.writer import WriterClosedError

log = logging.getLogger("feedwise.server")

ROUTERS = (health.router, feed.router, recommendations.router, events.router, items.router,
           users.router, campaigns.router, models.router, reports.router, messages.router,
           notifications.router, listening.router, edges.router, admin.router,
           console_router, workers.router)

_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (NotFoundError, 404), (AuthError, 401), (ConsentError, 403), (WriterClosedError, 503),
    (DataError, 422), (ConfigError, 422))


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app with its own state (store, writer, model) opened at start-up.

    Args:
        settings: The settings; default :func:`get_settings` (``FEEDWISE_*`` variables).
    """
    settings = settings or get_settings()
    # request logs never carry user ids, at any level (trace lines print whole scopes)
    install_log_redaction()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ServiceState(settings)
        app.state.feedwise = state
        state.start_watcher()
        try:
            with serving_runtime(settings):
                yield
        finally:
            state.close()  # flushes every queued write before the store closes

    app = FastAPI(title="feedwise", version="0.1.0", lifespan=lifespan,
                  summary="Feeds, recommendations and event collection.",
                  docs_url=None, redoc_url=None)  # /docs: packaged assets, no CDN
    install_docs(app)
    # no dependency_overrides here: FastAPI rebuilds every dependency per request when any
    # override exists; the routes read the settings from the app state instead
    for r in ROUTERS:
        app.include_router(r)
    feed.install_fast_path(app)

    @app.exception_handler(FeedwiseError)
    async def feedwise_error(request: Request, exc: FeedwiseError) -> JSONResponse:
        status = next((s for t, s in _STATUS if isinstance(exc, t)), 400)
        detail = "unauthorized" if status == 401 else str(exc)
        return JSONResponse({"detail": detail}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors())
        try:
            return JSONResponse({"detail": errors}, status_code=422)
        except ValueError:  # UnicodeEncodeError too: the echoed input is a lone surrogate
            # or NaN, which JSON cannot carry; loc and msg still name the field
            return JSONResponse({"detail": [{k: v for k, v in e.items() if k != "input"}
                                            for e in errors]}, status_code=422)

    # bodies of every route but /v1/events (which streams its own) are read under the byte
    # limit and checked for depth off the event loop before FastAPI decodes them
    app.add_middleware(BodyGuard, max_bytes=lambda: settings.max_json_body_bytes,
                       skip=("/v1/events",))
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "X-Request-ID"])
    metrics_holder = _MetricsProxy(app)
    app.add_middleware(LatencyMiddleware, metrics=metrics_holder)
    return app


class _MetricsProxy:
    """The app's metrics, looked up when first used (state exists only after start-up)."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    @property
    def latency(self):  # noqa: ANN201 - a prometheus Histogram
        return self._app.state.feedwise.metrics.latency
