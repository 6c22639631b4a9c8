"""Customer care (issue 24): intent accuracy on BANKING77, auto-reply precision, latency.

What runs (``../shared/data/banking77/train.csv``: 10,003 queries, 77 intents):

1. **accuracy** — 5-fold stratified cross-validation (seed 0). In each fold:
   * the **floor**: a plain word+char TF-IDF logistic regression (``TextClassifier(
     features="tfidf", calibrate=False)``), trained on the training folds;
   * the **candidate**: its settings (features ``tfidf``/``embeddings``/``both``, the
     embedding weight, C) chosen on a validation share (20 %, stratified, seed 0) carved
     from the training folds, then refitted on all of them with temperature calibration;
   * **auto-reply**: the threshold for 97 % precision chosen on the candidate's own
     calibration share (inside the training folds: ``feedwise.care.routing.
     choose_threshold``), then precision and coverage (share auto-answered) on the held-out
     fold;
   * **10 per intent**: 10 examples per intent sampled (seed 0) from the training folds;
     settings chosen on 2 of the 10 per intent held out, refitted on all 10; accuracy on the
     same held-out fold. The floor again for comparison.
   * **tuned** (not in the default phases; ``--phases tuned``): the all-data candidate with
     the encoder's top layers fine-tuned on the training folds (``ALL_TUNED``/``--all-tuned``;
     the frozen lower layers' outputs computed once, ``--states-cache``), the floor again in
     the same run, auto-reply precision and coverage of that model. Minutes per fold on a
     quiet CPU, far more on a loaded one (docs/care.md).
2. **latency** — one message classified and answered in process
   (``CareAssistant.handle``: checks, language, default classes, intent, sentiment, BM25
   answers, routing) over held-out queries: p50/p99 ms, for the TF-IDF model and for the
   candidate; the bare classifier's messages/s beside it.
3. **http** — ``POST /v1/messages`` on ``feedwise serve`` in a child process (loopback,
   keep-alive connections, ``--clients`` concurrent): messages/s, p50/p99, errors; every
   message is stored, so the writer is in the loop.

4. **int8** (not in the default phases; ``--phases int8``) — whether an int8 encoder may
   serve the all-data recipe, on validation carved from fold 1's training part only: fp32
   against int8 graphs (ONNX Runtime dynamic quantization), the head as fitted and refitted.

MiniLM embeddings of every text are computed once per run (cached per text in memory;
``--emb-cache FILE.npy`` keeps them across runs, outside the repository). Run it niced on a
shared machine. Results go to ``benchmarks/results/care.json``.

    nice -n 10 .venv/bin/python benchmarks/care.py                         # everything
    nice -n 10 .venv/bin/python benchmarks/care.py --phases latency,http   # speed only
    nice -n 10 .venv/bin/python benchmarks/care.py --no-embeddings         # TF-IDF only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from feedwise.care.answers import AnswerIndex  # noqa: E402
from feedwise.care.assistant import CareAssistant  # noqa: E402
from feedwise.care.intents import RECIPES, load_intents, train_intents  # noqa: E402
from feedwise.care.routing import choose_threshold  # noqa: E402
from feedwise.text import embeddings  # noqa: E402
from feedwise.text.classifier import (  # noqa: E402
    TextClassifier,
    _char_vectorizer,
    _cosine,
    _prototypes,
    _word_vectorizer,
)
from feedwise.text.finetune import TunedEncoder  # noqa: E402

DATA = Path(__file__).parents[1] / ".." / "shared" / "data" / "banking77" / "train.csv"
RESULTS = ROOT / "benchmarks" / "results"
TARGETS = {"accuracy": 0.93, "accuracy_10shot": 0.85, "auto_precision": 0.97,
           "latency_p99_ms": 20.0, "http_messages_per_s": 200.0}
#: The 10-per-intent candidate: the MiniLM encoder's top 2 layers fine-tuned contrastively
#: on pairs of the 10 examples (SetFit-style, ``feedwise.text.finetune``), the label names as
#: one more example each, a logistic regression on the tuned embeddings. Chosen once, before
#: any held-out fold was scored with it, on validation carved from fold 1's training part
#: (10 per intent sampled from it, scored on 1,000 other training rows; see docs/care.md).
FEW_TUNED = RECIPES["few-shot"]
#: The all-data candidate with a tuned encoder (phase ``tuned``): the MiniLM encoder's top
#: layers fine-tuned contrastively on same-intent pairs drawn from all the training folds
#: (``encoder_batch`` distinct intents a step), then the word+char TF-IDF and the tuned
#: embeddings in one logistic regression. The frozen lower layers' outputs are computed
#: once for the whole data set (they do not depend on the tuning), so a fold costs the steps
#: and one pass of the top layers. Chosen on validation carved from fold 1's training part:
#: 0.9332 there against the frozen-MiniLM ``both`` model's 0.9325 on the same 1,601 rows (one
#: row more, within the noise; the other settings tried scored 0.923-0.930; docs/care.md).
#: Held out, once: 0.9308 over the five folds (the frozen ``both`` candidate: 0.9272).
ALL_TUNED = RECIPES["all-data"]
#: The precision the auto-reply threshold is chosen for on the calibration share: a margin
#: above the 0.97 acceptance target, so that every held-out fold (not only their mean)
#: stays above it.
TARGET_PRECISION = 0.98


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- embeddings cache
class EmbeddingCache:
    """MiniLM embeddings of the data set's texts, computed once (``rows(idx)``)."""

    def __init__(self, texts: list[str], path: Path | None) -> None:
        self.texts = texts
        if path is not None and path.exists():
            e = np.load(path)
            if e.shape == (len(texts), embeddings.DIMENSION):
                self.E = e
                log(f"embeddings from {path}")
                return
        t = time.perf_counter()
        log(f"embedding {len(texts):,} texts with MiniLM ...")
        uniq = list(dict.fromkeys(texts))
        U = embeddings.embed(uniq, batch_size=128)
        pos = {s: i for i, s in enumerate(uniq)}
        self.E = U[[pos[s] for s in texts]]
        log(f"embedded in {time.perf_counter() - t:.0f} s")
        if path is not None:
            np.save(path, self.E)

    def rows(self, idx: np.ndarray) -> np.ndarray:
        return self.E[idx]


# ---------------------------------------------------------------------- models
def grid(use_emb: bool) -> list[dict]:
    """The settings tried on validation with all training data."""
    if not use_emb:
        return [{"features": "tfidf", "C": c} for c in (3.0, 10.0, 30.0, 100.0)]
    return [{"features": "both", "C": c, "embedding_weight": w}
            for w in (1.0, 2.0, 3.0) for c in (3.0, 10.0, 30.0, 100.0)]


