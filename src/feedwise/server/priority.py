"""Thread priority: background work yields the cores to the requests in flight.

A serving process answers requests on its event loop while its writer lands what they
logged. The two compete for the same cores: a landing of impressions every quarter of a
second took a core from both serving processes for tens of ms, and the requests queued
behind it made most of the feed's tail (docs/serving.md, sessions 18 and 19). A lowered
thread still runs whenever a core is free, so nothing is lost or reordered; it only gives
way while requests want the cores.

Linux gives each thread its own niceness (``setpriority`` with a thread id); elsewhere
these calls do nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable

log = logging.getLogger(__name__)


def lower(tids: Iterable[int], by: int) -> int:
    """Raise the niceness of the threads ``tids`` by ``by`` (at most 19, the lowest
    priority); returns how many were lowered. Threads that ended meanwhile, or a system
    without per-thread priorities, are skipped."""
    if by <= 0 or not hasattr(os, "setpriority") or not os.path.isdir("/proc/self/task"):
        return 0
    n = 0
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid,
                           min(19, os.getpriority(os.PRIO_PROCESS, tid) + by))
            n += 1
        except OSError:  # the thread ended, or the system refuses: it keeps its priority
            log.debug("thread %d keeps its priority", tid)
    return n


def lower_this_thread(by: int) -> bool:
    """Lower the calling thread (see :func:`lower`); whether it was lowered."""
    return lower([threading.get_native_id()], by) == 1
