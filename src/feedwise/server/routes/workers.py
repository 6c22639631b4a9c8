"""What feed worker processes ask the process that owns the store (``feedwise serve
--workers N``; see :mod:`feedwise.server.workers`). Every route needs an ``admin`` key.

- ``GET /v1/workers/state``: the served version, the folder of its materialised lists (saved
  once per version as memory-mappable ``.npy`` files), the catalogue and event counters;
- ``GET /v1/workers/delta?since=SEQ``: the engagement landed after ``SEQ`` (columns
  ``user_id``, ``item_id``, ``kind``), which the workers fold into their users' requests,
  and the lists the owner recomputed after ``since_lists`` (a worker started by ``feedwise
  serve --workers`` asks through its relay instead: :func:`relay_handler`);
- ``POST /v1/workers/served``: impressions of the feeds a worker served, as columns, landed
  by the writer like the owner's own (the count check holds across processes), and under
  ``_ads`` the worker's numbered batches of ad impressions, recorded into the owner's ad
  state (frequency caps, exposure, spend; :mod:`feedwise.feed.adshare`). A worker started
  by ``feedwise serve --workers`` sends them through its relay instead
  (:func:`relay_handler`); the route serves one that has none (tests in one process);
- ``GET /v1/workers/ads?worker=PID``: a full copy of the owner's ad state, for a worker that
  (re)builds its engine or fell behind the ad log.

``GET /v1/workers/delta`` also carries the ad log after ``since_ad`` and the merged spend.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import msgspec
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.encoders import jsonable_encoder

from feedwise.feed import FeedEngine
from feedwise.feed.adshare import spend_of
from feedwise.server.deps import AdminKey, State
from feedwise.server.relay import DeltaAsk, Failure, ServedBatch
from feedwise.server.routes._common import await_future, plain_value
from feedwise.server.routes.events import relayed

router = APIRouter(prefix="/v1/workers", tags=["workers"], include_in_schema=False)


@router.get("/state")
def worker_state(state: State, key: AdminKey) -> dict[str, Any]:
    served = state.served
    got = state._lists
    folder = None
    if served is not None and got is not None and got[0] is served.model:
        folder = state.lists_saved.get(served.version)
        if folder is None:
            with state.swaps_paused():
                folder = tempfile.mkdtemp(prefix=f"feedwise-lists-{served.version}-")
                got[1].save(folder)
                state.lists_saved[served.version] = folder
    return {"version": served.version if served else None, "lists": folder,
            "lists_n": state.settings.materialise_n, "catalogue_seq": state.catalogue_seq,
            "event_seq": state.worker_events.seq, "post_seq": state.worker_post_seq}


@router.get("/delta")
def worker_delta(state: State, key: AdminKey,
                 since: int = Query(ge=0), limit: int = Query(50_000, ge=1, le=500_000),
                 since_post: int = Query(-1, ge=-1), since_ad: int = Query(-1, ge=-1),
                 worker: str = Query("", max_length=64),
                 since_lists: int = Query(0, ge=0)) -> Response:
    """What a worker polls for (a worker started with a relay asks through it instead:
    :class:`~feedwise.server.relay.DeltaAsk`)."""
    return Response(delta_body(state, DeltaAsk(since, since_post, since_ad, worker, limit,
                                               since_lists)),
                    media_type="application/json")


def delta_body(state: Any, ask: DeltaAsk) -> bytes:
    """The JSON of what landed since ``ask``: the engagement as columns (``user_id``,
    ``item_id``, ``kind``; each landing's encoded once for every worker,
    server/engagementlog.py: under heavy ingest a poll carries thousands of events, and
    FastAPI's element-by-element encoding of a returned dict cost more than landing them),
    the new posts, the ad log and merged spend, the lists the owner recomputed
    (server/listslog.py), the counters that call for a rebuild."""
    ads = _ads_delta(state, ask.since_ad, ask.worker)
    events, seq, lost = state.worker_events.since(ask.since, ask.limit)
    lists, lists_seq = state.worker_lists.since(ask.since_lists)
    # posts appended to the live catalogue since the worker's last one (state.post_seq
    # at its build); a gap (the deque overflowed) makes the worker rebuild
    wp, since_post = state.worker_posts, ask.since_post
    posts = (list(itertools.islice(wp, max(since_post - wp[0][0] + 1, 0), None))
             if since_post >= 0 and wp and wp[-1][0] > since_post else [])
    post_gap = since_post >= 0 and bool(wp) and since_post + 1 < wp[0][0]
    # the ad log of half a second of feeds (a thousand rows or more) took 7 ms through
    # FastAPI's encoder, holding the GIL on a thread of the owner while its loop waited:
    # msgspec takes 0.1 ms; the new posts' rows (dates, rare) keep FastAPI's encoder
    body = msgspec.json.encode({
        "posts": jsonable_encoder([p[1] for p in posts]),
        "post_seq": posts[-1][0] if posts else since_post,
        "post_gap": post_gap, "seq": seq, "gap": lost, "lists_seq": lists_seq,
        "catalogue_seq": state.catalogue_seq,
        "version": state.served.version if state.served else None, **ads}, enc_hook=plain_value)
    return body[:-1] + b',"events":' + events.encode() + b',"lists":' + lists + b"}"


def _engine(state: Any) -> FeedEngine | None:
    served = state.served
    policy = served.policy if served is not None else None
    return policy if isinstance(policy, FeedEngine) else None


def _ads_delta(state: Any, since: int, worker: str) -> dict[str, Any]:
    """The ad log after ``since`` and the merged spend (``ad_gap``: resynchronise)."""
    log, engine = getattr(state, "ad_log", None), _engine(state)
    if log is None or engine is None:
        return {}
    ack = log.acked.get(worker, 0)  # before the spend: a batch merged in between is
    rows, seq, gap = log.since(since)  # counted twice for one poll, never missed
    return {"ads": rows, "ad_seq": seq, "ad_gap": gap or since < 0, "ad_ack": ack,
            "spend": spend_of(engine.state.ads), **log.terms()}


@router.get("/ads")
async def worker_ads(state: State, key: AdminKey,
                     worker: str = Query("", max_length=64)) -> dict[str, Any]:
    """A full copy of the owner's ad state (on the event loop, where feeds are composed and
    worker batches merged, so the copy, the log position and the ack agree)."""
    log, engine = getattr(state, "ad_log", None), _engine(state)
    if log is None or engine is None:
        raise HTTPException(404, "no shared ad state (not serving a feed engine with workers)")
    return engine.with_state(lambda st: log.dump(st.ads, worker))


@router.post("/served")
async def worker_served(request: Request, state: State, key: AdminKey) -> dict[str, int]:
    """A worker's impressions over HTTP (a worker started with a relay sends them through
    it instead: :func:`relay_handler`)."""
    cols = msgspec.json.decode(await request.body())  # 3x json.loads, on the loop
    ads = cols.pop("_ads", None)
    try:
        done = take_served(state, cols, ads)
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    if done is not None:
        await await_future(done, state.settings.write_timeout_s)
    return {"rows": len(cols.get("event_id", ()))}


def take_served(state: Any, cols: dict[str, list[Any]], ads: Any) -> Future | None:
    """Record a worker's ad impressions ``ads`` into the owner's ad state and hand its
    impressions ``cols`` to the writer, as the owner's own (the count check holds across
    processes); the writer's future when it lands them synchronously.

    Raises:
        ValueError: A column without one value per row.
        WriterClosedError: The writer takes nothing more.
    """
    log, engine = getattr(state, "ad_log", None), _engine(state)
    merged = 0
    if ads and log is not None and engine is not None:
        # under the engine's lock: feeds compose, and an erasure forgets users, elsewhere
        merged = engine.with_state(lambda st: log.merge(st.ads, ads))
    if not cols.get("event_id"):
        if merged:  # persisted with the writer's next landing
            state.writer.call(lambda store: engine.flush())
        return None
    # the merged ads' frequency and spend rows are saved with these impressions
    return state.writer.log_served(cols, engine.flush if merged else None)


def relay_handler(state: Any) -> Callable[[Any, Callable[[Any], None]], None]:
    """What the owner does with each frame of a worker's relay (:mod:`feedwise.server.relay`),
    on the relay's thread: an event batch is decoded, checked and stored as
    ``POST /v1/events`` does (:func:`~feedwise.server.routes.events.relayed`); a
    :class:`~feedwise.server.relay.ServedBatch` is :func:`take_served`, answered with the
    rows taken once they are (with ``writer_sync``: once they are committed); a
    :class:`~feedwise.server.relay.DeltaAsk` is answered with :func:`delta_body`."""
    events = relayed(state.writer)

    def served(batch: ServedBatch, reply: Callable[[Any], None]) -> None:
        n = len(batch.columns.get("event_id", ()))
        done = take_served(state, batch.columns, batch.ads)  # raised: a Failure answer
        if done is None:
            return reply(n)
        done.add_done_callback(
            lambda f: reply(n if f.exception() is None else Failure(str(f.exception()))))
        return None

    def handle(payload: Any, reply: Callable[[Any], None]) -> None:
        if isinstance(payload, DeltaAsk):
            return reply(delta_body(state, payload))
        return (served if isinstance(payload, ServedBatch) else events)(payload, reply)

    return handle
