"""User profiles: what each user engages with, when, how much, and how they take ads.

:class:`UserProfiler` follows the estimator contract: hyperparameters in ``__init__``,
``fit(scope, now) -> self``, the learned table in ``profiles_``. :meth:`UserProfiler.write`
stores it as the ``user_profiles`` table the feed engine reads:

=================  ============  ========================================================
column             type          meaning
=================  ============  ========================================================
user_id            VARCHAR       primary key
interests          VARCHAR       JSON object tag -> weight (top tags, weights sum to 1)
active_hours       DOUBLE[]      168 shares of events, index ``weekday * 24 + hour``
                                 (weekday 0 = Monday) on the user's LOCAL clock
daypart            VARCHAR       busiest of morning / midday / evening / night (local)
peak_hour          INTEGER       busiest local hour of day (of the day smoothed over +-2 h)
engagement_rate    DOUBLE        clicks + likes + comments + shares + saves per impression
engagement_level   VARCHAR       low / medium / high (tertiles among users with impressions)
ad_sensitivity     DOUBLE        hides within ``ad_window_minutes`` after an ad impression,
                                 per ad impression
lifecycle          VARCHAR       new / active / at-risk / dormant (see ``segments``)
segment            VARCHAR       behavioural segment label (after ``Segmenter``)
updated_at         TIMESTAMPTZ   the ``now`` the profile was built for
timezone           VARCHAR       the zone whose clock the time columns use
timezone_source    VARCHAR       given (``users.timezone``) / inferred (from activity) /
                                 fallback (UTC: no valid zone and no confident inference)
timezone_confidence DOUBLE       1 for given, the posterior for inferred, NULL for fallback
=================  ============  ========================================================

**Which clock.** Time columns are on the user's local clock: the zone in ``users.timezone``
when it is valid, else the zone inferred from the user's hours of activity against the
users of known zone (:mod:`feedwise.analytics.timezones`, used when its confidence reaches
``min_zone_confidence``), else UTC. ``clock="utc"`` keeps every user on UTC. A store where
no user has a zone therefore profiles on UTC, as before.

Interest weights decay with age: an event ``a`` days before ``now`` weighs
``kind_weight * 0.5 ** (a / half_life_days)``. Only users with analytics consent are
profiled; writing removes any stored profile of a user who withdrew it.
"""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pandas as pd

from feedwise.analytics.scope import Scope
from feedwise.analytics.timezones import ZoneInferer, resolve_zones
from feedwise.errors import ConfigError, NotFittedError
from feedwise.localtime import local_weekday_hours
from feedwise.schema import PROFILE_COLUMNS, utc
from feedwise.store import EventStore

#: Dayparts by local hour: name -> [start, end) hours (night wraps midnight).
DAYPARTS: dict[str, tuple[int, int]] = {
    "morning": (6, 11), "midday": (11, 17), "evening": (17, 22), "night": (22, 30)}

DEFAULT_KIND_WEIGHTS: dict[str, float] = {
    "click": 1.0, "like": 2.0, "comment": 3.0, "share": 4.0, "save": 3.0, "purchase": 5.0,
    "dwell": 0.5, "hide": -3.0, "report": -5.0}


def daypart_of(hour: int) -> str:
    """The daypart of a (local) hour (0-23)."""
    for name, (a, b) in DAYPARTS.items():
        if a <= hour < b or a <= hour + 24 < b:
            return name
    raise ValueError(hour)  # pragma: no cover - the parts cover the day


