"""The console's page latency, and what a console polling the overview costs the feed.

1. **Pages**: the console demo deployment (``tests/console/console_world.py``: the synthetic
   social world, two registered models, profiles, messages, an applied policy and a running
   experiment) served by ``feedwise serve`` in a child process; each page is fetched
   ``--requests`` times by one logged-in client. Two columns per page: *repeat* (the same
   URL each time: analytics results may come from the console's 30 s cache, as for a
   polling browser), *new k* (a different ``k`` each time: the page cache misses; what
   does not depend on k — the SQL of a window, the influence fit, best time, scored
   comments — may be reused) and *new view* (filters nobody opened before: a date window
   not fetched before on any page, with a new ``k``, and on the overview a changing grain
   and comparison; the overview's alerts are fetched right after the overview with the
   same filters, as the page's script does). The p95 verdict covers all three columns
   and the first fetch.
2. **Feed p99 with and without the console**: ``benchmarks/serve.py``'s world and feed load
   (its ``build_world``, ``start_server`` and ``feed_clients``, imported; ``--model``
   itemknn by default, so the figure does not move with the default model) at ``--clients``
   clients, alone and while a console session polls ``/console/overview`` every
   ``--poll-s`` seconds (a browser polls every 30 s; the default is 6x that), in
   alternating rounds (``--rounds``; the order flips every round, ABBA) so drift hits both
   alike.

Before and after, side by side in one run: ``--baseline-rev REV`` (e.g. ``HEAD``) serves
the same worlds a second time with the console package as it is at git revision ``REV``
(the rest of the tree as it is now; the overlay goes on ``PYTHONPATH``), and each table
shows both. Server CPU per request (``/proc``, all the server's threads) is reported
beside wall time: on a loaded machine wall time grows with the load far more.

The login page starts the console's warm-up (the default view of each analytics page is
computed in the background while the key is typed): ``--think-s`` is the pause between
loading the login page and submitting the key (a person's typing), ``0`` to fetch at once.

Results go to ``benchmarks/results/console.json``.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/console.py            # ~3 min
    python benchmarks/console.py --baseline-rev HEAD --requests 15       # before/after
    python benchmarks/console.py --requests 50 --seconds 30 --rounds 3   # steadier
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
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


def login(url: str, key: str, think_s: float = 0.0) -> httpx.Client:
    c = httpx.Client(base_url=url, timeout=60)
    r = c.get("/console/login")
    time.sleep(think_s)  # typing the key
    token = re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)
    r = c.post("/console/login", data={"key": key, "csrf": token, "next": "/console/overview"})
    if r.status_code != 303:
        raise RuntimeError(f"login failed: {r.status_code} {r.text[:300]}")
    return c


def baseline_tree(rev: str, tmp: Path, whole: bool = False) -> Path:
    """A copy of ``src/`` with the console package as it is at git revision ``rev``
    (``whole``: all of ``src/feedwise`` as it is there: the analytics the pages call too)."""
    dst = tmp / "baseline-src"
    shutil.copytree(ROOT / "src", dst, ignore=shutil.ignore_patterns("__pycache__"))
    pkg = "src/feedwise" if whole else "src/feedwise/server/console"
    shutil.rmtree(dst / pkg.removeprefix("src/"))
    arch = tmp / "baseline-archive"
    arch.mkdir()
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev, pkg], check=True,
                         capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(arch)], input=tar, check=True)
    shutil.copytree(arch / pkg, dst / pkg.removeprefix("src/"))
    return dst


def start(root: Path, port: int, code: Path | None) -> subprocess.Popen:
    """``feedwise serve`` on ``root``'s world; ``code``: a source tree to run instead."""
    old = os.environ.get("PYTHONPATH")
    if code is not None:
        os.environ["PYTHONPATH"] = str(code)
    try:
        return serve_bench.start_server(root, port, "auto")
    finally:
        if code is None or old is not None:
            if old is not None:
                os.environ["PYTHONPATH"] = old
        else:
            os.environ.pop("PYTHONPATH", None)


