"""Where a slow feed's time goes: what each serving thread did while the feed waited.

:class:`Sampler` runs in a process of its own (so that it never holds the load generator's
GIL) and reads, every ``every_s``, two counters of every thread of the serving processes
from ``/proc/PID/task/TID/schedstat``: the nanoseconds it ran on a core and the nanoseconds
it was runnable but waited for one. Serving processes started with :data:`SITE` on their
``PYTHONPATH`` and :data:`NAMES_ENV` set carry their Python thread names at the system level
(``comm``), so the threads are named in the report.

:func:`split` takes every answered feed (which process answered it, when it was sent, how
long it took) and splits the window from send to answer, in the process that answered, into

- the serving loop (the process's main thread) **on a core**,
- the serving loop **waiting for a core** (runnable while other threads had both),
- the serving loop **blocked**: neither, i.e. waiting for the GIL that another thread of
  its process held (or idle, which a loop with requests queued is not),

and adds the CPU every other thread took in the same window. It does so for the feeds of
the median band (the 45th to 55th percentile of that process's latencies) and for the
slowest 1 %, side by side: what the slowest feeds had more of is what the tail is made of.
Linux only (``schedstat``); the counters' resolution is the sampling interval.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: the folder whose ``sitecustomize`` names the serving threads (on their ``PYTHONPATH``)
SITE = Path(__file__).resolve().parent / "_tailsite"
#: set in the serving processes' environment so that they name their threads
NAMES_ENV = "FEEDWISE_BENCH_THREAD_NAMES"
#: the serving process's main thread, which runs its event loop (as ``_tailsite`` names it)
LOOP = "loop"


@dataclass
class Samples:
    """Cumulative counters of each thread, one row per sampling instant."""

    t: np.ndarray  # (T,) perf_counter seconds (the same clock as the load generator's)
    threads: list[tuple[int, int, str]]  # (pid, tid, "role:name") of each column
    run_ns: np.ndarray  # (T, K) on a core
    wait_ns: np.ndarray  # (T, K) runnable, waiting for a core
    cpu_s: float = 0.0  # the sampler's own CPU


def _sample(pids: dict[int, str], every_s: float, stop, out) -> None:
    files: dict[tuple[int, int], int] = {}
    names: dict[tuple[int, int], str] = {}
    rows: list[tuple[float, dict]] = []
    scanned = 0.0
    while not stop.is_set():
        now = time.perf_counter()
        if now - scanned > 0.5:  # threads started meanwhile (thread pools grow)
            scanned = now
            for pid in pids:
                try:
                    tids = os.listdir(f"/proc/{pid}/task")
                except OSError:
                    continue
                for tid in map(int, tids):
                    if (pid, tid) not in files:
                        try:
                            files[pid, tid] = os.open(f"/proc/{pid}/task/{tid}/schedstat",
                                                      os.O_RDONLY)
                            names[pid, tid] = Path(f"/proc/{pid}/task/{tid}/comm"
                                                   ).read_text().strip()
                        except OSError:
                            pass
        row = {}
        for key, fd in files.items():
            try:
                run, wait, _ = os.pread(fd, 128, 0).split()
            except (OSError, ValueError):
                continue
            row[key] = (int(run), int(wait))
        rows.append((now, row))
        time.sleep(every_s)
    keys = list(files)
    t = np.array([r[0] for r in rows])
    run = np.zeros((len(rows), len(keys)), np.int64)
    wait = np.zeros_like(run)
    for i, (_, row) in enumerate(rows):
        for j, k in enumerate(keys):
            if k in row:
                run[i, j], wait[i, j] = row[k]
    # a thread not seen yet (or gone) keeps its last count: counters only grow
    run, wait = np.maximum.accumulate(run, axis=0), np.maximum.accumulate(wait, axis=0)
    out.send(Samples(t, [(p, tid, f"{pids[p]}:{names[p, tid]}") for p, tid in keys], run, wait,
                     time.process_time()))


class Sampler:
    """Samples the threads of ``pids`` (pid -> its role: "owner", "worker", "load
    generator") every ``every_s`` from :meth:`start` to :meth:`stop`, in a separate
    process."""

    def __init__(self, pids: dict[int, str], every_s: float = 0.005) -> None:
        self.pids, self.every_s = pids, every_s
        ctx = mp.get_context("fork")
        self._stop = ctx.Event()
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_sample, args=(pids, every_s, self._stop, send),
                                 daemon=True)

    def start(self) -> Sampler:
        self._proc.start()
        return self

    def stop(self) -> Samples:
        self._stop.set()
        got = self._recv.recv()
        self._proc.join(10)
        return got


def split(s: Samples, feeds: list[tuple[str, float, float]], loops: dict[str, int],
          top: int = 5) -> dict:
    """Per process (``loops``: "owner" or a worker's pid -> the pid, whose main thread runs
    its loop) and band, the mean window of ``feeds`` ((process, sent at, seconds) each) split
    as the module's docstring says, in ms, with the CPU of the ``top`` other threads."""
    out: dict = {}
    for who, pid in loops.items():
        mine = sorted((f for f in feeds if f[0] == who), key=lambda f: f[2])
        loop = next((j for j, (p, tid, _) in enumerate(s.threads) if p == pid and tid == pid),
                    None)
        if not mine or loop is None:
            continue
        n = len(mine)
        bands = {"median band": mine[int(0.45 * n):max(int(0.55 * n), int(0.45 * n) + 1)],
                 "slowest 1%": mine[min(int(0.99 * n), n - 1):]}
        for band, chosen in bands.items():
            wins = 0
            sums = Counter()
            others = Counter()
            for _, sent, took in chosen:
                # the samples inside the window (it is known to the sampling interval)
                a = int(np.searchsorted(s.t, sent, "left"))
                b = int(np.searchsorted(s.t, sent + took, "right")) - 1
                if b <= a:
                    continue  # outside the sampled span, or shorter than one interval
                wins += 1
                span = s.t[b] - s.t[a]
                run = (s.run_ns[b] - s.run_ns[a]) / 1e6
                wait = (s.wait_ns[b] - s.wait_ns[a]) / 1e6
                sums["window"] += span * 1000
                sums["latency"] += took * 1000
                sums["on a core"] += run[loop]
                sums["waiting for a core"] += wait[loop]
                sums["blocked"] += max(span * 1000 - run[loop] - wait[loop], 0.0)
                for j, ms in enumerate(run):
                    if j != loop and ms > 0:
                        others[s.threads[j][2]] += ms
            if wins:
                out.setdefault(who, {})[band] = {
                    "feeds": wins, **{k: v / wins for k, v in sums.items()},
                    "other threads": {k: v / wins for k, v in others.most_common(top)}}
    return out


def table(parts: dict) -> str:
    """:func:`split`'s result as a markdown table."""
    lines = ["| process | feeds | latency ms | loop on a core | waiting for a core | blocked "
             "| other threads' CPU in the window, ms |", "|---|---|---|---|---|---|---|"]
    for who, bands in parts.items():
        for band, r in bands.items():
            others = ", ".join(f"{k} {v:.1f}" for k, v in r["other threads"].items())
            lines.append(f"| {who}, {band} | {r['feeds']} | {r['latency']:.1f} | "
                         f"{r['on a core']:.1f} | {r['waiting for a core']:.1f} | "
                         f"{r['blocked']:.1f} | {others} |")
    return "\n".join(lines)
