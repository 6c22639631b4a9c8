"""The service's write paths: validated event batches and served impressions."""

from __future__ import annotations

from feedwise.store.base import StoreBase


class ServedLog(StoreBase):
    """The service's write paths (part of :class:`~feedwise.store.EventStore`)."""
