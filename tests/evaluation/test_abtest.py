"""A/B statistics: intervals, CUPED, sample size, SRM and experiments in the store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats

from feedwise.errors import ConfigError, DataError, NotFoundError
from feedwise.evidence.abtest import (
    analyze_experiment,
    cuped,
    cuped_ttest,
    experiment_users,
    sample_size,
    srm_check,
    two_proportion_ztest,
    welch_ttest,
)


def test_welch_matches_scipy_and_interval_covers_true_difference():
    rng = np.random.default_rng(0)
    a, b = rng.normal(10, 2, 400), rng.normal(10.5, 3, 300)
    r = welch_ttest(a, b)
    ref = stats.ttest_ind(b, a, equal_var=False)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert r.diff == pytest.approx(b.mean() - a.mean())
    assert r.ci_low < 0.5 < r.ci_high
    assert r.ci_low < r.diff < r.ci_high


def test_welch_interval_coverage_is_near_nominal():
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(400):
        r = welch_ttest(rng.exponential(1.0, 60), rng.exponential(1.0, 40) + 0.2)
        covered += r.ci_low <= 0.2 <= r.ci_high
    assert 0.91 <= covered / 400 <= 0.98


def test_two_proportion_z():
    r = two_proportion_ztest(100, 1000, 130, 1000)
    assert r.diff == pytest.approx(0.03)
    pool = 230 / 2000
    z = 0.03 / np.sqrt(pool * (1 - pool) * 2 / 1000)
    assert r.p_value == pytest.approx(2 * stats.norm.sf(z))
    assert r.ci_low < 0.03 < r.ci_high
    with pytest.raises(DataError):
        two_proportion_ztest(5, 3, 1, 10)


def test_cuped_reduces_variance_and_keeps_the_effect():
    rng = np.random.default_rng(2)
    n = 4000
    x = rng.normal(5, 2, n)
    y = x + rng.normal(0, 1, n)
    t = rng.random(n) < 0.5
    y = y + 0.1 * t
    raw = welch_ttest(y[~t], y[t])
    adj, red = cuped_ttest(y[~t], x[~t], y[t], x[t])
    assert red > 0.7
    assert (adj.ci_high - adj.ci_low) < 0.6 * (raw.ci_high - raw.ci_low)
    assert adj.ci_low < 0.1 < adj.ci_high
    _, theta = cuped(y, x)
    assert theta == pytest.approx(1.0, abs=0.05)


def test_sample_size_textbook_values():
    # 10% -> 12% at alpha .05, power .8: about 3,841 per group (normal approximation)
    n = sample_size(0.10, 0.02)
    assert 3800 <= n["control"] <= 3900
    m = sample_size(100, 1, kind="mean", sd=10)
    assert m["control"] == int(np.ceil(2 * (1.959964 + 0.841621) ** 2 * 100))
    assert sample_size(0.10, 0.2, relative=True)["control"] == n["control"]
    with pytest.raises(ConfigError):
        sample_size(0.1, 0.0)


def test_srm_check_flags_mismatch():
    assert not srm_check({"control": 5000, "treatment": 5040})["srm"]
    assert srm_check({"control": 5000, "treatment": 5400})["srm"]
    assert not srm_check({"a": 2000, "b": 1000}, {"a": 2, "b": 1})["srm"]


def _experiment_events(seed: int = 0):
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    rows = []
    for u in range(300):
        variant = "control" if u % 2 == 0 else "treatment"
        rate = rng.gamma(2.0, 1.0)
        # pre-period activity (no experiment context)
        for _ in range(rng.poisson(rate * 3)):
            rows.append({"user_id": f"u{u}", "item_id": "i1", "kind": "like",
                         "ts": (t0 - timedelta(days=float(rng.uniform(1, 10)))).isoformat()})
        ctx = json.dumps({"experiment": "exp1", "variant": variant})
        rows.append({"user_id": f"u{u}", "item_id": "i0", "kind": "impression",
                     "ts": t0.isoformat(), "context": ctx})
        lift = 1.3 if variant == "treatment" else 1.0
        for _ in range(rng.poisson(rate * 3 * lift)):
            rows.append({"user_id": f"u{u}", "item_id": "i2", "kind": "click",
                         "ts": (t0 + timedelta(days=float(rng.uniform(0.01, 5)))).isoformat(),
                         "context": ctx})
    return rows


def test_experiment_over_the_store(store):
    store.add_events(_experiment_events())
    users = experiment_users(store, "exp1")
    assert len(users) == 300
    assert set(users["variant"]) == {"control", "treatment"}
    assert (users["x"] > 0).mean() > 0.5
    out = analyze_experiment(store, "exp1")
    res = out["results"]
    assert set(res["test"]) == {"welch_t", "cuped_welch_t"}
    assert (res["diff"] > 0).all()
    assert out["variance_reduction"]["treatment"] > 0.1
    assert not out["srm"]["srm"]
    prop = analyze_experiment(store, "exp1", "engaged")["results"]
    assert prop["test"].tolist() == ["two_proportion_z"]
    with pytest.raises(NotFoundError):
        experiment_users(store, "nope")
    with pytest.raises(NotFoundError):
        analyze_experiment(store, "exp1", control="baseline")


def test_sample_size_for_a_decrease_uses_the_lower_proportion():
    # 10% -> 8%: variance p(1-p) of 0.08 (not of 0.12) enters the formula
    za, zb = stats.norm.ppf(0.975), stats.norm.ppf(0.8)
    want = int(np.ceil((za + zb) ** 2 * (0.1 * 0.9 + 0.08 * 0.92) / 0.02 ** 2))
    assert sample_size(0.10, -0.02)["control"] == want
    assert sample_size(0.10, -0.2, relative=True)["control"] == want
    # a drop from 99% is a valid design, not a proportion above 1
    assert sample_size(0.99, -0.02)["control"] > 0


def test_srm_check_flags_a_variant_that_got_no_units():
    out = srm_check({"control": 1000, "treatment": 1000}, {"control": 1, "treatment": 1,
                                                          "treatment_b": 1})
    assert out["srm"]
    assert out["observed"]["treatment_b"] == 0


def test_cuped_ttest_rejects_groups_whose_y_and_x_differ_in_length():
    # the totals match (7 = 7), but control's y and x do not pair up
    with pytest.raises(DataError, match="x_control"):
        cuped_ttest([1, 2, 3], [1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3])


def test_experiment_until_ignores_assignments_after_it(store):
    store.add_events(_experiment_events())
    t0 = datetime(2026, 3, 1, tzinfo=UTC)  # every user is assigned at t0
    with pytest.raises(NotFoundError):
        experiment_users(store, "exp1", until=t0)
    assert len(experiment_users(store, "exp1", until=t0 + timedelta(seconds=1))) == 300
