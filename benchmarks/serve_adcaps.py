"""Ad caps and budgets across the processes of ``feedwise serve --workers N``: the measured bound.

Starts a real ``feedwise serve --workers N`` on a small world (the default exchange
intervals unless told otherwise) and measures:

* **caps**: users request feeds one after another with a pause ``gap`` between requests,
  each on a new connection (the kernel spreads them over the processes); a campaign capped
  at ``--cap`` per hour; the impressions each user saw beyond the cap, per gap;
* **budget**: ``--clients`` clients request feeds as fast as they can until a campaign with a
  total budget stops (a total one: a daily budget is also paced by the hour); the charges
  of the impressions served (each stored ad impression carries its charge) against what
  one process alone may spend (the budget minus the bid: a campaign is served while what
  is left covers one impression at its bid), and the ledger (``ad_spend``);
* the staleness window the design documents, ``impressions_flush_s + worker_poll_s``.

Writes ``benchmarks/results/serve_adcaps.json``.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/serve_adcaps.py
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from feedwise.store import EventStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from worker_world import served_world  # noqa: E402  (the worker tests' world)

RESULTS = Path(__file__).resolve().parent / "results"
NOW = datetime.now(UTC)


def port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def feed(url: str, user: str, headers: dict) -> tuple[dict, str]:
    with httpx.Client(base_url=url, timeout=30) as c:  # a new connection: any process
        r = c.get(f"/v1/users/{user}/feed?n=10", headers=headers)
        r.raise_for_status()
        return r.json(), r.headers.get("x-feedwise-worker", "owner")


def count(body: dict, campaign: str) -> int:
    return sum(s["campaign_id"] == campaign for s in body["slots"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cap", type=int, default=3)
    p.add_argument("--requests", type=int, default=10, help="feeds per user, per gap")
    p.add_argument("--users", type=int, default=8, help="users per gap (concurrently)")
    p.add_argument("--gaps", default="0,0.1,0.25,0.5,1.0,1.5")
    p.add_argument("--clients", type=int, default=16, help="budget phase clients")
    p.add_argument("--budget-impressions", type=int, default=40,
                   help="the total budget: the bid plus this many impressions at the bid")
    p.add_argument("--flush-s", type=float, default=None,
                   help="FEEDWISE_IMPRESSIONS_FLUSH_S (default: the service's)")
    p.add_argument("--poll-s", type=float, default=None,
                   help="FEEDWISE_WORKER_POLL_S (default: the service's)")
    p.add_argument("--reserve-factor", type=float, default=None,
                   help="FEEDWISE_AD_RESERVE_FACTOR (default: the service's; 0: no reserve)")
    p.add_argument("--out", default=str(RESULTS / "serve_adcaps.json"))
    a = p.parse_args()
    from feedwise.server.settings import Settings

    gaps = [float(g) for g in a.gaps.split(",")]
    n_users = a.users * len(gaps) + 8
    root = Path(tempfile.mkdtemp(prefix="fw-adcaps-"))
    w = served_world(root, 120, max(n_users, 150))
    pt = port()
    env = {**os.environ, "FEEDWISE_DB": str(w["db"]), "FEEDWISE_REGISTRY": str(w["registry"]),
           "FEEDWISE_KEYS_FILE": str(w["keys"])}
    if a.flush_s is not None:
        env["FEEDWISE_IMPRESSIONS_FLUSH_S"] = str(a.flush_s)
    if a.poll_s is not None:
        env["FEEDWISE_WORKER_POLL_S"] = str(a.poll_s)
    if a.reserve_factor is not None:
        env["FEEDWISE_AD_RESERVE_FACTOR"] = str(a.reserve_factor)
    defaults = Settings()
    flush_s = a.flush_s if a.flush_s is not None else defaults.impressions_flush_s
    poll_s = a.poll_s if a.poll_s is not None else defaults.worker_poll_s
    proc = subprocess.Popen([sys.executable, "-c", "from feedwise.cli import app; app()",
                             "serve", "--port", str(pt), "--workers", str(a.workers),
                             "--log-level", "warning"], env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{pt}"
    rh = {"Authorization": f"Bearer {w['read']}"}
    ah = {"Authorization": f"Bearer {w['admin']}"}
    out: dict = {"workers": a.workers, "cap": a.cap, "impressions_flush_s": flush_s,
                 "worker_poll_s": poll_s, "staleness_window_s": flush_s + poll_s,
                 "ad_reserve_factor": (a.reserve_factor if a.reserve_factor is not None
                                       else defaults.ad_reserve_factor),
                 "caps": [], "budget": {}}
    try:
        deadline, seen = time.monotonic() + 120, set()
        while len(seen) < a.workers:  # every process answers
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the workers did not come up")
            try:
                seen.add(feed(url, "u0", rh)[1])
            except httpx.HTTPError:
                time.sleep(0.2)
        with httpx.Client(base_url=url, timeout=30) as c:
            for cid, body in {"capped": {"advertiser_id": "adv1", "bid": 900,
                                         "frequency_caps": [{"max_impressions": a.cap,
                                                             "window_s": 3600}]},
                              "other": {"advertiser_id": "adv2", "bid": 150}}.items():
                c.put(f"/v1/campaigns/{cid}", json=body, headers=ah).raise_for_status()
        time.sleep(3 * (flush_s + poll_s) + 2)  # every process rebuilt with the campaigns
        print(f"{a.workers} processes; cap {a.cap}/hour; staleness window "
              f"S = flush {flush_s:g} s + poll {poll_s:g} s = {flush_s + poll_s:g} s")
        print(f"{'gap s':>6} {'users':>5} {'feeds':>5} {'max seen':>8} {'mean excess':>11} "
              f"{'users over cap':>14} {'processes/user':>14}")
        nxt = 1
        for g in gaps:
            users = [f"u{nxt + k}" for k in range(a.users)]
            nxt += a.users
            res: dict[str, tuple[int, set]] = {}

            def run(u: str, g: float = g, res: dict = res) -> None:
                n, by = 0, set()
                for _ in range(a.requests):
                    body, who = feed(url, u, rh)
                    n += count(body, "capped")
                    by.add(who)
                    time.sleep(g)
                res[u] = (n, by)

            ts = [threading.Thread(target=run, args=(u,)) for u in users]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            seen_n = [res[u][0] for u in users]
            excess = [max(0, k - a.cap) for k in seen_n]
            row = {"gap_s": g, "users": len(users), "feeds_per_user": a.requests,
                   "max_seen": max(seen_n), "mean_excess": float(np.mean(excess)),
                   "users_over_cap": int(sum(e > 0 for e in excess)),
                   "mean_processes_per_user": float(np.mean([len(res[u][1])
                                                             for u in users]))}
            out["caps"].append(row)
            print(f"{g:>6g} {len(users):>5} {a.requests:>5} {row['max_seen']:>8} "
                  f"{row['mean_excess']:>11.2f} {row['users_over_cap']:>14} "
                  f"{row['mean_processes_per_user']:>14.1f}")
        # budget: many clients at full speed until the campaign stops
        bid = 200.0
        budget = bid / 1000 * (1 + a.budget_impressions)
        with httpx.Client(base_url=url, timeout=30) as c:
            c.put("/v1/campaigns/budgeted", headers=ah, json={
                "advertiser_id": "adv3", "bid": bid, "total_budget": budget}
                  ).raise_for_status()
        time.sleep(3 * (flush_s + poll_s) + 2)
        stop = threading.Event()
        shown: Counter = Counter()
        lock = threading.Lock()

        def hammer(k: int) -> None:
            j = 0
            while not stop.is_set():
                body, who = feed(url, f"u{(k * 997 + j) % n_users}", rh)
                j += 1
                if count(body, "budgeted"):
                    with lock:
                        shown[who] += count(body, "budgeted")
                        shown["_last"] = time.monotonic()

        t0 = time.monotonic()
        shown["_last"] = t0
        ts = [threading.Thread(target=hammer, args=(k,)) for k in range(a.clients)]
        for t in ts:
            t.start()
        while time.monotonic() - shown["_last"] < 3 + 2 * (flush_s + poll_s) and \
                time.monotonic() - t0 < 120:
            time.sleep(0.2)
        stop.set()
        for t in ts:
            t.join()
        secs = shown["_last"] - t0
        out["budget"] = {"total_budget": budget, "bid_cpm": bid,
                         "one_process_limit": budget - bid / 1000,
                         "impressions_by_process": {k: v for k, v in shown.items()
                                                    if k != "_last"},
                         "seconds_until_stopped": secs, "clients": a.clients}
    finally:
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=120)[1].decode()
    if proc.returncode not in (0, 130, -signal.SIGINT):
        print(err[-3000:])
    with EventStore(w["db"], read_only=True) as s:
        v = s.query("SELECT value FROM events WHERE kind = 'ad_impression' "
                    "AND context LIKE '%\"budgeted\"%'")["value"]
        ledger = s.query("SELECT spend_total FROM ad_spend WHERE campaign_id = 'budgeted'")
        stored_imps = s.scalar("SELECT count(*) FROM ad_impressions "
                               "WHERE campaign_id = 'budgeted'")
    b = out["budget"]
    b.update({"impressions_served": len(v), "served_charges": float(v.sum()),
              "max_charge": float(v.max()) if len(v) else 0.0,
              "over_one_process_limit": float(v.sum()) - b["one_process_limit"],
              "ledger_spend_total": float(ledger["spend_total"].iloc[0]) if len(ledger)
              else None, "ad_impressions_rows": int(stored_imps)})
    rate = b["served_charges"] / max(b["seconds_until_stopped"], 1e-9)
    b["spend_rate_per_s"] = rate
    b["rate_times_window"] = rate * (flush_s + poll_s)
    print(f"budget {budget:.2f} (bid {bid / 1000:.2f}/impression; one process may spend "
          f"{b['one_process_limit']:.2f}); {a.clients} clients: {len(v)} impressions "
          f"({b['impressions_by_process']}) charged {b['served_charges']:.3f} over "
          f"{b['seconds_until_stopped']:.1f} s: {b['over_one_process_limit']:+.3f} against the "
          f"one-process limit (spend rate x S = {b['rate_times_window']:.3f}); ledger "
          f"{b['ledger_spend_total']}")
    RESULTS.mkdir(exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
