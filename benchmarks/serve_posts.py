"""Per-post cost of a new post reaching the served feed engine, in-process.

Builds the ``benchmarks/serve.py`` world (posts, users, campaigns, events), trains and
promotes a model, opens the service (``ServiceState``, no HTTP) and adds ``--posts`` new
posts through the writer, each made known to the service two ways:

* **rebuild** (the path before the live append, still taken by a replaced post or a new
  tag): ``catalogue_changed()`` then ``refresh_policy()``: a new engine from the store plus
  ``settle_heap`` (unfreeze, full collection, freeze);
* **append**: ``catalogue_changed(posts=[item])``: ``FeedEngine.add_posts`` on the live
  engine, no rebuild, no heap walk.

Prints the seconds per post (median, max) of each, checks each post is in the engine's
catalogue and fresh source afterwards, and writes ``benchmarks/results/serve_posts.json``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/serve_posts.py --items 20000 --users 20000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from serve import build_world  # noqa: E402

from feedwise.schema import Item  # noqa: E402
from feedwise.server.deps import ServiceState  # noqa: E402
from feedwise.server.settings import Settings  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--campaigns", type=int, default=50)
    p.add_argument("--per-user", type=int, default=10)
    p.add_argument("--model", default="itemknn")
    p.add_argument("--posts", type=int, default=5, help="posts timed per path")
    p.add_argument("--out", default=str(RESULTS / "serve_posts.json"))
    args = p.parse_args()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        w = build_world(root, args.items, args.users, args.campaigns, args.per_user, 20,
                        args.model, 0)
        print(f"world {args.items} posts x {args.users} users, {w['events']} events, "
              f"{args.model} ({time.perf_counter() - t0:.0f}s)", flush=True)
        settings = Settings(db=str(root / "bench.duckdb"), registry=str(root / "registry"),
                            keys_file=str(root / "keys.json"), reload_interval_s=0,
                            writer_linger_s=0.0)
        state = ServiceState(settings)
        try:
            times: dict[str, list[float]] = {"rebuild": [], "append": []}
            for path in ("rebuild", "append"):
                for k in range(args.posts):
                    item = Item(item_id=f"new-{path}-{k}", kind="post", author_id="a1",
                                title="new", tags=["t0"], created_at=datetime.now(UTC))
                    state.writer.call(lambda s, it=item: s.upsert_items([it])).result(60)
                    t = time.perf_counter()
                    state.catalogue_changed(posts=[item] if path == "append" else None)
                    times[path].append(time.perf_counter() - t)
                    engine = state.served.policy
                    assert item.item_id in engine.catalog.index, "post missing"
                    fresh = next(s for s in engine.sources if s.name == "fresh")
                    assert engine.catalog.index[item.item_id] in fresh.order, "not fresh"
        finally:
            state.close()
    rows = {k: {"median_s": float(np.median(v)), "max_s": float(np.max(v)), "n": len(v)}
            for k, v in times.items()}
    print(f"{'path':8} {'median s/post':>14} {'max s/post':>11}  (load before {load0:.1f}, "
          f"after {os.getloadavg()[0]:.1f})")
    for k, r in rows.items():
        print(f"{k:8} {r['median_s']:14.4f} {r['max_s']:11.4f}")
    print(f"speed-up {rows['rebuild']['median_s'] / rows['append']['median_s']:.0f}x")
    out = {"args": vars(args), "load_before": load0, "load_after": os.getloadavg()[0],
           "results": rows}
    Path(args.out).parent.mkdir(exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