def grid_few(use_emb: bool) -> list[dict]:
    """The settings tried on validation with 10 examples per intent: the linear model's C,
    the class-prototype (nearest centroid, cosine) term's weight, TF-IDF beside heavier
    embeddings."""
    if not use_emb:
        return [{"features": "tfidf", "C": c} for c in (3.0, 10.0, 30.0, 100.0)]
    g = [{"features": "tfidf", "C": 10.0}]
    g += [{"features": "embeddings", "C": c, "prototype_weight": pw}
          for c in (3.0, 10.0, 30.0, 100.0) for pw in (0.0, 10.0, 20.0, 40.0)]
    g += [{"features": "both", "C": c, "embedding_weight": w, "prototype_weight": pw}
          for w in (3.0, 5.0) for c in (10.0, 30.0) for pw in (0.0, 20.0)]
    return g


class SplitFeatures:
    """The feature blocks of one (train, validation) split, built once for a whole grid:
    the TF-IDF vectorizers fitted on the training part, the cached embeddings."""

    def __init__(self, texts: list[str], labels: np.ndarray, train: np.ndarray,
                 val: np.ndarray, cache: EmbeddingCache | None, tfidf: bool) -> None:
        tr = [texts[i] for i in train]
        va = [texts[i] for i in val]
        self.classes = sorted(set(labels[train]))
        self.y_tr = np.searchsorted(np.array(self.classes), labels[train])
        self.y_va = labels[val]
        self.W = self.C = None
        if tfidf:
            wv, cv = _word_vectorizer(None), _char_vectorizer(None)
            w_tr = wv.fit_transform(tr)
            try:
                c_tr = cv.fit_transform(tr)
            except ValueError:  # as TextClassifier: min_df=1 when too few texts
                cv.set_params(min_df=1)
                c_tr = cv.fit_transform(tr)
            self.T = (sp.hstack([w_tr, c_tr], format="csr"),
                      sp.hstack([wv.transform(va), cv.transform(va)], format="csr"))
        self.E = (cache.rows(train), cache.rows(val)) if cache is not None else None

    def matrices(self, params: dict) -> tuple:
        f, w = params["features"], float(params.get("embedding_weight", 1.0))
        if f == "tfidf":
            return self.T
        if f == "embeddings":
            return sp.csr_matrix(self.E[0] * w), sp.csr_matrix(self.E[1] * w)
        return tuple(sp.hstack([t, sp.csr_matrix(e * w)], format="csr")
                     for t, e in zip(self.T, self.E, strict=True))


def fit(params: dict, texts: list[str], labels: list[str], idx: np.ndarray,
        cache: EmbeddingCache | None, calibrate: bool) -> TextClassifier:
    clf = TextClassifier(calibrate=calibrate, **params)
    emb = cache.rows(idx) if cache is not None and params["features"] != "tfidf" else None
    return clf.fit([texts[i] for i in idx], [labels[i] for i in idx], embeddings=emb)


def proba(clf: TextClassifier, texts: list[str], idx: np.ndarray,
          cache: EmbeddingCache | None) -> np.ndarray:
    emb = cache.rows(idx) if cache is not None and clf.features != "tfidf" else None
    return clf.predict_proba([texts[i] for i in idx], embeddings=emb)


def accuracy(clf: TextClassifier, p: np.ndarray, labels: list[str], idx: np.ndarray) -> float:
    pred = np.array(clf.classes_)[p.argmax(axis=1)]
    return float(np.mean(pred == np.array([labels[i] for i in idx])))


def select(texts: list[str], labels: list[str], train: np.ndarray, val: np.ndarray,
           cache: EmbeddingCache | None, candidates: list[dict]) -> tuple[dict, list[dict]]:
    """The candidate with the best validation accuracy (ties: the first listed).

    The feature blocks are built once per split and shared by the grid; each (features,
    embedding weight, C) is one cold fit of the same logistic regression as
    ``TextClassifier(calibrate=False, **params)`` (warm starts along C were tried: lbfgs
    stopped almost at once and every C scored alike, so they are not used); the prototype
    weights reuse the fit of their (features, C)."""
    from sklearn.linear_model import LogisticRegression

    y = np.array(labels)
    feats = SplitFeatures(texts, y, train, val, cache,
                          any(p["features"] != "embeddings" for p in candidates))
    scores: dict[int, dict] = {}
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(candidates):
        groups.setdefault((p["features"], p.get("embedding_weight", 1.0)), []).append(i)
    for members in groups.values():
        X_tr, X_va = feats.matrices(candidates[members[0]])
        proto = (_cosine(feats.E[1].astype(np.float64),
                         _prototypes(feats.E[0].astype(np.float64), feats.y_tr,
                                     len(feats.classes)))
                 if feats.E is not None else None)
        base = TextClassifier(calibrate=False, **candidates[members[0]])
        lr = LogisticRegression(C=1.0, max_iter=base.max_iter,
                                random_state=base.random_state)
        fitted_c = None
        for i in sorted(members, key=lambda i: candidates[i]["C"]):
            p = candidates[i]
            t = time.perf_counter()
            if p["C"] != fitted_c:
                lr.set_params(C=float(p["C"]))
                lr.fit(X_tr, feats.y_tr)
                fitted_c = p["C"]
                z = lr.decision_function(X_va)
            zz = z + float(p.get("prototype_weight", 0.0)) * proto if proto is not None else z
            pred = np.array(feats.classes)[zz.argmax(axis=1)]
            acc = float(np.mean(pred == feats.y_va))
            scores[i] = {**p, "val_accuracy": acc, "fit_s": time.perf_counter() - t}
            log(f"    {p}: validation accuracy {acc:.4f}")
    ranked = [scores[i] for i in range(len(candidates))]
    best = max(range(len(ranked)), key=lambda i: (ranked[i]["val_accuracy"], -i))
    return candidates[best], ranked


class LowerStates:
    """The frozen lower layers' output for every text of the data set
    (``TunedEncoder.lower_states``), computed once per run (``--states-cache FILE.npz``
    keeps them across runs, outside the repository)."""

    def __init__(self, texts: list[str], layers: int, path: Path | None) -> None:
        import torch

        if path is not None and path.exists():
            d = np.load(path)
            if int(d["layers"]) == layers and len(d["offsets"]) == len(texts) + 1:
                flat, off = torch.from_numpy(d["flat"]), d["offsets"]
                self.S = [flat[off[i]:off[i + 1]] for i in range(len(texts))]
                log(f"lower-layer states from {path}")
                return
        t = time.perf_counter()
        log(f"lower-layer states of {len(texts):,} texts (encoder minus its top {layers}) ...")
        self.S = TunedEncoder(train_layers=layers).lower_states(texts)
        log(f"computed in {time.perf_counter() - t:.0f} s")
        if path is not None:
            off = np.concatenate([[0], np.cumsum([s.shape[0] for s in self.S])])
            np.savez(path, flat=torch.cat(self.S).numpy(), offsets=off, layers=layers)

    def rows(self, idx: np.ndarray) -> list:
        return [self.S[i] for i in idx]


