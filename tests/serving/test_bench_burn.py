"""``benchmarks/serve.py --burn F`` (``_slower.burn``): the emulated slower CPU costs ``F``
times the CPU of the work it follows, in the process that asked and in the Python processes
it starts. Run in child processes: the emulation patches asyncio for the whole process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"

_CHILD = """
import asyncio, json, sys, time
sys.path.insert(0, {bench!r})
import _slower
factor = float(sys.argv[1])
if factor > 1:
    _slower.burn(factor)

def work():  # about 30 ms of this thread's CPU
    t0 = time.thread_time()
    while time.thread_time() - t0 < 0.03:
        pass

async def main():
    loop = asyncio.get_running_loop()
    for _ in range(10):
        done = loop.create_future()
        loop.call_soon(lambda: (work(), done.set_result(None)))
        await done

t0 = time.thread_time()
asyncio.run(main())
print(json.dumps({{"cpu": time.thread_time() - t0, "handle": asyncio.events.Handle._run.__name__}}))
"""


def _run(factor: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "FEEDWISE_BENCH_BURN"}
    out = subprocess.run([sys.executable, "-c", _CHILD.format(bench=str(BENCH)), str(factor)],
                         capture_output=True, text=True, timeout=120, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_burn_costs_the_factor_of_the_work_it_follows():
    plain, slower = _run(1.0), _run(2.0)
    assert plain["handle"] == "_run" and slower["handle"] == "slower"
    # ten callbacks of 30 ms: about 0.3 s as shipped, about 0.6 s at 2x
    assert 0.28 <= plain["cpu"] <= 0.45
    assert 1.6 <= slower["cpu"] / plain["cpu"] <= 2.6


def test_burn_reaches_the_processes_started_after_it():
    code = (f"import os, subprocess, sys; sys.path.insert(0, {str(BENCH)!r}); import _slower; "
            "_slower.burn(1.5); print(subprocess.run([sys.executable, '-c', "
            "'import asyncio.events; print(asyncio.events.Handle._run.__name__)'], "
            "capture_output=True, text=True, check=True).stdout.strip())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "slower"


def test_burn_refuses_a_factor_that_emulates_nothing():
    code = (f"import sys; sys.path.insert(0, {str(BENCH)!r}); import _slower; "
            "_slower.burn(1.0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0 and "more than 1" in out.stderr
