"""``benchmarks/serve_floor.py``: the serve benchmark's client on an app with no feedwise code
behind it (a fixed CPU cost a request), in one process and in two."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="CPU of a pid from /proc")
def test_floor_serves_the_fixed_cost_on_each_process(tmp_path):
    out = tmp_path / "floor.json"
    r = subprocess.run([sys.executable, str(BENCH / "serve_floor.py"), "--procs", "1,2",
                        "--cost-ms", "2.0", "--clients", "4", "--seconds", "1.5",
                        "--warmup", "0.3", "--out", str(out)],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(x["procs"], x["cost_ms"]) for x in rows] == [(1, 2.0), (2, 2.0)]
    for x in rows:
        assert x["requests"] > 100
        # the busy loop is the floor of what a request costs the server (CPU from /proc)
        assert x["cpu_ms"] >= 2.0 * 0.95
        assert x["p50_ms"] <= x["p99_ms"]
    one = rows[0]
    # four clients on one process queue behind each other: about four requests' cost each
    assert one["mean_ms"] >= 3 * 2.0
    assert "| 2 | 2.00 ms busy |" in r.stdout
