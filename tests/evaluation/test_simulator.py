"""The attention simulator, the baseline / λ policies and the frontier."""

from __future__ import annotations

import json

import numpy as np
import pytest

from feedwise.errors import ConfigError
from feedwise.evidence.frontier import (
    baseline_policies,
    frontier_figure,
    lambda_policies,
    match_baseline,
    pareto_mask,
    recommend,
    sweep,
    write_chart,
)
from feedwise.evidence.policies import (
    FixedSlotPolicy,
    LambdaPolicy,
    NoAdsPolicy,
    RevenueGreedyPolicy,
)
from feedwise.evidence.simulator import (
    ORGANIC,
    CandidateBatch,
    Simulator,
    SimulatorConfig,
    plan_batch,
)
from feedwise.feed.types import Feed

SMALL = {"n_users": 400, "n_days": 8, "n_items": 300, "n_candidates": 60, "n_ads": 20}


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return Simulator(SimulatorConfig(**SMALL))


@pytest.fixture(scope="module")
def results(sim):
    pols = [NoAdsPolicy(), FixedSlotPolicy(5), FixedSlotPolicy(3), RevenueGreedyPolicy(),
            LambdaPolicy(0.003), LambdaPolicy(1000.0)]
    return {p.name: sim.run(p, seed=1) for p in pols}


def test_same_seed_same_result(sim, results):
    again = sim.run(FixedSlotPolicy(5), seed=1)
    assert again.metrics == results["fixed-every-5"].metrics
    other = sim.run(FixedSlotPolicy(5), seed=2)
    assert other.metrics != results["fixed-every-5"].metrics


def test_no_ads_shows_no_ads_and_has_no_revenue(results):
    m = results["no-ads"].metrics
    assert m["ad_load"] == 0 and m["revenue"] == 0
    assert 1 <= m["session_depth"] <= 20
    assert 0 < m["d1_return"] <= 1 and 0 < m["d7_return"] <= 1


def test_more_ads_cost_attention_and_return(results):
    none, f5, f3, greedy = (results[k].metrics for k in
                            ("no-ads", "fixed-every-5", "fixed-every-3", "revenue-greedy"))
    assert none["session_depth"] > f5["session_depth"] > f3["session_depth"] \
        > greedy["session_depth"]
    assert none["d7_return"] > f5["d7_return"] > greedy["d7_return"]
    assert f3["ad_load"] > f5["ad_load"] > 0
    assert f5["hide_rate"] > none["hide_rate"]
    assert f5["revenue"] > 0 and 0 < f5["ad_ctr"] < 0.2


def test_large_lambda_shows_no_ads(results):
    assert results["feedwise-net-lambda-1000"].metrics["ad_load"] == 0
    assert results["feedwise-net-lambda-0.003"].metrics["ad_load"] > 0


def test_annoyance_lowers_depth_when_ads_cost_more():
    base = Simulator(SimulatorConfig(**SMALL)).run(FixedSlotPolicy(3), seed=0).metrics
    harsh = Simulator(SimulatorConfig(**SMALL, annoyance_cost=3.0)).run(
        FixedSlotPolicy(3), seed=0).metrics
    assert harsh["session_depth"] < base["session_depth"]


