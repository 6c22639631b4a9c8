"""Benchmark of the HTTP service on loopback: feeds, event ingestion and freshness, per model.

Builds a synthetic world (posts, users, engagement events, campaigns with creatives) once,
then for each model served (``--models``: popularity, ItemKNN, ALS and the deployment's
default personalised model, see :func:`default_model`) trains and promotes it, starts
``feedwise serve`` as a separate process on 127.0.0.1 and drives it with a bounded asyncio
load generator (one keep-alive HTTP/1.1 connection per client, fixed duration per phase):

1. ``GET /v1/users/{id}/feed?n=20`` at 1, 16 and 64 concurrent clients: requests/s, p50, p99
   and the server's CPU per request (every serving process);
2. ``POST /v1/events`` in batches of 500 from ``--ingest-clients`` clients *while* 16 feed
   clients run (the feeds start 0.5 s after the ingest and stop 0.5 s before it, so the
   load generator's own start-up burst is not timed as feed latency): events/s accepted
   inside the feed clients' window and the feed latency meanwhile; during it, two freshness
   probes: a new post (``PUT /v1/items``) polled in eligible users' feeds, and a new user's
   first engagement polled until their feed recommends "because you liked" it;
3. the server is stopped (graceful shutdown flushes the writer) and the store is counted:
   events before + events accepted + impressions of every served slot must equal the
   events stored (no event lost, none duplicated).

The default model is also served with ``--workers`` feed workers (``feedwise serve
--workers``: that many processes serve, and the store's owner stands by) and without
materialised lists (``--no-direct`` skips that), so one run compares one process with
several and the lists with per-request scoring. Defaults are small
for a shared 2-core machine; ``--full`` asks for the issue's world (100k items, 100k users,
200 campaigns, 1M events); ``--runs 3`` repeats every serving. Results go to
``benchmarks/results/serve.json``. ``--slower F`` runs the servings on an emulated slower
machine: a competing busy process takes the share ``F`` of every core (``_slower.py``; root
and a ``cpu`` cgroup), and the slow-down a busy loop sees is printed and kept in the JSON.
``--burn F`` emulates a CPU ``F`` times slower without a competitor: every thread of the
benchmark and of the server does ``F - 1`` times more work after each unit of its own (the
CPU a request costs, as printed, is then the slower machine's; ``_slower.burn``).

    .venv/bin/python benchmarks/serve.py                          # 20k x 20k, ~10 minutes
    .venv/bin/python benchmarks/serve.py --full --runs 3          # the acceptance run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import inspect
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from feedwise.models import get_model  # noqa: E402
from feedwise.registry import ModelRegistry  # noqa: E402
from feedwise.schema import CAMPAIGN_COLUMNS  # noqa: E402
from feedwise.server.auth import create_key  # noqa: E402
from feedwise.store import EventStore  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from _slower import SlowerMachine, burn  # noqa: E402

TARGETS = {"feed_rps_16": 500.0, "feed_p99_ms_16": 50.0, "events_per_s": 20_000.0}


# ---------------------------------------------------------------------- the world
def build_world(root: Path, n_items: int, n_users: int, n_campaigns: int, per_user: int,
                n_topics: int, model: str | None, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    phases: dict[str, float] = {}
    tick = time.perf_counter()

    def phase(name: str) -> None:
        nonlocal tick
        phases[name] = round(time.perf_counter() - tick, 1)
        tick = time.perf_counter()

    store = EventStore(root / "bench.duckdb")
    item_topic = rng.integers(0, n_topics, n_items)
    items = pd.DataFrame({
        "item_id": [f"i{k}" for k in range(n_items)], "kind": "post",
        "author_id": [f"a{k}" for k in rng.integers(0, max(n_items // 20, 1), n_items)],
        "created_at": [now - timedelta(hours=float(h)) for h in rng.uniform(1, 24 * 14,
                                                                            n_items)],
        "title": [f"post {k}" for k in range(n_items)],
        "tags": [[f"t{t}"] for t in item_topic]})
    creatives = pd.DataFrame({
        "item_id": [f"c{k}-creative" for k in range(n_campaigns)], "kind": "ad",
        "author_id": [f"adv{k % 50}" for k in range(n_campaigns)],
        "created_at": now - timedelta(days=1), "title": [f"ad {k}" for k in range(n_campaigns)],
        "tags": [[f"t{k % n_topics}"] for k in range(n_campaigns)],
        "campaign_id": [f"c{k}" for k in range(n_campaigns)]})
    store.upsert_items(pd.concat([items, creatives], ignore_index=True))
    camps = pd.DataFrame({
        "campaign_id": [f"c{k}" for k in range(n_campaigns)],
        "advertiser_id": [f"adv{k % 50}" for k in range(n_campaigns)],
        "name": [f"campaign {k}" for k in range(n_campaigns)], "bid_model": "cpm",
        "bid": rng.uniform(200, 800, n_campaigns), "daily_budget": 1e9, "total_budget": 1e10,
        "start_at": now - timedelta(days=7), "end_at": now + timedelta(days=30),
        "target_tags": [[f"t{k % n_topics}"] for k in range(n_campaigns)],
        "target_segments": [[] for _ in range(n_campaigns)], "frequency_caps": None,
        "status": "active", "spec": None})
    store.upsert_campaigns(camps[list(CAMPAIGN_COLUMNS)])
    phase("posts + campaigns")
    # engagement: each user clicks items of a favourite topic, popularity-skewed
    by_topic = [np.flatnonzero(item_topic == t) for t in range(n_topics)]
    fav = rng.integers(0, n_topics, n_users)
    users = np.repeat(np.arange(n_users), per_user)
    pick = []
    for t in range(n_topics):
        m = fav[users] == t
        pool = by_topic[t]
        w = 1.0 / np.arange(1, len(pool) + 1) ** 0.8
        pick.append((np.flatnonzero(m), rng.choice(pool, size=int(m.sum()), p=w / w.sum())))
    item = np.empty(len(users), np.int64)
    for idx, chosen in pick:
        item[idx] = chosen
    ts = now - pd.to_timedelta(rng.uniform(1, 14 * 86400, len(users)), unit="s")
    ev = pd.DataFrame({"event_id": [f"e{k}" for k in range(len(users))],
                       "user_id": pd.Series(users).map(lambda u: f"u{u}"),
                       "item_id": pd.Series(item).map(lambda i: f"i{i}"),
                       "kind": rng.choice(["click", "like", "dwell"], len(users),
                                          p=[0.6, 0.3, 0.1]),
                       "ts": ts, "dwell_ms": rng.integers(1000, 60000, len(users))})
    phase("events generated")
    rep = store.ingest(ev)
    phase("events ingested")
    store.upsert_users(pd.DataFrame({
        "user_id": [f"u{k}" for k in range(n_users)], "consent_personalization": True,
        "consent_ads": True, "consent_analytics": True, "consent_updated_at": now,
        "consent_source": "benchmark", "attributes": "{}"}))
    n_events = store.count_events()
    store.close()
    phase("users")
    fit_s = train_promote(root, model) if model else None
    keys = root / "keys.json"
    read, _ = create_key(keys, ["read"])
    ingest, _ = create_key(keys, ["ingest"])
    admin, _ = create_key(keys, ["admin"])
    return {"read": read, "ingest": ingest, "admin": admin, "events": n_events,
            "fit_s": fit_s, "users": n_users, "accepted": rep.accepted, "phases": phases,
            # eligible for a new #t0 post: users whose favourite topic is t0
            "t0_users": [f"u{k}" for k in np.flatnonzero(fav == 0)[:8]]}


def default_model() -> str:
    """The deployment's default personalised model: ``auto`` once it is registered,
    else ``itemknn`` (the personalised model the issue measured)."""
    from feedwise.models import Recommender

    return "auto" if "auto" in Recommender.registry else "itemknn"


_TRAINED: dict[str, str] = {}  # model name -> registry version, fitted once per world
_CACHE: WorldCache | None = None  # where fitted models are kept for the next invocation


class WorldCache:
    """Built worlds kept between invocations, keyed by the world's parameters and the code
    of :func:`build_world`: the store file, the API keys, the registry (every model fitted
    on that world, promoted again instead of refitted). Each invocation serves a *copy* (the
    store is written to while serving; the registry's model files are hard links)."""

    def __init__(self, base: Path, args: argparse.Namespace) -> None:
        spec = {k: getattr(args, k) for k in ("items", "users", "campaigns", "per_user",
                                               "topics", "seed")}
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()
                                + inspect.getsource(build_world).encode()).hexdigest()[:12]
        self.base = base
        self.folder = base / (f"world-{args.items}x{args.users}x{args.campaigns}-" + digest)

    def _meta(self) -> dict | None:
        f = self.folder / "world.json"
        return json.loads(f.read_text()) if f.is_file() else None

    def load_into(self, root: Path) -> dict | None:
        """Copy the cached world into ``root``; its description, or None if not cached."""
        meta = self._meta()
        if meta is None:
            return None
        for name in ("bench.duckdb", "keys.json"):
            _copy(self.folder / name, root / name, link=False)
        _copytree(self.folder / "registry", root / "registry")
        code = _models_code()  # a model fitted by other model code is fitted again
        _TRAINED.update({m: v for m, v in meta.get("trained", {}).items()
                         if meta.get("code", {}).get(m, code) == code})
        return meta["world"]

    def save_world(self, root: Path, w: dict) -> None:
        tmp = self.base / (self.folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name in ("bench.duckdb", "keys.json"):
            _copy(root / name, tmp / name, link=False)
        (tmp / "registry").mkdir()
        (tmp / "world.json").write_text(json.dumps({"world": w, "trained": {},
                                                    "fit_s": {}}))
        shutil.rmtree(self.folder, ignore_errors=True)
        tmp.rename(self.folder)

    def reset_store(self, root: Path) -> None:
        """The served copy's store back to the world as built: every serving starts from
        the same store (and so hits the lists kept for it)."""
        (root / "bench.duckdb.wal").unlink(missing_ok=True)
        shutil.copy2(self.folder / "bench.duckdb", root / "bench.duckdb")

    def save_model(self, root: Path, model: str, version: str, fit_s: float) -> None:
        meta = self._meta()
        if meta is None:
            return
        _copytree(root / "registry", self.folder / "registry")
        meta["trained"][model] = version
        meta["fit_s"][model] = round(fit_s, 1)
        meta.setdefault("code", {})[model] = _models_code()
        (self.folder / "world.json").write_text(json.dumps(meta))


def _models_code() -> str:
    """A digest of the models' source (``src/feedwise/models``)."""
    h = hashlib.sha256()
    for f in sorted((ROOT / "src" / "feedwise" / "models").rglob("*.py")):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _copy(src: Path, dst: Path, link: bool = True) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)


