"""Time zones and a planted publish-hour effect for the synthetic social world.

:func:`feedwise.datasets.synthetic.synthetic_social` takes ``timing=Timing(...)``; without
it the world is exactly the UTC world it always was (this module draws from its own random
stream, so the other draws do not move). With it:

* **Users live in time zones** (``Timing.zones``: IANA name -> share). Their planted rhythm
  (morning 08:00, midday 12:30, evening 20:30, night 00:30) is on their **local** clock:
  a session's local wall time is drawn as before and converted to UTC with the zone's
  rules (DST gaps shift forward, folds take the earlier instant). Sessions whose UTC
  instant falls outside ``[start, end)`` are dropped. ``users.timezone`` carries the zone
  for all but a ``hidden`` share of users (they have ``None``: zone inference must find
  them).
* **A publish-hour effect per topic**: each topic has a good hour ``c`` (uniform on the
  day); a post of that topic published at local hour ``h`` of the ``clock`` zone has its
  click probability (and so every engagement that follows a click) multiplied by
  ``exp(publish_effect * cos(2 pi (h - c) / 24))`` — independent of how many users are
  online, which separately drives the post's impressions.

The ground truth lands in ``world.truth``: ``user_timezone`` (every user's zone),
``user_timezone_given`` (bool), ``user_peak_local`` (planted peak, local hours),
``publish_clock``, ``topic_good_hour`` and ``publish_effect`` (topics x 24: the planted
log-multiplier at the middle of each local hour).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from feedwise.errors import ConfigError
from feedwise.localtime import validate_zone

#: A default mix of zones: most of the audience in the Americas, a third in Europe, a
#: tenth in Asia (so "the audience is online" has a clear daily shape on any one clock).
DEFAULT_ZONES: dict[str, float] = {
    "America/New_York": 0.40, "America/Los_Angeles": 0.15, "Europe/London": 0.20,
    "Europe/Berlin": 0.10, "Asia/Tokyo": 0.10, "Asia/Kolkata": 0.05}


@dataclass(frozen=True)
class Timing:
    """How the synthetic world uses time zones and publish hours.

    Args:
        zones: IANA zone name -> share of users (normalised).
        hidden: Share of users whose zone is left out of ``users.timezone``.
        publish_effect: Amplitude of the planted publish-hour log-multiplier (0: none).
        clock: The zone whose local hours the publish effect is planted in (default: the
            zone with the largest share).
    """

    zones: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_ZONES))
    hidden: float = 0.25
    publish_effect: float = 0.6
    clock: str | None = None

    def __post_init__(self) -> None:
        if not self.zones or any(v < 0 for v in self.zones.values()) or sum(
                self.zones.values()) <= 0:
            raise ConfigError("Timing.zones: give zone -> share with positive shares")
        for name in self.zones:
            validate_zone(name)
        if self.clock is not None:
            validate_zone(self.clock)
        if not 0.0 <= self.hidden <= 1.0:
            raise ConfigError(f"Timing.hidden={self.hidden} must be within [0, 1]")
        if self.publish_effect < 0:
            raise ConfigError(f"Timing.publish_effect={self.publish_effect} must be >= 0")

    @property
    def publish_clock(self) -> str:
        return self.clock or max(self.zones, key=lambda z: self.zones[z])

    def as_dict(self) -> dict:
        return {"zones": dict(self.zones), "hidden": self.hidden,
                "publish_effect": self.publish_effect, "clock": self.publish_clock}


@dataclass
class TimingPlan:
    """The drawn time facts of one world (built by :func:`plan_timing`)."""

    spec: Timing
    user_zone: np.ndarray        # (n_users,) zone names
    given: np.ndarray            # (n_users,) bool: zone is in users.timezone
    good_hour: np.ndarray        # (n_topics,) planted good local hour per topic

    def session_starts(self, start: datetime, day: np.ndarray, hour: np.ndarray,
                       user: np.ndarray) -> np.ndarray:
        """UTC epoch seconds of sessions at local ``hour`` (float) of local day ``day``."""
        base = pd.Timestamp(start.date())  # the window's first calendar day, naive
        wall = base + pd.to_timedelta(np.round((day * 86400.0 + hour * 3600.0) * 1e6)
                                      .astype(np.int64), unit="us")
        wall = pd.DatetimeIndex(wall)
        out = np.empty(len(wall), dtype=np.float64)
        zones = self.user_zone[user]
        for name in np.unique(zones):
            sel = np.flatnonzero(zones == name)
            local = wall[sel].tz_localize(name, ambiguous=np.ones(len(sel), dtype=bool),
                                          nonexistent="shift_forward")
            out[sel] = local.tz_convert("UTC").as_unit("ns").asi8 / 1e9
        return out

    def publish_multiplier(self, created: np.ndarray, topic: np.ndarray) -> np.ndarray:
        """The planted click multiplier of posts created at UTC seconds ``created``."""
        if self.spec.publish_effect == 0:
            return np.ones(len(created))
        local = pd.to_datetime(np.round(created * 1e6).astype(np.int64), unit="us",
                               utc=True).tz_convert(self.spec.publish_clock)
        h = np.asarray(local.hour + local.minute / 60.0 + local.second / 3600.0)
        return np.exp(self._log_effect(h, self.good_hour[topic]))

    def _log_effect(self, h: np.ndarray, centre: np.ndarray) -> np.ndarray:
        return self.spec.publish_effect * np.cos(2 * np.pi * (h - centre) / 24.0)

    def truth(self, rhythm_peak: np.ndarray) -> dict:
        """The entries this plan adds to ``world.truth``."""
        hours = np.arange(24) + 0.5
        return {"user_timezone": self.user_zone.copy(), "user_timezone_given": self.given.copy(),
                "user_peak_local": np.asarray(rhythm_peak, dtype=np.float64) % 24.0,
                "publish_clock": self.spec.publish_clock, "topic_good_hour": self.good_hour,
                "publish_effect": self._log_effect(hours[None, :], self.good_hour[:, None]),
                "timing": self.spec.as_dict()}

    def users_timezone(self) -> np.ndarray:
        return np.where(self.given, self.user_zone, None).astype(object)


def plan_timing(spec: Timing, n_users: int, n_topics: int, seed: int) -> TimingPlan:
    """Draw the zones and good hours of one world from a stream of its own."""
    rng = np.random.default_rng([int(seed), 23])
    names = list(spec.zones)
    p = np.array([spec.zones[z] for z in names], dtype=np.float64)
    zone_of = np.array(names, dtype=object)[rng.choice(len(names), n_users, p=p / p.sum())]
    given = rng.random(n_users) >= spec.hidden
    good = rng.uniform(0.0, 24.0, n_topics)
    return TimingPlan(spec, zone_of, given, good)
