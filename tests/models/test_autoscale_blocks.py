"""The default model's fit scores users in blocks within the memory budget: with a small
budget no step scores every user against every item at once, and the choices it makes are
those of an unconstrained budget (blocking changes the memory, not the result)."""

from __future__ import annotations

import numpy as np
import pytest
from fresh_worlds import feed_world

from feedwise.models import Auto, Fresh, NormEASE
from feedwise.models import fresh as fresh_module
from feedwise.models.base import HistoryRecommender
from feedwise.models.calibration import variants


@pytest.fixture(scope="module")
def world():
    return feed_world(n_users=60, n_authors=10, days=10, per_day=3)


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int]]:
    """Record (what, rows, items) of every dense scoring block during a fit."""
    seen: list[tuple[str, int, int]] = []
    signals = fresh_module.Fresh._signals
    score_rows = HistoryRecommender._score_rows

    def spy_signals(self, rows, hist, only=None):  # noqa: ANN001, ANN202
        n = len(rows) if rows is not None else hist.shape[0]
        seen.append(("fresh", n, self.n_items))
        return signals(self, rows, hist, only)

    def spy_rows(self, rows):  # noqa: ANN001, ANN202
        seen.append((type(self).__name__, len(rows), self.n_items))
        return score_rows(self, rows)

    monkeypatch.setattr(fresh_module.Fresh, "_signals", spy_signals)
    monkeypatch.setattr(HistoryRecommender, "_score_rows", spy_rows)
    return seen


def test_fresh_validation_scores_blocks_within_a_small_budget(world, monkeypatch) -> None:
    data, items, edges = world
    big = Fresh().fit(data, items=items, edges=edges)
    seen = _spy(monkeypatch)
    small = Fresh()
    small.memory_budget = "64KiB"  # a handful of users x 300 posts per block
    small.fit(data, items=items, edges=edges)
    users = small.validation_["users"]
    blocks = [r for what, r, _ in seen if what == "fresh"]
    assert users > 10 and blocks
    # never the validation users (let alone every user) x every item in one block
    assert max(blocks) < users <= data.n_users
    limit = small.budget() // (data.n_items * 4)
    assert max(blocks) <= max(limit, 1)
    # the same choice as with the default budget
    assert small.weights_ == big.weights_
    assert small.settings_ == big.settings_
    assert small.validation_["chosen"] == pytest.approx(big.validation_["chosen"], abs=1e-12)


def test_auto_fit_never_scores_all_users_at_once_on_a_small_budget(world,
                                                                    monkeypatch) -> None:
    data, items, edges = world
    monkeypatch.setenv("FEEDWISE_MEMORY_BUDGET", "64KiB")
    seen = _spy(monkeypatch)
    model = Auto().fit(data, items=items, edges=edges)
    assert model.choice_ in ("fresh", "hybrid") and seen
    rows = max(r for _, r, _ in seen)
    assert rows < data.n_users
    # a block of more than one user stays within the budget's users x items cells
    assert rows <= max(model.budget() // (data.n_items * 4), 1)


def test_norm_ease_variant_shares_the_fitted_weights(world) -> None:
    data, _, _ = world
    fitted = NormEASE(pop_boost=0.1).fit(data)
    derived = fitted.variant({"pop_boost": 0.25})
    # the derived setting scores as a refit would, without its own items x items copy
    assert derived._base_weights is fitted._base_weights
    rows = np.arange(data.n_users)
    refit = NormEASE(pop_boost=0.25).fit(data)
    np.testing.assert_allclose(derived._score_rows(rows), refit._score_rows(rows),
                               rtol=1e-4, atol=1e-5)
    assert len(variants("norm-ease", {})) > 1  # calibration derives such variants
