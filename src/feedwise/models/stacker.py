"""`Stacker`: a two-stage learning-to-rank model over feedwise's own recommenders.

Stage one: base recommenders (default EASE, RP3beta, ItemKNN, ALS) score every item; the
first base's top ``candidates`` unseen items form each user's candidate list. Stage two: a
LightGBM lambdarank model reorders the candidates from features of each (user, item) pair —
every base's score, per-user z-score, rank in the list and share of the user's best score,
the item's popularity (share and percentile), mean weight and event times, the user's
activity relative to the average user, mean weight and event times, and the gaps between the
user's and the item's times.

No test data is involved: the ranker is trained on inner splits carved from the data given
to ``fit`` (``random_split(data, inner_ratio, seed + f)`` for each of ``folds`` folds): the
bases are fitted on the inner-train part and each candidate is labelled by whether the user
engaged with it in the inner-held-out part. The bases are then refitted on all of ``data``
and the ranker reorders their candidates. Rank and normalised-score features keep the ranker
valid across the density shift between the inner fits and the full fit.

Items outside a user's candidate list rank after every candidate, in the first base's order.
Reasons come from the first base (EASE: "because you liked ..."). The ranker is saved as
LightGBM's text model inside the npz (no pickle).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from feedwise.errors import ConfigError
from feedwise.interactions import Interactions
from feedwise.models.base import Recommender

#: (model name, constructor params) of each base; the first one proposes the candidates.
Base = tuple[str, dict[str, Any]]

DEFAULT_BASES: tuple[Base, ...] = (
    ("ease", {}),
    ("rp3beta", {}),
    ("itemknn", {}),
    ("als", {}),
)

#: Item / user side statistics learned from the fitted data (per item, per user).
_ITEM_STATS = ("pop_share", "pop_pct", "wmean", "ts_mean", "ts_first", "ts_last")
_USER_STATS = ("activity", "wmean", "ts_mean", "ts_first", "ts_last")


def _side_stats(data: Interactions) -> dict[str, np.ndarray]:
    """Scale-free item and user statistics of ``data`` (times as fractions of its span)."""
    x = sp.csr_matrix(data.matrix, dtype=np.float32)
    b = x.copy()
    b.data[:] = 1.0
    pop = np.asarray(b.sum(axis=0)).ravel()
    act = np.asarray(b.sum(axis=1)).ravel()
    lw = x.copy()
    lw.data = np.log1p(np.maximum(lw.data, 0))
    gmean = float(lw.data.mean()) if lw.nnz else 1.0
    gmean = gmean if gmean > 0 else 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        i_w = np.asarray(lw.sum(axis=0)).ravel() / pop / gmean
        u_w = np.asarray(lw.sum(axis=1)).ravel() / act / gmean
    out = {"item_pop_share": pop / max(data.n_users, 1),
           "item_pop_pct": (np.argsort(np.argsort(pop, kind="stable"), kind="stable")
                            / max(len(pop) - 1, 1)),
           "item_wmean": i_w,
           "user_activity": act / max(act.mean(), 1e-9),
           "user_wmean": u_w}
    nan_i = np.full(data.n_items, np.nan)
    nan_u = np.full(data.n_users, np.nan)
    ts = data.last_ts
    if ts is not None and sp.csr_matrix(ts).nnz:
        t = sp.csr_matrix(ts, dtype=np.float64)
        lo, hi = float(t.data.min()), float(t.data.max())
        t.data = (t.data - lo) / max(hi - lo, 1.0) + 1.0  # in [1, 2]: zeros stay "absent"
        tc = t.tocsc()
        for name, m, n in (("item", tc.T.tocsr(), data.n_items), ("user", t, data.n_users)):
            cnt = np.diff(m.indptr)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[f"{name}_ts_mean"] = np.asarray(m.sum(axis=1)).ravel() / cnt - 1.0
            first, last = np.full(n, np.nan), np.full(n, np.nan)
            has = cnt > 0
            first[has] = np.minimum.reduceat(m.data, m.indptr[:-1][has]) - 1.0
            last[has] = np.maximum.reduceat(m.data, m.indptr[:-1][has]) - 1.0
            out[f"{name}_ts_first"], out[f"{name}_ts_last"] = first, last
    else:
        for k in ("ts_mean", "ts_first", "ts_last"):
            out[f"item_{k}"], out[f"user_{k}"] = nan_i.copy(), nan_u.copy()
    return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}


def _fold_in_side(side: dict[str, np.ndarray], hist: sp.csr_matrix) -> dict[str, np.ndarray]:
    """User statistics for users described only by a history matrix (times unknown)."""
    b = sp.csr_matrix(hist, dtype=np.float32)
    act = np.diff(b.indptr).astype(np.float32)
    lw = b.copy()
    lw.data = np.log1p(np.maximum(lw.data, 0))
    nan = np.full(hist.shape[0], np.nan, dtype=np.float32)
    return {"user_activity": act / side["_mean_activity"][0],
            "user_wmean": (np.asarray(lw.sum(axis=1)).ravel() / np.maximum(act, 1)
                           / side["_gmean"][0]).astype(np.float32),
            "user_ts_mean": nan, "user_ts_first": nan, "user_ts_last": nan}


class Stacker(Recommender):
    """Learning-to-rank reordering of base recommenders' candidates (LightGBM lambdarank).

    Args:
        bases: ``(name, params)`` of each base recommender (``None`` = EASE, RP3beta,
            ItemKNN, ALS); the first proposes the candidates and gives the reasons.
        candidates: Items per user reordered by the ranker.
        folds: Inner splits whose labels train the ranker (more = more labels, slower fit).
        inner_ratio: Share of each user's items kept for the bases in an inner split.
        n_estimators: Boosting rounds of the ranker.
        learning_rate: Its shrinkage.
        num_leaves: Leaves per tree.
        min_child_samples: Fewest rows per leaf.
        seed: Seed of the inner splits and of LightGBM.
        num_threads: LightGBM threads (0 = its default).
    """

    name = "stacker"

    def __init__(self, bases: Sequence[Base] | None = None, candidates: int = 100,
                 folds: int = 2, inner_ratio: float = 0.75, n_estimators: int = 300,
                 learning_rate: float = 0.05, num_leaves: int = 31,
                 min_child_samples: int = 50, seed: int = 42, num_threads: int = 0) -> None:
        self.bases = bases
        self.candidates = candidates
        self.folds = folds
        self.inner_ratio = inner_ratio
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.seed = seed
        self.num_threads = num_threads

    # ------------------------------------------------------------------ config
    def _specs(self) -> list[Base]:
        specs = DEFAULT_BASES if self.bases is None else self.bases
        out = []
        for spec in specs:
            if len(spec) not in (1, 2):
                raise ConfigError(f"a base is (name[, params]), got {spec!r}")
            name = str(spec[0])
            params = dict(spec[1]) if len(spec) == 2 and spec[1] else {}
            if name in (self.name, "hybrid"):
                raise ConfigError(f"a stacker cannot stack {name!r}")
            if name not in Recommender.registry:
                raise ConfigError(f"unknown base {name!r}; choose one of "
                                  f"{sorted(Recommender.registry)}")
            out.append((name, params))
        if not out:
            raise ConfigError("a stacker needs at least one base")
        return out

    def _lgb_params(self) -> dict[str, Any]:
        return {"objective": "lambdarank", "metric": "ndcg", "eval_at": [10],
                "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
                "min_data_in_leaf": self.min_child_samples, "feature_fraction": 0.8,
                "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
                "seed": self.seed, "deterministic": True, "force_row_wise": True,
                "num_threads": self.num_threads, "verbosity": -1}

    # ------------------------------------------------------------------ features
    def _features(self, models: Sequence[Recommender], side: dict[str, np.ndarray],
                  rows: np.ndarray | None, hist: sp.csr_matrix
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features (users*N x F), candidate columns (users x N) and base-0 scores."""
        n_users, n_items = hist.shape
        n_cand = min(self.candidates, n_items)
        scores = []
        for m in models:
            s = m._score_rows(rows) if rows is not None else m._score_history(hist)
            s = np.zeros((n_users, n_items), np.float32) if s is None else s
            s = np.asarray(s, dtype=np.float32).copy()
            s[~np.isfinite(s)] = np.nan
            scores.append(s)
        r, c = hist.nonzero()
        first = np.nan_to_num(scores[0], nan=-np.inf)
        first[r, c] = -np.inf
        cand = np.argpartition(-first, n_cand - 1, axis=1)[:, :n_cand]
        cand = np.take_along_axis(cand, np.argsort(-np.take_along_axis(first, cand, axis=1),
                                                   axis=1, kind="stable"), axis=1)
        rr = np.arange(n_users)[:, None]
        feats = []
        for s in scores:
            s[r, c] = np.nan  # statistics over unseen items only
            with np.errstate(invalid="ignore", divide="ignore"), \
                    np.testing.suppress_warnings() as sup:
                sup.filter(RuntimeWarning)
                mu = np.nanmean(s, axis=1, keepdims=True)
                sd = np.nanstd(s, axis=1, keepdims=True)
                top = np.nanmax(s, axis=1, keepdims=True)
            cs = s[rr, cand]
            filled = np.nan_to_num(cs, nan=-np.inf)
            rank = np.argsort(np.argsort(-filled, axis=1, kind="stable"), axis=1,
                              kind="stable").astype(np.float32) / n_cand
            with np.errstate(invalid="ignore", divide="ignore"):
                z = (cs - mu) / np.where(sd > 0, sd, 1.0)
                share = cs / np.where(np.abs(top) > 0, np.abs(top), 1.0)
            feats += [cs, z, rank, share]
        for k in _ITEM_STATS:
            feats.append(side[f"item_{k}"][cand])
        urow = {}
        for k in _USER_STATS:
            v = side[f"user_{k}"]
            urow[k] = v[rows] if rows is not None else v
            feats.append(np.broadcast_to(urow[k][:, None], cand.shape))
        feats.append(side["item_ts_first"][cand] - urow["ts_last"][:, None])
        feats.append(side["item_ts_last"][cand] - urow["ts_first"][:, None])
        feats.append(side["item_ts_mean"][cand] - urow["ts_mean"][:, None])
        x = np.stack([np.asarray(f, dtype=np.float32) for f in feats], axis=2)
        return x.reshape(n_users * n_cand, -1), cand, scores[0]

    def _fit_bases(self, data: Interactions) -> list[Recommender]:
        return [Recommender.registry[name](**params).fit(data) for name, params in self._specs()]

    # ------------------------------------------------------------------ fit
    def _fit(self, data: Interactions) -> None:
        import lightgbm as lgb

        from feedwise.evaluation.splits import random_split

        if self.candidates < 2 or self.folds < 1 or not 0 < self.inner_ratio < 1:
            raise ConfigError("need candidates >= 2, folds >= 1 and 0 < inner_ratio < 1; got "
                              f"{self.candidates}, {self.folds}, {self.inner_ratio}")
        self._specs()
        xs, ys, groups = [], [], []
        for f in range(self.folds):
            split = random_split(data, self.inner_ratio, seed=self.seed + f)
            models = self._fit_bases(split.train)
            side = self._with_globals(_side_stats(split.train), split.train)
            truth = split.test.matrix
            users = np.flatnonzero(np.diff(truth.indptr) > 0)
            for start in range(0, len(users), 256):
                rows = users[start:start + 256]
                x, cand, _ = self._features(models, side, rows, split.train.matrix[rows])
                t = truth[rows]
                y = np.zeros(cand.shape, dtype=np.float32)
                for b in range(len(rows)):
                    y[b] = np.isin(cand[b], t.indices[t.indptr[b]:t.indptr[b + 1]])
                keep = y.sum(axis=1) > 0  # groups without a positive carry no gradient
                n_cand = cand.shape[1]
                x = x.reshape(len(rows), n_cand, -1)[keep]
                xs.append(x.reshape(-1, x.shape[2]))
                ys.append(y[keep].ravel())
                groups += [n_cand] * int(keep.sum())
        if not groups:
            raise ConfigError("no held-out engagement fell into the candidate lists; the data "
                              "is too small for a stacker")
        train = lgb.Dataset(np.concatenate(xs), np.concatenate(ys), group=groups,
                            free_raw_data=True)
        booster = lgb.train(self._lgb_params(), train, num_boost_round=self.n_estimators)
        self.ranker_ = booster.model_to_string()
        self._booster = booster
        self._models = self._fit_bases(data)
        self.side_ = self._with_globals(_side_stats(data), data)

    @staticmethod
    def _with_globals(side: dict[str, np.ndarray], data: Interactions) -> dict[str, np.ndarray]:
        x = sp.csr_matrix(data.matrix, dtype=np.float32)
        act = np.diff(x.indptr)
        lw = np.log1p(np.maximum(x.data, 0))
        side["_mean_activity"] = np.array([max(act.mean(), 1e-9)], np.float32)
        side["_gmean"] = np.array([lw.mean() if len(lw) and lw.mean() > 0 else 1.0],
                                  np.float32)
        return side

    @property
    def models_(self) -> list[Recommender]:
        """The fitted base recommenders."""
        return self._models

    # ------------------------------------------------------------------ scoring
    def _booster_(self):
        b = getattr(self, "_booster", None)
        if b is None:
            import lightgbm as lgb

            b = self._booster = lgb.Booster(model_str=str(self.ranker_))
        return b

    def _rerank(self, rows: np.ndarray | None, hist: sp.csr_matrix) -> np.ndarray:
        side = self.side_ if rows is not None else {**self.side_,
                                                     **_fold_in_side(self.side_, hist)}
        x, cand, first = self._features(self._models, side, rows, hist)
        pred = self._booster_().predict(x, num_threads=self.num_threads)
        pred = np.asarray(pred, dtype=np.float32).reshape(cand.shape)
        # items outside the candidate list: below every candidate, in the first base's order
        f = np.nan_to_num(first, nan=np.nanmin(first) if np.isfinite(first).any() else 0.0)
        lo, hi = f.min(axis=1, keepdims=True), f.max(axis=1, keepdims=True)
        out = (pred.min(axis=1, keepdims=True) - 2.0
               + (f - lo) / np.where(hi > lo, hi - lo, 1.0)).astype(np.float32)
        np.put_along_axis(out, cand, pred, axis=1)
        return out

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        return self._rerank(rows, self.seen_[rows])

    def _score_history(self, history: sp.csr_matrix) -> np.ndarray:
        return self._rerank(None, history)

    def _explain(self, history: sp.csr_matrix, cols: list[np.ndarray]) -> list[list[str]]:
        return self._models[0]._explain(history, cols)

    # ------------------------------------------------------------------ privacy
    def _forget_rows(self, rows: np.ndarray, user_id: str) -> bool:
        if len(rows):
            for k in list(self.side_):
                if k.startswith("user_"):
                    v = self.side_[k].copy()
                    v[rows] = np.nan
                    self.side_[k] = v
        return super()._forget_rows(rows, user_id)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict:
        state: dict[str, Any] = {"ranker": np.array(self.ranker_)}
        for k, v in self.side_.items():
            state[f"side__{k}"] = v
        for k, model in enumerate(self._models):
            for key, v in model._state().items():
                state[f"c{k}__{key}"] = v
        return state

    def _set_state(self, state: dict) -> None:
        self.ranker_ = str(np.asarray(state["ranker"]))
        self._booster = None
        self.side_ = {key[len("side__"):]: np.asarray(v) for key, v in state.items()
                      if key.startswith("side__")}
        models = []
        for k, (name, params) in enumerate(self._specs()):
            model = Recommender.registry[name](**params)
            for attr in ("user_ids_", "item_ids_", "user_index_", "item_index_", "seen_",
                         "negatives_", "item_labels_", "popularity_"):
                setattr(model, attr, getattr(self, attr))
            prefix = f"c{k}__"
            model._set_state({key[len(prefix):]: v for key, v in state.items()
                              if key.startswith(prefix)})
            models.append(model)
        self._models = models
