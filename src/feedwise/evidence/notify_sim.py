"""A notification simulator: random worlds of users with time zones and an open
probability per user and local hour, and send-time policies compared at equal counts.

A world (:func:`make_world`) has users spread over time zones (a share with a missing or
unknown zone, who are planned on the fallback clock), each with a chronotype: a peak hour
of activity on their local clock, activity around it, and a responsiveness curve whose
peak is near (not at) the activity peak, times a per-user base open rate. Their observed
history is a few weeks of events drawn from the activity curve.

:func:`simulate` runs one policy for ``days`` local days: every day, each user gets one
notification in an open slot of their local day (quiet hours and caps of
:class:`~feedwise.notifications.NotificationRules` applied by the same code that plans
real notifications), so every policy sends the same number; it is opened with the true
probability at the true local hour. Policies:

* ``sendtime`` — :class:`~feedwise.notifications.SendTimeBandit` (activity prior, learns
  from opens day by day);
* ``global_hour`` — every user at the single best UTC hour (chosen with the true open
  probabilities: an oracle, the strongest single global hour), moved to the next open slot
  where that hour is quiet for a user;
* ``local_hour`` — every user at the single best hour of their own clock (oracle);
* ``random_hour`` — a uniformly random open hour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from feedwise.localtime import local_hours, zone
from feedwise.notifications.planner import local_activity
from feedwise.notifications.rules import NotificationRules, violations
from feedwise.notifications.schedule import open_hours, open_slots, slots
from feedwise.notifications.sendtime import SendTimeBandit

#: Zones of the default world (Americas, Europe, Africa, Asia, Oceania).
ZONES: tuple[str, ...] = ("America/Los_Angeles", "America/New_York", "America/Sao_Paulo",
                          "Europe/London", "Europe/Berlin", "Africa/Lagos", "Asia/Kolkata",
                          "Asia/Shanghai", "Asia/Tokyo", "Australia/Sydney")
#: Chronotype peaks (local hour) and their shares.
CHRONOTYPES: tuple[tuple[float, float], ...] = ((8.0, 0.2), (12.5, 0.2), (18.0, 0.2),
                                                (20.5, 0.25), (23.0, 0.15))
POLICIES = ("sendtime", "global_hour", "local_hour", "random_hour")


def _bump(hours: np.ndarray, peak: np.ndarray, width: float) -> np.ndarray:
    d = np.abs(hours[None, :] - peak[:, None]) % 24
    d = np.minimum(d, 24 - d)
    return np.exp(-0.5 * (d / width) ** 2)


@dataclass
class NotifyWorld:
    """Users, their zones and their true (hidden) responsiveness."""

    user_ids: np.ndarray
    zones: np.ndarray          # what the system knows (None / bad names for some users)
    true_zones: np.ndarray     # where they are
    response: np.ndarray       # (n, 24) open probability by true local hour
    activity: pd.DataFrame     # user_id, hour (UTC hour bucket), n: their event history
    start: date
    seed: int
    info: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.user_ids)


def make_world(n_users: int = 1000, seed: int = 0, *, zones: tuple[str, ...] = ZONES,
               missing_zone_rate: float = 0.05, events_per_user: float = 40.0,
               response_shift_sd: float = 1.5, start: date = date(2026, 3, 2)
               ) -> NotifyWorld:
    """A random world (see the module docstring)."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"u{i}" for i in range(n_users)], dtype=object)
    true = rng.choice(np.array(zones, dtype=object), n_users)
    known = true.copy()
    bad = rng.random(n_users) < missing_zone_rate
    known[bad] = rng.choice(np.array([None, "", "Mars/Olympus"], dtype=object), bad.sum())
    peaks = np.array([p for p, _ in CHRONOTYPES])
    shares = np.array([w for _, w in CHRONOTYPES])
    peak = peaks[rng.choice(len(peaks), n_users, p=shares / shares.sum())]
    peak = (peak + rng.normal(0, 1.0, n_users)) % 24
    hours = np.arange(24, dtype=np.float64)
    act = 0.15 + _bump(hours, peak, 2.0)
    resp_peak = (peak + rng.normal(0, response_shift_sd, n_users)) % 24
    base = rng.beta(2.0, 10.0, n_users)
    response = np.clip(base[:, None] * (0.25 + 1.75 * _bump(hours, resp_peak, 2.0)), 0, 0.95)
    # history: events over the 4 weeks before start, drawn from the activity curve on the
    # true local clock, stored as UTC hour buckets (as the store holds them)
    n_ev = rng.poisson(rng.lognormal(np.log(events_per_user), 0.8, n_users))
    rows_u, rows_t = [], []
    t0 = pd.Timestamp(start).tz_localize("UTC") - pd.Timedelta(days=28)
    probs = act / act.sum(axis=1, keepdims=True)
    for i in range(n_users):
        if n_ev[i] == 0:
            continue
        h = rng.choice(24, n_ev[i], p=probs[i])
        d = rng.integers(0, 28, n_ev[i])
        local = (pd.Timestamp(start) - pd.Timedelta(days=28)) + pd.to_timedelta(
            d * 24 + h, unit="h")
        utc = pd.DatetimeIndex(local).tz_localize(true[i], nonexistent="shift_forward",
                                                  ambiguous="NaT").tz_convert("UTC")
        utc = utc[~utc.isna()]
        rows_u.extend([ids[i]] * len(utc))
        rows_t.extend(utc)
    ev = pd.DataFrame({"user_id": rows_u, "hour": pd.DatetimeIndex(rows_t, tz="UTC")
                       if rows_t else pd.DatetimeIndex([], tz="UTC")})
    ev = ev[ev["hour"] >= t0]
    activity = ev.groupby(["user_id", "hour"]).size().rename("n").reset_index()
    return NotifyWorld(ids, known, true, response, activity, start, seed,
                       {"missing_or_unknown_zone": int(bad.sum())})


