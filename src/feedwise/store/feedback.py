"""What the feed reads back: engagement counts, recent feedback and affinities."""

from __future__ import annotations

from feedwise.store.base import StoreBase


class Feedback(StoreBase):
    """What the feed reads back (part of :class:`~feedwise.store.EventStore`)."""
