"""Benchmark of the HTTP service on loopback: feed latency/throughput and event ingestion.

Builds a synthetic world (posts, users, engagement events, campaigns with creatives), trains
and promotes a model, starts ``feedwise serve`` as a separate process on 127.0.0.1 and
drives it with a bounded asyncio load generator (one keep-alive HTTP/1.1 connection per
client, fixed duration per phase):

1. ``GET /v1/users/{id}/feed?n=20`` at 1, 16 and 64 concurrent clients: requests/s, p50, p99;
2. ``POST /v1/events`` in batches of 500 from ``--ingest-clients`` clients *while* 16 feed
   clients run: events/s accepted and the feed latency meanwhile;
3. the server is stopped (graceful shutdown flushes the writer) and the store is counted:
   events before + events accepted + impressions of every served slot must equal the
   events stored (no event lost, none duplicated).

Defaults are small for a shared 2-core machine; ``--full`` asks for the issue's world
(100k items, 100k users, 200 campaigns). Results go to ``benchmarks/results/serve.json``.

    .venv/bin/python benchmarks/serve.py                 # small world, ~1 minute
    .venv/bin/python benchmarks/serve.py --full          # 100k x 100k x 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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

TARGETS = {"feed_rps_16": 500.0, "feed_p99_ms_16": 50.0, "events_per_s": 20_000.0}


# ---------------------------------------------------------------------- the world
def build_world(root: Path, n_items: int, n_users: int, n_campaigns: int, per_user: int,
                n_topics: int, model: str, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
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
    rep = store.ingest(ev)
    store.upsert_users(pd.DataFrame({
        "user_id": [f"u{k}" for k in range(n_users)], "consent_personalization": True,
        "consent_ads": True, "consent_analytics": True, "consent_updated_at": now,
        "consent_source": "benchmark", "attributes": "{}"}))
    data = store.interactions()
    t0 = time.perf_counter()
    fitted = get_model(model).fit(data)
    fit_s = time.perf_counter() - t0
    reg = ModelRegistry(root / "registry")
    v = reg.register(fitted, data_window={"until": now, "n_events": rep.accepted})
    reg.promote(v.version, reason="benchmark")
    n_events = store.count_events()
    store.close()
    keys = root / "keys.json"
    read, _ = create_key(keys, ["read"])
    ingest, _ = create_key(keys, ["ingest"])
    return {"read": read, "ingest": ingest, "events": n_events, "fit_s": fit_s,
            "users": n_users}


# ---------------------------------------------------------------------- the server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(root: Path, port: int, policy: str) -> subprocess.Popen:
    env = {**os.environ, "FEEDWISE_DB": str(root / "bench.duckdb"),
           "FEEDWISE_REGISTRY": str(root / "registry"),
           "FEEDWISE_KEYS_FILE": str(root / "keys.json"), "FEEDWISE_RELOAD_INTERVAL_S": "5",
           "FEEDWISE_MAX_BATCH_EVENTS": "1000", "FEEDWISE_FEED_POLICY": policy}
    cmd = [sys.executable, "-c", "from feedwise.cli import app; app()", "serve",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
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
    """A minimal keep-alive HTTP/1.1 client connection (less client CPU than a full client)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.r: asyncio.StreamReader | None = None
        self.w: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, headers: dict[str, str],
                      body: bytes = b"") -> tuple[int, bytes]:
        if self.w is None:
            self.r, self.w = await asyncio.open_connection("127.0.0.1", self.port)
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items())
        if body:
            head += f"Content-Length: {len(body)}\r\n"
        self.w.write(head.encode() + b"\r\n" + body)
        await self.w.drain()
        status_line = await self.r.readline()
        length = 0
        while True:
            line = await self.r.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        data = await self.r.readexactly(length) if length else b""
        return int(status_line.split()[1]), data

    def close(self) -> None:
        if self.w is not None:
            self.w.close()


async def feed_clients(port: int, key: str, n_users: int, clients: int, seconds: float,
                       seed: int, stop: asyncio.Event | None = None) -> dict:
    lat: list[float] = []
    slots = [0]
    errors = [0]
    hdr = {"Authorization": f"Bearer {key}"}
    end = time.perf_counter() + seconds

    async def one(c: int) -> None:
        rng = np.random.default_rng(seed * 1000 + c)
        conn = Conn(port)
        try:
            while time.perf_counter() < end and not (stop and stop.is_set()):
                u = int(rng.integers(0, n_users))
                t = time.perf_counter()
                status, body = await conn.request("GET", f"/v1/users/u{u}/feed?n=20", hdr)
                lat.append(time.perf_counter() - t)
                if status != 200:
                    errors[0] += 1
                else:
                    slots[0] += body.count(b'"position"')
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(c) for c in range(clients)))
    wall = time.perf_counter() - t0
    a = np.array(lat) * 1000
    return {"clients": clients, "requests": len(lat), "errors": errors[0], "slots": slots[0],
            "rps": len(lat) / wall, "p50_ms": float(np.percentile(a, 50)) if len(a) else None,
            "p99_ms": float(np.percentile(a, 99)) if len(a) else None, "seconds": wall}