def _local_midnights(world: NotifyWorld, day: date, fallback: str) -> np.ndarray:
    """UTC epoch seconds of each user's local midnight of ``day`` (on the clock the system
    knows)."""
    out = np.zeros(world.n)
    keys = np.array([zone(z, fallback=fallback)[0].key for z in world.zones], dtype=object)
    for key in pd.unique(keys):
        ts = pd.Timestamp(day).tz_localize(key, nonexistent="shift_forward", ambiguous=True)
        out[keys == key] = ts.timestamp()
    return out


def _global_targets(world: NotifyWorld, rules: NotificationRules, day: date
                    ) -> tuple[int, int]:
    """The oracle single UTC hour and single local hour (most expected opens)."""
    s = slots(_local_midnights(world, day, rules.fallback_zone), list(world.zones), 24,
              rules.fallback_zone)
    ok = open_slots(s, rules)
    true_h = _true_hours(world, s.ts_s)
    best_utc, best_val = 0, -1.0
    utc_h = ((s.ts_s // 3600) % 24).astype(np.int64)
    for h in range(24):
        idx = _shifted(ok, utc_h == h)
        val = world.response[np.arange(world.n), true_h[np.arange(world.n), idx]].sum()
        if val > best_val:
            best_utc, best_val = h, val
    best_local, best_val = 0, -1.0
    for h in rules.allowed_hours():
        idx = _shifted(ok, s.local_hour == h)
        val = world.response[np.arange(world.n), true_h[np.arange(world.n), idx]].sum()
        if val > best_val:
            best_local, best_val = int(h), val
    return best_utc, best_local


def _shifted(ok: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per row, the first open slot at or after the first target slot (cyclically)."""
    n, h = ok.shape
    start = np.where(target.any(axis=1), target.argmax(axis=1), 0)
    order = (start[:, None] + np.arange(h)[None, :]) % h
    rolled = np.take_along_axis(ok, order, axis=1)
    first = rolled.argmax(axis=1)
    return order[np.arange(n), first]


def _true_hours(world: NotifyWorld, ts_s: np.ndarray) -> np.ndarray:
    out = np.zeros(ts_s.shape, np.int64)
    for key in pd.unique(world.true_zones):
        sel = world.true_zones == key
        out[sel] = local_hours(ts_s[sel].ravel(), key).reshape(sel.sum(), -1)
    return out


def simulate(world: NotifyWorld, policy: str, *, days: int = 28,
             rules: NotificationRules | None = None, bandit: SendTimeBandit | None = None,
             seed: int = 0) -> dict:
    """Run ``policy`` for ``days`` days; returns opens, sends, the violations and the log
    (one row per send with its propensity)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; one of {POLICIES}")
    rules = rules or NotificationRules()
    rng = np.random.default_rng(seed)
    outcome_rng = np.random.default_rng(seed + 10_000)  # common outcomes across policies
    rows = np.arange(world.n)
    history: list[list[float]] = [[] for _ in range(world.n)]
    logs = []
    bandit_fitted = None
    if policy == "sendtime":
        zones = pd.Series(world.zones, index=world.user_ids)
        bandit_fitted = (bandit or SendTimeBandit(seed=seed)).fit(
            local_activity(world.activity, zones, rules.fallback_zone))
    g_utc = g_local = None
    if policy in ("global_hour", "local_hour"):
        g_utc, g_local = _global_targets(world, rules, world.start)
    for d in range(days):
        day = world.start + timedelta(days=d)
        s = slots(_local_midnights(world, day, rules.fallback_zone), list(world.zones), 24,
                  rules.fallback_zone)
        ok = open_slots(s, rules, [np.asarray(h[-4:]) for h in history])
        hours_ok = open_hours(s, ok)
        prop = np.ones(world.n)
        if policy == "sendtime":
            hours, prop = bandit_fitted.choose(world.user_ids, hours_ok, rng)
            hit = ok & (s.local_hour == hours[:, None])
            idx = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
        elif policy == "global_hour":
            idx = _shifted(ok, ((s.ts_s // 3600) % 24) == g_utc)
        elif policy == "local_hour":
            idx = _shifted(ok, s.local_hour == g_local)
        else:
            u = rng.random((world.n, 24)) * hours_ok
            hours = u.argmax(axis=1)
            prop = 1.0 / np.maximum(hours_ok.sum(axis=1), 1)
            hit = ok & (s.local_hour == hours[:, None])
            idx = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
        sent = (idx >= 0) & ok[rows, np.maximum(idx, 0)]
        i = np.maximum(idx, 0)
        ts = s.ts_s[rows, i]
        lh = s.local_hour[rows, i]
        true_h = _true_hours(world, ts[:, None])[:, 0]
        p_open = world.response[rows, true_h]
        opened = outcome_rng.random(world.n) < p_open
        if bandit_fitted is not None and sent.any():
            bandit_fitted.update(world.user_ids[sent], lh[sent], opened[sent])
        for k in np.flatnonzero(sent):
            history[k].append(float(ts[k]))
        logs.append(pd.DataFrame({"user_id": world.user_ids[sent], "ts_s": ts[sent],
                                  "local_hour": lh[sent], "local_day": s.local_day[rows, i][sent],
                                  "true_local_hour": true_h[sent], "p_open": p_open[sent],
                                  "opened": opened[sent], "propensity": prop[sent],
                                  "day": d}))
    log = pd.concat(logs, ignore_index=True)
    v = violations(log, rules)
    return {"policy": policy, "sends": len(log), "opens": int(log["opened"].sum()),
            "expected_opens": float(log["p_open"].sum()), "violations": len(v),
            "violation_rows": v, "log": log, "global_utc_hour": g_utc,
            "global_local_hour": g_local}


def compare(world: NotifyWorld, *, days: int = 28, rules: NotificationRules | None = None,
            bandit_params: dict | None = None, seed: int = 0,
            policies: tuple[str, ...] = POLICIES) -> pd.DataFrame:
    """Every policy on one world: sends, opens, expected opens and violations."""
    out = []
    for p in policies:
        b = SendTimeBandit(seed=seed, **(bandit_params or {})) if p == "sendtime" else None
        r = simulate(world, p, days=days, rules=rules, bandit=b, seed=seed)
        out.append({k: r[k] for k in ("policy", "sends", "opens", "expected_opens",
                                      "violations")})
    return pd.DataFrame(out)

