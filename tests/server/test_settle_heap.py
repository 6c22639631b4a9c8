"""The service's heap settling, tested on its own: the other tests run it per module
(tests/conftest.py ``_settle_heap_per_module``) so that they do not walk the whole suite's
heap at every start-up and catalogue change."""

from __future__ import annotations

import gc
import weakref

from fastapi.testclient import TestClient
from service_world import make_world

from feedwise.server import deps
from feedwise.server.app import create_app
from feedwise.server.deps import settle_heap  # bound at import: the real function


class _Node:
    other: _Node


def test_settle_heap_collects_frozen_cycles_and_freezes_what_lives():
    assert settle_heap.__module__ == "feedwise.server.deps"
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    dead = weakref.ref(a)
    gc.freeze()  # as a previous settle leaves it
    del a, b
    gc.collect()
    assert dead() is not None  # a frozen cycle outlives an ordinary collection
    alive = _Node()
    alive.other = alive
    try:
        settle_heap()
        assert dead() is None  # unfrozen first, then collected
        assert gc.get_freeze_count() > 0
        # what lived is frozen: out of the collector's generations
        assert not any(o is alive for o in gc.get_objects())
        gc.unfreeze()
        assert any(o is alive for o in gc.get_objects())
    finally:
        gc.unfreeze()


def test_service_settles_at_start_up_and_on_a_catalogue_change(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(deps, "settle_heap", lambda: calls.append(1))
    world = make_world(tmp_path)
    with TestClient(create_app(world.settings)) as c:
        assert len(calls) == 1  # the model and policy loaded at start-up
        r = c.put("/v1/items/i0", json={"author_id": "a0", "tags": ["t0"]},
                  headers=world.headers(world.admin))
        assert r.status_code == 200
        assert len(calls) == 2  # the policy rebuilt around the new catalogue



def test_serving_runtime_sets_and_restores_the_interpreter():
    import sys

    from feedwise.server.deps import serving_runtime
    from feedwise.server.settings import Settings

    before = (sys.getswitchinterval(), gc.get_threshold())
    settings = Settings(switch_interval_ms=2.0, gc_young_threshold=12_345)
    with serving_runtime(settings):
        assert sys.getswitchinterval() == 0.002
        assert gc.get_threshold()[0] == 12_345
        assert gc.get_threshold()[1:] == before[1][1:]
    assert (sys.getswitchinterval(), gc.get_threshold()) == before
