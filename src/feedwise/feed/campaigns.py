"""Campaigns: what advertisers buy, and the campaign book the auction reads.

* :class:`Campaign` — advertiser, creatives, bid (CPM or CPC), daily and total budget,
  schedule, targeting (segments, interest tags) and frequency caps.
* :class:`CampaignBook` — the campaigns as numpy arrays for the hot path.
* :func:`load_campaigns` — the campaigns stored in the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from feedwise.errors import ConfigError, DataError
from feedwise.schema import utc
from feedwise.store import EventStore


class FrequencyCap(BaseModel):
    """At most ``max_impressions`` of one campaign per user within ``window_s`` seconds."""

    model_config = ConfigDict(extra="forbid")

    max_impressions: int = Field(ge=1)
    window_s: float = Field(gt=0)


class Creative(BaseModel):
    """One ad creative (an item of kind ``ad``)."""

    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(min_length=1)
    title: str | None = None
    text: str | None = None
    tags: list[str] = Field(default_factory=list)
    quality: float = Field(1.0, gt=0)


class Campaign(BaseModel):
    """An advertising campaign.

    Attributes:
        campaign_id, advertiser_id, name: Identity.
        creatives: At least one creative.
        bid_model: ``cpm`` (price per 1000 impressions) or ``cpc`` (price per click).
        bid: The maximum price.
        daily_budget, total_budget: Spend limits (``None`` = unlimited).
        start_at, end_at: Flight dates (UTC); ``active_hours``: hours of day (UTC) it runs.
        target_tags: Show only to users interested in one of these tags (empty = anyone).
        target_segments: Show only to users in one of these segments (empty = anyone): a
            segment of the user's attributes, the behavioural ``segment`` of their stored
            profile, or ``lifecycle:<stage>`` (``new``, ``active``, ``at-risk``,
            ``dormant``) of their stored profile (see ``feed/loader.py``).
        frequency_caps: Caps per user, e.g. 3 per hour and 10 per day.
        base_ctr: Prior click-through rate of the campaign (used by the default pCTR model).
        status: ``active`` or ``paused``.
    """

    model_config = ConfigDict(extra="forbid")

    campaign_id: str = Field(min_length=1)
    advertiser_id: str = Field(min_length=1)
    name: str = ""
    creatives: list[Creative] = Field(min_length=1)
    bid_model: Literal["cpm", "cpc"] = "cpm"
    bid: float = Field(gt=0)
    daily_budget: float | None = Field(None, gt=0)
    total_budget: float | None = Field(None, gt=0)
    start_at: datetime | None = None
    end_at: datetime | None = None
    active_hours: list[int] | None = None
    target_tags: list[str] = Field(default_factory=list)
    target_segments: list[str] = Field(default_factory=list)
    frequency_caps: list[FrequencyCap] = Field(default_factory=list)
    base_ctr: float = Field(0.02, gt=0, lt=1)
    status: Literal["active", "paused"] = "active"

    @field_validator("start_at", "end_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return utc(v) if v is not None else None

    @field_validator("frequency_caps", mode="before")
    @classmethod
    def _caps(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = json.loads(v) if v.strip() else []
        out = []
        for c in v or []:
            if isinstance(c, list | tuple):
                c = {"max_impressions": c[0], "window_s": c[1]}
            out.append(c)
        return out

    @model_validator(mode="after")
    def _check(self) -> Campaign:
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise ConfigError(f"campaign {self.campaign_id}: end_at must be after start_at")
        for h in self.active_hours or []:
            if not 0 <= h <= 23:
                raise ConfigError(f"campaign {self.campaign_id}: active hour {h} not in 0..23")
        return self

    @property
    def targeted(self) -> bool:
        return bool(self.target_tags or self.target_segments)

    def to_row(self) -> dict[str, Any]:
        """The row of the store's ``campaigns`` table (the full model is kept in ``spec``)."""
        return {"campaign_id": self.campaign_id, "advertiser_id": self.advertiser_id,
                "name": self.name, "bid_model": self.bid_model, "bid": self.bid,
                "daily_budget": self.daily_budget, "total_budget": self.total_budget,
                "start_at": self.start_at, "end_at": self.end_at,
                "target_tags": list(self.target_tags),
                "target_segments": list(self.target_segments),
                "frequency_caps": json.dumps([c.model_dump() for c in self.frequency_caps]),
                "status": self.status, "spec": self.model_dump_json()}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Campaign:
        """Rebuild from a ``campaigns`` row (``spec`` JSON when present, else the columns)."""
        spec = row.get("spec")
        if isinstance(spec, str) and spec.strip():
            return cls.model_validate_json(spec)
        d = {k: _clean(row.get(k)) for k in (
            "campaign_id", "advertiser_id", "name", "bid_model", "bid", "daily_budget",
            "total_budget", "start_at", "end_at", "target_tags", "target_segments",
            "frequency_caps", "status")}
        d = {k: v for k, v in d.items() if v is not None}
        d.setdefault("creatives", [{"item_id": f"{d.get('campaign_id')}-creative"}])
        for k in ("target_tags", "target_segments"):
            if k in d:
                d[k] = [str(t) for t in d[k]]
        return cls.model_validate(d)


