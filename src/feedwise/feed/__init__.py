"""Feed composition: candidates, re-ranking, ads, guardrails and the FeedEngine."""

from feedwise.feed.types import Feed, FeedRequest, Policy, Slot

__all__ = ["Feed", "FeedRequest", "Policy", "Slot"]
