"""Per-user profiles the analytics write back (``user_profiles``)."""

from __future__ import annotations

from feedwise.store.base import StoreBase


class Profiles(StoreBase):
    """Stored user profiles (part of :class:`~feedwise.store.EventStore`)."""
