"""The rules every notification keeps: consent, frequency caps and quiet hours (local time).

* **Consent.** A user gets notifications only while ``consent_personalization`` is not
  withdrawn (a send time learnt from their activity is personalisation) and their
  attributes do not say ``"notifications": false`` (the channel's own opt-out, set with
  ``PATCH /v1/users/{id}``). Either withdrawal cancels what is queued at the next send.
* **Caps.** At most ``max_per_day`` per *local* calendar day of the user, and at least
  ``min_gap_hours`` between two notifications of one user (planned, sent or delivered ones
  count; cancelled and dead ones do not).
* **Quiet hours.** Nothing is sent while the user's local clock is in
  ``[quiet_start, quiet_end)`` (wrapping midnight when ``quiet_start > quiet_end``).
* **Time zones.** The user's ``timezone``; a missing or unknown zone uses
  ``fallback_zone`` (UTC by default) and the plan says why in ``tz_reason``
  (:func:`feedwise.localtime.zone`). Slots are whole UTC hours, converted to local time,
  so a local hour that does not exist on a DST spring-forward night is never chosen and
  one that happens twice is taken at its first instant.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from feedwise.errors import ConfigError
from feedwise.localtime import in_window


class NotificationRules(BaseModel):
    """Caps, quiet hours, retries and the planning horizon of the notification channel."""

    model_config = ConfigDict(extra="forbid")

    max_per_day: int = Field(1, ge=1, le=24)
    min_gap_hours: float = Field(4.0, ge=0, le=72)
    quiet_start: int = Field(22, ge=0, le=24)
    quiet_end: int = Field(8, ge=0, le=24)
    fallback_zone: str = "UTC"
    horizon_hours: int = Field(24, ge=1, le=24)
    max_attempts: int = Field(3, ge=1, le=20)
    retry_backoff_s: float = Field(900.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> NotificationRules:
        if len(self.allowed_hours()) == 0:
            raise ConfigError(f"quiet hours {self.quiet_start}-{self.quiet_end} cover the whole "
                              "day; leave some hours to send in")
        return self

    def quiet(self, local_hours: Any) -> np.ndarray:
        """Whether each local hour is a quiet hour."""
        return in_window(local_hours, self.quiet_start, self.quiet_end)

    def allowed_hours(self) -> np.ndarray:
        """The local hours a notification may go out in."""
        return np.flatnonzero(~in_window(np.arange(24), self.quiet_start, self.quiet_end))

    def retry_at_s(self, attempts: int, now_s: float) -> float:
        """When a notification that failed its ``attempts``-th try is tried again
        (exponential backoff)."""
        return now_s + self.retry_backoff_s * 2.0 ** max(attempts - 1, 0)


def consents(users: pd.DataFrame) -> pd.Series:
    """Per user id of the store's ``users`` frame: whether they may get notifications."""
    if users.empty:
        return pd.Series(dtype=bool)
    ok = users.get("consent_personalization", pd.Series(True, index=users.index))
    ok = ok.astype("boolean").fillna(True).to_numpy(bool)
    attrs = users.get("attributes", pd.Series(None, index=users.index)).to_numpy(dtype=object)
    opted = np.array([_opted_out(a) for a in attrs], bool)
    return pd.Series(ok & ~opted, index=users["user_id"].astype(str).to_numpy())


def _opted_out(attributes: Any) -> bool:
    if not attributes:
        return False
    try:
        d = json.loads(attributes) if isinstance(attributes, str) else attributes
    except (ValueError, RecursionError):
        return False
    return isinstance(d, dict) and d.get("notifications") is False


def violations(sends: pd.DataFrame, rules: NotificationRules) -> pd.DataFrame:
    """Every rule a set of sends breaks: one row per breach (``user_id, ts_s, rule``).

    ``sends`` has ``user_id``, ``ts_s`` (UTC epoch seconds), ``local_hour`` and
    ``local_day`` (the local calendar day, any integer numbering).
    """
    out = []
    if sends.empty:
        return pd.DataFrame(columns=["user_id", "ts_s", "rule"])
    q = rules.quiet(sends["local_hour"].to_numpy())
    out.append(sends.loc[q, ["user_id", "ts_s"]].assign(rule="quiet_hours"))
    per_day = sends.groupby(["user_id", "local_day"])["ts_s"].transform("size")
    out.append(sends.loc[per_day.to_numpy() > rules.max_per_day, ["user_id", "ts_s"]]
               .assign(rule="max_per_day"))
    s = sends.sort_values(["user_id", "ts_s"])
    same = s["user_id"].to_numpy()[1:] == s["user_id"].to_numpy()[:-1]
    gap = np.diff(s["ts_s"].to_numpy(np.float64))
    bad = np.flatnonzero(same & (gap < rules.min_gap_hours * 3600.0 - 1e-6)) + 1
    out.append(s.iloc[bad][["user_id", "ts_s"]].assign(rule="min_gap"))
    return pd.concat(out, ignore_index=True)
