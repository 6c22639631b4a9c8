"""``POST /v1/notifications/due`` and ``POST /v1/notifications/outcomes``: hand the due
notifications to a sender and record what became of them.

``due`` claims the notifications due at ``now`` as one batch, the request's
``X-Request-ID``: they are marked sent, and a retried request with the same id gets the
same notifications back without sending anything twice. Consent is re-checked at send
time (withdrawn: cancelled) and quiet hours on the user's clock hold a notification back.
``outcomes`` records ``delivered``, ``opened`` or ``failed`` (retried with backoff, dead
after the last attempt); recording the same outcome twice changes nothing. User ids are
the stored ids (pseudonyms when ``FEEDWISE_PSEUDONYM_KEY`` is set). Writes go through the
service's single writer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from feedwise.notifications import claim_due, record
from feedwise.server.deps import IngestKey, RequestId, State
from feedwise.server.routes._common import ID_MAX, wait
from feedwise.store import EventStore

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


class DueBody(BaseModel):
    """When to look (default: now) and how many to hand out at most."""

    model_config = ConfigDict(extra="forbid")

    now: datetime | None = None
    limit: int = Field(100, ge=1, le=10_000)


class NotificationOut(BaseModel):
    notification_id: str
    user_id: str
    kind: str | None = None
    item_ids: list[str] = Field(default_factory=list)
    title: str | None = None
    ts: datetime
    local_hour: int | None = None
    timezone: str | None = None
    propensity: float | None = None
    status: str
    attempts: int = 0


class DueOut(BaseModel):
    batch: str
    notifications: list[NotificationOut]


class OutcomeBody(BaseModel):
    """What became of sent notifications."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[str, Field(min_length=1, max_length=ID_MAX)]] = Field(
        min_length=1, max_length=10_000)
    outcome: Literal["delivered", "opened", "failed"]
    now: datetime | None = None


class OutcomeOut(BaseModel):
    changed: int


def _when(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _row(r: dict[str, Any]) -> NotificationOut:
    items = r.get("item_ids")
    return NotificationOut(
        notification_id=r["notification_id"], user_id=r["user_id"], kind=r.get("kind"),
        item_ids=[str(x) for x in items] if items is not None else [],
        title=r.get("title"), ts=r["ts"],
        local_hour=None if r.get("local_hour") is None else int(r["local_hour"]),
        timezone=r.get("timezone"), propensity=r.get("propensity"), status=r["status"],
        attempts=int(r.get("attempts") or 0))


@router.post("/due", response_model=DueOut, summary="Claim the notifications due now")
def due(body: DueBody, state: State, key: IngestKey, rid: RequestId) -> DueOut:
    when = _when(body.now)

    def run(store: EventStore) -> list[dict[str, Any]]:
        df = claim_due(store, when, batch=rid, limit=body.limit)
        df = df.astype(object).where(df.notna(), None)
        return df.to_dict(orient="records")

    rows = wait(state.writer.call(run, timeout=state.settings.write_timeout_s),
                state.settings.write_timeout_s)
    return DueOut(batch=rid, notifications=[_row(r) for r in rows])


@router.post("/outcomes", response_model=OutcomeOut, summary="Record delivered / opened / "
             "failed")
def outcomes(body: OutcomeBody, state: State, key: IngestKey) -> OutcomeOut:
    when = _when(body.now)
    n = wait(state.writer.call(lambda store: record(store, body.ids, body.outcome, when),
                               timeout=state.settings.write_timeout_s),
             state.settings.write_timeout_s)
    return OutcomeOut(changed=int(n))