def sample_per_class(labels: np.ndarray, idx: np.ndarray, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(labels[idx]):
        pool = idx[labels[idx] == c]
        out.append(rng.choice(pool, size=min(k, len(pool)), replace=False))
    return np.sort(np.concatenate(out))


def run_accuracy(df: pd.DataFrame, args, cache: EmbeddingCache | None,
                 phases: set[str]) -> dict:
    texts = df["text"].tolist()
    labels = df["category"].tolist()
    y = np.array(labels)
    skf = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=args.seed)
    folds = []
    for f, (tr, te) in enumerate(skf.split(np.zeros(len(y)), y)):
        if args.max_folds and f >= args.max_folds:
            break
        if args.only_folds and f + 1 not in args.only_folds:
            continue
        log(f"fold {f + 1}/{args.folds}: {len(tr):,} train, {len(te):,} held out")
        row: dict = {"fold": f + 1}
        if "accuracy" in phases:
            row.update(_fold_all_data(texts, labels, y, tr, te, args, cache))
        if "fewshot" in phases:
            row.update(_fold_few(texts, labels, y, tr, te, args, cache))
        if "tuned" in phases:
            row.update(_fold_tuned(texts, labels, y, tr, te, args, f + 1))
        folds.append(row)
    return {"folds": folds, "mean": summarise(folds), "target_precision": TARGET_PRECISION}


def summarise(folds: list[dict]) -> dict:
    """The folds' means (and the worst fold's auto-reply precision)."""
    keys = ["floor_accuracy", "accuracy", "auto_precision", "auto_coverage",
            "floor_accuracy_10shot", "accuracy_10shot", "accuracy_10shot_frozen",
            "tuned_fit_s", "threshold", "accuracy_tuned", "floor_accuracy_tuned_run",
            "auto_precision_tuned", "auto_coverage_tuned", "threshold_tuned",
            "tuned_all_fit_s", "tuned_all_fold_s"]
    mean = {k: float(np.mean([r[k] for r in folds if r.get(k) is not None]))
            for k in keys if any(r.get(k) is not None for r in folds)}
    if "auto_precision" in mean:  # every fold must hold the target, not only the mean
        mean["auto_precision_min"] = float(min(r["auto_precision"] for r in folds
                                               if r.get("auto_precision") is not None))
    if "auto_precision_tuned" in mean:
        mean["auto_precision_tuned_min"] = float(min(
            r["auto_precision_tuned"] for r in folds if r.get("auto_precision_tuned") is not None))
    return mean


def _fold_all_data(texts, labels, y, tr, te, args, cache) -> dict:
    row: dict = {}
    # the floor
    floor = fit({"features": "tfidf", "C": 10.0}, texts, labels, tr, None, False)
    row["floor_accuracy"] = accuracy(floor, proba(floor, texts, te, None), labels, te)
    log(f"  floor accuracy {row['floor_accuracy']:.4f}")
    # the candidate, settings chosen on validation carved from the training folds
    sss = StratifiedShuffleSplit(1, test_size=0.2, random_state=args.seed)
    itr, iva = next(sss.split(np.zeros(len(tr)), y[tr]))
    best, scores = select(texts, labels, tr[itr], tr[iva], cache, grid(cache is not None))
    row["chosen"], row["selection"] = best, scores
    clf = fit(best, texts, labels, tr, cache, calibrate=True)
    p = proba(clf, texts, te, cache)
    row["accuracy"] = accuracy(clf, p, labels, te)
    # auto-reply threshold from the calibration share (inside the training folds)
    t = choose_threshold(clf.validation_["confidence"], clf.validation_["correct"],
                         TARGET_PRECISION)
    conf = p.max(axis=1)
    hit = np.array(clf.classes_)[p.argmax(axis=1)] == y[te]
    auto = conf >= t
    row.update(threshold=t, auto_coverage=float(auto.mean()),
               auto_precision=float(hit[auto].mean()) if auto.any() else None)
    log(f"  candidate {best}: accuracy {row['accuracy']:.4f}; auto-reply at {t:.3f}: "
        f"precision {row['auto_precision']}, coverage {row['auto_coverage']:.3f}")
    return row


