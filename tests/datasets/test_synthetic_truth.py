"""The generator's true engagement probability (datasets.synthetic.engagement_probability):
the upper-bound ranker of benchmarks/feed_quality.py."""

from __future__ import annotations

import numpy as np
import pytest

from feedwise.datasets.synthetic import engagement_probability, synthetic_social


@pytest.fixture(scope="module")
def shown():
    w = synthetic_social(n_users=300, n_posts=1000, n_days=4, seed=5)
    ev = w.events
    imp = ev[ev["kind"] == "impression"]
    clicks = ev[ev["kind"] == "click"][["session_id", "position"]].assign(clicked=1)
    m = imp.merge(clicks, on=["session_id", "position"], how="left")
    return w, m, m["clicked"].fillna(0).to_numpy()


def test_it_is_the_probability_the_log_was_drawn_with(shown) -> None:
    w, m, y = shown
    p = engagement_probability(w, m["user_id"], m["item_id"], m["position"])
    assert not np.isnan(p).any() and ((p > 0) & (p < 1)).all()
    # calibrated: the mean probability is the click rate (binomial sd of the mean ~3 %),
    # overall and in the top and bottom fifths
    assert p.mean() == pytest.approx(y.mean(), rel=0.08)
    hi, lo = p >= np.quantile(p, 0.8), p <= np.quantile(p, 0.2)
    assert p[hi].mean() == pytest.approx(y[hi].mean(), rel=0.12)
    assert y[lo].mean() < 0.2 * y[hi].mean()
    # the examination factor is the logged slot's
    blind = engagement_probability(w, m["user_id"], m["item_id"])
    bias = w.truth["position_bias"][m["position"].to_numpy()]
    np.testing.assert_allclose(p, blind * bias)


def test_unknown_ids_are_nan(shown) -> None:
    w, _, _ = shown
    ad = w.items.loc[w.items["kind"] == "ad", "item_id"].iloc[0]
    p = engagement_probability(w, ["u000001", "nobody", "u000001"], ["p0000001", "p0000001", ad])
    assert np.isfinite(p[0]) and np.isnan(p[1]) and np.isnan(p[2])
