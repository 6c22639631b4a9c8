"""What feed worker processes ask the process that owns the store (``feedwise serve
--workers N``; see :mod:`feedwise.server.workers`). Every route needs an ``admin`` key.

- ``GET /v1/workers/state``: the served version, the folder of its materialised lists (saved
  once per version as memory-mappable ``.npy`` files), the catalogue and event counters;
- ``GET /v1/workers/delta?since=SEQ``: the engagement landed after ``SEQ`` (columns
  ``user_id``, ``item_id``, ``kind``), for the workers' own list refresh;
- ``POST /v1/workers/served``: impressions of the feeds a worker served, as columns, landed
  by the writer like the owner's own (the count check holds across processes), and under
  ``_ads`` the worker's numbered batches of ad impressions, recorded into the owner's ad
  state (frequency caps, exposure, spend; :mod:`feedwise.feed.adshare`);
- ``GET /v1/workers/ads?worker=PID``: a full copy of the owner's ad state, for a worker that
  (re)builds its engine or fell behind the ad log.

``GET /v1/workers/delta`` also carries the ad log after ``since_ad`` and the merged spend.
"""

from __future__ import annotations

import itertools
import tempfile
from typing import Any

import msgspec
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.encoders import jsonable_encoder

from feedwise.feed import FeedEngine
from feedwise.feed.adshare import spend_of
from feedwise.server.deps import AdminKey, State
from feedwise.server.routes._common import await_future, plain_value

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
                 worker: str = Query("", max_length=64)) -> Response:
    """The engagement as columns (``user_id``, ``item_id``, ``kind``), each landing's encoded
    once for every worker (server/engagementlog.py): under heavy ingest a poll carries
    thousands of events, and FastAPI's element-by-element encoding of a returned dict cost
    more than landing them."""
    ads = _ads_delta(state, since_ad, worker)
    events, seq, lost = state.worker_events.since(since, limit)
    # posts appended to the live catalogue since the worker's last one (state.post_seq
    # at its build); a gap (the deque overflowed) makes the worker rebuild
    wp = state.worker_posts
    posts = (list(itertools.islice(wp, max(since_post - wp[0][0] + 1, 0), None))
             if since_post >= 0 and wp and wp[-1][0] > since_post else [])
    post_gap = (since_post >= 0 and bool(state.worker_posts)
                and since_post + 1 < state.worker_posts[0][0])
    # the ad log of half a second of feeds (a thousand rows or more) took 7 ms through
    # FastAPI's encoder, holding the GIL on a thread of the owner while its loop waited:
    # msgspec takes 0.1 ms; the new posts' rows (dates, rare) keep FastAPI's encoder
    body = msgspec.json.encode({
        "posts": jsonable_encoder([p[1] for p in posts]),
        "post_seq": posts[-1][0] if posts else since_post,
        "post_gap": post_gap, "seq": seq, "gap": lost,
        "catalogue_seq": state.catalogue_seq,
        "version": state.served.version if state.served else None, **ads}, enc_hook=plain_value)
    return Response(body[:-1] + b',"events":' + events.encode() + b"}",
                    media_type="application/json")


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
    cols = msgspec.json.decode(await request.body())  # 3x json.loads, on the loop
    ads = cols.pop("_ads", None)
    log, engine = getattr(state, "ad_log", None), _engine(state)
    merged = 0
    if ads and log is not None and engine is not None:
        # under the engine's lock: an erasure forgets users from another thread
        merged = engine.with_state(lambda st: log.merge(st.ads, ads))
    n = len(cols.get("event_id", ()))
    if not n:
        if merged:  # persisted with the writer's next landing
            state.writer.call(lambda store: engine.flush())
        return {"rows": 0}
    if any(len(v) != n for v in cols.values()):
        raise HTTPException(422, "every column needs one value per row")
    # the merged ads' frequency and spend rows are saved with these impressions
    done = state.writer.log_served(cols, engine.flush if merged else None)
    if done is not None:
        await await_future(done, state.settings.write_timeout_s)
    return {"rows": n}

