"""Best time to post: when do posts do better, once we account for who is online?

A post published at a busy hour collects more engagement partly because more of its
audience is online to see it ("the audience is online") and partly, perhaps, because posts
published then do better per person who could see them ("posts published then do
better"). A flat heatmap of engagement per post by publish hour mixes the two.
:class:`PublishTimeModel` separates them with a Poisson regression (quasi-Poisson
intervals) of each post's engagement on its publish slot, with the audience's exposure as
an **offset**::

    log E[engagements_p] = b0 + log(exposure_p) + hour[h_p] + weekday[d_p]

* ``exposure_p`` = sum over the hours ``k = 0 .. horizon-1`` after publishing of
  ``online(t_p + k) * exp(-k / tau)``: how many audience users are online (distinct users
  active in that UTC hour) while the post is fresh, decayed with age;
* ``hour`` (24) and ``weekday`` (7) are the publish slot on the report's clock (a zone:
  the audience's most common zone unless told); the hour effects carry a circular
  smoothness penalty ``lam`` (neighbouring hours alike), both a small ridge;
* ``tau`` and ``lam`` are chosen on a validation share of the posts (Poisson deviance),
  never on anything the caller evaluates on; the model is then refitted on all posts.

The fitted model gives, per weekday x hour, the **publish effect** (exp of the slot
effects, relative to the average slot, with 95% intervals) and the **expected engagement**
of a post published then (effect x the exposure that slot typically has), and a plain-words
recommendation from the latter.

Audiences: ``all`` users, a behavioural ``segment:<label>`` (from ``user_profiles``), or
``followers:<author_id>`` (the store's follow edges when it has them, else the ``follows``
list in ``users.attributes``). Posts: optionally only those with a ``tag`` or of an item
``kind``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from feedwise.analytics.scope import Scope
from feedwise.errors import ConfigError, DataError, NotFittedError
from feedwise.localtime import local_weekday_hours, zone
from feedwise.schema import ENGAGEMENT_KINDS

WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


# ---------------------------------------------------------------------------- the model
class PublishTimeModel:
    """Poisson regression of post engagement on publish slot, audience exposure as offset.

    Args:
        taus: Candidate exposure decay times (hours), chosen on validation.
        lams: Candidate smoothness penalties of the hour effects, chosen on validation.
        horizon_hours: Hours after publishing that count towards exposure.
        val_share: Share of posts held out to choose ``tau`` and ``lam``.
        adjust: ``False`` drops the exposure offset (the unadjusted model, for contrast).
        seed: Seed of the validation split.
    """

    def __init__(self, taus: tuple[float, ...] = (6.0, 12.0, 24.0, 48.0),
                 lams: tuple[float, ...] = (0.3, 3.0, 30.0), horizon_hours: int = 72,
                 val_share: float = 0.25, adjust: bool = True, seed: int = 0) -> None:
        self.taus = taus
        self.lams = lams
        self.horizon_hours = horizon_hours
        self.val_share = val_share
        self.adjust = adjust
        self.seed = seed

    # -------------------------------------------------------------- pieces
    def _exposure(self, t_hour: np.ndarray, online: pd.Series, tau: float) -> np.ndarray:
        """Decayed audience-online hours after each publish hour (UTC hour numbers)."""
        if not self.adjust:
            return np.ones(len(t_hour))
        lo = int(min(online.index.min(), t_hour.min()))
        hi = int(max(online.index.max(), t_hour.max())) + self.horizon_hours + 1
        series = np.zeros(hi - lo)
        series[online.index.to_numpy(dtype=np.int64) - lo] = online.to_numpy(dtype=np.float64)
        k = np.arange(self.horizon_hours)
        w = np.exp(-k / float(tau))
        cum = np.lib.stride_tricks.sliding_window_view(np.r_[series, np.zeros(
            self.horizon_hours)], self.horizon_hours)
        return cum[t_hour.astype(np.int64) - lo] @ w

    @staticmethod
    def _design(hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
        n = len(hour)
        x = np.zeros((n, 1 + 24 + 7))
        x[:, 0] = 1.0
        x[np.arange(n), 1 + hour] = 1.0
        x[np.arange(n), 25 + weekday] = 1.0
        return x

    @staticmethod
    def _penalty(lam: float) -> np.ndarray:
        p = np.zeros((32, 32))
        d = np.zeros((24, 24))  # circular second differences of the hour effects
        for h in range(24):
            d[h, (h - 1) % 24] += 1.0
            d[h, h] -= 2.0
            d[h, (h + 1) % 24] += 1.0
        p[1:25, 1:25] = lam * d.T @ d + 1e-3 * np.eye(24)
        p[25:, 25:] = 1e-2 * np.eye(7)
        return p

    @staticmethod
    def _irls(x: np.ndarray, y: np.ndarray, off: np.ndarray, pen: np.ndarray,
              iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
        beta = np.zeros(x.shape[1])
        beta[0] = np.log(max(y.mean(), 1e-9)) - np.log(max(np.exp(off).mean(), 1e-300))
        for _ in range(iters):
            eta = np.clip(x @ beta + off, -30, 30)
            mu = np.exp(eta)
            z = eta - off + (y - mu) / mu
            xtw = x.T * mu
            info = xtw @ x
            new = np.linalg.solve(info + pen, xtw @ z)
            if np.max(np.abs(new - beta)) < 1e-8:
                beta = new
                break
            beta = new
        mu = np.exp(np.clip(x @ beta + off, -30, 30))
        return beta, (x.T * mu) @ x

    @staticmethod
    def _deviance(y: np.ndarray, mu: np.ndarray) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(y > 0, y * np.log(y / mu), 0.0)
        return float(2 * np.sum(t - (y - mu)))

    # -------------------------------------------------------------- fit
    def fit(self, posts: pd.DataFrame, online: pd.Series, clock: str = "UTC") -> PublishTimeModel:
        """Fit on ``posts`` (``created_at`` UTC, ``engagements``) and the audience's
        ``online`` users per UTC hour (index: hours since the epoch).

        Raises:
            DataError: fewer than 30 posts, or no engagement at all.
        """
        if not self.taus or not self.lams or self.horizon_hours < 1 or not (
                0 < self.val_share < 1):
            raise ConfigError("PublishTimeModel: need taus, lams, horizon_hours >= 1 and "
                              "0 < val_share < 1")
        tz, reason = zone(clock)
        if reason is not None:
            raise DataError(f"best-time clock {clock!r}: {reason}; pass an IANA zone name")
        created = pd.to_datetime(posts["created_at"], utc=True)
        y = posts["engagements"].to_numpy(dtype=np.float64)
        if len(y) < 30 or y.sum() <= 0:
            raise DataError(f"best time needs at least 30 posts with some engagement; got "
                            f"{len(y)} posts and {int(y.sum())} engagements (widen the "
                            "window, the audience or the tag)")
        wd, hr = local_weekday_hours(created, tz.key)
        t_hour = np.asarray((created - pd.Timestamp(0, tz="UTC")).dt.total_seconds() // 3600,
                            dtype=np.int64)
        x = self._design(hr, wd)
        rng = np.random.default_rng(self.seed)
        val = rng.random(len(y)) < self.val_share
        scores = []
        for tau in self.taus:
            exp_ = self._exposure(t_hour, online, tau)
            ok = exp_ > 0
            off = np.log(np.where(ok, exp_, 1.0))
            for lam in self.lams:
                tr, va = ~val & ok, val & ok
                beta, _ = self._irls(x[tr], y[tr], off[tr], self._penalty(lam))
                mu = np.exp(x[va] @ beta + off[va])
                scores.append((self._deviance(y[va], mu) / max(va.sum(), 1), tau, lam))
            if not self.adjust:
                break
        _, tau, lam = min(scores)
        exp_ = self._exposure(t_hour, online, tau)
        ok = exp_ > 0
        pen = self._penalty(lam)
        off = np.log(exp_[ok])
        beta, info = self._irls(x[ok], y[ok], off, pen)
        mu = np.exp(x[ok] @ beta + off)
        inv = np.linalg.inv(info + pen)
        edf = float(np.trace(inv @ info))
        phi = max(1.0, float(np.sum((y[ok] - mu) ** 2 / mu) / max(ok.sum() - edf, 1.0)))
        self.clock_ = tz.key
        self.tau_, self.lam_ = float(tau), float(lam)
        self.validation_ = pd.DataFrame(scores, columns=["val_deviance", "tau", "lam"])
        self.coef_ = beta
        self.cov_ = phi * inv @ info @ inv
        self.dispersion_ = phi
        self.n_posts_ = int(ok.sum())
        self.dropped_ = int((~ok).sum())  # posts with no audience online in their horizon
        self.online_ = online
        self._t_hour, self._wd, self._hr = t_hour, wd, hr
        return self

    def _check(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("PublishTimeModel is not fitted; call fit(...) first")

    def _contrast(self, idx: np.ndarray, block: slice) -> tuple[np.ndarray, np.ndarray]:
        """Centred effects of a block (hours or weekdays) and their standard errors."""
        n = block.stop - block.start
        c = np.zeros((n, len(self.coef_)))
        c[np.arange(n), block.start + np.arange(n)] = 1.0
        c[:, block] -= 1.0 / n
        est = c @ self.coef_
        se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", c, self.cov_, c), 0.0))
        return est[idx], se[idx]

    def hour_effects(self) -> pd.DataFrame:
        """Per local hour: ``effect`` (multiplier vs the average hour, other slots equal)
        with ``lo``/``hi`` (95%) and ``log_effect``."""
        self._check()
        est, se = self._contrast(np.arange(24), slice(1, 25))
        z = stats.norm.ppf(0.975)
        return pd.DataFrame({"hour": np.arange(24), "log_effect": est,
                             "effect": np.exp(est), "lo": np.exp(est - z * se),
                             "hi": np.exp(est + z * se)})

    def weekday_effects(self) -> pd.DataFrame:
        self._check()
        est, se = self._contrast(np.arange(7), slice(25, 32))
        z = stats.norm.ppf(0.975)
        return pd.DataFrame({"weekday": list(WEEKDAYS), "log_effect": est,
                             "effect": np.exp(est), "lo": np.exp(est - z * se),
                             "hi": np.exp(est + z * se)})

    def grid(self) -> pd.DataFrame:
        """Per weekday x local hour: ``effect`` (with 95% interval), the ``exposure`` a post
        published then typically gets, and ``expected`` engagements (with interval)."""
        self._check()
        z = stats.norm.ppf(0.975)
        # every hour of the window, and the exposure a post published then would get
        hours = np.arange(int(self.online_.index.min()), int(self.online_.index.max()) + 1)
        stamps = pd.to_datetime(hours * 3600, unit="s", utc=True)
        wd, hr = local_weekday_hours(stamps, self.clock_)
        exp_ = self._exposure(hours, self.online_, self.tau_) if self.adjust else np.ones(
            len(hours))
        # a slot's typical exposure, from publish hours whose whole horizon is observed
        full = hours <= hours.max() - self.horizon_hours
        if full.sum() >= 168:
            exp_, wd, hr = exp_[full], wd[full], hr[full]
        typical = pd.Series(exp_).groupby([wd, hr]).mean()
        rows = []
        for d in range(7):
            for h in range(24):
                xv = np.zeros(len(self.coef_))
                xv[0], xv[1 + h], xv[25 + d] = 1.0, 1.0, 1.0
                c = xv.copy()
                c[0] = 0.0
                c[1:25] -= 1 / 24
                c[25:] -= 1 / 7
                eff = float(c @ self.coef_)
                se_e = float(np.sqrt(max(c @ self.cov_ @ c, 0.0)))
                eta = float(xv @ self.coef_)
                se_eta = float(np.sqrt(max(xv @ self.cov_ @ xv, 0.0)))
                e = float(typical.get((d, h), np.nan))
                lg = np.log(e) if e > 0 else -np.inf
                rows.append({"weekday": WEEKDAYS[d], "weekday_no": d, "hour": h,
                             "effect": np.exp(eff), "effect_lo": np.exp(eff - z * se_e),
                             "effect_hi": np.exp(eff + z * se_e), "exposure": e,
                             "expected": np.exp(eta + lg),
                             "expected_lo": np.exp(eta - z * se_eta + lg),
                             "expected_hi": np.exp(eta + z * se_eta + lg)})
        return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- data
def audience_users(scope: Scope, audience: str = "all") -> np.ndarray | None:
    """User ids of an audience (``None`` for everyone).

    ``all``; ``segment:<label>`` (``user_profiles.segment``, or a lifecycle stage);
    ``followers:<author_id>`` (follow edges standing at the scope's end, else the
    ``follows`` list of ``users.attributes``).
    """
    if audience in ("all", "", None):
        return None
    kind, _, value = audience.partition(":")
    if not value:
        raise ConfigError(f"audience {audience!r}: use all, segment:<label> or "
                          "followers:<author_id>")
    if kind == "segment":
        prof = scope.store.profiles()
        if prof.empty:
            raise DataError("audience segment: no stored profiles; run `feedwise profiles` "
                            "first")
        m = (prof["segment"].astype(str) == value) | (prof["lifecycle"].astype(str) == value)
        ids = prof.loc[m, "user_id"].to_numpy()
    elif kind == "followers":
        ids = np.array([], dtype=object)
        if hasattr(scope.store, "edges_as_of"):
            edges = scope.store.edges_as_of(scope.end, kinds=("follow",))
            ids = edges.loc[edges["dst_id"] == value, "src_id"].to_numpy()
        if len(ids) == 0:
            users = scope.query("SELECT user_id, attributes FROM users")
            keep = []
            for uid, attrs in zip(users["user_id"], users["attributes"], strict=True):
                try:
                    follows = json.loads(attrs or "{}").get("follows", [])
                except (TypeError, ValueError):
                    follows = []
                if value in (follows or []):
                    keep.append(uid)
            ids = np.array(keep, dtype=object)
    else:
        raise ConfigError(f"audience {audience!r}: use all, segment:<label> or "
                          "followers:<author_id>")
    if len(ids) == 0:
        raise DataError(f"audience {audience!r} has no users")
    return np.asarray(ids, dtype=object)


def default_clock(scope: Scope, users: np.ndarray | None) -> str:
    """The audience's most common given zone (``UTC`` when none has one)."""
    df = scope.query("SELECT user_id, timezone FROM users WHERE timezone IS NOT NULL")
    if users is not None:
        df = df[df["user_id"].isin(users)]
    names = [zone(z)[0].key for z in df["timezone"] if zone(z)[1] is None]
    return Counter(names).most_common(1)[0][0] if names else "UTC"


