"""Engagement model on the synthetic social world: point-in-time training, temporal hold-out.

Issue 18 (engagement model): every feature of a training impression is computed from the
events strictly before it (:mod:`feedwise.ranking.pointintime`), and on a temporal hold-out
of the synthetic social world (the demo's generator; hold-out = the last 20% of time):

* every objective with >= 200 positives has a log-loss below the base-rate constant's;
* the mean prediction is within 10% of the observed rate, and ECE <= 0.2 x the rate
  (checked on click, and reported for every objective with >= 200 positives beside the
  95% sampling interval of the hold-out rate: with 300-600 positives that interval alone
  is +-8-11% of the rate);
* AUC >= 0.75 on click.

What runs, per seed: ``synthetic_social(n_users=2000, n_days=14, seed=S)`` (the demo's
world at other seeds: 5, 6, 7 by default; seeds 1-4 served while the protocol and its
calibration rule were developed, so they are not the reported figures) into an in-memory
store; the point-in-time protocol of ``feedwise feed --train-engagement``
(:func:`feedwise.cli.feed.point_in_time_engagement`): warm-up 20% of the time span
(history only), training rows to 70%, the validation slice 70-80% (``C`` and the
calibration step chosen there), the hold-out 80-100% reported once; the
recommender score from ``--model`` refitted every 10% of the span on the events before
each cut. The constant is the training and validation base rate. For contrast, the
protocol this replaces (features from an engine loaded at the hold-out's start, so the
training rows' counts include their own labels) is measured on the same hold-out (click).

Prints a table per seed and writes benchmarks/results/engagement.json.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/engagement.py
    .venv/bin/python benchmarks/engagement.py --seeds 1 --users 500 --days 7 --model itemknn
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
MIN_POSITIVES = 200


def recommender(name: str) -> tuple[Any, str]:
    """An unfitted recommender of ``name`` (``none``: no recommender score)."""
    if name == "none":
        return None, "none"
    from feedwise.models import get_model

    try:
        return get_model(name), name
    except Exception as e:  # noqa: BLE001 - e.g. "auto" before its module lands
        print(f"note: model {name!r} unavailable ({e}); using itemknn")
        return get_model("itemknn"), "itemknn"


def leaky_click(store: Any, holdout_from: float) -> dict[str, float]:
    """The replaced protocol on the same hold-out: features of every row from an engine
    loaded at the hold-out's start (training rows' counts include their own labels)."""
    from feedwise.feed.engine import FeedEngine
    from feedwise.ranking.engagement import (
        MultiObjectiveModel,
        expected_calibration_error,
        log_loss,
        roc_auc,
    )
    from feedwise.ranking.features import impression_features, label_impressions
    from feedwise.ranking.pointintime import seconds

    ev = store.impression_log()
    imps = label_impressions(ev[ev["kind"] != "ad_impression"])
    cut = pd.Timestamp(int(holdout_from * 1e6), unit="us", tz="UTC").to_pydatetime()
    engine = FeedEngine.from_store(store, None, until=cut)
    X, keep = impression_features(imps, engine.catalog, engine.users)
    lab = imps[keep].reset_index(drop=True)
    t = seconds(lab["ts"])
    tr, te = t < holdout_from, t >= holdout_from
    m = MultiObjectiveModel(["click"]).fit(X[tr], lab[tr])
    y = lab["click"].to_numpy()[te]
    p = m.predict(X[te])["click"]
    rate = float(y.mean())
    return {"rate": rate, "mean_pred": float(p.mean()), "log_loss": log_loss(y, p),
            "log_loss_const": log_loss(y, np.full(len(y), float(lab["click"][tr].mean()))),
            "ece": expected_calibration_error(y, p), "auc": roc_auc(y, p)}


def run_seed(seed: int, users: int, days: int, model_name: str) -> dict[str, Any]:
    from feedwise.cli.feed import point_in_time_engagement
    from feedwise.datasets import synthetic_social
    from feedwise.store import EventStore

    t0 = time.perf_counter()
    world = synthetic_social(n_users=users, n_days=days, seed=seed)
    rec, used = recommender(model_name)
    with EventStore(":memory:") as store:
        world.load_into(store)
        t1 = time.perf_counter()
        _, report, res = point_in_time_engagement(
            store, rec, progress=lambda m: print(f"  seed {seed}: {m}", flush=True))
        t2 = time.perf_counter()
        leaky = leaky_click(store, res.parts["holdout_from"])
    rows = report.to_dict("records")
    for r in rows:
        r["checked"] = r["positives"] >= MIN_POSITIVES
        r["beats_constant"] = bool(r["log_loss"] < r["log_loss_const"])
        r["mean_over_rate"] = r["mean_pred"] / r["rate"] if r["rate"] > 0 else float("nan")
        r["mean_within_10pct"] = bool(abs(r["mean_over_rate"] - 1) <= 0.10)
        # the hold-out rate's own sampling noise (normal approximation, 95%)
        half = 1.96 * np.sqrt(r["rate"] * (1 - r["rate"]) / max(r["n_test"], 1))
        r["rate_ci95"] = [r["rate"] - half, r["rate"] + half]
        r["mean_in_rate_ci95"] = bool(abs(r["mean_pred"] - r["rate"]) <= half)
        r["ece_ok"] = bool(r["ece"] <= 0.2 * r["rate"])
        r["ece_quantile_ok"] = bool(r["ece_quantile"] <= 0.2 * r["rate"])
    by = {r["objective"]: r for r in rows}
    checked = [r for r in rows if r["checked"]]
    verdict = {
        "every_objective_beats_constant": all(r["beats_constant"] for r in checked),
        "click_mean_within_10pct": by["click"]["mean_within_10pct"],
        "click_ece_le_0.2_rate": by["click"]["ece_ok"],
        "click_auc_ge_0.75": bool(by["click"]["auc"] >= 0.75),
        "every_objective_mean_within_10pct": all(r["mean_within_10pct"] for r in checked),
        "every_objective_ece_le_0.2_rate": all(r["ece_ok"] for r in checked),
        "click_ece_quantile_le_0.2_rate": by["click"]["ece_quantile_ok"]}
    return {"seed": seed, "users": users, "days": days, "model": used,
            "impressions": int(res.parts["n_train"] + res.parts["n_validation"]
                               + res.parts["n_holdout"]),
            "parts": res.parts, "settings": res.settings, "objectives": rows,
            "replaced_protocol_click": leaky, "verdict": verdict,
            "seconds": {"world": round(t1 - t0, 1), "train": round(t2 - t1, 1)}}


def show(r: dict[str, Any]) -> None:
    p = r["parts"]
    print(f"\nseed {r['seed']}: {r['users']} users, {r['days']} days, recommender "
          f"{r['model']} ({p['rec_folds']} folds); rows train {p['n_train']:,}, validation "
          f"{p['n_validation']:,}, hold-out {p['n_holdout']:,} ({r['seconds']['train']} s)")
    df = pd.DataFrame(r["objectives"])
    df["calibration"] = [r["settings"][o]["calibration"] for o in df["objective"]]
    df["in_ci95"] = df["mean_in_rate_ci95"].map({True: "yes", False: "no"})
    cols = ["objective", "positives", "rate", "base_rate", "mean_pred", "mean_over_rate",
            "in_ci95", "log_loss", "log_loss_const", "ece", "ece_over_rate", "ece_quantile",
            "auc", "calibration"]
    fmt = {c: "{:.5f}".format for c in ("rate", "base_rate", "mean_pred", "ece",
                                        "ece_quantile")}
    fmt.update({c: "{:.4f}".format for c in ("log_loss", "log_loss_const")})
    fmt.update({c: "{:.3f}".format for c in ("mean_over_rate", "ece_over_rate", "auc")})
    print(df[cols].to_string(index=False, formatters=fmt))
    print("in_ci95: the mean prediction lies inside the 95% sampling interval of the "
          "hold-out rate; ece: ten equal-width bins (the target's), ece_quantile: ten "
          "equal-count bins")
    lk = r["replaced_protocol_click"]
    print(f"replaced protocol (leaky features), click: log-loss {lk['log_loss']:.4f} vs "
          f"constant {lk['log_loss_const']:.4f}, mean {lk['mean_pred']:.4f} vs rate "
          f"{lk['rate']:.4f}, ECE {lk['ece']:.4f}, AUC {lk['auc']:.4f}")
    print("targets (every_*: objectives with >= 200 positives): "
          + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in r["verdict"].items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="5,6,7",
                    help="World seeds, comma-separated (1-4 were development worlds).")
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--model", default="auto",
                    help="Recommender whose score is a feature ('none': no score).")
    ap.add_argument("--out", default=str(RESULTS / "engagement.json"))
    a = ap.parse_args()
    results = []
    for s in (int(x) for x in a.seeds.split(",")):
        r = run_seed(s, a.users, a.days, a.model)
        show(r)
        results.append(r)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "engagement", "python": platform.python_version(),
        "targets": {"min_positives": MIN_POSITIVES, "mean_within": 0.10,
                    "ece_over_rate": 0.2, "click_auc": 0.75},
        "runs": results,
        "all_pass": all(all(r["verdict"].values()) for r in results)}, indent=1,
        default=float))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
