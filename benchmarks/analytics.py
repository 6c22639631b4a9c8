"""Benchmark: the full behaviour-insight report over N synthetic events.

A base world from :func:`feedwise.datasets.synthetic_social` is ingested once, then
replicated inside DuckDB to reach ``--events`` rows: copy ``r`` gets its own users
(``<user>~r``), sessions and event ids, so the store holds ``r`` times the users over the
same weeks (items and campaigns are shared). The report (every section, HTML included) is
then built over the whole window, with each section timed.

    python benchmarks/analytics.py                      # 1M events (default)
    python benchmarks/analytics.py --events 10000000    # the issue's 10M target (< 60 s)
    python benchmarks/analytics.py --compare            # also without materialising

Prints a table and writes benchmarks/results/analytics.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from feedwise.datasets.synthetic import synthetic_social
from feedwise.report.builder import ReportConfig, build_report
from feedwise.report.html import render_html
from feedwise.schema import EVENT_COLUMNS, USER_COLUMNS
from feedwise.store import EventStore

RESULTS = Path(__file__).resolve().parent / "results"


def build_store(path: str, n_events: int, base_users: int, days: int, seed: int
                ) -> tuple[EventStore, dict]:
    t0 = time.perf_counter()
    world = synthetic_social(n_users=base_users, n_posts=max(2000, base_users * 2),
                             n_days=days, seed=seed)
    t_gen = time.perf_counter() - t0
    store = EventStore(path)
    world.load_into(store)
    base = store.count_events()
    copies = max(1, math.ceil(n_events / base))
    t1 = time.perf_counter()
    c = store.con
    if copies > 1:
        c.execute("CREATE TEMP TABLE _base AS SELECT * FROM events")
        c.execute("CREATE TEMP TABLE _ubase AS SELECT * FROM users")
        cols = ", ".join(f'"{k}"' for k in EVENT_COLUMNS)
        sel = ", ".join(
            {"event_id": "event_id || '~' || r", "user_id": "user_id || '~' || r",
             "session_id": "session_id || '~' || r"}.get(k, f'"{k}"') for k in EVENT_COLUMNS)
        c.execute(f"""INSERT INTO events ({cols})
            SELECT {sel} FROM _base, range(1, {copies}) t(r)
            LIMIT {n_events - base}""")
        ucols = ", ".join(f'"{k}"' for k in USER_COLUMNS)
        usel = ", ".join("user_id || '~' || r" if k == "user_id" else f'"{k}"'
                         for k in USER_COLUMNS)
        c.execute(f"INSERT INTO users ({ucols}) SELECT {usel} FROM _ubase, "
                  f"range(1, {copies}) t(r)")
        c.execute("DROP TABLE _base")
        c.execute("DROP TABLE _ubase")
    c.execute("CHECKPOINT")
    info = {"base_events": base, "copies": copies, "events": store.count_events(),
            "users": int(store.scalar("SELECT count(DISTINCT user_id) FROM events")),
            "generate_s": round(t_gen, 2), "replicate_s": round(time.perf_counter() - t1, 2),
            "start": world.truth["start"], "end": world.truth["end"]}
    return store, info


def run_report(store: EventStore, start, end, materialize: bool, k: int) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    rep = build_report(store, start, end, ReportConfig(k=k, materialize=materialize))
    t1, c1 = time.perf_counter(), time.process_time()
    html = render_html(rep)
    timings = dict(rep.timings)
    timings["html"] = time.perf_counter() - t1
    cpu = dict(rep.cpu_timings)
    cpu["html"] = time.process_time() - c1
    return {"timings": timings, "cpu": cpu, "total": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0, "html_bytes": len(html),
            "report_s": t1 - t0, "dau": rep.summary.get("dau"),
            "segments": rep.segments[rep.segments["kind"] == "behaviour"]["description"]
            .tolist()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="events in the store")
    ap.add_argument("--base-users", type=int, default=None,
                    help="users of the base world (default: about events / 630, at most 2000;"
                         " the generator logs ~630 events per user over 28 days)")
    ap.add_argument("--days", type=int, default=28, help="days of the base world")
    ap.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    ap.add_argument("--k", type=int, default=10, help="suppression threshold")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compare", action="store_true",
                    help="also run without materialising the window (ratio column)")
    ap.add_argument("--db", default=None, help="DuckDB file (default: a temporary file)")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    path = args.db or os.path.join(tmp.name, "bench.duckdb")
    base_users = args.base_users or int(min(2000, max(50, args.events * 28 / args.days // 630)))
    store, info = build_store(path, args.events, base_users, args.days, args.seed)
    store.con.execute(f"SET threads={int(args.threads)}")
    start, end = info.pop("start"), info.pop("end")
    end = end + timedelta(days=1)  # the generator's last sessions spill past midnight
    print(f"store: {info['events']:,} events, {info['users']:,} users "
          f"({info['copies']} copies of a {info['base_events']:,}-event world; "
          f"generated in {info['generate_s']} s, replicated in {info['replicate_s']} s); "
          f"DuckDB threads={args.threads}")

    runs = {"materialized": run_report(store, start, end, True, args.k)}
    if args.compare:
        runs["views"] = run_report(store, start, end, False, args.k)
    store.close()

    main_run = runs["materialized"]
    names = list(main_run["timings"])
    head = f"{'section':<20}{'wall s':>10}{'cpu s':>10}{'share':>8}"
    if args.compare:
        head += f"{'views s':>10}{'ratio':>8}"  # wall of the unmaterialised run / this
    print(head)
    print("-" * len(head))
    for n in names + ["TOTAL"]:
        t = main_run["total"] if n == "TOTAL" else main_run["timings"][n]
        c = main_run["cpu_s"] if n == "TOTAL" else main_run["cpu"][n]
        line = f"{n:<20}{t:>10.2f}{c:>10.2f}{t / main_run['total']:>8.0%}"
        if args.compare:
            v = runs["views"]["total"] if n == "TOTAL" else runs["views"]["timings"][n]
            line += f"{v:>10.2f}{v / t if t else float('nan'):>8.2f}"
        print(line)
    total = main_run["total"]
    print(f"CPU time of the report (all threads): {main_run['cpu_s']:.2f} s; "
          f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"\n{info['events'] / total / 1e6:.2f} M events/s; target for 10M events: < 60 s "
          f"on 2 cores -> {'met' if info['events'] >= 10_000_000 and total < 60 else 'see above'}")
    print("segments:", *main_run["segments"], sep="\n  ")

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"benchmark": "analytics", "args": vars(args), "store": info,
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "load_avg": os.getloadavg()},
           "runs": runs}
    (RESULTS / "analytics.json").write_text(json.dumps(out, indent=2, default=str))
    print(f"wrote {RESULTS / 'analytics.json'}")


if __name__ == "__main__":
    main()
