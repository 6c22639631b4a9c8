"""Notifications (issue 23): send-time optimisation against a single global hour and a
random hour at equal notification count, and dayparted ad pacing.

What runs:

* **settings** — the bandit's ``activity_weight`` and ``prior_strength`` are chosen on
  validation worlds (seeds 100+) that never serve as test worlds;
* **send time** — on ``--seeds`` test worlds of ``--users`` users over ``--days`` days
  (10 zones, 5% missing/unknown zones on the UTC fallback, quiet hours 22-8 local, one per
  local day, 4 h apart), every policy of :mod:`feedwise.evidence.notify_sim`: opens
  (realised and expected), sends, rule violations; the lift of send-time optimisation over
  the oracle single best UTC hour, over a random open hour, and (a stronger baseline than
  the acceptance asks for) over the oracle single best *local* hour;
* **dayparting** — one campaign paced through a UTC day of requests that follow its
  audience's activity (Berlin and New York evenings), with the daypart curve and with the
  even schedule: spend against budget, and the distance (total variation) between the
  hourly spend and the audience curve. Writes an SVG figure.

Prints tables, writes benchmarks/results/notifications.json and notifications_pacing.svg.

    nice .venv/bin/python benchmarks/notifications.py
    .venv/bin/python benchmarks/notifications.py --users 300 --days 14 --seeds 2   # quick
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from feedwise.evidence.notify_sim import compare, make_world, simulate
from feedwise.feed import Campaign, Creative, FeedConfig, FeedEngine, FeedRequest
from feedwise.feed.config import AdConfig
from feedwise.feed.loader import utc_hour_activity
from feedwise.notifications import SendTimeBandit
from feedwise.store import EventStore

RESULTS = Path(__file__).resolve().parent / "results"
GRID = [{"activity_weight": w, "prior_strength": s} for w in (0.5, 1.0, 1.5)
        for s in (5.0, 20.0)]


def choose_settings(users: int, days: int) -> tuple[dict, list[dict]]:
    rows = []
    worlds = [make_world(users, seed) for seed in (100, 101)]
    for params in GRID:
        opens = [simulate(w, "sendtime", days=days, seed=w.seed,
                          bandit=SendTimeBandit(seed=w.seed, n_draws=50, **params)
                          )["expected_opens"] for w in worlds]
        rows.append({**params, "validation_expected_opens": float(np.mean(opens))})
        print(f"  validation {params}: {np.mean(opens):.1f}", file=sys.stderr)
    best = max(rows, key=lambda r: r["validation_expected_opens"])
    return {k: best[k] for k in ("activity_weight", "prior_strength")}, rows


# ---------------------------------------------------------------------------- dayparting
DAY = datetime(2026, 3, 3, tzinfo=UTC)


def _profile(peak: int) -> list[float]:
    h = np.arange(24)
    d = np.minimum(np.abs(h - peak), 24 - np.abs(h - peak))
    day = 0.05 + np.exp(-0.5 * (d / 2.0) ** 2)
    return list(np.tile(day / day.sum() / 7, 7))


def pacing_run(dayparting: bool, budget: float = 2.0, seed: int = 0) -> dict:
    store = EventStore(":memory:")
    store.upsert_items(pd.DataFrame({"item_id": [f"p{i}" for i in range(20)], "kind": "post",
                                     "created_at": [DAY - timedelta(hours=1)] * 20,
                                     "tags": [["x"]] * 20}))
    zones = ["Europe/Berlin"] * 20 + ["America/New_York"] * 10
    users = [f"u{i}" for i in range(len(zones))]
    store.upsert_users([{"user_id": u, "timezone": z} for u, z in zip(users, zones,
                                                                      strict=True)])
    prof = pd.DataFrame({"user_id": users, "timezone": zones,
                         "active_hours": [_profile(20) for _ in users],
                         "updated_at": pd.Timestamp(DAY)})
    store.save_profiles(prof)  # the other profile columns are stored as NULL
    store.upsert_campaigns(pd.DataFrame([Campaign(
        campaign_id="c", advertiser_id="a", bid=10.0, daily_budget=budget,
        creatives=[Creative(item_id="cr")]).to_row()]))
    cfg = FeedConfig(ux_lambda=0.0, first_ad_slot=0, min_ad_gap=0, max_ad_load=1.0,
                     ads=AdConfig(reserve_ecpm=2.0, dayparting=dayparting))
    engine = FeedEngine.from_store(store, None, cfg)
    curve = utc_hour_activity(store.profiles(), DAY).sum(axis=0)
    curve /= curve.sum()
    rng = np.random.default_rng(seed)
    n = int(3 * budget / 0.002)
    times = np.sort(rng.choice(24, n, p=curve) * 3600.0 + rng.uniform(0, 3600, n))
    spend = np.zeros(24)
    for k, t in enumerate(times):
        before = float(engine.state.ads.spend_today[0])
        engine.compose(FeedRequest(users[k % len(users)], n=2,
                                   now=DAY + timedelta(seconds=float(t)),
                                   context={"seed": k}))
        spend[int(t // 3600)] += float(engine.state.ads.spend_today[0]) - before
    store.close()
    share = spend / max(spend.sum(), 1e-12)
    return {"dayparting": dayparting, "budget": budget, "spent": float(spend.sum()),
            "spent_vs_budget": float(spend.sum() / budget - 1),
            "tv_distance_to_audience": float(0.5 * np.abs(share - curve).sum()),
            "hourly_spend_share": share.round(4).tolist(), "audience_curve":
            curve.round(4).tolist()}


def svg(day: dict, flat: dict, path: Path) -> None:
    w, h, pad = 720, 300, 40
    bw = (w - 2 * pad) / 24
    top = max(max(day["audience_curve"]), max(day["hourly_spend_share"]),
              max(flat["hourly_spend_share"])) * 1.1
    y = lambda v: h - pad - (h - 2 * pad) * v / top  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
             'font-family="sans-serif" font-size="11">',
             f'<text x="{pad}" y="18">Hourly spend share (UTC) vs the audience curve</text>']
    for i in range(24):
        x = pad + i * bw
        for dx, run, colour in ((1, day, "#3b7dd8"), (bw / 2, flat, "#bbbbbb")):
            v = y(run["hourly_spend_share"][i])
            parts.append(f'<rect x="{x + dx:.1f}" y="{v:.1f}" width="{bw / 2 - 1:.1f}" '
                         f'height="{h - pad - v:.1f}" fill="{colour}"/>')
        if i % 3 == 0:
            parts.append(f'<text x="{x:.1f}" y="{h - pad + 14}">{i:02d}</text>')
    pts = " ".join(f"{pad + (i + 0.5) * bw:.1f},{y(v):.1f}"
                   for i, v in enumerate(day["audience_curve"]))
    parts.append(f'<polyline points="{pts}" fill="none" stroke="#d83b3b" stroke-width="2"/>')
    parts.append(f'<text x="{w - 300}" y="18" fill="#3b7dd8">■ dayparted</text>'
                 f'<text x="{w - 210}" y="18" fill="#999">■ even</text>'
                 f'<text x="{w - 140}" y="18" fill="#d83b3b">— audience</text></svg>')
    path.write_text("\n".join(parts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--days", type=int, default=28)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS / "notifications.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    params, grid = choose_settings(args.users, args.days)
    print(f"bandit settings chosen on validation worlds: {params}")
    rows = []
    for seed in range(args.seeds):
        world = make_world(args.users, seed)
        df = compare(world, days=args.days, seed=seed, bandit_params=params)
        df["seed"] = seed
        rows.append(df)
        print(f"  seed {seed} done ({time.perf_counter() - t0:.0f}s)", file=sys.stderr)
    res = pd.concat(rows, ignore_index=True)
    per = res.pivot(index="seed", columns="policy", values="expected_opens")
    real = res.pivot(index="seed", columns="policy", values="opens")
    lift = pd.DataFrame({
        "vs_global_hour": per["sendtime"] / per["global_hour"] - 1,
        "vs_random_hour": per["sendtime"] / per["random_hour"] - 1,
        "vs_best_local_hour": per["sendtime"] / per["local_hour"] - 1,
        "realised_vs_global_hour": real["sendtime"] / real["global_hour"] - 1,
        "realised_vs_random_hour": real["sendtime"] / real["random_hour"] - 1})
    print(res.to_string(index=False))
    print("\nlift of send-time optimisation (expected opens; realised below):")
    print(lift.round(3).to_string())
    print(lift.agg(["mean", "min"]).round(3).to_string())
    day, flat = pacing_run(True), pacing_run(False)
    pacing = pd.DataFrame([{k: v for k, v in r.items() if not isinstance(v, list)}
                           for r in (day, flat)])
    print("\ndayparted vs even pacing (one day, requests follow the audience):")
    print(pacing.round(4).to_string(index=False))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig = args.out.with_name("notifications_pacing.svg")
    svg(day, flat, fig)
    out = {"users": args.users, "days": args.days, "seeds": args.seeds,
           "bandit_settings": params, "validation_grid": grid,
           "policies": res.to_dict(orient="records"),
           "lift": lift.reset_index().to_dict(orient="records"),
           "lift_mean": lift.mean().to_dict(), "lift_min": lift.min().to_dict(),
           "violations": int(res["violations"].sum()),
           "equal_counts": bool(res.groupby("seed")["sends"].nunique().eq(1).all()),
           "pacing": [day, flat], "figure": str(fig.name),
           "seconds": time.perf_counter() - t0}
    args.out.write_text(json.dumps(out, indent=2, default=float))
    print(f"\nwrote {args.out} and {fig}")


if __name__ == "__main__":
    main()