def _copytree(src: Path, dst: Path) -> None:
    """Files of ``src`` missing in ``dst``: model files hard-linked (the registry replaces
    files, never writes into one), JSON copied."""
    for f in src.rglob("*"):
        if f.is_file():
            _copy(f, dst / f.relative_to(src), link=f.suffix != ".json")


def train_promote(root: Path, model: str) -> float:
    """Fit ``model`` on the store's events, register and promote it; the fit seconds
    (a model already fitted on this world is promoted again, not refitted: 0.0)."""
    reg = ModelRegistry(root / "registry")
    if model in _TRAINED:
        reg.promote(_TRAINED[model], reason="benchmark")
        return 0.0
    with EventStore(root / "bench.duckdb") as store:
        data = store.interactions()
    t0 = time.perf_counter()
    fitted = get_model(model).fit(data)
    fit_s = time.perf_counter() - t0
    v = reg.register(fitted, data_window={"until": datetime.now(UTC)})
    reg.promote(v.version, reason="benchmark")
    _TRAINED[model] = v.version
    print(f"    fitted {model} in {fit_s:.0f}s", flush=True)
    if _CACHE is not None:
        _CACHE.save_model(root, model, v.version, fit_s)
    return fit_s


# ---------------------------------------------------------------------- the server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(root: Path, policy: str, materialise_n: int = 300) -> dict[str, str]:
    """The service's settings for the world in ``root`` (store, registry, keys, policy,
    lists kept beside the cached world)."""
    env = {"FEEDWISE_DB": str(root / "bench.duckdb"),
           "FEEDWISE_REGISTRY": str(root / "registry"),
           "FEEDWISE_KEYS_FILE": str(root / "keys.json"), "FEEDWISE_RELOAD_INTERVAL_S": "1",
           "FEEDWISE_MAX_BATCH_EVENTS": "1000", "FEEDWISE_FEED_POLICY": policy,
           "FEEDWISE_MATERIALISE_N": str(materialise_n)}
    if _CACHE is not None:  # lists kept between starts, beside the cached world
        env["FEEDWISE_LISTS_CACHE"] = str(_CACHE.folder / "lists")
    return env


