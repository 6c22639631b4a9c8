"""RP3beta's value weighting, and models saved before a parameter existed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from feedwise.errors import ConfigError
from feedwise.interactions import Interactions
from feedwise.models import Recommender, RP3beta
from feedwise.models.base import binary
from feedwise.testing import contract_data


def _valued() -> Interactions:
    data = contract_data()
    m = data.matrix.copy()
    m.data = np.random.default_rng(2).integers(1, 50, m.nnz).astype(np.float32)  # play counts
    return data.with_matrix(m, data.last_ts)


def test_value_power_zero_is_the_plain_walk_and_values_change_it() -> None:
    data = _valued()
    plain = RP3beta(k=20, value_power=0.0).fit(data)
    ones = RP3beta(k=20).fit(data.with_matrix(binary(data.matrix), data.last_ts))
    np.testing.assert_allclose(plain.weights_.toarray(), ones.weights_.toarray())
    valued = RP3beta(k=20).fit(data)
    assert not np.allclose(valued.weights_.toarray(), plain.weights_.toarray())
    with pytest.raises(ConfigError, match="value_power"):
        RP3beta(value_power=-0.5).fit(data)


def test_a_model_saved_before_value_power_loads_as_it_was_fitted(tmp_path) -> None:
    data = _valued()
    users = list(data.user_ids)[:6]
    old = RP3beta(k=20, value_power=0.0).fit(data)  # what every RP3beta was before
    old.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    del meta["params"]["value_power"]  # as written before the parameter existed
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    back = Recommender.load(tmp_path / "m")
    assert back.value_power == 0.0
    assert ([list(r.ids) for r in back.recommend(users, 5)]
            == [list(r.ids) for r in old.recommend(users, 5)])


def test_explanation_names_the_item_with_the_largest_share_of_the_score() -> None:
    import scipy.sparse as sp

    data = _valued()
    model = RP3beta(k=20).fit(data)
    a, b, c, n = 0, 1, 2, data.n_items
    model.weights_ = sp.csr_matrix(([1.0, 1.5], ([a, b], [c, c])), shape=(n, n),
                                   dtype=np.float32)
    history = sp.csr_matrix(([50.0, 1.0], ([0, 0], [a, b])), shape=(1, n))
    [[reason]] = model._explain(history, [np.array([c])])
    assert reason == f"because you liked {model.item_labels_[a]}"
    model.value_power = 0.0  # one per interaction: the larger weight wins
    [[reason]] = model._explain(history, [np.array([c])])
    assert reason == f"because you liked {model.item_labels_[b]}"
