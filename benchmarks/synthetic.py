"""Synthetic social-feed generator throughput: events per second of ``synthetic_social``.

The target (issue 2) is 1M events in under 60 s on one core; the generator is vectorised
numpy, so it should be two orders of magnitude inside that. Side by side in one run: a
smaller world, the ~1M-event world, and (``--ingest``) the store's validated ingest of the
same events, so generation is compared with what consumes it.

    .venv/bin/python benchmarks/synthetic.py                 # ~1M events, 3 repeats
    .venv/bin/python benchmarks/synthetic.py --users 6000    # ~2M events
    .venv/bin/python benchmarks/synthetic.py --ingest        # also time EventStore.ingest
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from feedwise.datasets import synthetic_social

TARGET_S_PER_M = 60.0  # issue 2: 1M events in under 60 s on one core


def run(users: int, days: int, repeat: int, seed: int) -> dict:
    times, n = [], 0
    for r in range(repeat):
        t0 = time.perf_counter()
        world = synthetic_social(n_users=users, n_days=days, n_posts=max(5000, users * 2),
                                 n_authors=max(200, users // 10), seed=seed + r)
        times.append(time.perf_counter() - t0)
        n = len(world.events)
    sec = statistics.median(times)
    return {"users": users, "days": days, "events": n, "seconds": round(sec, 3),
            "events_per_s": round(n / sec), "seconds_per_1M": round(sec / n * 1e6, 3),
            "x_inside_target": round(TARGET_S_PER_M / (sec / n * 1e6), 1), "world": world}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=3200, help="users of the big world "
                    "(3200 users x 14 days ~ 1M events)")
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ingest", action="store_true", help="also time EventStore.ingest")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "synthetic.json"))
    a = ap.parse_args()

    rows = [run(max(50, a.users // 10), a.days, a.repeat, a.seed),
            run(a.users, a.days, a.repeat, a.seed)]
    if a.ingest:
        from feedwise.store import EventStore

        world = rows[-1]["world"]
        with EventStore(":memory:") as store:
            t0 = time.perf_counter()
            out = world.load_into(store)
            dt = time.perf_counter() - t0
        rows[-1]["ingest_seconds"] = round(dt, 3)
        rows[-1]["ingest_events_per_s"] = round(out["events"] / dt)
        rows[-1]["ingest_over_generate"] = round(dt / rows[-1]["seconds"], 2)
    for r in rows:
        w = r.pop("world")
        kinds = w.events["kind"].value_counts()
        r["sessions"] = int(w.events["session_id"].nunique())
        r["ctr"] = round(float(kinds.get("click", 0) / kinds.get("impression", 1)), 4)
        r["ad_ctr"] = round(float(kinds.get("ad_click", 0) / max(kinds.get("ad_impression", 1),
                                                                   1)), 4)

    cols = ["users", "days", "sessions", "events", "seconds", "events_per_s", "seconds_per_1M",
            "x_inside_target", "ctr", "ad_ctr"] + (
        ["ingest_seconds", "ingest_events_per_s", "ingest_over_generate"] if a.ingest else [])
    print(f"synthetic_social, median of {a.repeat} (target: 1M events < {TARGET_S_PER_M:.0f} s)")
    print(" | ".join(f"{c:>14}" for c in cols))
    for r in rows:
        print(" | ".join(f"{r.get(c, ''):>14}" for c in cols))
    res = {"benchmark": "synthetic", "python": platform.python_version(),
           "machine": platform.machine(), "cpus": os.cpu_count(), "repeat": a.repeat,
           "target_seconds_per_1M": TARGET_S_PER_M, "rows": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
