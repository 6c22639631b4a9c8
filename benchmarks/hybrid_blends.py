"""Validation NDCG@10 of candidate Hybrid blends, on splits carved from the training part only.

How the default blend of ``feedwise.models.Hybrid`` is chosen: for each data set the test
protocol's split is made (``random_split(data, 0.75, seed=42)``, as in
``benchmarks/quality.py``) and never looked at; validation splits are carved from its
training part (``random_split(train, 0.75, seed=s)`` for each ``--seeds`` s). On each, ONE
Hybrid holding every candidate component is fitted (with the same side data as the quality
benchmark), each component's scores are normalised the way Hybrid normalises them, and every
blend is scored as the weighted sum, which is what ``Hybrid(components=blend)`` computes
(the check at the end refits the default blend through the public API and compares).

    .venv/bin/python benchmarks/hybrid_blends.py                 # three data sets, seeds 7,8,9
    .venv/bin/python benchmarks/hybrid_blends.py --datasets movielens-100k --seeds 7
    .venv/bin/python benchmarks/hybrid_blends.py --grid   # + the 36-blend weight grid
    .venv/bin/python benchmarks/hybrid_blends.py --fraction 0.9   # denser fit parts

``--grid`` adds every blend of NormEASE (0.75, 1, 1.5, 2) x TimeEASE (0.5, 0.75, 1) x RP3beta
(0.2, 0.4, 0.6) with content and social at 0.15, and prints the one with the best worst-case
gain over the previous weights (TimeEASE 1.0, NormEASE 0.75, RP3beta 0.6): how the default's
weights were picked, before RP3beta weighed interactions by value (so RP3beta plays as it
was then, one per interaction).

Writes benchmarks/results/hybrid_blends.json.
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

from feedwise.datasets import load  # noqa: E402
from feedwise.evaluation import evaluate, random_split  # noqa: E402
from feedwise.evaluation import metrics as M  # noqa: E402
from feedwise.models import Hybrid  # noqa: E402
from feedwise.models.hybrid import (  # noqa: E402
    _SAVED_BEFORE_PARAMS,
    _SAVED_BEFORE_SPECS,
    DEFAULT_COMPONENTS,
)

DATASETS = ("movielens-100k", "movielens-latest-small", "lastfm-hetrec2011")
#: Candidate components: key -> (model name, params).
UNION: dict[str, tuple[str, dict]] = {
    "time-ease": ("time-ease", {}), "ease": ("ease", {}), "norm-ease": ("norm-ease", {}),
    "norm-ease before": ("norm-ease", dict(_SAVED_BEFORE_PARAMS["norm-ease"])),
    "rp3beta": ("rp3beta", {}), "rp3beta before": ("rp3beta", {"value_power": 0.0}),
    "content": ("content", {}),
    "social": ("social", {"symmetric": True}),
    "gf-cf ideal": ("gf-cf", {"linear": 0.0, "ideal": 1.0, "factors": 32}),
    "gf-cf": ("gf-cf", {"ideal": 1.0, "factors": 32}),
}
_SIDE = {"content": 0.15, "social": 0.15}


def _keyed(specs) -> dict[str, float]:
    out = {}
    for name, w, params in specs:
        out[next(k for k, (n, p) in UNION.items() if n == name and p == params)] = w
    return out


#: Components as they were before value weighting (one per interaction, NormEASE's old
#: defaults).
_BEFORE = {"norm-ease": "norm-ease before", "rp3beta": "rp3beta before"}


def _as_before(blend: dict[str, float]) -> dict[str, float]:
    return {_BEFORE.get(k, k): w for k, w in blend.items()}


_DEFAULT = _keyed(DEFAULT_COMPONENTS)
#: The weights before this grid (TimeEASE 1.0, NormEASE 0.75, RP3beta 0.6), with NormEASE
#: as now and RP3beta as it was then: the reference of ``--grid``.
_REFERENCE = {"time-ease": 1.0, "norm-ease": 0.75, "rp3beta before": 0.6, **_SIDE}

BLENDS: dict[str, dict[str, float]] = {
    "EASE 0.25 default (before NormEASE)": _as_before(_keyed(_SAVED_BEFORE_SPECS)),
    "NormEASE 0.5 default (before value weighting)": _as_before(
        {"time-ease": 1.0, "norm-ease": 0.5, "rp3beta": 0.6, **_SIDE}),
    "reference: TimeEASE 1, NormEASE 0.75 (as now), RP3beta 0.6 (as it was)": _REFERENCE,
    "default weights, RP3beta as it was (the grid's pick)": {
        ("rp3beta before" if k == "rp3beta" else k): w for k, w in _DEFAULT.items()},
    "default": _DEFAULT,
    "default, NormEASE 1.5": {**_DEFAULT, "norm-ease": 1.5},
    "default, TimeEASE 1.0": {**_DEFAULT, "time-ease": 1.0},
    "default, RP3beta 0.6": {**_DEFAULT, "rp3beta": 0.6},
    "EASE 0.25 default + gf-cf ideal 0.5": {
        **_as_before(_keyed(_SAVED_BEFORE_SPECS)), "gf-cf ideal": 0.5},
    "best on ML-100k validation before value weighting (GF-CF blend)": {
        "norm-ease before": 1.0, "time-ease": 0.35, "rp3beta before": 0.2, "gf-cf ideal": 1.0,
        "gf-cf": 0.2, "ease": 0.2, **_SIDE},
    **{f"{k} alone": {k: 1.0} for k in UNION},
}


def _ndcg(h: Hybrid, z: dict[str, np.ndarray], weights: dict[str, float], split) -> float:
    test = split.test.matrix
    n_rel = np.diff(test.indptr)
    users = np.flatnonzero(n_rel > 0)
    rows = np.array([h.user_index_[u] for u in split.test.user_ids[users]])
    s = sum(w * z[c][rows] for c, w in weights.items()).astype(np.float64)
    seen = h.seen_[rows].tocoo()
    s[seen.row, seen.col] = -np.inf
    top = np.argpartition(-s, 10, axis=1)[:, :10]
    order = np.argsort(-np.take_along_axis(s, top, 1), axis=1, kind="stable")
    cols = np.array([split.test.item_index.get(str(i), -1) for i in h.item_ids_])
    recs = cols[np.take_along_axis(top, order, 1)]
    return float(M.ndcg(M.hits_matrix(recs, test[users]), n_rel[users]).mean())


def run(name: str, data_dir: Path, seeds: list[int], fraction: float = 0.75) -> dict:
    ds = load(name, data_dir=data_dir)
    data = ds.interactions()
    items = ds.items[ds.items["item_id"].astype(str).isin(set(data.item_ids))]
    side = {"items": items, "edges": ds.edges}
    train = random_split(data, 0.75, seed=42).train  # the test part is never used here
    keys = [k for k in UNION if not (k == "social" and ds.edges is None)]
    scores: dict[str, list[float]] = {b: [] for b in BLENDS}
    check = None
    for s in seeds:
        t0 = time.perf_counter()
        inner = random_split(train, fraction, seed=s)
        h = Hybrid(components=[(UNION[k][0], 1.0, UNION[k][1]) for k in keys])
        h.fit(inner.train, **side)
        rows = np.arange(len(h.user_ids_))
        z = {k: h._normalise(m, m._score_rows(rows)).astype(np.float32)
             for k, m, on in zip(keys, h.models_, h.active_, strict=True) if on}
        for b, w in BLENDS.items():
            present = {c: v for c, v in w.items() if c in z}
            scores[b].append(_ndcg(h, z, present, inner) if present else float("nan"))
        print(f"  {name} seed {s}: {time.perf_counter() - t0:.0f} s", flush=True)
        if check is None:  # the shortcut equals the public API (default blend, first seed)
            t = evaluate(Hybrid(calibrate=False).fit(inner.train, **side), inner, 10, fit=False,
                         metrics=("ndcg",), beyond=False)
            check = {"api": float(t.loc[t["metric"] == "ndcg", "value"].iloc[0]),
                     "shortcut": scores["default"][0]}
    # a blend whose components all need side data the set lacks (social) scores nothing
    return {"seeds": seeds, "fraction": fraction,
            "blends": {b: {"mean": float(np.mean(v)), "per_seed": v}
                       for b, v in scores.items()}, "check": check}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--seeds", default="7,8,9")
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "results" / "hybrid_blends.json")
    ap.add_argument("--grid", action="store_true", help="also score the 36-blend weight grid")
    ap.add_argument("--fraction", type=float, default=0.75,
                    help="share of each user's training items the blends are fitted on "
                         "(feedwise tune uses 0.9)")
    args = ap.parse_args()
    seeds = [int(x) for x in args.seeds.split(",")]
    names = [d for d in args.datasets.split(",") if d]
    if args.grid:
        BLENDS.update({f"grid: NormEASE {a:g}, TimeEASE {b:g}, RP3beta {c:g}":
                       {"norm-ease": a, "time-ease": b, "rp3beta before": c, **_SIDE}
                       for a in (0.75, 1.0, 1.5, 2.0) for b in (0.5, 0.75, 1.0)
                       for c in (0.2, 0.4, 0.6)})
    res = {n: run(n, args.data_dir, seeds, args.fraction) for n in names}
    width = max(map(len, BLENDS))
    print(f"\nvalidation NDCG@10 (mean over seeds {seeds}; splits of the training part only)")
    print(f"{'blend':{width}s} " + " ".join(f"{n[:22]:>22s}" for n in names))
    for b in BLENDS:
        print(f"{b:{width}s} " + " ".join(f"{res[n]['blends'][b]['mean']:22.4f}"
                                          for n in names))
    if args.grid:
        ref = next(b for b in BLENDS if b.startswith("reference:"))

        def worst(b: str) -> float:
            return min(res[n]["blends"][b]["mean"] / res[n]["blends"][ref]["mean"]
                       for n in names)

        pick = max((b for b in BLENDS if b.startswith("grid:")), key=worst)
        print(f"best worst-case gain over {ref!r}: {pick} (x{worst(pick):.4f})")
    for n in names:
        c = res[n]["check"]
        print(f"check {n}: default blend via Hybrid() + evaluate() {c['api']:.4f}, "
              f"via the shortcut {c['shortcut']:.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