def _batch(sim: Simulator, n: int = 20) -> CandidateBatch:
    rng = np.random.default_rng(0)
    B, A = 50, sim.config.n_ads
    from datetime import UTC, datetime
    return CandidateBatch(np.arange(B), n, rng.integers(0, 300, (B, n)), rng.random((B, n)),
                          rng.uniform(0.001, 0.01, (B, A)), rng.uniform(0, 0.05, (B, A)),
                          rng.random((B, A)), rng.random((B, A)) < 0.5,
                          rng.exponential(1.0, B), datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize("policy", [FixedSlotPolicy(4), RevenueGreedyPolicy(),
                                    LambdaPolicy(0.002), LambdaPolicy(0.002, rule="engine",
                                                                      displaced_weight=1.0)])
def test_plans_respect_eligibility_and_guardrails(sim, policy):
    b = _batch(sim)
    plan = policy.compose_batch(b)
    assert plan.shape == (len(b), b.n_slots)
    for r in range(len(b)):
        ads = plan[r][plan[r] != ORGANIC]
        assert len(set(ads)) == len(ads)                 # no ad repeated in a feed
        assert b.ad_eligible[r, ads].all()
        if isinstance(policy, LambdaPolicy | RevenueGreedyPolicy):
            pos = np.flatnonzero(plan[r] != ORGANIC)
            assert len(pos) <= int(policy.max_ad_load * b.n_slots + 1e-9)
            assert (pos >= policy.first_ad_slot).all()
            assert (np.diff(pos) > policy.min_gap).all()


def test_lambda_is_monotone_in_ad_count(sim):
    b = _batch(sim)
    counts = [(LambdaPolicy(lam).compose_batch(b) != ORGANIC).sum()
              for lam in (0.0, 0.001, 0.003, 0.01, 1.0)]
    assert counts == sorted(counts, reverse=True)
    assert counts[-1] == 0


def test_per_request_compose_matches_the_batch(sim):
    b = _batch(sim)
    pol = LambdaPolicy(0.002)
    feed = pol.compose(b.request(3))
    assert isinstance(feed, Feed) and len(feed) == b.n_slots
    assert [s.kind == "ad" for s in feed.slots] == list(pol.compose_batch(b)[3] != ORGANIC)

    class PerRequestOnly:  # a policy with only the `compose` contract
        def compose(self, request):
            return pol.compose(request)

    assert (plan_batch(PerRequestOnly(), b) == pol.compose_batch(b)).all()


def test_config_from_file(tmp_path):
    f = tmp_path / "sim.yaml"
    f.write_text("n_users: 123\nannoyance_half_life_hours: 2\n")
    cfg = SimulatorConfig.from_file(f)
    assert cfg.n_users == 123 and cfg.annoyance_half_life_hours == 2 and cfg.n_slots == 20
    g = tmp_path / "sim.json"
    g.write_text(json.dumps({"n_user": 5}))
    with pytest.raises(ConfigError, match="n_user"):
        SimulatorConfig.from_file(g)
    with pytest.raises(ConfigError):
        SimulatorConfig.from_file(tmp_path / "missing.yaml")


def test_frontier_sweep_pareto_and_recommendation(sim, tmp_path):
    pols = baseline_policies((5, 3)) + lambda_policies((0.002, 0.01, 0.05, 0.2),
                                                       ((0.25, 1, 1),))
    df = sweep(sim, pols, seed=0)
    assert len(df) == len(pols)
    assert df["pareto"].any()
    # the single best row on any one metric cannot be dominated
    assert bool(df.loc[df["revenue_per_user"].idxmax(), "pareto"])
    assert bool(df.loc[df["session_depth"].idxmax(), "pareto"])
    rec = recommend(df, budget=0.05)
    if rec is not None:
        ref = df[df["policy"] == "no-ads"].iloc[0]
        assert rec["session_depth"] >= 0.95 * ref["session_depth"]
        assert rec["d7_return"] >= 0.95 * ref["d7_return"]
        assert rec["revenue_per_user"] > 0
    m = match_baseline(df, "fixed-every-3")
    if m is not None:
        base = df[df["policy"] == "fixed-every-3"].iloc[0]
        assert m["session_depth"] >= base["session_depth"]
    with pytest.raises(ConfigError):
        recommend(df, reference="nope")
    html = tmp_path / "f.html"
    write_chart(frontier_figure(df, rec), html)
    text = html.read_text()
    assert 'src="https://cdn.plot.ly' not in text and len(text) > 1_000_000  # js bundled


def test_sweep_over_several_seeds_averages_each_policy(sim):
    pols = [FixedSlotPolicy(4), LambdaPolicy(0.005, first_ad_slot=1, min_gap=1)]
    one = [sweep(sim, pols, seed=s) for s in (0, 1)]
    both = sweep(sim, pols, seed=[0, 1])
    assert (both["seeds"] == 2).all() and (one[0]["seeds"] == 1).all()
    for m in ("revenue_per_user", "session_depth", "d7_return", "ad_load"):
        np.testing.assert_allclose(both[m], (one[0][m] + one[1][m]) / 2)
    np.testing.assert_allclose(both["sessions"], one[0]["sessions"] + one[1]["sessions"])
    # the seeds really differ, so the average is not just one of them
    assert not np.allclose(one[0]["revenue_per_user"], one[1]["revenue_per_user"])
    with pytest.raises(ConfigError, match="at least one seed"):
        sweep(sim, pols, seed=[])


def test_pareto_mask():
    import pandas as pd
    df = pd.DataFrame({"revenue_per_user": [1, 2, 1, 0], "session_depth": [5, 4, 4, 6],
                       "d7_return": [0.5, 0.5, 0.4, 0.6]})
    assert pareto_mask(df).tolist() == [True, True, False, True]
