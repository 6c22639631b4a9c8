"""The feed tail as shipped and with one change, in alternating servings of the same world.

The p99 of ``benchmarks/serve.py`` differs by 10-20 % between runs of the same code, about
as much as most changes one tries against the tail. This script serves the benchmark's
world (``--full``: the issue's 100k x 100k world, from serve.py's cache) with
``feedwise serve --workers N``. It alternates servings as shipped (A) and with
``--variant`` (B: environment settings of the service, e.g.
``FEEDWISE_SWITCH_INTERVAL_MS=0.5``, or a ``PYTHONPATH`` holding a patch). The order is A B,
then B A, and so on, so that a drift of the machine falls on both. Each serving measures:

1. feeds only: 16 feed clients for ``--feed-seconds``;
2. feeds under ingest: the same 16 clients for ``--seconds`` while ``--ingest-clients`` post
   batches of ``--batch`` events, in a closed loop (as serve.py does) or paced at
   ``--pace`` events/s (``--b-pace``: another pace for the B servings).

For each it reports feeds/s, p50, p99 and p99 / mean, and under ingest the events/s and the
p50 / p99 of each process (the owner, which lands everything and serves only before its
workers are up, and its workers). With
``--tail``, each phase's slowest 1 % of feeds is also taken apart by thread against its
median band (``benchmarks/_tail.py``: the serving loop on a core, waiting for a core, blocked
on the GIL, and the CPU the other threads took meanwhile). Prints a table and writes
``benchmarks/results/serve_pairs.json``. Unlike serve.py it does not
check counts or freshness: it is an instrument for changes, not the acceptance run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/serve_pairs.py --full \\
        --variant FEEDWISE_SWITCH_INTERVAL_MS=0.5
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/serve_pairs.py --full --b-pace 2000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _tail  # noqa: E402  (benchmarks/_tail.py: --tail)
import serve as S  # noqa: E402  (benchmarks/serve.py: the world, the server, the load)


async def feeds(port: int, key: str, n_users: int, seconds: float, seed: int,
                clients: int = 16, sent: list[float] | None = None
                ) -> tuple[list[tuple[str, float]], int]:
    """(process, seconds) of every feed ``clients`` keep-alive clients asked, and how many
    were not answered 200; with ``sent``, when each was sent is appended to it."""
    lat: list[tuple[str, float]] = []
    r = await S.feed_clients(port, key, n_users, clients, seconds, seed, record=lat, sent=sent)
    return lat, r["errors"]


class Tail:
    """``--tail``: each phase's slowest feeds taken apart by thread (``_tail``)."""

    def __init__(self, proc: Any, every_s: float) -> None:
        self.roles = {proc.pid: "owner", os.getpid(): "load generator",
                      **{p: "worker" for p in S._children(proc.pid)}}
        self.loops = {("owner" if role == "owner" else str(p)): p
                      for p, role in self.roles.items() if role != "load generator"}
        self.every_s = every_s
        self.sent: list[float] = []
        self._sampler: _tail.Sampler | None = None

    def __enter__(self) -> Tail:
        self.sent = []
        self._sampler = _tail.Sampler(self.roles, self.every_s).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.samples = self._sampler.stop()

    def split(self, lat: list[tuple[str, float]]) -> dict:
        got = _tail.split(self.samples, [(who, t, x) for (who, x), t in
                                         zip(lat, self.sent, strict=True)], self.loops)
        return {"sampler_cpu_s": self.samples.cpu_s, "processes": got}


def summary(lat: list[tuple[str, float]], seconds: float) -> dict:
    a = np.array([x for _, x in lat]) * 1000
    out = {"feeds_per_s": len(a) / seconds, "p50_ms": float(np.percentile(a, 50)),
           "p99_ms": float(np.percentile(a, 99)),
           "p99_over_mean": float(np.percentile(a, 99) / a.mean())}
    for name in ("owner", "worker"):  # the workers together
        b = np.array([x for who, x in lat if (who == "owner") == (name == "owner")]) * 1000
        if len(b):
            out[f"{name}_p50_ms"] = float(np.percentile(b, 50))
            out[f"{name}_p99_ms"] = float(np.percentile(b, 99))
    return out


