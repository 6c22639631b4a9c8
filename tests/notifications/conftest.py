"""Fixtures of the notification tests: a small store of users in several zones."""

from __future__ import annotations

import pytest
from notify_world import fill

from feedwise.store import EventStore


@pytest.fixture()
def nstore():
    s = fill(EventStore(":memory:"))
    yield s
    s.close()
