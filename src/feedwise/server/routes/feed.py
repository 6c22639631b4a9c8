"""``GET /v1/users/{user_id}/feed``: the composed feed, every slot logged as an impression."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

import msgspec
from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import BaseModel
from starlette.routing import Match, Route

from feedwise.feed.types import Feed, FeedRequest
from feedwise.server.deps import FreshRequestId, ServingDeps, bearer_key, request_id_of
from feedwise.server.routes._common import ID_MAX, await_future
from feedwise.store.serving import SERVED_ID_PREFIX

router = APIRouter(prefix="/v1/users", tags=["feed"])

UserId = Annotated[str, Path(min_length=1, max_length=ID_MAX)]


class SlotOut(BaseModel):
    position: int
    item_id: str
    kind: Literal["organic", "ad"]
    score: float | None  # null when not finite
    propensity: float
    campaign_id: str | None = None
    reasons: list[str]


class FeedOut(BaseModel):
    request_id: str
    user_id: str
    model_version: str
    #: ``{"version", "lambda", "source"}`` (+ ``experiment``, ``variant`` in one, and the
    #: engine's ``name``): which policy version served the feed
    policy: dict[str, Any]
    served_at: datetime
    slots: list[SlotOut]


def impression_rows(feed: Feed, request_id: str, version: str, surface: str,
                    session_id: str | None, extra: dict[str, Any] | None = None
                    ) -> dict[str, list[Any]]:
    """One impression event per served slot (``ad_impression`` for ads), with propensity,
    as columns for :meth:`~feedwise.server.writer.Writer.log_served`.

    Event ids are ``srv:<request id>:<position>``: in the service's namespace, which no
    client event may use, and a retried request with the same ``X-Request-ID`` logs nothing
    twice (the store skips ids it holds).
    """
    slots = feed.slots
    n = len(slots)
    ctx = json.dumps({"request_id": request_id, "model_version": version,
                      "policy": feed.policy, **(extra or {})}, separators=(",", ":"))
    return {
        "event_id": [f"{SERVED_ID_PREFIX}{request_id}:{p}" for p in range(n)],
        "user_id": [feed.request.user_id] * n,
        "item_id": [s.item_id for s in slots],
        "kind": ["ad_impression" if s.kind == "ad" else "impression" for s in slots],
        "ts": [round(feed.request.now.timestamp() * 1e6)] * n,  # UTC microseconds
        # an ad's charge for being shown (CPM), so spend has one figure everywhere
        "value": [s.impression_charge if s.kind == "ad" else None for s in slots],
        "position": list(range(n)), "surface": [surface] * n,
        "session_id": [session_id] * n, "propensity": [float(s.propensity) for s in slots],
        "context": [ctx if not s.campaign_id else
                    f'{ctx[:-1]},"campaign_id":{json.dumps(s.campaign_id)}}}' for s in slots]}


#: The route's limits on ``n`` and ``surface`` (the fast path checks the same ones).
N_MAX = 1000
SURFACE_MAX = 64


@router.get("/{user_id}/feed", response_model=FeedOut, summary="A user's composed feed")
async def get_feed(user_id: UserId, deps: ServingDeps,
             n: Annotated[int, Query(ge=1, le=N_MAX)] = 20,
             surface: Annotated[str, Query(max_length=SURFACE_MAX)] = "feed",
             session_id: Annotated[str | None, Query(max_length=ID_MAX)] = None) -> Response:
    """Organic posts and ads, ranked, with reasons; every slot is logged as an impression
    with its propensity and this request's id (``X-Request-ID`` or a fresh one).

    Composition is CPU-bound and short, so it runs on the event loop: a worker-thread hop
    costs more than it saves in one process (the GIL), and the writer has its own thread.
    A well-formed request is answered by :class:`FastFeed` before it gets here.
    """
    return await answer(deps.state, deps.served, deps.request_id, user_id, n, surface,
                        session_id)


async def answer(state: Any, served: Any, rid: str, user_id: str, n: int, surface: str,
                 session_id: str | None) -> Response:
    """The feed of ``user_id`` as the route answers it (``state``: the service's or a
    worker's, ``served``: its served snapshot, ``rid``: the request id)."""
    if n > state.settings.max_n:
        raise HTTPException(422, f"n={n} is above the limit {state.settings.max_n}")
    uid = state.user_key(user_id)  # the pseudonym when ids are pseudonymised
    req = FeedRequest(user_id=uid, n=n, now=datetime.now(UTC), request_id=rid,
                      context={"surface": surface, "session_id": session_id,
                               "consent_personalization": uid not in state.no_personalization,
                               "consent_ads": uid not in state.no_ads})
    arm = state.rollout.arm(uid)  # the applied policy, or the user's experiment arm
    feed = state.rollout.compose(served.policy, req, arm, served.arms)
    m = state.metrics
    m.feeds_served.inc()
    n_ads = len(feed.ad_slots)
    m.slots_served.labels("organic").inc(len(feed) - n_ads)
    if n_ads:
        m.slots_served.labels("ad").inc(n_ads)
        m.ads_served.inc(n_ads)
    if state.settings.log_impressions and feed.slots:
        # never block the loop on a full queue: 503, the client retries (same request id)
        # the engine's ad state is flushed with them; with writer_sync the feed is answered
        # only once both are committed (a kill -9 then loses nothing acknowledged)
        rows = impression_rows(feed, rid, arm.model_version or served.version, surface,
                               session_id, arm.log_context())
        if isinstance(rid, FreshRequestId):  # no earlier landing can hold these ids
            rows["new_id"] = [True] * len(feed.slots)
        done = state.writer.log_served(rows, getattr(served.policy, "flush", None))
        if done is not None:
            await await_future(done, state.settings.write_timeout_s)
    # the body is written straight from the feed: FeedOut documents it (response_model) but
    # validating 20 freshly built slots again would cost a third of the request
    body = {"request_id": str(rid), "user_id": user_id,  # str: msgspec takes no subclass
            "model_version": arm.model_version or served.version,
            "policy": {**arm.describe(), "name": feed.policy}, "served_at": req.now.isoformat(),
            "slots": [{"position": i, "item_id": s.item_id, "kind": s.kind,
                       "score": _finite(s.score), "propensity": float(s.propensity),
                       "campaign_id": s.campaign_id, "reasons": list(s.reasons)}
                      for i, s in enumerate(feed.slots)]}
    # msgspec: the same JSON (UTF-8, not \u escapes) in a seventh of json.dumps's time
    return Response(msgspec.json.encode(body), media_type="application/json")


def _finite(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


class FastFeed:
    """``GET /v1/users/{user_id}/feed`` without FastAPI's per-request work.

    Resolving the route's dependencies and parameters costs about 0.15 ms of server CPU a
    feed (of about 2 ms) in FastAPI. This plain Starlette route, put in front of the
    documented one by :func:`install_fast_path`, reads a well-formed request itself (the
    parameters within the route's limits, each at most once; a ``read`` key; a promoted
    model) and answers it through :func:`answer`, as the route does. Anything else is handed
    on to the documented route, which answers it as before (422, 401, 403, 503, ...).
    """

    def __init__(self) -> None:
        self.route = _FastRoute("/v1/users/{user_id}/feed", self, methods=["GET"],
                                include_in_schema=False)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        got = _well_formed(scope)
        state = scope["app"].state.feedwise
        served = state.served
        if got is not None and served is not None and got[1] <= state.settings.max_n:
            owner = getattr(state, "forward_feed", None)  # a feed worker's way to its owner
            if owner is not None and got[1] > state.settings.owner_feeds_above_n:
                await owner(scope, receive, send)  # a large page: composed by the owner
                return
            auth = rid = None
            for k, v in scope["headers"]:
                if k == b"authorization" and auth is None:
                    auth = v.decode("latin-1")
                elif k == b"x-request-id" and rid is None:
                    rid = v.decode("latin-1")
            try:
                bearer_key(state, auth, "read")
            except HTTPException:
                pass  # the route answers 401 / 403
            else:
                scope["route"] = self.route  # its template labels the latency metric
                response = await answer(state, served, request_id_of(rid), *got)
                await response(scope, receive, send)
                return
        scope[_HANDED_ON] = True
        await scope["app"].router(scope, receive, send)


_HANDED_ON = "feedwise.fast_feed_handed_on"


class _FastRoute(Route):
    """Matches GET requests not handed on yet (:class:`FastFeed`)."""

    def matches(self, scope: dict) -> tuple[Match, dict]:
        if scope.get(_HANDED_ON) or scope.get("method") != "GET":
            return Match.NONE, {}
        return super().matches(scope)


def _well_formed(scope: dict) -> tuple[str, int, str, str | None] | None:
    """``(user_id, n, surface, session_id)`` of a request the route would take as it is
    (non-empty values within its limits, each parameter at most once; others ignored, as
    the route ignores them), else ``None``."""
    user_id = scope["path_params"].get("user_id", "")
    if not 0 < len(user_id) <= ID_MAX:
        return None
    n, surface, session_id = 20, "feed", None
    if scope["query_string"]:
        seen: set[str] = set()
        for k, v in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True):
            if k in seen or (k in _PARAMS and not v):
                return None
            seen.add(k)
            if k == "n":
                if not (v.isascii() and v.isdigit() and len(v) <= 4):
                    return None
                n = int(v)
                if not 1 <= n <= N_MAX:
                    return None
            elif k == "surface":
                if len(v) > SURFACE_MAX:
                    return None
                surface = v
            elif k == "session_id":
                if len(v) > ID_MAX:
                    return None
                session_id = v
    return user_id, n, surface, session_id


_PARAMS = frozenset({"n", "surface", "session_id"})


def install_fast_path(app: Any) -> None:
    """Answer well-formed feed requests of ``app`` (the service's or a worker's) through
    :class:`FastFeed`, ahead of every other route."""
    app.router.routes.insert(0, FastFeed().route)
