"""Run by every Python process ``benchmarks/serve.py --burn F`` starts (this folder is on
their ``PYTHONPATH``): the process emulates the same slower CPU (``_slower.burn``)."""

import os

if os.environ.get("FEEDWISE_BENCH_BURN"):
    import importlib.util
    from pathlib import Path

    _spec = importlib.util.spec_from_file_location(
        "_slower", Path(__file__).resolve().parents[1] / "_slower.py")
    _slower = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_slower)
    _slower.burn(float(os.environ[_slower.BURN_ENV]))
