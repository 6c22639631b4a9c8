"""The console's page latency, and what a console polling the overview costs the feed.

1. **Pages**: the console demo deployment (``tests/console/console_world.py``: the synthetic
   social world, two registered models, profiles, messages, an applied policy and a running
   experiment) served by ``feedwise serve`` in a child process; each page is fetched
   ``--requests`` times by one logged-in client. Two columns per page: *repeat* (the same
   URL each time: analytics results may come from the console's 15 s cache, as for a
   polling browser) and *fresh* (a different ``k`` each time, so every KPI, listening and
   best-time query runs; the inspector, campaign list and models are never cached).
2. **Feed p99 with and without the console**: ``benchmarks/serve.py``'s world and feed load
   (its ``build_world``, ``start_server`` and ``feed_clients``, imported; ``--model``
   itemknn by default, so the figure does not move with the default model) at ``--clients``
   clients, alone and while a console session polls ``/console/overview`` every
   ``--poll-s`` seconds (a browser polls every 30 s; the default is 6x that), in
   alternating rounds (``--rounds``) so drift hits both alike.

Results go to ``benchmarks/results/console.json``.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/console.py            # ~3 min
    python benchmarks/console.py --requests 50 --seconds 30 --rounds 3   # steadier
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "console"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import serve as serve_bench  # noqa: E402 - benchmarks/serve.py (SERVE's): world and load
from console_world import build_world  # noqa: E402

PAGES = ("overview", "overview/alerts", "inspector", "campaigns", "models", "audience",
         "listening", "care")
#: pages whose k varies in the *fresh* column (the others are never cached)
CACHED = {"overview", "overview/alerts", "campaigns", "audience", "listening"}


def login(url: str, key: str) -> httpx.Client:
    c = httpx.Client(base_url=url, timeout=60)
    r = c.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)
    r = c.post("/console/login", data={"key": key, "csrf": token, "next": "/console/overview"})
    if r.status_code != 303:
        raise RuntimeError(f"login failed: {r.status_code} {r.text[:300]}")
    return c


def page_latency(root: Path, requests: int) -> list[dict]:
    world = build_world(root, db_name="bench.duckdb")
    port = serve_bench.free_port()
    proc = serve_bench.start_server(root, port, "auto")
    try:
        c = login(f"http://127.0.0.1:{port}", world.admin)
        rows = []
        for name in PAGES:
            t = time.perf_counter()
            r = c.get(f"/console/{name}")
            first = (time.perf_counter() - t) * 1000
            assert r.status_code == 200, (name, r.status_code)
            rep, fresh, cpu = [], [], []
            for i in range(requests):
                t = time.perf_counter()
                r = c.get(f"/console/{name}")
                rep.append((time.perf_counter() - t) * 1000)
                q = f"?k={3 + i}" if name in CACHED else ""
                c0 = serve_bench.cpu_seconds(proc.pid)
                t = time.perf_counter()
                r = c.get(f"/console/{name}{q}")
                fresh.append((time.perf_counter() - t) * 1000)
                c1 = serve_bench.cpu_seconds(proc.pid)
                if c0 is not None and c1 is not None:
                    cpu.append((c1 - c0) * 1000)
                assert r.status_code == 200, (name, r.status_code)
            rows.append({"page": name, "first_ms": first,
                         "repeat_p50_ms": float(np.percentile(rep, 50)),
                         "repeat_p95_ms": float(np.percentile(rep, 95)),
                         "fresh_p50_ms": float(np.percentile(fresh, 50)),
                         "fresh_p95_ms": float(np.percentile(fresh, 95)),
                         # server CPU (all threads) of a fresh request: its latency on an
                         # idle machine is about this much (DuckDB may use a second core)
                         "fresh_cpu_p50_ms": float(np.percentile(cpu, 50)) if cpu else None,
                         "fresh_cpu_p95_ms": float(np.percentile(cpu, 95)) if cpu else None,
                         "bytes": len(r.content)})
        return rows
    finally:
        proc.terminate()
        proc.wait(30)


async def _poll(port: int, cookie: str, every_s: float, stop: asyncio.Event) -> dict:
    lat, errors = [], 0
    while not stop.is_set():
        conn = serve_bench.Conn(port)  # a new connection per poll: the server closes idle
        try:                           # keep-alive connections after 5 s
            t = time.perf_counter()
            status, _ = await conn.request("GET", "/console/overview", {"Cookie": cookie})
            status2, _ = await conn.request("GET", "/console/overview/alerts",
                                            {"Cookie": cookie})
            lat.append((time.perf_counter() - t) * 1000)
            errors += (status != 200) + (status2 != 200)
        finally:
            conn.close()
        try:
            await asyncio.wait_for(stop.wait(), every_s)
        except TimeoutError:
            pass
    return {"polls": len(lat), "errors": errors,
            "p95_ms": float(np.percentile(lat, 95)) if lat else None}


async def _round(port: int, w: dict, args: argparse.Namespace, cookie: str | None,
                 seed: int) -> dict:
    stop = asyncio.Event()
    poller = (asyncio.create_task(_poll(port, cookie, args.poll_s, stop))
              if cookie else None)
    feed = await serve_bench.feed_clients(port, w["read"], w["users"], args.clients,
                                          args.seconds, seed)
    stop.set()
    polled = await poller if poller else None
    return {"console": bool(cookie), **feed, "poll": polled}


def feed_cost(root: Path, args: argparse.Namespace) -> list[dict]:
    w = serve_bench.build_world(root, n_items=args.items, n_users=args.users,
                                n_campaigns=20, per_user=20, n_topics=20,
                                model=args.model or serve_bench.default_model(), seed=0)
    port = serve_bench.free_port()
    proc = serve_bench.start_server(root, port, "auto")
    try:
        c = login(f"http://127.0.0.1:{port}", w["admin"])
        cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
        asyncio.run(serve_bench.feed_clients(port, w["read"], w["users"], args.clients, 3.0,
                                             99))  # warm-up
        out = []
        for r in range(args.rounds):
            for with_console in (False, True):
                out.append({"round": r, **asyncio.run(_round(
                    port, w, args, cookie if with_console else None, r))})
        return out
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=30, help="Fetches per page and column.")
    p.add_argument("--clients", type=int, default=8, help="Feed clients.")
    p.add_argument("--seconds", type=float, default=15.0, help="Seconds per feed round.")
    p.add_argument("--rounds", type=int, default=2, help="Rounds of (alone, with console).")
    p.add_argument("--poll-s", type=float, default=5.0, help="Console poll interval.")
    p.add_argument("--items", type=int, default=5000, help="Posts of the feed world.")
    p.add_argument("--users", type=int, default=5000, help="Users of the feed world.")
    p.add_argument("--model", default="itemknn",
                   help="Model the feed world serves (empty: benchmarks/serve.py's default).")
    p.add_argument("--skip-feed", action="store_true", help="Only the page latencies.")
    p.add_argument("--skip-pages", action="store_true", help="Only the feed p99 part.")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "console.json"))
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fw-console-bench-"))
    try:
        pages = [] if args.skip_pages else page_latency(tmp / "pages", args.requests)
        if pages:
            print(f"\nconsole pages ({args.requests} fetches each; load average "
                  f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
            print(f"{'page':<16} {'first':>8} {'repeat p50':>11} {'repeat p95':>11} "
                  f"{'fresh p50':>10} {'fresh p95':>10} {'cpu p95':>8} {'<=300ms':>8}")
        for r in pages:
            ok = max(r["repeat_p95_ms"], r["fresh_p95_ms"]) <= 300
            print(f"{r['page']:<16} {r['first_ms']:>7.0f}ms {r['repeat_p50_ms']:>9.0f}ms "
                  f"{r['repeat_p95_ms']:>9.0f}ms {r['fresh_p50_ms']:>8.0f}ms "
                  f"{r['fresh_p95_ms']:>8.0f}ms {r['fresh_cpu_p95_ms'] or 0:>6.0f}ms "
                  f"{'yes' if ok else 'NO':>8}")
        feed = [] if args.skip_feed else feed_cost(tmp / "feed", args)
        if feed:
            print(f"\nfeed endpoint ({args.model or 'default model'}), {args.clients} clients, "
                  f"{args.seconds:g} s rounds; "
                  f"console polling /console/overview every {args.poll_s:g} s")
            print(f"{'round':>5} {'console':>8} {'feeds/s':>8} {'p50':>8} {'p99':>8} "
                  f"{'polls':>6} {'poll p95':>9}")
            for r in feed:
                poll = r["poll"] or {}
                pp = f"{poll['p95_ms']:.0f}ms" if poll.get("p95_ms") else ""
                print(f"{r['round']:>5} {'yes' if r['console'] else 'no':>8} "
                      f"{r['rps']:>8.0f} {r['p50_ms']:>6.1f}ms {r['p99_ms']:>6.1f}ms "
                      f"{poll.get('polls', ''):>6} "
                      f"{pp:>9}")
            alone = [r["p99_ms"] for r in feed if not r["console"]]
            polled = [r["p99_ms"] for r in feed if r["console"]]
            print(f"feed p99: {np.median(alone):.1f} ms alone, {np.median(polled):.1f} ms "
                  f"with the console (median of rounds)")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"pages": pages, "feed": feed, "args": vars(args),
                                   "load_average": os.getloadavg()}, indent=2, default=str))
        print(f"\nwrote {out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
