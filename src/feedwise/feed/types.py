"""The shapes every policy shares: `FeedRequest` in, `Feed` of `Slot`s out.

Anything with ``compose(request: FeedRequest) -> Feed`` is a policy: the HTTP service, the
simulator and the off-policy estimators all take that one shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from feedwise.schema import utc

SlotKind = Literal["organic", "ad"]


@dataclass(frozen=True)
class FeedRequest:
    """A request for one user's feed.

    Attributes:
        user_id: The user.
        n: Number of slots wanted.
        now: The request time (UTC); passed in, never read from the clock deep inside.
        context: Free request context (surface, device, session id, ...).
        request_id: Correlates served slots with the events they cause.
    """

    user_id: str
    n: int = 20
    now: datetime = field(default_factory=lambda: datetime.now().astimezone())
    context: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "now", utc(self.now))
        if self.n <= 0:
            raise ValueError(f"FeedRequest.n must be positive, got {self.n}")


@dataclass(frozen=True)
class Slot:
    """One position of a composed feed.

    Attributes:
        item_id: The post or ad creative shown.
        kind: ``organic`` or ``ad``.
        score: The value the policy ranked it by.
        propensity: Probability with which the policy chose this item for this slot
            (1.0 for a deterministic choice); logged for off-policy evaluation.
        campaign_id: The campaign of an ad slot.
        reasons: Short human-readable reasons ("because you liked …", "sponsored: …").
        price: What the advertiser is charged (ads only): per impression for CPM, per
            click for CPC.
        impression_charge: What showing the slot charges (CPM: ``price``; CPC: 0, the click
            is charged); logged as the served ``ad_impression``'s ``value``, so the report,
            ``campaigns list`` and the pacing ledger show one spend figure.
        author_id: Author of the item, when known.
        source: Where the item came from (``recommender``, ``trending``, ``fresh``,
            ``followed``, ``ad`` …); lets guardrails and estimators tell personal from
            non-personal choices.
    """

    item_id: str
    kind: SlotKind = "organic"
    score: float = 0.0
    propensity: float = 1.0
    campaign_id: str | None = None
    reasons: tuple[str, ...] = ()
    price: float = 0.0
    author_id: str | None = None
    source: str = ""
    impression_charge: float = 0.0


@dataclass(frozen=True)
class Feed:
    """A composed feed: ordered slots for one request."""

    request: FeedRequest
    slots: tuple[Slot, ...]
    policy: str = ""

    def __len__(self) -> int:
        return len(self.slots)

    @property
    def ad_slots(self) -> list[int]:
        return [i for i, s in enumerate(self.slots) if s.kind == "ad"]

    @property
    def item_ids(self) -> list[str]:
        return [s.item_id for s in self.slots]


@runtime_checkable
class Policy(Protocol):
    """Anything that composes feeds."""

    def compose(self, request: FeedRequest) -> Feed: ...
