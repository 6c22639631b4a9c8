"""Fixtures of the feed engine tests."""

from __future__ import annotations

import pytest
from feed_world import make_world


@pytest.fixture()
def world() -> dict:
    return make_world()
