"""Hour slots on each user's clock, and which of them the rules leave open.

A slot is the start of a whole UTC hour within a user's planning horizon. :func:`slots`
gives each slot's local hour and local calendar day (per user zone, DST-correct: slots are
UTC instants converted to local time, so a skipped local hour simply has no slot and a
repeated one has two); :func:`open_slots` masks the slots quiet hours or caps forbid,
given what the user was already sent or has planned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from feedwise.localtime import zone
from feedwise.notifications.rules import NotificationRules

HOUR_S = 3600.0
DAY_S = 86400.0


def _days(local: pd.DatetimeIndex) -> np.ndarray:
    """Local calendar day (days since 1970-01-01 on the local clock) of aware times."""
    return np.asarray(local.tz_localize(None).values.astype("datetime64[D]").astype(np.int64))


@dataclass(frozen=True)
class Slots:
    """Candidate send slots of ``n`` users over ``h`` hours.

    Attributes:
        ts_s: (n, h) UTC epoch seconds of each slot.
        local_hour: (n, h) hour on the user's clock.
        local_day: (n, h) the user's local calendar day (days since 1970-01-01, local).
        zones: The zone name each user's slots were computed in (after the fallback).
        tz_reason: Why a user's zone fell back (``None`` when it did not).
    """

    ts_s: np.ndarray
    local_hour: np.ndarray
    local_day: np.ndarray
    zones: np.ndarray
    tz_reason: np.ndarray


def slots(start_s: np.ndarray | float, zones: Sequence[str | None], horizon_hours: int,
          fallback: str = "UTC") -> Slots:
    """The whole-hour slots from ``start_s`` (per user, or one for all; rounded up to the
    hour) over ``horizon_hours`` hours, on each user's clock."""
    n = len(zones)
    start = np.broadcast_to(np.asarray(start_s, np.float64), (n,))
    first = np.ceil(start / HOUR_S) * HOUR_S
    ts = first[:, None] + HOUR_S * np.arange(horizon_hours)[None, :]
    hour = np.zeros(ts.shape, np.int64)
    day = np.zeros(ts.shape, np.int64)
    keys = np.empty(n, dtype=object)
    reasons = np.empty(n, dtype=object)
    for i, z in enumerate(zones):
        tz, why = zone(z, fallback=fallback)
        keys[i], reasons[i] = tz.key, why
    for key in pd.unique(keys):
        sel = np.flatnonzero(keys == key)
        flat = pd.to_datetime(ts[sel].ravel(), unit="s", utc=True).tz_convert(key)
        hour[sel] = np.asarray(flat.hour).reshape(len(sel), -1)
        day[sel] = _days(flat).reshape(len(sel), -1)
    return Slots(ts, hour, day, keys, reasons)


def open_slots(s: Slots, rules: NotificationRules,
               history: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """(n, h) mask of slots a notification may take: not in quiet hours, and within the
    caps given each user's ``history`` (UTC epoch seconds of the notifications already sent
    or planned; an empty array for none)."""
    ok = ~rules.quiet(s.local_hour)
    if history is None or not any(len(p) for p in history):
        return ok
    n = len(history)
    width = max(len(p) for p in history)
    past = np.full((n, width), np.nan)
    for i, p in enumerate(history):
        if len(p):
            past[i, :len(p)] = np.asarray(p, np.float64)
    # local calendar day of each past send, in the user's zone (one conversion per zone)
    days = np.full((n, width), np.iinfo(np.int64).min, np.int64)
    have = ~np.isnan(past)
    for key in pd.unique(s.zones):
        sel = np.flatnonzero((s.zones == key) & have.any(axis=1))
        if len(sel) == 0:
            continue
        m = have[sel]
        flat = pd.to_datetime(past[sel][m], unit="s", utc=True).tz_convert(key)
        sub = days[sel]
        sub[m] = _days(flat)
        days[sel] = sub
    # sends already on each slot's local day
    same_day = (s.local_day[:, :, None] == days[:, None, :]).sum(axis=2)
    ok &= same_day < rules.max_per_day
    gap = rules.min_gap_hours * HOUR_S
    if gap > 0:
        d = np.abs(s.ts_s[:, :, None] - past[:, None, :])
        d = np.where(np.isnan(d), np.inf, d).min(axis=2)
        ok &= d >= gap - 1e-6
    return ok


def first_slot_of_hour(s: Slots, ok: np.ndarray, hours: np.ndarray) -> np.ndarray:
    """For each user, the index of the first open slot at local hour ``hours[i]`` (-1 when
    there is none)."""
    hit = ok & (s.local_hour == np.asarray(hours)[:, None])
    idx = hit.argmax(axis=1)
    return np.where(hit.any(axis=1), idx, -1)


def open_hours(s: Slots, ok: np.ndarray) -> np.ndarray:
    """(n, 24) mask of the local hours that have an open slot."""
    out = np.zeros((len(ok), 24), bool)
    r, c = np.nonzero(ok)
    out[r, s.local_hour[r, c]] = True
    return out
