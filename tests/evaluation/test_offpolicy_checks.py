"""Edge cases of the off-policy estimators and the revenue / experience frontier."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feedwise.errors import ConfigError, DataError
from feedwise.evidence.estimators import IPSEstimator, SNIPSEstimator, SwitchDREstimator
from feedwise.evidence.frontier import REVENUE, match_baseline, pareto_mask, recommend
from feedwise.evidence.frontier_ope import (
    feeds_from_log,
    offpolicy_frontier,
    synthetic_frontier_log,
)
from feedwise.evidence.logs import OffPolicyData, RewardModel, load_bandit_log

# ----------------------------------------------------------------------------- OffPolicyData


def test_non_finite_rewards_and_predictions_are_rejected():
    ones = np.ones(3)
    with pytest.raises(DataError, match="reward"):
        OffPolicyData(np.array([1.0, np.nan, 0.0]), ones * 0.5, ones * 0.5)
    with pytest.raises(DataError, match="q_target"):
        OffPolicyData(ones, ones * 0.5, ones * 0.5, q_logged=ones,
                      q_target=np.array([0.1, np.inf, 0.2]))


def test_a_2d_reward_column_is_rejected_not_broadcast():
    # a (n, 1) reward times (n,) weights broadcasts to (n, n): a silently wrong estimate
    with pytest.raises(DataError, match="reward"):
        OffPolicyData(np.ones((4, 1)), np.full(4, 0.5), np.full(4, 0.5))


def test_bad_positions_are_rejected():
    ones = np.ones(3)
    for bad in ([0, np.nan, 1], [0, -1, 1], [0, 1.5, 2]):
        with pytest.raises(DataError, match="position"):
            OffPolicyData(ones, ones * 0.5, ones * 0.5, position=np.array(bad))


def test_from_action_probs_rejects_out_of_range_actions_and_bad_shapes():
    probs = np.full((3, 4), 0.25)
    r, p = np.ones(3), np.full(3, 0.5)
    with pytest.raises(DataError, match="action"):   # -1 would silently pick the last item
        OffPolicyData.from_action_probs(r, np.array([0, -1, 2]), p, probs)
    with pytest.raises(DataError, match="action"):
        OffPolicyData.from_action_probs(r, np.array([0, 4, 2]), p, probs)
    with pytest.raises(DataError, match="target_probs"):
        OffPolicyData.from_action_probs(r, np.array([0, 1, 2]), p, np.full((5, 4), 0.25))
    with pytest.raises(DataError, match="q_hat"):
        OffPolicyData.from_action_probs(r, np.array([0, 1, 2]), p, probs, q_hat=np.ones((3, 3)))
    with pytest.raises(DataError, match="sum to 1"):
        OffPolicyData.from_action_probs(r, np.array([0, 1, 2]), p, np.full((3, 4), 0.5))
    ok = OffPolicyData.from_action_probs(r, np.array([0, 1, 2]), p, probs, q_hat=np.ones((3, 4)))
    assert np.allclose(ok.q_target, 1.0)


# ----------------------------------------------------------------------------- estimators


def test_snips_without_any_target_support_is_undefined_not_zero():
    d = OffPolicyData(np.ones(3), np.full(3, 0.5), np.zeros(3))
    est = SNIPSEstimator(0).estimate(d)
    assert np.isnan(est.value) and est.ess == 0.0
    assert IPSEstimator(0).estimate(d).value == 0.0


def test_switch_dr_rejects_a_nan_tau():
    q = np.full(3, 0.3)
    d = OffPolicyData(np.ones(3), np.full(3, 0.5), np.full(3, 0.5), q_logged=q, q_target=q)
    with pytest.raises(ConfigError, match="tau"):
        SwitchDREstimator(tau=float("nan"), n_bootstrap=0).estimate(d)


def test_non_integer_n_bootstrap_is_a_config_error():
    d = OffPolicyData(np.ones(3), np.full(3, 0.5), np.full(3, 0.5))
    with pytest.raises(ConfigError, match="n_bootstrap"):
        SNIPSEstimator(n_bootstrap=2.5).estimate(d)


def test_reward_model_on_an_empty_log_is_a_data_error():
    empty = pd.DataFrame({"item_id": [], "position": [], "reward": []})
    with pytest.raises(DataError, match="empty"):
        RewardModel().fit(empty)


# ----------------------------------------------------------------------------- loading


def test_load_bandit_log_reads_integer_unix_seconds(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("timestamp,item_id,position,reward,propensity\n"
                 "1767225600,a,0,1,0.5\n1767225660,b,1,0,0.5\n")
    log = load_bandit_log(f)
    assert log["timestamp"].iloc[0] == pd.Timestamp("2026-01-01", tz="UTC")
    assert log["timestamp"].iloc[1] == pd.Timestamp("2026-01-01 00:01", tz="UTC")


def test_load_bandit_log_rejects_fractional_positions(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("timestamp,item_id,position,reward,propensity\n"
                 "2026-01-01T00:00:00Z,a,0,1,0.5\n2026-01-01T00:00:01Z,b,1.5,0,0.5\n")
    with pytest.raises(DataError, match=r"row 2, column 'position'"):
        load_bandit_log(f)


# ----------------------------------------------------------------------------- frontier (OPE)


@pytest.fixture(scope="module")
def small_log() -> pd.DataFrame:
    return synthetic_frontier_log(2_000, seed=1, lambdas=(0.0,), fixed_every=(3,)).log


def test_frontier_names_the_bad_target_column(small_log):
    log = small_log.copy()
    log.loc[5, "target_propensity_no-ads"] = np.nan
    with pytest.raises(DataError, match="target_propensity_no-ads"):
        feeds_from_log(log)


def test_frontier_names_a_bad_reward_column(small_log):
    log = small_log.copy()
    log["revenue"] = log["revenue"].astype(object)
    log.loc[3, "revenue"] = "oops"
    with pytest.raises(DataError, match="revenue"):
        feeds_from_log(log)


def test_frontier_on_an_empty_log_is_a_data_error(small_log):
    log = small_log.iloc[:0].assign(**{"target_item_id_no-ads": "i7"})
    with pytest.raises(DataError, match="empty"):
        feeds_from_log(log)


def test_frontier_needs_at_least_one_estimator(small_log):
    with pytest.raises(ConfigError, match="estimator"):
        offpolicy_frontier(small_log, estimators=(), n_bootstrap=0)


def test_frontier_falls_back_on_snips_not_ips_without_dr(small_log):
    # docs: Pareto-marked on DR, SNIPS where DR is missing (not on whatever came first)
    df = offpolicy_frontier(small_log, estimators=("ips", "snips", "dr"), n_bootstrap=0)
    assert (df["estimator"] == "snips").all()


# ----------------------------------------------------------------------------- frontier (sim)


def test_pareto_mask_does_not_mark_rows_with_missing_metrics():
    df = pd.DataFrame({"a": [1.0, np.nan, 0.5, 1.0], "b": [1.0, 5.0, 0.5, 1.0]})
    # ties are both efficient; a NaN row is never efficient; the dominated row is not
    assert pareto_mask(df, maximize=("a", "b")).tolist() == [True, False, False, True]


def _sweep_like() -> pd.DataFrame:
    return pd.DataFrame({
        "policy": ["no-ads", "lam-a", "lam-b", "lam-c"],
        "family": ["baseline", "feedwise", "feedwise", "feedwise"],
        REVENUE: [0.0, 0.10, 0.30, 0.20],
        "session_depth": [10.0, 9.95, 8.0, 9.92],
        "d7_return": [0.5, 0.499, 0.40, 0.498],
    })


def test_recommend_returns_one_row_within_budget_with_a_duplicated_index():
    df = _sweep_like()
    df.index = [0, 1, 2, 1]        # e.g. two sweeps concatenated without ignore_index
    rec = recommend(df, budget=0.01)
    assert isinstance(rec, pd.Series)
    assert rec["policy"] == "lam-c"
    assert rec["session_depth"] >= 0.99 * 10.0 and rec["d7_return"] >= 0.99 * 0.5
    m = match_baseline(df, "no-ads", ux_metrics=())
    assert isinstance(m, pd.Series) and m["policy"] == "lam-b"


def test_recommend_rejects_a_nan_or_negative_budget():
    for bad in (float("nan"), -0.01):
        with pytest.raises(ConfigError, match="budget"):
            recommend(_sweep_like(), budget=bad)


def test_match_baseline_skips_rows_without_revenue():
    df = _sweep_like()
    df.loc[2, REVENUE] = np.nan
    m = match_baseline(df, "no-ads", ux_metrics=())
    assert m["policy"] == "lam-c"


def test_bootstrap_by_session_with_mixed_or_missing_session_ids():
    # a session_id column of strings with blanks is read as str + NaN/None: not sortable
    g = np.array(["s1", None, "s2", "s1", np.nan, "s3"], dtype=object)
    d = OffPolicyData(np.arange(6.0), np.full(6, 0.5), np.full(6, 0.5), groups=g)
    est = SNIPSEstimator(n_bootstrap=50).estimate(d, seed=0)
    assert est.ci_low <= est.value <= est.ci_high


def test_frontier_policy_without_support_has_no_estimate_and_is_not_pareto(small_log):
    log = small_log.assign(**{"target_propensity_never": 0.0})
    df = offpolicy_frontier(log, n_bootstrap=5).set_index("policy")
    assert np.isnan(df.loc["never", "revenue_snips"]) and df.loc["never", "ess"] == 0
    assert df.loc["never", "estimator"] == "" and not df.loc["never", "pareto"]
    assert df["pareto"].any()
