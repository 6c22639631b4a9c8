"""A slower machine, emulated: every core gives the benchmark only part of its time.

``benchmarks/serve.py --slower F`` runs the benchmark (load generator, server and its
workers) while a busy process pinned to each core competes with it at a CPU weight that
takes the share ``F`` of that core whenever the benchmark wants it too (Linux CFS group
weights: the benchmark's cgroup and the competitors' cgroup, ``cpu.shares`` in cgroup v1 or
``cpu.weight`` in cgroup v2). Work that needs a core for 1 ms then takes ``1 / (1 - F)`` ms of
wall time on it, as on a machine that much slower; a process's CPU time (what the benchmark
prints per request) is still this machine's. Needs root and a writable ``cpu`` cgroup.

What it is not: a slower clock (caches and memory are this machine's) and the competitor runs
in scheduler slices of a few milliseconds, so a request can wait one slice more than on a
machine that is uniformly slower. :func:`measure` reports the slow-down a busy loop of this
process sees, so every run states what it emulated.

The other emulation, :func:`burn` (``serve.py --burn F``), needs no privilege and has no
competitor: every thread of the benchmark and of the processes it starts does ``F - 1``
times more work after each unit of its own work, so the CPU a request costs, as the
benchmark prints it, is the slower machine's. A unit is a callback of an asyncio event loop
(the serving processes' request handling, HTTP parsing and answers; the load generator), a
task of a thread pool (the events' decoding, the landings of served rows, forwarding) and a
landing or call of the store's writer. The extra work is a loop of Python steps that holds
the GIL for an event-loop callback (slower Python) and hashing that releases it for the
rest (slower C code, as the store's statements are). What it is not: the threads that loop
on their own (the lists' refresher, a worker's delta poll, the event relay's readers) and
the interpreter's start-up run at this machine's speed, and the extra work takes cache and
branch predictor from the real work, which makes that slower too (about 10 % on a feed's
composition in process, about 25 % on the server's request handling at ``F`` = 1.8): the
factor sets the emulation, the CPU the benchmark prints measures it.
"""

from __future__ import annotations

import asyncio.events
import concurrent.futures.thread
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

_V1 = Path("/sys/fs/cgroup/cpu")
_V2 = Path("/sys/fs/cgroup/unified")


class SlowerMachine:
    """Context manager: each core gives away ``share`` of its time while it is entered."""

    def __init__(self, share: float) -> None:
        if not 0 < share < 0.9:
            raise ValueError(f"--slower {share}: the share of each core taken away must be "
                             "above 0 and below 0.9")
        self.share = share
        self.base, self.v2 = self._base()
        self.bench = self.base / "feedwise-bench"
        self.tax = self.base / "feedwise-tax"
        self.hogs: list[subprocess.Popen] = []
        self.slowdown: float | None = None

    @staticmethod
    def _base() -> tuple[Path, bool]:
        if (_V1 / "cpu.shares").is_file() and os.access(_V1, os.W_OK):
            return _V1, False
        ctl = _V2 / "cgroup.subtree_control"
        if ctl.is_file() and "cpu" in ctl.read_text().split() and os.access(_V2, os.W_OK):
            return _V2, True
        raise SystemExit("--slower needs a writable cpu cgroup (root, cgroup v1 'cpu' at "
                         f"{_V1} or cgroup v2 with the cpu controller at {_V2})")

    def _weight(self, group: Path, share_of_1024: int) -> None:
        if self.v2:  # cpu.weight is 1-10000, 100 by default
            (group / "cpu.weight").write_text(str(max(1, round(share_of_1024 * 100 / 1024))))
        else:
            (group / "cpu.shares").write_text(str(max(2, share_of_1024)))

    def __enter__(self) -> SlowerMachine:
        for g in (self.bench, self.tax):
            g.mkdir(exist_ok=True)
        self._weight(self.bench, 1024)
        self._weight(self.tax, round(1024 * self.share / (1 - self.share)))
        n = _calibrate(0.5)  # one loop length for both measurements
        before = measure(n)
        (self.bench / "cgroup.procs").write_text(str(os.getpid()))  # children inherit it
        for cpu in sorted(os.sched_getaffinity(0)):
            hog = subprocess.Popen([sys.executable, "-c",
                                    f"import os\nos.sched_setaffinity(0, {{{cpu}}})\n"
                                    "while True:\n    pass\n"])
            (self.tax / "cgroup.procs").write_text(str(hog.pid))
            self.hogs.append(hog)
        time.sleep(0.2)
        self.slowdown = measure(n) / before
        return self

    def __exit__(self, *exc: object) -> None:
        for hog in self.hogs:
            hog.kill()
            hog.wait()
        (self.base / "cgroup.procs").write_text(str(os.getpid()))
        for g in (self.bench, self.tax):
            try:
                g.rmdir()
            except OSError:  # a child of the benchmark still in it: it goes with the child
                pass


