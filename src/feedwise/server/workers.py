"""Feed worker processes: ``feedwise serve --workers N`` serves feeds on more than one core.

DuckDB allows one writing process, and one Python process runs one core at a time (the
GIL). With ``--workers N`` the ``feedwise serve`` process (the *owner*: the store, its one
writer, the model watcher, every route) binds the port and starts ``N`` worker processes
that accept connections on the same socket (spread evenly, :mod:`feedwise.server.tcp`); the
owner answers public connections only until one is ready, or when none is left. A worker
answers ``GET /v1/users/{id}/feed`` itself, reads ``POST /v1/events`` batches and hands them
to the owner over a socket pair (:mod:`feedwise.server.relay`), and forwards every other
request to the owner unchanged (items, admin, recommendations...), so all writes still go
through the owner's writer.

A worker serves from read-only copies:

* the promoted model, loaded from the registry, and its materialised lists, which the owner
  saves once per version and every worker memory-maps (``.npy`` pages shared by the
  processes, :meth:`~feedwise.feed.materialised.MaterialisedLists.load`);
* the catalogue, users, campaigns and consent of a snapshot of the store
  (``POST /v1/admin/snapshot``), rebuilt when the owner's catalogue changes (a new post, a
  consent change, an erasure: each bumps ``catalogue_seq``) and when another version is
  promoted (hot swap: built aside, swapped in one assignment);
* the engagement landed since: every ``worker_poll_s`` the worker polls the owner for it
  (through its relay, :class:`~feedwise.server.relay.DeltaAsk`; ``GET /v1/workers/delta``
  without one), which its requests fold in (its :class:`~feedwise.feed.materialised.Refresher`
  notes it), and the lists of those users the owner recomputed (only the owner recomputes
  them: :mod:`feedwise.server.listslog`). A feed of more than ``owner_feeds_above_n`` slots
  is forwarded to the owner, which composes it.

The impressions of the feeds a worker serves are sent to the owner in batches (one
:class:`~feedwise.server.relay.ServedBatch` through the relay every
``impressions_flush_s``; ``POST /v1/workers/served`` without one) and landed by the owner's
writer; a worker stops before the owner, sending what it holds, so no impression is lost
on a graceful shutdown and the count check holds across processes.

Ad frequency caps, exposure, pacing and budgets hold across the processes with a bounded
staleness (:mod:`feedwise.feed.adshare`): a worker's ad impressions ride with the impressions
it hands back, and the owner's merged log and spend come back in the delta it polls.

What does not hold across processes: experiment arms that serve another model version are
served the promoted model by workers, and ``/metrics`` counts the owner's requests only (a
batch a worker relays counts in the ingest counters, not in the request latencies).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import msgspec
from fastapi import FastAPI, Request, Response

from feedwise.errors import FeedwiseError
from feedwise.evidence.rollout import Rollout
from feedwise.feed import FeedEngine
from feedwise.feed.adshare import AdShare
from feedwise.feed.materialised import MaterialisedLists, Refresher, attach
from feedwise.privacy import PrivacySettings, forget_erased
from feedwise.registry import ModelRegistry
from feedwise.server import deps, listslog
from feedwise.server.auth import KeyRing, hash_key
from feedwise.server.deps import items_frame, serving_runtime
from feedwise.server.metrics import ServiceMetrics
from feedwise.server.policy import Served, build_policy
from feedwise.server.relay import DeltaAsk, RelayWorker, ServedBatch
from feedwise.server.routes import events as events_routes
from feedwise.server.routes import feed as feed_routes
from feedwise.server.routes._common import plain_value
from feedwise.server.settings import Settings
from feedwise.server.tcp import FAIR_LOOP, AcceptBoard, adopt
from feedwise.server.writer import ServedBuffer, WriterClosedError
from feedwise.store import EventStore

log = logging.getLogger("feedwise.server.workers")


#: Longest wait for the owner's answer through the relay, to a flush of impressions or a
#: poll (as the HTTP client's timeout).
_SEND_WAIT_S = 600.0


class ForwardingWriter:
    """The worker's stand-in for the owner's :class:`~feedwise.server.writer.Writer`:
    impressions are buffered (:class:`~feedwise.server.writer.ServedBuffer`) and sent to
    the owner every ``flush_s``, with the worker's ad impressions (``share``: caps and
    budgets across processes) in the same message: one frame through ``relay``
    (:mod:`feedwise.server.relay`), which also carries the event batches, or without one
    (a worker app in a test's process) ``POST /v1/workers/served`` requests of ``chunk``
    rows through ``client``."""

    def __init__(self, client: httpx.Client, flush_s: float = 0.1,
                 share: AdShare | None = None, relay: RelayWorker | None = None) -> None:
        self.client = client
        self.share = share
        self.relay = relay
        self.flush_s = flush_s
        self.chunk = 500
        self._buf = ServedBuffer()
        self._closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feedwise-forward",
                                        daemon=True)
        self.sent = 0
        self.failed = 0

    def start(self) -> ForwardingWriter:
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return not self._closed

    def pending(self) -> int:
        return self._buf.rows

    def relay_batch(self, payload: Any) -> Future:
        """Hand an event batch to the owner (``routes/events.py``,
        :func:`~feedwise.server.routes.events.post_events_to_a_worker`)."""
        if self.relay is None or self._closed:
            raise WriterClosedError("the worker is shutting down")
        return self.relay.submit(payload)

    def log_served(self, columns: dict[str, list[Any]], then: Any = None) -> None:
        if self._closed:
            raise WriterClosedError("the worker is shutting down")
        self._buf.add(columns)

    def flush(self, attempts: int = 3) -> int:
        """Send what is buffered; what the owner does not take stays buffered for the next
        flush."""
        cols = self._buf.take()[0]
        ads = self.share.take() if self.share is not None else None
        n, done = len(cols.get("event_id", ())), 0
        if not n and ads is None:
            return 0
        step = n if self.relay is not None else self.chunk
        while True:  # one message with a relay, else chunks (the owner's body limit)
            chunk = cols if step >= n else {c: v[done:done + step] for c, v in cols.items()}
            if not self._send(chunk, ads, attempts):
                self._buf.put_back({c: v[done:] for c, v in cols.items()})
                break
            if ads is not None:  # the ad batches ride with the first message
                self.share.sent(ads)
                ads = None
            done += len(chunk.get("event_id", ()))
            if done >= n:
                break
        self.sent += done
        return done

    def _send(self, chunk: dict[str, Any], ads: Any, attempts: int) -> bool:
        rows = len(chunk.get("event_id", ()))
        for attempt in range(attempts):
            try:
                if self.relay is not None:
                    self.relay.submit(ServedBatch(chunk, ads)).result(_SEND_WAIT_S)
                    return True
                body = {**chunk, "_ads": ads} if ads is not None else chunk
                r = self.client.post("/v1/workers/served",
                                     content=msgspec.json.encode(body, enc_hook=plain_value))
                if r.status_code == 200:
                    return True
                log.warning("owner refused %d impressions: %s %s", rows,
                            r.status_code, r.text[:200])
            except (httpx.HTTPError, WriterClosedError, TimeoutError) as e:
                log.warning("sending %d impressions failed: %s", rows, e)
            time.sleep(min(0.05 * 2 ** attempt, 2.0))
        return False

    def _run(self) -> None:
        while not self._stop.wait(self.flush_s):
            self.flush()

    def close(self) -> None:
        self._closed = True
        self._stop.set()
        self._thread.join(10)
        self.flush(attempts=20)
        if self.share is not None and self.share.take() is not None:
            log.error("ad impressions could not be sent to the owner")
        left = self.pending()
        if left:
            self.failed += left
            log.error("%d impressions could not be sent to the owner", left)
        if self.relay is not None:  # the requests that used it have been answered
            self.relay.close()


class WorkerState:
    """What the feed route reads, built from the owner's snapshot and saved lists."""

    def __init__(self, settings: Settings, owner: str, admin_key: str,
                 client: httpx.Client | None = None, relay: RelayWorker | None = None
                 ) -> None:
        self.settings = settings
        self.metrics = ServiceMetrics()
        self.keys = KeyRing.load(settings.keys_file, settings.api_keys,
                                 reload_s=settings.keys_reload_s)
        self.privacy = PrivacySettings()
        self.registry = ModelRegistry(settings.registry)
        self._own_client = client is None
        self.client = client or httpx.Client(base_url=owner, timeout=600,
                                             headers={"Authorization": f"Bearer {admin_key}"})
        # ad caps, exposure and budgets shared with the other processes (feed/adshare.py)
        self.ad_share = AdShare(str(os.getpid()))
        self.writer = ForwardingWriter(self.client, settings.impressions_flush_s,
                                       share=self.ad_share, relay=relay).start()
        self.rollout = Rollout.for_store(settings.db)
        self.served: Served | None = None
        self.store: EventStore | None = None
        self.no_personalization: set[str] = set()
        self.no_ads: set[str] = set()
        self._lists: tuple[str, MaterialisedLists, Refresher] | None = None
        self._catalogue_seq = -1
        self._post_seq = -1
        self._event_seq = 0
        self._lists_seq = 0
        #: how the feed route hands a large page to the owner (set by the worker's app)
        self.forward_feed: Callable[[dict, Any, Any], Awaitable[None]] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rebuilds = 0

    # ------------------------------------------------------------------ building
    def build(self) -> None:
        """Load (or reload) the promoted version and the catalogue of a fresh snapshot."""
        st = self.client.get("/v1/workers/state").raise_for_status().json()
        version = st["version"]
        if version is None:
            return
        snap = self.client.post("/v1/admin/snapshot").raise_for_status().json()["path"]
        store = EventStore(snap, read_only=True, pseudonymizer=self.privacy.pseudonymizer())
        try:
            lists_entry = self._lists
            if lists_entry is None or lists_entry[0] != version:
                model = self.registry.load(version)
                lists = (MaterialisedLists.load(model, st["lists"], st["lists_n"])
                         if st["lists"] else None)
                # the owner recomputes the lists and hands them over (server/listslog.py)
                refresher = (Refresher(lists, recompute=False)
                             if lists is not None else None)
                meta = self.registry.get(version)
            else:
                model, lists, refresher = (self.served.model, lists_entry[1],
                                           lists_entry[2])
                meta = self.served.meta
            gone = _forget_erased(store, model)
            df = store.consent_flags()
            no_p = set(df.loc[df["consent_personalization"] == False, "user_id"])  # noqa: E712
            no_a = set(df.loc[df["consent_ads"] == False, "user_id"])  # noqa: E712
            policy = build_policy(model, store, self.settings.feed_policy, self.rollout.config)
            if isinstance(policy, FeedEngine):
                policy.set_flush_every(0)
                if lists is not None:
                    attach(policy, lists, refresher)
                    for u in gone:
                        lists.forget_user(u)
                        if refresher is not None:
                            refresher.forget_user(u)
            if isinstance(policy, FeedEngine):  # the processes' ad state, then the swap
                self._resync_ads(policy)
        except BaseException:
            store.close()
            _unlink(snap)
            raise
        old_store, old_lists = self.store, self._lists
        old_snap = getattr(self, "_snapshot", None)
        self.no_personalization, self.no_ads = no_p, no_a
        self.served = Served(meta, model, policy)  # the swap: one assignment
        self.store = store
        if lists is not None:
            if self._lists is None or self._lists[1] is not lists:
                self._lists_seq = 0  # every recomputed list the owner still holds, again
            self._lists = (version, lists, refresher)
        if old_lists is not None and old_lists[0] != version:
            old_lists[2].stop()
        self._snapshot = snap
        if old_store is not None:
            old_store.close()  # requests in flight hold the engine, not this connection
            _unlink(old_snap)
        self._catalogue_seq = st["catalogue_seq"]
        self._post_seq = st.get("post_seq", 0)  # the snapshot holds the posts up to it
        self.rebuilds += 1
        deps.settle_heap()  # as the owner after a load: full collections skip the model
        log.info("worker %d serving %s (%s)", os.getpid(), version, meta.model)

    def _resync_ads(self, engine: FeedEngine) -> None:
        """Fill the engine's ad state with the owner's full copy and this worker's
        impressions the owner has not acknowledged yet."""
        r = self.client.get("/v1/workers/ads", params={"worker": self.ad_share.worker})
        if r.status_code == 404:  # the owner serves no feed engine: nothing shared
            return
        dump = r.raise_for_status().json()
        share = self.ad_share
        engine.with_state(lambda st: share.resync(dump, share.attach(st.ads)))

    def user_key(self, user_id: str) -> str:
        return self.store.user_key(user_id) if self.store is not None else user_id

    # ------------------------------------------------------------------ polling
    def poll(self) -> None:
        """Take the engagement landed since the last poll; rebuild on a catalogue change
        or a promotion."""
        ask = DeltaAsk(self._event_seq, self._post_seq, self.ad_share.ad_seq,
                       self.ad_share.worker, since_lists=self._lists_seq)
        relay = self.writer.relay
        body = (relay.submit(ask).result(_SEND_WAIT_S) if relay is not None else
                self.client.get("/v1/workers/delta", params={
                    "since": ask.since, "since_post": ask.since_post, "since_ad": ask.since_ad,
                    "worker": ask.worker, "since_lists": ask.since_lists}
                ).raise_for_status().content)
        d = msgspec.json.decode(body)  # under ingest 10-16k events: 0.6x json
        engine = self.served.policy if self.served is not None else None
        if "ads" in d and isinstance(engine, FeedEngine):
            if d["ad_gap"]:
                self._resync_ads(engine)
            else:
                share = self.ad_share  # between two requests (they read the state)
                engine.with_state(lambda st: share.apply(d, st.ads))
        got = self._lists
        ev = d["events"]
        if ev["user_id"] and got is not None:
            got[2].note(ev["user_id"], ev["item_id"], ev["kind"])
        self._event_seq = d["seq"]
        if got is not None:  # the lists the owner recomputed for this version, in order
            new: dict = {}
            extra: dict = {}
            for chunk in d.get("lists", ()):
                if chunk["version"] == got[0]:
                    n, x = listslog.decode(chunk)
                    new.update(n)
                    extra.update(x)
            if new:
                got[1].put(new, extra)
            self._lists_seq = d.get("lists_seq", self._lists_seq)
        served = self.served
        if d["version"] != (served.version if served else None) or \
                d["catalogue_seq"] != self._catalogue_seq or d.get("post_gap") or \
                (d.get("posts") and not self._add_posts(d["posts"])):
            self.build()
        else:
            self._post_seq = d.get("post_seq", self._post_seq)

    def _add_posts(self, rows: list[dict]) -> bool:
        """Append the owner's new posts to the live catalogue (no snapshot, no rebuild);
        ``False`` when that needs a rebuild."""
        served = self.served
        policy = served.policy if served is not None else None
        if not isinstance(policy, FeedEngine):
            return False
        rows = [r for r in rows if str(r["item_id"]) not in policy.catalog.index]
        return not rows or policy.add_posts(items_frame(rows))

    def start(self) -> None:
        def run() -> None:
            while not self._stop.wait(self.settings.worker_poll_s):
                try:
                    self.poll()
                except Exception:  # noqa: BLE001 - keep serving what is loaded
                    log.exception("worker poll failed")

        self._thread = threading.Thread(target=run, name="feedwise-worker-poll", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.writer.close()  # the last impressions reach the owner before it stops
        if self._lists is not None:
            self._lists[2].stop()
        if self.store is not None:
            self.store.close()
            _unlink(getattr(self, "_snapshot", None))
        if self._own_client:
            self.client.close()


def _forget_erased(store: EventStore, model: Any) -> set[str]:
    users = list(getattr(model, "user_index_", {}))
    gone = store.erased_ids(users) | store.opted_out_users()
    forget_erased(store, model)
    return set(gone)


def _unlink(path: Any) -> None:
    if path:
        with suppress(OSError):
            Path(path).unlink()


_HOP = {"host", "content-length", "connection", "keep-alive", "transfer-encoding"}
_FORWARDERS = 16  # requests forwarded to the owner at once


def _started(pool: ThreadPoolExecutor, n: int) -> ThreadPoolExecutor:
    """``pool`` with its ``n`` threads running: a pool starts a thread per submit until it
    has them all, and each start waited on the event loop (the first burst of forwarded
    requests stalled the worker's feeds)."""
    barrier = threading.Barrier(n)
    for f in [pool.submit(barrier.wait, 30) for _ in range(n)]:
        f.result()
    return pool


class _ServedBy:
    """Adds ``X-Feedwise-Worker: <pid>`` to every answer (which process answered)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.header = (b"x-feedwise-worker", str(os.getpid()).encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def tagged(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        return await self.app(scope, receive, tagged)


def create_worker_app(settings: Settings, owner: str, admin_key: str,
                      client: httpx.Client | None = None, relay: RelayWorker | None = None
                      ) -> FastAPI:
    """A worker's app: the feed route served here, event batches read here and handed to
    the owner through ``relay`` (when given), every other request forwarded
    (``client``: how the worker reaches the owner, e.g. a test client in one process)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = WorkerState(settings, owner, admin_key, client, relay)
        state.build()
        state.start()
        app.state.feedwise = state
        # forwarded requests go through blocking calls on threads: the loop then waits on one
        # future per request instead of running each step of an async client's exchange
        # behind the feeds it composes (an event batch forwarded that way took ~150 ms more
        # than one sent to the owner directly). No default headers: the caller's own key goes.
        app.state.proxy = httpx.Client(base_url=owner, timeout=600,
                                       limits=httpx.Limits(max_connections=_FORWARDERS))
        app.state.forwarders = _started(ThreadPoolExecutor(
            _FORWARDERS, thread_name_prefix="feedwise-forward"), _FORWARDERS)
        state.forward_feed = _forward_feed  # large pages: composed by the owner
        board = AcceptBoard.from_env()  # the owner's workers: counted from now on
        if board is not None:
            board.ready()
        try:
            with serving_runtime(settings):
                yield
        finally:
            if board is not None:
                board.gone()
            app.state.forwarders.shutdown(wait=True)
            app.state.proxy.close()
            state.close()

    app = FastAPI(title="feedwise worker", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.include_router(feed_routes.router)
    feed_routes.install_fast_path(app)
    if relay is not None:
        app.include_router(events_routes.relay_router)
    app.add_middleware(_ServedBy)

    @app.exception_handler(FeedwiseError)
    async def feedwise_error(request: Request, exc: FeedwiseError) -> Response:
        status = 503 if isinstance(exc, WriterClosedError) else 400
        return Response(json.dumps({"detail": str(exc)}), status, media_type="application/json")

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                   include_in_schema=False)
    async def forward(path: str, request: Request) -> Response:
        return await _forwarded(request, "/" + path)

    return app


async def _forwarded(request: Request, path: str) -> Response:
    """The owner's answer to ``request`` (a blocking call on a forwarding thread)."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
    body = await request.body()
    r = await asyncio.wrap_future(request.app.state.forwarders.submit(
        request.app.state.proxy.request, request.method, path,
        params=request.query_params, headers=headers, content=body))
    out = {k: v for k, v in r.headers.items() if k.lower() not in _HOP
           and k.lower() != "content-encoding"}
    return Response(r.content, r.status_code, headers=out)


async def _forward_feed(scope: dict, receive: Any, send: Any) -> None:
    """A feed request answered by the owner (``owner_feeds_above_n``)."""
    response = await _forwarded(Request(scope, receive), scope["path"])
    await response(scope, receive, send)


def main(argv: list[str] | None = None) -> None:
    """``python -m feedwise.server.workers --fd FD --owner URL --admin-key-file PATH``."""
    import uvicorn

    p = argparse.ArgumentParser(description="A feedwise feed worker (see feedwise serve "
                                            "--workers).")
    p.add_argument("--fd", type=int, required=True)
    p.add_argument("--relay-fd", type=int, default=None,
                   help="this worker's end of the owner's event relay (server/relay.py)")
    p.add_argument("--owner", required=True)
    p.add_argument("--admin-key-file", required=True)
    p.add_argument("--log-level", default="warning")
    a = p.parse_args(argv)
    admin_key = Path(a.admin_key_file).read_text().strip()
    settings = Settings()
    settings.api_keys = [*settings.api_keys, f"{hash_key(admin_key)}:admin"]
    relay = (RelayWorker(socket.socket(fileno=a.relay_fd)) if a.relay_fd is not None
             else None)
    app = create_worker_app(settings, a.owner, admin_key, relay=relay)
    # the inherited socket as what it is (TCP), not uvicorn's fromfd(AF_UNIX) guess: asyncio
    # then turns Nagle off on every connection (server/tcp.py: a 40 ms stall per answer)
    config = uvicorn.Config(app, log_level=a.log_level, access_log=False,
                            timeout_graceful_shutdown=30, loop=FAIR_LOOP)  # one accept a wake
    uvicorn.Server(config).run(sockets=[adopt(a.fd)])


if __name__ == "__main__":
    main()