def _fold_few(texts, labels, y, tr, te, args, cache) -> dict:
    row: dict = {}
    # 10 examples per intent, from the training folds
    few = sample_per_class(y, tr, args.shots, args.seed)
    few_floor = fit({"features": "tfidf", "C": 10.0}, texts, labels, few, None, False)
    row["floor_accuracy_10shot"] = accuracy(few_floor, proba(few_floor, texts, te, None),
                                            labels, te)
    hold = sample_per_class(y, few, max(1, args.shots // 5), args.seed + 1)
    rest = np.setdiff1d(few, hold)
    best_few, scores_few = select(texts, labels, rest, hold, cache,
                                  grid_few(cache is not None))
    row["chosen_10shot"], row["selection_10shot"] = best_few, scores_few
    clf_few = fit(best_few, texts, labels, few, cache, calibrate=False)
    row["accuracy_10shot_frozen"] = accuracy(clf_few, proba(clf_few, texts, te, cache),
                                             labels, te)
    row["accuracy_10shot"] = row["accuracy_10shot_frozen"]
    log(f"  10 per intent: floor {row['floor_accuracy_10shot']:.4f}, frozen MiniLM "
        f"{best_few} {row['accuracy_10shot_frozen']:.4f}")
    if cache is not None and args.few_tuned:
        # the candidate: the encoder fine-tuned on the 10 examples (settings fixed, FEW_TUNED)
        params = json.loads(args.few_tuned)
        t = time.perf_counter()
        tuned = TextClassifier(calibrate=False, **params).fit(
            [texts[i] for i in few], [labels[i] for i in few])
        row["tuned_fit_s"] = time.perf_counter() - t
        t = time.perf_counter()
        row["accuracy_10shot"] = accuracy(tuned, tuned.predict_proba([texts[i] for i in te]),
                                          labels, te)
        row["tuned_predict_s"] = time.perf_counter() - t
        row["chosen_10shot_tuned"] = params
        log(f"  10 per intent, tuned encoder {params}: {row['accuracy_10shot']:.4f} (fit "
            f"{row['tuned_fit_s']:.0f} s, {len(te):,} predictions {row['tuned_predict_s']:.0f} s)")
    return row


_LOWER: LowerStates | None = None


def _fold_tuned(texts, labels, y, tr, te, args, fold: int = 0) -> dict:
    """The all-data candidate with a tuned encoder (``ALL_TUNED``; ``--all-tuned``): the
    encoder tuned on the training folds, the head fitted on them (with its calibration
    share, from which the auto-reply threshold is chosen), accuracy on the held-out fold.
    The floor is computed again in the same run."""
    global _LOWER
    params = json.loads(args.all_tuned)
    layers = int(params.get("encoder_layers", 2))
    if _LOWER is None:
        _LOWER = LowerStates(texts, layers, args.states_cache)
    t0 = time.perf_counter()
    row: dict = {"chosen_tuned": params}
    floor = fit({"features": "tfidf", "C": 10.0}, texts, labels, tr, None, False)
    row["floor_accuracy_tuned_run"] = accuracy(floor, proba(floor, texts, te, None), labels,
                                               te)
    enc = TunedEncoder(steps=int(params["encoder_steps"]),
                       batch_size=int(params.get("encoder_batch", 64)),
                       learning_rate=float(params.get("encoder_lr", 1e-4)),
                       train_layers=layers, random_state=args.seed)
    t = time.perf_counter()
    enc.fit([texts[i] for i in tr], [labels[i] for i in tr], states=_LOWER.rows(tr),
            progress=lambda k, n, loss: log(f"  tuning step {k}/{n}: loss {loss:.3f}"))
    row["tuned_all_fit_s"] = time.perf_counter() - t
    E = np.zeros((len(texts), embeddings.DIMENSION), dtype=np.float32)
    E[tr] = enc.embed_states(_LOWER.rows(tr))
    E[te] = enc.embed_states(_LOWER.rows(te))
    head = {k: v for k, v in params.items() if not k.startswith("encoder_")}
    tuned_cache = EmbeddingCache.__new__(EmbeddingCache)
    tuned_cache.E = E
    clf = fit(head, texts, labels, tr, tuned_cache, calibrate=True)
    p = proba(clf, texts, te, tuned_cache)
    row["accuracy_tuned"] = accuracy(clf, p, labels, te)
    t_auto = choose_threshold(clf.validation_["confidence"], clf.validation_["correct"],
                              TARGET_PRECISION)
    hit = np.array(clf.classes_)[p.argmax(axis=1)] == y[te]
    auto = p.max(axis=1) >= t_auto
    row.update(threshold_tuned=t_auto, auto_coverage_tuned=float(auto.mean()),
               auto_precision_tuned=float(hit[auto].mean()) if auto.any() else None,
               tuned_all_fold_s=time.perf_counter() - t0)
    if args.save_model is not None:  # the servable model: the head with its tuned encoder
        clf.encoder_ = enc
        clf.meta_ = {"target_precision": TARGET_PRECISION, "auto_reply_threshold": t_auto,
                     "note": f"benchmarks/care.py tuned phase, fold {fold}'s training part"}
        clf.save(args.save_model / f"fold{fold}")
        log(f"  saved the tuned model to {args.save_model / f'fold{fold}'}")
    log(f"  tuned encoder {params}: accuracy {row['accuracy_tuned']:.4f} (floor "
        f"{row['floor_accuracy_tuned_run']:.4f}; tuning {row['tuned_all_fit_s']:.0f} s, fold "
        f"{row['tuned_all_fold_s']:.0f} s); auto-reply at {t_auto:.3f}: precision "
        f"{row['auto_precision_tuned']}, coverage {row['auto_coverage_tuned']:.3f}")
    return row


# ---------------------------------------------------------------------- latency
def knowledge_base(df: pd.DataFrame, idx: np.ndarray) -> pd.DataFrame:
    """One answer per intent, its questions 5 training examples of the intent."""
    sub = df.iloc[idx]
    rows = []
    for cat, g in sub.groupby("category"):
        rows.append({"answer_id": cat, "intent": cat, "questions": g["text"].head(5).tolist(),
                     "answer": f"(the brand's answer about {cat.replace('_', ' ')})",
                     "tags": [], "language": "en"})
    return pd.DataFrame(rows)


def run_latency(df: pd.DataFrame, args, features: dict,
                cache: EmbeddingCache | None) -> dict:
    y = df["category"].to_numpy()
    skf = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=args.seed)
    tr, te = next(skf.split(np.zeros(len(y)), y))
    texts = df["text"].tolist()
    kb = knowledge_base(df, tr)
    out = {}
    probe = [texts[i] for i in te[: args.latency_n]]
    runs = [(name, params, None) for name, params in features.items()]
    if args.model is not None:  # a saved model (e.g. the tuned all-data one of fold 1)
        runs.append(("model", {"path": str(args.model)}, None))
        if embeddings.openvino_available():
            runs.append(("model-openvino", {"path": str(args.model)}, "openvino"))
        if args.latency_torch and embeddings.ort_available():
            runs.append(("model-torch", {"path": str(args.model)}, "torch"))
    for name, params, force in runs:
        with encoder_backend(force):
            if "path" in params:
                model = load_intents(params["path"])
                use_emb = model.features != "tfidf"
            else:
                log(f"latency: training the {name} model ...")
                use_emb = params.get("features", "tfidf") != "tfidf"
                model = train_intents([texts[i] for i in tr], list(y[tr]),
                                      target_precision=TARGET_PRECISION,
                                      embeddings=cache.rows(tr) if use_emb and cache else None,
                                      **params)
            a = CareAssistant(intents=model, index=AnswerIndex(kb, use_embeddings=use_emb))
            for t in probe[:20]:  # warm up
                a.handle(t)
            lat, cpu = [], []
            for t in probe:
                c = time.thread_time()
                s = time.perf_counter()
                a.handle(t)
                lat.append(time.perf_counter() - s)
                cpu.append(time.thread_time() - c)
            bare = []
            for t in probe:
                s = time.perf_counter()
                model.predict_proba([t])
                bare.append(time.perf_counter() - s)
            ms = np.array(lat) * 1000
            b = np.array(bare) * 1000
            out[name] = {"params": params, "messages": len(probe),
                         "handle_p50_ms": float(np.percentile(ms, 50)),
                         "handle_p99_ms": float(np.percentile(ms, 99)),
                         # CPU time of the calling thread: what the work costs without the
                         # waits a shared machine adds (wall time is the figure of record)
                         "handle_cpu_p50_ms": float(np.percentile(np.array(cpu) * 1000, 50)),
                         "handle_cpu_p99_ms": float(np.percentile(np.array(cpu) * 1000, 99)),
                         "load_average": os.getloadavg()[0],
                         "classifier_p50_ms": float(np.percentile(b, 50)),
                         "classifier_p99_ms": float(np.percentile(b, 99)),
                         "classifier_messages_per_s": float(1000.0 / b.mean()),
                         "handle_messages_per_s": float(1000.0 / ms.mean()),
                         "embeddings_backend": embeddings.backend() if use_emb else None,
                         "answers_by_embeddings": use_emb}
        if name == "tfidf":
            out["_model"] = model
            out["_kb"] = kb
        log(f"  {name}: handle p50 {out[name]['handle_p50_ms']:.2f} ms, p99 "
            f"{out[name]['handle_p99_ms']:.2f} ms; bare classifier "
            f"{out[name]['classifier_messages_per_s']:.0f} messages/s")
    return out


# ---------------------------------------------------------------------- agree
@contextmanager
def encoder_backend(name: str | None):
    """The sentence encoder on backend ``name`` (``FEEDWISE_EMBEDDINGS``) for the block;
    ``None``: as set outside."""
    prev = os.environ.get(embeddings.BACKEND_ENV)
    if name is not None:
        os.environ[embeddings.BACKEND_ENV] = name
    try:
        assert name is None or embeddings.backend() == name, f"{name} is not available"
        yield
    finally:
        if prev is None:
            os.environ.pop(embeddings.BACKEND_ENV, None)
        else:
            os.environ[embeddings.BACKEND_ENV] = prev


def other_backends() -> list[str]:
    """The encoder backends compared with ONNX Runtime's fp32: torch, and OpenVINO when
    installed."""
    return ["torch"] + (["openvino"] if embeddings.openvino_available() else [])


def compare_backends(path: Path, texts: list[str], truth: np.ndarray | None,
                     names: list[str]) -> dict:
    """The saved intent model at ``path`` on ``texts`` with each encoder backend in
    ``names`` (the first is the reference): per backend its seconds and accuracy (when
    ``truth`` is given), and against the reference how many labels and auto-reply
    decisions differ and the largest probability difference."""
    out: dict = {}
    proba = {}
    for name in names:
        with encoder_backend(name):
            model = load_intents(path)
            t = time.perf_counter()
            proba[name] = model.predict_proba(texts)
            out[f"{name}_ms_per_text"] = (time.perf_counter() - t) * 1000 / len(texts)
            if truth is not None:
                out[f"{name}_accuracy"] = float(np.mean(
                    np.array(model.classes_)[proba[name].argmax(axis=1)] == truth))
    thr = float(model.meta_.get("auto_reply_threshold", 1.01))
    a = proba[names[0]]
    for name in names[1:]:
        b = proba[name]
        out[f"{name}_labels_differing"] = int((a.argmax(axis=1) != b.argmax(axis=1)).sum())
        out[f"{name}_max_abs_proba_diff"] = float(np.abs(a - b).max())
        out[f"{name}_auto_reply_differing"] = int(((a.max(axis=1) >= thr)
                                                  != (b.max(axis=1) >= thr)).sum())
    return out


def run_agree(df: pd.DataFrame, args) -> dict:
    """``--model`` (trained on fold 1's training part) on fold 1's held-out rows, with ONNX
    Runtime's fp32 inference and with torch's (and OpenVINO's, when installed): how many
    labels differ (the same model each way) and each backend's accuracy."""
    y = df["category"].to_numpy()
    skf = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=args.seed)
    _, te = next(skf.split(np.zeros(len(y)), y))
    texts = [df["text"].iloc[i] for i in te]
    out: dict = {"model": str(args.model), "rows": len(te),
                 **compare_backends(args.model, texts, y[te],
                                    ["onnxruntime", *other_backends()])}
    for name in other_backends():
        log(f"agree: {out[f'{name}_labels_differing']} of {len(te)} labels differ between "
            f"ONNX Runtime and {name} (max |p diff| {out[f'{name}_max_abs_proba_diff']:.2e});"
            f" accuracy {out['onnxruntime_accuracy']:.4f} / {out[f'{name}_accuracy']:.4f}")
    return out


