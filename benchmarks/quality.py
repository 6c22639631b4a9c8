"""Top-k quality of every feedwise recommender against the libraries people pick instead.

Protocol (Microsoft Recommenders' MovieLens table): per-user random 75/25 split with
``feedwise.evaluation.random_split(data, 0.75, seed=42)``, every rating / play counts as a
positive, k = 10, seen items excluded, metrics from ``feedwise.evaluation`` (the same code
for every model). Run in one process on the same split:

* feedwise: Popularity, ItemKNN, ALS, BPR, EASE, TimeEASE, NormEASE, GF-CF, RP3beta, Content,
  Social (where the dataset has a social graph) and the default Hybrid (which calibrates
  its blend on validation splits of the training part at fit; also shown without that),
  plus ALS / BPR /
  EASE / TimeEASE / NormEASE tuned by ``feedwise.selection.tune`` (its defaults: coordinate
  search from the model's defaults, mean over three validation splits that each keep 90 %
  of every user's training items for fitting) on the training part only (never the test
  part);
* peers: ``implicit``'s ALS and BPR with their default settings and tuned the same way
  (same search, same trial budget, same validation splits), and LightFM (WARP) if it is
  installed.

Peers are fitted on the raw weights as their docs show (implicit: confidence = alpha x
weight); recommend-all for peers uses the library's own top-k.

Also measured: feedwise ALS fit time over bare ``implicit`` ALS on the same confidence
matrix and settings (median of repeats), and with ``--scale`` recommend-all for a synthetic
100k users x 20k items factor model, feedwise vs implicit's own batch ``recommend``.

    .venv/bin/python benchmarks/quality.py                      # all three datasets
    .venv/bin/python benchmarks/quality.py --datasets movielens-100k --tune-trials 4
    .venv/bin/python benchmarks/quality.py --scale-only         # the 100k x 20k timing

Writes benchmarks/results/quality.json (``--scale-only``: quality_scale.json, so a timing
run does not overwrite the last full run; ``--out`` chooses).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from feedwise.datasets import load  # noqa: E402
from feedwise.evaluation import evaluate, random_split  # noqa: E402
from feedwise.interactions import Interactions  # noqa: E402
from feedwise.itemlist import ItemList  # noqa: E402
from feedwise.models import (  # noqa: E402
    ALS,
    BPR,
    EASE,
    GFCF,
    Content,
    Hybrid,
    ItemKNN,
    NormEASE,
    Popularity,
    Recommender,
    RP3beta,
    Social,
    TimeEASE,
)
from feedwise.models.factorization import blas_single_thread  # noqa: E402
from feedwise.selection import tune  # noqa: E402

DATASETS = ("movielens-100k", "movielens-latest-small", "lastfm-hetrec2011")
METRICS = ("map", "ndcg", "precision", "recall")
PUBLISHED_ML100K = {"BiVAE": 0.475, "BPR": 0.442, "LightGCN": 0.420, "SAR": 0.382}


# ---------------------------------------------------------------------- peers
class _Peer(Recommender):
    """A peer library behind the Recommender interface (so tuning and metrics are shared);
    ``recommend`` for test users is the library's own top-k."""

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        return self._dense(rows)

    def _native_topk(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        s = self._dense(rows)
        s[self.seen_[rows].nonzero()] = -np.inf
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        sc = np.take_along_axis(s, top, axis=1)
        order = np.argsort(-sc, axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1), np.take_along_axis(sc, order, axis=1)

    def recommend(self, user_ids, n=10, **kwargs):  # noqa: D102
        rows = np.array([self.user_index_.get(str(u), -1) for u in user_ids])
        if kwargs.get("history") or (rows < 0).any() or kwargs.get("candidates") \
                or kwargs.get("exclude"):
            return super().recommend(user_ids, n, **kwargs)
        top, sc = self._native_topk(rows, min(n, self.n_items))
        out = []
        for t, s in zip(top, sc, strict=True):
            ok = np.isfinite(s) & (t >= 0)
            out.append(ItemList(self.item_ids_[t[ok]], s[ok], ["peer"] * int(ok.sum())))
        return out


class ImplicitALS(_Peer):
    name = "implicit-als"

    def __init__(self, factors: int = 100, regularization: float = 0.01, alpha: float = 1.0,
                 iterations: int = 15, random_state: int | None = 42) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state

    def _fit(self, data: Interactions) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        with blas_single_thread():
            self._m = AlternatingLeastSquares(
                factors=self.factors, regularization=self.regularization, alpha=self.alpha,
                iterations=self.iterations, random_state=self.random_state)
            self._m.fit(data.matrix, show_progress=False)

    def _dense(self, rows: np.ndarray) -> np.ndarray:
        return self._m.user_factors[rows] @ self._m.item_factors.T

    def _native_topk(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        ids, scores = self._m.recommend(rows, self.seen_[rows], N=k,
                                        filter_already_liked_items=True)
        return ids.astype(np.int64), np.where(scores > -1e38, scores, -np.inf)


class ImplicitBPR(ImplicitALS):
    name = "implicit-bpr"

    def __init__(self, factors: int = 100, learning_rate: float = 0.01,
                 regularization: float = 0.01, iterations: int = 100,
                 random_state: int | None = 42) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.random_state = random_state

    def _fit(self, data: Interactions) -> None:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        with blas_single_thread():
            self._m = BayesianPersonalizedRanking(
                factors=self.factors, learning_rate=self.learning_rate,
                regularization=self.regularization, iterations=self.iterations,
                random_state=self.random_state)
            self._m.fit(data.matrix, show_progress=False)


class LightFMWARP(_Peer):
    name = "lightfm-warp"

    def __init__(self, no_components: int = 10, learning_rate: float = 0.05,
                 epochs: int = 30, random_state: int = 42) -> None:
        self.no_components = no_components
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.random_state = random_state

    def _fit(self, data: Interactions) -> None:
        from lightfm import LightFM

        x = sp.coo_matrix(data.matrix > 0, dtype=np.float32)
        self._m = LightFM(no_components=self.no_components, learning_rate=self.learning_rate,
                          loss="warp", random_state=self.random_state)
        self._m.fit(x, epochs=self.epochs, num_threads=os.cpu_count() or 1)
        self._ub, self._ue = self._m.get_user_representations()
        self._ib, self._ie = self._m.get_item_representations()

    def _dense(self, rows: np.ndarray) -> np.ndarray:
        return (self._ue[rows] @ self._ie.T + self._ub[rows, None] + self._ib[None, :]
                ).astype(np.float32)


def lightfm_available() -> str | None:
    try:
        import lightfm  # noqa: F401
    except ImportError as e:  # the PyPI sdist fails to build on Python 3.11 (see --help)
        return f"not installed ({e})"
    return None


# ---------------------------------------------------------------------- runs
PEER_SPACES: dict[str, dict[str, list[Any]]] = {
    "implicit-als": {"factors": [16, 32, 64, 128], "regularization": [0.01, 0.1, 1.0, 10.0],
                     "alpha": [0.01, 0.1, 1.0, 5.0, 20.0, 40.0]},
    "implicit-bpr": {"factors": [32, 64, 128], "learning_rate": [0.005, 0.01, 0.03, 0.05],
                     "regularization": [0.0001, 0.001, 0.01], "iterations": [50, 100, 200]},
}


def run_model(label: str, family: str, model: Recommender, split, fit_kwargs: dict,
              tuned: dict | None = None) -> dict:
    t0 = time.perf_counter()
    model.fit(split.train, **fit_kwargs)
    fit_s = time.perf_counter() - t0
    table = evaluate(model, split, 10, fit=False, metrics=METRICS, beyond=False)
    v = dict(zip(table["metric"], table["value"], strict=True))
    row = {"model": label, "family": family, **{m: float(v[m]) for m in METRICS},
           "fit_s": fit_s, "recommend_s": float(v["recommend_seconds"]),
           "users": int(v["users"]), "params": model.get_params()}
    if tuned is not None:
        row["tuning"] = tuned
    if getattr(model, "calibration_", None) is not None:
        row["calibration"] = model.calibration_.as_dict()
    print(f"  {label:<28} ndcg@10={row['ndcg']:.4f}  map={row['map']:.4f}  "
          f"fit={fit_s:6.2f}s  rec={row['recommend_s']:5.2f}s", flush=True)
    return row


def tuned_model(name: str, split, trials: int, fit_kwargs: dict, space=None,
                fixed: dict | None = None) -> tuple[Recommender, dict]:
    t0 = time.perf_counter()
    res = tune(name, split.train, space=space, fixed=fixed, n_trials=trials, seed=42,
               fit_kwargs=fit_kwargs)
    info = {"best_params": res.best_params, "validation_ndcg": res.best_score,
            "trials": len(res.trials), "search_s": time.perf_counter() - t0}
    return Recommender.registry[name](**res.best_params), info


def run_dataset(name: str, data_dir: Path, trials: int) -> dict:
    ds = load(name, data_dir=data_dir)
    data = ds.interactions()
    split = random_split(data, 0.75, seed=42)
    print(f"\n{name}: {data.n_users} users x {data.n_items} items, {data.nnz} pairs; "
          f"train {split.train.nnz}, test {split.test.nnz}", flush=True)
    # items without any event are left out: evaluate() maps recommended ids through the
    # split's item index, and such items can never be relevant in this protocol anyway
    items = ds.items[ds.items["item_id"].astype(str).isin(set(data.item_ids))]
    edges = ds.edges
    rows = []
    fw = [("popularity", Popularity(), {}), ("itemknn", ItemKNN(), {}), ("als", ALS(), {}),
          ("bpr", BPR(), {}), ("ease", EASE(), {}), ("time-ease", TimeEASE(), {}),
          ("norm-ease", NormEASE(), {}), ("gf-cf", GFCF(), {}), ("rp3beta", RP3beta(), {}),
          ("content", Content(), {"items": items})]
    if edges is not None:
        fw.append(("social", Social(symmetric=True), {"edges": edges}))
    fw.append(("hybrid (default)", Hybrid(), {"items": items, "edges": edges}))
    fw.append(("hybrid (not calibrated)", Hybrid(calibrate=False),
               {"items": items, "edges": edges}))
    for label, model, kw in fw:
        rows.append(run_model(label, "feedwise", model, split, kw))
    for base in ("ease", "time-ease", "norm-ease", "als", "bpr"):
        model, info = tuned_model(base, split, trials, {})
        rows.append(run_model(f"{base} (tuned)", "feedwise", model, split, {}, info))
    rows.append(run_model("implicit ALS (default)", "peer", ImplicitALS(), split, {}))
    rows.append(run_model("implicit BPR (default)", "peer", ImplicitBPR(), split, {}))
    for peer in ("implicit-als", "implicit-bpr"):
        model, info = tuned_model(peer, split, trials, {}, space=PEER_SPACES[peer])
        label = "implicit ALS (tuned)" if peer == "implicit-als" else "implicit BPR (tuned)"
        rows.append(run_model(label, "peer", model, split, {}, info))
    why = lightfm_available()
    if why is None:
        rows.append(run_model("LightFM WARP (10 comp.)", "peer", LightFMWARP(), split, {}))
        rows.append(run_model("LightFM WARP (64 comp.)", "peer",
                              LightFMWARP(no_components=64), split, {}))
    best_fw = max((r for r in rows if r["family"] == "feedwise"), key=lambda r: r["ndcg"])
    peers = [r for r in rows if r["family"] == "peer"]
    best_peer = max(peers, key=lambda r: r["ndcg"])
    hybrid = next(r for r in rows if r["model"] == "hybrid (default)")
    summary = {"best_feedwise": best_fw["model"], "best_feedwise_ndcg": best_fw["ndcg"],
               "best_peer": best_peer["model"], "best_peer_ndcg": best_peer["ndcg"],
               "hybrid_ndcg": hybrid["ndcg"],
               "best_feedwise_over_best_peer": best_fw["ndcg"] / best_peer["ndcg"],
               "hybrid_over_best_peer": hybrid["ndcg"] / best_peer["ndcg"],
               "beats_every_peer": all(best_fw["ndcg"] > p["ndcg"] for p in peers),
               "hybrid_beats_every_peer": all(hybrid["ndcg"] > p["ndcg"] for p in peers)}
    return {"dataset": name, "users": data.n_users, "items": data.n_items, "pairs": data.nnz,
            "lightfm": why or "installed", "rows": rows, "summary": summary,
            "als_overhead": als_overhead(split.train)}


def als_overhead(train: Interactions, repeats: int = 5) -> dict:
    """feedwise ALS fit over bare implicit ALS on the same confidence matrix and settings."""
    from implicit.cpu.als import AlternatingLeastSquares

    from feedwise.models.factorization import confidence

    settings = {"factors": 64, "regularization": 0.05, "iterations": 15}
    conf = confidence(train.matrix, 1.0, "linear")  # what feedwise hands to the kernel
    fw_t, bare_t = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ALS(alpha=1.0, weighting="linear", random_state=42, **settings).fit(train)
        fw_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with blas_single_thread():
            bare = AlternatingLeastSquares(alpha=1.0, random_state=42, **settings)
            bare.fit(conf, show_progress=False)
        bare_t.append(time.perf_counter() - t0)
    fw, b = statistics.median(fw_t), statistics.median(bare_t)
    return {"settings": settings, "repeats": repeats, "feedwise_fit_s": fw,
            "implicit_fit_s": b, "ratio": fw / b}


def scale(n_users: int, n_items: int, factors: int = 64, per_user: int = 20) -> dict:
    """Recommend-all on a synthetic factor model (random factors, ``per_user`` seen items)."""
    from implicit.cpu.als import AlternatingLeastSquares

    rng = np.random.default_rng(42)
    rows = np.repeat(np.arange(n_users), per_user)
    cols = rng.integers(0, n_items, n_users * per_user)
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    m.data[:] = 1.0
    uf = rng.standard_normal((n_users, factors)).astype(np.float32)
    itf = rng.standard_normal((n_items, factors)).astype(np.float32)
    users = np.array([f"u{i}" for i in range(n_users)], dtype=object)
    data = Interactions(m, users, np.array([f"i{i}" for i in range(n_items)], dtype=object))
    model = ALS(factors=factors)
    # fitted state without fitting: the timing is about serving
    model.user_ids_, model.item_ids_ = data.user_ids, data.item_ids
    model.user_index_, model.item_index_ = dict(data.user_index), dict(data.item_index)
    model.seen_, model.negatives_ = data.matrix, sp.csr_matrix(data.shape, dtype=np.float32)
    model.item_labels_ = data.item_ids
    model.popularity_ = np.asarray(m.sum(axis=0), dtype=np.float32).ravel()
    model.user_factors_, model.item_factors_ = uf, itf
    t0 = time.perf_counter()
    recs = model.recommend(list(users), 10)
    fw_s = time.perf_counter() - t0
    bare = AlternatingLeastSquares(factors=factors)
    bare.user_factors, bare.item_factors = uf, itf
    t0 = time.perf_counter()
    ids, _ = bare.recommend(np.arange(n_users), m, N=10, filter_already_liked_items=True)
    imp_s = time.perf_counter() - t0
    agree = float(np.mean([set(r.ids) == {f"i{j}" for j in ids[u]}
                           for u, r in enumerate(recs[:1000])]))
    out = {"users": n_users, "items": n_items, "factors": factors, "feedwise_s": fw_s,
           "implicit_recommend_s": imp_s, "ratio": fw_s / imp_s,
           "same_top10_share": agree, "with_reasons": True}
    print(f"\nrecommend-all {n_users} users x {n_items} items (top-10, seen filtered, with "
          f"reasons): feedwise {fw_s:.1f}s, implicit.recommend {imp_s:.1f}s "
          f"(ratio {fw_s / imp_s:.2f}); same top-10 for {agree:.0%} of users", flush=True)
    return out


def print_table(result: dict) -> None:
    hdr = (f"{'model':<28}{'family':<10}{'MAP':>8}{'NDCG@10':>9}{'P@10':>8}{'R@10':>8}"
           f"{'fit s':>9}{'rec-all s':>10}")
    print(f"\n== {result['dataset']} ({result['users']} users x {result['items']} items) ==")
    print(hdr)
    print("-" * len(hdr))
    for r in sorted(result["rows"], key=lambda r: -r["ndcg"]):
        print(f"{r['model']:<28}{r['family']:<10}{r['map']:8.4f}{r['ndcg']:9.4f}"
              f"{r['precision']:8.4f}{r['recall']:8.4f}{r['fit_s']:9.2f}{r['recommend_s']:10.2f}")
    s, o = result["summary"], result["als_overhead"]
    print(f"best feedwise: {s['best_feedwise']} {s['best_feedwise_ndcg']:.4f} | best peer: "
          f"{s['best_peer']} {s['best_peer_ndcg']:.4f} | ratio "
          f"{s['best_feedwise_over_best_peer']:.3f} | default hybrid / best peer "
          f"{s['hybrid_over_best_peer']:.3f}")
    cal = next(r for r in result["rows"] if r["model"] == "hybrid (default)").get("calibration")
    if cal is not None:
        print(f"default hybrid's calibration ({cal['splits']} validation splits of the training "
              f"part, {cal['seconds']:.0f} s): {cal['metric']} {cal['given']:.4f} -> "
              f"{cal['chosen']:.4f} with " + ", ".join(
                  f"{n} {w:g}" + (f" {p}" if p else "") for n, w, p in cal["components"]))
    print(f"ALS fit overhead: feedwise {o['feedwise_fit_s']:.2f}s vs bare implicit "
          f"{o['implicit_fit_s']:.2f}s (median of {o['repeats']}) -> ratio {o['ratio']:.2f}")
    if result["lightfm"] != "installed":
        print(f"LightFM: {result['lightfm']}")
    if result["dataset"] == "movielens-100k":
        print("published (Microsoft Recommenders, NDCG@10): "
              + ", ".join(f"{k} {v}" for k, v in PUBLISHED_ML100K.items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default=",".join(DATASETS),
                    help="comma-separated: " + ", ".join(DATASETS))
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--tune-trials", type=int, default=16,
                    help="configurations tried per tuned model (feedwise and peers alike)")
    ap.add_argument("--scale", action="store_true",
                    help="also time recommend-all on a synthetic factor model")
    ap.add_argument("--scale-only", action="store_true", help="only the synthetic timing")
    ap.add_argument("--scale-users", type=int, default=100_000)
    ap.add_argument("--scale-items", type=int, default=20_000)
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON path (default benchmarks/results/quality.json, or "
                         "quality_scale.json with --scale-only)")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = ROOT / "benchmarks" / "results" / (
            "quality_scale.json" if args.scale_only else "quality.json")
    out: dict[str, Any] = {"protocol": "per-user random 75/25 split (seed 42), all ratings "
                           "positive, k=10, seen excluded, feedwise.evaluation metrics",
                           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                       "load_avg_at_start": os.getloadavg()},
                           "datasets": []}
    if not args.scale_only:
        for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
            out["datasets"].append(run_dataset(name, args.data_dir, args.tune_trials))
        for res in out["datasets"]:
            print_table(res)
    if args.scale or args.scale_only:
        out["scale"] = scale(args.scale_users, args.scale_items)
    out["machine"]["load_avg_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
