"""Scale-out: ingest + train + KPI times at 1x, 4x, 16x a synthetic base, embedded vs Spark.

Both paths start from the same raw Parquet file of synthetic social-feed events
(``feedwise.datasets.synthetic_social``; generation is not timed) and do the same work:

* **ingest** — embedded: ``EventStore.ingest`` (validation, rejects, dedupe) into a DuckDB
  file; Spark: ``engines.spark.ingest_events`` (validation, dedupe) into the date-partitioned
  Parquet layout.
* **train** — the weighted interactions (same per-kind weights) and implicit ALS with the
  same rank and sweeps: embedded ``feedwise.models.ALS`` (implicit's CPU kernel) on
  ``store.interactions()``; Spark ``engines.spark.train_als`` (Spark SQL + MLlib ALS, factors
  collected into a servable model).
* **kpi** — the five KPI queries of ``engines.kpis``: DuckDB over the store, Spark SQL over
  the layout (results collected to the driver).

Spark runs in local mode (``local[*]``); its session start-up is reported apart, and one
untimed warm-up pass of each path at 1x runs first so imports and JIT compilation do not
flatter the growth exponent. The growth exponent ``b`` of each path is the least-squares slope of
log(time) on log(events) (target: b <= 1.1); the crossover is where Spark's fitted time
drops below the embedded one's (measured, or extrapolated from the two power laws).

    .venv/bin/python benchmarks/scale.py                   # base 100 users (~33k events)
    .venv/bin/python benchmarks/scale.py --base-users 400  # 16x ~ 1.3M events
    .venv/bin/python benchmarks/scale.py --no-spark        # embedded only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from feedwise.datasets.synthetic import synthetic_social
from feedwise.engines.kpis import compare_kpis, duckdb_kpis
from feedwise.store import EventStore

STEPS = ("ingest", "train", "kpi")


def world_files(users: int, days: int, seed: int, tmp: Path) -> tuple[Path, Path, int]:
    w = synthetic_social(n_users=users, n_authors=max(20, users // 10),
                         n_posts=max(300, users * 2), n_days=days, n_campaigns=8,
                         start=datetime(2024, 1, 1, tzinfo=UTC), seed=seed)
    raw = tmp / f"raw_{users}.parquet"
    items = tmp / f"items_{users}.parquet"
    pq.write_table(pa.Table.from_pandas(w.events, preserve_index=False), raw)
    pq.write_table(pa.Table.from_pandas(w.items, preserve_index=False), items)
    return raw, items, len(w.events)


def embedded(raw: Path, items: Path, tmp: Path, factors: int, iterations: int
             ) -> tuple[dict[str, float], dict]:
    import pandas as pd

    from feedwise.models.als import ALS

    db = tmp / "emb.duckdb"
    db.unlink(missing_ok=True)
    t = {}
    with EventStore(db) as store:
        t0 = time.perf_counter()
        store.ingest(raw)
        store.upsert_items(pd.read_parquet(items))
        t["ingest"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        data = store.interactions()
        ALS(factors=factors, iterations=iterations, random_state=0).fit(data)
        t["train"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        kpis = duckdb_kpis(store)
        t["kpi"] = time.perf_counter() - t0
    db.unlink(missing_ok=True)
    return t, kpis


def on_spark(spark, raw: Path, items: Path, tmp: Path, factors: int, iterations: int
             ) -> tuple[dict[str, float], dict]:
    from feedwise.engines.spark import ingest_events, spark_kpis, train_als
    from feedwise.models.spark_als import SparkALS

    root = tmp / "layout"
    shutil.rmtree(root, ignore_errors=True)
    t = {}
    t0 = time.perf_counter()
    ingest_events(spark, str(raw), root)
    shutil.copy(items, root / "items.parquet")
    t["ingest"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    train_als(spark, root, SparkALS(factors=factors, iterations=iterations, seed=0))
    t["train"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    kpis = spark_kpis(spark, root)
    t["kpi"] = time.perf_counter() - t0
    return t, kpis


def exponent(sizes: list[int], times: list[float]) -> float:
    return float(np.polyfit(np.log(sizes), np.log(times), 1)[0])


def crossover(sizes: list[int], emb: list[float], spk: list[float]) -> dict:
    """Where Spark's time falls below the embedded one: measured or extrapolated."""
    for n, a, b in zip(sizes, emb, spk, strict=True):
        if b < a:
            return {"events": n, "how": "measured"}
    be, ae = np.polyfit(np.log(sizes), np.log(emb), 1)
    bs, as_ = np.polyfit(np.log(sizes), np.log(spk), 1)
    if be <= bs:
        return {"events": None, "how": "none: Spark's time grows at least as fast"}
    n = math.exp((as_ - ae) / (be - bs))
    return {"events": int(n), "how": "extrapolated from the fitted power laws"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-users", type=int, default=100)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--factors", type=int, default=32)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=1, help="runs per point (median)")
    ap.add_argument("--master", default="local[*]")
    ap.add_argument("--driver-memory", default="4g")
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "scale.json"))
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="feedwise-scale-"))
    spark, startup = None, None
    if not a.no_spark:
        from feedwise.engines.spark import spark_session

        t0 = time.perf_counter()
        spark = spark_session(a.master, app_name="feedwise-scale",
                              shuffle_partitions=max(2, 2 * (os.cpu_count() or 2)),
                              driver_memory=a.driver_memory)
        spark.range(1).count()
        startup = time.perf_counter() - t0
    rows = []
    try:
        files = {s: world_files(a.base_users * s, a.days, a.seed, tmp) for s in a.scales}
        raw, items, _ = files[a.scales[0]]  # untimed warm-up (imports, JIT, first reads)
        embedded(raw, items, tmp, a.factors, min(a.iterations, 2))
        if spark is not None:
            on_spark(spark, raw, items, tmp, a.factors, min(a.iterations, 2))
        for s in a.scales:
            raw, items, n = files[s]
            for engine in ("embedded", "spark"):
                if engine == "spark" and spark is None:
                    continue
                runs = []
                for _ in range(a.repeat):
                    if engine == "embedded":
                        runs.append(embedded(raw, items, tmp, a.factors, a.iterations))
                    else:
                        runs.append(on_spark(spark, raw, items, tmp, a.factors,
                                             a.iterations))
                t = {k: statistics.median(r[0][k] for r in runs) for k in STEPS}
                row = {"scale": s, "events": n, "engine": engine,
                       **{k: round(v, 3) for k, v in t.items()},
                       "total": round(sum(t.values()), 3)}
                row["_kpis"] = runs[-1][1]
                rows.append(row)
                print(f"  {s:>3}x {n:>10,} events  {engine:<9} " + "  ".join(
                    f"{k} {row[k]:8.2f}s" for k in (*STEPS, "total")), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # the two engines must agree on the KPIs they computed
    agree = {}
    for s in a.scales:
        pair = [r["_kpis"] for r in rows if r["scale"] == s]
        if len(pair) == 2:
            agree[s] = compare_kpis(pair[0], pair[1], rtol=1e-9) == []
    for r in rows:
        del r["_kpis"]

    summary = {}
    for engine in ("embedded", "spark"):
        rs = [r for r in rows if r["engine"] == engine]
        if len(rs) < 2:
            continue
        sizes = [r["events"] for r in rs]
        summary[engine] = {k: round(exponent(sizes, [r[k] for r in rs]), 3)
                           for k in (*STEPS, "total")}
    print()
    print(f"growth exponent b (time ~ events^b; target <= 1.1), {os.cpu_count()} cores:")
    print(f"  {'engine':<9} " + " ".join(f"{k:>7}" for k in (*STEPS, "total")))
    for engine, b in summary.items():
        print(f"  {engine:<9} " + " ".join(f"{b[k]:7.2f}" for k in (*STEPS, "total")))
    cross = None
    if len(summary) == 2:
        e = [r for r in rows if r["engine"] == "embedded"]
        p = [r for r in rows if r["engine"] == "spark"]
        sizes = [r["events"] for r in e]
        cross = {k: crossover(sizes, [r[k] for r in e], [r[k] for r in p])
                 for k in (*STEPS, "total")}
        print("Spark overtakes embedded at:")
        for k, c in cross.items():
            where = f"{c['events']:,} events" if c["events"] else "never"
            print(f"  {k:<7} {where} ({c['how']})")
        ratio = [round(pp["total"] / ee["total"], 2) for ee, pp in zip(e, p, strict=True)]
        print(f"Spark / embedded total time per scale: {ratio}")
        print(f"KPI results equal across engines: {agree}")
    if startup is not None:
        print(f"Spark session start-up (not in the times above): {startup:.1f} s")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(a), "rows": rows, "exponents": summary,
                               "crossover": cross, "kpis_equal": agree,
                               "spark_startup_s": startup,
                               "machine": {"cpus": os.cpu_count(),
                                           "python": platform.python_version()}},
                              indent=2, default=str))
    print(f"wrote {out}")
    if spark is not None:
        spark.stop()


if __name__ == "__main__":
    main()