def open_world(root: Path, cache: WorldCache | None, args: argparse.Namespace
               ) -> tuple[dict, bool]:
    """The world of ``args`` in ``root``: copied from ``cache`` when it holds it, else
    built (and cached). Returns its description and whether it came from the cache."""
    w = cache.load_into(root) if cache is not None else None
    if w is not None:
        return w, True
    w = build_world(root, args.items, args.users, args.campaigns, args.per_user,
                    args.topics, None, args.seed)
    if cache is not None:
        cache.save_world(root, w)
    return w, False


def start_server(root: Path, port: int, policy: str, materialise_n: int = 300,
                 workers: int = 1, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``feedwise serve`` on the world in ``root``, once ready; ``env`` overrides settings."""
    env = {**os.environ, **server_env(root, policy, materialise_n), **(env or {})}
    cmd = [sys.executable, "-c", "from feedwise.cli import app; app()", "serve",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
           "--workers", str(workers)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # a large world: lists are built at start-up (16-20+ minutes at 100k x 100k on 2 cores)
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if b" 200 " in s.recv(200):
                    return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not become ready")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------- the load
class Conn:
    """A minimal keep-alive HTTP/1.1 client connection on raw asyncio streams: the request
    head is pre-encoded by the caller where it repeats, the answer's head read in one
    ``readuntil``. This is the benchmark's instrument, not the system under test: its own
    CPU per request is measured and printed (``loadgen CPU``), since it shares the cores."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.r: asyncio.StreamReader | None = None
        self.w: asyncio.StreamWriter | None = None
        self.who = b""  # the last answer's X-Feedwise-Worker (b"": the owner)

    async def request(self, method: str, path: str, headers: dict[str, str],
                      body: bytes = b"") -> tuple[int, bytes]:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        if body:
            head += f"Content-Length: {len(body)}\r\n"
        return await self.raw(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n"
                              .encode() + body)

    async def raw(self, request: bytes) -> tuple[int, bytes]:
        """Send one pre-encoded request; (status, body) of the answer."""
        if self.w is None:
            self.r, self.w = await asyncio.open_connection("127.0.0.1", self.port)
        self.w.write(request)
        head = await self.r.readuntil(b"\r\n\r\n")
        low = head.lower()
        i = low.find(b"\r\ncontent-length:")
        length = int(head[i + 17:head.index(b"\r\n", i + 2)]) if i >= 0 else 0
        j = low.find(b"\r\nx-feedwise-worker:")
        self.who = head[j + 20:head.index(b"\r\n", j + 2)].strip() if j >= 0 else b""
        data = await self.r.readexactly(length) if length else b""
        return int(head[9:12]), data

    def close(self) -> None:
        if self.w is not None:
            self.w.close()


async def feed_clients(port: int, key: str, n_users: int, clients: int, seconds: float,
                       seed: int, stop: asyncio.Event | None = None,
                       record: list[tuple[str, float]] | None = None,
                       sent: list[float] | None = None) -> dict:
    """``clients`` keep-alive connections asking feeds for ``seconds``; with ``record``,
    each answered feed's (process, seconds) is appended to it ("owner" or a worker's pid),
    and with ``sent`` too, when it was sent (``time.perf_counter``) to ``sent``."""
    lat: list[float] = []
    slots = [0]
    errors = [0]
    by: dict[tuple[int, bytes], int] = {}  # (client, process) -> requests
    hdr = f"Host: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\r\n".encode()
    end = time.perf_counter() + seconds

    async def one(c: int) -> None:
        rng = np.random.default_rng(seed * 1000 + c)
        users = rng.integers(0, n_users, 100_000)
        conn = Conn(port)
        k = 0
        try:
            while time.perf_counter() < end and not (stop and stop.is_set()):
                u = int(users[k % len(users)])
                k += 1
                t = time.perf_counter()
                status, body = await conn.raw(
                    b"GET /v1/users/u%d/feed?n=20 HTTP/1.1\r\n" % u + hdr)
                lat.append(time.perf_counter() - t)
                if record is not None:
                    record.append((conn.who.decode() or "owner", lat[-1]))
                    if sent is not None:
                        sent.append(t)
                by[c, conn.who] = by.get((c, conn.who), 0) + 1
                if status != 200:
                    errors[0] += 1
                else:
                    slots[0] += body.count(b'"position"')
        finally:
            conn.close()

    t0 = time.perf_counter()
    cpu0 = time.process_time()
    await asyncio.gather(*(one(c) for c in range(clients)))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    a = np.array(lat) * 1000
    procs: dict[str, list[int]] = {}  # process -> [connections, requests]
    for (_, who), n in by.items():
        got = procs.setdefault(who.decode() or "owner", [0, 0])
        got[0] += 1
        got[1] += n
    return {"clients": clients, "requests": len(lat), "errors": errors[0], "slots": slots[0],
            "rps": len(lat) / wall, "p50_ms": float(np.percentile(a, 50)) if len(a) else None,
            "p99_ms": float(np.percentile(a, 99)) if len(a) else None, "seconds": wall,
            "loadgen_cpu_ms": cpu * 1000 / len(lat) if lat else None, "by_process": procs}


async def ingest_clients(port: int, key: str, clients: int, seconds: float, batch: int,
                         tag: str, n_users: int, n_items: int, rate: float = 0.0) -> dict:
    """``clients`` connections posting batches of ``batch`` events: each the next as soon
    as the previous one is answered (a closed loop), or with ``rate`` > 0 paced so that
    they offer ``rate`` events/s together (a client whose answer comes late sends at once)."""
    accepted = [0]
    landed: list[tuple[float, int]] = []  # (answered at, events accepted) per batch
    sent = [0]
    errors = [0]
    end = time.perf_counter() + seconds
    ts = datetime.now(UTC).isoformat()
    head = (f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}"
            "\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n").encode()
    # one row template per position in the batch: a batch is built by one % per row
    row = ('{"event_id":"L%s-%%d-%%d-%d","user_id":"u%%d","item_id":"i%d","kind":"click",'
           f'"ts":"{ts}"}}')

    every = clients * batch / rate if rate > 0 else 0.0  # seconds between a client's batches
    start = time.perf_counter()

    async def one(c: int) -> None:
        conn = Conn(port)
        rows = [row % (tag, j, (c * 7919 + j) % n_items) for j in range(batch)]
        b = 0
        try:
            while time.perf_counter() < end:
                if every:  # the clients' turns spread evenly over each period
                    wait = start + (b + c / clients) * every - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                body = ("[" + ",".join(r % (c, b, (b * batch + j) % n_users)
                                       for j, r in enumerate(rows)) + "]").encode()
                status, answer = await conn.raw(head % len(body) + body)
                sent[0] += batch
                if status == 200:
                    got = json.loads(answer)["accepted"]
                    accepted[0] += got
                    landed.append((time.perf_counter(), got))
                else:
                    errors[0] += 1
                b += 1
        finally:
            conn.close()

    t0 = time.perf_counter()
    cpu0 = time.process_time()
    await asyncio.gather(*(one(c) for c in range(clients)))
    wall = time.perf_counter() - t0
    return {"clients": clients, "sent": sent[0], "accepted": accepted[0], "errors": errors[0],
            "landed": landed,
            "events_per_s": accepted[0] / wall, "seconds": wall,
            "loadgen_cpu_s": time.process_time() - cpu0}