def post_outcomes(scope: Scope, users: np.ndarray | None = None, *, tag: str | None = None,
                  kind: str | None = "post") -> pd.DataFrame:
    """Posts created in the scope's window with the ``engagements`` (click, like, comment,
    share, save) and ``impressions`` the audience gave them."""
    posts = scope.query("""SELECT item_id, created_at, tags, kind FROM items
                           WHERE created_at >= ? AND created_at < ?""",
                        [scope.start, scope.end])
    if kind:
        posts = posts[posts["kind"] == kind]
    if tag:
        posts = posts[[tag in list(t if t is not None else []) for t in posts["tags"]]]
    kinds = ", ".join(f"'{k}'" for k in ENGAGEMENT_KINDS)
    counted = (f"count(*) FILTER (WHERE kind IN ({kinds})) AS engagements, "
               "count(*) FILTER (WHERE kind = 'impression') AS impressions")
    if users is None:  # everyone: the per-item sums in SQL (the same whole numbers)
        per = scope.query(f"SELECT item_id, {counted} FROM ev WHERE item_id IS NOT NULL "
                          "GROUP BY item_id").set_index("item_id")
    else:
        ev = scope.query(f"SELECT item_id, user_id, {counted} FROM ev GROUP BY ALL")
        ev = ev[ev["user_id"].isin(users)]
        per = ev.groupby("item_id")[["engagements", "impressions"]].sum()
    out = posts.join(per, on="item_id")
    out[["engagements", "impressions"]] = out[["engagements", "impressions"]].fillna(0)
    return out.reset_index(drop=True)


