"""Shared fixtures: paths to the real datasets in ../shared/data and small stores."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the service's test world (tests/server/service_world.py) serves the adversarial and privacy
# tests too
sys.path.insert(0, str(ROOT / "tests" / "server"))
SHARED_DATA = Path(os.environ.get("FEEDWISE_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real public datasets beside the checkout (never committed)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"{SHARED_DATA} not found: tests need ../shared/data beside the checkout "
                    "(or FEEDWISE_SHARED_DATA pointing at it)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ml100k_interactions(shared_data: Path):
    """MovieLens-100k ratings as Interactions (built once per session)."""
    from feedwise.store import EventStore

    with EventStore(":memory:") as store:
        store.ingest(shared_data / "movielens-100k" / "u.data", mapping="movielens-100k")
        return store.interactions()


@pytest.fixture()
def store():
    """An empty in-memory EventStore."""
    from feedwise.store import EventStore

    s = EventStore(":memory:")
    yield s
    s.close()
