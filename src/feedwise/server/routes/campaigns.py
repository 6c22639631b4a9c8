"""``PUT/GET/PATCH /v1/campaigns``: ad campaigns, pausing them and changing budgets."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Literal

import pandas as pd
from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from feedwise.errors import NotFoundError
from feedwise.schema import CAMPAIGN_COLUMNS
from feedwise.server.deps import AdminKey, ReadKey, State
from feedwise.server.routes._common import ID_MAX, loads_json, wait
from feedwise.store import EventStore

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])

CampaignId = Annotated[str, Path(min_length=1, max_length=ID_MAX)]
Money = Annotated[float, Field(gt=0, le=1e12, allow_inf_nan=False)]
Status = Literal["active", "paused"]
Tag = Annotated[str, Field(min_length=1, max_length=200)]


class CreativeBody(BaseModel):
    """One ad creative (an item of kind ``ad``)."""

    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(min_length=1, max_length=ID_MAX)
    title: str | None = Field(default=None, max_length=1000)
    text: str | None = Field(default=None, max_length=10_000)
    tags: list[Tag] = Field(default_factory=list, max_length=200)
    quality: float = Field(1.0, gt=0, le=1e6, allow_inf_nan=False)


class FrequencyCapBody(BaseModel):
    """At most ``max_impressions`` per user within ``window_s`` seconds."""

    model_config = ConfigDict(extra="forbid")

    max_impressions: int = Field(ge=1, le=10**6)
    window_s: float = Field(gt=0, le=10**9, allow_inf_nan=False)


class CampaignBody(BaseModel):
    """A campaign (its id is in the path); the fields of :class:`feedwise.feed.campaigns.Campaign`.

    Without ``creatives`` the campaign gets one creative, the item ``<campaign_id>-creative``.
    """

    model_config = ConfigDict(extra="forbid")

    advertiser_id: str = Field(min_length=1, max_length=ID_MAX)
    name: str = Field(default="", max_length=500)
    creatives: list[CreativeBody] = Field(default_factory=list, max_length=100)
    bid_model: Literal["cpm", "cpc"] = "cpm"
    bid: Money
    daily_budget: Money | None = None
    total_budget: Money | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    active_hours: list[Annotated[int, Field(ge=0, le=23)]] | None = Field(default=None,
                                                                          max_length=24)
    target_tags: list[Tag] = Field(default_factory=list, max_length=200)
    target_segments: list[Tag] = Field(default_factory=list, max_length=200)
    frequency_caps: list[FrequencyCapBody] = Field(default_factory=list, max_length=20)
    base_ctr: float = Field(0.02, gt=0, lt=1)
    status: Status = "active"


class CampaignOut(CampaignBody):
    campaign_id: str


class CampaignPatch(BaseModel):
    """Fields to change; the rest stay as they are."""

    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    bid: Money | None = None
    daily_budget: Money | None = None
    total_budget: Money | None = None
    end_at: datetime | None = None


class CampaignList(BaseModel):
    campaigns: list[CampaignOut]


def _row(campaign_id: str, body: CampaignBody) -> pd.DataFrame:
    """The store row; ``spec`` keeps the whole campaign as JSON (what the feed engine reads)."""
    if not body.creatives:
        body = body.model_copy(update={"creatives": [
            CreativeBody(item_id=f"{campaign_id}-creative")]})
    full = CampaignOut(campaign_id=campaign_id, **body.model_dump())
    d = full.model_dump()
    d["frequency_caps"] = json.dumps(d["frequency_caps"])
    d["spec"] = full.model_dump_json()
    return pd.DataFrame([{c: d.get(c) for c in CAMPAIGN_COLUMNS}]).astype(object)


def _out(r: dict) -> CampaignOut:
    spec = loads_json(r.get("spec"))
    if isinstance(spec, dict):
        return CampaignOut.model_validate(spec)
    r = {k: v for k, v in r.items() if k in CampaignOut.model_fields and v is not None}
    for k in ("target_tags", "target_segments"):
        r[k] = list(r.get(k) or [])
    caps = loads_json(r.get("frequency_caps"))
    r["frequency_caps"] = caps if isinstance(caps, list) else []
    return CampaignOut.model_validate(r)


def _read(state: State, campaign_id: str) -> CampaignOut:
    row = state.store.get_campaign(campaign_id)
    if row is None:
        raise HTTPException(404, f"unknown campaign {campaign_id!r}")
    return _out(row)


@router.put("/{campaign_id}", response_model=CampaignOut, summary="Create or replace a campaign")
def put_campaign(campaign_id: CampaignId, body: CampaignBody, state: State,
                 key: AdminKey) -> CampaignOut:
    if body.start_at and body.end_at and body.end_at <= body.start_at:
        raise HTTPException(422, "end_at must be after start_at")
    df = _row(campaign_id, body)
    wait(state.writer.call(lambda s: s.upsert_campaigns(df),
                           timeout=state.settings.write_timeout_s),
         state.settings.write_timeout_s)
    state.catalogue_changed()
    return _read(state, campaign_id)


@router.get("/{campaign_id}", response_model=CampaignOut,
            responses={404: {"description": "Unknown"}}, summary="One campaign")
def get_campaign(campaign_id: CampaignId, state: State, key: ReadKey) -> CampaignOut:
    return _read(state, campaign_id)


@router.get("", response_model=CampaignList, summary="Every campaign")
def list_campaigns(state: State, key: ReadKey,
                   status: Status | None = None) -> CampaignList:
    rows = state.store.list_campaigns(status=status)
    return CampaignList(campaigns=[_out(r) for r in rows])


@router.patch("/{campaign_id}", response_model=CampaignOut,
              responses={404: {"description": "Unknown"}},
              summary="Pause, resume or change a campaign's budget")
def patch_campaign(campaign_id: CampaignId, body: CampaignPatch, state: State,
                   key: AdminKey) -> CampaignOut:
    """Read-modify-write on the writer thread, so concurrent patches never lose one."""
    changes = body.model_dump(exclude_unset=True)

    def apply(store: EventStore) -> None:
        row = store.get_campaign(campaign_id)
        if row is None:
            raise NotFoundError(f"unknown campaign {campaign_id!r}")
        current = _out(row).model_dump(exclude={"campaign_id"})
        merged = CampaignBody(**{**current, **changes})
        if merged.start_at and merged.end_at and merged.end_at <= merged.start_at:
            raise HTTPException(422, "end_at must be after start_at")
        store.upsert_campaigns(_row(campaign_id, merged))

    try:
        wait(state.writer.call(apply, timeout=state.settings.write_timeout_s),
             state.settings.write_timeout_s)
        state.catalogue_changed()
    except NotFoundError:
        raise HTTPException(404, f"unknown campaign {campaign_id!r}") from None
    return _read(state, campaign_id)
