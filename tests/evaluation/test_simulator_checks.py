"""Edge cases of the attention simulator: bad settings, bad seeds and bad policy plans fail
with clear errors instead of crashing deep inside a run or silently skewing the metrics."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from feedwise.errors import ConfigError
from feedwise.evidence.policies import FixedSlotPolicy, NoAdsPolicy
from feedwise.evidence.simulator import (
    ORGANIC,
    Simulator,
    SimulatorConfig,
    plan_from_feed,
)
from feedwise.feed.types import Feed, FeedRequest, Slot

TINY = {"n_users": 30, "n_days": 2, "n_items": 100, "n_candidates": 30, "n_ads": 5}


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return Simulator(SimulatorConfig(**TINY))


# ----------------------------------------------------------------------------- config


def test_fewer_candidates_than_slots_is_a_config_error(tmp_path):
    # used to crash mid-run with "IndexError: index 5 is out of bounds for axis 1"
    with pytest.raises(ValueError, match="n_candidates"):
        SimulatorConfig(**{**TINY, "n_candidates": 5})
    f = tmp_path / "sim.yaml"
    f.write_text("n_candidates: 10\nn_slots: 20\n")
    with pytest.raises(ConfigError, match="n_candidates") as e:
        SimulatorConfig.from_file(f)
    assert str(e.value).startswith(f"{f}: n_candidates (10) must be at least n_slots (20)")
    SimulatorConfig(**{**TINY, "n_candidates": 20})      # as many as slots is fine


def test_sessions_of_a_day_must_end_before_the_next_day():
    # 3 sessions 20 h apart put the last one at 40 h, after the next day's first (24 h):
    # the time gap went negative and annoyance grew instead of decaying
    with pytest.raises(ValueError, match="session_gap_hours"):
        SimulatorConfig(**TINY, max_sessions_per_day=3, session_gap_hours=20.0)
    SimulatorConfig(**TINY, max_sessions_per_day=1, session_gap_hours=30.0)  # one a day: ok
    SimulatorConfig(**TINY, max_sessions_per_day=3, session_gap_hours=11.5)


@pytest.mark.parametrize(("param", "value"), [
    ("engage_intercept", math.nan), ("sat_reference", math.nan), ("ad_ctr_quality", math.nan),
    ("patience_mean", math.inf), ("sat_reference", math.inf), ("cpc_bid_mean", math.inf),
    ("annoyance_half_life_hours", math.nan)])
def test_nan_and_inf_parameters_are_rejected(param, value):
    # a NaN sat_reference used to make every P(return) NaN: nobody came back, silently
    with pytest.raises(ValueError, match=param):
        SimulatorConfig(**TINY, **{param: value})


def test_infinite_half_lives_mean_no_decay():
    cfg = SimulatorConfig(**TINY, annoyance_half_life_hours=math.inf,
                          blindness_half_life_days=math.inf)
    m = Simulator(cfg).run(FixedSlotPolicy(4), seed=0).metrics
    assert all(math.isfinite(m[k]) for k in ("session_depth", "revenue", "d1_return"))


def test_negative_world_seed_is_a_config_error():
    # used to fail in numpy with "expected non-negative integer", naming nothing
    with pytest.raises(ValueError, match="world_seed"):
        SimulatorConfig(**TINY, world_seed=-1)


def test_simulator_needs_a_simulator_config():
    with pytest.raises(ConfigError, match="SimulatorConfig"):
        Simulator({"n_users": 5})  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("seed", [-1, 1.5, "1", None])
def test_run_seed_must_be_a_non_negative_integer(sim, seed):
    with pytest.raises(ConfigError, match="seed"):
        sim.run(NoAdsPolicy(), seed=seed)  # type: ignore[arg-type]


def test_numpy_integer_seed_reproduces_the_int_seed(sim):
    a = sim.run(FixedSlotPolicy(4), seed=3).metrics
    b = sim.run(FixedSlotPolicy(4), seed=np.int64(3)).metrics
    assert {k: v for k, v in a.items() if v == v} == {k: v for k, v in b.items() if v == v}


# ----------------------------------------------------------------------------- plans


class _Plan:
    """A policy that puts ``value`` in slot 2 of every feed."""

    def __init__(self, value: float, dtype: type = np.int64) -> None:
        self.value, self.dtype = value, dtype

    def compose_batch(self, batch):
        plan = np.full((len(batch), batch.n_slots), ORGANIC, dtype=self.dtype)
        plan[:, 2] = self.value
        return plan


class _IneligibleAd:
    def compose_batch(self, batch):
        plan = np.full((len(batch), batch.n_slots), ORGANIC, dtype=np.int64)
        b, j = np.argwhere(~batch.ad_eligible)[0]
        plan[b, 2] = j
        return plan


@pytest.mark.parametrize(("policy", "match"), [
    (_Plan(99), "ad column 99"),          # used to crash with a bare IndexError
    (_Plan(-5), "-5"),                    # used to be played as an organic post
    (_Plan(0.7, float), "integer"),       # used to be truncated to ad 0
    (_IneligibleAd(), "not eligible")])   # used to be shown and paid for
def test_bad_plans_are_config_errors(sim, policy, match):
    with pytest.raises(ConfigError, match=match):
        sim.run(policy, seed=0)


def test_plan_from_feed_rejects_ad_ids_it_cannot_map():
    req = FeedRequest(user_id="u", n=2, now=datetime(2026, 1, 5, tzinfo=UTC))
    feed = Feed(req, (Slot("post1"), Slot("banner-7", kind="ad")))
    with pytest.raises(ConfigError, match="banner-7"):
        plan_from_feed(feed, 2)