def new_views(requests: int, seed: int = 0) -> dict[str, list[str]]:
    """Per page, ``requests`` query strings with filters no fetch has used before: each a
    date window of its own (no two pages share one, except the overview and its alerts,
    which the page fetches together), a new ``k``, and on the overview a grain and
    comparison that change."""
    days = [f"2024-02-{d:02d}" for d in range(24, 30)] + \
        [f"2024-03-{d:02d}" for d in range(1, 14)]
    wins = [(a, b) for i, a in enumerate(days) for b in days[i + 3:]
            if b >= "2024-03-07"]
    order = np.random.default_rng(seed).permutation(len(wins))
    pages = ["overview", "campaigns", "audience", "listening", "care"]
    need = requests * len(pages)
    if need > len(wins):
        raise SystemExit(f"--requests {requests}: at most {len(wins) // len(pages)} new "
                         "windows per page")
    out: dict[str, list[str]] = {}
    for j, page in enumerate(pages):
        qs = []
        for i in range(requests):
            a, b = wins[order[j * requests + i]]
            q = f"start={a}&end={b}&k={4 + i % 9}"
            if page == "overview":
                q += f"&grain={('day', 'week', 'day', 'hour', 'month')[i % 5]}"
                q += "&compare=none" if i % 4 == 3 else ""
            qs.append(q)
        out[page] = qs
    out["overview/alerts"] = out["overview"]
    out["inspector"] = [f"n={5 + i % 10}&policy={('served', 'default', 'no-ads')[i % 3]}"
                        for i in range(requests)]
    out["models"] = ["" for _ in range(requests)]
    return out


def _get(c: httpx.Client, proc, url: str) -> tuple[float, float | None]:
    """Wall and server CPU (ms) of one fetch (which must answer 200)."""
    c0 = serve_bench.cpu_seconds(proc.pid)
    t = time.perf_counter()
    r = c.get(url)
    wall = (time.perf_counter() - t) * 1000
    c1 = serve_bench.cpu_seconds(proc.pid)
    assert r.status_code == 200, (url, r.status_code, r.text[:300])
    return wall, (c1 - c0) * 1000 if c0 is not None and c1 is not None else None


def _p(xs: list, q: float) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(np.percentile(xs, q)) if xs else None


def page_latency(root: Path, world, requests: int, code: Path | None = None,
                 think_s: float = 3.0) -> list[dict]:
    port = serve_bench.free_port()
    proc = start(root, port, code)
    try:
        c = login(f"http://127.0.0.1:{port}", world.admin, think_s)
        rows = []
        for name in PAGES:
            first, first_cpu = _get(c, proc, f"/console/{name}")
            rep, fresh, cpu = [], [], []
            for i in range(requests):
                rep.append(_get(c, proc, f"/console/{name}")[0])
                q = f"?k={3 + i}" if name in CACHED else ""
                w, u = _get(c, proc, f"/console/{name}{q}")
                fresh.append(w)
                cpu.append(u)
            rows.append({"page": name, "first_ms": first, "first_cpu_ms": first_cpu,
                         "repeat_p50_ms": _p(rep, 50), "repeat_p95_ms": _p(rep, 95),
                         "fresh_p50_ms": _p(fresh, 50), "fresh_p95_ms": _p(fresh, 95),
                         # server CPU (all threads) of a fresh request: its latency on an
                         # idle machine is about this much (DuckDB may use a second core)
                         "fresh_cpu_p50_ms": _p(cpu, 50), "fresh_cpu_p95_ms": _p(cpu, 95),
                         "_rep": rep, "_fresh": fresh})
        views = new_views(requests)
        new: dict[str, list[float]] = {p: [] for p in PAGES}
        new_cpu: dict[str, list[float | None]] = {p: [] for p in PAGES}
        for i in range(requests):  # never-opened views, page after page (as a person
            for name in PAGES:     # going through the console with new dates would)
                q = views[name][i]
                w, u = _get(c, proc, f"/console/{name}" + (f"?{q}" if q else ""))
                new[name].append(w)
                new_cpu[name].append(u)
        for row in rows:
            name = row["page"]
            row.update({"new_p50_ms": _p(new[name], 50), "new_p95_ms": _p(new[name], 95),
                        "new_cpu_p50_ms": _p(new_cpu[name], 50),
                        "new_cpu_p95_ms": _p(new_cpu[name], 95),
                        "all_p95_ms": _p([row["first_ms"], *row.pop("_rep"),
                                          *row.pop("_fresh"), *new[name]], 95),
                        "new_views": views[name]})
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


async def _idle(port: int, cookie: str | None, seconds: float, every_s: float) -> dict:
    stop = asyncio.Event()
    task = asyncio.create_task(_poll(port, cookie, every_s, stop)) if cookie else None
    await asyncio.sleep(seconds)
    stop.set()
    return await task if task else {}