def writer_capacity(root: Path, batch: int, rounds: int) -> dict:
    """Events/s the Writer lands with no HTTP in front (run after the server stopped; the
    rows are removed again so the count check above is unaffected)."""
    from feedwise.server.writer import Writer, columns_of

    ts = datetime.now(UTC).isoformat()
    with EventStore(root / "bench.duckdb") as store:
        before = store.count_events()
        w = Writer(store).start()
        t0 = time.perf_counter()
        futs = [w.submit_events(columns_of([{"event_id": f"W{r}-{j}", "user_id": f"u{j}",
                                             "item_id": f"i{j}", "kind": "click", "ts": ts}
                                            for j in range(batch)])) for r in range(rounds)]
        landed = sum(f.result(600).accepted for f in futs)
        wall = time.perf_counter() - t0
        w.close()
        store.con.execute("DELETE FROM events WHERE event_id LIKE 'W%'")
    return {"rows": landed, "seconds": wall, "rows_per_s": landed / wall,
            "table_rows": before, "batch": batch}


# ---------------------------------------------------------------------- freshness
async def probe_post(port: int, w: dict, n_users: int, seconds: float, tag: str) -> dict:
    """Create a #t0 post (PUT /v1/items) and poll the feeds of 8 users who like #t0 until
    it shows. n=200 (the candidate pool's size): a post nobody engaged with yet ranks low,
    and whether it enters the top 20 is the ranking's decision, not the serving path's."""
    item = f"fresh-{tag}"
    hdr = {"Authorization": f"Bearer {w['admin']}", "Content-Type": "application/json"}
    body = json.dumps({"kind": "post", "author_id": "a-fresh", "title": f"fresh {tag}",
                       "created_at": datetime.now(UTC).isoformat(), "tags": ["t0"]}).encode()
    conn = Conn(port)
    t0 = time.perf_counter()
    status, _ = await conn.request("PUT", f"/v1/items/{item}", hdr, body)
    users = w["t0_users"]
    rhdr = {"Authorization": f"Bearer {w['read']}"}
    first, seen = None, set()
    while time.perf_counter() - t0 < seconds and len(seen) < len(users):
        for u in users:
            _, feed = await conn.request("GET", f"/v1/users/{u}/feed?n=200", rhdr)
            if item.encode() in feed and u not in seen:
                seen.add(u)
                first = first or time.perf_counter() - t0
        await asyncio.sleep(0.05)
    conn.close()
    return {"status": status, "first_s": first, "users_seen": len(seen),
            "users_polled": len(users)}


