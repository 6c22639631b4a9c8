"""The feed tail that the serving stack and this host leave: the same load on an app with
no feedwise code behind it.

``benchmarks/serve.py`` measures the service's p99 at 16 closed-loop clients; how much of it
is the service's own? This script serves ``benchmarks/_floorapp.py`` with uvicorn and
httptools, as ``feedwise serve`` does, in each of ``--procs`` processes (one port each), and
runs the serve benchmark's client on it: ``--clients`` keep-alive connections spread evenly
over the processes (as the service's accept board spreads them), each asking a feed as soon
as the previous one is answered, for ``--seconds`` after a warm-up. Each request:

* spends ``--cost-ms`` of CPU in a busy loop (every request costs the same: what is left of
  the tail is the stack's and the host's), or
* with ``--compose``, composes the user's real feed with the service's own state on the
  serve benchmark's cached world (``--full``: the issue's world), with nothing else of the
  service around it (no middleware, writer, impressions or worker messages; each process on
  its own copy of the store).

``--burst MS:EVERY[:gil]`` adds a thread to the first process that spends ``MS`` of CPU every
``EVERY`` seconds, holding the GIL (``gil``) or not. Prints, per setting, the requests a
second, the server CPU a request, the mean, p50 and p99 latency and p99 / mean, and writes
JSON. The settings run in turn, ``--runs`` times over::

    .venv/bin/python benchmarks/serve_floor.py --procs 1,2 --cost-ms 3.0,3.5
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/serve_floor.py --procs 2 --compose --full
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve as S  # noqa: E402  (benchmarks/serve.py: the world, the client, CPU of a pid)

HERE = Path(__file__).resolve().parent


def _up(port: int, proc: subprocess.Popen, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the app on port {port} did not listen within {limit_s:.0f}s")


def start(n: int, env: dict[str, str], roots: list[Path] | None) -> tuple[list, list[int]]:
    """``n`` app processes, one port each (with ``roots``: one world copy each)."""
    procs, ports = [], []
    try:
        for i in range(n):
            port = S.free_port()
            e = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(
                p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)}
            if roots is not None:
                e.update({**S.server_env(roots[i], "auto"), "FLOOR_COMPOSE": "1"})
            if i > 0:
                e.pop("FLOOR_BURST", None)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "_floorapp:app", "--port", str(port),
                 "--log-level", "warning", "--http", "httptools", "--no-access-log"],
                env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            ports.append(port)
        for port, proc in zip(ports, procs, strict=True):
            _up(port, proc, 1200 if roots is not None else 60)
    except BaseException:
        stop(procs)
        raise
    return procs, ports


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(60)


async def load(ports: list[int], clients: int, seconds: float, users: int, seed: int
               ) -> list[float]:
    """Latencies (s) of ``clients`` closed-loop keep-alive clients, client ``c`` on
    ``ports[c % len(ports)]``."""
    lat: list[float] = []
    end = time.perf_counter() + seconds

    async def one(c: int) -> None:
        conn = S.Conn(ports[c % len(ports)])
        who = np.random.default_rng(seed * 1000 + c).integers(0, users, 1_000_000)
        k = 0
        try:
            while time.perf_counter() < end:
                t = time.perf_counter()
                status, _ = await conn.raw(b"GET /feed?user=u%d HTTP/1.1\r\nHost: x\r\n\r\n"
                                           % who[k % len(who)])
                k += 1
                if status != 200:
                    raise RuntimeError(f"the app answered {status}")
                lat.append(time.perf_counter() - t)
        finally:
            conn.close()

    await asyncio.gather(*(one(c) for c in range(clients)))
    return lat


def measure(procs: list[subprocess.Popen], ports: list[int], a: argparse.Namespace,
            users: int, seed: int) -> dict:
    asyncio.run(load(ports, a.clients, a.warmup, users, seed))
    gc.collect()
    gc.freeze()  # the instrument must not pause
    cpu0 = [S.cpu_seconds(p.pid) for p in procs]
    t0 = time.perf_counter()
    lat = asyncio.run(load(ports, a.clients, a.seconds, users, seed + 1))
    wall = time.perf_counter() - t0
    cpu = sum(S.cpu_seconds(p.pid) - c for p, c in zip(procs, cpu0, strict=True))
    gc.unfreeze()
    ms = np.array(lat) * 1000
    return {"requests": len(ms), "rps": len(ms) / wall, "cpu_ms": cpu * 1000 / len(ms),
            "mean_ms": float(ms.mean()), "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)),
            "p99_over_mean": float(np.percentile(ms, 99) / ms.mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    S.add_world_args(p)
    p.add_argument("--procs", default="1,2", help="processes, comma-separated settings")
    p.add_argument("--cost-ms", default="3.0,3.5", help="CPU a request, comma-separated")
    p.add_argument("--compose", action="store_true",
                   help="compose real feeds on the serve benchmark's world instead")
    p.add_argument("--burst", default=None, metavar="MS:EVERY[:gil]",
                   help="a background thread's work in the first process")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--out", default=str(S.ROOT / "benchmarks" / "results" / "serve_floor.json"))
    a = p.parse_args()
    S.full_world(a)
    procs_list = [int(x) for x in a.procs.split(",")]
    costs = [None] if a.compose else [float(x) for x in a.cost_ms.split(",")]
    env = {"FLOOR_BURST": a.burst} if a.burst else {}
    roots: list[Path] = []
    users = a.users
    if a.compose:  # one copy of the world per process: each opens its store to write
        cache = S.WorldCache(S.ROOT / "benchmarks" / "results" / "serve_worlds", a)
        cache.base.mkdir(parents=True, exist_ok=True)
        S._CACHE = cache
        for _ in range(max(procs_list)):
            root = Path(tempfile.mkdtemp(prefix="fw-floor-", dir=cache.base))
            roots.append(root)
            w, _ = S.open_world(root, cache, a)
            cache.reset_store(root)
            S.train_promote(root, S.default_model())
        users = w["users"]
    rows = []
    try:
        for run in range(1, a.runs + 1):
            for n in procs_list:
                for cost in costs:
                    e = {**env, **({"FLOOR_COST_MS": str(cost)} if cost is not None else {})}
                    procs, ports = start(n, e, roots[:n] if a.compose else None)
                    try:
                        r = measure(procs, ports, a, users, run)
                    finally:
                        stop(procs)
                    r.update(run=run, procs=n, cost_ms=cost, burst=a.burst)
                    rows.append(r)
                    what = "compose" if cost is None else f"{cost:.2f} ms"
                    print(f"run {run}: {n} process(es), {what}: {r['rps']:.0f} req/s, server "
                          f"CPU {r['cpu_ms']:.2f} ms/req, mean {r['mean_ms']:.1f} ms, p50 "
                          f"{r['p50_ms']:.1f}, p99 {r['p99_ms']:.1f}, p99/mean "
                          f"{r['p99_over_mean']:.2f}", flush=True)
    finally:
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)
    print("\n| run | processes | request | req/s | server CPU ms/req | mean ms | p99 ms "
          "| p99 / mean |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        what = "compose" if r["cost_ms"] is None else f"{r['cost_ms']:.2f} ms busy"
        print(f"| {r['run']} | {r['procs']} | {what} | {r['rps']:,.0f} | {r['cpu_ms']:.2f} | "
              f"{r['mean_ms']:.1f} | {r['p99_ms']:.1f} | {r['p99_over_mean']:.2f} |")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"clients": a.clients, "seconds": a.seconds, "compose": a.compose,
                               "burst": a.burst, "rows": rows}, indent=1))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
