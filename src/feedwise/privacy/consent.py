"""Consent: the three flags, their change log, and applying a change to a running engine."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from feedwise.errors import ConfigError, NotFoundError
from feedwise.feed.engine import FeedEngine
from feedwise.schema import utc
from feedwise.store import EventStore

log = logging.getLogger("feedwise.privacy")

#: The consent flags, in the order of the ``users`` columns.
CONSENT_FLAGS: tuple[str, ...] = ("personalization", "ads", "analytics")


class ConsentRecord(BaseModel):
    """A user's consent flags with the time and source of the last change."""

    model_config = ConfigDict(extra="forbid")

    personalization: bool = True
    ads: bool = True
    analytics: bool = True
    updated_at: datetime | None = None
    source: str | None = None


def get_consent(store: EventStore, user_id: str) -> ConsentRecord | None:
    """The stored consent of ``user_id`` (external id), or ``None`` for an unknown user
    (whose consent is the schema's default: granted)."""
    r = store.consent(store.user_key(user_id))
    if r is None:
        return None

    def flag(v: Any) -> bool:
        got = _stored_flag(v)
        return True if got is None else got

    ts = r["consent_updated_at"]
    return ConsentRecord(personalization=flag(r["consent_personalization"]),
                         ads=flag(r["consent_ads"]), analytics=flag(r["consent_analytics"]),
                         updated_at=None if pd.isna(ts) else pd.Timestamp(ts).to_pydatetime(),
                         source=None if pd.isna(r["consent_source"]) else r["consent_source"])


def set_consent(store: EventStore, user_id: str, *, now: datetime, source: str,
                personalization: bool | None = None, ads: bool | None = None,
                analytics: bool | None = None,
                attributes: Mapping[str, Any] | None = None) -> ConsentRecord:
    """Change some of a user's consent flags; the others keep their value.

    Only what actually changes is written: a flag given with the value it already holds
    is no change. A changed flag is appended to ``consent_log`` (with ``source`` and
    ``now``), and the ``users`` row gets it with ``consent_updated_at = now`` and
    ``consent_source = source``. A flag with no stored value yet (a new user, or a row
    whose flag is NULL: granted by default) counts as changed when it is given, so the
    log holds the first explicit record of each flag. A new user gets a ``users`` row
    whose flags not given stay NULL (granted by default, never set).

    Args:
        store: The :class:`~feedwise.store.EventStore`.
        user_id: External id (pseudonymised by the store when it has a key).
        now: Time of the change (tz-aware).
        source: Where the consent was given: ``banner``, ``settings``, ``api``, ``cli`` ...
        personalization, ads, analytics: New values; ``None`` leaves a flag unchanged.
        attributes: The user's new attributes (they replace the stored ones, in the same
            transaction); ``None`` leaves them unchanged.

    Returns:
        The record after the change.
    """
    if not source:
        raise ConfigError("a consent change needs its source (e.g. 'settings', 'banner')")
    if store.is_erased(user_id):
        raise NotFoundError("this user was erased; a new consent needs a new account id")
    key = store.user_key(user_id)
    new = {"personalization": personalization, "ads": ads, "analytics": analytics}
    row = store.consent(key)
    old = {f: None if row is None else _stored_flag(row[f"consent_{f}"])
           for f in CONSENT_FLAGS}
    flags = {f: (old[f] if new[f] is None else bool(new[f])) for f in CONSENT_FLAGS}
    changed = [f for f in CONSENT_FLAGS if new[f] is not None and flags[f] != old[f]]
    when = utc(now)
    if changed or row is None or attributes is not None:
        store.record_consent(key, flags, changed=changed, now=when, source=source,
                             attributes=None if attributes is None
                             else json.dumps(dict(attributes)))
    if changed:
        log.info("consent changed (%s) from %s",
                 ", ".join(f"{f}={flags[f]}" for f in changed), source)
    rec = get_consent(store, user_id)
    return rec if rec is not None else ConsentRecord()


def _stored_flag(v: Any) -> bool | None:
    """A stored flag: ``None`` for NULL/NaN (never set, granted by default)."""
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return bool(v)


def apply_consent(engine: FeedEngine, stored_id: str, record: ConsentRecord) -> bool:
    """Make a consent change effective on a running :class:`FeedEngine` from its next
    request (the engine otherwise reads consent when it is built).

    Args:
        engine: The engine.
        stored_id: The user's stored id (``store.user_key(raw_id)``).
        record: The new consent.

    Returns:
        ``True`` if the engine knew the user (unknown users are covered by passing
        ``consent_*`` in the request context, as the HTTP service does).
    """
    return engine.set_consent(stored_id, personalization=record.personalization,
                              ads=record.ads)