async def probe_engagement(port: int, w: dict, item: str, seconds: float, tag: str
                           ) -> dict:
    """A user the model does not know engages with a post (POST /v1/events); poll their feed
    until a slot is recommended "because you liked" that post."""
    user = f"probe-{tag}"
    ihdr = {"Authorization": f"Bearer {w['ingest']}", "Content-Type": "application/json"}
    rhdr = {"Authorization": f"Bearer {w['read']}"}
    conn = Conn(port)
    _, before = await conn.request("GET", f"/v1/users/{user}/feed?n=50", rhdr)
    label = f"because you liked post {item[1:]}".encode()
    ev = [{"event_id": f"P{tag}", "user_id": user, "item_id": item, "kind": "like",
           "ts": datetime.now(UTC).isoformat()}]
    t0 = time.perf_counter()
    status, _ = await conn.request("POST", "/v1/events", ihdr, json.dumps(ev).encode())
    took = None
    while time.perf_counter() - t0 < seconds:
        _, feed = await conn.request("GET", f"/v1/users/{user}/feed?n=50", rhdr)
        if label in feed:
            took = time.perf_counter() - t0
            break
        await asyncio.sleep(0.05)
    conn.close()
    return {"status": status, "changed_s": took, "before_had_it": label in before}


RAMP_S = 0.5  # ingest runs this long before the feed clients of the mixed phase start


async def mixed(port: int, w: dict, args: argparse.Namespace, tag: str, probe_item: str
                ) -> tuple[dict, dict, dict, dict]:
    # the ingest clients first: their start (a body of 500 rows each, 16 connections) is
    # the load generator's own burst, and feeds timed through it measured the instrument;
    # the feeds start once the batches flow and stop before the ingest does
    ing = asyncio.create_task(ingest_clients(port, w["ingest"], args.ingest_clients,
                                             args.seconds + 2 * RAMP_S, args.batch, tag,
                                             w["users"], args.items))
    await asyncio.sleep(RAMP_S)
    lo = time.perf_counter()
    feeds = asyncio.create_task(feed_clients(port, w["read"], w["users"], 16, args.seconds,
                                             args.seed + 99))
    await asyncio.sleep(min(1.0, args.seconds / 4))  # probes under load
    post = asyncio.create_task(probe_post(port, w, w["users"], args.probe_s, tag))
    eng = asyncio.create_task(probe_engagement(port, w, probe_item, args.probe_s, tag))
    got, during = await ing, await feeds
    # events/s while the feed clients ran: the batches answered inside their window
    hi = lo + during["seconds"]
    got["events_per_s"] = sum(n for t, n in got.pop("landed") if lo <= t <= hi) / (hi - lo)
    return got, during, await post, await eng


