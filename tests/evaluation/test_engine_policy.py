"""The real FeedEngine played in the attention simulator."""

from __future__ import annotations

import numpy as np
import pytest

from feedwise.evidence.engine_policy import simulated_engine
from feedwise.evidence.frontier import sweep
from feedwise.evidence.simulator import ORGANIC, CandidateBatch, Simulator, SimulatorConfig
from feedwise.feed.config import FeedConfig

SMALL = {"n_users": 60, "n_days": 2, "n_items": 200, "n_candidates": 40, "n_ads": 10}


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return Simulator(SimulatorConfig(**SMALL))


def _batch(sim: Simulator) -> CandidateBatch:
    from datetime import UTC, datetime
    rng = np.random.default_rng(0)
    B, A, n = 5, sim.config.n_ads, 20
    elig = np.ones((B, A), bool)
    elig[:, :5] = False
    return CandidateBatch(np.arange(B), n, rng.integers(0, 200, (B, n)), rng.random((B, n)),
                          rng.uniform(0.002, 0.01, (B, A)), rng.uniform(0, 0.05, (B, A)),
                          rng.random((B, A)), elig, np.zeros(B),
                          datetime(2026, 1, 5, 9, tzinfo=UTC))


def test_engine_composes_under_its_guardrails_and_eligibility(sim):
    pol = simulated_engine(sim, FeedConfig(ux_lambda=0.0, max_ad_load=0.25, first_ad_slot=2,
                                           min_ad_gap=2))
    b = _batch(sim)
    for r in range(len(b)):
        feed = pol.compose(b.request(r))
        ads = [k for k, s in enumerate(feed.slots) if s.kind == "ad"]
        assert 0 < len(ads) <= 5 and ads[0] >= 2 and np.all(np.diff(ads) > 2)
        ad_cols = [int(feed.slots[k].item_id.removeprefix("ad")) for k in ads]
        assert all(b.ad_eligible[r, j] for j in ad_cols)
    assert pol.engine.book.active.all()           # eligibility switched back after compose


def test_engine_lambda_trades_ads_for_experience(sim):
    pols = [simulated_engine(sim, FeedConfig(ux_lambda=lam)) for lam in (0.0, 10.0)]
    df = sweep(sim, pols, seed=0)
    assert list(df["family"]) == ["feedengine", "feedengine"]
    assert df["ad_load"].iloc[0] > 0 and df["ad_load"].iloc[1] == 0
    assert df["session_depth"].iloc[1] > df["session_depth"].iloc[0]
    b = _batch(sim)
    plan = np.array([[s.kind == "ad" for s in pols[1].compose(b.request(r)).slots]
                     for r in range(len(b))])
    assert not plan.any() and ORGANIC == -1


@pytest.mark.parametrize(("param", "value"), [("ad_base_cost", -1.0),
                                              ("annoyance_cost", float("nan")),
                                              ("ad_base_cost", float("inf"))])
def test_engine_ux_cost_settings_must_be_finite_and_non_negative(sim, param, value):
    # a negative or NaN UX cost used to be accepted and turned the λ rule upside down
    from feedwise.errors import ConfigError

    with pytest.raises(ConfigError, match=param):
        simulated_engine(sim, **{param: value})


def test_engine_policy_replays_the_same_seed(sim):
    # the engine keeps cross-request state (exposure, spend); a second run with the same
    # policy object and seed must still give the same metrics
    pol = simulated_engine(sim, FeedConfig(ux_lambda=0.001))
    a = sim.run(pol, seed=4).metrics
    b = sim.run(pol, seed=4).metrics
    assert {k: v for k, v in a.items() if v == v} == {k: v for k, v in b.items() if v == v}
