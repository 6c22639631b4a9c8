"""Memory: ItemKNN on 1M items x 2M interactions, fit and ``feedwise recommend --all``.

Issue 20, item 10: ``recommend --all`` with ItemKNN on 1M items died with ``MemoryError``
(7.63 GiB for one 2048 x 1M block of similarities). Target: it completes within 4 GiB RSS.

What runs:

* **data** — a synthetic catalogue of ``--items`` items and ``--users`` users with
  ``--interactions`` distinct (user, item) interactions: item popularity is Zipf-like
  (exponent ``--zipf``: a head of hits and a long tail, many items never engaged), user
  activity log-normal (most users a few events, some hundreds), every user at least one.
* **fit** — ``ItemKNN()`` at its defaults (k=50, shrink=10) in this process, then saved
  as ``feedwise recommend`` finds it (``model.json`` + ``model.npz``).
* **recommend --all** — the real command, ``feedwise recommend --all --model itemknn
  --model-path DIR --format jsonl -n 10``, in a child process (loading the saved model,
  scoring every user in its batches, streaming JSON lines to a file).

Peak RSS: the fit phase's from ``VmHWM`` (reset before it through
``/proc/self/clear_refs``; where that is refused, the process peak so far), the
command's from ``wait4``'s ``ru_maxrss`` of the child. Prints a table and writes
benchmarks/results/memory.json.

    nice .venv/bin/python benchmarks/memory.py                  # 1M items, 2M events, 200k users
    .venv/bin/python benchmarks/memory.py --items 100000 --interactions 200000 --users 20000
    FEEDWISE_MEMORY_BUDGET=512MiB .venv/bin/python benchmarks/memory.py   # another budget
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from feedwise.interactions import Interactions
from feedwise.models import ItemKNN
from feedwise.models.memory import format_bytes, memory_budget

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RSS = 4 * 2**30
#: The ``feedwise`` command in a child process that reports its own peak RSS (``VmHWM`` of
#: its image after exec; ``wait4``'s ``ru_maxrss`` would include the parent's at the fork).
CHILD = """
import atexit, sys
def _peak():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            sys.stderr.write('PEAK_RSS %d\\n' % (int(line.split()[1]) * 1024))
atexit.register(_peak)
from feedwise.cli import app
app(prog_name='feedwise')
"""


def synthetic(n_items: int, n_users: int, n_events: int, zipf: float, seed: int
              ) -> Interactions:
    """Long-tail users x items interactions (see the module docstring): exactly
    ``n_events`` distinct (user, item) pairs, drawn until that many are distinct."""
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(mean=0.0, sigma=1.2, size=n_users)
    user_p = activity / activity.sum()
    pop = 1.0 / np.arange(1, n_items + 1, dtype=np.float64) ** zipf
    item_p = pop / pop.sum()
    placed = rng.permutation(n_items).astype(np.int64)  # popular items anywhere
    # every user has at least one event; the rest go by activity and popularity
    users = np.arange(n_users, dtype=np.int64)
    items = placed[rng.choice(n_items, size=n_users, p=item_p)]
    first = np.unique(users * n_items + items)
    extra = np.zeros(0, np.int64)
    while len(first) + len(extra) < n_events:
        more = int((n_events - len(first) - len(extra)) * 1.05) + 1000
        u = rng.choice(n_users, size=more, p=user_p)
        i = placed[rng.choice(n_items, size=more, p=item_p)]
        extra = np.setdiff1d(np.concatenate([extra, u * n_items + i]), first)
    extra = rng.choice(extra, size=n_events - len(first), replace=False)
    keys = np.sort(np.concatenate([first, extra]))
    m = sp.csr_matrix((np.ones(n_events, np.float32),
                       ((keys // n_items).astype(np.int32), (keys % n_items).astype(np.int32))),
                      shape=(n_users, n_items))
    return Interactions(m, np.array([f"u{i}" for i in range(n_users)], dtype=object),
                        np.array([f"i{i}" for i in range(n_items)], dtype=object))


def _status(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak() -> bool:
    """Reset this process's peak RSS (``VmHWM``) to its current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss() -> int:
    hwm = _status("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--interactions", type=int, default=2_000_000)
    ap.add_argument("--users", type=int, default=200_000)
    ap.add_argument("--zipf", type=float, default=0.9, help="item popularity exponent")
    ap.add_argument("--n", type=int, default=10, help="items per user")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "memory.json"))
    a = ap.parse_args()

    budget = memory_budget()
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="feedwise-memory-"))
    try:
        t0 = time.perf_counter()
        data = synthetic(a.items, a.users, a.interactions, a.zipf, a.seed)
        gen_s = time.perf_counter() - t0
        engaged = int((np.diff(data.matrix.tocsc().indptr) > 0).sum())
        nnz = int(data.nnz)
        print(f"data: {data.n_users:,} users x {data.n_items:,} items, {data.nnz:,} "
              f"interactions ({engaged:,} items engaged), built in {gen_s:.1f} s; "
              f"memory budget {format_bytes(budget)}", flush=True)
        rows.append({"phase": "data", "seconds": gen_s, "peak_rss": peak_rss()})

        exact = reset_peak()
        t0 = time.perf_counter()
        model = ItemKNN().fit(data)
        fit_s = time.perf_counter() - t0
        rows.append({"phase": "fit ItemKNN", "seconds": fit_s, "peak_rss": peak_rss(),
                     "peak_exact": exact})
        sim_nnz = int(model.sim_.nnz)
        print(f"fit: {fit_s:.1f} s, {sim_nnz:,} similarities kept "
              f"({'sparse' if model.uses_sparse_path() else 'dense'} recommend path)",
              flush=True)
        t0 = time.perf_counter()
        model.save(tmp / "itemknn")
        rows.append({"phase": "save", "seconds": time.perf_counter() - t0,
                     "peak_rss": peak_rss(), "peak_exact": exact})
        del model, data

        out_file = tmp / "recs.jsonl"
        args = ["recommend", "--all", "--model", "itemknn", "--model-path",
                str(tmp / "itemknn"), "--format", "jsonl", "-n", str(a.n)]
        print("running: feedwise " + " ".join(args), flush=True)
        t0 = time.perf_counter()
        with out_file.open("wb") as f:
            proc = subprocess.run([sys.executable, "-c", CHILD, *args], stdout=f,
                                  stderr=subprocess.PIPE, check=False)
        rec_s = time.perf_counter() - t0
        err = proc.stderr.decode(errors="replace")
        if proc.returncode != 0:
            raise SystemExit(f"feedwise recommend --all failed ({proc.returncode}):\n{err}")
        peaks = [int(line.split()[1]) for line in err.splitlines()
                 if line.startswith("PEAK_RSS ")]
        lines = sum(1 for _ in out_file.open("rb"))
        users_out = len({json.loads(line)["user_id"] for line in out_file.open()})
        rows.append({"phase": "recommend --all (CLI)", "seconds": rec_s,
                     "peak_rss": peaks[-1] if peaks else
                     resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
                     "peak_exact": bool(peaks),
                     "lines": lines, "users": users_out})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(f"{'phase':<24}{'seconds':>10}{'peak RSS':>14}")
    for r in rows:
        mark = "" if r.get("peak_exact", True) else " (process peak)"
        print(f"{r['phase']:<24}{r['seconds']:>10.1f}{format_bytes(r['peak_rss']):>14}{mark}")
    total_peak = max(r["peak_rss"] for r in rows)
    ok = rows[-1]["peak_rss"] <= TARGET_RSS
    print(f"\nrecommend --all: {rows[-1]['lines']:,} lines for {rows[-1]['users']:,} users; "
          f"peak RSS {format_bytes(rows[-1]['peak_rss'])} "
          f"({'within' if ok else 'OVER'} the 4 GiB target); process peak "
          f"{format_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)}")

    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "items": a.items, "users": a.users, "interactions_requested": a.interactions,
        "interactions": nnz, "items_engaged": engaged, "zipf": a.zipf, "n": a.n,
        "seed": a.seed, "memory_budget": budget, "similarities": sim_nnz,
        "phases": rows, "max_peak_rss": total_peak, "target_rss": TARGET_RSS,
        "within_target": ok, "machine": platform.platform(), "cpus": os.cpu_count(),
    }, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
