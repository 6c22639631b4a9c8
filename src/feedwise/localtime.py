"""Time zones: validate a zone name, convert UTC instants to a user's local clock.

Every per-user time rule of feedwise (active hours, dayparts, quiet hours, send times) is
in the user's **local** time. Timestamps are stored in UTC; this module is the one place
that turns them into local wall-clock time.

The fallback rule (documented in docs/timing.md):

* :func:`zone` never raises on bad input. A missing zone (``None``, ``""``, NaN) gives the
  fallback zone (UTC unless told otherwise) and the reason ``"missing"``; an unknown name
  gives the fallback and ``"unknown zone 'X'"``. Whole-hour offsets written as ``UTC+5``,
  ``GMT-03:00`` or ``+05`` are accepted and mapped to the IANA fixed zone ``Etc/GMT-5``
  (note the inverted sign of the ``Etc`` names); a zone name in the wrong case
  (``europe/london``) is accepted as its canonical spelling.
* :func:`validate_zone` is the strict twin: it raises :class:`~feedwise.errors.DataError`
  naming the value and the fix.
* UTC -> local is always well defined. Local -> UTC (:func:`to_utc`) is not: a wall time
  inside a DST **gap** (02:30 on a spring-forward night) does not exist, and one inside a
  DST **fold** (01:30 on a fall-back night) exists twice. By default a gap time is shifted
  forward by the length of the gap (02:30 -> 03:30, the instant a clock that skipped would
  show) and a fold time takes the earlier instant; the reason is returned with the result.
  ``gap="raise"`` / ``fold="raise"`` raise a :class:`DataError` instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import numpy as np
import pandas as pd

from feedwise.errors import ConfigError, DataError

__all__ = ["zone", "validate_zone", "local_hours", "local_weekday_hours", "local_time",
           "to_utc", "utc_offset_hours", "in_window", "zone_reasons", "MISSING"]

#: The reason :func:`zone` gives for a missing zone.
MISSING = "missing"

_OFFSET = re.compile(r"^(?:UTC|GMT|Z)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$", re.I)


@lru_cache(maxsize=1)
def _canonical() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


@lru_cache(maxsize=4096)
def _resolve(name: str) -> tuple[str | None, str | None]:
    """(canonical zone key, None) or (None, reason) for a non-empty name."""
    text = name.strip()
    if text.upper() in ("UTC", "GMT", "Z", "ZULU"):
        return "UTC", None
    m = _OFFSET.match(text)
    if m:
        sign, hours, minutes = m.group(1), int(m.group(2)), int(m.group(3) or 0)
        if minutes or hours > 14:
            return None, (f"fixed offset {text!r} is not an IANA zone; use a region name "
                          "such as 'Asia/Kolkata' or 'America/St_Johns'")
        if hours == 0:
            return "UTC", None
        # Etc/GMT zones carry the POSIX sign: UTC+5 is Etc/GMT-5.
        return f"Etc/GMT{'-' if sign == '+' else '+'}{hours}", None
    key = _canonical().get(text.lower())
    if key is None:
        return None, f"unknown zone {text!r}"
    try:
        ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):  # pragma: no cover - listed but unreadable
        return None, f"unknown zone {text!r}"
    return key, None


def _is_missing(name: Any) -> bool:
    if name is None:
        return True
    if isinstance(name, float) and math.isnan(name):
        return True
    if name is pd.NA or name is pd.NaT:
        return True
    return isinstance(name, str) and not name.strip()


@lru_cache(maxsize=4096)
def _zoneinfo(key: str) -> ZoneInfo:
    return ZoneInfo(key)


def zone(name: str | ZoneInfo | None, *, fallback: str = "UTC") -> tuple[ZoneInfo, str | None]:
    """The zone called ``name`` and ``None``, or the fallback zone and the reason.

    Never raises on bad ``name`` (see the module docstring for the rule); raises
    :class:`ConfigError` if ``fallback`` itself is not a valid zone.
    """
    if isinstance(name, ZoneInfo):
        return name, None
    if not _is_missing(name):
        key, reason = _resolve(str(name))
        if key is not None:
            return _zoneinfo(key), None
    else:
        reason = MISSING
    fkey, freason = _resolve(str(fallback)) if not _is_missing(fallback) else (None, MISSING)
    if fkey is None:
        raise ConfigError(f"fallback time zone {fallback!r} is not valid ({freason}); "
                          "pass an IANA name such as 'UTC' or 'Europe/Berlin'")
    return _zoneinfo(fkey), reason


def validate_zone(name: str) -> ZoneInfo:
    """The zone called ``name``; raises :class:`DataError` with the fix when it is not one."""
    if _is_missing(name):
        raise DataError("time zone is missing: give an IANA zone name such as "
                        "'Europe/Berlin' or 'America/New_York' (or 'UTC')")
    if isinstance(name, ZoneInfo):
        return name
    key, reason = _resolve(str(name))
    if key is None:
        raise DataError(f"time zone {name!r} is not valid ({reason}): give an IANA zone name "
                        "such as 'Europe/Berlin' or 'America/New_York' (or 'UTC'); the list is "
                        "zoneinfo.available_timezones()")
    return _zoneinfo(key)


def zone_reasons(names: Iterable[Any]) -> dict[str, str]:
    """For a column of zone names, ``{name: reason}`` for every name that falls back."""
    out: dict[str, str] = {}
    for name in names:
        if isinstance(name, ZoneInfo):
            continue
        _, reason = zone(name)
        if reason is not None:
            out[str(name)] = reason
    return out


def _utc_index(ts: Any) -> pd.DatetimeIndex:
    """UTC instants from datetimes (naive = UTC), strings, or epoch seconds."""
    arr = ts if isinstance(ts, pd.Series | pd.Index | np.ndarray | list | tuple) else [ts]
    values = pd.Series(arr) if not isinstance(arr, pd.Series) else arr.reset_index(drop=True)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        idx = pd.to_datetime(values.astype(float), unit="s", utc=True)
    else:
        idx = pd.to_datetime(values, utc=True)
    return pd.DatetimeIndex(idx)


def _parts(ts: Any, zones: Any, fallback: str) -> tuple[np.ndarray, np.ndarray]:
    idx = _utc_index(ts)
    n = len(idx)
    hours = np.zeros(n, dtype=np.int64)
    days = np.zeros(n, dtype=np.int64)
    if isinstance(zones, str | ZoneInfo) or _is_missing(zones):
        tz, _ = zone(zones, fallback=fallback)
        local = idx.tz_convert(tz)
        return np.asarray(local.day_of_week, dtype=np.int64), np.asarray(local.hour, dtype=np.int64)
    names = pd.Series(list(zones), dtype=object)
    if len(names) != n:
        raise DataError(f"local_hours: {n} timestamps but {len(names)} zones; give one zone "
                        "or one per timestamp")
    keys = names.map(lambda z: zone(z, fallback=fallback)[0].key)
    for key, pos in keys.groupby(keys).groups.items():
        sel = np.asarray(list(pos), dtype=np.int64)
        local = idx[sel].tz_convert(_zoneinfo(key))
        hours[sel] = local.hour
        days[sel] = local.day_of_week
    return days, hours


def local_hours(ts: Any, zones: Any, *, fallback: str = "UTC") -> np.ndarray:
    """Local hour of day (0-23) of each UTC instant in ``ts``.

    ``ts``: UTC datetimes (naive ones are taken as UTC) or epoch seconds, one or an array;
    ``zones``: one zone name or one per timestamp. Missing or unknown zones use ``fallback``
    (see :func:`zone`; call :func:`zone_reasons` to list them).
    """
    return _parts(ts, zones, fallback)[1]


def local_weekday_hours(ts: Any, zones: Any, *,
                        fallback: str = "UTC") -> tuple[np.ndarray, np.ndarray]:
    """(weekday 0=Monday..6, hour 0-23) in local time of each UTC instant, as arrays."""
    return _parts(ts, zones, fallback)


def local_time(ts: Any, name: str | ZoneInfo | None, *, fallback: str = "UTC") -> datetime:
    """The UTC instant ``ts`` (datetime, naive = UTC, or epoch seconds) on the local clock."""
    if isinstance(ts, int | float | np.integer | np.floating):
        ts = datetime.fromtimestamp(float(ts), tz=UTC)
    elif isinstance(ts, pd.Timestamp):
        ts = ts.to_pydatetime()
    elif isinstance(ts, str):
        ts = pd.Timestamp(ts).to_pydatetime()
    if not isinstance(ts, datetime):
        raise DataError(f"local_time: {ts!r} is not a datetime or epoch seconds")
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(zone(name, fallback=fallback)[0])


def utc_offset_hours(name: str | ZoneInfo | None, at: datetime | None = None, *,
                     fallback: str = "UTC") -> float:
    """The zone's offset from UTC in hours at instant ``at`` (default: now)."""
    at = at or datetime.now(UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    off = at.astimezone(zone(name, fallback=fallback)[0]).utcoffset() or timedelta(0)
    return off.total_seconds() / 3600.0


def to_utc(wall: datetime, name: str | ZoneInfo | None, *,
           gap: Literal["forward", "raise"] = "forward",
           fold: Literal["earlier", "later", "raise"] = "earlier",
           fallback: str = "UTC") -> tuple[datetime, str | None]:
    """The UTC instant of the naive local wall time ``wall`` in zone ``name``, and a reason.

    The reason is ``None`` for an ordinary time; for a missing/unknown zone it is the zone
    fallback reason; inside a DST gap the time is shifted forward by the gap (reason says
    so) unless ``gap="raise"``; inside a DST fold the earlier (or ``"later"``) instant is
    taken unless ``fold="raise"``.
    """
    if wall.tzinfo is not None:
        raise DataError(f"to_utc expects a naive local wall time, got {wall.isoformat()} "
                        "(an aware time is already an instant: use .astimezone(UTC))")
    tz, zreason = zone(name, fallback=fallback)
    first = wall.replace(tzinfo=tz, fold=0)
    second = wall.replace(tzinfo=tz, fold=1)
    u0, u1 = first.astimezone(UTC), second.astimezone(UTC)
    back = u0.astimezone(tz).replace(tzinfo=None)
    if back != wall:  # the wall time does not exist: a DST gap
        # fold=0 uses the offset before the transition; fold=1 the one after. The instant
        # with the pre-gap offset lands after the gap, i.e. shifted forward by its length.
        if gap == "raise":
            raise DataError(f"{wall:%Y-%m-%d %H:%M} does not exist in {tz.key} (a DST gap: the "
                            "clocks jump forward); pick a time outside the gap or use "
                            "gap='forward'")
        target = max(u0, u1)
        shown = target.astimezone(tz)
        reason = (f"{wall:%Y-%m-%d %H:%M} does not exist in {tz.key} (DST gap); shifted "
                  f"forward to {shown:%H:%M}")
        return target, reason if zreason is None else f"{zreason}; {reason}"
    if u0 != u1:  # ambiguous: a DST fold
        if fold == "raise":
            raise DataError(f"{wall:%Y-%m-%d %H:%M} happens twice in {tz.key} (a DST fold: the "
                            "clocks go back); say which with fold='earlier' or fold='later'")
        target = min(u0, u1) if fold == "earlier" else max(u0, u1)
        reason = (f"{wall:%Y-%m-%d %H:%M} happens twice in {tz.key} (DST fold); took the "
                  f"{fold} instant")
        return target, reason if zreason is None else f"{zreason}; {reason}"
    return u0, zreason


def in_window(hours: Any, start: int, end: int) -> np.ndarray:
    """Whether each hour lies in the local window ``[start, end)``; wraps midnight when
    ``start > end`` (``in_window(h, 22, 7)`` is the night 22:00-07:00); empty if equal."""
    h = np.asarray(hours, dtype=np.int64) % 24
    if not (0 <= start <= 24 and 0 <= end <= 24):
        raise ConfigError(f"hour window {start}-{end}: hours must be within 0..24")
    if start == end:
        return np.zeros(h.shape, dtype=bool)
    if start < end:
        return (h >= start) & (h < end)
    return (h >= start) | (h < end)
