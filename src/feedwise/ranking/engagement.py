"""The engagement model P(y=1 | x) = sigmoid(θ·φ(x)) and its multi-objective value.

:class:`EngagementModel` is one binary model (logistic regression by default; LightGBM with
``kind="gbdt"`` behind the ``gbdt`` extra). :class:`MultiObjectiveModel` holds one per
objective (click, like, comment, share, long dwell, hide, report) and scores the value
``Σ_k w_k · p_k`` (negative weights for hide and report). :func:`holdout_report` measures
AUC, log-loss and expected calibration error on a temporal hold-out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from feedwise.errors import ConfigError, DataError, NotFittedError
from feedwise.ranking.features import FEATURE_NAMES


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -35, 35)))


class EngagementModel:
    """Binary engagement model.

    Args:
        kind: ``logistic`` (scikit-learn) or ``gbdt`` (LightGBM; ``pip install
            'feedwise[gbdt]'``).
        C: Inverse L2 strength of the logistic regression.
        n_estimators, learning_rate, num_leaves: LightGBM settings.
        seed: Random seed (LightGBM).
    """

    def __init__(self, kind: str = "logistic", C: float = 1.0, n_estimators: int = 200,
                 learning_rate: float = 0.05, num_leaves: int = 31, seed: int = 0) -> None:
        self.kind = kind
        self.C = C
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        """Fit on features ``X`` (n x d) and 0/1 labels ``y``."""
        X = np.asarray(X, np.float64)
        y = np.asarray(y).astype(int)
        if len(X) != len(y) or len(X) == 0:
            raise DataError(f"need equal, non-zero numbers of rows, got {len(X)} and {len(y)}")
        if self.kind not in ("logistic", "gbdt"):
            raise ConfigError(f"kind must be 'logistic' or 'gbdt', got {self.kind!r}")
        self.n_features_ = X.shape[1]
        self.mean_ = X.mean(axis=0)
        self.scale_ = X.std(axis=0) + 1e-9
        rate = float(y.mean())
        if rate in (0.0, 1.0):  # one class only: a constant model
            self.coef_ = np.zeros(X.shape[1])
            self.intercept_ = float(np.log((rate + 1e-6) / (1 - rate + 1e-6)))
            self.booster_ = None
            return self
        if self.kind == "logistic":
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(C=self.C, max_iter=500)
            lr.fit((X - self.mean_) / self.scale_, y)
            self.coef_ = lr.coef_.ravel() / self.scale_
            shift = (self.mean_ / self.scale_) @ lr.coef_.ravel()
            self.intercept_ = float(lr.intercept_[0] - shift)
            self.booster_ = None
        else:
            try:
                import lightgbm as lgb
            except ImportError:
                raise ConfigError("kind='gbdt' needs LightGBM: pip install 'feedwise[gbdt]'"
                                  ) from None
            clf = lgb.LGBMClassifier(n_estimators=self.n_estimators,
                                     learning_rate=self.learning_rate,
                                     num_leaves=self.num_leaves, random_state=self.seed,
                                     verbose=-1)
            clf.fit(X, y)
            self.booster_ = clf.booster_
            self.coef_ = np.zeros(X.shape[1])
            self.intercept_ = 0.0
        return self

    def _check(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("EngagementModel is not fitted: call fit(X, y) first")

    @property
    def linear(self) -> bool:
        """Whether the model is ``sigmoid(coef_ · x + intercept_)`` (fast batched scoring)."""
        self._check()
        return self.booster_ is None

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(y=1 | x) per row."""
        self._check()
        if self.booster_ is not None:
            return np.asarray(self.booster_.predict(np.asarray(X, np.float64)), np.float64)
        return _sigmoid(np.asarray(X, np.float64) @ self.coef_ + self.intercept_)

    def to_dict(self) -> dict[str, Any]:
        self._check()
        d = {"kind": self.kind, "C": self.C, "coef": self.coef_.tolist(),
             "intercept": self.intercept_}
        if self.booster_ is not None:
            d["booster"] = self.booster_.model_to_string()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EngagementModel:
        m = cls(kind=d["kind"], C=d.get("C", 1.0))
        m.coef_ = np.asarray(d["coef"], np.float64)
        m.intercept_ = float(d["intercept"])
        m.n_features_ = len(m.coef_)
        m.booster_ = None
        if "booster" in d:
            import lightgbm as lgb

            m.booster_ = lgb.Booster(model_str=d["booster"])
        return m


DEFAULT_WEIGHTS: dict[str, float] = {"click": 1.0, "like": 2.0, "comment": 3.0, "share": 4.0,
                                     "long_dwell": 1.0, "hide": -5.0, "report": -20.0}


