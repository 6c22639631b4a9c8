"""The notification simulator: no cap or quiet-hour breach over random worlds and rules
(property test), equal counts across policies, and send-time optimisation ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedwise.errors import NotFittedError
from feedwise.evidence.notify_sim import POLICIES, compare, make_world, simulate
from feedwise.notifications import NotificationRules, SendTimeBandit, violations


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(5, 40),
       policy=st.sampled_from(POLICIES), quiet=st.tuples(st.integers(0, 23), st.integers(0, 23)),
       max_per_day=st.integers(1, 3), gap=st.sampled_from([0.0, 1.0, 4.0, 9.0]),
       missing=st.sampled_from([0.0, 0.3]))
def test_no_cap_or_quiet_hour_violation_in_random_worlds(seed, n, policy, quiet, max_per_day,
                                                         gap, missing):
    start, end = quiet
    if (end - start) % 24 > 20:  # leave at least a few open hours
        end = (start + 10) % 24
    rules = NotificationRules(quiet_start=start, quiet_end=end, max_per_day=max_per_day,
                              min_gap_hours=gap)
    world = make_world(n, seed, missing_zone_rate=missing, events_per_user=10)
    out = simulate(world, policy, days=4, rules=rules, seed=seed)
    assert out["violations"] == 0, out["violation_rows"].head()
    log = out["log"]
    assert not rules.quiet(log["local_hour"]).any()
    assert log.groupby(["user_id", "local_day"]).size().max() <= max_per_day
    assert out["sends"] > 0


def test_the_violation_checker_catches_breaches():
    rules = NotificationRules(quiet_start=22, quiet_end=8, max_per_day=1, min_gap_hours=4)
    sends = pd.DataFrame({"user_id": ["a", "a", "b"], "ts_s": [0.0, 3600.0, 0.0],
                          "local_hour": [9, 10, 23], "local_day": [1, 1, 1]})
    v = violations(sends, rules)
    assert set(v["rule"]) == {"quiet_hours", "max_per_day", "min_gap"}


def test_policies_send_equal_counts_and_sendtime_opens_most():
    world = make_world(200, seed=5)
    df = compare(world, days=8, seed=5).set_index("policy")
    assert df["sends"].nunique() == 1 and (df["violations"] == 0).all()
    assert df.loc["sendtime", "expected_opens"] > 1.15 * df.loc["global_hour", "expected_opens"]
    assert df.loc["sendtime", "expected_opens"] > 1.3 * df.loc["random_hour", "expected_opens"]


def test_bandit_contract_learning_propensities_and_round_trip(tmp_path):
    act = pd.DataFrame({"user_id": ["a"] * 2 + ["b"], "local_hour": [9, 20, 13],
                        "n": [1.0, 30.0, 5.0]})
    with pytest.raises(NotFittedError):
        SendTimeBandit().expected(["a"])
    b = SendTimeBandit(n_draws=300, seed=1).fit(act)
    assert b.expected(["a"])[0].argmax() == 20
    allowed = np.zeros(24, bool)
    allowed[[9, 13, 20]] = True
    hours, prop = b.choose(["a", "b", "zz"], allowed)
    assert set(hours) <= {9, 13, 20} and ((prop > 0) & (prop <= 1)).all()
    # the logged propensity matches how often the hour is chosen
    rng = np.random.default_rng(0)
    picks = np.array([b.choose(["a"], allowed, rng)[0][0] for _ in range(150)])
    h, p = b.choose(["a"], allowed, np.random.default_rng(1))
    assert abs((picks == h[0]).mean() - p[0]) < 0.1
    # opens move the posterior
    b.update(["a"] * 40, [9] * 40, [True] * 40)
    assert b.expected(["a"])[0].argmax() == 9
    b.save(tmp_path / "bandit")
    again = SendTimeBandit.load(tmp_path / "bandit")
    assert np.allclose(again.expected(["a", "zz"]), b.expected(["a", "zz"]))
    assert not (tmp_path / "bandit.pkl").exists()
    assert again.forget_user("a") and not again.forget_user("a")
    none = np.zeros(24, bool)
    assert b.choose(["a"], none)[0][0] == -1
