"""`benchmarks/temporal_real.py --datasets lastfm-cli` measures the README's real-data protocol
as written: it must run the same block the README test runs, and read the figures back
from the table `feedwise evaluate --model a,b,c` prints."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest
from readme_blocks import readme_block

from feedwise.cli._common import Format, emit

ROOT = Path(__file__).resolve().parents[2]
HEADING = "## Fresh content on real data: the temporal protocol"


@pytest.fixture(scope="module")
def bench():  # noqa: ANN201 - the benchmark module
    spec = importlib.util.spec_from_file_location("temporal_real_bench",
                                                  ROOT / "benchmarks" / "temporal_real.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_runs_the_readme_block(bench) -> None:  # noqa: ANN001
    block = bench.readme_block()
    assert block == readme_block(HEADING)
    assert "feedwise evaluate --split temporal --model auto," in block


def test_printed_figures_read_the_evaluate_table(bench, capsys: pytest.CaptureFixture
                                                 ) -> None:  # noqa: ANN001
    models = ["auto", "popularity", "ease"]
    wide = pd.DataFrame({"metric": ["precision", "ndcg", "coverage", "mrr"],
                         "auto": [0.05051, 0.07266, 0.31, 0.1145],
                         "popularity": [0.0488, 0.06772, 0.002, 0.1047],
                         "ease": [0.0487, 0.07263, 0.08, 0.1149]})
    emit(wide, Format.table, title="auto, popularity, ease on temporal split, k=10")
    text = capsys.readouterr().out
    got = bench.printed_figures(text, models)
    assert set(got) == {"precision", "ndcg", "mrr"}  # ranking metrics only
    assert got["ndcg"] == pytest.approx({"auto": 0.07266, "popularity": 0.06772,
                                         "ease": 0.07263}, abs=0.5e-4)
    assert got["mrr"]["ease"] == pytest.approx(0.1149, abs=0.5e-4)


def test_gain_interval_is_paired_over_users(bench) -> None:
    """The default's gain over a baseline: a paired bootstrap of the ratio of means. A model
    exactly 10 % better on every user has no spread; a gain carried by a few users does."""
    import numpy as np

    b = np.random.default_rng(0).uniform(0.0, 0.2, 400)
    lo, hi = bench.gain_interval(1.1 * b, b)
    assert lo == pytest.approx(0.1) and hi == pytest.approx(0.1)
    a = b.copy()
    a[:20] += 0.8  # a ~40 % average gain carried by 5 % of the users
    lo, hi = bench.gain_interval(a, b)
    gain = a.mean() / b.mean() - 1
    assert lo < gain < hi and hi - lo > 0.1
