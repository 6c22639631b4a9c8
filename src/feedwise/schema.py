"""Event kinds, table columns and the records of the domain (items, users, campaigns).

The column lists here are the single source of truth for the store's tables; the store
creates its DuckDB tables from them and ingestion validates against them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class EventKind(StrEnum):
    """Every kind of event feedwise understands."""

    IMPRESSION = "impression"
    CLICK = "click"
    LIKE = "like"
    COMMENT = "comment"
    SHARE = "share"
    SAVE = "save"
    DWELL = "dwell"
    HIDE = "hide"
    REPORT = "report"
    PURCHASE = "purchase"
    RATING = "rating"
    AD_IMPRESSION = "ad_impression"
    AD_CLICK = "ad_click"
    CONVERSION = "conversion"


EVENT_KINDS: tuple[str, ...] = tuple(k.value for k in EventKind)
NEGATIVE_KINDS: tuple[str, ...] = (EventKind.HIDE.value, EventKind.REPORT.value)
ENGAGEMENT_KINDS: tuple[str, ...] = ("click", "like", "comment", "share", "save")

#: Columns of the ``events`` table: name -> DuckDB type. ``ts`` is UTC.
EVENT_COLUMNS: dict[str, str] = {
    "event_id": "VARCHAR",
    "user_id": "VARCHAR",
    "item_id": "VARCHAR",
    "kind": "VARCHAR",
    "ts": "TIMESTAMPTZ",
    "dwell_ms": "BIGINT",
    "value": "DOUBLE",
    "position": "INTEGER",
    "surface": "VARCHAR",
    "session_id": "VARCHAR",
    "propensity": "DOUBLE",
    "context": "VARCHAR",
    "text": "VARCHAR",
    "parent_id": "VARCHAR",
}
#: Longest text (in characters) an event may carry; longer text is rejected at ingest.
MAX_TEXT_CHARS = 10_000
REQUIRED_EVENT_FIELDS: tuple[str, ...] = ("user_id", "item_id", "kind", "ts")

ITEM_COLUMNS: dict[str, str] = {
    "item_id": "VARCHAR",
    "kind": "VARCHAR",
    "author_id": "VARCHAR",
    "created_at": "TIMESTAMPTZ",
    "title": "VARCHAR",
    "text": "VARCHAR",
    "tags": "VARCHAR[]",
    "campaign_id": "VARCHAR",
}

USER_COLUMNS: dict[str, str] = {
    "user_id": "VARCHAR",
    "consent_personalization": "BOOLEAN",
    "consent_ads": "BOOLEAN",
    "consent_analytics": "BOOLEAN",
    "consent_updated_at": "TIMESTAMPTZ",
    "consent_source": "VARCHAR",
    "attributes": "VARCHAR",
    "timezone": "VARCHAR",
}

CAMPAIGN_COLUMNS: dict[str, str] = {
    "campaign_id": "VARCHAR",
    "advertiser_id": "VARCHAR",
    "name": "VARCHAR",
    "bid_model": "VARCHAR",
    "bid": "DOUBLE",
    "daily_budget": "DOUBLE",
    "total_budget": "DOUBLE",
    "start_at": "TIMESTAMPTZ",
    "end_at": "TIMESTAMPTZ",
    "target_tags": "VARCHAR[]",
    "target_segments": "VARCHAR[]",
    "frequency_caps": "VARCHAR",
    "status": "VARCHAR",
    "spec": "VARCHAR",
}

#: Per-user profiles written by the analytics (``user_profiles``).
PROFILE_COLUMNS: dict[str, str] = {
    "user_id": "VARCHAR", "interests": "VARCHAR", "active_hours": "DOUBLE[]",
    "daypart": "VARCHAR", "peak_hour": "INTEGER", "engagement_rate": "DOUBLE",
    "engagement_level": "VARCHAR", "ad_sensitivity": "DOUBLE", "lifecycle": "VARCHAR",
    "segment": "VARCHAR", "updated_at": "TIMESTAMPTZ",
    # the clock of the time columns (issue 23): zone used, given/inferred/fallback, posterior
    "timezone": "VARCHAR", "timezone_source": "VARCHAR", "timezone_confidence": "DOUBLE"}


def utc(ts: datetime) -> datetime:
    """Return ``ts`` as a timezone-aware UTC datetime (naive input is taken as UTC)."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Event(Record):
    """One interaction event (used at the API edge; bulk ingest goes through the store)."""

    event_id: str | None = None
    user_id: str = Field(min_length=1)
    item_id: str = Field(min_length=1)
    kind: EventKind
    ts: datetime
    dwell_ms: int | None = Field(default=None, ge=0)
    value: float | None = None
    position: int | None = Field(default=None, ge=0)
    surface: str | None = None
    session_id: str | None = None
    propensity: float | None = Field(default=None, gt=0, le=1)
    context: dict[str, Any] | None = None
    #: What the user wrote (a comment's or a message's text).
    text: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    #: The event or post this one re-shares or answers (reshare cascades).
    parent_id: str | None = None

    @field_validator("ts")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return utc(v)


class Item(Record):
    """A post or an ad creative."""

    item_id: str = Field(min_length=1)
    kind: Literal["post", "ad"] = "post"
    author_id: str | None = None
    created_at: datetime | None = None
    title: str | None = None
    text: str | None = None
    tags: list[str] = Field(default_factory=list)
    campaign_id: str | None = None


class Consent(Record):
    """A user's consent flags; all default to granted, as an opt-out product would."""

    personalization: bool = True
    ads: bool = True
    analytics: bool = True


class User(Record):
    """A user with consent flags and free attributes."""

    user_id: str = Field(min_length=1)
    consent: Consent = Field(default_factory=Consent)
    attributes: dict[str, Any] = Field(default_factory=dict)
    #: IANA time zone name (e.g. ``Europe/Berlin``); None when unknown.
    timezone: str | None = None
