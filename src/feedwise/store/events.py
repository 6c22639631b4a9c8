"""Reads of the event log that commands and reports need (beyond the training view)."""

from __future__ import annotations

from feedwise.store.base import StoreBase


class EventReads(StoreBase):
    """Event-log reads (part of :class:`~feedwise.store.EventStore`)."""
