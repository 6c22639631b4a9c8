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
import sys
import threading

log = logging.getLogger(__name__)


def lower_this_thread(by: int) -> bool:
    """Raise the calling thread's niceness by ``by`` (at most 19, the lowest priority);
    whether it was lowered (not for ``by <= 0``, nor where the system has no per-thread
    priorities or refuses)."""
    if by <= 0 or not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + by))
    except OSError:  # the system refuses: the thread keeps its priority
        log.debug("thread %d keeps its priority", tid)
        return False
    return True