# ---------------------------------------------------------------------- one model
def serve_model(root: Path, w: dict, model: str, args: argparse.Namespace, tag: str,
                materialise_n: int, workers: int = 1) -> dict:
    """Train and promote ``model``, serve it, run every phase and the count check."""
    if _CACHE is not None:
        _CACHE.reset_store(root)
    fit_s = train_promote(root, model)
    with EventStore(root / "bench.duckdb", read_only=True) as s:
        before = s.count_events()
        before_imp = int(s.scalar("SELECT count(*) FROM events WHERE kind IN "
                                  "('impression', 'ad_impression')"))
        before_posted = int(s.scalar("SELECT count(*) FROM events WHERE event_id LIKE 'L%'"
                                     " OR event_id LIKE 'P%'"))
        # the engagement probe's post: one the model was trained on (2.3% of the full
        # world's posts have no engagement: a like of one cannot change a feed), picked
        # by a stable digest of the run's tag (Python's hash() changes per process)
        known = ("(SELECT item_id FROM events WHERE kind NOT IN ('impression', "
                 "'ad_impression') GROUP BY item_id HAVING count(*) >= 5)")
        pick = int(hashlib.sha256(tag.encode()).hexdigest(), 16) % max(
            int(s.scalar(f"SELECT count(*) FROM {known}")), 1)
        probe_item = s.scalar(f"SELECT item_id FROM {known} ORDER BY item_id LIMIT 1 "
                              "OFFSET ?", [pick]) or "i0"
    port = free_port()
    t0 = time.perf_counter()
    proc = start_server(root, port, args.policy, materialise_n, workers)
    startup_s = time.perf_counter() - t0
    print(f"    server ready after {startup_s:.0f}s (model loaded, lists materialised)",
          flush=True)
    if workers > 1:  # the owner answers first; its workers join once loaded
        waited = wait_for_worker(port, w["read"], args.worker_wait_s, workers)
        print(f"    {workers} workers answered after {waited:.1f}s more"
              if waited is not None else f"    not all {workers} workers answered "
              f"within {args.worker_wait_s:.0f}s", flush=True)
    pids = [proc.pid] + (_children(proc.pid) if workers > 1 else [])
    rows = []
    try:
        asyncio.run(feed_clients(port, w["read"], w["users"], 4, 2.0, 123))  # warm-up
        # the instrument must not pause: what lives now (the world, the modules) leaves the
        # collector's sight, so a full collection in a phase walks only what it made (one
        # of 80 ms had shown as a stall of every client at once, both processes idle)
        gc.collect()
        gc.freeze()
        for c in (int(x) for x in args.concurrency.split(",")):
            c0 = _cpu(pids)
            r = asyncio.run(feed_clients(port, w["read"], w["users"], c, args.seconds,
                                         args.seed + c))
            c1 = _cpu(pids)
            r["server_cpu_ms"] = ((c1 - c0) * 1000 / r["requests"]
                                  if c0 is not None and r["requests"] else None)
            rows.append({"phase": "feed", **r})
            print(f"    feed x{c}: {r['rps']:.0f} req/s p50 {r['p50_ms']:.1f} ms "
                  f"p99 {r['p99_ms']:.1f} ms errors {r['errors']}"
                  + (f", server CPU {r['server_cpu_ms']:.2f} ms/request"
                     if r["server_cpu_ms"] is not None else "")
                  + f", load generator (the instrument) CPU {r['loadgen_cpu_ms']:.2f} ms/request"
                  + (f"; connections/requests by process {r['by_process']}"
                     if workers > 1 else ""), flush=True)
        ing, during, post, eng = asyncio.run(mixed(port, w, args, tag, probe_item))
        rows.append({"phase": "feed+ingest", **during, "server_cpu_ms": None})
        print(f"    ingest: {ing['events_per_s']:.0f} events/s ({ing['accepted']} accepted, "
              f"{ing['errors']} failed batches); feeds meanwhile {during['rps']:.0f} req/s "
              f"p99 {during['p99_ms']:.1f} ms; load generator (the instrument, feeds and "
              f"events together) {ing['loadgen_cpu_s'] / ing['seconds'] * 100:.0f}% of a core",
              flush=True)
        print(f"    fresh post in a feed after {_s(post['first_s'])} "
              f"({post['users_seen']}/{post['users_polled']} polled users saw it within "
              f"{args.probe_s:.0f}s); new engagement changed the next feed after "
              f"{_s(eng['changed_s'])}", flush=True)
    finally:
        gc.unfreeze()
        proc.send_signal(signal.SIGINT)  # graceful: the writer flushes before exit
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
    with EventStore(root / "bench.duckdb", read_only=True) as s:
        stored = s.count_events()
        impressions = int(s.scalar("SELECT count(*) FROM events WHERE kind IN "
                                   "('impression', 'ad_impression')")) - before_imp
        posted = int(s.scalar("SELECT count(*) FROM events WHERE event_id LIKE 'L%'"
                              " OR event_id LIKE 'P%'")) - before_posted
    served_slots = sum(r["slots"] for r in rows)
    probe_events = 1 if eng["status"] == 200 else 0
    no_loss = (posted == ing["accepted"] + probe_events
               and stored == before + posted + impressions and impressions >= served_slots)
    f16 = next((r for r in rows if r["phase"] == "feed" and r["clients"] == 16), None)
    f1 = next((r for r in rows if r["phase"] == "feed" and r["clients"] == 1), None)
    return {"model": model, "materialise_n": materialise_n, "workers": workers,
            "fit_s": fit_s,
            "startup_s": startup_s, "rows": rows, "ingest": ing, "post_probe": post,
            "engagement_probe": eng, "stored": stored, "before": before, "posted": posted,
            "impressions": impressions, "served_slots_seen": served_slots,
            "no_event_lost": no_loss,
            "rps_1": f1["rps"] if f1 else None, "rps_16": f16["rps"] if f16 else None,
            "p99_16": f16["p99_ms"] if f16 else None,
            "cpu_ms_16": f16["server_cpu_ms"] if f16 else None,
            "p99_ingest": during["p99_ms"], "events_per_s": ing["events_per_s"]}