def measure(n: int) -> float:
    """Wall seconds of a busy loop of ``n`` steps run on every core at once by child
    processes of this one (each pinned to its core, so in this process's cgroup): the
    median of three rounds. The ratio of two calls is the slow-down between them with every
    core busy, the regime a loaded server is in."""
    cpus = sorted(os.sched_getaffinity(0))
    code = ("import os, sys, time\n"
            "os.sched_setaffinity(0, {int(sys.argv[1])})\n"
            "n = int(sys.argv[2])\n"
            "t0 = time.process_time()\n"
            "while time.process_time() - t0 < 0.05:\n    pass\n"  # on the core first
            "t0 = time.perf_counter()\n"
            "x = 0\n"
            "for i in range(n):\n    x += i\n"
            "print(time.perf_counter() - t0)\n")
    rounds = []
    for _ in range(3):
        procs = [subprocess.Popen([sys.executable, "-c", code, str(c), str(n)],
                                  stdout=subprocess.PIPE, text=True) for c in cpus]
        rounds.append(max(float(p.communicate()[0]) for p in procs))
    return sorted(rounds)[1]


def _calibrate(seconds: float) -> int:
    """Steps of the busy loop that take about ``seconds`` of CPU here."""
    n, t = 10_000, 0.0
    while t < seconds / 4:
        n *= 2
        t0 = time.process_time()
        x = 0
        for i in range(n):
            x += i
        t = time.process_time() - t0
    return int(n * seconds / t)


#: the environment variable that carries :func:`burn`'s factor to the processes started
BURN_ENV = "FEEDWISE_BENCH_BURN"
#: the folder whose ``sitecustomize`` applies it there (put on their ``PYTHONPATH``)
BURN_SITE = Path(__file__).resolve().parent / "_burnsite"
_BURNT: list[float] = []


def burn(factor: float) -> None:
    """Emulate a CPU ``factor`` times slower in this process and in every Python process it
    starts from now on (through :data:`BURN_ENV` and :data:`BURN_SITE` on ``PYTHONPATH``):
    after each unit of work that took ``c`` s of its thread's CPU, the thread does
    ``(factor - 1) * c`` s more (see the module's docstring for what a unit is)."""
    if not 1 < factor <= 4:
        raise ValueError(f"--burn {factor}: the emulated CPU must be more than 1 and at most "
                         "4 times slower")
    os.environ[BURN_ENV] = repr(factor)
    path = os.environ.get("PYTHONPATH", "")
    if str(BURN_SITE) not in path.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(BURN_SITE), path) if p)
    if _BURNT:  # this process burns already (the sitecustomize, then serve.py)
        if _BURNT[0] != factor:
            raise ValueError(f"this process emulates a CPU {_BURNT[0]}x slower already")
        return
    _BURNT.append(factor)
    extra = factor - 1
    clock = time.thread_time
    chunk = memoryview(bytes(16 << 20))

    def steps(n: int) -> None:
        for _ in range(n):
            pass

    def hashed(n: int) -> None:  # one call (the GIL released once) for each 16 MiB
        while n > 0:
            hashlib.sha256(chunk[:min(n, len(chunk))])
            n -= len(chunk)

    def rate(work, n: int) -> float:
        best = float("inf")
        for _ in range(5):
            t0 = clock()
            work(n)
            best = min(best, clock() - t0)
        return n / best

    def slowed(fn, work, per_s: list[float]):
        """``fn`` followed by ``work`` for ``extra`` times the CPU it took; ``per_s`` (the
        work's units a CPU second) follows what the work really runs at, as a machine warms
        up or is shared."""
        def slower(*args, **kwargs):
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                t1 = clock()
                n = int(extra * (t1 - t0) * per_s[0])
                work(n)
                took = clock() - t1
                if took > 1e-4:
                    per_s[0] = 0.7 * per_s[0] + 0.3 * n / took
        return slower

    steps_per_s, bytes_per_s = [rate(steps, 1_000_000)], [rate(hashed, 16 << 20)]
    asyncio.events.Handle._run = slowed(asyncio.events.Handle._run, steps, steps_per_s)
    concurrent.futures.thread._WorkItem.run = slowed(concurrent.futures.thread._WorkItem.run,
                                                     hashed, bytes_per_s)
    from feedwise.server.writer import Writer
    Writer._land = slowed(Writer._land, hashed, bytes_per_s)
    Writer._do_call = slowed(Writer._do_call, hashed, bytes_per_s)