class MultiObjectiveModel:
    """One engagement model per objective and the weighted value ``Σ_k w_k · p_k``.

    Args:
        objectives: Objective names (columns of the label frame).
        kind, C: Passed to each :class:`EngagementModel`.
    """

    def __init__(self, objectives: Sequence[str] = tuple(DEFAULT_WEIGHTS), kind: str = "logistic",
                 C: float = 1.0) -> None:
        self.objectives = objectives
        self.kind = kind
        self.C = C

    def fit(self, X: np.ndarray, labels: pd.DataFrame | Mapping[str, np.ndarray]) -> Self:
        """Fit every objective on the same features."""
        self.models_: dict[str, EngagementModel] = {}
        for obj in self.objectives:
            if obj not in labels:
                raise DataError(f"no labels for objective {obj!r}")
            self.models_[obj] = EngagementModel(self.kind, self.C).fit(
                X, np.asarray(labels[obj]))
        self._stack()
        return self

    def _stack(self) -> None:
        objs = list(self.models_)
        self.linear_ = all(m.linear for m in self.models_.values())
        if self.linear_:
            self.W_ = np.stack([self.models_[o].coef_ for o in objs], axis=1).astype(np.float32)
            self.b_ = np.array([self.models_[o].intercept_ for o in objs], np.float32)

    def _check(self) -> None:
        if not hasattr(self, "models_"):
            raise NotFittedError("MultiObjectiveModel is not fitted: call fit(X, labels) first")

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Probability of each objective per row."""
        self._check()
        if self.linear_:
            P = _sigmoid(X @ self.W_ + self.b_)
            return {o: P[:, k] for k, o in enumerate(self.models_)}
        return {o: m.predict_proba(X) for o, m in self.models_.items()}

    def value(self, X: np.ndarray, weights: Mapping[str, float]) -> np.ndarray:
        """``Σ_k w_k · p_k`` per row (objectives without a weight count 0)."""
        self._check()
        w = np.array([weights.get(o, 0.0) for o in self.models_], np.float32)
        if self.linear_:
            return _sigmoid(X @ self.W_ + self.b_) @ w
        p = self.predict(X)
        return sum(w[k] * p[o] for k, o in enumerate(self.models_))

    def save(self, path: str | Path) -> Path:
        """Write ``engagement.json`` (coefficients; LightGBM as its text model)."""
        self._check()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        doc = {"format": 1, "features": list(FEATURE_NAMES), "kind": self.kind, "C": self.C,
               "models": {o: m.to_dict() for o, m in self.models_.items()}}
        (path / "engagement.json").write_text(json.dumps(doc))
        return path

    @classmethod
    def load(cls, path: str | Path) -> MultiObjectiveModel:
        doc = json.loads((Path(path) / "engagement.json").read_text())
        m = cls(tuple(doc["models"]), doc["kind"], doc["C"])
        m.models_ = {o: EngagementModel.from_dict(d) for o, d in doc["models"].items()}
        m._stack()
        return m


# ---------------------------------------------------------------------------- metrics
def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (ties share rank); NaN with one class only."""
    y = np.asarray(y).astype(bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = pd.Series(np.asarray(p)).rank(method="average").to_numpy()
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def log_loss(y: np.ndarray, p: np.ndarray, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood."""
    y = np.asarray(y, np.float64)
    p = np.clip(np.asarray(p, np.float64), eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10,
                               strategy: str = "uniform") -> float:
    """ECE: the row-weighted mean |observed rate − mean prediction| over bins of the
    prediction: equal-width (``strategy="uniform"``) or equal-count (``"quantile"``; for
    rare outcomes, whose predictions all fall in the first equal-width bin)."""
    y = np.asarray(y, np.float64)
    p = np.asarray(p, np.float64)
    if len(y) == 0:
        return float("nan")
    if strategy == "quantile":
        b = np.empty(len(p), np.int64)
        b[np.argsort(p, kind="stable")] = np.arange(len(p)) * bins // len(p)
    elif strategy == "uniform":
        b = np.minimum((p * bins).astype(int), bins - 1)
    else:
        raise ConfigError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    cnt = np.bincount(b, minlength=bins)
    sy = np.bincount(b, weights=y, minlength=bins)
    sp_ = np.bincount(b, weights=p, minlength=bins)
    nz = cnt > 0
    return float(np.sum(np.abs(sy[nz] - sp_[nz])) / len(y))


def temporal_split(ts: np.ndarray, holdout: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, test): the latest ``holdout`` fraction of rows by time is test."""
    if not 0 < holdout < 1:
        raise ConfigError(f"holdout must be in (0, 1), got {holdout}")
    ts = np.asarray(ts)
    cut = np.quantile(ts.astype(np.float64), 1 - holdout)
    test = ts.astype(np.float64) > cut
    if test.all() or not test.any():
        order = np.argsort(ts, kind="stable")
        test = np.zeros(len(ts), bool)
        test[order[int(len(ts) * (1 - holdout)):]] = True
    return ~test, test


def holdout_report(X: np.ndarray, labels: pd.DataFrame, ts: np.ndarray,
                   objectives: Sequence[str] = ("engage",) + tuple(DEFAULT_WEIGHTS),
                   holdout: float = 0.2, kind: str = "logistic", C: float = 1.0
                   ) -> tuple[MultiObjectiveModel, pd.DataFrame]:
    """Fit on the earlier rows, report AUC, log-loss and ECE per objective on the later ones.

    Returns:
        The model fitted on the training part, and one report row per objective
        (``objective, n_train, n_test, positive_rate, auc, log_loss, ece``).
    """
    train, test = temporal_split(ts, holdout)
    objectives = [o for o in objectives if o in labels]
    model = MultiObjectiveModel(objectives, kind, C).fit(X[train], labels[train])
    probs = model.predict(X[test])
    rows = []
    for o in objectives:
        y = np.asarray(labels[o])[test]
        rows.append({"objective": o, "n_train": int(train.sum()), "n_test": int(test.sum()),
                     "positive_rate": float(y.mean()) if len(y) else float("nan"),
                     "auc": roc_auc(y, probs[o]), "log_loss": log_loss(y, probs[o]),
                     "ece": expected_calibration_error(y, probs[o])})
    return model, pd.DataFrame(rows)
