"""Social listening benchmark: sentiment quality and speed (issue 22), plus the world checks.

Rows (printed as a table, written to benchmarks/results/listening.json):

- TweetEval sentiment (../shared/data/tweeteval-sentiment, 2,000 tweets, 3 classes), metric
  macro-averaged recall: the default analyser (target >= 0.60; VADER alone, measured in the
  same run, is printed beside it), and the trainable analyser by stratified 5-fold cross
  validation on these 2,000 (target >= 0.62; the classifier's default C, nothing tuned on
  TweetEval).
- Chinese reviews (../shared/data/chinese-reviews), accuracy on waimai_10k.csv: the default
  analyser (target >= 0.80; positive when P(positive) > P(negative)), and the trainable
  analyser trained on online_shopping_10_cats.csv (target >= 0.88; character 1-3-grams, as
  ``features="auto"`` picks for Chinese, blended with the default analyser). Its C is
  chosen on a stratified 20% validation split of online_shopping only; waimai is touched
  once, by the final model. Alternatives were compared leave-category-out on
  online_shopping (categories 水果, 酒店, 蒙牛, 计算机 held out in turn, as a proxy for a new
  domain; waimai not scored): char n-gram LR C=10 0.8581 / C=1 0.8543, NB-SVM 0.8586-0.8587,
  char + segmenter word 1-2-grams 0.8590, and blended with snownlp 0.8755 (blend weights
  fitted on a random split) vs 0.8753 (fitted on held-out categories): none beat the
  existing settings by more than noise, so they stay. The default analyser's negation rule
  is the one change that won there (see feedwise.text.sentiment's module doc).
- Speed of the default analyser on one core (English tweets; Chinese reviews beside it):
  comments/s and the overhead ratio against bare calls of the underlying packages (VADER
  and AFINN) on the same texts, side by side in the same run, the median of 3 repetitions
  (targets >= 2,000/s, ratio <= 1.3); the ratio against bare VADER alone is printed beside.
- The LISTENING helper's synthetic-world checks (alerts, text features), when
  benchmarks/_listening_world.py exists (see HOOK below).

Run: ``nice -n 10 .venv/bin/python benchmarks/listening.py`` (``--quick`` subsamples the
Chinese training set for a fast smoke run; its figures are not the acceptance figures;
``--skip world`` leaves out the slow synthetic-world checks).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # one core

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT / ".." / "shared" / "data"
LABELS = ("negative", "neutral", "positive")


def macro_recall(truth, pred) -> float:
    truth, pred = np.asarray(truth, dtype=object), np.asarray(pred, dtype=object)
    return float(np.mean([(pred[truth == c] == c).mean() for c in sorted(set(truth))]))


def tweeteval(data: Path) -> tuple[list[str], list[str]]:
    d = data / "tweeteval-sentiment"
    labels = [LABELS[int(x)] for x in (d / "val_labels.txt").read_text().split()]
    texts = (d / "val_text.txt").read_text(encoding="utf-8").split("\n")[:len(labels)]
    return texts, labels


def chinese(data: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    d = data / "chinese-reviews"
    shop = pd.read_csv(d / "online_shopping_10_cats.csv", encoding="utf-8-sig")
    waimai = pd.read_csv(d / "waimai_10k.csv", encoding="utf-8-sig")
    shop = shop.dropna(subset=["review"])
    waimai = waimai.dropna(subset=["review"])
    return shop, waimai


def binary_pred(df: pd.DataFrame) -> np.ndarray:
    """1 where P(positive) > P(negative) (unscored rows count as wrong: -1)."""
    ok = df["label"].notna().to_numpy()
    pos = (df["positive"].to_numpy() > df["negative"].to_numpy()).astype(int)
    return np.where(ok, pos, -1)


def bench_default_tweeteval(texts, labels) -> list[dict]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from feedwise.text.sentiment import default_analyser

    out = default_analyser().analyse(texts)
    pred = out["label"].fillna("neutral").to_numpy()
    sia = SentimentIntensityAnalyzer()
    c = np.array([sia.polarity_scores(t)["compound"] for t in texts])
    vader = np.where(c >= 0.05, "positive", np.where(c <= -0.05, "negative", "neutral"))
    return [
        {"check": "TweetEval default analyser, macro recall", "value": macro_recall(labels, pred),
         "target": ">= 0.60", "holds": macro_recall(labels, pred) >= 0.60,
         "per_class_recall": {k: float((pred[np.array(labels) == k] == k).mean())
                              for k in LABELS}},
        {"check": "TweetEval bare VADER (+-0.05), macro recall (reference)",
         "value": macro_recall(labels, vader), "target": "", "holds": None},
    ]


def bench_trained_tweeteval(texts, labels, folds: int = 5) -> list[dict]:
    from sklearn.model_selection import StratifiedKFold

    from feedwise.text.sentiment import TrainedAnalyser

    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    y = np.array(labels, dtype=object)
    scores = []
    for tr, te in skf.split(np.zeros(len(y)), y):
        m = TrainedAnalyser().fit([texts[i] for i in tr], y[tr].tolist())
        pred = m.analyse([texts[i] for i in te])["label"].fillna("neutral").to_numpy()
        scores.append(macro_recall(y[te], pred))
    v = float(np.mean(scores))
    return [{"check": f"TweetEval trainable, {folds}-fold CV macro recall", "value": v,
             "target": ">= 0.62", "holds": v >= 0.62,
             "folds": [round(s, 4) for s in scores], "std": float(np.std(scores))}]


def bench_chinese(shop: pd.DataFrame, waimai: pd.DataFrame, grid: list[float], quick: bool
                  ) -> list[dict]:
    from sklearn.model_selection import train_test_split

    from feedwise.text.sentiment import TrainedAnalyser, default_analyser

    truth = waimai["label"].to_numpy().astype(int)
    acc_default = float((binary_pred(default_analyser().analyse(waimai["review"])) == truth)
                        .mean())
    rows = [{"check": "Chinese default analyser, waimai accuracy", "value": acc_default,
             "target": ">= 0.80", "holds": acc_default >= 0.80}]
    if quick:
        shop = shop.sample(8_000, random_state=0)
    tr, va = train_test_split(shop, test_size=0.2, random_state=0, stratify=shop["label"])
    val = {}
    for C in grid:
        m = TrainedAnalyser(C=C).fit(tr["review"].tolist(), tr["label"].tolist())
        p = binary_pred(m.analyse(va["review"].tolist()))
        val[C] = float((p == va["label"].to_numpy().astype(int)).mean())
        print(f"  online_shopping validation, C={C}: accuracy {val[C]:.4f}", flush=True)
    best = max(val, key=lambda k: val[k])
    t0 = time.perf_counter()
    m = TrainedAnalyser(C=best).fit(shop["review"].tolist(), shop["label"].tolist())
    fit_s = time.perf_counter() - t0
    acc = float((binary_pred(m.analyse(waimai["review"].tolist())) == truth).mean())
    rows.append({"check": "Chinese trainable shopping -> waimai, accuracy", "value": acc,
                 "target": ">= 0.88", "holds": acc >= 0.88, "C": best,
                 "validation_accuracy": val, "fit_seconds": fit_s, "n_train": len(shop)})
    return rows


def _best_rate(fn, n: int, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def bench_speed(texts: list[str], zh_texts: list[str], reps: int = 3) -> list[dict]:
    from snownlp import SnowNLP
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from feedwise.text.sentiment import DefaultAnalyser

    ana = DefaultAnalyser()
    ana.analyse(zh_texts[:5])  # load the Chinese model outside the timing
    sia = SentimentIntensityAnalyzer()
    batch = texts * 3
    if ana.english == "vader+afinn":  # the underlying packages: both, called bare
        from afinn import Afinn

        afn = Afinn()

        def bare_call() -> list:
            return [(sia.polarity_scores(t), afn.score_with_wordlist(t)) for t in batch]
    else:
        def bare_call() -> list:
            return [sia.polarity_scores(t) for t in batch]
    # side by side: each repetition times the bare package and then the analyser on the
    # same texts; the ratio of each repetition, median of `reps` (a loaded machine slows
    # both alike within a repetition more than across them)
    ana_vader = DefaultAnalyser(english="vader")
    ratios, bares, ourss, vader_only, own_vader = [], [], [], [], []
    for _ in range(reps):
        b = _best_rate(bare_call, len(batch), repeat=1)
        o = _best_rate(lambda: ana.analyse(batch), len(batch), repeat=1)
        v = _best_rate(lambda: [sia.polarity_scores(t) for t in batch], len(batch), repeat=1)
        vader_only.append(v / o)
        ov = _best_rate(lambda: ana_vader.analyse(batch), len(batch), repeat=1)
        own_vader.append(v / ov)
        bares.append(b)
        ourss.append(o)
        ratios.append(b / o)
    ratio = float(np.median(ratios))
    bare, ours = float(np.median(bares)), float(np.median(ourss))
    zh = zh_texts[:300]
    bare_zh = _best_rate(lambda: [SnowNLP(t).sentiments for t in zh], len(zh), repeat=1)
    ours_zh = _best_rate(lambda: ana.analyse(zh_texts), len(zh_texts))
    return [
        {"check": "speed, default analyser on English tweets (comments/s, one core)",
         "value": ours, "target": ">= 2000", "holds": ours >= 2000},
        {"check": f"overhead vs bare {ana.english} on the same tweets (median of {reps})",
         "value": ratio, "target": "<= 1.3", "holds": ratio <= 1.3, "bare_per_s": bare,
         "ratios": [round(r, 4) for r in ratios]},
        {"check": "  the same against bare vaderSentiment alone (reference)",
         "value": float(np.median(vader_only)), "target": "", "holds": None,
         "ratios": [round(r, 4) for r in vader_only]},
        {"check": "  english='vader' analyser against bare vaderSentiment (reference)",
         "value": float(np.median(own_vader)), "target": "", "holds": None,
         "ratios": [round(r, 4) for r in own_vader]},
        {"check": "speed, default analyser on Chinese reviews (comments/s)", "value": ours_zh,
         "target": "", "holds": None, "bare_snownlp_per_s": bare_zh,
         "ratio_vs_bare_snownlp": bare_zh / ours_zh},
    ]


def world_rows() -> list[dict]:
    # HOOK (LISTENING helper): benchmarks/_listening_world.py defines run() -> rows, each a
    # dict with at least "check", "value", "target", "holds" (extra keys go into the JSON).
    try:
        from _listening_world import run as run_world
    except ImportError:
        return [{"check": "synthetic world checks (benchmarks/_listening_world.py)",
                 "value": None, "target": "", "holds": None, "note": "not present"}]
    got = run_world()
    return [got] if isinstance(got, dict) else list(got)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=DATA)
    ap.add_argument("--grid", type=float, nargs="+", default=[1.0, 10.0],
                    help="C values tried for the Chinese trainable analyser (validation on "
                         "online_shopping)")
    ap.add_argument("--quick", action="store_true", help="subsample the Chinese training set")
    ap.add_argument("--skip", nargs="*", default=[],
                    choices=["tweeteval", "trained", "chinese", "speed", "world"])
    ap.add_argument("--out", default=str(RESULTS / "listening.json"))
    a = ap.parse_args()

    texts, labels = tweeteval(a.data_dir)
    shop, waimai = chinese(a.data_dir)
    rows: list[dict] = []
    steps = [("tweeteval", lambda: bench_default_tweeteval(texts, labels)),
             ("trained", lambda: bench_trained_tweeteval(texts, labels)),
             ("chinese", lambda: bench_chinese(shop, waimai, a.grid, a.quick)),
             ("speed", lambda: bench_speed(texts, waimai["review"].head(2000).tolist())),
             ("world", world_rows)]
    for name, step in steps:
        if name in a.skip:
            continue
        t0 = time.perf_counter()
        print(f"[{name}] ...", flush=True)
        got = step()
        print(f"[{name}] {time.perf_counter() - t0:.1f}s", flush=True)
        rows.extend(got)

    print(f"\n{'check':<68}{'value':>10}  {'target':<9} holds")
    for r in rows:
        v = r.get("value")
        vs = f"{v:>10.4f}" if isinstance(v, float) else f"{'' if v is None else v!s:>10}"
        h = {True: "yes", False: "NO", None: ""}.get(r.get("holds"), str(r.get("holds")))
        print(f"{r['check']:<68}{vs}  {r.get('target', ''):<9} {h}")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "quick": a.quick, "machine": platform.platform(),
                               "cpus": os.cpu_count()}, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