async def under_ingest(port: int, w: dict, a: argparse.Namespace, tag: str,
                       pace: float, tail: Tail | None = None) -> tuple:
    ing = asyncio.create_task(S.ingest_clients(
        port, w["ingest"], a.ingest_clients, a.seconds + 2 * S.RAMP_S, a.batch, tag, w["users"],
        a.items, rate=pace))
    await asyncio.sleep(S.RAMP_S)  # the ingest alone first, as in serve.py
    lo = time.perf_counter()
    with tail or contextlib.nullcontext():
        lat, failed = await feeds(port, w["read"], w["users"], a.seconds, a.seed + 99,
                                  sent=tail.sent if tail else None)
    hi = time.perf_counter()
    got = await ing
    events = sum(n for t, n in got["landed"] if lo <= t <= hi) / (hi - lo)
    return lat, failed, hi - lo, events, got["errors"]


def serving(root: Path, w: dict, a: argparse.Namespace, env: dict[str, str], tag: str,
            cache: S.WorldCache, pace: float) -> dict:
    cache.reset_store(root)
    port = S.free_port()
    if a.tail:  # the serving threads named, for the split by thread
        path = env.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
        env = {**env, _tail.NAMES_ENV: "1",
               "PYTHONPATH": os.pathsep.join(p for p in (str(_tail.SITE), path) if p)}
    proc = S.start_server(root, port, a.policy, a.materialise_n, a.workers, env)
    tail = None
    try:
        if a.workers > 1 and S.wait_for_worker(port, w["read"], 600, a.workers) is None:
            raise SystemExit(f"not all {a.workers} workers answered within 600 s")
        asyncio.run(feeds(port, w["read"], w["users"], 2.0, 123, clients=4))  # warm-up
        gc.collect()
        gc.freeze()  # the instrument must not pause (serve.py does the same)
        tail = Tail(proc, a.tail_every_ms / 1000) if a.tail else None
        with tail or contextlib.nullcontext():
            alone, failed = asyncio.run(feeds(port, w["read"], w["users"], a.feed_seconds,
                                              a.seed + 16, sent=tail.sent if tail else None))
        split_alone = tail.split(alone) if tail else None
        lat, failed_under, secs, events, errors = asyncio.run(
            under_ingest(port, w, a, tag, pace, tail))
    finally:
        gc.unfreeze()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(120)
        except Exception:  # noqa: BLE001 - a server that does not stop is killed
            proc.kill()
    out = {"feeds_only": summary(alone, a.feed_seconds), "under_ingest": summary(lat, secs),
           "events_per_s": events, "failed_feeds": failed + failed_under,
           "failed_batches": errors}
    if tail:
        out["tail"] = {"feeds_only": split_alone, "under_ingest": tail.split(lat)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    S.add_world_args(p)  # serve.py's: the same world, from its cache
    p.add_argument("--workers", type=int, default=2, help="feedwise serve --workers")
    p.add_argument("--policy", default="auto", choices=["auto", "engine", "model"])
    p.add_argument("--materialise-n", type=int, default=300)
    p.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE",
                   help="an environment setting of the B servings (repeatable)")
    p.add_argument("--pairs", type=int, default=2, help="A and B servings each")
    p.add_argument("--pace", type=float, default=0.0,
                   help="events/s the ingest clients offer together (0: closed loop)")
    p.add_argument("--b-pace", type=float, default=None,
                   help="the B servings' --pace (default: the same as A's)")
    p.add_argument("--ingest-clients", type=int, default=16)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--feed-seconds", type=float, default=8.0)
    p.add_argument("--seconds", type=float, default=10.0, help="the phase under ingest")
    p.add_argument("--cache-dir", default=str(S.ROOT / "benchmarks" / "results" / "serve_worlds"))
    p.add_argument("--tail", action="store_true",
                   help="take each phase's slowest feeds apart by thread (benchmarks/_tail.py)")
    p.add_argument("--tail-every-ms", type=float, default=5.0,
                   help="--tail: how often the threads are sampled")
    p.add_argument("--out", default=str(S.ROOT / "benchmarks" / "results" / "serve_pairs.json"))
    a = S.full_world(p.parse_args())
    variant = {}
    for kv in a.variant:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            raise SystemExit(f"--variant {kv!r}: write KEY=VALUE")
        variant[k] = v
    load_before = os.getloadavg()
    cache = S.WorldCache(Path(a.cache_dir), a)
    cache.base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="fw-pairs-", dir=cache.base))
    try:
        w, cached = S.open_world(root, cache, a)
        S._CACHE = cache
        model = S.default_model()
        print(f"world {'from the cache' if cached else 'built'}: {a.items} items, {a.users} "
              f"users; serving {model} with {a.workers} processes; ingest "
              + (f"paced at {a.pace:,.0f} events/s" if a.pace else "in a closed loop")
              + f"; B = {variant or 'A (no variant)'}"
              + (f", ingest paced at {a.b_pace:,.0f} events/s" if a.b_pace else
                 ", ingest in a closed loop" if a.b_pace == 0 else ""), flush=True)
        S.train_promote(root, model)  # a new fit goes to the cache (S._CACHE)
        rows = []
        for pair in range(a.pairs):
            for config in ("AB" if pair % 2 == 0 else "BA"):
                env = variant if config == "B" else {}
                pace = a.b_pace if config == "B" and a.b_pace is not None else a.pace
                r = serving(root, w, a, env, f"{pair}{config}", cache, pace)
                r.update(pair=pair + 1, config=config)
                rows.append(r)
                f, m = r["feeds_only"], r["under_ingest"]
                print(f"pair {pair + 1} {config}: feeds only {f['feeds_per_s']:.0f}/s p99 "
                      f"{f['p99_ms']:.1f} ms; under ingest {m['feeds_per_s']:.0f}/s p99 "
                      f"{m['p99_ms']:.1f} ms (owner {m.get('owner_p99_ms', 0):.1f}, worker "
                      f"{m.get('worker_p99_ms', 0):.1f}) at {r['events_per_s']:,.0f} "
                      f"events/s; ratio {m['p99_ms'] / f['p99_ms']:.2f}"
                      + (f"; NOT ANSWERED: {r['failed_feeds']} feeds, {r['failed_batches']} "
                         "event batches" if r["failed_feeds"] or r["failed_batches"] else ""),
                      flush=True)
                for phase, got in r.get("tail", {}).items():
                    print(f"  {phase.replace('_', ' ')}, by thread (the sampler took "
                          f"{got['sampler_cpu_s']:.2f} s of CPU):\n"
                          + _tail.table(got["processes"]), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("\n| pair | config | feeds/s alone | p99 alone ms | p99/mean alone | feeds/s under "
          "ingest | p99 under ingest ms | owner p50 / p99 | worker p50 / p99 | events/s | "
          "ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        f, m = r["feeds_only"], r["under_ingest"]
        print(f"| {r['pair']} | {r['config']} | {f['feeds_per_s']:,.0f} | {f['p99_ms']:.1f} | "
              f"{f['p99_over_mean']:.2f} | {m['feeds_per_s']:,.0f} | {m['p99_ms']:.1f} | "
              f"{m.get('owner_p50_ms', float('nan')):.1f} / "
              f"{m.get('owner_p99_ms', float('nan')):.1f} | "
              f"{m.get('worker_p50_ms', float('nan')):.1f} / "
              f"{m.get('worker_p99_ms', float('nan')):.1f} | {r['events_per_s']:,.0f} | "
              f"{m['p99_ms'] / f['p99_ms']:.2f} |")
    for config in ("A", "B"):
        mine = [r for r in rows if r["config"] == config]
        alone = [r["feeds_only"]["p99_ms"] for r in mine]
        under = [r["under_ingest"]["p99_ms"] for r in mine]
        with contextlib.suppress(statistics.StatisticsError):
            print(f"{config}: median p99 alone {statistics.median(alone):.1f} ms, under ingest "
                  f"{statistics.median(under):.1f} ms, ratio "
                  f"{statistics.median(u / x for u, x in zip(under, alone, strict=True)):.2f}, "
                  f"{statistics.median(r['events_per_s'] for r in mine):,.0f} events/s")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"args": vars(a), "variant": variant,
                                       "load_before": load_before,
                                       "load_after": os.getloadavg(), "rows": rows}, indent=2))
    print(f"-> {a.out}")


if __name__ == "__main__":
    main()
