"""Dependencies of the routes: the service state, auth by scope, request ids.

:class:`ServiceState` holds what lives as long as the app: the store, its one writer, the
key ring, the registry, the metrics and the :class:`~feedwise.server.policy.Served`
snapshot. Hot swap: a watcher thread loads a newly promoted version completely, then
replaces ``state.served`` in one assignment; every request reads ``state.served`` once, so
requests in flight finish on the version they started with.
"""

from __future__ import annotations

import functools
import gc
import itertools
import json
import logging
import re
import shutil
import sys
import threading
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pandas as pd
from fastapi import Depends, Header, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from feedwise.errors import AuthError, NotFoundError
from feedwise.evidence.rollout import Rollout, engine_for_model
from feedwise.feed import FeedEngine
from feedwise.feed.adshare import AdLog
from feedwise.feed.materialised import (
    MaterialisedLists,
    Refresher,
    attach,
    build_cached,
    forget_cache,
    shared_columns,
)
from feedwise.privacy import PrivacySettings, RetentionScheduler, forget_erased
from feedwise.registry import ModelRegistry
from feedwise.server.auth import ApiKey, KeyRing
from feedwise.server.engagementlog import EngagementLog
from feedwise.server.listslog import ListsLog
from feedwise.server.metrics import ServiceMetrics
from feedwise.server.policy import ModelFeedPolicy, Served, build_policy
from feedwise.server.settings import Settings
from feedwise.server.writer import Writer
from feedwise.store import EventStore

log = logging.getLogger("feedwise.server")

#: posts appended to the live catalogue (``catalogue_changed(posts=...)``) trigger a
#: background rebuild once there are more than this many, or more than this fraction of the
#: catalogue, since the engine was built (whichever is larger)
REBUILD_AFTER_POSTS = 1000
REBUILD_AFTER_FRACTION = 0.05


def items_frame(rows: list[dict]) -> pd.DataFrame:
    """New posts (``Item`` dumps, JSON mode) as the catalogue's item columns."""
    df = pd.DataFrame(rows)
    for col in ("kind", "author_id", "created_at", "title"):
        if col not in df.columns:
            df[col] = None
    if "tags" not in df.columns:
        df["tags"] = [[] for _ in range(len(df))]
    df["created_at"] = pd.to_datetime(df["created_at"], utc=True, format="ISO8601")
    return df


@contextmanager
def serving_runtime(settings: Settings) -> Iterator[None]:
    """The interpreter settings a serving process runs under (the owner and every feed
    worker): ``switch_interval_ms`` and a larger young generation, restored on exit.

    Requests allocate many short-lived objects: a larger young generation runs the
    collector 14x less often, and full collections (tens of ms over the engine's per-user
    state, stalling every request in flight) all but disappear."""
    switch, thresholds = sys.getswitchinterval(), gc.get_threshold()
    sys.setswitchinterval(settings.switch_interval_ms / 1000.0)
    gc.set_threshold(settings.gc_young_threshold, *thresholds[1:])
    try:
        yield
    finally:
        sys.setswitchinterval(switch)
        gc.set_threshold(*thresholds)


