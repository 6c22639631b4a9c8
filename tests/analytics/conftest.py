"""Fixtures of the analytics tests (the tiny world lives in analytics_tiny.py)."""

from __future__ import annotations

import pytest
from analytics_tiny import END, START, load_tiny


@pytest.fixture()
def tiny(store):
    load_tiny(store)
    return store


@pytest.fixture(params=[False, True], ids=["views", "materialized"])
def scope(tiny, request):
    from feedwise.analytics.scope import Scope

    with Scope(tiny, START, END, k=1, materialize=request.param) as s:
        yield s
