"""The memory budget: how many bytes a model may hold in one working block.

Every catalogue-wide block a model allocates while fitting or recommending (a batch of users
x every item of scores, a block of item-item similarities before they are cut to the top
``k``) is sized so that it fits in the budget: a bigger catalogue means fewer rows per
block, never a bigger block. The budget does not cover the learned state itself (the
sparse top-``k`` similarities, factors, EASE's weights), whose size each model documents
(``docs/recommenders.md``, "Memory").

The budget is, first to last: a model's ``memory_budget`` attribute (bytes, or a string such
as ``"512MiB"``), the ``FEEDWISE_MEMORY_BUDGET`` environment variable, or
:data:`DEFAULT_BUDGET` (1 GiB).
"""

from __future__ import annotations

import os
import re

import numpy as np

from feedwise.errors import ConfigError

#: The budget when neither the model nor the environment sets one.
DEFAULT_BUDGET = 1 << 30
#: The environment variable that sets the budget for the whole process.
BUDGET_ENV = "FEEDWISE_MEMORY_BUDGET"

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6,
          "mib": 2**20, "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12,
          "tib": 2**40}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(value: int | float | str, *, source: str = "memory budget") -> int:
    """Bytes of ``value``: a number of bytes, or a string with a unit (``"1GiB"``,
    ``"512MiB"``, ``"2G"``, ``"800MB"``; k/M/G/T are powers of 1000, KiB/MiB/GiB/TiB of
    1024). Raises :class:`ConfigError` naming ``source`` for anything else or for less than
    one byte."""
    if isinstance(value, bool):
        raise ConfigError(f"{source}: expected a size such as 1GiB, got {value!r}")
    if isinstance(value, int | float):
        size = float(value)
    else:
        m = _SIZE.match(str(value))
        unit = m.group(2).lower() if m else None
        if m is None or unit not in _UNITS:
            raise ConfigError(f"{source}: expected a size such as 1GiB, 512MiB or a number of "
                              f"bytes, got {value!r}")
        size = float(m.group(1)) * _UNITS[unit]
    if not size >= 1:
        raise ConfigError(f"{source}: must be at least 1 byte, got {value!r}")
    return int(size)


def memory_budget(override: int | float | str | None = None) -> int:
    """The budget in bytes: ``override`` if given, else ``$FEEDWISE_MEMORY_BUDGET``, else
    :data:`DEFAULT_BUDGET`."""
    if override is not None:
        return parse_bytes(override)
    env = os.environ.get(BUDGET_ENV, "").strip()
    if env:
        return parse_bytes(env, source=BUDGET_ENV)
    return DEFAULT_BUDGET


def format_bytes(n: float) -> str:
    """``n`` bytes for people: ``1.0 GiB``, ``512.0 MiB``, ``37 B``."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def rows_within(budget: int, row_bytes: float, cap: int) -> int:
    """How many rows of ``row_bytes`` each fit in ``budget`` (at least 1, at most ``cap``)."""
    return int(max(1, min(cap, budget // max(row_bytes, 1))))


def split_by_cost(costs, limit: float) -> list[tuple[int, int]]:
    """Consecutive ``(start, stop)`` spans of ``costs`` whose sums stay within ``limit``
    (a span of one element may exceed it: an element is never split)."""
    costs = np.asarray(costs, dtype=np.float64)
    n = len(costs)
    cum = np.concatenate([[0.0], np.cumsum(costs)])
    spans, start = [], 0
    while start < n:
        stop = int(np.searchsorted(cum, cum[start] + limit, side="right")) - 1
        stop = min(max(stop, start + 1), n)
        spans.append((start, stop))
        start = stop
    return spans


def available_memory() -> int | None:
    """Bytes the process can still allocate: the system's ``MemAvailable`` (Linux), capped
    by a cgroup v2 memory limit where one is set; ``None`` where neither can be read."""
    found: list[int] = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        if limit != "max":
            found.append(max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    return min(found) if found else None
