"""What feed worker processes ask the process that owns the store (``feedwise serve
--workers N``; see :mod:`feedwise.server.workers`). Every route needs an ``admin`` key.

- ``GET /v1/workers/state``: the served version, the folder of its materialised lists (saved
  once per version as memory-mappable ``.npy`` files), the catalogue and event counters;
- ``GET /v1/workers/delta?since=SEQ``: the engagement landed after ``SEQ`` (user, item,
  kind), for the workers' own list refresh;
- ``POST /v1/workers/served``: impressions of the feeds a worker served, as columns, landed
  by the writer like the owner's own (the count check holds across processes).
"""

from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request

from feedwise.server.deps import AdminKey, State
from feedwise.server.routes._common import await_future

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
            "event_seq": state.worker_event_seq, "post_seq": state.worker_post_seq}


@router.get("/delta")
def worker_delta(state: State, key: AdminKey,
                 since: int = Query(ge=0), limit: int = Query(50_000, ge=1, le=500_000),
                 since_post: int = Query(-1, ge=-1)) -> dict[str, Any]:
    events = state.worker_events
    out = []
    if events and events[-1][0] > since:
        first = events[0][0]
        start = max(since - first + 1, 0)
        out = list(itertools.islice(events, start, start + limit))
    lost = bool(events) and since + 1 < events[0][0]
    # posts appended to the live catalogue since the worker's last one (state.post_seq
    # at its build); a gap (the deque overflowed) makes the worker rebuild
    wp = state.worker_posts
    posts = (list(itertools.islice(wp, max(since_post - wp[0][0] + 1, 0), None))
             if since_post >= 0 and wp and wp[-1][0] > since_post else [])
    post_gap = (since_post >= 0 and bool(state.worker_posts)
                and since_post + 1 < state.worker_posts[0][0])
    return {"posts": [p[1] for p in posts], "post_seq": posts[-1][0] if posts else since_post,
            "post_gap": post_gap,
            "events": [e[1:] for e in out], "seq": out[-1][0] if out else since,
            "gap": lost, "catalogue_seq": state.catalogue_seq,
            "version": state.served.version if state.served else None}


@router.post("/served")
async def worker_served(request: Request, state: State, key: AdminKey) -> dict[str, int]:
    cols = json.loads(await request.body())
    n = len(cols.get("event_id", ()))
    if not n:
        return {"rows": 0}
    if any(len(v) != n for v in cols.values()):
        raise HTTPException(422, "every column needs one value per row")
    done = state.writer.log_served(cols, None)
    if done is not None:
        await await_future(done, state.settings.write_timeout_s)
    return {"rows": n}


def cleanup(state: Any) -> None:
    """Delete the lists saved for workers (the service is shutting down)."""
    import shutil

    for folder in list(getattr(state, "lists_saved", {}).values()):
        shutil.rmtree(Path(folder), ignore_errors=True)
