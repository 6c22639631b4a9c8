"""ANN retrieval vs exact search: recall@100 and speed of top-100 inner-product retrieval.

Item vectors look like trained factors: a mixture of topic directions plus noise, with
unequal norms (popular items have longer vectors), so maximum inner product differs from
cosine. Queries are user vectors drawn from the same topics. Side by side in one run:
exact brute force (``exact_top_k``, BLAS matrix product + partial sort) and ``ANNIndex`` (an
HNSW graph in inner-product space), both answering the same queries in batch and one at a
time. Targets (issue 9) at 1M items x 64 dims: recall@100 >= 0.95, retrieval >= 10x faster.

    .venv/bin/python benchmarks/ann.py                     # 200k items (quick)
    .venv/bin/python benchmarks/ann.py --items 1000000     # the issue's size
    .venv/bin/python benchmarks/ann.py --ef-search 150 300 600   # recall/speed trade-off
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from feedwise.models.ann import ANNIndex, exact_top_k, recall_at_k

TARGET_RECALL, TARGET_SPEEDUP = 0.95, 10.0


def vectors(n_items: int, dim: int, n_queries: int, seed: int
            ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    topics = rng.normal(size=(256, dim)).astype(np.float32) / np.sqrt(dim)
    items = np.empty((n_items, dim), dtype=np.float32)
    for s in range(0, n_items, 200_000):  # bounded temporaries
        m = min(200_000, n_items - s)
        t = rng.integers(0, len(topics), m)
        v = topics[t] + rng.normal(scale=0.6 / np.sqrt(dim), size=(m, dim)).astype(np.float32)
        items[s:s + m] = v * rng.lognormal(0.0, 0.35, size=(m, 1)).astype(np.float32)
    mix = rng.dirichlet(np.full(len(topics), 0.05), size=n_queries).astype(np.float32)
    queries = mix @ topics + rng.normal(scale=0.3 / np.sqrt(dim),
                                        size=(n_queries, dim)).astype(np.float32)
    return items, queries


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--single", type=int, default=100, help="queries timed one at a time")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--m", type=int, default=64, help="HNSW links per node")
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef-search", type=int, nargs="+", default=[400])
    ap.add_argument("--threads", type=int, default=0, help="0 = all cores (both methods)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "ann.json"))
    a = ap.parse_args()

    items, queries = vectors(a.items, a.dim, a.queries, a.seed)
    print(f"{a.items:,} items x {a.dim} dims, {a.queries} queries, top-{a.k}, "
          f"{os.cpu_count()} cores")
    (truth, _), exact_s = timed(exact_top_k, items, queries, a.k)
    single = queries[:a.single]
    t0 = time.perf_counter()
    for q in single:
        exact_top_k(items, q, a.k)
    exact_single_ms = (time.perf_counter() - t0) / len(single) * 1e3

    index = ANNIndex(threshold=0, m=a.m, ef_construction=a.ef_construction,
                     ef_search=a.ef_search[0], num_threads=a.threads, seed=a.seed)
    _, build_s = timed(index.fit, items)
    rows = []
    for ef in a.ef_search:
        index.ef_search = ef
        index.search(queries[:10], a.k)  # warm
        (found, _), ann_s = timed(index.search, queries, a.k)
        t0 = time.perf_counter()
        for q in single:
            index.search(q, a.k)
        ann_single_ms = (time.perf_counter() - t0) / len(single) * 1e3
        rec = recall_at_k(found, truth)
        rows.append({"ef_search": ef, "recall_at_k": round(rec, 4),
                     "exact_batch_ms_per_query": round(exact_s / a.queries * 1e3, 3),
                     "ann_batch_ms_per_query": round(ann_s / a.queries * 1e3, 3),
                     "speedup_batch": round(exact_s / ann_s, 1),
                     "exact_single_ms": round(exact_single_ms, 3),
                     "ann_single_ms": round(ann_single_ms, 3),
                     "speedup_single": round(exact_single_ms / ann_single_ms, 1),
                     "meets_targets": bool(rec >= TARGET_RECALL
                                           and exact_s / ann_s >= TARGET_SPEEDUP
                                           and exact_single_ms / ann_single_ms
                                           >= TARGET_SPEEDUP)})

    head = ["ef_search", "recall@k", "exact ms/q", "ann ms/q", "speedup", "exact 1q ms",
            "ann 1q ms", "speedup 1q", "targets"]
    print(f"index build: {build_s:.1f} s (m={a.m}, ef_construction={a.ef_construction})")
    print(" | ".join(f"{h:>11}" for h in head))
    for r in rows:
        vals = [r["ef_search"], r["recall_at_k"], r["exact_batch_ms_per_query"],
                r["ann_batch_ms_per_query"], f'{r["speedup_batch"]}x', r["exact_single_ms"],
                r["ann_single_ms"], f'{r["speedup_single"]}x',
                "met" if r["meets_targets"] else "MISSED"]
        print(" | ".join(f"{v!s:>11}" for v in vals))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"items": a.items, "dim": a.dim, "queries": a.queries, "k": a.k,
                               "m": a.m, "ef_construction": a.ef_construction,
                               "build_seconds": round(build_s, 2), "rows": rows,
                               "targets": {"recall": TARGET_RECALL,
                                           "speedup": TARGET_SPEEDUP},
                               "machine": {"cpus": os.cpu_count(),
                                           "python": platform.python_version()}},
                              indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
