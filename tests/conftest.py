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


@pytest.fixture(autouse=True)
def _default_encoder_backend(monkeypatch):
    """Each test starts on the default sentence-encoder backend (tests that want another set
    ``FEEDWISE_EMBEDDINGS`` themselves): a shell's ``FEEDWISE_EMBEDDINGS=openvino`` would
    otherwise turn the fp32 equality checks into bf16 ones."""
    monkeypatch.delenv("FEEDWISE_EMBEDDINGS", raising=False)


@pytest.fixture(autouse=True, scope="module")
def _settle_heap_per_module():
    """The service settles the heap (``feedwise.server.deps.settle_heap``: unfreeze, collect
    everything, freeze) at start-up and on every catalogue change. In a pytest process the
    heap is the whole suite's (every imported module, every earlier test's objects), so each
    call walked ~10^6 objects: ~40% of the suite's time went to it. Within one test module
    the service's settle here collects and freezes only what was made since the last freeze
    (the same collect-then-freeze, without the unfreeze that re-walks the suite's heap); the
    module's end unfreezes, so garbage frozen meanwhile is collected as before. The real
    function is tested on its own (tests/server/test_settle_heap.py)."""
    import gc

    deps = sys.modules.get("feedwise.server.deps")  # imported already by a module using it
    real = getattr(deps, "settle_heap", None)
    if real is None:
        yield
        return

    def settle() -> None:
        gc.collect()
        gc.freeze()

    deps.settle_heap = settle
    try:
        yield
    finally:
        deps.settle_heap = real
        gc.unfreeze()


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
