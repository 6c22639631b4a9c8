"""``/healthz`` (the process is up), ``/readyz`` (a model is served) and ``/metrics``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from feedwise.server.deps import State, bearer, require

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: a model is loaded and the writer runs",
            responses={503: {"description": "Not ready"}})
async def readyz(state: State) -> JSONResponse:
    served, writer = state.served, state.writer.alive
    ok = served is not None and writer
    return JSONResponse({"status": "ready" if ok else "not ready",
                         "model_version": served.version if served else None,
                         "writer": writer}, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request, state: State,
            creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None
            ) -> Response:
    """Request latency histograms, events ingested, feeds and ads served, model version.

    Needs a key with ``metrics_scope`` (default ``metrics``) unless ``metrics_public``."""
    if not state.settings.metrics_public:
        await require(state.settings.metrics_scope)(request, creds)
    state.metrics.writer_pending.set(state.writer.pending())
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
