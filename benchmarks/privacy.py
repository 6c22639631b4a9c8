"""Cost of privacy: ingest with vs without HMAC pseudonyms, and the time of one erasure.

Pseudonyms are computed once per distinct id of a batch (one HMAC each in Python) and
joined back in SQL, so ingest should stay within ~1.5x of plain ingest. The same
Parquet file is ingested into a fresh store with and without a key, side by side; then one
user is erased (every user_id table scanned, tombstone written) and a re-ingestion of the
file measures the tombstone filter.

    .venv/bin/python benchmarks/privacy.py                  # 1M events, 100k users
    .venv/bin/python benchmarks/privacy.py --events 5000000 --users 1000000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from ingest import synth  # noqa: E402 - the ingest benchmark's event generator

from feedwise.privacy import Pseudonymizer, erase_user  # noqa: E402
from feedwise.store import EventStore  # noqa: E402

KEY = "benchmark-key-0123456789abcdef"


def run(path: Path, db: Path, key: str | None) -> dict:
    p = Pseudonymizer(key) if key else None
    with EventStore(db, pseudonymizer=p) as store:
        t0 = time.perf_counter()
        rep = store.ingest(path)
        ingest_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        erased = erase_user(store, "u42", now=datetime.now(UTC))
        erase_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = store.ingest(path)
        reingest_s = time.perf_counter() - t0
    return {"pseudonyms": bool(key), "events": rep.accepted, "ingest_s": ingest_s,
            "events_per_s": rep.accepted / ingest_s, "erase_s": erase_s,
            "erased_rows": erased.rows, "reingest_s": reingest_s,
            "reingest_skipped": again.erased}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=100_000)
    args = ap.parse_args()
    tab = synth(args.events)
    if args.users != 100_000:  # synth draws ids from 100k users; remap to the asked count
        import numpy as np
        import pyarrow as pa

        rng = np.random.default_rng(1)
        ids = np.char.add("u", rng.integers(0, args.users, args.events).astype(str))
        tab = tab.set_column(tab.schema.get_field_index("user_id"), "user_id", pa.array(ids))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "events.parquet"
        pq.write_table(tab, path)
        rows = [run(path, Path(d) / "plain.duckdb", None),
                run(path, Path(d) / "pseudo.duckdb", KEY)]
    plain, pseudo = rows
    ratio = pseudo["ingest_s"] / plain["ingest_s"]
    print(f"{'store':<12}{'events':>10}{'ingest s':>10}{'events/s':>12}{'erase s':>9}"
          f"{'re-ingest s':>13}{'skipped':>9}")
    for r in rows:
        print(f"{'pseudonyms' if r['pseudonyms'] else 'plain ids':<12}{r['events']:>10}"
              f"{r['ingest_s']:>10.2f}{r['events_per_s']:>12,.0f}{r['erase_s']:>9.3f}"
              f"{r['reingest_s']:>13.2f}{r['reingest_skipped']:>9}")
    print(f"ingest time with pseudonyms / without: {ratio:.2f}x")
    out = Path(__file__).parent / "results" / "privacy.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"events": args.events, "users": args.users, "runs": rows,
                               "pseudonym_ingest_ratio": ratio}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
