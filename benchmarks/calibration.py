"""Does calibrating the Hybrid at fit help? Measured on validation splits only.

How the calibration of ``feedwise.models.Hybrid`` was designed: for each data set the test
protocol's split is made (``random_split(data, 0.75, seed=42)``, as in
``benchmarks/quality.py``) and its test part is never looked at. Outer validation splits
are carved from the training part (``random_split(train, 0.9, seed=s)`` for each ``--seeds``
s). On each, the Hybrid is fitted on the 90 % twice, with ``calibrate=False`` and with
``calibrate=True`` (which carves its own inner splits from those 90 %), and both are scored
(NDCG@10, seen items excluded) on the other 10 %.

    .venv/bin/python benchmarks/calibration.py                   # three data sets
    .venv/bin/python benchmarks/calibration.py --datasets movielens-100k --seeds 7,8,9,10,11
    .venv/bin/python benchmarks/calibration.py --space '{"norm-ease": {"l2": [12, 24]}}'
    .venv/bin/python benchmarks/calibration.py --splits 4 --ratio 0.95
    .venv/bin/python benchmarks/calibration.py --optional '[]'   # no optional components

``--space`` replaces ``CALIBRATION_SPACES``, ``--optional`` the Hybrid's
``OPTIONAL_COMPONENTS`` (a JSON list of ``[name, weight, params]``); ``--splits`` and
``--ratio`` set the inner splits. Writes benchmarks/results/calibration.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import feedwise.models.calibration as calibration  # noqa: E402
import feedwise.models.hybrid as hybrid  # noqa: E402
from feedwise.datasets import load  # noqa: E402
from feedwise.evaluation import evaluate, random_split  # noqa: E402
from feedwise.models import Hybrid  # noqa: E402

DATASETS = ("movielens-100k", "movielens-latest-small", "lastfm-hetrec2011")
SEEDS = {"movielens-100k": "7,8,9,10,11"}  # the others: 7,8,9 (slower to fit)


def _ndcg(model: Hybrid, split) -> float:
    t = evaluate(model, split, 10, fit=False, metrics=("ndcg",), beyond=False)
    return float(t.loc[t["metric"] == "ndcg", "value"].iloc[0])


def run(name: str, data_dir: Path, seeds: list[int], splits: int) -> dict:
    ds = load(name, data_dir=data_dir)
    data = ds.interactions()
    items = ds.items[ds.items["item_id"].astype(str).isin(set(data.item_ids))]
    side = {"items": items, "edges": ds.edges}
    train = random_split(data, 0.75, seed=42).train  # the test part is never used here
    rows = []
    for s in seeds:
        outer = random_split(train, 0.9, seed=s)
        t0 = time.perf_counter()
        plain = Hybrid(calibrate=False).fit(outer.train, **side)
        t1 = time.perf_counter()
        cal = Hybrid(calibration_splits=splits).fit(outer.train, **side)
        t2 = time.perf_counter()
        row = {"seed": s, "not_calibrated": _ndcg(plain, outer), "calibrated": _ndcg(cal, outer),
               "fit_s": [t1 - t0, t2 - t1], "chosen": cal.components_}
        print(f"  {name} seed {s}: not calibrated {row['not_calibrated']:.4f}, calibrated "
              f"{row['calibrated']:.4f} (fit {t1 - t0:.0f} s / {t2 - t1:.0f} s)", flush=True)
        rows.append(row)
    a = float(np.mean([r["not_calibrated"] for r in rows]))
    b = float(np.mean([r["calibrated"] for r in rows]))
    return {"seeds": seeds, "not_calibrated": a, "calibrated": b, "gain": b / a - 1,
            "better_on": sum(r["calibrated"] > r["not_calibrated"] for r in rows), "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--seeds", default=None,
                    help="outer validation seeds (default 7..11 on MovieLens-100k, else 7,8,9)")
    ap.add_argument("--space", default=None, help="CALIBRATION_SPACES as JSON")
    ap.add_argument("--optional", default=None,
                    help="OPTIONAL_COMPONENTS as JSON, e.g. '[[\"gf-cf\", 0.3, {}]]'")
    ap.add_argument("--splits", type=int, default=2, help="inner calibration splits")
    ap.add_argument("--ratio", type=float, default=0.9, help="inner splits' fit share")
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "results" / "calibration.json")
    args = ap.parse_args()
    if args.space:
        calibration.CALIBRATION_SPACES.clear()
        calibration.CALIBRATION_SPACES.update(json.loads(args.space))
    if args.optional is not None:
        hybrid.OPTIONAL_COMPONENTS = tuple(tuple(c) for c in json.loads(args.optional))
    if args.ratio != 0.9:
        def with_ratio(*a, **kw):
            return calibration.calibrate(*a, ratio=args.ratio, **kw)

        hybrid.calibrate = with_ratio
    names = [d for d in args.datasets.split(",") if d]
    res = {}
    for n in names:
        seeds = [int(x) for x in (args.seeds or SEEDS.get(n, "7,8,9")).split(",")]
        res[n] = run(n, args.data_dir, seeds, args.splits)
    print(f"\nvalidation NDCG@10 (outer splits of the training part only; inner calibration "
          f"{args.splits} x {args.ratio:g}; space {calibration.CALIBRATION_SPACES}; optional "
          f"{hybrid.OPTIONAL_COMPONENTS})")
    print(f"{'data set':24s}{'splits':>8s}{'not calibrated':>16s}{'calibrated':>12s}"
          f"{'gain':>8s}{'better on':>11s}")
    for n, r in res.items():
        print(f"{n:24s}{len(r['seeds']):8d}{r['not_calibrated']:16.4f}{r['calibrated']:12.4f}"
              f"{r['gain']:+8.1%}{r['better_on']:>7d}/{len(r['seeds'])}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"space": calibration.CALIBRATION_SPACES,
                                    "optional": hybrid.OPTIONAL_COMPONENTS,
                                    "splits": args.splits, "ratio": args.ratio,
                                    "datasets": res}, indent=2, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
