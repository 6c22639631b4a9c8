"""Feed composition in process, without HTTP: CPU a feed and the feeds themselves.

Serves the deployment's default model on the serve benchmark's world (``--full``: 100k posts
x 100k users, from its cache, ``benchmarks/results/serve_worlds``), with the service's own
state (``ServiceState``: the engine, the materialised lists, the policy), and composes the
feeds of ``--users`` random users at a fixed clock, one after the other. The clock is an
hour after the world's newest post, where the service's wall clock stands while it serves
the cached world: the newest posts are the fresh ones, as in ``serve.py``. Prints the CPU and
wall time a feed and writes JSON. ``--save FILE`` keeps the feeds (item, kind, score to 6
decimals, reasons of every slot); ``--compare FILE`` counts the feeds equal to a saved run's,
so a change to the request path can be checked to leave every feed as it was::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/compose.py --full --save before.json
    # ... change the code ...
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/compose.py --full --compare before.json

``--against SRC`` compares this checkout with another one's ``src`` (a ``git worktree`` of
an older commit): two processes, one per checkout, each hold the service's state and compose
the same users' feeds, in alternating batches (A B, then B A, ...) so that a drift of the
machine falls on both, and the CPU a feed of each batch is printed with the ratio B / A
(B: the other checkout) and whether both composed the same feeds::

    git worktree add /tmp/before HEAD~1
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/compose.py --full --against /tmp/before/src

The world and the fitted model come from the serve benchmark's cache (a model is fitted
again when the models' code changed, as there).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

# feedwise from PYTHONPATH when it is set (--against), before serve.py puts this checkout's
# src first on the path: the package's modules then all come from where it was found
import feedwise  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve  # noqa: E402 - the serve benchmark's world, cache and model

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--full", action="store_true", help="the issue's world (100k x 100k)")
    p.add_argument("--users", type=int, default=1500, help="feeds composed (100 warm-up)")
    p.add_argument("--n", type=int, default=20, help="slots a feed")
    p.add_argument("--save", type=Path, default=None, help="keep the feeds in this file")
    p.add_argument("--compare", type=Path, default=None, help="feeds of a saved run")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "compose.json")
    p.add_argument("--against", type=Path, default=None, metavar="SRC",
                   help="another checkout's src: alternating batches in two processes")
    p.add_argument("--rounds", type=int, default=8, help="batches of each (--against)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.against is not None:
        return against(a)
    world = argparse.Namespace(items=20_000, users=20_000, campaigns=50, per_user=10,
                               topics=50, seed=0)
    if a.full:
        world.items, world.users, world.campaigns = 100_000, 100_000, 200
    cache = serve.WorldCache(ROOT / "benchmarks" / "results" / "serve_worlds", world)
    cache.base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="fw-compose-", dir=cache.base))
    try:
        w, _ = serve.open_world(root, cache, world)
        serve._CACHE = cache
        cache.reset_store(root)
        serve.train_promote(root, serve.default_model())
        os.environ.update({**serve.server_env(root, "auto"), "FEEDWISE_LOG_IMPRESSIONS": "0"})
        from feedwise.feed.types import FeedRequest
        from feedwise.server.deps import ServiceState
        from feedwise.server.settings import Settings

        t0 = time.perf_counter()
        state = ServiceState(Settings())
        print(f"service state ready in {time.perf_counter() - t0:.1f}s", flush=True)
        served = state.served
        cat = served.policy.catalog
        now = datetime.fromtimestamp(float(np.max(cat.created_s[:cat.n])) + 3600.0, UTC)
        rng = np.random.default_rng(5)
        users = [f"u{i}" for i in rng.integers(0, w["users"], a.users)]

        def compose(uid: str) -> list:
            req = FeedRequest(user_id=uid, n=a.n, now=now, request_id="compose",
                              context={"surface": "feed", "session_id": None,
                                       "consent_personalization": True, "consent_ads": True})
            feed = state.rollout.compose(served.policy, req, state.rollout.arm(uid),
                                         served.arms)
            return [[s.item_id, s.kind, None if s.score is None else round(float(s.score), 6),
                     list(s.reasons)] for s in feed.slots]

        warm = min(100, len(users) // 10)
        for u in users[:warm]:
            compose(u)
        if a.child:  # --against: a batch of fresh users per line read, until EOF
            print("ready", Path(feedwise.__file__).parents[1], flush=True)
            for line in sys.stdin:
                batch = [f"u{i}" for i in np.random.default_rng(int(line)).integers(
                    0, w["users"], a.users)]
                c0 = time.process_time()
                got = [compose(u) for u in batch]
                cpu_ms = (time.process_time() - c0) * 1000 / len(batch)
                digest = hashlib.sha256(json.dumps(got).encode()).hexdigest()
                print(json.dumps({"cpu_ms": cpu_ms, "digest": digest}), flush=True)
            state.close()
            return
        c0, t0 = time.process_time(), time.perf_counter()
        feeds = [compose(u) for u in users[warm:]]
        cpu_ms = (time.process_time() - c0) * 1000 / len(feeds)
        wall_ms = (time.perf_counter() - t0) * 1000 / len(feeds)
        state.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = {"world": vars(world), "feeds": len(feeds), "cpu_ms_per_feed": cpu_ms,
           "wall_ms_per_feed": wall_ms, "model": serve.default_model()}
    print(f"{len(feeds)} feeds: {cpu_ms:.3f} ms of CPU a feed, {wall_ms:.3f} ms wall")
    if a.compare is not None:
        before = json.loads(a.compare.read_text())
        if len(before) != len(feeds):
            raise SystemExit(f"{a.compare} holds {len(before)} feeds, this run {len(feeds)}: "
                             "compare runs with the same --users")
        same = sum(x == y for x, y in zip(before, feeds, strict=True))
        out["equal_to_saved"] = same
        print(f"feeds equal to {a.compare}: {same} of {len(feeds)}")
    if a.save is not None:
        a.save.write_text(json.dumps(feeds))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2))
    print(f"-> {a.out}")


def against(a: argparse.Namespace) -> None:
    """Alternating batches of this checkout (A) and ``a.against`` (B), one process each."""
    if not (a.against / "feedwise").is_dir():
        raise SystemExit(f"{a.against} holds no feedwise package: pass a checkout's src")
    cmd = [sys.executable, __file__, "--child", "--users", str(a.users), "--n", str(a.n)]
    cmd += ["--full"] if a.full else []
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name, src in (("A", ROOT / "src"), ("B", a.against.resolve())):
            # one after the other: building the service's state takes the cores
            proc = procs[name] = subprocess.Popen(cmd, env={**env, "PYTHONPATH": str(src)},
                                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                  text=True)
            while (line := proc.stdout.readline()) and not line.startswith("ready "):
                pass
            if not line:
                raise SystemExit(f"the {name} process stopped before it was ready")
            print(f"{name}: feedwise from {line.split(' ', 1)[1].strip()}", flush=True)
        rows = []
        print("| round | A ms a feed | B ms a feed | B / A | same feeds |")
        print("|---|---|---|---|---|")
        for r in range(a.rounds):
            got = {}
            for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
                proc = procs[name]
                proc.stdin.write(f"{1000 + r}\n")
                proc.stdin.flush()
                got[name] = json.loads(proc.stdout.readline())
            row = {"round": r + 1, "a_cpu_ms": got["A"]["cpu_ms"], "b_cpu_ms": got["B"]["cpu_ms"],
                   "same_feeds": got["A"]["digest"] == got["B"]["digest"]}
            rows.append(row)
            print(f"| {r + 1} | {row['a_cpu_ms']:.3f} | {row['b_cpu_ms']:.3f} | "
                  f"{row['b_cpu_ms'] / row['a_cpu_ms']:.3f} | {row['same_feeds']} |", flush=True)
    finally:
        for proc in procs.values():
            proc.stdin.close()
            proc.wait(120)
    ratio = statistics.median(x["b_cpu_ms"] / x["a_cpu_ms"] for x in rows)
    print(f"median B / A {ratio:.3f}; same feeds in {sum(x['same_feeds'] for x in rows)} "
          f"of {len(rows)} rounds ({a.users} users each)")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"against": str(a.against), "users": a.users, "rounds": rows,
                                 "median_b_over_a": ratio}, indent=2))
    print(f"-> {a.out}")


if __name__ == "__main__":
    main()
