"""Per-user ad tolerance, the observed-only history the simulator hands policies, and the
λ policy against fixed ad slots at matched user experience."""

from __future__ import annotations

import numpy as np
import pytest

from feedwise.evidence.policies import AdTolerance, FixedSlotPolicy, LambdaPolicy
from feedwise.evidence.simulator import (
    HISTORY_FIELDS,
    CandidateBatch,
    Simulator,
    SimulatorConfig,
)


def _hist(**kw) -> dict[str, np.ndarray]:
    n = len(next(iter(kw.values())))
    base = {k: np.zeros(n) for k in ("ads_seen", "ad_hides", "sessions", "full_sessions")}
    base.update({k: np.asarray(v, float) for k, v in kw.items()})
    return base


def test_tolerance_is_one_without_history():
    t = AdTolerance()
    assert (t.multiplier({}, 3) == 1).all()
    h = _hist(sessions=[0, 0], ads_seen=[0, 0])
    assert (t.multiplier(h, 2) == 1).all()


def test_tolerance_follows_hides_and_full_sessions():
    t = AdTolerance(min_pool=10**9)          # use the default population priors
    h = _hist(sessions=[10, 10, 10, 10], ads_seen=[40, 40, 40, 40],
              ad_hides=[1.2, 8, 0, 1.2], full_sessions=[1, 1, 1, 8])
    m = t.multiplier(h, 4)
    assert m[0] == pytest.approx(1.0, abs=0.05)     # at the population rates
    assert m[1] > 1.5                               # hides ads a lot: ads cost more
    assert m[2] < 1.0                               # never hides: cheaper
    assert m[3] < 0.5                               # reads to the feed's end: cheaper
    assert ((m >= t.lo) & (m <= t.hi)).all()


def test_tolerance_shrinks_small_samples_toward_the_prior():
    t = AdTolerance(min_pool=10**9)
    one = t.multiplier(_hist(sessions=[1], ads_seen=[2], ad_hides=[1]), 1)[0]
    many = t.multiplier(_hist(sessions=[50], ads_seen=[200], ad_hides=[100]), 1)[0]
    assert 1.0 < one < many


def test_simulator_hands_policies_observed_history_only():
    sim = Simulator(SimulatorConfig(n_users=200, n_items=300, n_candidates=60, n_ads=20))
    seen: list[dict[str, np.ndarray]] = []

    class Spy(FixedSlotPolicy):
        def compose_batch(self, batch: CandidateBatch) -> np.ndarray:
            seen.append({k: v.copy() for k, v in batch.history.items()})
            return super().compose_batch(batch)

    res = sim.run(Spy(4), seed=0)
    assert set(seen[0]) == set(HISTORY_FIELDS)
    assert all((v == 0).all() for k, v in seen[0].items() if k not in ("active_days",
                                                                       "days_observed"))
    last = seen[-1]
    assert (last["ads_seen"] >= last["ad_clicks"]).all()
    assert (last["sessions"] >= last["full_sessions"] + last["ad_exits"]).all()
    assert last["ads_seen"].sum() > 0 and last["sessions"].max() > 1
    # nothing in it that the platform could not log (no latent interests, sensitivity, ...)
    assert not {"sensitivity", "interests", "annoyance", "blindness", "patience"} & set(last)
    assert res.metrics["sessions"] > last["sessions"].sum()    # history precedes requests


def test_history_travels_through_the_per_request_contract():
    sim = Simulator(SimulatorConfig(n_users=120, n_items=300, n_candidates=60, n_ads=20))
    pol = LambdaPolicy(0.004, first_ad_slot=1, min_gap=1, tolerance=AdTolerance(min_pool=1))
    batches: list[CandidateBatch] = []

    class Keep(LambdaPolicy):
        def compose_batch(self, batch):
            batches.append(batch)
            return super().compose_batch(batch)

    sim.run(Keep(0.004), seed=0)
    b = batches[-1]
    r = b.request(0)
    back = CandidateBatch.from_request(r)
    assert set(back.history) == set(HISTORY_FIELDS)
    assert back.history["sessions"][0] == b.history["sessions"][0]
    assert len(pol.compose(r)) == b.n_slots


def _matched_ratio(sim: Simulator, seed: int, lams) -> float:
    fixed = [sim.run(FixedSlotPolicy(k), seed=seed).metrics for k in (5, 4, 3)]
    base = max(fixed, key=lambda m: m["revenue_per_user"])
    best = 0.0
    for lam in lams:
        m = sim.run(LambdaPolicy(lam, first_ad_slot=1, min_gap=1), seed=seed).metrics
        if (m["session_depth"] >= base["session_depth"]
                and m["d7_return"] >= base["d7_return"]):
            best = max(best, m["revenue_per_user"])
    return best / base["revenue_per_user"]


@pytest.mark.parametrize("seed", [0, 2])
def test_lambda_policy_beats_best_fixed_slots_at_matched_experience(seed):
    # the acceptance comparison in small: the best λ setting with depth and D7 at least
    # those of the best-earning fixed-slot policy must earn more than it
    sim = Simulator(SimulatorConfig(n_users=3000))
    ratio = _matched_ratio(sim, seed, (0.004, 0.005, 0.006, 0.008))
    assert ratio > 1.0, ratio