def validation_split(df: pd.DataFrame, args) -> tuple[np.ndarray, np.ndarray]:
    """Fold 1's training part cut 80 / 20 (stratified, seed 0): ``(training rows,
    validation rows)``. The held-out fold is not among them."""
    y = df["category"].to_numpy()
    skf = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=args.seed)
    tr, _ = next(skf.split(np.zeros(len(y)), y))
    a, b = next(StratifiedShuffleSplit(1, test_size=0.2, random_state=args.seed)
                .split(np.zeros(len(tr)), y[tr]))
    return tr[a], tr[b]


def validation_model(df: pd.DataFrame, args, work: Path) -> tuple[TextClassifier, np.ndarray,
                                                                   np.ndarray]:
    """The all-data recipe trained on the training rows of :func:`validation_split`, saved
    as ``work / "fold0"``: ``(model, its training rows, the validation rows)``."""
    texts, labels = df["text"].tolist(), df["category"].tolist()
    y = df["category"].to_numpy()
    itr, iva = validation_split(df, args)
    inner = argparse.Namespace(**{**vars(args), "save_model": work})
    _fold_tuned(texts, labels, y, itr, iva, inner, fold=0)
    return load_intents(work / "fold0"), itr, iva


# ---------------------------------------------------------------------- bf16
def run_bf16(df: pd.DataFrame, args) -> dict:
    """Whether the all-data recipe may be served by OpenVINO (bf16 on this CPU), decided on
    VALIDATION carved from fold 1's training part (:func:`validation_model`; the held-out
    fold is not read): the model's validation accuracy with ONNX Runtime's fp32 encoder and
    with OpenVINO's, and how many labels and auto-reply decisions differ. The rule, set
    before the first figure: OpenVINO may serve if at most 3 of the validation labels
    differ and its accuracy is not lower by more than one row."""
    if not embeddings.openvino_available():
        raise SystemExit("--phases bf16 needs openvino: pip install 'feedwise[text,openvino]'")
    work = Path(tempfile.mkdtemp(prefix="fw-care-bf16-"))
    try:
        if args.validation_model is not None:
            path, iva = args.validation_model, validation_split(df, args)[1]
        else:
            _, _, iva = validation_model(df, args, work)
            path = work / "fold0"
        texts = [df["text"].iloc[i] for i in iva]
        out: dict = {"validation_rows": len(iva), "model": str(path),
                     **compare_backends(path, texts, df["category"].to_numpy()[iva],
                                        ["onnxruntime", "openvino"])}
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    m = embeddings.ort_model()
    with encoder_backend("openvino"):
        s = m.session(0, m.n_layers, True, 1)
        out["precision"] = s.precision if isinstance(s, embeddings.OpenVinoSession) else None
    n = len(iva)
    out["adopted"] = bool(out["openvino_labels_differing"] <= 3 and
                          out["openvino_accuracy"] >= out["onnxruntime_accuracy"] - 1.5 / n)
    log(f"bf16 (validation, {n} rows of fold 1's training part): ONNX Runtime fp32 "
        f"{out['onnxruntime_accuracy']:.4f}, OpenVINO {out['precision']} "
        f"{out['openvino_accuracy']:.4f}; {out['openvino_labels_differing']} labels and "
        f"{out['openvino_auto_reply_differing']} auto-reply decisions differ; "
        f"{'adopted' if out['adopted'] else 'NOT adopted'} by the rule")
    return out


