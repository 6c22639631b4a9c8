"""Text that ranks: post text as engagement signals, learned from engagement.

:class:`TextEngagement` turns each post's text (title and body) into a vector and learns,
from logged impressions and whether they were engaged, two signals per (user, post):

``text_appeal``
    A projection of the post's vector learned from engagement: a logistic regression of
    "engaged" on the vector over all impressions (fitted on per-post counts, so it is cheap).
    It finds the words (or, with embeddings, the meanings) that draw engagement, whatever
    the topic.
``text_match``
    The user's profile in the same space: the summed vectors of the posts the user engaged
    with minus what the user's own engagement rate predicts of the posts shown to them
    (``Σ engaged v − rate_u · Σ shown v``, shrunk by ``shrinkage`` impressions), dotted with
    the post's vector. A user who engages with giveaway posts more than with the rest gets
    a profile pointing at "giveaway".

Vectors are the shipped MiniLM sentence embeddings when the ``text`` extra is installed
(``features="embeddings"``, or ``"auto"``), else hashed word counts (``"hashing"``: words
and hashtags, ``n_features`` buckets, L2-normalised), which need nothing beyond
scikit-learn; ``"auto"`` falls back to hashing without the extra.

Training rows get **cross-fitted** signals (:meth:`TextEngagement.fit_transform`, as
scikit-learn's ``TargetEncoder`` does): posts are split into ``n_folds`` groups and a row's
signals come from a model fitted without its post's group, so the engagement model that
stacks them is not trained on signals that saw its own labels. :meth:`transform` (serving,
hold-out) uses the model fitted on everything.

Saved as ``.npz`` (coefficients, profiles) + JSON (settings, user ids); never pickled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from feedwise.errors import ConfigError, DataError, NotFittedError
from feedwise.text import embeddings

TEXT_FEATURE_NAMES: tuple[str, ...] = ("text_appeal", "text_match")
FEATURES: tuple[str, ...] = ("auto", "embeddings", "hashing")
FORMAT = "feedwise.TextEngagement/1"
TOKEN_PATTERN = r"(?u)#?\b\w\w+\b"
MAX_CHARS = 10_000


def _texts(values: Sequence[Any]) -> list[str]:
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append("")
        elif isinstance(v, bytes | bytearray):
            out.append(bytes(v).decode("utf-8", "replace")[:MAX_CHARS])
        else:
            out.append(str(v)[:MAX_CHARS])
    return out


def _fold(item_ids: Sequence[str], n_folds: int) -> np.ndarray:
    """A stable fold per post (a hash of its id)."""
    return np.array([int(hashlib.md5(str(i).encode()).hexdigest()[:8], 16) % n_folds
                     for i in item_ids], np.int64)


class TextEngagement:
    """Post-text engagement signals (see the module doc).

    Args:
        features: ``auto`` (embeddings with the ``text`` extra, else hashing),
            ``embeddings`` (needs the extra) or ``hashing``.
        n_features: Buckets of the hashed word vectors.
        C: Inverse L2 strength of the appeal regression.
        shrinkage: Impressions added to each user's profile denominator.
        n_folds: Post folds of the cross-fitted training signals.
        signals: Which signals :meth:`transform` and :meth:`fit_transform` return, in order
            (``text_appeal``, ``text_match``). The default is appeal alone: stacked beside
            the engine's profile features, which are computed in-sample on the training
            period, the honest (cross-fitted) match lowered the hold-out AUC in the
            benchmark (it lets the model isolate the profiles' in-sample part); the
            profiles still drive :class:`~feedwise.feed.candidates.TextProfileSource`.
    """

    def __init__(self, features: str = "auto", n_features: int = 1024, C: float = 1.0,
                 shrinkage: float = 20.0, n_folds: int = 5,
                 signals: Sequence[str] = ("text_appeal",)) -> None:
        self.signals = tuple(signals)
        self.features = features
        self.n_features = n_features
        self.C = C
        self.shrinkage = shrinkage
        self.n_folds = n_folds

    # ------------------------------------------------------------------ vectors
    def _mode(self) -> str:
        if self.features not in FEATURES:
            raise ConfigError(f"features must be one of {', '.join(FEATURES)}, got "
                              f"{self.features!r}")
        if self.features == "auto":
            return "embeddings" if embeddings.available() else "hashing"
        return self.features

    def vectors(self, texts: Sequence[Any]) -> np.ndarray:
        """Unit-length vectors of ``texts`` (empty text: a zero vector)."""
        mode = getattr(self, "mode_", None) or self._mode()
        t = _texts(texts)
        if mode == "embeddings":
            V = embeddings.embed(t).astype(np.float32)
            V[np.array([not s.strip() for s in t], bool)] = 0.0
            return V
        from sklearn.feature_extraction.text import HashingVectorizer

        hv = HashingVectorizer(n_features=int(self.n_features), alternate_sign=False,
                               norm="l2", token_pattern=TOKEN_PATTERN, lowercase=True)
        return hv.transform(t).toarray().astype(np.float32)

    # ------------------------------------------------------------------ fit
    def _fit_parts(self, V: np.ndarray, item: np.ndarray, user: np.ndarray, y: np.ndarray,
                   n_users: int) -> tuple[np.ndarray, float, np.ndarray]:
        """(w, b, profiles) from impressions (item rows of V, user codes, labels)."""
        from sklearn.linear_model import LogisticRegression

        n_items, d = V.shape
        shown = np.bincount(item, minlength=n_items).astype(np.float64)
        pos = np.bincount(item, weights=y, minlength=n_items)
        has = shown > 0
        w, b = np.zeros(d, np.float32), 0.0
        if has.any() and 0 < pos.sum() < shown.sum():
            X = np.vstack([V[has], V[has]])
            lab = np.r_[np.ones(has.sum()), np.zeros(has.sum())]
            wt = np.r_[pos[has], shown[has] - pos[has]]
            keep = wt > 0
            lr = LogisticRegression(C=self.C, max_iter=1000)
            lr.fit(X[keep], lab[keep], sample_weight=wt[keep])
            w, b = lr.coef_.ravel().astype(np.float32), float(lr.intercept_[0])
        # user profiles: engaged vectors minus what the user's rate predicts
        n_u = np.bincount(user, minlength=n_users).astype(np.float64)
        rate = np.bincount(user, weights=y, minlength=n_users) / np.maximum(n_u, 1.0)
        coef = (y - rate[user]) / (n_u[user] + self.shrinkage)
        S = sp.csr_matrix((coef, (user, item)), shape=(n_users, n_items))  # sums duplicates
        P = np.asarray(S @ V, np.float32)
        return w, b, P

    def _prepare(self, item_texts: Mapping[str, Any] | pd.Series, imps: pd.DataFrame,
                 label: str) -> tuple[np.ndarray, list[str], np.ndarray, list[str], np.ndarray,
                                      np.ndarray]:
        need = {"user_id", "item_id", label}
        if not need <= set(imps.columns):
            raise DataError(f"impressions need columns {sorted(need)}; have "
                            f"{list(imps.columns)}")
        if len(imps) == 0:
            raise DataError("no impressions to learn text signals from")
        if self.n_folds < 2:
            raise ConfigError(f"n_folds must be >= 2, got {self.n_folds}")
        texts = pd.Series(item_texts) if not isinstance(item_texts, pd.Series) else item_texts
        texts.index = texts.index.astype(str)
        item_ids = pd.unique(imps["item_id"].astype(str))
        item_codes = pd.Index(item_ids).get_indexer(imps["item_id"].astype(str))
        user_ids = list(pd.unique(imps["user_id"].astype(str)))
        user_codes = pd.Index(user_ids).get_indexer(imps["user_id"].astype(str))
        V = self.vectors(texts.reindex(item_ids).tolist())
        y = np.asarray(imps[label], np.float64)
        return V, list(item_ids), item_codes, user_ids, user_codes, y

    def fit(self, item_texts: Mapping[str, Any] | pd.Series, imps: pd.DataFrame,
            label: str = "engage") -> Self:
        """Learn the appeal projection and user profiles from impressions.

        Args:
            item_texts: Post id -> text (title and body).
            imps: One row per impression: ``user_id``, ``item_id`` and the 0/1 ``label``
                column (e.g. from :func:`~feedwise.ranking.features.label_impressions`).
            label: The engagement column.
        """
        bad = [x for x in self.signals if x not in TEXT_FEATURE_NAMES]
        if bad or not self.signals:
            raise ConfigError(f"signals must be a non-empty subset of {TEXT_FEATURE_NAMES}")
        self.mode_ = self._mode()
        V, _, item, users, user, y = self._prepare(item_texts, imps, label)
        self.coef_, self.intercept_, self.profiles_ = self._fit_parts(V, item, user, y,
                                                                      len(users))
        self.user_index_ = {u: i for i, u in enumerate(users)}
        self.dim_ = V.shape[1]
        self._item_cache: dict[str, np.ndarray] = {}
        return self

    def fit_transform(self, item_texts: Mapping[str, Any] | pd.Series, imps: pd.DataFrame,
                      label: str = "engage") -> np.ndarray:
        """Fit on ``imps`` and return their **cross-fitted** signals (``n x 2``): each row's
        from a model fitted without the row's post fold."""
        self.fit(item_texts, imps, label)
        V, items, item, users, user, y = self._prepare(item_texts, imps, label)
        fold = _fold(items, self.n_folds)[item]
        out = np.zeros((len(imps), 2), np.float32)
        for f in range(self.n_folds):
            test = fold == f
            if not test.any():
                continue
            w, b, P = self._fit_parts(V, item[~test], user[~test], y[~test], len(users))
            Vi = V[item[test]]
            out[test, 0] = Vi @ w + b
            out[test, 1] = np.einsum("ij,ij->i", Vi, P[user[test]])
        return out[:, self._cols()]

    def _cols(self) -> list[int]:
        return [TEXT_FEATURE_NAMES.index(x) for x in self.signals]

    # ------------------------------------------------------------------ use
    def _check(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("TextEngagement is not fitted: call fit(item_texts, imps)")

    def set_items(self, item_ids: Sequence[Any], texts: Sequence[Any]) -> Self:
        """Vectorise posts once for :meth:`transform` (a catalogue's posts)."""
        self._check()
        V = self.vectors(texts)
        self._item_cache = {str(i): V[k] for k, i in enumerate(item_ids)}
        self._item_matrix = V
        self._item_ids = np.asarray([str(i) for i in item_ids], dtype=object)
        return self

    def item_matrix(self) -> np.ndarray:
        """Vectors of the posts given to :meth:`set_items` (in that order)."""
        self._check()
        return getattr(self, "_item_matrix", np.zeros((0, self.dim_), np.float32))

    def user_vector(self, user_id: str) -> np.ndarray | None:
        """The user's profile (``None`` for a user without one)."""
        self._check()
        r = self.user_index_.get(str(user_id))
        return None if r is None else self.profiles_[r]

    def score_vectors(self, user_id: str | None, V: np.ndarray) -> np.ndarray:
        """``(n, 2)`` signals of posts with vectors ``V`` for one user."""
        self._check()
        out = np.zeros((len(V), 2), np.float32)
        if len(V):
            out[:, 0] = V @ self.coef_ + self.intercept_
            p = self.user_vector(user_id) if user_id is not None else None
            if p is not None:
                out[:, 1] = V @ p
        return out

    def transform(self, user_ids: Sequence[Any], item_ids: Sequence[Any],
                  item_texts: Mapping[str, Any] | None = None) -> np.ndarray:
        """``(n, len(signals))`` signals of (user, post) pairs.

        Posts come from :meth:`set_items` or ``item_texts``; an unknown post or one without
        text scores its intercept and no match.
        """
        self._check()
        ids = [str(i) for i in item_ids]
        cache = getattr(self, "_item_cache", {})
        missing = [i for i in dict.fromkeys(ids) if i not in cache]
        if missing:
            src = item_texts if item_texts is not None else {}
            V = self.vectors([src.get(i, "") for i in missing])
            cache = {**cache, **{i: V[k] for k, i in enumerate(missing)}}
            if item_texts is not None:
                self._item_cache = cache
        V = (np.stack([cache[i] for i in ids]) if ids
             else np.zeros((0, self.dim_), np.float32))
        out = np.zeros((len(ids), 2), np.float32)
        if not ids:
            return out[:, self._cols()]
        out[:, 0] = V @ self.coef_ + self.intercept_
        rows = np.array([self.user_index_.get(str(u), -1) for u in user_ids], np.int64)
        ok = rows >= 0
        if ok.any():
            out[ok, 1] = np.einsum("ij,ij->i", V[ok], self.profiles_[rows[ok]])
        return out[:, self._cols()]

    def forget_user(self, user_id: str) -> bool:
        """Drop the user's profile (erasure)."""
        self._check()
        r = self.user_index_.pop(str(user_id), None)
        if r is None:
            return False
        self.profiles_ = np.array(self.profiles_, copy=True)
        self.profiles_[r] = 0.0
        return True

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write ``PATH.npz`` (coefficients, profiles) and ``PATH.json`` (settings, ids)."""
        self._check()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path.with_suffix(".npz"), coef=self.coef_, profiles=self.profiles_)
        users = [None] * len(self.profiles_)
        for u, r in self.user_index_.items():
            users[r] = u
        doc = {"format": FORMAT, "features": self.features, "mode": self.mode_,
               "n_features": self.n_features, "C": self.C, "shrinkage": self.shrinkage,
               "n_folds": self.n_folds, "signals": list(self.signals),
               "intercept": self.intercept_, "dim": self.dim_,
               "users": users}
        path.with_suffix(".json").write_text(json.dumps(doc))
        return path

    @classmethod
    def load(cls, path: str | Path) -> TextEngagement:
        path = Path(path)
        doc = json.loads(path.with_suffix(".json").read_text())
        if doc.get("format") != FORMAT:
            raise DataError(f"{path.with_suffix('.json')}: not a TextEngagement model "
                            f"(format {doc.get('format')!r})")
        m = cls(doc["features"], doc["n_features"], doc["C"], doc["shrinkage"], doc["n_folds"],
                tuple(doc.get("signals", ("text_appeal",))))
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as z:
            m.coef_ = z["coef"].astype(np.float32)
            m.profiles_ = z["profiles"].astype(np.float32)
        m.mode_, m.intercept_, m.dim_ = doc["mode"], float(doc["intercept"]), int(doc["dim"])
        m.user_index_ = {u: r for r, u in enumerate(doc["users"]) if u is not None}
        m._item_cache = {}
        return m
