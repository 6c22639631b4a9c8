"""Feed quality: replay evaluation of the default model and the FeedEngine on the synthetic
social world (issue 18).

What runs, in one process:

* **world** — ``synthetic_social`` at the demo's size (``--users`` 2000, ``--days`` 14,
  ``--seed``) loaded into an in-memory store.
* **validation** — a cut at the ``1 - 2 x test_fraction`` quantile of event times, requests up
  to the test cut: the half-life of the time-decayed popularity baseline is chosen there
  (every baseline tuned alike where it has a knob), nothing else is.
* **test** — the cut at the ``1 - test_fraction`` quantile; every policy fitted once on the
  events before it and replayed on the logged feed requests after it
  (:mod:`feedwise.evidence.replay_eval`: model frozen at the cut, availability at request
  time): open retrieval NDCG@10 / recall@50 and impression AUC / MRR / nDCG@5 / nDCG@10.
* **ratios** — default vs the best baseline and FeedEngine vs the best baseline (targets
  >= 1.2x on open-retrieval NDCG@10 and on impression AUC), default vs ItemKNN (>= 10x on
  open-retrieval NDCG@10).

Prints a table and writes benchmarks/results/feed_quality.json.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/feed_quality.py
    .venv/bin/python benchmarks/feed_quality.py --users 600 --days 10 --max-requests 500
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import pandas as pd

from feedwise.datasets import synthetic_social
from feedwise.evidence import replay_eval
from feedwise.models.base import Recommender
from feedwise.store import EventStore

RESULTS = Path(__file__).resolve().parent / "results"
HALF_LIVES = (0.25, 1.0, 3.0)  # days: the popularity baseline's grid (validation)


def default_model() -> str:
    """The default model's name: ``auto`` once it is registered (else ``fresh``, else
    ``hybrid``, the default before issue 18)."""
    for name in ("auto", "fresh", "hybrid"):
        if name in Recommender.registry:
            return name
    return "hybrid"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-fraction", type=float, default=0.2)
    ap.add_argument("--max-requests", type=int, default=2000)
    ap.add_argument("--out", default=str(RESULTS / "feed_quality.json"))
    a = ap.parse_args()
    t0 = time.perf_counter()
    world = synthetic_social(n_users=a.users, n_days=a.days, seed=a.seed)
    store = EventStore(":memory:")
    world.load_into(store)
    ts = pd.to_datetime(store.events()["ts"], utc=True)
    cut_test = ts.quantile(1 - a.test_fraction).to_pydatetime()
    cut_val = ts.quantile(1 - 2 * a.test_fraction).to_pydatetime()
    default = default_model()
    print(f"world: {world!r}; default model: {default}; validation cut {cut_val}, "
          f"test cut {cut_test}")

    # validation (inside the training part): the popularity baseline's half-life
    val = {}
    for hl in HALF_LIVES:
        model = replay_eval.fit_model("popularity", store, cut_val, store.posts(),
                                      {"half_life_days": hl})
        res = _val_score(store, model, cut_val, cut_test, a)
        val[hl] = res
        print(f"validation: popularity half-life {hl} d -> open NDCG@10 "
              f"{res['open_ndcg@10']:.4f}, AUC {res['auc']:.4f}")
    best_hl = max(val, key=lambda h: (val[h]["open_ndcg@10"], val[h]["auc"]))
    specs = replay_eval.baseline_specs()
    specs["popularity (decayed)"] = ("popularity", {"half_life_days": best_hl})

    # test: looked at once
    fitted = {label: replay_eval.fit_model(name, store, cut_test, store.posts(), params)
              for label, (name, params) in specs.items()}
    res = replay_eval.replay_evaluate(store, models=[default], cut=cut_test, fitted=fitted,
                                      engine=True, engine_model=default,
                                      max_requests=a.max_requests, seed=a.seed,
                                      progress=None)
    table = res.table
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(4).to_string(index=False))
    base = list(replay_eval.BASELINES)
    out_ratios = {
        "default vs best baseline": replay_eval.ratios(table, default, base),
        "feed engine vs best baseline": replay_eval.ratios(table, "feed engine", base),
        "default vs itemknn": replay_eval.ratios(table, default, ["itemknn"],
                                                 ("open_ndcg@10",)),
    }
    for what, r in out_ratios.items():
        for mt, v in r.items():
            print(f"{what} ({v['best_baseline']}) on {mt}: {v['value']:.4f} / "
                  f"{v['baseline_value']:.4f} = {v['ratio']:.2f}x")
    chosen = getattr(res, "fitted", {}).get(default)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "feed_quality", "world": repr(world),
        "params": vars(a), "default_model": default,
        "auto_choice": getattr(chosen, "choice_", None),
        "auto_reason": getattr(chosen, "reason_", None),
        "validation": {"popularity_half_life_days": {str(k): v for k, v in val.items()},
                       "chosen_half_life_days": best_hl},
        "facts": res.facts, "table": table.to_dict(orient="records"),
        "ratios": out_ratios, "targets": {"vs best baseline": 1.2, "vs itemknn": 10.0},
        "seconds": round(time.perf_counter() - t0, 1), "python": platform.python_version(),
    }, indent=2, default=str))
    print(f"wrote {out} ({time.perf_counter() - t0:.0f} s)")


def _val_score(store: EventStore, model: object, cut_val: object, cut_test: object,
               a: argparse.Namespace) -> dict[str, float]:
    r = replay_eval.replay_evaluate(store, models=["popularity"], cut=cut_val,
                                    until=cut_test, baselines=False, engine=False,
                                    fitted={"popularity": model},
                                    max_requests=a.max_requests, seed=a.seed)
    row = r.table.set_index("policy").loc["popularity"]
    return {"open_ndcg@10": float(row["open_ndcg@10"]), "auc": float(row["auc"])}


if __name__ == "__main__":
    main()
