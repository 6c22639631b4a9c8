"""Ingest throughput: feedwise's validated ingest vs a bare DuckDB bulk insert of the same file.

The bare ``INSERT INTO t SELECT * FROM read_parquet/read_csv`` (no validation, no dedupe,
no rejects) is the physical limit of this store; feedwise should reach >= 0.5x of it.

    .venv/bin/python benchmarks/ingest.py              # 5M events (the issue's size)
    .venv/bin/python benchmarks/ingest.py --events 1000000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from feedwise.schema import EVENT_COLUMNS
from feedwise.store import EventStore

KINDS = np.array(["impression"] * 6 + ["click", "like", "dwell", "share", "comment", "hide"])


def synth(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    ts = (pd.Timestamp("2026-01-01", tz="UTC").value // 10**3
          + rng.integers(0, 30 * 86400 * 10**6, n))
    kind = KINDS[rng.integers(0, len(KINDS), n)]
    return pa.table({
        "event_id": pa.array(np.char.add("e", np.arange(n).astype(str))),
        "user_id": pa.array(np.char.add("u", rng.integers(0, 100_000, n).astype(str))),
        "item_id": pa.array(np.char.add("i", rng.integers(0, 50_000, n).astype(str))),
        "kind": pa.array(kind),
        "ts": pa.array(ts, type=pa.timestamp("us", tz="UTC")),
        "dwell_ms": pa.array(np.where(kind == "dwell", rng.integers(0, 120_000, n), 0)),
        "position": pa.array(rng.integers(0, 20, n).astype(np.int32)),
        "surface": pa.array(np.where(rng.random(n) < 0.8, "home", "explore")),
        "session_id": pa.array(np.char.add("s", (np.arange(n) // 20).astype(str))),
        "propensity": pa.array(rng.uniform(0.01, 1.0, n)),
    })


def bare(db: Path, reader: str) -> float:
    con = duckdb.connect(str(db))
    con.execute("SET TimeZone='UTC'")
    cols = ", ".join(f'"{c}" {t}' for c, t in EVENT_COLUMNS.items())
    con.execute(f"CREATE TABLE events ({cols})")
    names = ", ".join(c for c in EVENT_COLUMNS if c not in ("context", "value"))
    t0 = time.perf_counter()
    con.execute(f"INSERT INTO events ({names}) SELECT {names} FROM {reader}")
    dt = time.perf_counter() - t0
    con.close()
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each; the best is kept")
    ap.add_argument("--out", default="benchmarks/results/ingest.json")
    args = ap.parse_args()
    n = args.events
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        table = synth(n)
        pq.write_table(table, tmp / "events.parquet")
        pacsv.write_csv(table, tmp / "events.csv")
        print(f"generated {n:,} events in {time.perf_counter() - t0:.1f} s")
        for fmt, reader in (("parquet", f"read_parquet('{tmp / 'events.parquet'}')"),
                            ("csv", f"read_csv('{tmp / 'events.csv'}')")):
            bare_times, fw_times = [], []
            for r in range(args.repeat):  # interleaved; the best of each resists noise
                bare_times.append(bare(tmp / f"bare-{fmt}-{r}.duckdb", reader))
                with EventStore(tmp / f"fw-{fmt}-{r}.duckdb") as store:
                    rep = store.ingest(tmp / f"events.{fmt}")
                    assert rep.accepted == n, rep
                    fw_times.append(rep.seconds)
                    if r == 0:
                        again = store.ingest(tmp / f"events.{fmt}")
                        assert again.accepted == 0 and again.duplicates == n
                for p in tmp.glob(f"*-{fmt}-{r}.duckdb*"):
                    p.unlink()
            bare_s, fw_s = min(bare_times), min(fw_times)
            rows.append({"format": fmt, "events": n, "bare_s": bare_s, "feedwise_s": fw_s,
                         "bare_events_per_s": n / bare_s,
                         "feedwise_events_per_s": n / fw_s,
                         "ratio": bare_s / fw_s,
                         "reingest_s": again.seconds})
    df = pd.DataFrame(rows)
    print(df.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    print("target: feedwise >= 0.5x the bare rate (ratio column)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
