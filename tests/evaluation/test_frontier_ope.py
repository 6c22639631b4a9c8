"""The off-policy frontier against synthetic logs whose true frontier is known."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from feedwise.errors import DataError
from feedwise.evidence.frontier_ope import (
    feeds_from_log,
    offpolicy_frontier,
    synthetic_frontier_log,
)

METRICS = ("revenue", "engagement")
#: Stated tolerance at 50k logged impressions: 10 % of the frontier's spread per metric.
TOL_SHARE = 0.10


@pytest.fixture(scope="module")
def frontier_50k() -> tuple[pd.DataFrame, pd.DataFrame]:
    syn = synthetic_frontier_log(50_000, seed=0)
    est = offpolicy_frontier(syn.feeds, n_bootstrap=30, seed=0)
    return est.merge(syn.truth, on="policy"), syn.truth


def test_estimates_within_tolerance_of_the_truth(frontier_50k):
    df, truth = frontier_50k
    print("\n" + df[["policy", "revenue", "revenue_snips", "revenue_dr", "engagement",
                     "engagement_snips", "engagement_dr", "ess", "pareto"]]
          .round(4).to_string())
    for m in METRICS:
        tol = TOL_SHARE * (truth[m].max() - truth[m].min())
        for e in ("snips", "dr"):
            err = (df[f"{m}_{e}"] - df[m]).abs()
            assert (err <= tol).all(), (m, e, err.max(), tol)


def test_estimated_frontier_ranks_policies_like_the_truth(frontier_50k):
    df, truth = frontier_50k
    for m in METRICS:
        tol = TOL_SHARE * (truth[m].max() - truth[m].min())
        for e in ("snips", "dr"):
            for i, j in itertools.combinations(range(len(df)), 2):
                gap = df[m].iloc[i] - df[m].iloc[j]
                if abs(gap) > 2 * tol:  # clearly different policies keep their order
                    assert np.sign(df[f"{m}_{e}"].iloc[i] - df[f"{m}_{e}"].iloc[j]) == \
                        np.sign(gap), (m, e, df["policy"].iloc[i], df["policy"].iloc[j])
    # the same Pareto-efficient set as the truth: every λ / baseline except uniform
    from feedwise.evidence.frontier import pareto_mask

    true_pareto = pareto_mask(truth, maximize=METRICS)
    assert list(df["pareto"]) == list(true_pareto)
    assert not df.set_index("policy").loc["uniform", "pareto"]
    assert (df["estimator"] == "dr").all()


def test_intervals_and_ess(frontier_50k):
    df, _ = frontier_50k
    covered = 0
    for m in METRICS:
        for e in ("snips", "dr"):
            assert (df[f"{m}_{e}_low"] <= df[f"{m}_{e}"] + 1e-12).all()
            assert (df[f"{m}_{e}"] <= df[f"{m}_{e}_high"] + 1e-12).all()
            covered += int(((df[f"{m}_{e}_low"] <= df[m] + 1e-9)
                            & (df[m] - 1e-9 <= df[f"{m}_{e}_high"])).sum())
    assert covered >= 0.75 * 4 * len(df)
    assert (df["ess"] > 1000).all() and (df["ess"] <= df["n"]).all()
    # uniform is the closest policy to the exploring logger: the largest ESS
    assert df.loc[df["ess"].idxmax(), "policy"] == "uniform"


def test_from_a_log_table_snips_only_and_errors():
    syn = synthetic_frontier_log(5_000, seed=1, lambdas=(0.0,), fixed_every=(3,))
    df = offpolicy_frontier(syn.log, n_bootstrap=0)
    assert list(df["policy"]) == list(syn.truth["policy"])
    assert df["revenue_dr"].isna().all() and (df["estimator"] == "snips").all()
    direct = offpolicy_frontier(syn.feeds, estimators=("snips",), n_bootstrap=0)
    assert np.allclose(df["revenue_snips"], direct["revenue_snips"])
    assert df["pareto"].any()
    with pytest.raises(DataError, match="target_propensity_"):
        feeds_from_log(syn.log.drop(columns=[c for c in syn.log.columns
                                             if c.startswith("target_propensity_")]))
    with pytest.raises(DataError, match="nope"):
        feeds_from_log(syn.log, policies=["nope"])


def test_target_items_enable_dr_through_a_reward_model():
    syn = synthetic_frontier_log(5_000, seed=2, lambdas=(0.0,), fixed_every=())
    log = syn.log.copy()
    # a deterministic candidate: always the first ad
    log["target_propensity_ad0"] = (log["item_id"] == "i0").astype(float)
    log["target_item_id_ad0"] = "i0"
    df = offpolicy_frontier(log, n_bootstrap=0, features=["x0", "x1"]).set_index("policy")
    assert np.isfinite(df.loc["ad0", "revenue_dr"]) and df.loc["ad0", "estimator"] == "dr"
    assert np.isnan(df.loc["no-ads", "revenue_dr"])
    assert df.loc["ad0", "engagement_snips"] < df.loc["no-ads", "engagement_snips"]