async def ingest_clients(port: int, key: str, clients: int, seconds: float, batch: int,
                         n_users: int, n_items: int) -> dict:
    hdr = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    accepted = [0]
    sent = [0]
    errors = [0]
    end = time.perf_counter() + seconds
    ts = datetime.now(UTC).isoformat()

    async def one(c: int) -> None:
        conn = Conn(port)
        b = 0
        try:
            while time.perf_counter() < end:
                rows = [{"event_id": f"L{c}-{b}-{j}", "user_id": f"u{(b * batch + j) % n_users}",
                         "item_id": f"i{(c * 7919 + j) % n_items}", "kind": "click", "ts": ts}
                        for j in range(batch)]
                status, body = await conn.request("POST", "/v1/events", hdr,
                                                  json.dumps(rows).encode())
                sent[0] += batch
                if status == 200:
                    accepted[0] += json.loads(body)["accepted"]
                else:
                    errors[0] += 1
                b += 1
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(c) for c in range(clients)))
    wall = time.perf_counter() - t0
    return {"clients": clients, "sent": sent[0], "accepted": accepted[0], "errors": errors[0],
            "events_per_s": accepted[0] / wall, "seconds": wall}


async def mixed(port: int, w: dict, args: argparse.Namespace) -> tuple[dict, dict]:
    ing = asyncio.create_task(ingest_clients(port, w["ingest"], args.ingest_clients,
                                             args.seconds, args.batch, w["users"], args.items))
    feeds = asyncio.create_task(feed_clients(port, w["read"], w["users"], 16, args.seconds,
                                             args.seed + 99))
    return await ing, await feeds


def writer_capacity(root: Path, batch: int, rounds: int) -> dict:
    """Events/s the Writer lands with no HTTP in front (run after the server stopped; the
    rows are removed again so the count check above is unaffected)."""
    from feedwise.server.writer import Writer

    ts = datetime.now(UTC).isoformat()
    with EventStore(root / "bench.duckdb") as store:
        before = store.count_events()
        w = Writer(store).start()
        t0 = time.perf_counter()
        futs = [w.submit_events([{"event_id": f"W{r}-{j}", "user_id": f"u{j}",
                                  "item_id": f"i{j}", "kind": "click", "ts": ts}
                                 for j in range(batch)]) for r in range(rounds)]
        landed = sum(f.result(600).accepted for f in futs)
        wall = time.perf_counter() - t0
        w.close()
        store.con.execute("DELETE FROM events WHERE event_id LIKE 'W%'")
    return {"rows": landed, "seconds": wall, "rows_per_s": landed / wall,
            "table_rows": before, "batch": batch}