# ---------------------------------------------------------------------- int8
def run_int8(df: pd.DataFrame, args) -> dict:
    """Whether an int8 encoder (ONNX Runtime dynamic quantization of the shipped and tuned
    graphs) may serve the all-data recipe, decided on VALIDATION carved from fold 1's
    training part (20 %, stratified, seed 0; the held-out fold is not read): the recipe
    trained on the rest, its validation accuracy with the fp32 graphs, with int8 graphs
    under the head fitted on fp32 embeddings, and with the head refitted on int8 ones, and
    the encoder's time per text (batch predict) for each."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    texts, labels = df["text"].tolist(), df["category"].tolist()
    y = df["category"].to_numpy()
    work = Path(tempfile.mkdtemp(prefix="fw-care-int8-"))
    model, itr, iva = validation_model(df, args, work)
    va = [texts[i] for i in iva]

    def score() -> tuple[float, float, np.ndarray]:
        t = time.perf_counter()
        p = model.predict_proba(va)
        ms = (time.perf_counter() - t) * 1000 / len(va)
        return float(np.mean(np.array(model.classes_)[p.argmax(axis=1)] == y[iva])), ms, p

    out: dict = {"train_rows": len(itr), "validation_rows": len(iva)}
    out["fp32_accuracy"], out["fp32_ms_per_text"], p32 = score()
    enc, ort = model.encoder_, embeddings.ort_model()
    quantized: dict[object, Path] = {}
    for spec, graph in list(ort._graphs.items()) + [("tuned", enc.onnx_graph())]:
        dst = work / f"int8-{len(quantized)}.onnx"
        src = graph
        if isinstance(graph, bytes):
            src = work / f"fp32-{len(quantized)}.onnx"
            src.write_bytes(graph)
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        quantized[spec] = dst
    ort._graphs.update({k: v for k, v in quantized.items() if k != "tuned"})
    ort._sessions.clear()
    enc.__dict__["_ort_graph"] = quantized["tuned"]
    enc.__dict__.pop("_ort_sessions", None)
    try:
        out["int8_accuracy"], out["int8_ms_per_text"], p8 = score()
        out["int8_labels_differing"] = int((p8.argmax(axis=1) != p32.argmax(axis=1)).sum())
        E = np.zeros((len(texts), embeddings.DIMENSION), dtype=np.float32)
        idx = np.concatenate([itr, iva])
        E[idx] = enc.embed([texts[i] for i in idx])
        cache = EmbeddingCache.__new__(EmbeddingCache)
        cache.E = E
        head = {k: v for k, v in json.loads(args.all_tuned).items()
                if not k.startswith("encoder_")}
        clf = fit(head, texts, labels, itr, cache, calibrate=True)
        out["int8_refit_accuracy"] = accuracy(clf, proba(clf, texts, iva, cache), labels, iva)
    finally:
        ort._graphs.clear()
        ort._sessions.clear()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    log(f"int8 (validation, {len(iva)} rows of fold 1's training part): fp32 "
        f"{out['fp32_accuracy']:.4f} ({out['fp32_ms_per_text']:.2f} ms/text), int8 "
        f"{out['int8_accuracy']:.4f} ({out['int8_ms_per_text']:.2f} ms/text), int8 with "
        f"the head refitted {out['int8_refit_accuracy']:.4f}")
    return out


# ---------------------------------------------------------------------- http
def run_http(df: pd.DataFrame, args, model: TextClassifier | Path, kb: pd.DataFrame,
             backend: str | None = None) -> dict:
    """``model``: a trained model, or the path of a saved one (served as it is);
    ``backend``: the server's sentence-encoder backend (``FEEDWISE_EMBEDDINGS``)."""
    from serve import cpu_seconds, free_port  # the serve benchmark's load tools

    from feedwise.server.auth import create_key
    from feedwise.store import EventStore

    root = Path(tempfile.mkdtemp(prefix="fw-care-bench-"))
    if isinstance(model, Path):
        served = model
    else:
        model.save(root / "intents")
        served = root / "intents"
    with EventStore(root / "bench.duckdb") as store:
        store.add_answers(kb, now=datetime.now(UTC))
    key, _ = create_key(root / "keys.json", ["ingest"])
    port = free_port()
    env = {**os.environ, "FEEDWISE_DB": str(root / "bench.duckdb"),
           "FEEDWISE_REGISTRY": str(root / "registry"),
           "FEEDWISE_KEYS_FILE": str(root / "keys.json"),
           "FEEDWISE_CARE_MODEL": str(served), "FEEDWISE_RELOAD_INTERVAL_S": "60"}
    # the server's own thread settings (not the benchmark's OMP_NUM_THREADS=1), unless set
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.pop(var, None)
    if args.server_threads:
        env["OMP_NUM_THREADS"] = str(args.server_threads)
    if backend is not None:
        env[embeddings.BACKEND_ENV] = backend
    cmd = [sys.executable, "-c", "from feedwise.cli import app; app()", "serve",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    texts = df["text"].tolist()
    try:
        _wait_ready(proc, port)
        hdr = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        # warm-up: the first request builds the assistant (model and knowledge base)
        asyncio.run(_post_many(port, hdr, texts, 1, 3.0, "warm"))
        cpu0 = cpu_seconds(proc.pid)
        res = asyncio.run(_post_many(port, hdr, texts, args.clients, args.http_seconds, "m"))
        cpu1 = cpu_seconds(proc.pid)
        res["server_cpu_s"] = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
        res["cores"] = os.cpu_count()
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    with EventStore(root / "bench.duckdb", read_only=True) as store:
        res["stored_messages"] = len(store.messages())
    res["backend"] = backend
    log(f"http: {res['messages_per_s']:.0f} messages/s at {args.clients} clients, p99 "
        f"{res['p99_ms']:.1f} ms, {res['errors']} errors, {res['stored_messages']:,} stored")
    return res


def _wait_ready(proc: subprocess.Popen, port: int) -> None:
    import socket

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if b" 200 " in s.recv(200):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become ready")


async def _post_many(port: int, hdr: dict, texts: list[str], clients: int, seconds: float,
                     prefix: str) -> dict:
    from serve import Conn

    lat: list[float] = []
    errors = [0]
    counter = [0]
    end = time.perf_counter() + seconds

    async def one(c: int) -> None:
        conn = Conn(port)
        try:
            while time.perf_counter() < end:
                i = counter[0]
                counter[0] += 1
                body = json.dumps({"message_id": f"{prefix}{i}", "user_id": f"u{i % 997}",
                                   "channel": "dm", "text": texts[i % len(texts)]}).encode()
                s = time.perf_counter()
                status, _ = await conn.request("POST", "/v1/messages", hdr, body)
                lat.append(time.perf_counter() - s)
                if status != 200:
                    errors[0] += 1
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(c) for c in range(clients)))
    wall = time.perf_counter() - t0
    a = np.array(lat) * 1000
    return {"clients": clients, "messages": len(lat), "errors": errors[0], "seconds": wall,
            "messages_per_s": len(lat) / wall,
            "p50_ms": float(np.percentile(a, 50)) if len(a) else None,
            "p99_ms": float(np.percentile(a, 99)) if len(a) else None}


