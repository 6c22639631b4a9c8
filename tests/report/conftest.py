"""Fixtures of the report tests (the random world lives in report_world.py)."""

from __future__ import annotations

import pytest
from report_world import load_world, make_world


@pytest.fixture(scope="module")
def world_store():
    from feedwise.store import EventStore

    s = EventStore(":memory:")
    w = make_world()
    load_world(s, w)
    s.world = w  # type: ignore[attr-defined]
    yield s
    s.close()