def audience_online(scope: Scope, users: np.ndarray | None = None) -> pd.Series:
    """Distinct audience users active per UTC hour (index: hours since the epoch), every
    hour of the window present."""
    df = scope.query("""SELECT DISTINCT user_id, CAST(floor(epoch(ts) / 3600) AS BIGINT) AS h
                        FROM ev""")
    if users is not None:
        df = df[df["user_id"].isin(users)]
    lo = int(scope.start.timestamp() // 3600)
    hi = int(np.ceil(scope.end.timestamp() / 3600))
    return df.groupby("h").size().reindex(range(lo, hi), fill_value=0).astype(float)


def raw_heatmap(posts: pd.DataFrame, clock: str) -> pd.DataFrame:
    """The flat view: mean engagements per post by publish weekday x hour (no adjustment)."""
    wd, hr = local_weekday_hours(posts["created_at"], clock)
    df = pd.DataFrame({"weekday_no": wd, "hour": hr, "y": posts["engagements"].to_numpy()})
    return df.groupby(["weekday_no", "hour"])["y"].agg(["mean", "size"]).reset_index()


# ---------------------------------------------------------------------------- the answer
@dataclass
class BestTime:
    """The answer of :func:`best_time` (tables and the plain-words recommendation)."""

    audience: str
    subject: str
    clock: str
    grid: pd.DataFrame
    hours: pd.DataFrame
    weekdays: pd.DataFrame
    recommendation: str
    n_posts: int
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"audience": self.audience, "subject": self.subject, "clock": self.clock,
                "recommendation": self.recommendation, "n_posts": self.n_posts,
                "settings": self.settings,
                "hours": self.hours.round(4).to_dict(orient="records"),
                "weekdays": self.weekdays.round(4).to_dict(orient="records")}


