"""Features φ(x) of a (user, post, context) triple for the engagement model.

The same function builds them at serving time (one user, a pool of posts) and at training
time (one row per logged impression), so the model sees one definition.

Columns (:data:`FEATURE_NAMES`): recommender score, log popularity, log age in hours, author
affinity, tag match with the user's interest profile, hour of day (sine and cosine),
log position, and the user's recent ad exposure.

:func:`impression_features` reads popularity and profiles from an engine loaded at one
cut, so rows before the cut see counts that include their own labels: it suits scoring
rows after the cut. Training rows are built by
:class:`~feedwise.ranking.pointintime.PointInTimeFeatures`, which computes each row's
features from the events strictly before it (``feedwise feed --train-engagement``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from feedwise.errors import DataError

FEATURE_NAMES: tuple[str, ...] = (
    "rec_score", "log_popularity", "log_age_hours", "author_affinity", "tag_match",
    "hour_sin", "hour_cos", "log_position", "ad_exposure")

#: Objectives of the multi-objective value and the event kinds that label them.
OBJECTIVES: dict[str, tuple[str, ...]] = {
    "engage": ("click", "like", "share"),
    "click": ("click",), "like": ("like",), "comment": ("comment",), "share": ("share",),
    "long_dwell": ("dwell",), "hide": ("hide",), "report": ("report",)}
LONG_DWELL_MS = 10_000


def build_features(*, rec_score: np.ndarray, log_popularity: np.ndarray,
                   age_hours: np.ndarray, author_affinity: np.ndarray | float,
                   tag_match: np.ndarray | float, hour: np.ndarray | float,
                   position: np.ndarray | float, ad_exposure: np.ndarray | float) -> np.ndarray:
    """Stack the feature columns (scalars broadcast) into an ``n x len(FEATURE_NAMES)`` array."""
    n = len(rec_score)
    out = np.empty((n, len(FEATURE_NAMES)), np.float32)
    out[:, 0] = rec_score
    out[:, 1] = log_popularity
    out[:, 2] = np.log1p(np.maximum(age_hours, 0.0))
    out[:, 3] = np.log1p(np.maximum(author_affinity, 0.0))
    out[:, 4] = tag_match
    ang = np.asarray(hour, np.float64) * (2 * np.pi / 24.0)
    out[:, 5] = np.sin(ang)
    out[:, 6] = np.cos(ang)
    out[:, 7] = np.log1p(position)
    out[:, 8] = np.log1p(ad_exposure)
    return out


def label_impressions(events: pd.DataFrame, window_s: float = 1800.0) -> pd.DataFrame:
    """One row per impression with a 0/1 column per objective of :data:`OBJECTIVES`.

    An impression is labelled positive for an objective when the same user acts on the same
    item with one of the objective's kinds within ``window_s`` seconds after it (a dwell
    counts as ``long_dwell`` from :data:`LONG_DWELL_MS`).

    Args:
        events: Columns ``user_id``, ``item_id``, ``kind``, ``ts`` and optionally
            ``position``, ``dwell_ms``.
    """
    need = {"user_id", "item_id", "kind", "ts"}
    if not need <= set(events.columns):
        raise DataError(f"events need columns {sorted(need)}; have {list(events.columns)}")
    ev = events.copy()
    ev["ts"] = pd.to_datetime(ev["ts"], utc=True)
    imp = ev[ev["kind"] == "impression"].copy()
    if imp.empty:
        raise DataError("no impression events to learn from; the engagement model is trained "
                        "on impression logs")
    imp["position"] = (imp["position"].fillna(0).astype(int) if "position" in imp.columns
                       else 0)
    imp = imp[["user_id", "item_id", "ts", "position"]].reset_index(drop=True)
    imp["imp_id"] = np.arange(len(imp))
    acts = ev[ev["kind"] != "impression"].copy()
    if "dwell_ms" in acts.columns:
        short = (acts["kind"] == "dwell") & (acts["dwell_ms"].fillna(0) < LONG_DWELL_MS)
        acts = acts[~short]
    m = imp.merge(acts[["user_id", "item_id", "kind", "ts"]], on=["user_id", "item_id"],
                  suffixes=("", "_act"))
    dt = (m["ts_act"] - m["ts"]).dt.total_seconds()
    m = m[(dt >= 0) & (dt <= window_s)]
    for obj, kinds in OBJECTIVES.items():
        hit = m.loc[m["kind"].isin(kinds), "imp_id"].unique()
        imp[obj] = np.isin(imp["imp_id"].to_numpy(), hit).astype(np.int8)
    return imp


def impression_features(imps: pd.DataFrame, catalog: Any, users: Any,
                        rec_score: Callable[[str, np.ndarray], np.ndarray] | None = None,
                        ad_times: dict[str, np.ndarray] | None = None,
                        exposure_window_s: float = 3600.0, text: Any = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Features of logged impressions (training time).

    Args:
        imps: Rows with ``user_id``, ``item_id``, ``ts``, ``position`` (from
            :func:`label_impressions`).
        catalog: The engine's :class:`~feedwise.feed.catalog.Catalog`.
        users: The engine's :class:`~feedwise.feed.catalog.UserTable`.
        rec_score: ``(user_id, catalogue indices) -> scores`` (e.g. a recommender's score);
            zeros when ``None``.
        ad_times: User -> sorted unix seconds of their ad impressions.
        exposure_window_s: Window of the ad-exposure feature.
        text: A fitted :class:`~feedwise.ranking.text.TextEngagement` (its items set with
            ``set_items``): its signals are appended as columns after
            :data:`FEATURE_NAMES`. For training rows prefer its cross-fitted
            ``fit_transform`` output, appended by the caller.

    Returns:
        ``(X, keep)``: features of the rows whose item is in the catalogue, and the boolean
        mask of those rows.
    """
    items = np.array([catalog.index.get(str(i), -1) for i in imps["item_id"]], np.int64)
    keep = items >= 0
    imps = imps[keep]
    items = items[keep]
    ts = (pd.to_datetime(imps["ts"], utc=True) - pd.Timestamp(0, tz="UTC")
          ).dt.total_seconds().to_numpy()
    urows = np.array([users.row(str(u)) for u in imps["user_id"]], np.int64)
    n = len(imps)
    rec = np.zeros(n, np.float32)
    if rec_score is not None:
        uid = imps["user_id"].astype(str).to_numpy()
        for u in np.unique(uid):
            sel = np.flatnonzero(uid == u)
            rec[sel] = rec_score(u, items[sel])
    # as served: the profile features only for known users with personalisation consent
    known = urows >= 0
    known[known] = np.asarray(users.consent_personalization, bool)[urows[known]]
    tag = np.zeros(n, np.float32)
    aff = np.zeros(n, np.float32)
    if known.any():
        ui = users.interests
        if ui.shape[1] < catalog.n_tags:
            ui = sp.csr_matrix((ui.data, ui.indices, ui.indptr), shape=(ui.shape[0],
                                                                         catalog.n_tags))
        norms = np.sqrt(np.asarray(ui.multiply(ui).sum(axis=1)).ravel())
        un = sp.diags(1.0 / np.maximum(norms, 1e-9)) @ ui
        k = np.flatnonzero(known)
        tag[k] = np.asarray(un[urows[k]][:, :catalog.n_tags].multiply(
            catalog.tags[items[k]]).sum(axis=1)).ravel()
        if users.affinity.shape[1]:
            authors = catalog.author[items[k]]
            ok = authors < users.affinity.shape[1]
            aff[k[ok]] = np.asarray(users.affinity[urows[k[ok]], authors[ok]]).ravel()
    expo = np.zeros(n, np.float32)
    if ad_times:
        uid = imps["user_id"].astype(str).to_numpy()
        for j in range(n):
            t = ad_times.get(uid[j])
            if t is not None and len(t):
                expo[j] = (np.searchsorted(t, ts[j], side="left")
                           - np.searchsorted(t, ts[j] - exposure_window_s, side="right"))
    age_h = (ts - catalog.created_s[items]) / 3600.0
    hour = (ts % 86400.0) // 3600.0  # the whole UTC hour, as served (UserContext.hour)
    X = build_features(rec_score=rec, log_popularity=catalog.log_popularity[items],
                       age_hours=age_h, author_affinity=aff, tag_match=tag, hour=hour,
                       position=imps["position"].to_numpy(np.float64), ad_exposure=expo)
    if text is not None:
        X = np.hstack([X, text.transform(imps["user_id"].to_numpy(), imps["item_id"].to_numpy())
                       .astype(np.float32)])
    return X, keep