def console_cpu(proc, port: int, cookie: str, args: argparse.Namespace) -> dict:
    """The server's CPU per second with no load, alone and while the console polls (no
    feed load: what the console itself costs, which the machine's load hardly moves)."""
    out = {}
    asyncio.run(_idle(port, cookie, 0.1, args.poll_s))  # fill the console's cache, then
    time.sleep(10.0)                                      # let its warm-up finish
    for label, ck in (("idle", None), ("polled", cookie), ("idle_again", None)):
        c0 = serve_bench.cpu_seconds(proc.pid)
        t = time.perf_counter()
        res = asyncio.run(_idle(port, ck, args.cpu_seconds, args.poll_s))
        wall = time.perf_counter() - t
        c1 = serve_bench.cpu_seconds(proc.pid)
        out[label] = {"cpu_ms_per_s": (c1 - c0) * 1000 / wall if c0 is not None else None,
                      "polls": res.get("polls")}
    idle = (out["idle"]["cpu_ms_per_s"] + out["idle_again"]["cpu_ms_per_s"]) / 2
    out["console_cpu_ms_per_s"] = out["polled"]["cpu_ms_per_s"] - idle
    return out


def feed_cost(root: Path, w: dict, args: argparse.Namespace,
              code: Path | None = None) -> tuple[list[dict], dict]:
    port = serve_bench.free_port()
    proc = start(root, port, code)
    try:
        c = login(f"http://127.0.0.1:{port}", w["admin"])
        cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
        asyncio.run(serve_bench.feed_clients(port, w["read"], w["users"], args.clients, 3.0,
                                             99))  # warm-up
        cpu = console_cpu(proc, port, cookie, args) if args.cpu_seconds > 0 else {}
        out = []
        for r in range(args.rounds):
            # ABBA: which half goes first alternates, so a drift of the server over the
            # run (it slows as it serves) does not always land on the console's half
            for with_console in ((False, True) if r % 2 == 0 else (True, False)):
                c0 = serve_bench.cpu_seconds(proc.pid)
                res = asyncio.run(_round(port, w, args, cookie if with_console else None, r))
                c1 = serve_bench.cpu_seconds(proc.pid)
                cpu_feed = (c1 - c0) * 1000 / max(1, res.get("requests") or 1) \
                    if c0 is not None and c1 is not None else None
                out.append({"round": r, **res, "server_cpu_ms_per_feed": cpu_feed})
        return out, cpu
    finally:
        proc.terminate()
        proc.wait(30)


def _print_pages(label: str, pages: list[dict], requests: int) -> None:
    print(f"\nconsole pages, {label} ({requests} fetches each; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"{'page':<16} {'first':>7} {'cpu':>6} {'repeat p95':>11} {'new-k p95':>10} "
          f"{'cpu p95':>8} {'new view p50':>13} {'p95':>6} {'cpu p95':>8} {'all p95':>8} "
          f"{'<=300ms':>8}")
    for r in pages:
        ok = max(r["first_ms"], r["repeat_p95_ms"], r["fresh_p95_ms"],
                 r.get("new_p95_ms") or 0) <= 300
        print(f"{r['page']:<16} {r['first_ms']:>5.0f}ms {r['first_cpu_ms'] or 0:>4.0f}ms "
              f"{r['repeat_p95_ms']:>9.0f}ms {r['fresh_p95_ms']:>8.0f}ms "
              f"{r['fresh_cpu_p95_ms'] or 0:>6.0f}ms {r.get('new_p50_ms', 0):>11.0f}ms "
              f"{r.get('new_p95_ms', 0):>4.0f}ms {r.get('new_cpu_p95_ms') or 0:>6.0f}ms "
              f"{r.get('all_p95_ms', 0):>6.0f}ms {'yes' if ok else 'NO':>8}")