def recommend(grid: pd.DataFrame, subject: str, clock: str,
              width: int = 3) -> str:
    """Plain words: the best ``width``-hour window by expected engagement, and the days."""
    by_hour = grid.groupby("hour")["expected"].mean().reindex(range(24)).to_numpy()
    roll = np.array([np.nansum(by_hour[[(h + k) % 24 for k in range(width)]])
                     for h in range(24)])
    h0 = int(np.nanargmax(roll))
    h1 = (h0 + width - 1) % 24
    day = grid.groupby("weekday_no")["expected"].mean()
    wk, we = float(day.loc[0:4].mean()), float(day.loc[5:6].mean())
    # a day group is named only when it is at least 10% better than the other
    days = ("on weekends" if we > 1.1 * wk else "on weekdays" if wk > 1.1 * we
            else "on any day")
    where = "UTC" if clock == "UTC" else f"{clock} time"
    what = f"post {subject}" if subject else "post"
    return f"{what} {days} {h0:02d}-{(h1 + 1) % 24:02d} {where}"


def best_time(scope: Scope, *, audience: str = "all", tag: str | None = None,
              kind: str | None = "post", clock: str | None = None,
              model: PublishTimeModel | None = None) -> BestTime:
    """Fit :class:`PublishTimeModel` for an audience and subject; see the module docstring."""
    users = audience_users(scope, audience)
    clock = clock or default_clock(scope, users)
    posts = post_outcomes(scope, users, tag=tag, kind=kind)
    online = audience_online(scope, users)
    m = (model or PublishTimeModel()).fit(posts, online, clock)
    grid = m.grid()
    hours, weekdays = m.hour_effects(), m.weekday_effects()
    raw = raw_heatmap(posts, m.clock_).groupby("hour")["mean"].mean().reindex(range(24))
    hours["raw_mean"] = raw.to_numpy()
    hours["online"] = grid.groupby("hour")["exposure"].mean().reindex(range(24)).to_numpy()
    subject = tag or ("" if kind in ("post", None) else f"{kind}s")
    rec = recommend(grid, subject, m.clock_)
    return BestTime(audience=audience, subject=subject, clock=m.clock_, grid=grid,
                    hours=hours, weekdays=weekdays, recommendation=rec, n_posts=m.n_posts_,
                    settings={"tau_hours": m.tau_, "lam": m.lam_,
                              "dispersion": round(m.dispersion_, 3),
                              "dropped_posts": m.dropped_, "adjusted": m.adjust})
