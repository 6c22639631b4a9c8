"""The ASGI app of ``benchmarks/serve_floor.py``: a feed route with no feedwise code behind it.

Each request spends ``FLOOR_COST_MS`` of its thread's CPU in a busy loop (a fixed cost, so
that every request costs the same) and answers a 20-slot feed of fixed JSON. With
``FLOOR_COMPOSE=1`` (and, in the environment, the service's settings for a copy of the
benchmark's world, as ``serve_floor.py --compose`` sets them) it composes the user's real
feed instead, with the service's own state (the engine, the materialised lists), and
answers it encoded as the service does, with nothing else of the service around it: no
middleware, no writer, no impressions logged, no other process to talk to.

``FLOOR_BURST`` = ``MS:EVERY[:gil]`` adds a background thread that spends ``MS`` of CPU every
``EVERY`` seconds, holding the GIL (``gil``: a Python loop) or not (hashing, which releases
it), as a writer's landing or a collection would.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time

COST_S = float(os.environ.get("FLOOR_COST_MS", "3.0")) / 1000.0
FEED = (b'{"slots":[' + b",".join(
    b'{"position":%d,"item_id":"i%d","kind":"organic","score":0.5,"reasons":["because you '
    b'liked i1"]}' % (i, i) for i in range(20)) + b"]}")


def _burst(spec: str) -> None:
    ms, every, *gil = spec.split(":")
    cost, period, holds = float(ms) / 1000.0, float(every), gil == ["gil"]
    chunk = bytes(1 << 20)

    def run() -> None:
        clock = time.thread_time
        while True:
            time.sleep(period)
            t0 = clock()
            while clock() - t0 < cost:
                if holds:
                    for _ in range(2000):
                        pass
                else:
                    hashlib.sha256(chunk)

    threading.Thread(target=run, name="floor-burst", daemon=True).start()


def _composer():
    """``user id -> answer bytes`` with the service's state (its settings from the
    environment)."""
    from datetime import UTC, datetime

    import msgspec
    import numpy as np

    from feedwise.feed.types import FeedRequest
    from feedwise.server.deps import ServiceState, serving_runtime, settle_heap
    from feedwise.server.settings import Settings

    os.environ["FEEDWISE_LOG_IMPRESSIONS"] = "0"
    settings = Settings()
    state = ServiceState(settings)
    served = state.served
    cat = served.policy.catalog
    now = datetime.fromtimestamp(float(np.max(cat.created_s[:cat.n])) + 3600.0, UTC)
    serving_runtime(settings).__enter__()  # the interpreter settings the service serves with
    settle_heap()
    context = {"surface": "feed", "session_id": None, "consent_personalization": True,
               "consent_ads": True}

    def compose(uid: str) -> bytes:
        req = FeedRequest(user_id=uid, n=20, now=now, request_id="floor", context=context)
        feed = state.rollout.compose(served.policy, req, state.rollout.arm(uid), served.arms)
        return msgspec.json.encode({"slots": [
            {"position": i, "item_id": s.item_id, "kind": s.kind, "score": float(s.score),
             "reasons": list(s.reasons)} for i, s in enumerate(feed.slots)]})
    return compose


_compose = _composer() if os.environ.get("FLOOR_COMPOSE") == "1" else None
if os.environ.get("FLOOR_BURST"):
    _burst(os.environ["FLOOR_BURST"])


async def app(scope, receive, send) -> None:  # noqa: ANN001 - ASGI
    if scope["type"] != "http":
        return
    if _compose is not None:
        body = _compose(scope["query_string"].decode().rpartition("=")[2])
    else:
        clock = time.thread_time
        t0 = clock()
        while clock() - t0 < COST_S:
            pass
        body = FEED
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
