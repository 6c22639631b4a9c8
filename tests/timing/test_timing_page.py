"""Page-level best time on the UCI Facebook metrics: our OLS equals statsmodels' fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from feedwise.analytics.pagetime import fit_page, read_page_posts
from feedwise.cli import app
from feedwise.errors import DataError


@pytest.fixture(scope="module")
def page(shared_data):
    path = shared_data / "facebook-page-metrics" / "dataset_Facebook.csv"
    df, dropped = read_page_posts(path)
    return path, df, dropped, fit_page(df, dropped)


def _sm_name(term: str, level: str) -> str:
    return {"Intercept": "Intercept", "paid": "paid"}.get(term, f"C({term})[T.{level}]")


def test_estimates_and_intervals_match_statsmodels(page):
    smf = pytest.importorskip("statsmodels.formula.api")
    _, df, _, fit = page
    ref = smf.ols("np.log1p(outcome) ~ C(type) + paid + C(hour) + C(weekday) + C(month)",
                  data=df).fit()
    names = [_sm_name(t, lv) for t, lv in zip(fit.effects["term"], fit.effects["level"],
                                              strict=True)]
    assert sorted(names) == sorted(ref.params.index)
    ci = ref.conf_int(0.05)
    np.testing.assert_allclose(fit.effects["coef"], ref.params[names], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(fit.effects["se"], ref.bse[names], rtol=1e-7)
    np.testing.assert_allclose(fit.effects["lo"], ci.loc[names, 0], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(fit.effects["hi"], ci.loc[names, 1], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(fit.effects["p"], ref.pvalues[names], rtol=1e-6, atol=1e-12)
    assert fit.r2 == pytest.approx(ref.rsquared)


def test_the_missing_paid_row_is_reported_not_lost(page):
    _, df, dropped, fit = page
    assert fit.n == len(df) == 499
    assert list(dropped["field"]) == ["Paid"] and "left out" in dropped["reason"].iloc[0]
    assert fit.not_significant() == sorted(fit.not_significant())
    assert "type" not in fit.not_significant()  # post type matters on this page


def test_bad_page_files_fail_clearly(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_page_posts(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("Type;Hour\nPhoto;3\n")
    with pytest.raises(DataError, match="no column 'Engaged_Users'"):
        read_page_posts(bad)


def test_cli_runs_on_the_raw_file(page):
    path, _, _, fit = page
    res = CliRunner().invoke(app, ["best-time", "--page-csv", str(path), "-f", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{"):])
    assert out["n"] == 499 and out["not_significant"] == fit.not_significant()
    res = CliRunner().invoke(app, ["best-time", "--page-csv", "/nonexistent.csv"])
    assert res.exit_code == 2 and "error:" in res.output
