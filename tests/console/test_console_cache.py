"""The console's analytics cache (no server, no store): fresh results reused, stale ones
served at once while the one background thread recomputes them, a result being computed
waited for rather than computed twice, a console write never overwritten by a result
computed before it, and the warm-up of the default views."""

from __future__ import annotations

import threading
import time

import pytest

from feedwise.server.console import views


@pytest.fixture
def cache(monkeypatch):
    monkeypatch.setattr(views, "DUTY", 1.0)  # no rest between background jobs here
    monkeypatch.setattr(views, "BUSY_CORES", 1e9)  # never waits for a quiet moment here
    views.clear_cache()
    yield views
    views.clear_cache()


class State:
    """Any object: the cache is keyed by the service state's identity."""


def wait_for(cond, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_fresh_results_are_reused_and_stale_ones_refreshed_in_the_background(cache,
                                                                               monkeypatch):
    state, calls = State(), []

    def compute(x):
        calls.append(threading.current_thread().name)
        return (x, len(calls))

    assert cache.cached(state, ("a",), compute, 1) == (1, 1)
    assert cache.cached(state, ("a",), compute, 1) == (1, 1)  # fresh: not computed again
    assert cache.cached(State(), ("a",), compute, 1) == (1, 2)  # another service: its own
    monkeypatch.setattr(views, "CACHE_TTL_S", 0.0)
    # stale: the old value at once, the new one computed on the background thread
    assert cache.cached(state, ("a",), compute, 1) == (1, 1)
    assert wait_for(lambda: len(calls) == 3)
    assert calls[-1] == "feedwise-console-analytics"
    monkeypatch.setattr(views, "CACHE_TTL_S", 60.0)
    assert wait_for(lambda: cache.cached(state, ("a",), compute, 1) == (1, 3))


def test_a_result_being_computed_is_waited_for_not_computed_twice(cache):
    state, calls, started, release = State(), [], threading.Event(), threading.Event()

    def slow():
        calls.append(1)
        started.set()
        release.wait(5)
        return "done"

    first: list = []
    t = threading.Thread(target=lambda: first.append(cache.cached(state, ("s",), slow)))
    t.start()
    assert started.wait(5)
    second: list = []
    t2 = threading.Thread(target=lambda: second.append(cache.cached(state, ("s",), slow)))
    t2.start()
    time.sleep(0.05)
    assert second == []  # waiting on the first computation
    release.set()
    t.join(5)
    t2.join(5)
    assert first == second == ["done"] and len(calls) == 1


def test_a_write_during_a_computation_discards_its_result(cache):
    state, started, release = State(), threading.Event(), threading.Event()

    def before_write():
        started.set()
        release.wait(5)
        return "old"

    t = threading.Thread(target=lambda: cache.cached(state, ("w",), before_write))
    t.start()
    assert started.wait(5)
    cache.clear_cache()  # a campaign saved through the console meanwhile
    release.set()
    t.join(5)
    assert cache.cached(state, ("w",), lambda: "new") == "new"


def test_the_first_console_request_warms_the_default_views(cache, monkeypatch):
    state, seen = State(), []
    for name in ("overview", "overview_alerts", "campaigns", "listening", "audience"):
        monkeypatch.setattr(views, name, lambda st, q, name=name: seen.append((name, q)))
    monkeypatch.setattr(views, "WARM", True)
    views.warm(state)
    views.warm(state)  # once per service
    assert wait_for(lambda: len(seen) == 5)
    time.sleep(0.05)
    assert sorted(n for n, _ in seen) == ["audience", "campaigns", "listening", "overview",
                                          "overview_alerts"]
    assert all(q == {} for _, q in seen)  # the default views: what a page opens with
    monkeypatch.setattr(views, "WARM", False)
    views.warm(State())
    time.sleep(0.05)
    assert len(seen) == 5


def test_a_new_service_never_sees_an_earlier_ones_results(cache):
    import gc

    first = State()
    assert cache.cached(first, ("k",), lambda: "first's") == "first's"
    dead = id(first)
    del first
    gc.collect()
    later = [State() for _ in range(200)]  # one of them may reuse the id
    reused = [s for s in later if id(s) == dead]
    for s in reused or later[:1]:
        assert cache.cached(s, ("k",), lambda: "its own") == "its own"


def test_a_refresh_waits_while_the_process_is_busy_serving(cache, monkeypatch):
    state, calls = State(), []
    assert cache.cached(state, ("b",), lambda: calls.append(1) or len(calls)) == 1
    monkeypatch.setattr(views, "CACHE_TTL_S", 0.0)
    monkeypatch.setattr(views, "BUSY_CORES", -1.0)  # always "busy"
    monkeypatch.setattr(views, "MAX_DEFER_S", 0.6)  # ... for at most this long
    t0 = time.monotonic()
    assert cache.cached(state, ("b",), lambda: calls.append(1) or len(calls)) == 1
    time.sleep(0.3)
    assert calls == [1]  # deferred: the stale figure is what pages show meanwhile
    assert wait_for(lambda: len(calls) == 2)
    assert time.monotonic() - t0 >= 0.6  # ran once the longest deferral had passed