def _print_feed(label: str, feed: list[dict], args: argparse.Namespace) -> None:
    print(f"\nfeed endpoint, {label} ({args.model or 'default model'}), {args.clients} "
          f"clients, {args.seconds:g} s rounds; console polling /console/overview and its "
          f"alerts every {args.poll_s:g} s; load average {os.getloadavg()[0]:.1f}")
    print(f"{'round':>5} {'console':>8} {'feeds/s':>8} {'p50':>8} {'p99':>8} {'cpu/feed':>9} "
          f"{'polls':>6} {'poll p95':>9}")
    for r in feed:
        poll = r["poll"] or {}
        pp = f"{poll['p95_ms']:.0f}ms" if poll.get("p95_ms") else ""
        print(f"{r['round']:>5} {'yes' if r['console'] else 'no':>8} "
              f"{r['rps']:>8.0f} {r['p50_ms']:>6.1f}ms {r['p99_ms']:>6.1f}ms "
              f"{r['server_cpu_ms_per_feed'] or 0:>7.2f}ms {poll.get('polls', ''):>6} {pp:>9}")
    alone = [r["p99_ms"] for r in feed if not r["console"]]
    polled = [r["p99_ms"] for r in feed if r["console"]]
    print(f"feed p99 ({label}): {np.median(alone):.1f} ms alone, {np.median(polled):.1f} ms "
          "with the console (median of rounds)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=30, help="Fetches per page and column.")
    p.add_argument("--clients", type=int, default=8, help="Feed clients.")
    p.add_argument("--seconds", type=float, default=15.0, help="Seconds per feed round.")
    p.add_argument("--rounds", type=int, default=2, help="Rounds of (alone, with console).")
    p.add_argument("--poll-s", type=float, default=5.0, help="Console poll interval.")
    p.add_argument("--cpu-seconds", type=float, default=30.0,
                   help="Seconds of the server's CPU measured idle and polled (0: skip).")
    p.add_argument("--think-s", type=float, default=3.0,
                   help="Seconds between loading the login page and submitting the key.")
    p.add_argument("--items", type=int, default=5000, help="Posts of the feed world.")
    p.add_argument("--users", type=int, default=5000, help="Users of the feed world.")
    p.add_argument("--model", default="itemknn",
                   help="Model the feed world serves (empty: benchmarks/serve.py's default).")
    p.add_argument("--baseline-rev", default=None,
                   help="Also serve the console package of this git revision (before/after).")
    p.add_argument("--baseline-src", action="store_true",
                   help="With --baseline-rev: all of src/feedwise at that revision (the "
                        "analytics the pages call as well), not only the console package.")
    p.add_argument("--skip-feed", action="store_true", help="Only the page latencies.")
    p.add_argument("--skip-pages", action="store_true", help="Only the feed p99 part.")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "console.json"))
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fw-console-bench-"))
    try:
        variants: list[tuple[str, Path | None]] = []
        if args.baseline_rev:
            variants.append((f"before ({args.baseline_rev})",
                             baseline_tree(args.baseline_rev, tmp, args.baseline_src)))
        variants.append(("now", None))
        pages: dict[str, list[dict]] = {}
        if not args.skip_pages:
            world = build_world(tmp / "pages", db_name="bench.duckdb")
            for label, code in variants:
                pages[label] = page_latency(tmp / "pages", world, args.requests, code,
                                            args.think_s)
                _print_pages(label, pages[label], args.requests)
        feed: dict[str, list[dict]] = {}
        cpu: dict[str, dict] = {}
        if not args.skip_feed:
            w = serve_bench.build_world(tmp / "feed", n_items=args.items, n_users=args.users,
                                        n_campaigns=20, per_user=20, n_topics=20,
                                        model=args.model or serve_bench.default_model(),
                                        seed=0)
            for label, code in variants:
                feed[label], cpu[label] = feed_cost(tmp / "feed", w, args, code)
            for label, _ in variants:  # printed together, side by side
                _print_feed(label, feed[label], args)
            if any(cpu.values()):
                print(f"\nserver CPU with no feed load, {args.cpu_seconds:g} s each (console "
                      f"polling every {args.poll_s:g} s)")
                print(f"{'code':<14} {'idle':>10} {'polled':>10} {'console':>10} {'polls':>6}")
                for label, c in cpu.items():
                    if c:
                        print(f"{label:<14} {c['idle']['cpu_ms_per_s']:>6.1f}ms/s "
                              f"{c['polled']['cpu_ms_per_s']:>6.1f}ms/s "
                              f"{c['console_cpu_ms_per_s']:>6.1f}ms/s "
                              f"{c['polled']['polls'] or 0:>6}")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"pages": pages, "feed": feed, "console_cpu": cpu,
                                   "args": vars(args),
                                   "load_average": os.getloadavg()}, indent=2, default=str))
        print(f"\nwrote {out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