def _clean(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, float) and np.isnan(v):
        return None
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, pd.Timestamp):
        return None if pd.isna(v) else v.to_pydatetime()
    try:
        if pd.isna(v) is True:
            return None
    except (TypeError, ValueError):
        pass
    return v


def campaigns_from_frame(df: pd.DataFrame) -> list[Campaign]:
    """Campaigns from the store's ``campaigns`` table (or any frame of those columns)."""
    out = []
    for i, row in enumerate(df.to_dict(orient="records")):
        try:
            out.append(Campaign.from_row(row))
        except (ValueError, TypeError) as e:
            raise DataError(f"campaigns row {i + 1} ({row.get('campaign_id')}): {e}") from None
    return out


def load_campaigns(store: EventStore) -> list[Campaign]:
    """Active and paused campaigns stored in ``store``."""
    return campaigns_from_frame(store.campaigns())


# ---------------------------------------------------------------------------- book
class CampaignBook:
    """Campaigns and creatives as arrays for vectorised eligibility and auctions.

    Args:
        campaigns: The campaigns.
        tag_index: Tag -> column of the interest space shared with users and posts; tags
            not in it are added.
        segment_index: Segment -> column; segments not in it are added.
    """

    def __init__(self, campaigns: Iterable[Campaign], tag_index: dict[str, int] | None = None,
                 segment_index: dict[str, int] | None = None) -> None:
        self.campaigns = list(campaigns)
        ids = [c.campaign_id for c in self.campaigns]
        if len(set(ids)) != len(ids):
            dup = sorted({c for c in ids if ids.count(c) > 1})
            raise ConfigError(f"campaign ids must be unique; {dup} appear more than once: give "
                              "each campaign its own campaign_id")
        self.tag_index = tag_index if tag_index is not None else {}
        self.segment_index = segment_index if segment_index is not None else {}
        for c in self.campaigns:
            for t in c.target_tags + [t for cr in c.creatives for t in cr.tags]:
                self.tag_index.setdefault(t, len(self.tag_index))
            for s in c.target_segments:
                self.segment_index.setdefault(s, len(self.segment_index))
        n = len(self.campaigns)
        self.n = n
        self.ids = np.array(ids, dtype=object)
        self.index = {c: i for i, c in enumerate(ids)}
        adv = sorted({c.advertiser_id for c in self.campaigns})
        self.advertisers = np.array(adv, dtype=object)
        adv_ix = {a: i for i, a in enumerate(adv)}
        self.advertiser = np.array([adv_ix[c.advertiser_id] for c in self.campaigns], np.int64)
        self.is_cpc = np.array([c.bid_model == "cpc" for c in self.campaigns], bool)
        self.bid = np.array([c.bid for c in self.campaigns], np.float64)
        inf = np.inf
        self.daily_budget = np.array([c.daily_budget or inf for c in self.campaigns], np.float64)
        self.total_budget = np.array([c.total_budget or inf for c in self.campaigns], np.float64)
        self.start_s = np.array([c.start_at.timestamp() if c.start_at else -inf
                                 for c in self.campaigns], np.float64)
        self.end_s = np.array([c.end_at.timestamp() if c.end_at else inf
                               for c in self.campaigns], np.float64)
        self.hours = np.ones((n, 24), bool)
        for i, c in enumerate(self.campaigns):
            if c.active_hours:
                self.hours[i] = False
                self.hours[i, c.active_hours] = True
        self.active = np.array([c.status == "active" for c in self.campaigns], bool)
        self.base_ctr = np.array([c.base_ctr for c in self.campaigns], np.float64)
        self.targeted = np.array([c.targeted for c in self.campaigns], bool)
        self.has_tag_target = np.array([bool(c.target_tags) for c in self.campaigns], bool)
        self.has_seg_target = np.array([bool(c.target_segments) for c in self.campaigns], bool)
        self.caps: list[list[FrequencyCap]] = [c.frequency_caps for c in self.campaigns]
        self.max_cap_window = max((f.window_s for c in self.caps for f in c), default=0.0)
        self.has_caps = np.array([bool(c) for c in self.caps], bool)
        # creatives: one row each, grouped by campaign
        cr_campaign, cr_ids, cr_quality, cr_tags = [], [], [], []
        for i, c in enumerate(self.campaigns):
            for cr in c.creatives:
                cr_campaign.append(i)
                cr_ids.append(cr.item_id)
                cr_quality.append(cr.quality)
                cr_tags.append(cr.tags or c.target_tags)
        self.creative_campaign = np.array(cr_campaign, np.int64)
        self.creative_ids = np.array(cr_ids, dtype=object)
        self.creative_quality = np.array(cr_quality, np.float64)
        self.creative_tags = cr_tags
        self.creative_start = np.searchsorted(self.creative_campaign, np.arange(n))
        self.n_creatives = len(cr_ids)
        # dayparting: each campaign's share of its day's budget per UTC hour (flat until
        # the loader sets its audience's hourly activity, see set_pace_curves)
        self.set_pace_curves(np.full((n, 24), 1.0 / 24.0))
        self._tag_targets_list = [c.target_tags for c in self.campaigns]
        self._seg_targets_list = [c.target_segments for c in self.campaigns]
        self.rebuild_matrices(len(self.tag_index), len(self.segment_index))

    def rebuild_matrices(self, n_tags: int, n_segments: int) -> None:
        """(Re)build the dense campaign x tag / segment matrices for a given space size."""
        self.n_tags, self.n_segments = n_tags, n_segments
        self.target_tag_matrix = np.zeros((self.n, n_tags), np.float32)
        self.target_seg_matrix = np.zeros((self.n, n_segments), np.float32)
        for i in range(self.n):
            for t in self._tag_targets_list[i]:
                self.target_tag_matrix[i, self.tag_index[t]] = 1.0
            for s in self._seg_targets_list[i]:
                self.target_seg_matrix[i, self.segment_index[s]] = 1.0
        self.creative_tag_matrix = np.zeros((self.n_creatives, n_tags), np.float32)
        for j, tags in enumerate(self.creative_tags):
            for t in tags:
                self.creative_tag_matrix[j, self.tag_index[t]] = 1.0
        norms = np.linalg.norm(self.creative_tag_matrix, axis=1, keepdims=True)
        self.creative_tag_matrix /= np.maximum(norms, 1e-9)

    def set_pace_curves(self, curves: np.ndarray) -> None:
        """Set each campaign's pacing curve: (n, 24) non-negative weights per UTC hour (a
        row of zeros, or a row without weight, is flat). Pacing then spends a campaign's
        daily budget in proportion to its curve (:func:`~feedwise.feed.auction.pace_fraction`)."""
        c = np.asarray(curves, np.float64).reshape(self.n, 24)
        c = np.where(np.isfinite(c) & (c > 0), c, 0.0)
        tot = c.sum(axis=1, keepdims=True)
        self.pace_curve = np.where(tot > 0, c / np.where(tot > 0, tot, 1.0), 1.0 / 24.0)
        self.pace_cum = np.concatenate([np.zeros((self.n, 1)),
                                        np.cumsum(self.pace_curve, axis=1)], axis=1)

    def campaign(self, i: int) -> Campaign:
        return self.campaigns[i]
