"""Run by the serving processes ``benchmarks/serve_tail.py`` starts (this folder is on their
``PYTHONPATH``): every thread carries its Python name at the system level too (Linux keeps 15
bytes of it: ``feedwise-`` is dropped), so that ``/proc/PID/task/TID/comm`` says which thread
it is. The main thread, which runs the event loop, is called ``loop``."""

import os
import sys

if os.environ.get("FEEDWISE_BENCH_THREAD_NAMES") and sys.platform.startswith("linux"):
    import ctypes
    import threading

    _prctl = ctypes.CDLL(None, use_errno=True).prctl
    _PR_SET_NAME = 15

    def _name(name: str) -> None:
        _prctl(_PR_SET_NAME, name.removeprefix("feedwise-").encode()[:15], 0, 0, 0)

    _inner = threading.Thread._bootstrap_inner

    def _named(self) -> None:
        _name(self.name)
        _inner(self)

    threading.Thread._bootstrap_inner = _named
    _name("loop")
