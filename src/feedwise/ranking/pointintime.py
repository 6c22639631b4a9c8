"""Point-in-time training of the engagement model: every feature from the past of its row.

A training row is one logged impression ``(user, post, t, position)``; its labels are what the
user did with the post within the response window after ``t``
(:func:`~feedwise.ranking.features.label_impressions`). Its features
(:data:`~feedwise.ranking.features.FEATURE_NAMES`) are the ones the engine would have served
at ``t``, each computed from the events **strictly before** ``t`` (``ts < t``):

* ``log_popularity``: distinct users with an engagement or dwell on the post before ``t``
  (as :meth:`EventStore.engagement_counts` counts them at serving time);
* ``author_affinity``: the user's engagements (click, like, comment, share, save, rating)
  on the author's posts before ``t``, each counted once per tag of the post (as the serving
  profile, built from ``author_tag_affinity``, counts them);
* ``tag_match``: cosine of the post's tags with the user's interest profile at ``t`` (the
  declared interests of the users table plus the tags of the user's engagements before
  ``t``); zero, like ``author_affinity``, for unknown users and without personalisation
  consent. Stored profiles (``user_profiles``) carry no time, so they are not used;
* ``log_age_hours``, ``hour_sin/cos``, ``log_position``: from ``t`` and the post alone;
* ``ad_exposure``: the user's ad impressions in the window before ``t``;
* ``rec_score``: the personal score of a recommender **fitted on the events before a cut
  that precedes** ``t`` (rolling folds: the recommender is refitted at each cut and scores
  the impressions up to the next one), so it has never seen the row's label nor anything
  after the cut.

A row's features therefore do not change when events at or after ``t`` are changed or
deleted (``tests/ranking/test_pointintime_features.py`` checks it), and the label's own
engagement (always after ``t``) never enters them.

Protocol of :func:`fit_point_in_time` (fractions of the impression log's time span):

``[0, warmup)``
    history only: its events feed the counts and the first recommender, no training rows;
``[warmup, 1 − holdout − calibration)``
    training rows (the logistic model per objective);
``[1 − holdout − calibration, 1 − holdout)``
    the temporal validation slice: the L2 strength ``C`` is chosen there (log-loss), then
    each objective's calibration step: a shift ``σ(z + b)`` (profile features drift as
    histories lengthen, so the latest slice sets the level), or Platt ``σ(a·z + b)`` when,
    fitted on the slice's first half, it has the lower log-loss on its second half (refitted
    on the whole slice; none for an objective with too few positives there). The step is
    folded into the linear model, so the served model stays ``σ(θ·φ(x))``;
``[1 − holdout, 1]``
    the hold-out, reported once: per objective positives, base rate, log-loss of the model
    and of the constant (the training and validation rate), mean prediction, ECE and AUC.

Rows whose response window crosses a boundary (impressions less than ``window_s`` before the
next part begins) are dropped, so no label of one part is decided by events of the next.
The returned model is the one fitted before the hold-out (the one the report measures).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from feedwise.errors import ConfigError, DataError
from feedwise.ranking.engagement import (
    DEFAULT_WEIGHTS,
    EngagementModel,
    MultiObjectiveModel,
    expected_calibration_error,
    log_loss,
    roc_auc,
)
from feedwise.ranking.features import build_features, label_impressions

#: Kinds that count toward a post's popularity (``EventStore.engagement_counts``).
POPULARITY_KINDS: tuple[str, ...] = ("click", "like", "comment", "share", "save", "dwell",
                                     "rating")
#: Kinds that build interests and author affinity (``EventStore.author_tag_affinity``).
AFFINITY_KINDS: tuple[str, ...] = ("click", "like", "comment", "share", "save", "rating")
#: Objectives of the hold-out report (``engage`` plus the weighted ones).
REPORT_OBJECTIVES: tuple[str, ...] = ("engage", *DEFAULT_WEIGHTS)
#: L2 strengths tried on the validation slice.
C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0)

#: Fewest training rows; fewer validation rows than :data:`MIN_VALIDATION_ROWS` skip the
#: choice of ``C`` and the calibration step.
MIN_TRAIN_ROWS = 20
MIN_VALIDATION_ROWS = 20
#: Fewest validation positives (and negatives) for the Platt step; fewer keep the raw model.
MIN_PLATT_POSITIVES = 30

#: ``(user ids, item ids) -> score of each (user, item) pair`` of one fitted recommender
#: (NaN or 0 for pairs it cannot score).
Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def seconds(ts: Any) -> np.ndarray:
    """Unix seconds (float) of a column of timestamps."""
    t = pd.to_datetime(pd.Series(np.asarray(ts)) if not isinstance(ts, pd.Series) else ts,
                       utc=True)
    return (t - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(np.float64)


def sums_before(ev_key: np.ndarray, ev_t: np.ndarray, q_key: np.ndarray, q_t: np.ndarray,
                ev_w: np.ndarray | None = None, *, inclusive: bool = False) -> np.ndarray:
    """For each query ``(key, t)``: the summed weight of the events with the same key and a
    time strictly before ``t`` (at or before with ``inclusive``). Keys are integers."""
    ev_key = np.asarray(ev_key, np.int64)
    q_key = np.asarray(q_key, np.int64)
    ev_t = np.asarray(ev_t, np.float64)
    q_t = np.asarray(q_t, np.float64)
    w = np.ones(len(ev_key)) if ev_w is None else np.asarray(ev_w, np.float64)
    if len(ev_key) == 0 or len(q_key) == 0:
        return np.zeros(len(q_key))
    # compact keys and times to ranks, then one sorted composite (key, time) array
    keys, kinv = np.unique(np.r_[ev_key, q_key], return_inverse=True)
    times, tinv = np.unique(np.r_[ev_t, q_t], return_inverse=True)
    width = len(times) + 1
    if len(keys) * width >= 2 ** 62:
        raise DataError("too many distinct keys and times for one pass; split the log")
    comp = kinv * np.int64(width) + tinv
    ev_c, q_c = comp[:len(ev_key)], comp[len(ev_key):]
    order = np.argsort(ev_c, kind="stable")
    ev_c = ev_c[order]
    csum = np.r_[0.0, np.cumsum(w[order])]
    start = np.searchsorted(ev_c, kinv[len(ev_key):] * np.int64(width), side="left")
    end = np.searchsorted(ev_c, q_c, side="right" if inclusive else "left")
    return csum[end] - csum[start]


@dataclass
class PointInTimeFeatures:
    """Builds :data:`~feedwise.ranking.features.FEATURE_NAMES` of logged impressions from
    the events strictly before each (see the module docstring).

    Args:
        catalog: The posts (a :class:`~feedwise.feed.catalog.Catalog`; its popularity is
            not used).
        users: The users with their **declared** profile only (a
            :class:`~feedwise.feed.catalog.UserTable` built from the users table: consent,
            declared interests); engagement is added here as of each impression.
        events: The event log (``user_id, item_id, kind, ts``; e.g.
            ``EventStore.impression_log()``), ad impressions included.
        edges: The social graph's acts (``src_id, dst_id, kind, ts``;
            ``EventStore.edge_log()``), or ``None``: a ``follow`` of an author standing
            before ``t`` adds one engagement's worth to the author affinity, as the served
            graph does (:func:`feedwise.feed.social.load_graph`).
        exposure_window_s: Window of the ad-exposure feature.
    """

    catalog: Any
    users: Any
    events: pd.DataFrame
    edges: pd.DataFrame | None = None
    exposure_window_s: float = 3600.0
    _ev: dict[str, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        need = {"user_id", "item_id", "kind", "ts"}
        if not need <= set(self.events.columns):
            raise DataError(f"events need columns {sorted(need)}; have "
                            f"{list(self.events.columns)}")
        if getattr(self.users, "affinity", None) is not None and self.users.affinity.nnz:
            raise ConfigError("the user table already holds engagement (author affinity); "
                              "pass one built from the users table alone, so that every "
                              "impression sees only the engagement before it")
        ev = self.events
        kind = ev["kind"].astype(str).to_numpy()
        self._ev = {"user": ev["user_id"].astype(str).to_numpy(dtype=object),
                    "item": self.catalog.lookup(ev["item_id"].to_numpy()),
                    "kind": kind, "t": seconds(ev["ts"])}

    # ------------------------------------------------------------------ pieces
    def _user_rows(self, users: np.ndarray) -> np.ndarray:
        idx = self.users.index
        return np.fromiter((idx.get(u, -1) for u in users), np.int64, len(users))

    def popularity(self, items: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Distinct users engaging with each post before ``t``."""
        e = self._ev
        m = np.isin(e["kind"], POPULARITY_KINDS) & (e["item"] >= 0)
        df = pd.DataFrame({"u": e["user"][m], "i": e["item"][m], "t": e["t"][m]})
        first = df.groupby(["u", "i"], sort=False)["t"].min()
        return sums_before(first.index.get_level_values("i").to_numpy(), first.to_numpy(),
                           items, t)

    def _engagement(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user row, catalogue index, time) of the known users' affinity-kind events."""
        e = self._ev
        m = np.isin(e["kind"], AFFINITY_KINDS) & (e["item"] >= 0)
        rows = self._user_rows(e["user"][m])
        ok = rows >= 0
        return rows[ok], e["item"][m][ok], e["t"][m][ok]

    def follows(self, urows: np.ndarray, authors: np.ndarray, t: np.ndarray) -> np.ndarray:
        """1 where user row ``urows`` follows ``authors`` (codes) by an act before ``t``
        (edges touching a user without personalisation consent are left out)."""
        e = self.edges
        out = np.zeros(len(urows))
        if e is None or not len(e) or not len(urows):
            return out
        e = e[e["kind"].isin(("follow", "unfollow"))]
        users = self.users
        objectors = {str(u) for u, ok in zip(users.user_ids, users.consent_personalization,
                                             strict=True) if not ok}
        src_s, dst_s = e["src_id"].astype(str), e["dst_id"].astype(str)
        e = e[~(src_s.isin(objectors) | dst_s.isin(objectors)).to_numpy()]
        src = self._user_rows(e["src_id"].astype(str).to_numpy())
        dst = np.fromiter((self.catalog.author_index.get(str(a), -1) for a in e["dst_id"]),
                          np.int64, len(e))
        ok = (src >= 0) & (dst >= 0)
        if not ok.any():
            return out
        n_auth = np.int64(max(len(self.catalog.authors), 1))
        ts = pd.to_datetime(e["ts"], utc=True)
        act_t = np.where(ts.isna().to_numpy(), -np.inf, seconds(ts.fillna(pd.Timestamp(0,
                                                                              tz="UTC"))))
        acts = pd.DataFrame({"key": (src * n_auth + dst)[ok], "t": act_t[ok],
                             "on": (e["kind"] == "follow").to_numpy()[ok].astype(float)})
        acts = acts.sort_values(["key", "t"], kind="stable")  # stored order within a tie
        prev = acts.groupby("key", sort=False)["on"].shift(fill_value=0.0)
        # each act moves the pair's state (0 or 1); the sum before t is the state at t
        delta = (acts["on"] - prev).to_numpy()
        return sums_before(acts["key"].to_numpy(), acts["t"].to_numpy(),
                           urows * n_auth + authors, t, delta)

    def profile(self, urows: np.ndarray, items: np.ndarray, t: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """(author affinity, tag match) of known users' rows (``urows >= 0``) at ``t``."""
        cat, users = self.catalog, self.users
        n_tags = cat.n_tags
        e_rows, e_items, e_t = self._engagement()
        tags = cat.tags.tocsr()
        n_item_tags = np.diff(tags.indptr)
        # author affinity: engagements on the author's posts, once per tag of the post
        n_auth = max(len(cat.authors), 1)
        e_key = e_rows * n_auth + cat.author[e_items]
        aff = sums_before(e_key, e_t, urows * n_auth + cat.author[items], t,
                          n_item_tags[e_items])
        if self.edges is not None and len(self.edges):
            # a followed author adds one engagement's worth: the mean non-zero affinity
            # of all users at t (1 before any), as the served graph adds it
            tagged = n_item_tags[e_items] > 0
            first = pd.Series(e_t[tagged]).groupby(e_key[tagged]).min().to_numpy()
            zero = np.zeros(len(t), np.int64)
            total = sums_before(np.zeros(len(e_t), np.int64), e_t, zero, t,
                                n_item_tags[e_items])
            pairs = sums_before(np.zeros(len(first), np.int64), first, zero, t)
            bonus = np.where(pairs > 0, total / np.maximum(pairs, 1), 1.0)
            aff = aff + bonus * self.follows(urows, cat.author[items], t)
        # interest counts per (user, tag): each engagement adds 1 to each tag of its post
        rep = n_item_tags[e_items]
        ex_rows = np.repeat(e_rows, rep)
        ex_t = np.repeat(e_t, rep)
        offset = np.arange(int(rep.sum())) - np.repeat(np.cumsum(rep) - rep, rep)
        ex_tag = tags.indices[np.repeat(tags.indptr[e_items], rep) + offset].astype(np.int64)
        di = users.interests.tocsr()
        declared = sp.csr_matrix((di.data, di.indices, di.indptr),
                                 shape=(di.shape[0], max(di.shape[1], n_tags)))

        def declared_at(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
            if len(rows) == 0:
                return np.zeros(0)
            return np.asarray(declared[rows, cols]).ravel().astype(np.float64)

        # squared norm of the profile: declared part plus each engagement's increment
        # (d + n)² → (d + n + 1)², n the (user, tag) count before it (time order)
        order = np.lexsort((ex_t, ex_tag, ex_rows))
        ex_rows, ex_t, ex_tag = ex_rows[order], ex_t[order], ex_tag[order]
        grp = pd.Series(ex_rows * np.int64(n_tags) + ex_tag)
        n_before = grp.groupby(grp.to_numpy(), sort=False).cumcount().to_numpy(np.float64)
        inc = 2.0 * (declared_at(ex_rows, ex_tag) + n_before) + 1.0
        base_norm2 = np.asarray(declared.multiply(declared).sum(axis=1)).ravel()
        # per impression
        n = len(urows)
        tag_match = np.zeros(n)
        known = urows >= 0
        if known.any():
            k = np.flatnonzero(known)
            norm2 = base_norm2[urows[k]] + sums_before(ex_rows, ex_t, urows[k], t[k], inc)
            it = tags[items[k]]  # normalised item tag rows
            q_rep = np.diff(it.indptr)
            q_idx = np.repeat(np.arange(len(k)), q_rep)
            q_rows = urows[k][q_idx]
            q_tag = it.indices.astype(np.int64)
            cnt = sums_before(ex_rows * np.int64(n_tags) + ex_tag, ex_t,
                              q_rows * np.int64(n_tags) + q_tag, t[k][q_idx])
            val = (declared_at(q_rows, q_tag) + cnt) * it.data
            num = np.bincount(q_idx, weights=val, minlength=len(k))
            tag_match[k] = num / np.maximum(np.sqrt(norm2), 1e-9)
        return np.where(known, aff, 0.0), tag_match

    def ad_exposure(self, users: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The user's ad impressions in ``(t − window, t)``."""
        e = self._ev
        m = e["kind"] == "ad_impression"
        codes, inv = np.unique(np.r_[e["user"][m], users].astype(str), return_inverse=True)
        ek, qk = inv[:int(m.sum())], inv[int(m.sum()):]
        et = e["t"][m]
        return (sums_before(ek, et, qk, t)
                - sums_before(ek, et, qk, t - self.exposure_window_s, inclusive=True))

    # ------------------------------------------------------------------ all features
    def transform(self, imps: pd.DataFrame, rec_score: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Features of logged impressions (``user_id, item_id, ts, position``).

        Args:
            imps: The impressions (e.g. :func:`label_impressions` rows).
            rec_score: One recommender score per row (zeros when ``None``); see
                :func:`rolling_rec_scores` for scores that have not seen the labels.

        Returns:
            ``(X, keep)``: features of the rows whose post is in the catalogue, and the
            boolean mask of those rows.
        """
        cat = self.catalog
        items = cat.lookup(imps["item_id"].to_numpy())
        keep = items >= 0
        items = items[keep]
        t = seconds(imps["ts"])[keep]
        uid = imps["user_id"].astype(str).to_numpy(dtype=object)[keep]
        urows = self._user_rows(uid)
        known = urows >= 0
        known[known] = np.asarray(self.users.consent_personalization, bool)[urows[known]]
        urows = np.where(known, urows, -1)
        aff, tag = self.profile(urows, items, t)
        rec = (np.zeros(len(items)) if rec_score is None
               else np.asarray(rec_score, np.float64)[keep])
        pos = (imps["position"].fillna(0).to_numpy(np.float64)[keep]
               if "position" in imps.columns else 0.0)
        X = build_features(rec_score=rec,
                           log_popularity=np.log1p(self.popularity(items, t)),
                           age_hours=(t - cat.created_s[items]) / 3600.0,
                           author_affinity=aff, tag_match=tag, hour=(t % 86400.0) // 3600.0,
                           position=pos, ad_exposure=self.ad_exposure(uid, t))
        return X, keep


def rolling_rec_scores(imps: pd.DataFrame, cuts: Sequence[float],
                       fit: Callable[[float], Scorer | None]) -> np.ndarray:
    """Recommender scores that never saw the rows' labels: for each cut (unix seconds,
    ascending) ``fit(cut)`` returns a :data:`Scorer` fitted on the events before the cut,
    and it scores the impressions from that cut to the next. Rows before the first cut get NaN;
    a fold whose ``fit`` returns ``None`` scores 0."""
    t = seconds(imps["ts"])
    out = np.full(len(imps), np.nan)
    uid = imps["user_id"].astype(str).to_numpy(dtype=object)
    items = imps["item_id"].astype(str).to_numpy(dtype=object)
    edges = list(cuts) + [np.inf]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = np.flatnonzero((t >= lo) & (t < hi))
        if len(sel) == 0:
            continue
        scorer = fit(lo)
        out[sel] = (0.0 if scorer is None else np.nan_to_num(
            np.asarray(scorer(uid[sel], items[sel]), np.float64), nan=0.0))
    return out


# ---------------------------------------------------------------------------- fitting
def _platt(z: np.ndarray, y: np.ndarray, slope: bool = True) -> tuple[float, float]:
    """``(a, b)`` of ``σ(a·z + b)`` fitted by maximum likelihood (Newton steps); with
    ``slope=False`` only the shift ``b`` (``a = 1``)."""
    a, b = 1.0, 0.0
    zz = np.asarray(z, np.float64)
    y = np.asarray(y, np.float64)
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(a * zz + b, -35, 35)))
        w = p * (1 - p)
        if slope:
            g = np.array([np.sum((p - y) * zz), np.sum(p - y)])
            H = np.array([[np.sum(w * zz * zz), np.sum(w * zz)], [np.sum(w * zz), np.sum(w)]])
            step = np.linalg.solve(H + np.eye(2) * 1e-9, g)
        else:
            step = np.array([0.0, np.sum(p - y) / (np.sum(w) + 1e-9)])
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-8:
            break
    return float(a), float(b)


#: Calibration steps tried on the validation slice: a shift, or a shift and a slope. A
#: shift is always applied (given enough positives): features such as the interest match
#: drift upward as users' histories lengthen, so the latest slice sets the level.
CALIBRATIONS: tuple[str, ...] = ("shift", "platt")


def _calibrate(kind: str, z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    return (1.0, 0.0) if kind == "none" else _platt(z, y, slope=kind == "platt")


def choose_calibration(z: np.ndarray, y: np.ndarray) -> tuple[str, float, float]:
    """The calibration step of one objective, chosen on its (time-ordered) validation slice:
    each of :data:`CALIBRATIONS` is fitted on the slice's first half and scored (log-loss)
    on its second half; the best (the simpler on a tie) is refitted on the whole slice.
    ``("none", 1, 0)`` when either half has fewer than :data:`MIN_PLATT_POSITIVES` / 2
    positives or negatives (too few to set a level)."""
    y = np.asarray(y, np.float64)
    h = len(y) // 2
    halves = (y[:h], y[h:])
    if min(min(q.sum(), len(q) - q.sum()) for q in halves) < MIN_PLATT_POSITIVES / 2:
        return "none", 1.0, 0.0
    best, best_ll = CALIBRATIONS[0], np.inf
    for kind in CALIBRATIONS:
        a, b = _calibrate(kind, z[:h], y[:h])
        ll = log_loss(y[h:], 1.0 / (1.0 + np.exp(-np.clip(a * z[h:] + b, -35, 35))))
        if ll < best_ll - 1e-9:
            best, best_ll = kind, ll
    a, b = _calibrate(best, z, y)
    return best, a, b


def fit_objective(X_tr: np.ndarray, y_tr: np.ndarray, X_va: np.ndarray, y_va: np.ndarray,
                  Cs: Sequence[float] = C_GRID) -> tuple[EngagementModel, dict[str, Any]]:
    """One objective's logistic model: ``C`` chosen by validation log-loss, then the
    calibration step chosen on the validation slice (:func:`choose_calibration`), folded
    into its coefficients. ``X_va`` rows must be in time order."""
    best: tuple[float, EngagementModel, float] | None = None
    for C in Cs:
        m = EngagementModel("logistic", C=C).fit(X_tr, y_tr)
        ll = log_loss(y_va, m.predict_proba(X_va))
        if best is None or ll < best[0]:
            best = (ll, m, C)
    assert best is not None
    ll_raw, m, C = best
    z = np.asarray(X_va, np.float64) @ m.coef_ + m.intercept_
    kind, a, b = choose_calibration(z, np.asarray(y_va))
    m.coef_ = m.coef_ * a
    m.intercept_ = float(m.intercept_ * a + b)
    return m, {"C": C, "calibration": kind, "platt_a": a, "platt_b": b,
               "val_log_loss_raw": ll_raw}


@dataclass
class PointInTimeResult:
    """What :func:`fit_point_in_time` returns.

    Attributes:
        model: The calibrated model fitted before the hold-out.
        report: One row per objective (see :func:`report_rows`).
        settings: Chosen ``C`` and Platt parameters per objective.
        parts: Time bounds (unix seconds) and row counts of the parts.
    """

    model: MultiObjectiveModel
    report: pd.DataFrame
    settings: dict[str, dict[str, Any]]
    parts: dict[str, Any]


def report_rows(y: pd.DataFrame, p: dict[str, np.ndarray], base: dict[str, float]
                ) -> pd.DataFrame:
    """Per objective: hold-out rows, positives, rate, the constant ``base`` rate, mean
    prediction, log-loss of the model and of the constant, ECE over equal-width bins (and
    ECE / rate), ECE over ten equal-count bins (``ece_quantile``) and AUC."""
    rows = []
    for o, pred in p.items():
        yy = np.asarray(y[o], np.float64)
        rate = float(yy.mean()) if len(yy) else float("nan")
        ece = expected_calibration_error(yy, pred)
        rows.append({"objective": o, "n_test": len(yy), "positives": int(yy.sum()),
                     "rate": rate, "base_rate": base[o], "mean_pred": float(np.mean(pred)),
                     "log_loss": log_loss(yy, pred),
                     "log_loss_const": log_loss(yy, np.full(len(yy), base[o])),
                     "ece": ece, "ece_over_rate": ece / rate if rate > 0 else float("nan"),
                     "ece_quantile": expected_calibration_error(yy, pred,
                                                                strategy="quantile"),
                     "auc": roc_auc(yy, pred)})
    return pd.DataFrame(rows)


def fit_point_in_time(features: PointInTimeFeatures, impressions: pd.DataFrame | None = None,
                      fit_recommender: Callable[[float], Scorer | None] | None = None, *,
                      objectives: Sequence[str] = REPORT_OBJECTIVES, holdout: float = 0.2,
                      calibration: float = 0.1, warmup: float = 0.2, fold: float = 0.1,
                      window_s: float = 1800.0, Cs: Sequence[float] = C_GRID,
                      progress: Callable[[str], None] | None = None) -> PointInTimeResult:
    """Fit and measure the engagement model under the point-in-time protocol (module
    docstring).

    Args:
        features: The feature builder over the event log.
        impressions: Labelled impressions (default: :func:`label_impressions` of the
            builder's events without ad impressions).
        fit_recommender: ``cut (unix s) -> scorer`` fitted on the events before ``cut``
            (``None``: ``rec_score`` is 0). It is called once per fold of width ``fold``
            from the end of the warm-up.
        objectives: Label columns to model.
        holdout, calibration, warmup, fold: Fractions of the impression log's time span.
        window_s: The label's response window (rows this close before a part's end drop).
        Cs: L2 strengths tried on the validation slice.
        progress: Called with a short message before each long step.
    """
    for name, v in (("holdout", holdout), ("calibration", calibration), ("warmup", warmup),
                    ("fold", fold)):
        if not 0 < v < 1:
            raise ConfigError(f"{name} must be in (0, 1), got {v}")
    if warmup + calibration + holdout >= 0.95:
        raise ConfigError("warmup + calibration + holdout leave no training part; lower them")
    say = progress or (lambda _m: None)
    if impressions is None:
        ev = features.events
        impressions = label_impressions(ev[ev["kind"] != "ad_impression"], window_s)
    imps = impressions.sort_values("ts", kind="stable").reset_index(drop=True)
    t = seconds(imps["ts"])
    t0, t1 = float(t.min()), float(t.max())
    span = t1 - t0
    if span <= 0:
        raise DataError("the impressions span no time; need a log over a period to train")
    b_train = t0 + warmup * span
    b_val = t0 + (1 - holdout - calibration) * span
    b_test = t0 + (1 - holdout) * span
    part = np.select([t < b_train, t < b_val, t < b_test], [0, 1, 2], 3)
    # drop rows whose response window reaches into the next part (at most half a part)
    g1 = min(window_s, 0.5 * (b_val - b_train))
    g2 = min(window_s, 0.5 * (b_test - b_val))
    gap = ((part == 1) & (t >= b_val - g1)) | ((part == 2) & (t >= b_test - g2))
    use = (part > 0) & ~gap
    imps, part = imps[use].reset_index(drop=True), part[use]
    rec = None
    # a cut every ``fold`` of the span from the end of the warm-up (none in the last half fold)
    cuts = [b_train + k * fold * span for k in range(int(np.ceil((1 - warmup) / fold)))
            if b_train + (k + 0.5) * fold * span < t1]
    if fit_recommender is not None:
        say(f"fitting the recommender at {len(cuts)} cuts")
        rec = rolling_rec_scores(imps, cuts, fit_recommender)
    say("building point-in-time features")
    X, keep = features.transform(imps, rec)
    labels = imps[keep].reset_index(drop=True)
    part = part[keep]
    objectives = [o for o in objectives if o in labels.columns]
    if not objectives:
        raise DataError("no objective columns among the impressions' labels")
    tr, va, te = part == 1, part == 2, part == 3
    if tr.sum() < MIN_TRAIN_ROWS or te.sum() == 0:
        raise DataError(f"too few impressions per part (train {int(tr.sum())}, validation "
                        f"{int(va.sum())}, hold-out {int(te.sum())}); need at least "
                        f"{MIN_TRAIN_ROWS} training rows and a hold-out: a longer log")
    say("fitting the engagement model")
    models: dict[str, EngagementModel] = {}
    settings: dict[str, dict[str, Any]] = {}
    for o in objectives:
        y = labels[o].to_numpy().astype(int)
        if va.sum() >= MIN_VALIDATION_ROWS:
            models[o], settings[o] = fit_objective(X[tr], y[tr], X[va], y[va], Cs)
        else:  # a log too short for a validation slice: default C, no calibration step
            models[o] = EngagementModel("logistic", C=1.0).fit(X[tr | va], y[tr | va])
            settings[o] = {"C": 1.0, "calibration": "none", "platt_a": 1.0, "platt_b": 0.0,
                           "val_log_loss_raw": float("nan")}
    model = MultiObjectiveModel(tuple(objectives), "logistic")
    model.models_ = models
    model._stack()
    base = {o: float(labels[o].to_numpy()[tr | va].mean()) for o in objectives}
    report = report_rows(labels[te], model.predict(X[te].astype(np.float32)), base)
    parts = {"start": t0, "train_from": b_train, "validation_from": b_val,
             "holdout_from": b_test, "end": t1, "n_train": int(tr.sum()),
             "n_validation": int(va.sum()), "n_holdout": int(te.sum()),
             "rec_folds": 0 if fit_recommender is None else len(cuts)}
    return PointInTimeResult(model, report, settings, parts)
