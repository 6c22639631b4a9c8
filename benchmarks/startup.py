"""Start-up time of the command line (issue 27: ``feedwise --help`` <= 0.5 s wall).

Runs each command line ``--runs`` times in a fresh interpreter, side by side with
``python -c pass`` (the floor: starting Python itself), and prints the median and best
wall time of each, with the ratio to the floor. Writes benchmarks/results/startup.json.

    .venv/bin/python benchmarks/startup.py            # --help and every COMMAND --help
    .venv/bin/python benchmarks/startup.py --runs 20 --only-top
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from feedwise.cli._index import COMMANDS

OUT = Path(__file__).parent / "results" / "startup.json"
FEEDWISE = str(Path(sys.executable).with_name("feedwise"))


def wall(cmd: list[str], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--only-top", action="store_true", help="only `feedwise --help`")
    args = ap.parse_args()
    lines = [("python -c pass", [sys.executable, "-c", "pass"]),
             ("feedwise --help", [FEEDWISE, "--help"])]
    if not args.only_top:
        lines += [(f"feedwise {name} --help", [FEEDWISE, name, "--help"])
                  for name in sorted(COMMANDS)]
    load = os.getloadavg()[0]
    rows = []
    for label, cmd in lines:
        median, best = wall(cmd, args.runs)
        rows.append({"command": label, "median_s": round(median, 3), "best_s": round(best, 3)})
    floor = rows[0]["median_s"]
    print(f"load average before: {load:.2f}; {args.runs} runs each\n")
    print(f"{'command':40s} {'median s':>9s} {'best s':>8s} {'x python':>9s}")
    for r in rows:
        r["ratio_to_python"] = round(r["median_s"] / floor, 1)
        print(f"{r['command']:40s} {r['median_s']:9.3f} {r['best_s']:8.3f} "
              f"{r['ratio_to_python']:9.1f}")
    top = rows[1]["median_s"]
    print(f"\nfeedwise --help: {top:.3f} s median (target <= 0.5 s): "
          f"{'holds' if top <= 0.5 else 'MISSED'}")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"benchmark": "startup", "load_before": load, "runs": args.runs,
                               "rows": rows, "target_s": 0.5, "met": top <= 0.5}, indent=2))


if __name__ == "__main__":
    main()
