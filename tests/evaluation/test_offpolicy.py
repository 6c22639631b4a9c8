"""Off-policy estimators against synthetic logs whose true value is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feedwise.errors import DataError
from feedwise.evidence.estimators import (
    DirectMethodEstimator,
    DoublyRobustEstimator,
    IPSEstimator,
    SNIPSEstimator,
    SwitchDREstimator,
    accuracy_table,
    effective_sample_size,
    estimate_all,
)
from feedwise.evidence.logs import (
    OffPolicyData,
    RewardModel,
    load_bandit_log,
    log_to_data,
    synthetic_bandit_log,
)


@pytest.fixture(scope="module")
def table_100k() -> pd.DataFrame:
    # the acceptance setting: 100k logged impressions, median over seeds
    return accuracy_table(100_000, seeds=(0, 1, 2)).set_index("estimator")


def test_snips_and_dr_within_5_percent_at_100k(table_100k):
    print("\n" + table_100k.to_string())
    assert table_100k.loc["snips", "median_rel_error"] < 0.05
    assert table_100k.loc["dr", "median_rel_error"] < 0.05
    assert table_100k.loc["ips", "median_rel_error"] < 0.10


def test_coarse_reward_model_biases_dm_but_not_dr(table_100k):
    # the reward model ignores the context on purpose: DM is off, DR corrects it
    assert table_100k.loc["dm", "median_rel_error"] > 0.10
    assert table_100k.loc["dr", "median_rel_error"] < table_100k.loc["dm", "median_rel_error"]
    assert table_100k.loc["ips", "mean_ess"] < 100_000


def test_on_policy_weights_reduce_to_the_sample_mean():
    rng = np.random.default_rng(0)
    r = rng.random(500)
    p = rng.uniform(0.1, 1.0, 500)
    d = OffPolicyData(r, p, p, q_logged=np.zeros(500), q_target=np.zeros(500))
    for est in (IPSEstimator(0), SNIPSEstimator(0), DoublyRobustEstimator(0)):
        assert est.estimate(d).value == pytest.approx(r.mean())
    assert effective_sample_size(d.weights) == pytest.approx(500)


def test_switch_dr_falls_back_on_the_model_for_large_weights():
    r = np.array([1.0, 0.0, 1.0, 0.0])
    p = np.array([0.01, 0.5, 0.5, 0.5])
    tp = np.array([1.0, 0.5, 0.5, 0.5])   # first row weight 100
    q = np.full(4, 0.3)
    d = OffPolicyData(r, p, tp, q_logged=q, q_target=q)
    sw = SwitchDREstimator(tau=10, n_bootstrap=0).estimate(d).value
    dr = DoublyRobustEstimator(n_bootstrap=0).estimate(d).value
    assert sw == pytest.approx(np.mean(q + np.array([0, 1, 1, 1]) * (r - q)))
    assert dr > sw
    assert DirectMethodEstimator(0).estimate(d).value == pytest.approx(0.3)


def test_bootstrap_interval_brackets_the_estimate_and_is_seeded():
    syn = synthetic_bandit_log(10_000, seed=3)
    e1 = SNIPSEstimator(n_bootstrap=50).estimate(syn.data, seed=1)
    e2 = SNIPSEstimator(n_bootstrap=50).estimate(syn.data, seed=1)
    assert e1 == e2
    assert e1.ci_low < e1.value < e1.ci_high
    assert 0 < e1.ess < len(syn.data)


def test_per_slot_estimates_sum_to_the_feed_value():
    syn = synthetic_bandit_log(20_000, n_slots=4, seed=0)
    by = SNIPSEstimator(0).estimate_by_position(syn.data)
    assert list(by["position"]) == [0, 1, 2, 3, -1]
    assert by["value"].iloc[-1] == pytest.approx(by["value"].iloc[:-1].sum())
    # attention decays with position, so the per-slot values do too
    assert by["value"].iloc[0] > by["value"].iloc[3]
    # the feed value is n_slots times the per-impression truth
    assert by["value"].iloc[-1] == pytest.approx(4 * syn.true_value, rel=0.1)


def test_model_estimators_need_predictions():
    d = OffPolicyData(np.ones(3), np.full(3, 0.5), np.full(3, 0.5))
    with pytest.raises(DataError, match="reward-model"):
        DoublyRobustEstimator(0).estimate(d)
    assert list(estimate_all(d, n_bootstrap=0)["estimator"]) == ["ips", "snips"]


def test_bad_propensities_are_rejected():
    with pytest.raises(DataError, match="propensity"):
        OffPolicyData(np.ones(2), np.array([0.5, 0.0]), np.ones(2))
    with pytest.raises(DataError, match="shape"):
        OffPolicyData(np.ones(2), np.ones(3), np.ones(2))


def test_load_bandit_log_file_with_item_context(tmp_path):
    syn = synthetic_bandit_log(5_000, seed=1)
    log = syn.log.copy()
    log["target_item_id"] = "i0"
    f = tmp_path / "log.csv"
    log.to_csv(f, index=False)
    items = pd.DataFrame({"item_id": [f"i{k}" for k in range(20)],
                          "quality": np.linspace(0, 1, 20)})
    fi = tmp_path / "items.parquet"
    items.to_parquet(fi)
    loaded = load_bandit_log(f, item_context=fi)
    assert len(loaded) == len(log)
    assert "quality" in loaded.columns
    assert str(loaded["timestamp"].dt.tz) == "UTC"
    model = RewardModel(["x0", "x1", "quality"], max_iter=20).fit(loaded)
    data = log_to_data(loaded, reward_model=model)
    assert data.q_target is not None and data.groups is not None
    out = estimate_all(data, n_bootstrap=0)
    assert set(out["estimator"]) == {"dm", "ips", "snips", "dr", "switch-dr"}


def test_load_bandit_log_names_the_bad_row(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("timestamp,item_id,position,reward,propensity\n"
                 "2026-01-01T00:00:00Z,a,0,1,0.5\n2026-01-01T00:00:01Z,b,1,0,1.5\n")
    with pytest.raises(DataError, match=r"row 2, column 'propensity'"):
        load_bandit_log(f)
    g = tmp_path / "missing.csv"
    g.write_text("timestamp,item_id,reward\n1,a,1\n")
    with pytest.raises(DataError, match="missing column"):
        load_bandit_log(g)
