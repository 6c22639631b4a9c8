"""Ad state: served ad impressions and campaign spend."""

from __future__ import annotations

from feedwise.store.base import StoreBase


class AdLedger(StoreBase):
    """Ad state (part of :class:`~feedwise.store.EventStore`)."""
