"""Segments: behavioural clusters (k-means over profile features) and lifecycle stages.

:class:`Segmenter` clusters the users of a :class:`~feedwise.analytics.profiles.UserProfiler`
table who were active in its window and writes a plain-language description of each
cluster from what sets it apart from everyone else ("evening users into video, music;
high share rate, low ad sensitivity"). Lifecycle stages are rules on first/last-seen
times (computed by the profiler): ``new``, ``active``, ``at-risk``, ``dormant``.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from feedwise.analytics.profiles import DAYPARTS
from feedwise.analytics.suppression import suppress
from feedwise.errors import ConfigError, DataError, NotFittedError

LIFECYCLE_DESCRIPTIONS: dict[str, str] = {
    "new": "first seen within the last week",
    "active": "seen within the last week",
    "at-risk": "last seen 1-4 weeks ago: win them back before they go",
    "dormant": "not seen for over a month",
}

#: Feature name -> readable trait used in descriptions.
TRAITS: dict[str, str] = {
    "activity": "activity", "engagement_rate": "engagement", "like_rate": "like rate",
    "comment_rate": "comment rate", "share_rate": "share rate", "save_rate": "save rate",
    "ad_sensitivity": "ad sensitivity", "avg_dwell_s": "dwell time",
}


def features(profiles: pd.DataFrame) -> pd.DataFrame:
    """The clustering features of each profile row (one row per user)."""
    imps = profiles["impressions"].clip(lower=1)
    f = pd.DataFrame({f"share_{p}": profiles[f"share_{p}"] for p in DAYPARTS})
    f["activity"] = np.log1p(profiles["events"] / profiles["active_days"].clip(lower=1))
    f["engagement_rate"] = profiles["engagement_rate"]
    for k in ("like", "comment", "share", "save"):
        f[f"{k}_rate"] = profiles[f"{k}s"] / imps
    f["ad_sensitivity"] = profiles["ad_sensitivity"]
    f["avg_dwell_s"] = np.log1p(profiles["avg_dwell_s"])
    return f.astype("float64").fillna(0.0)


class Segmenter:
    """K-means behavioural segments with generated descriptions.

    Args:
        n_clusters: Number of behavioural segments.
        seed: Random seed of k-means.
        n_init: K-means restarts.
        top_tags: Tags named in each description.
    """

    def __init__(self, n_clusters: int = 5, seed: int = 0, n_init: int = 4,
                 top_tags: int = 2) -> None:
        self.n_clusters = n_clusters
        self.seed = seed
        self.n_init = n_init
        self.top_tags = top_tags

    def fit(self, profiles: pd.DataFrame) -> Segmenter:
        """Cluster the profiles of users with events in the window.

        Args:
            profiles: ``UserProfiler.profiles_``.
        """
        if self.n_clusters < 1:
            raise ConfigError(f"n_clusters must be >= 1, not {self.n_clusters}")
        active = profiles[profiles["events"] > 0]
        if len(active) < self.n_clusters:
            raise DataError(f"{len(active)} active users cannot form {self.n_clusters} "
                            "segments; lower n_clusters or widen the window")
        x = features(active)
        self.feature_names_ = list(x.columns)
        self.scaler_ = StandardScaler().fit(x.to_numpy())
        z = self.scaler_.transform(x.to_numpy())
        # users x 13 features is small: one thread avoids OpenMP spin-waits that cost
        # seconds on a busy machine
        with threadpool_limits(1):
            self.kmeans_ = KMeans(self.n_clusters, n_init=self.n_init,
                                  random_state=self.seed).fit(z)
        labels = self.kmeans_.labels_
        self.descriptions_ = [self._describe(active, x, z, labels, c)
                              for c in range(self.n_clusters)]
        self.names_ = [f"S{c + 1}" for c in range(self.n_clusters)]
        self.labels_ = pd.Series(np.array(self.names_, dtype=object)[labels],
                                 index=active["user_id"].to_numpy(), name="segment")
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "kmeans_"):
            raise NotFittedError("Segmenter is not fitted; call fit(profiles) first")

    def predict(self, profiles: pd.DataFrame) -> pd.Series:
        """The segment name of each profile row (``None`` for users without events)."""
        self._check_fitted()
        out = pd.Series([None] * len(profiles), index=profiles["user_id"].to_numpy(),
                        dtype=object, name="segment")
        act = (profiles["events"] > 0).to_numpy()
        if act.any():
            z = self.scaler_.transform(features(profiles[act]).to_numpy())
            with threadpool_limits(1):
                pred = self.kmeans_.predict(z)
            out.iloc[np.flatnonzero(act)] = np.array(self.names_, dtype=object)[pred]
        return out

    def _describe(self, active: pd.DataFrame, x: pd.DataFrame, z: np.ndarray,
                  labels: np.ndarray, c: int) -> str:
        m = labels == c
        if not m.any():
            return "empty segment"
        parts = x.loc[m, [f"share_{p}" for p in DAYPARTS]].mean()
        overall = x[[f"share_{p}" for p in DAYPARTS]].mean()
        best = parts.idxmax()
        when = best.removeprefix("share_")
        lead = f"{when} users" if parts[best] >= 0.4 else "all-day users"
        if parts[best] < 0.4 and (parts / overall.clip(lower=1e-9)).max() > 1.3:
            lean = (parts / overall.clip(lower=1e-9)).idxmax().removeprefix("share_")
            lead = f"{lean}-leaning users"
        tags: Counter[str] = Counter()
        for s in active.loc[m, "interests"]:
            for t, w in json.loads(s or "{}").items():
                tags[t] += w
        top = [t for t, _ in tags.most_common(self.top_tags)]
        text = lead + (f" into {', '.join(top)}" if top else "")
        mean_z = z[m].mean(axis=0)
        traits = []
        for i in np.argsort(-np.abs(mean_z)):
            name = self.feature_names_[i]
            if name not in TRAITS or abs(mean_z[i]) < 0.5:
                continue
            traits.append(f"{'high' if mean_z[i] > 0 else 'low'} {TRAITS[name]}")
            if len(traits) == 3:
                break
        return text + (f"; {', '.join(traits)}" if traits else "; typical engagement")


def segment_table(profiles: pd.DataFrame, segmenter: Segmenter | None, k: int) -> pd.DataFrame:
    """Sizes and descriptions of behavioural and lifecycle segments, small ones suppressed.

    Columns: ``kind`` (``behaviour`` / ``lifecycle``), ``segment``, ``users``, ``share``,
    ``description``, ``suppressed``.
    """
    rows = []
    total = len(profiles)
    if segmenter is not None:
        segmenter._check_fitted()
        counts = profiles["segment"].value_counts()
        for name, desc in zip(segmenter.names_, segmenter.descriptions_, strict=True):
            rows.append({"kind": "behaviour", "segment": name,
                         "users": int(counts.get(name, 0)), "description": desc})
    counts = profiles["lifecycle"].value_counts()
    for name, desc in LIFECYCLE_DESCRIPTIONS.items():
        rows.append({"kind": "lifecycle", "segment": name, "users": int(counts.get(name, 0)),
                     "description": desc})
    df = pd.DataFrame(rows)
    df["share"] = df["users"] / total if total else np.nan
    df = suppress(df, "users", k, ["users", "share"])
    # a small behavioural segment's description would describe fewer than k users
    small_beh = df["suppressed"] & (df["kind"] == "behaviour")
    df.loc[small_beh, "description"] = f"(fewer than {k} users: not described)"
    return df