# ---------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--max-folds", type=int, default=0, help="Stop after this many folds "
                    "(0: all; a quick look only, not the acceptance figure).")
    ap.add_argument("--only-folds", type=lambda v: {int(x) for x in v.split(",")},
                    default=None, help="Run only these folds (1-based, e.g. 4,5: to split "
                    "the accuracy phase over processes; the table then covers those only).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shots", type=int, default=10)
    ap.add_argument("--phases", default="accuracy,fewshot,latency,http",
                    help="accuracy (all data, auto-reply), fewshot (10 per intent), "
                    "tuned (all data, tuned encoder; not in the default), latency, http, "
                    "agree (--model: ONNX Runtime against torch and OpenVINO labels on "
                    "fold 1), int8 / bf16 (an int8 encoder / OpenVINO's on validation "
                    "inside fold 1's training part)")
    ap.add_argument("--no-embeddings", action="store_true")
    ap.add_argument("--emb-cache", type=Path, default=None,
                    help="Keep the MiniLM embeddings in this .npy file (outside the repo).")
    ap.add_argument("--latency-n", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--http-seconds", type=float, default=20.0)
    ap.add_argument("--out", type=Path, default=RESULTS / "care.json")
    ap.add_argument("--candidate", default=None, help="Settings of the candidate for the "
                    "latency phase as JSON (default: those chosen most often in the accuracy "
                    "phase), e.g. '{\"features\": \"both\", \"C\": 10}'.")
    ap.add_argument("--few-tuned", default=json.dumps(FEW_TUNED),
                    help="The 10-per-intent candidate with a fine-tuned encoder, as JSON "
                    "TextClassifier settings ('' : off, only the frozen-MiniLM grid).")
    ap.add_argument("--all-tuned", default=json.dumps(ALL_TUNED),
                    help="The all-data candidate with a tuned encoder (phase 'tuned'), as "
                    "JSON: TextClassifier head settings plus encoder_steps, encoder_layers, "
                    "encoder_lr, encoder_batch.")
    ap.add_argument("--states-cache", type=Path, default=None,
                    help="Keep the frozen lower-layer states (phase 'tuned') in this .npz "
                    "file (outside the repo; about 0.3 GB).")
    ap.add_argument("--save-model", type=Path, default=None,
                    help="Phase 'tuned': save each fold's model (head + tuned encoder, as "
                    "`feedwise intents train` writes it) as DIR/foldK, for --model.")
    ap.add_argument("--validation-model", type=Path, default=None,
                    help="bf16: a model of the all-data recipe saved from 80 %% of fold 1's "
                    "training part (the int8/bf16 phases' split; e.g. `--phases tuned` "
                    "on that split), instead of training one (about 3 minutes).")
    ap.add_argument("--model", type=Path, default=None,
                    help="Latency/http: measure this intent model (e.g. DIR/fold1 from "
                    "--save-model; its training part must be fold 1's) as the candidate "
                    "instead of training one.")
    ap.add_argument("--latency-torch", action="store_true",
                    help="Latency: also measure --model with torch inference (side by side "
                    "with ONNX Runtime).")
    ap.add_argument("--server-threads", type=int, default=0,
                    help="HTTP: OMP_NUM_THREADS of the server (0: the server's own default; "
                    "the benchmark's own thread settings are not passed on).")
    ap.add_argument("--combine", nargs="+", type=Path, default=None,
                    help="Join the accuracy folds of these result files (runs of "
                    "--only-folds in parallel processes) into --out, keeping its other "
                    "phases and the other half (all data / 10 per intent) of its folds.")
    ap.add_argument("--merge", action="store_true", help="Update the phases run in --out "
                    "and keep the others (e.g. accuracy from an earlier run).")
    args = ap.parse_args()
    phases = set(args.phases.split(","))
    if args.combine:
        combine(args.out, args.combine)
        return

    df = pd.read_csv(args.data)
    use_emb = not args.no_embeddings and embeddings.available()
    if not use_emb:
        log("embeddings off (--no-embeddings, or the text extra is not installed)")
    cache = EmbeddingCache(df["text"].tolist(), args.emb_cache) if use_emb else None
    out: dict = {"data": str(args.data.resolve()), "rows": len(df),
                 "intents": int(df["category"].nunique()), "folds": args.folds,
                 "seed": args.seed, "embeddings": use_emb, "targets": TARGETS,
                 "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    chosen: dict | None = None
    if args.merge and args.out.exists():
        old = json.loads(args.out.read_text())
        out = {**old, **{k: v for k, v in out.items() if k != "embeddings"},
               "embeddings": old.get("embeddings", use_emb) or use_emb}
    if "accuracy" not in phases and "chosen" in (out.get("accuracy") or {"folds": [{}]})[
            "folds"][0]:
        folds = out["accuracy"]["folds"]
        picks = [json.dumps(r["chosen"], sort_keys=True) for r in folds]
        chosen = json.loads(max(set(picks), key=picks.count))
    if phases & {"accuracy", "fewshot", "tuned"}:
        acc = run_accuracy(df, args, cache, phases)
        old = out.get("accuracy") or {}
        if "accuracy" not in phases or "fewshot" not in phases:  # keep the other half
            acc["folds"] = [{**o, **n} for o, n in zip(old.get("folds", acc["folds"]),
                                                       acc["folds"], strict=False)]
            acc["mean"] = {**old.get("mean", {}), **acc["mean"]}
        out["accuracy"] = acc
    if "accuracy" in phases:
        picks = [json.dumps(r["chosen"], sort_keys=True) for r in out["accuracy"]["folds"]]
        chosen = json.loads(max(set(picks), key=picks.count))
    if args.candidate:
        chosen = json.loads(args.candidate)
    if "int8" in phases:
        out["int8"] = run_int8(df, args)
    if "bf16" in phases:
        out["bf16"] = run_bf16(df, args)
    if "agree" in phases:
        if args.model is None:
            raise SystemExit("--phases agree needs --model (a model of fold 1's training part)")
        out["agree"] = run_agree(df, args)
    lat = None
    if "latency" in phases or "http" in phases:
        feats = {"tfidf": {"features": "tfidf", "C": 10.0}}
        if chosen is not None and chosen.get("features") != "tfidf" and use_emb:
            feats["candidate"] = chosen
        lat = run_latency(df, args, feats, cache)
        model, kb = lat.pop("_model"), lat.pop("_kb")
        out["latency"] = lat
    if "http" in phases:
        out["http"] = {"tfidf": run_http(df, args, model, kb)}
        if args.model is not None:
            out["http"]["model"] = run_http(df, args, args.model, kb, "onnxruntime")
            if embeddings.openvino_available():
                out["http"]["model-openvino"] = run_http(df, args, args.model, kb, "openvino")
        for name, h in out["http"].items():  # the bare classifier, side by side
            h["classifier_messages_per_s"] = (lat or {}).get(name, {}).get(
                "classifier_messages_per_s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str))
    print_table(out)
    print(f"\nwrote {args.out}")


def combine(out_path: Path, parts: list[Path]) -> None:
    """Join the accuracy folds of ``parts`` into ``out_path`` (see ``--combine``)."""
    out = json.loads(out_path.read_text()) if out_path.exists() else {}
    by_fold = {r["fold"]: r for r in (out.get("accuracy") or {}).get("folds", [])}
    for part in parts:
        for r in json.loads(part.read_text())["accuracy"]["folds"]:
            by_fold[r["fold"]] = {**by_fold.get(r["fold"], {}), **r}
    folds = [by_fold[f] for f in sorted(by_fold)]
    out["accuracy"] = {**(out.get("accuracy") or {}), "folds": folds,
                       "mean": summarise(folds), "target_precision": TARGET_PRECISION}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=2, default=str))
    print_table(out)
    print(f"\nwrote {out_path}")


def print_table(out: dict) -> None:
    rows = []
    if "accuracy" in out:
        m = out["accuracy"]["mean"]
        n = len(out["accuracy"]["folds"])
        rows += [
            (f"accuracy, all data ({n} folds)", m.get("accuracy"), TARGETS["accuracy"],
             ">="),
            ("  floor: word+char TF-IDF LR", m.get("floor_accuracy"), None, ""),
            ("accuracy, all data, tuned encoder", m.get("accuracy_tuned"),
             TARGETS["accuracy"], ">="),
            ("  floor, same run", m.get("floor_accuracy_tuned_run"), None, ""),
            ("  encoder tuning s per fold", m.get("tuned_all_fit_s"), None, ""),
            ("  whole fold s (tuning, embedding, head)", m.get("tuned_all_fold_s"), None, ""),
            ("  auto-reply precision (held out, mean)", m.get("auto_precision_tuned"),
             TARGETS["auto_precision"], ">="),
            ("  auto-reply precision (worst fold)", m.get("auto_precision_tuned_min"),
             TARGETS["auto_precision"], ">="),
            ("  auto-reply coverage (held out)", m.get("auto_coverage_tuned"), None, ""),
            ("accuracy, 10 per intent", m.get("accuracy_10shot"),
             TARGETS["accuracy_10shot"], ">="),
            ("  frozen MiniLM (no fine-tuning)", m.get("accuracy_10shot_frozen"), None, ""),
            ("  encoder fine-tuning s per fold", m.get("tuned_fit_s"), None, ""),
            ("  floor: word+char TF-IDF LR", m.get("floor_accuracy_10shot"), None, ""),
            ("auto-reply precision (held out, mean)", m.get("auto_precision"),
             TARGETS["auto_precision"], ">="),
            ("auto-reply precision (held out, worst fold)", m.get("auto_precision_min"),
             TARGETS["auto_precision"], ">="),
            ("auto-reply coverage (held out)", m.get("auto_coverage"), None, ""),
            ("auto-reply threshold (mean)", m.get("threshold"), None, "")]
    for name, r in (out.get("latency") or {}).items():
        rows += [(f"handle p99 ms ({name})", r["handle_p99_ms"], TARGETS["latency_p99_ms"],
                  "<="),
                 (f"  handle p50 ms ({name})", r["handle_p50_ms"], None, ""),
                 (f"  handle CPU p99 ms ({name})", r["handle_cpu_p99_ms"], None, ""),
                 (f"  load average during it ({name})", r["load_average"], None, ""),
                 (f"  bare classifier messages/s ({name})", r["classifier_messages_per_s"],
                  None, ""),
                 (f"  in-process handle messages/s ({name})", r["handle_messages_per_s"],
                  None, "")]
    if "agree" in out:
        g = out["agree"]
        rows.append(("accuracy, ONNX Runtime (fold 1)", g["onnxruntime_accuracy"], None, ""))
        for name in ("torch", "openvino"):
            if f"{name}_accuracy" in g:
                rows += [(f"  {name}: labels differing (of {g['rows']})",
                          g[f"{name}_labels_differing"], None, ""),
                         (f"  {name}: auto-reply decisions differing",
                          g[f"{name}_auto_reply_differing"], None, ""),
                         (f"  {name}: max |probability difference|",
                          g[f"{name}_max_abs_proba_diff"], None, ""),
                         (f"  {name}: accuracy (fold 1)", g[f"{name}_accuracy"], None, "")]
    if "bf16" in out:
        g = out["bf16"]
        rows += [(f"validation accuracy, ONNX Runtime fp32 ({g['validation_rows']} rows of "
                  "fold 1's training part)", g["onnxruntime_accuracy"], None, ""),
                 (f"  OpenVINO ({g['precision']})", g["openvino_accuracy"], None, ""),
                 ("  labels differing", g["openvino_labels_differing"], None, ""),
                 ("  auto-reply decisions differing", g["openvino_auto_reply_differing"],
                  None, ""),
                 ("  ms a text, fp32 / OpenVINO", f"{g['onnxruntime_ms_per_text']:.2f} / "
                  f"{g['openvino_ms_per_text']:.2f}", None, ""),
                 ("  may serve (<= 3 labels differ, accuracy within a row)", g["adopted"],
                  None, "")]
    if "int8" in out:
        g = out["int8"]
        rows += [(f"validation accuracy, fp32 encoder ({g['validation_rows']} rows of fold "
                  "1's training part)", g["fp32_accuracy"], None, ""),
                 ("  int8 encoder, head as fitted", g["int8_accuracy"], None, ""),
                 ("  int8 encoder, head refitted on int8 embeddings",
                  g["int8_refit_accuracy"], None, ""),
                 ("  ms a text, fp32 / int8", f"{g['fp32_ms_per_text']:.2f} / "
                  f"{g['int8_ms_per_text']:.2f}", None, "")]
    http = out.get("http") or {}
    if "clients" in http:  # one run (results written before the per-model runs)
        http = {"tfidf": http}
    for name, h in http.items():
        rows += [(f"HTTP messages/s ({name}; {h['clients']} clients, {h['cores']} cores)",
                  h["messages_per_s"], TARGETS["http_messages_per_s"], ">="),
                 (f"  HTTP p99 ms ({name})", h["p99_ms"], None, ""),
                 (f"  HTTP errors ({name})", h["errors"], None, ""),
                 (f"  bare classifier messages/s ({name})",
                  h.get("classifier_messages_per_s"), None, "")]
    print(f"\n{'measure':52s} {'value':>10s} {'target':>10s}  met")
    for name, v, target, op in rows:
        met = ""
        if target is not None and v is not None:
            met = "yes" if (v >= target if op == ">=" else v <= target) else "NO"
        tv = f"{op}{target}" if target is not None else ""
        vv = "n/a" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))
        print(f"{name:52s} {vv:>10s} {tv:>10s}  {met}")


if __name__ == "__main__":
    main()
