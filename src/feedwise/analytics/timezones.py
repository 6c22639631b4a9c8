"""Which time zone does a user live in? Given, else inferred from activity, else UTC.

A user's zone comes from ``users.timezone`` when it names a valid zone (see
:func:`feedwise.localtime.zone`). For the others, :class:`ZoneInferer` infers the UTC offset
from the hours the user is active, against a **population prior** learned from the users
whose zone is known:

* their activity on their local clock is clustered (k-means on the 24-hour shares) into
  ``n_templates`` rhythm templates ``T_k`` (smoothed, so every hour has some mass), with
  weights ``pi_k``;
* the offsets they live at give the prior ``p(o)`` over offsets (mixed with a uniform floor
  over every offset from -12 to +14 h, so an offset no known user has stays possible);
* a user active ``n_h`` times at UTC hour ``h`` has the posterior
  ``p(o | n) ~ p(o) * sum_k pi_k * prod_h T_k(h + o) ** n_h`` (half-hour offsets
  interpolate the template), and the inferred offset is the posterior mode; its posterior
  probability is the **confidence**. The zone named is the most common known zone at that
  offset (``Etc/GMT-5`` style when no known user lives there).

Activity is counted as distinct active (day, hour) pairs, not events: twenty impressions of
one session are one observation of "the user is awake at 20:00", so the confidence is not
inflated by the feed length.

An inferred zone is used only when its confidence reaches ``min_confidence``; with fewer
than ``min_known`` users of known zone there is no prior to learn from and nothing is
inferred: those users keep UTC, and the result says so (``source = "fallback"``).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from feedwise.errors import ConfigError, NotFittedError
from feedwise.localtime import local_hours, utc_offset_hours, zone

#: Every whole-hour offset a zone can have.
WHOLE_OFFSETS: tuple[int, ...] = tuple(range(-12, 15))


def _shift(template: np.ndarray, offset: float) -> np.ndarray:
    """``out[h] = template((h + offset) mod 24)``, linear between hours (circular)."""
    pos = (np.arange(24) + offset) % 24.0
    lo = np.floor(pos).astype(np.int64)
    frac = pos - lo
    return (1 - frac) * template[lo % 24] + frac * template[(lo + 1) % 24]


def etc_name(offset: float) -> str:
    """The IANA fixed zone of a whole-hour offset (``+5`` -> ``Etc/GMT-5``; POSIX sign)."""
    o = int(round(offset))
    return "UTC" if o == 0 else f"Etc/GMT{'-' if o > 0 else '+'}{abs(o)}"


class ZoneInferer:
    """Infer users' UTC offsets from their hours of activity (see the module docstring).

    Args:
        n_templates: Rhythm templates (k-means clusters of known users' local rhythms).
        smoothing: Pseudo-count added to each hour of a template.
        prior_floor: Share of the offset prior spread uniformly over all offsets.
        min_known: Fewest users of known zone to learn the prior from.
        seed: k-means seed.
    """

    def __init__(self, n_templates: int = 6, smoothing: float = 1.0, prior_floor: float = 0.05,
                 min_known: int = 30, seed: int = 0) -> None:
        self.n_templates = n_templates
        self.smoothing = smoothing
        self.prior_floor = prior_floor
        self.min_known = min_known
        self.seed = seed

    def fit(self, local_counts: np.ndarray, zones: list[str] | np.ndarray,
            at: datetime | None = None) -> ZoneInferer:
        """Learn templates and the offset prior from users of known zone.

        Args:
            local_counts: (n, 24) activity counts of known users on their **local** clock.
            zones: Their (valid) zone names.
            at: When offsets are measured (DST); default now.
        """
        from sklearn.cluster import KMeans

        if self.n_templates < 1 or self.smoothing <= 0 or not 0 < self.prior_floor <= 1:
            raise ConfigError("ZoneInferer: need n_templates >= 1, smoothing > 0 and "
                              "0 < prior_floor <= 1")
        x = np.asarray(local_counts, dtype=np.float64)
        zones = np.asarray(zones, dtype=object)
        keep = x.sum(axis=1) > 0
        x, zones = x[keep], zones[keep]
        if len(x) < max(self.min_known, 1):
            raise ConfigError(f"ZoneInferer: {len(x)} active users of known zone; need at "
                              f"least {self.min_known} to learn the local-time prior")
        at = at or datetime.now(UTC)
        shares = x / x.sum(axis=1, keepdims=True)
        k = min(self.n_templates, len(x))
        labels = KMeans(n_clusters=k, n_init=4, random_state=self.seed).fit_predict(shares)
        tmpl = np.stack([x[labels == j].sum(axis=0) for j in range(k)])
        # spread a little mass circularly (a neighbour hour is likelier than a far one)
        tmpl = tmpl + 0.5 * (np.roll(tmpl, 1, axis=1) + np.roll(tmpl, -1, axis=1)) / 2
        tmpl = tmpl + self.smoothing
        self.templates_ = tmpl / tmpl.sum(axis=1, keepdims=True)
        self.weights_ = np.bincount(labels, minlength=k) / len(labels)
        offs = np.array([utc_offset_hours(z, at) for z in zones])
        known = Counter(np.round(offs, 2).tolist())
        cand = sorted(set(WHOLE_OFFSETS) | set(known))
        self.offsets_ = np.array(cand, dtype=np.float64)
        emp = np.array([known.get(o, 0) for o in cand], dtype=np.float64) / len(offs)
        self.prior_ = (1 - self.prior_floor) * emp + self.prior_floor / len(cand)
        names: dict[float, str] = {}
        for o in cand:
            at_o = Counter(z for z, oo in zip(zones, np.round(offs, 2), strict=True) if oo == o)
            names[o] = at_o.most_common(1)[0][0] if at_o else etc_name(o)
        self.zone_names_ = [names[o] for o in cand]
        # log T_k shifted by each offset: (offsets, k, 24); user at UTC hour h is local h + o
        self.log_shifted_ = np.log(np.stack([
            np.stack([_shift(t, o) for t in self.templates_]) for o in self.offsets_]))
        return self

    def posterior(self, utc_counts: np.ndarray) -> np.ndarray:
        """(m, offsets) posterior over ``offsets_`` of users with these UTC hour counts."""
        if not hasattr(self, "templates_"):
            raise NotFittedError("ZoneInferer is not fitted; call fit(...) first")
        n = np.asarray(utc_counts, dtype=np.float64)
        ll = np.einsum("mh,okh->mok", n, self.log_shifted_)  # (m, offsets, k)
        ll = ll + np.log(self.weights_)[None, None, :]
        mx = ll.max(axis=2, keepdims=True)
        ll = (mx + np.log(np.exp(ll - mx).sum(axis=2, keepdims=True)))[:, :, 0]
        lp = ll + np.log(self.prior_)[None, :]
        lp -= lp.max(axis=1, keepdims=True)
        p = np.exp(lp)
        return p / p.sum(axis=1, keepdims=True)

    def infer(self, utc_counts: np.ndarray) -> pd.DataFrame:
        """Per row of ``utc_counts`` (m, 24): ``offset`` (hours), ``timezone`` and
        ``confidence`` (posterior probability of that offset)."""
        p = self.posterior(utc_counts)
        best = p.argmax(axis=1)
        return pd.DataFrame({"offset": self.offsets_[best],
                             "timezone": np.array(self.zone_names_, dtype=object)[best],
                             "confidence": p[np.arange(len(p)), best]})


def hour_counts(user_ids: pd.Series, ts: pd.Series, users: pd.Index,
                zones: pd.Series | None = None) -> np.ndarray:
    """(len(users), 24) counts of distinct active (local day, local hour) per user.

    ``ts`` are UTC instants (bucket starts are fine); ``zones`` (indexed by user id) gives
    each user's zone; missing -> UTC.
    """
    t = pd.Series(pd.to_datetime(ts, utc=True)).reset_index(drop=True)
    if zones is None:
        z = np.full(len(t), "UTC", dtype=object)
    else:
        z = zones.reindex(user_ids.to_numpy()).to_numpy()
    hours = local_hours(t, z) if len(t) else np.zeros(0, dtype=np.int64)
    day = _local_days(t, z)
    df = pd.DataFrame({"u": users.get_indexer(user_ids.to_numpy()), "d": day, "h": hours})
    df = df[df["u"] >= 0].drop_duplicates()
    out = np.zeros((len(users), 24), dtype=np.float64)
    np.add.at(out, (df["u"].to_numpy(), df["h"].to_numpy(dtype=np.int64)), 1.0)
    return out


def _local_days(t: pd.Series, zones: np.ndarray) -> np.ndarray:
    out = np.zeros(len(t), dtype=np.int64)
    idx = pd.DatetimeIndex(t)
    keys = pd.Series([zone(z)[0].key for z in zones])
    for key, pos in keys.groupby(keys).groups.items():
        sel = np.asarray(list(pos), dtype=np.int64)
        local = idx[sel].tz_convert(key).tz_localize(None)
        out[sel] = (local - pd.Timestamp("1970-01-01")).days
    return out


def resolve_zones(users: pd.Index, given: pd.Series, user_ids: pd.Series, ts: pd.Series, *,
                  infer: bool = True, min_confidence: float = 0.6,
                  inferer: ZoneInferer | None = None,
                  at: datetime | None = None) -> pd.DataFrame:
    """Each user's zone: given (valid), else inferred (confident), else UTC.

    Args:
        users: The user ids to resolve.
        given: ``users.timezone`` by user id (missing or invalid names fall through).
        user_ids, ts: The activity (one row per event or per time bucket, UTC).
        infer: Infer zones of users without a valid one.
        min_confidence: Posterior an inferred zone needs to be used.
        inferer: The (unfitted) inferer to use (default :class:`ZoneInferer()`).
        at: When offsets are measured (default: the last activity).

    Returns:
        Indexed by user id: ``timezone`` (the zone the user's local time uses), ``source``
        (``given`` | ``inferred`` | ``fallback``), ``confidence`` (1 for given, the
        posterior for inferred, NaN for fallback) and ``reason`` (why not given / not
        inferred; None when given).
    """
    if not 0 <= min_confidence <= 1:
        raise ConfigError(f"min_confidence={min_confidence} must be within [0, 1]")
    given = given.reindex(users)
    out = pd.DataFrame(index=users)
    zones, reasons = [], []
    for name in given.to_numpy():
        z, reason = zone(name)
        zones.append(z.key if reason is None else None)
        reasons.append(reason)
    out["timezone"] = pd.Series(zones, index=users, dtype=object)
    out["source"] = np.where(out["timezone"].notna(), "given", "fallback").astype(object)
    out["confidence"] = np.where(out["timezone"].notna(), 1.0, np.nan)
    out["reason"] = pd.Series(reasons, index=users, dtype=object)
    todo = out["timezone"].isna()
    if todo.any():
        known = out.index[~todo]
        inferer = inferer or ZoneInferer()
        if not infer:
            why = "zone inference is off"
        elif len(known) < inferer.min_known:
            why = (f"not inferred: {len(known)} users of known zone, {inferer.min_known} "
                   "needed to learn the local-time prior")
        else:
            why = None
        if why is None:
            if at is None:
                at = pd.to_datetime(ts, utc=True).max().to_pydatetime() if len(ts) else None
            local = hour_counts(user_ids, ts, known, out.loc[known, "timezone"])
            inferer.fit(local, out.loc[known, "timezone"].to_numpy(), at=at)
            unknown = out.index[todo]
            res = inferer.infer(hour_counts(user_ids, ts, unknown))
            res.index = unknown
            active = hour_counts(user_ids, ts, unknown).sum(axis=1) > 0
            ok = (res["confidence"] >= min_confidence).to_numpy() & active
            acc = unknown[ok]
            prev = out.loc[acc, "reason"].fillna("missing")
            out.loc[acc, "timezone"] = res.loc[acc, "timezone"]
            out.loc[acc, "source"] = "inferred"
            out.loc[acc, "confidence"] = res.loc[acc, "confidence"]
            out.loc[acc, "reason"] = [f"{r}; inferred from activity" for r in prev]
            low = unknown[~ok]
            out.loc[low, "confidence"] = np.nan
            out.loc[low, "reason"] = [
                f"{r or 'missing'}; inference {'not confident' if a else 'had no activity'}"
                + (f" ({c:.2f} < {min_confidence})" if a else "") + "; UTC used"
                for r, a, c in zip(out.loc[low, "reason"], active[~ok],
                                   res.loc[low, "confidence"], strict=True)]
        else:
            rest = out.index[todo]
            out.loc[rest, "reason"] = [f"{r or 'missing'}; {why}; UTC used"
                                       for r in out.loc[rest, "reason"]]
        out.loc[out["timezone"].isna(), "timezone"] = "UTC"
    return out