def wait_for_worker(port: int, key: str, limit_s: float, n: int = 1) -> float | None:
    """Seconds until feeds were answered by ``n`` distinct workers (``X-Feedwise-Worker``),
    or None. Each try holds 4 connections per process open together: the processes take
    equal shares of open connections (server/tcp.py), so each one that serves gets some."""
    t0 = time.perf_counter()
    seen: set[bytes] = set()
    req = (f"GET /v1/users/u0/feed?n=5 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}"
           "\r\nConnection: close\r\n\r\n").encode()
    while time.perf_counter() - t0 < limit_s:
        conns: list[socket.socket] = []
        try:
            for _ in range(4 * (n + 1)):
                conns.append(socket.create_connection(("127.0.0.1", port), timeout=30))
            for c in conns:
                c.sendall(req)
                head = c.recv(4096).lower()
                i = head.find(b"x-feedwise-worker:")
                if i >= 0:
                    seen.add(head[i + 18:head.index(b"\r\n", i)].strip())
            if len(seen) >= n:
                return time.perf_counter() - t0
        except OSError:
            pass
        finally:
            for c in conns:
                c.close()
        time.sleep(0.5)
    return None


def _children(pid: int) -> list[int]:
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(k) for k in kids]


def _cpu(pids: list[int]) -> float | None:
    got = [cpu_seconds(p) for p in pids]
    return None if any(g is None for g in got) else sum(got)


def _s(x: float | None) -> str:
    return f"{x:.2f}s" if x is not None else "not within the limit"


# ---------------------------------------------------------------------- main
def add_world_args(p: argparse.ArgumentParser) -> None:
    """The world's arguments (:class:`WorldCache` keys on them); see :func:`full_world`."""
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--campaigns", type=int, default=50)
    p.add_argument("--per-user", type=int, default=10, help="training events per user")
    p.add_argument("--topics", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--full", action="store_true",
                   help="100k items, 100k users, 200 campaigns, 1M events")