def settle_heap() -> None:
    """Collect once, then move every live object out of the garbage collector's sight.

    A loaded model and catalogue are hundreds of thousands of long-lived objects (id maps,
    labels); a full collection walks them all (about 0.1 s at 100k items), stalling every
    request in flight, and finds nothing. Frozen objects are still freed by reference
    counting; only cycles among them wait for the next swap, which unfreezes first.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ServiceState:
    """Everything the routes share for the life of the app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = ServiceMetrics()
        self.keys = KeyRing.load(settings.keys_file, settings.api_keys,
                                 reload_s=settings.keys_reload_s)  # revocation within 1 s
        self.registry = ModelRegistry(settings.registry)
        # privacy: user ids pseudonymised at the edge when FEEDWISE_PSEUDONYM_KEY is set
        self.privacy = PrivacySettings()
        self.store = EventStore(settings.db, pseudonymizer=self.privacy.pseudonymizer())
        self.store.set_checkpoint_mb(settings.checkpoint_mb)
        if settings.db_threads:
            self.store.set_threads(settings.db_threads)
        try:  # a pseudonymised store opened without its key: every request would fail
            self.store.require_key()
        except BaseException:
            self.store.close()
            raise
        # models of another store are refused (ModelRegistry.check_store)
        self.registry.store_id = self.store.store_id()
        self.registry.db = settings.db
        self.retention = (RetentionScheduler(self.store, self.privacy.retention_days,
                                             self.privacy.retention_interval_s)
                          if self.privacy.retention_days else None)
        # the served model's materialised lists: (model, lists, refresher)
        self._lists: tuple[object, MaterialisedLists, Refresher] | None = None
        # what worker processes (feedwise serve --workers) poll: landed engagement, in
        # order, and a counter of catalogue changes (server/workers.py)
        self.worker_events = EngagementLog()
        # the lists its refresher recomputed, for the workers (they recompute none)
        self.worker_lists = ListsLog()
        self.catalogue_seq = 0
        # new posts appended to the live catalogue, for the workers (catalogue_changed)
        self.worker_posts: deque[tuple[int, dict]] = deque(maxlen=100_000)
        self.worker_post_seq = 0
        # ad impressions of every process, for the workers' caps and budgets (feed/adshare)
        self.ad_log = (AdLog(window_s=settings.impressions_flush_s + settings.worker_poll_s,
                             reserve_factor=settings.ad_reserve_factor)
                       if settings.workers > 1 else None)
        self.posts_added = 0
        self._appended = 0  # posts appended since the engine was built
        self.lists_saved: dict[str, str] = {}
        #: Store snapshots made for feed workers and reading commands (POST
        #: /v1/admin/snapshot): their readers delete them; whatever is left goes at close.
        self.snapshots: set[Path] = set()
        self.writer = Writer(self.store, max_rows=settings.writer_max_rows,
                             queue_size=settings.writer_queue_size,
                             on_ingest=self.metrics.on_ingest,
                             linger_s=settings.writer_linger_s,
                             poll_s=settings.impressions_flush_s,
                             sync=settings.writer_sync,
                             on_events=self._on_events,
                             nice=settings.served_nice).start()
        self.served: Served | None = None
        # the deployment's applied policy (frontier --apply) and running experiment
        self.rollout = Rollout.for_store(settings.db)
        self.no_personalization: set[str] = set()
        self.no_ads: set[str] = set()
        self._swap_lock = threading.RLock()
        self._dirty = False
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._load_consent()
        self.reload()

    # ------------------------------------------------------------------ model
    @contextmanager
    def swaps_paused(self) -> Iterator[None]:
        """No model swap or policy rebuild while the block runs (a consent change or an
        erasure must reach the version that is served after it)."""
        with self._swap_lock:
            yield

    def reload(self) -> bool:
        """Serve the promoted version if it is not the one served; ``True`` if swapped."""
        with self._swap_lock:
            version = self.registry.promoted_version()
            if version is None or (self.served and self.served.version == version):
                return False
            meta = self.registry.get(version)
            model = self.registry.load(version)
            forget_erased(self.store, model)  # trained before an erasure: drop those users
            old = self.served
            policy = self._policy(model, version)
            self._appended = 0
            served = Served(meta, model, policy, **self._arm_policies(policy))
            self.served = served  # the swap: one reference assignment
        self._retire(old)
        swapped = old is not None
        del old
        settle_heap()
        self.metrics.set_model(meta.version, meta.model)
        if swapped:
            self.metrics.model_swaps.inc()
        log.info("serving model %s (%s)", meta.version, meta.model)
        return True

    def _arm_policies(self, policy):  # noqa: ANN001, ANN202
        """Policies and models of the running experiment's arms that serve another model
        version: ``{"arms": {version: policy}, "arm_models": {version: model}}``."""
        arms, models = {}, {}
        for version in sorted(self.rollout.model_versions()):
            try:
                model = self.registry.load(version)
                forget_erased(self.store, model)
                arms[version] = (engine_for_model(policy, model)
                                 if isinstance(policy, FeedEngine) else ModelFeedPolicy(model))
                models[version] = model
            except Exception:  # noqa: BLE001 - that arm serves the promoted model instead
                log.exception("experiment arm model %s could not be loaded", version)
        return {"arms": arms, "arm_models": models}

    def _policy(self, model, version: str | None = None):  # noqa: ANN001, ANN202
        policy = build_policy(model, self.store, self.settings.feed_policy,
                              self.rollout.config)
        if isinstance(policy, FeedEngine):
            policy.set_flush_every(0)  # ad state is flushed by the writer thread, not requests
            if self.ad_log is not None:
                self.ad_log.attach(policy.state.ads)
            self._materialise(policy, model, version)
        return policy

    def _materialise(self, engine: FeedEngine, model,  # noqa: ANN001
                     version: str | None = None) -> None:
        """Serve the engine's personal candidates from the model's materialised lists,
        built once per loaded model (a catalogue rebuild reuses them)."""
        n = self.settings.materialise_n
        if n <= 0 or model._static_scores() is not None:  # the same list for everyone
            return
        got = self._lists
        if got is None or got[0] is not model:
            if got is not None:
                got[2].stop()
                self._lists = None
            try:
                extra = shared_columns(engine, model)
                cache = self.settings.lists_cache  # kept between starts (feed/materialised)
                lists = (build_cached(model, n, version=version, cache_dir=cache,
                                      extra_cols=extra) if cache and version else
                         MaterialisedLists.build(model, n, extra_cols=extra))
            except Exception:  # noqa: BLE001 - serve the direct path instead
                log.exception("materialising the lists of %s failed; scoring per request",
                              getattr(model, "name", model))
                return
            log.info("materialised %d lists in %.1fs", len(lists), lists.built_s)
            refresher = Refresher(lists, self.settings.lists_refresh_s,
                                  self.settings.lists_refresh_users).start()
            lists.on_forget = self._forgotten
            if self.settings.workers > 1:
                lists.on_update = functools.partial(self.worker_lists.append, version)
            got = self._lists = (model, lists, refresher)
        attach(engine, got[1], got[2])

    def _forgotten(self, user_id: str) -> None:
        """A user left the served lists (erasure, objection): feed workers rebuild from a
        snapshot that carries it (their model and lists forget the user too), and the
        lists saved for them are deleted (saved again, without the user, when asked)."""
        self.worker_lists.forget(user_id)
        for folder in list(self.lists_saved.values()):
            shutil.rmtree(folder, ignore_errors=True)
        self.lists_saved.clear()
        if self.settings.lists_cache:
            forget_cache(self.settings.lists_cache)
        self.catalogue_seq += 1

    def _on_events(self, cols: dict, took: Sequence[int]) -> None:
        """Landed client events: their users' lists are recomputed on the next round."""
        got = self._lists
        if got is None:
            return
        users, items, kinds = cols["user_id"], cols["item_id"], cols["kind"]
        if len(took) < len(users):  # some rows were not stored
            users, items, kinds = ([c[j] for j in took] for c in (users, items, kinds))
        if self.store.pseudonymizer is not None:  # the stored ids
            key = self.store.user_key
            users = [key(x) if x is not None else None for x in users]
        got[2].note(users, items, kinds)
        if self.settings.workers > 1:
            self.worker_events.append(users, items, kinds)

    def catalogue_changed(self, posts: list | None = None) -> None:
        """Items, campaigns or users changed: rebuild the policy (now, or on the next tick).

        ``posts`` (the new :class:`~feedwise.schema.Item` objects, when that is the whole
        change) are appended to the live catalogue instead (:meth:`FeedEngine.add_posts`):
        no rebuild and no heap walk per post; feed workers take them from the delta they
        poll. A replaced post, a new tag or a policy that is not an engine rebuild as
        before.
        """
        if posts and self._append_posts(posts):
            return
        self._dirty = True
        self.catalogue_seq += 1
        if self.settings.reload_interval_s <= 0:
            self.refresh_policy()

    def _append_posts(self, posts: list) -> bool:
        rows = [p.model_dump(mode="json") if hasattr(p, "model_dump") else dict(p)
                for p in posts]
        df = items_frame(rows)
        with self._swap_lock:
            served = self.served
            if served is None or self._dirty or not isinstance(served.policy, FeedEngine):
                return False
            if not served.policy.add_posts(df):
                return False
            for arm in served.arms.values():  # views sharing the catalogue
                if isinstance(arm, FeedEngine):
                    arm.catalogue_grew()
            self.posts_added += len(rows)
            self._appended += len(rows)
            if self._appended > max(REBUILD_AFTER_POSTS,
                                    REBUILD_AFTER_FRACTION * served.policy.catalog.n):
                # popularity, author affinity and follows of new authors are rebuilt in
                # the background (the watcher's next tick), off the request path
                self._dirty = True
            if self.settings.workers > 1:
                seq = self.worker_post_seq
                self.worker_posts.extend((seq + n + 1, r) for n, r in enumerate(rows))
                self.worker_post_seq = seq + len(rows)
        return True

    def refresh_policy(self) -> None:
        """Rebuild the served policy around the same model (new catalogue and campaigns)."""
        with self._swap_lock:
            old = self.served
            if old is None or not self._dirty:
                return
            self._dirty = False
            self._appended = 0
            self._flush(old)  # the new engine loads the ad state the old one wrote
            policy = self._policy(old.model)
            self.served = Served(old.meta, old.model, policy, **self._arm_policies(policy))
            del old
        settle_heap()

    def _flush(self, served: Served | None) -> None:
        flush = getattr(served.policy, "flush", None) if served else None
        if flush is not None and self.writer.alive:
            self.writer.call(lambda store: flush()).result(self.settings.write_timeout_s)

    def _retire(self, old: Served | None) -> None:
        try:
            self._flush(old)
        except Exception:  # noqa: BLE001 - the old version's ad state is best effort
            log.exception("flushing the retired policy failed")

    def tick(self) -> None:
        """One round of the watcher: pick up promotions and catalogue changes, flush ads."""
        self.reload()
        if self.rollout.refresh():  # frontier --apply or abtest start/stop since last tick
            self._dirty = True
        if self._dirty:
            self.refresh_policy()
        self._flush(self.served)

    def start_watcher(self) -> None:
        if self.retention is not None and not self.retention.running:
            self.retention.start()  # purges now, then every retention_interval_s
        interval = self.settings.reload_interval_s
        if interval <= 0 or self._watcher is not None:
            return

        def watch() -> None:
            while not self._stop.wait(interval):
                try:
                    self.tick()
                except Exception:  # noqa: BLE001 - keep serving the current version
                    log.exception("the model watcher failed; still serving %s",
                                  self.served.version if self.served else None)

        self._watcher = threading.Thread(target=watch, name="feedwise-model-watch", daemon=True)
        self._watcher.start()

    # ------------------------------------------------------------------ consent
    def _load_consent(self) -> None:
        df = self.store.consent_flags()
        self.no_personalization = set(df.loc[df["consent_personalization"] == False,  # noqa: E712
                                             "user_id"])
        self.no_ads = set(df.loc[df["consent_ads"] == False, "user_id"])  # noqa: E712

    def user_key(self, user_id: str) -> str:
        """The stored id of an external user id (its pseudonym when a key is set)."""
        return self.store.user_key(user_id)

    def set_consent(self, user_id: str, personalization: bool, ads: bool) -> None:
        (self.no_personalization.discard if personalization
         else self.no_personalization.add)(user_id)
        (self.no_ads.discard if ads else self.no_ads.add)(user_id)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Stop the watcher, flush the writer, close the store, delete the lists saved for
        feed workers and the snapshots their readers left."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(5)
        if self.retention is not None:
            self.retention.stop()
        self._retire(self.served)
        if self._lists is not None:
            self._lists[2].stop()
        self.writer.close()
        self.store.close()
        for folder in self.lists_saved.values():
            shutil.rmtree(folder, ignore_errors=True)
        self.lists_saved.clear()
        for path in self.snapshots:
            for f in (path, path.with_name(path.name + ".wal")):
                f.unlink(missing_ok=True)
        self.snapshots.clear()


