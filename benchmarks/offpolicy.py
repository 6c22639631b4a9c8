"""Off-policy estimators vs. the known truth on synthetic logged feeds.

Median (and max) relative error over seeds of DM, IPS, SNIPS, DR and Switch-DR at a given
number of logged impressions, with bootstrap interval coverage and effective sample size.

    .venv/bin/python benchmarks/offpolicy.py                       # 100k impressions, 5 seeds
    .venv/bin/python benchmarks/offpolicy.py --seeds 10 --bootstrap 200

Writes benchmarks/results/offpolicy.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from feedwise.evidence.estimators import accuracy_table

OUT = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--impressions", type=int, default=100_000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--bootstrap", type=int, default=100)
    args = ap.parse_args()
    t0 = time.perf_counter()
    table = accuracy_table(args.impressions, seeds=range(args.seeds),
                           n_bootstrap=args.bootstrap)
    secs = time.perf_counter() - t0
    pd.set_option("display.width", 200)
    print(f"\n{args.impressions:,} logged impressions (5 slots per feed), {args.seeds} seeds, "
          f"{args.bootstrap} bootstrap resamples; {secs:.1f} s")
    print(table.round(4).to_string(index=False))
    ok = {e: bool(table.set_index("estimator").loc[e, "median_rel_error"] < 0.05)
          for e in ("snips", "dr")}
    print("acceptance (median relative error < 5%): "
          + ", ".join(f"{e} {'MET' if v else 'NOT MET'}" for e, v in ok.items()))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "offpolicy.json").write_text(json.dumps(
        {"impressions": args.impressions, "seeds": args.seeds, "bootstrap": args.bootstrap,
         "seconds": secs, "table": json.loads(table.to_json(orient="records")),
         "acceptance": ok}, indent=2))
    print(f"wrote {OUT / 'offpolicy.json'}")


if __name__ == "__main__":
    main()