def full_world(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with ``--full`` applied: the issue's world."""
    if args.full:
        args.items, args.users, args.campaigns = 100_000, 100_000, 200
    return args


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_world_args(p)
    p.add_argument("--models", default="popularity,itemknn,als,default",
                   help="models served one after another (default: the deployment's "
                        "default personalised model, see default_model())")
    p.add_argument("--model", default=None, help="serve only this model (e.g. itemknn)")
    p.add_argument("--direct", action=argparse.BooleanOptionalAction, default=True,
                   help="also serve the default model without materialised lists")
    p.add_argument("--materialise-n", type=int, default=300,
                   help="items per user of the materialised lists (0: score per request)")
    p.add_argument("--workers", type=int, default=2,
                   help="also serve the default model with this many feed workers (1: no)")
    p.add_argument("--worker-wait-s", type=float, default=600.0,
                   help="longest wait for a worker to answer before measuring")
    p.add_argument("--policy", default="auto", choices=["auto", "engine", "model"],
                   help="feed policy served (FEEDWISE_FEED_POLICY)")
    p.add_argument("--concurrency", default="1,16,64")
    p.add_argument("--seconds", type=float, default=8.0, help="duration of each phase")
    p.add_argument("--probe-s", type=float, default=8.0,
                   help="how long the freshness probes wait")
    p.add_argument("--runs", type=int, default=1, help="repeat every model's phases")
    p.add_argument("--ingest-clients", type=int, default=16)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--writer-batch", type=int, default=8000,
                   help="rows per job of the writer-alone phase")
    p.add_argument("--writer-rounds", type=int, default=6)
    p.add_argument("--slower", type=float, default=0.0, metavar="F",
                   help="emulate a slower machine: a competing busy process takes the share "
                        "F of every core while the servings run (root and a cpu cgroup; see "
                        "benchmarks/_slower.py)")
    p.add_argument("--burn", type=float, default=0.0, metavar="F",
                   help="emulate a CPU F times slower: every thread of the benchmark and the "
                        "server does F - 1 times more work after each unit of its own "
                        "(benchmarks/_slower.py, burn)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serve.json"))
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, default=True,
                   help="keep the built world and fitted models for the next run "
                        "(keyed by the world's parameters)")
    p.add_argument("--cache-dir", default=str(ROOT / "benchmarks" / "results" / "serve_worlds"))
    args = full_world(p.parse_args())
    if args.burn and args.slower:
        p.error("--burn and --slower are two emulations of a slower machine: use one")
    default = default_model()
    models = [args.model] if args.model else [default if m == "default" else m
                                             for m in args.models.split(",")]
    models = list(dict.fromkeys(models))
    plan = [(m, args.materialise_n, 1) for m in models]
    if args.workers > 1 and default in models:
        plan.append((default, args.materialise_n, args.workers))
    if args.direct and args.materialise_n and default in models:
        plan.append((default, 0, 1))
    global _CACHE
    cache = WorldCache(Path(args.cache_dir), args) if args.cache else None
    if cache is not None:
        cache.base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="fw-serve-",
                                 dir=cache.base if cache is not None else None))
    t0 = time.perf_counter()
    w, cached = open_world(root, cache, args)
    if cached:
        print(f"world: from the cache {cache.folder} (copied in "
              f"{time.perf_counter() - t0:.0f}s; built before in {w['phases']}; models "
              f"fitted there: {sorted(_TRAINED) or 'none'})", flush=True)
    else:
        print(f"world built in {time.perf_counter() - t0:.0f}s: {w['phases']}"
              + (f"; cached in {cache.folder}" if cache is not None else ""), flush=True)
    _CACHE = cache
    print(f"world: {args.items} items, {args.users} users, {args.campaigns} campaigns, "
          f"{w['events']} events; default model: {default}", flush=True)
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} (other work on these cores distorts "
          f"the timings); {os.cpu_count()} CPUs", flush=True)
    results = []
    slow = SlowerMachine(args.slower) if args.slower else contextlib.nullcontext()
    with slow:
        if args.slower:
            print(f"emulated slower machine (benchmarks/_slower.py): a busy process takes "
                  f"{args.slower:.0%} of every core when the benchmark wants it; a busy loop "
                  f"here now runs {slow.slowdown:.2f}x slower", flush=True)
        if args.burn:
            burn(args.burn)
            print(f"emulated CPU {args.burn}x slower (benchmarks/_slower.py, burn): every "
                  f"thread does {args.burn - 1:.2f}x its work more; the CPU a request costs "
                  "below is the emulated machine's", flush=True)
        for run in range(args.runs):
            for m, mat, nw in plan:
                label = f"{m}{' (default)' if m == default else ''}, " + (
                    f"materialised lists n={mat}" if mat else "scored per request") + (
                    f", {nw} workers and the store's owner" if nw > 1 else ", one process")
                print(f"run {run + 1}: serving {label}", flush=True)
                r = serve_model(root, w, m, args, f"{run}{m}{mat}{nw}", mat, nw)
                r["run"] = run + 1
                results.append(r)
                print(f"    count check: stored {r['stored']} = before {r['before']} + "
                      f"posted {r['posted']} + impressions {r['impressions']} -> "
                      f"{'OK, no event lost or doubled' if r['no_event_lost'] else 'MISMATCH'}",
                      flush=True)
    table = []
    for r in results:
        table.append({
            "run": r["run"], "model served": r["model"] + ("*" if r["model"] == default else ""),
            "lists": r["materialise_n"] or "direct", "procs": r["workers"],
            "req/s @1": round(r["rps_1"]) if r["rps_1"] else None,
            "req/s @16": round(r["rps_16"]) if r["rps_16"] else None,
            "p99 @16 ms": round(r["p99_16"], 1) if r["p99_16"] else None,
            "CPU ms/req": round(r["cpu_ms_16"], 2) if r["cpu_ms_16"] else None,
            "events/s": round(r["events_per_s"]),
            "p99 ingest/none": round(r["p99_ingest"] / r["p99_16"], 2) if r["p99_16"] else None,
            "post seen s": (round(r["post_probe"]["first_s"], 2)
                            if r["post_probe"]["first_s"] is not None else None),
            "engagement s": (round(r["engagement_probe"]["changed_s"], 2)
                             if r["engagement_probe"]["changed_s"] is not None else None),
            "count": "OK" if r["no_event_lost"] else "MISMATCH",
            "startup s": round(r["startup_s"], 1)})
    print()
    print("* the deployment's default model;  CPU ms/req: server CPU per feed at 16 clients")
    print(pd.DataFrame(table).to_string(index=False))
    print(f"\ntargets: >= {TARGETS['feed_rps_16']:.0f} feeds/s and p99 <= "
          f"{TARGETS['feed_p99_ms_16']:.0f} ms at 16 clients; >= "
          f"{TARGETS['events_per_s']:.0f} events/s with feed p99 <= 2x; fresh post and new "
          f"engagement within 5 s; workers >= 1.5x the one-process req/s @16.")
    for run in range(1, args.runs + 1):
        one = next((r for r in results if r["run"] == run and r["model"] == default
                    and r["workers"] == 1 and r["materialise_n"]), None)
        many = next((r for r in results if r["run"] == run and r["workers"] > 1), None)
        if one and many and one["rps_16"]:
            print(f"run {run}: {many['workers']} workers / one process at 16 clients: "
                  f"{many['rps_16'] / one['rps_16']:.2f}x ({many['rps_16']:.0f} vs "
                  f"{one['rps_16']:.0f} req/s)")
    writer = writer_capacity(root, args.writer_batch, args.writer_rounds)
    print(f"writer alone            {writer['rows_per_s']:.0f} events/s landed by the Writer "
          f"in batches of {args.writer_batch} into the {writer['table_rows']}-row store, "
          f"no HTTP (the store-side ceiling)")
    out = {"args": vars(args), "cpus": os.cpu_count(), "load_before": load_before,
           "slowdown": slow.slowdown if args.slower else None, "burn": args.burn or None,
           "load_after": os.getloadavg(), "default_model": default,
           "world_events": w["events"], "results": results, "writer_alone": writer,
           "targets": TARGETS}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, default=str))
    print(f"-> {args.out}")
    if cache is not None:  # the served copy (the cached world stays)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