# ---------------------------------------------------------------------- main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--campaigns", type=int, default=50)
    p.add_argument("--per-user", type=int, default=10, help="training events per user")
    p.add_argument("--topics", type=int, default=50)
    p.add_argument("--full", action="store_true", help="100k items, 100k users, 200 campaigns")
    p.add_argument("--model", default="popularity", help="model served (popularity, itemknn)")
    p.add_argument("--policy", default="auto", choices=["auto", "engine", "model"],
                   help="feed policy served (FEEDWISE_FEED_POLICY)")
    p.add_argument("--concurrency", default="1,16,64")
    p.add_argument("--seconds", type=float, default=8.0, help="duration of each phase")
    p.add_argument("--ingest-clients", type=int, default=16)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--writer-batch", type=int, default=8000,
                   help="rows per job of the writer-alone phase")
    p.add_argument("--writer-rounds", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serve.json"))
    args = p.parse_args()
    if args.full:
        args.items, args.users, args.campaigns = 100_000, 100_000, 200
    root = Path(tempfile.mkdtemp(prefix="fw-serve-"))
    t0 = time.perf_counter()
    w = build_world(root, args.items, args.users, args.campaigns, args.per_user, args.topics,
                    args.model, args.seed)
    print(f"world: {args.items} items, {args.users} users, {args.campaigns} campaigns, "
          f"{w['events']} events, {args.model} fit {w['fit_s']:.1f}s "
          f"(built in {time.perf_counter() - t0:.0f}s)", flush=True)
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} (other work on these cores distorts "
          f"the timings)", flush=True)
    port = free_port()
    proc = start_server(root, port, args.policy)
    rows = []
    try:
        asyncio.run(feed_clients(port, w["read"], w["users"], 4, 2.0, 123))  # warm-up
        for c in (int(x) for x in args.concurrency.split(",")):
            c0 = cpu_seconds(proc.pid)
            r = asyncio.run(feed_clients(port, w["read"], w["users"], c, args.seconds,
                                         args.seed + c))
            c1 = cpu_seconds(proc.pid)
            # server CPU per request: a figure that load on the machine disturbs far less
            r["server_cpu_ms"] = ((c1 - c0) * 1000 / r["requests"]
                                  if c0 is not None and r["requests"] else None)
            rows.append({"phase": "feed", **r})
            print(f"  feed x{c}: {r['rps']:.0f} req/s p50 {r['p50_ms']:.1f} ms "
                  f"p99 {r['p99_ms']:.1f} ms errors {r['errors']}"
                  + (f", server CPU {r['server_cpu_ms']:.2f} ms/request"
                     if r["server_cpu_ms"] is not None else ""), flush=True)
        ing, during = asyncio.run(mixed(port, w, args))
        rows.append({"phase": "feed+ingest", **during})
        print(f"  ingest: {ing['events_per_s']:.0f} events/s ({ing['accepted']} accepted, "
              f"{ing['errors']} failed batches); feeds meanwhile {during['rps']:.0f} req/s "
              f"p99 {during['p99_ms']:.1f} ms", flush=True)
    finally:
        proc.send_signal(signal.SIGINT)  # graceful: the writer flushes before exit
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
    warm_slots = 0  # the warm-up's impressions are counted from the store's view below
    with EventStore(root / "bench.duckdb", read_only=True) as s:
        stored = s.count_events()
        impressions = int(s.scalar("SELECT count(*) FROM events WHERE kind IN "
                                   "('impression', 'ad_impression')"))
        posted = int(s.scalar("SELECT count(*) FROM events WHERE event_id LIKE 'L%'"))
    writer = writer_capacity(root, args.writer_batch, args.writer_rounds)
    served_slots = sum(r["slots"] for r in rows)
    expected_min = w["events"] + ing["accepted"] + served_slots + warm_slots
    no_loss = posted == ing["accepted"] and stored == w["events"] + posted + impressions \
        and impressions >= served_slots
    f16 = next((r for r in rows if r["phase"] == "feed" and r["clients"] == 16), None)
    table = []
    for r in rows:
        cpu = r.get("server_cpu_ms")
        table.append({"phase": r["phase"], "clients": r["clients"], "req/s": round(r["rps"]),
                      "p50 ms": round(r["p50_ms"], 1), "p99 ms": round(r["p99_ms"], 1),
                      "errors": r["errors"],
                      "server CPU ms/req": round(cpu, 2) if cpu is not None else "n/a"})
    print()
    print(pd.DataFrame(table).to_string(index=False))
    checks = {
        "feed req/s @16 vs 500": (f16["rps"] / TARGETS["feed_rps_16"]) if f16 else None,
        "feed p99 @16 vs 50 ms": (f16["p99_ms"] / TARGETS["feed_p99_ms_16"]) if f16 else None,
        "events/s vs 20000": ing["events_per_s"] / TARGETS["events_per_s"]}
    print()
    for k, v in checks.items():
        print(f"{k:24s} ratio {v:.2f}" if v is not None else f"{k:24s} n/a")
    print(f"events/s ingested       {ing['events_per_s']:.0f} (batches of {args.batch}, "
          f"{args.ingest_clients} clients, while 16 feed clients ran)")
    print(f"count check             stored {stored} = before {w['events']} + posted {posted} "
          f"+ impressions {impressions}; accepted by API {ing['accepted']}; slots seen by "
          f"clients {served_slots} -> {'OK, no event lost' if no_loss else 'MISMATCH'}")
    out = {"args": vars(args), "cpus": os.cpu_count(), "load_before": load_before,
           "world_events": w["events"],
           "feed": rows, "ingest": ing, "stored": stored, "posted": posted,
           "impressions": impressions, "served_slots_seen": served_slots,
           "expected_min": expected_min, "no_event_lost": no_loss, "ratios": checks}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, default=str))
    print(f"writer alone            {writer['rows_per_s']:.0f} events/s landed by the Writer "
          f"in batches of {args.writer_batch} into the {writer['table_rows']}-row store, "
          f"no HTTP (the store-side ceiling)")
    out["writer_alone"] = writer
    Path(args.out).write_text(json.dumps(out, indent=2, default=str))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
