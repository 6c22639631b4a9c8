"""``benchmarks/_tail.py`` (``serve_pairs.py --tail``): a feed's window split into its
serving loop on a core, waiting for a core and blocked, with the other threads' CPU; and the
sampler reading real threads, named by ``_tailsite``."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
_spec = importlib.util.spec_from_file_location("_tail", BENCH / "_tail.py")
_tail = sys.modules.setdefault("_tail", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(_tail)

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc schedstat")


def _samples() -> _tail.Samples:
    """Two processes (pid 1: owner, pid 2: worker), sampled every 10 ms for 1 s. The owner's
    loop runs all the time except from 0.50 s to 0.60 s, when it waits for a core half of
    the time and is blocked the other half while its writer runs; the worker's loop runs
    all the time."""
    t = np.arange(0, 1.0001, 0.01)
    ms = np.round(t * 1000)
    busy = (ms > 500) & (ms <= 600)  # the steps that end in (0.5, 0.6]
    step_run = np.where(busy, 0.0, 10.0)  # ms per 10 ms step
    step_wait = np.where(busy, 5.0, 0.0)
    owner_run = np.concatenate([[0], np.cumsum(step_run[1:])]) * 1e6
    owner_wait = np.concatenate([[0], np.cumsum(step_wait[1:])]) * 1e6
    writer_run = np.concatenate([[0], np.cumsum(np.where(busy, 10.0, 0.0)[1:])]) * 1e6
    worker_run = ms * 1e6
    run = np.stack([owner_run, writer_run, worker_run], axis=1).astype(np.int64)
    wait = np.stack([owner_wait, np.zeros_like(t), np.zeros_like(t)], axis=1).astype(np.int64)
    threads = [(1, 1, "owner:loop"), (1, 11, "owner:writer"), (2, 2, "worker:loop")]
    return _tail.Samples(t, threads, run, wait)


def test_split_takes_a_slow_window_apart_by_thread():
    s = _samples()
    # owner: 99 feeds of 20 ms outside the busy stretch, 1 of 100 ms over it
    feeds = [("owner", 0.02 + 0.004 * k, 0.02) for k in range(99)]
    feeds.append(("owner", 0.5, 0.1))
    feeds += [("2", 0.1 + 0.005 * k, 0.02) for k in range(100)]
    got = _tail.split(s, feeds, {"owner": 1, "2": 2})
    slow, mid = got["owner"]["slowest 1%"], got["owner"]["median band"]
    assert slow["feeds"] == 1 and slow["latency"] == pytest.approx(100)
    assert slow["on a core"] == pytest.approx(0, abs=1e-6)
    assert slow["waiting for a core"] == pytest.approx(50)
    assert slow["blocked"] == pytest.approx(50)
    assert slow["other threads"] == {"owner:writer": pytest.approx(100),
                                     "worker:loop": pytest.approx(100)}
    # a window is the samples inside it: up to two intervals shorter than the feed
    assert 10 <= mid["window"] <= 20 and mid["latency"] == pytest.approx(20)
    assert mid["on a core"] == pytest.approx(mid["window"])
    assert mid["blocked"] == pytest.approx(0, abs=1e-6)
    assert "owner:writer" not in mid["other threads"]
    # the worker never waited: its slowest feeds are split like its median ones
    fast = got["2"]["slowest 1%"]
    assert fast["on a core"] == pytest.approx(fast["window"])
    assert fast["blocked"] == pytest.approx(0, abs=1e-6)
    assert "| owner, slowest 1% | 1 | 100.0 | 0.0 | 50.0 | 50.0 |" in _tail.table(got)


def test_split_skips_feeds_outside_the_sampled_span():
    got = _tail.split(_samples(), [("owner", 2.0, 0.02), ("owner", 0.5, 0.001)], {"owner": 1})
    assert got == {}


@linux
def test_the_sampler_reads_named_threads_of_another_process():
    code = ("import threading, time\n"
            "def spin():\n"
            "    t = time.thread_time()\n"
            "    while time.thread_time() - t < 0.4: pass\n"
            "threading.Thread(target=spin, name='feedwise-spinner').start()\n"
            "time.sleep(1.0)\n")
    env = {**os.environ, _tail.NAMES_ENV: "1",
           "PYTHONPATH": os.pathsep.join([str(_tail.SITE), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        time.sleep(0.2)  # the interpreter up, the spinner started
        sampler = _tail.Sampler({proc.pid: "child"}, 0.01).start()
        time.sleep(0.5)
        s = sampler.stop()
    finally:
        proc.wait(10)
    names = [name for _, _, name in s.threads]
    assert "child:loop" in names and "child:spinner" in names
    spun = s.run_ns[:, names.index("child:spinner")]
    assert spun[-1] - spun[0] > 0.1e9  # it spun through most of the sampled half second
    assert np.all(np.diff(s.t) > 0) and threading.active_count() >= 1