class UserProfiler:
    """Build per-user interest, rhythm, engagement and ad-sensitivity profiles.

    Args:
        half_life_days: Half-life of interest weights, in days.
        top_tags: Number of tags kept per user.
        ad_window_minutes: A hide this soon after an ad impression counts against ads.
        kind_weights: Interest weight per event kind (default :data:`DEFAULT_KIND_WEIGHTS`).
        new_days: Lifecycle: first seen this recently -> ``new``.
        active_days: Lifecycle: last seen this recently -> ``active``.
        dormant_days: Lifecycle: last seen longer ago than this -> ``dormant`` (between
            ``active_days`` and this -> ``at-risk``).
        clock: ``"local"``: time columns on each user's local clock (given zone, else
            inferred, else UTC); ``"utc"``: everyone on UTC.
        infer_zones: Infer the zone of users without a valid given one.
        min_zone_confidence: Posterior an inferred zone needs to be used. The default 0
            uses the posterior mode whenever there is a prior to infer from: it is the
            likeliest zone, so a better guess than UTC (the confidence is stored).
    """

    def __init__(self, half_life_days: float = 14.0, top_tags: int = 10,
                 ad_window_minutes: float = 10.0, kind_weights: dict[str, float] | None = None,
                 new_days: float = 7.0, active_days: float = 7.0,
                 dormant_days: float = 30.0, clock: str = "local", infer_zones: bool = True,
                 min_zone_confidence: float = 0.0) -> None:
        self.half_life_days = half_life_days
        self.top_tags = top_tags
        self.ad_window_minutes = ad_window_minutes
        self.kind_weights = kind_weights
        self.new_days = new_days
        self.active_days = active_days
        self.dormant_days = dormant_days
        self.clock = clock
        self.infer_zones = infer_zones
        self.min_zone_confidence = min_zone_confidence

    def _check(self) -> None:
        if self.half_life_days <= 0 or self.top_tags < 1 or self.ad_window_minutes <= 0:
            raise ConfigError("half_life_days and ad_window_minutes must be > 0 and "
                              "top_tags >= 1")
        if not 0 < self.active_days <= self.dormant_days:
            raise ConfigError("need 0 < active_days <= dormant_days")
        if self.clock not in ("local", "utc"):
            raise ConfigError(f"clock={self.clock!r}: use 'local' or 'utc'")

    def fit(self, scope: Scope, now: datetime | None = None) -> UserProfiler:
        """Profile every consenting user seen up to the scope's end.

        Args:
            scope: Behaviour features come from the scope's window; lifecycle from the
                whole history before its end.
            now: The time profiles are built for (default: the scope's end).
        """
        self._check()
        now = utc(now) if now is not None else scope.end
        base = self._base(scope, now)
        self.__dict__.pop("_bucket_cache", None)  # per fit: never reuse another scope's
        zones = self._zones(scope, base["user_id"])
        hours = self._hours(scope, base["user_id"], zones)
        self.__dict__.pop("_bucket_cache", None)
        interests = self._interests(scope, now)
        df = base
        df["interests"] = df["user_id"].map(interests).fillna("{}")
        df["active_hours"] = list(hours)
        hour_of_day = hours.reshape(len(df), 7, 24).sum(axis=1)
        # the peak of the circularly smoothed day (binomial kernel 1-4-6-4-1 over +-2 h): a
        # one-hour spike of a single long session does not outvote a user's habitual hours
        smooth = sum(w * np.roll(hour_of_day, s, axis=1)
                     for s, w in zip(range(-2, 3), (1, 4, 6, 4, 1), strict=True))
        df["peak_hour"] = np.where(hour_of_day.sum(axis=1) > 0, smooth.argmax(axis=1), -1)
        parts = {name: hour_of_day[:, [h % 24 for h in range(a, b)]].sum(axis=1)
                 for name, (a, b) in DAYPARTS.items()}
        for name, share in parts.items():
            df[f"share_{name}"] = share
        names = list(parts)
        stacked = np.column_stack([parts[n] for n in names])
        df["daypart"] = np.where(stacked.sum(axis=1) > 0,
                                 np.array(names, dtype=object)[stacked.argmax(axis=1)], None)
        df["engagement_level"] = _levels(df["engagement_rate"], df["impressions"] > 0)
        df["lifecycle"] = self._lifecycle(df, now)
        df["segment"] = None
        df["updated_at"] = pd.Timestamp(now)
        df["timezone"] = zones["timezone"].to_numpy()
        df["timezone_source"] = zones["source"].to_numpy()
        df["timezone_confidence"] = zones["confidence"].to_numpy(dtype=np.float64)
        df["timezone_reason"] = zones["reason"].to_numpy()
        self.zones_ = zones
        self.now_ = now
        self.profiles_ = df.reset_index(drop=True)
        return self

    # ------------------------------------------------------------------ pieces
    def _base(self, scope: Scope, now: datetime) -> pd.DataFrame:
        win = float(self.ad_window_minutes) * 60.0
        return scope.query(f"""
            WITH h AS (SELECT user_id, first_ts, last_ts FROM user_span),
                 a AS (SELECT user_id, kind, ts,
                              max(CASE WHEN kind = 'ad_impression' THEN epoch(ts) END)
                                  OVER (PARTITION BY user_id ORDER BY ts
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                                  AS last_ad
                       FROM ev WHERE kind IN ('ad_impression', 'hide')),
                 ah AS (SELECT user_id, count(*) FILTER (WHERE kind = 'hide'
                                                        AND epoch(ts) - last_ad <= {win})
                                        AS hides_after_ad
                        FROM a GROUP BY user_id),
                 f AS (SELECT user_id, count(*) AS events,
                          count(DISTINCT CAST(t AS DATE)) AS active_days,
                          count(*) FILTER (WHERE kind = 'impression') AS impressions,
                          count(*) FILTER (WHERE kind IN ('click', 'like', 'comment', 'share',
                                                          'save')) AS engagements,
                          count(*) FILTER (WHERE kind = 'click') AS clicks,
                          count(*) FILTER (WHERE kind = 'like') AS likes,
                          count(*) FILTER (WHERE kind = 'comment') AS comments,
                          count(*) FILTER (WHERE kind = 'share') AS shares,
                          count(*) FILTER (WHERE kind = 'save') AS saves,
                          count(*) FILTER (WHERE kind = 'hide') AS hides,
                          count(*) FILTER (WHERE kind = 'ad_impression') AS ad_impressions,
                          count(*) FILTER (WHERE kind = 'ad_click') AS ad_clicks,
                          coalesce(avg(dwell_ms) / 1000.0, 0) AS avg_dwell_s
                       FROM ev GROUP BY user_id)
            SELECT h.user_id, h.first_ts, h.last_ts,
                   coalesce(f.events, 0) AS events, coalesce(f.active_days, 0) AS active_days,
                   coalesce(f.impressions, 0) AS impressions,
                   coalesce(f.engagements, 0) AS engagements,
                   coalesce(f.clicks, 0) AS clicks, coalesce(f.likes, 0) AS likes,
                   coalesce(f.comments, 0) AS comments, coalesce(f.shares, 0) AS shares,
                   coalesce(f.saves, 0) AS saves, coalesce(f.hides, 0) AS hides,
                   coalesce(f.ad_impressions, 0) AS ad_impressions,
                   coalesce(f.ad_clicks, 0) AS ad_clicks,
                   coalesce(ah.hides_after_ad, 0) AS hides_after_ad,
                   coalesce(f.avg_dwell_s, 0) AS avg_dwell_s,
                   coalesce(f.engagements / nullif(f.impressions, 0), 0) AS engagement_rate,
                   coalesce(ah.hides_after_ad / nullif(f.ad_impressions, 0), 0)
                       AS ad_sensitivity
            FROM h LEFT JOIN f USING (user_id) LEFT JOIN ah USING (user_id)
            ORDER BY h.user_id""")

    def _buckets(self, scope: Scope) -> pd.DataFrame:
        """Events per user and UTC quarter hour (every zone offset is a multiple of 15
        minutes, so a bucket maps to one local hour)."""
        if not hasattr(self, "_bucket_cache"):
            df = scope.query("""SELECT user_id, CAST(floor(epoch(ts) / 900) AS BIGINT) AS b,
                                      count(*) AS n FROM ev GROUP BY ALL ORDER BY ALL""")
            df["ts"] = pd.to_datetime(df["b"].to_numpy(dtype=np.int64) * 900, unit="s",
                                      utc=True)
            self._bucket_cache = df
        return self._bucket_cache

    def _zones(self, scope: Scope, users: pd.Series) -> pd.DataFrame:
        idx = pd.Index(users)
        if self.clock == "utc":
            return pd.DataFrame({"timezone": "UTC", "source": "fallback", "confidence": np.nan,
                                 "reason": "clock='utc'"}, index=idx)
        given = scope.query("SELECT user_id, timezone FROM users WHERE timezone IS NOT NULL")
        given = pd.Series(given["timezone"].to_numpy(), index=given["user_id"], dtype=object)
        if given.empty:  # nobody has a zone: everyone is on UTC, nothing to learn from
            return pd.DataFrame({"timezone": "UTC", "source": "fallback",
                                 "confidence": np.nan,
                                 "reason": "missing; no user has a zone; UTC used"}, index=idx)
        b = self._buckets(scope)
        return resolve_zones(idx, given, b["user_id"], b["ts"], infer=self.infer_zones,
                             min_confidence=self.min_zone_confidence, inferer=ZoneInferer())

    def _hours(self, scope: Scope, users: pd.Series,
               zones: pd.DataFrame | None = None) -> np.ndarray:
        out = np.zeros((len(users), 168), dtype=np.float64)
        if zones is not None and (zones["timezone"] != "UTC").any():
            b = self._buckets(scope)
            days, hrs = local_weekday_hours(
                b["ts"], zones["timezone"].reindex(b["user_id"].to_numpy()).to_numpy())
            idx = pd.Index(users).get_indexer(b["user_id"])
            ok = idx >= 0
            np.add.at(out, (idx[ok], (days * 24 + hrs)[ok]),
                      b["n"].to_numpy(dtype=np.float64)[ok])
            tot = out.sum(axis=1, keepdims=True)
            return np.divide(out, tot, out=np.zeros_like(out), where=tot > 0)
        df = scope.query("""SELECT user_id, (isodow(t) - 1) * 24 + hour(t) AS slot,
                                   count(*) AS n FROM ev GROUP BY ALL""")
        if not df.empty:
            idx = pd.Index(users).get_indexer(df["user_id"])
            np.add.at(out, (idx, df["slot"].to_numpy(dtype=np.int64)),
                      df["n"].to_numpy(dtype=np.float64))
        tot = out.sum(axis=1, keepdims=True)
        return np.divide(out, tot, out=np.zeros_like(out), where=tot > 0)

    def _interests(self, scope: Scope, now: datetime) -> dict[str, str]:
        w = self.kind_weights or DEFAULT_KIND_WEIGHTS
        case = " ".join(f"WHEN '{k}' THEN {float(v)}" for k, v in w.items())
        df = scope.query(f"""
            WITH t AS (SELECT e.user_id, unnest(i.tags) AS tag,
                              (CASE e.kind {case} ELSE 0 END)
                              * pow(0.5, (epoch(?::TIMESTAMPTZ) - epoch(e.ts))
                                         / 86400.0 / {float(self.half_life_days)}) AS w
                       FROM ev e JOIN items i ON i.item_id = e.item_id
                       WHERE e.kind IN ({', '.join(repr(k) for k in w)})),
                 s AS (SELECT user_id, tag, sum(w) AS w FROM t GROUP BY ALL HAVING sum(w) > 0),
                 top AS (SELECT * FROM s
                         QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY w DESC, tag)
                                 <= {int(self.top_tags)})
            -- normalise over the kept tags, so the stored weights sum to 1
            SELECT user_id, tag, w / sum(w) OVER (PARTITION BY user_id) AS w FROM top
            ORDER BY user_id, w DESC, tag""", [now])
        out: dict[str, str] = {}
        for uid, g in df.groupby("user_id", sort=False):
            out[uid] = json.dumps({t: round(float(x), 4) for t, x in zip(g["tag"], g["w"],
                                                                       strict=True)})
        return out

    def _lifecycle(self, df: pd.DataFrame, now: datetime) -> np.ndarray:
        now_ts = pd.Timestamp(now)
        since_first = (now_ts - pd.to_datetime(df["first_ts"], utc=True)).dt.total_seconds()
        since_last = (now_ts - pd.to_datetime(df["last_ts"], utc=True)).dt.total_seconds()
        day = 86400.0
        return np.select(
            [since_first <= self.new_days * day, since_last <= self.active_days * day,
             since_last <= self.dormant_days * day],
            ["new", "active", "at-risk"], default="dormant").astype(object)

    # ------------------------------------------------------------------ output
    def write(self, store: EventStore) -> int:
        """Store the profiles in ``user_profiles``; return rows written.

        Profiles of users who withdrew analytics consent are deleted.
        """
        if not hasattr(self, "profiles_"):
            raise NotFittedError("UserProfiler is not fitted; call fit(scope) first")
        df = self.profiles_[list(PROFILE_COLUMNS)].copy()
        df["active_hours"] = [list(map(float, np.round(h, 5))) for h in df["active_hours"]]
        return store.save_profiles(df)


def read_profiles(store: EventStore) -> pd.DataFrame:
    """The stored ``user_profiles`` table (empty with the right columns when absent)."""
    return store.profiles()


def _levels(rate: pd.Series, eligible: pd.Series) -> np.ndarray:
    out = np.full(len(rate), "low", dtype=object)
    r = rate[eligible]
    if len(r) == 0:
        return out
    lo, hi = np.quantile(r, [1 / 3, 2 / 3])
    vals = rate.to_numpy()
    out[eligible.to_numpy() & (vals > lo)] = "medium"
    out[eligible.to_numpy() & (vals > hi)] = "high"
    return out