async def get_state(request: Request) -> ServiceState:
    return request.app.state.feedwise


State = Annotated[ServiceState, Depends(get_state)]

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer fw_...`")

UNAUTHORIZED = HTTPException(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})
FORBIDDEN = HTTPException(403, "forbidden")


def _authenticate(state: ServiceState, creds: HTTPAuthorizationCredentials | None,
                  scope: str) -> ApiKey | None:
    if not state.settings.auth_enabled:
        return None
    try:
        key = state.keys.authenticate(creds.credentials if creds else None)
    except AuthError:
        raise UNAUTHORIZED from None
    if not key.allows(scope):
        raise FORBIDDEN
    return key


def bearer_key(state: ServiceState, authorization: str | None, scope: str) -> ApiKey | None:
    """:func:`require`'s check from the raw ``Authorization`` header, read as :data:`bearer`
    reads it, for a route that resolves no dependencies (routes/feed.py)."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    creds = (HTTPAuthorizationCredentials(scheme=scheme, credentials=token)
             if scheme.lower() == "bearer" and token else None)
    return _authenticate(state, creds, scope)


def require(scope: str):
    """A dependency admitting only keys with ``scope`` (``admin`` admits everything).

    Dependencies here are ``async`` although they never wait: FastAPI runs a plain ``def``
    dependency on a worker thread, a hop that costs more than the check itself.
    """

    async def check(request: Request,
              creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None
              ) -> ApiKey | None:
        return _authenticate(request.app.state.feedwise, creds, scope)

    check.__name__ = f"require_{scope}"
    return check


ReadKey = Annotated[ApiKey | None, Depends(require("read"))]
IngestKey = Annotated[ApiKey | None, Depends(require("ingest"))]
AdminKey = Annotated[ApiKey | None, Depends(require("admin"))]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


_ID_PREFIX = uuid.uuid4().hex[:12]  # random per process; a counter makes ids unique in it
_ID_COUNTER = itertools.count()


class FreshRequestId(str):
    """A request id the service made up (no ``X-Request-ID``): unique to this process, so
    nothing stored before can carry it (its impressions skip the stored-id check)."""


def request_id_of(value: str | None) -> str:
    """``value`` (an ``X-Request-ID``) if well-formed, else a fresh request id."""
    if value and _REQUEST_ID.match(value):
        return value
    return FreshRequestId(f"{_ID_PREFIX}{next(_ID_COUNTER):010x}")


async def request_id(x_request_id: Annotated[str | None, Header()] = None) -> str:
    """The caller's ``X-Request-ID`` if well-formed, else a fresh one."""
    return request_id_of(x_request_id)


RequestId = Annotated[str, Depends(request_id)]


async def served_model(state: State) -> Served:
    """The served snapshot, or 503 while no model is promoted."""
    served = state.served
    if served is None:
        raise HTTPException(503, "no model is promoted yet", headers={"Retry-After": "5"})
    return served


ServedModel = Annotated[Served, Depends(served_model)]


@dataclass(frozen=True, slots=True)
class Serving:
    """What a serving route needs, resolved as one dependency (the hot paths: each
    dependency FastAPI resolves costs tens of microseconds)."""

    state: ServiceState
    served: Served
    key: ApiKey | None
    request_id: str


async def serving(request: Request,
                  creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None,
                  x_request_id: Annotated[str | None, Header()] = None) -> Serving:
    """A ``read`` key (401/403 otherwise), the served snapshot (503 while no model is
    promoted) and the request id (``X-Request-ID`` if well-formed, else a fresh one)."""
    state: ServiceState = request.app.state.feedwise
    key = _authenticate(state, creds, "read")
    return Serving(state, await served_model(state), key, await request_id(x_request_id))


ServingDeps = Annotated[Serving, Depends(serving)]


def dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str)


__all__ = ["AdminKey", "IngestKey", "NotFoundError", "ReadKey", "RequestId", "ServedModel",
           "ServiceState", "Serving", "ServingDeps", "State", "dumps", "get_state", "require"]
