"""NormEASE: EASE on a degree-normalised (and optionally temporal) Gram matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feedwise.errors import ConfigError
from feedwise.interactions import Interactions
from feedwise.models import EASE, NormEASE, Recommender
from feedwise.testing import RecommenderContract


class TestNormEASE(RecommenderContract):
    def make_model(self) -> Recommender:
        return NormEASE(l2=0.5, window=5, min_support=1)


def _frame() -> Interactions:
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}", float(t)) for t, (u, i) in enumerate(
        zip(rng.integers(0, 40, 400), rng.integers(0, 15, 400), strict=True))]
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "ts"]).drop_duplicates(
        ["user_id", "item_id"])
    return Interactions.from_frame(df, weight=None)


def test_without_normalisation_it_is_plain_ease() -> None:
    data = _frame()
    x = data.matrix
    ridge = 0.7 * float(np.mean(np.asarray((x > 0).sum(axis=0)).ravel()))
    plain = EASE(l2=ridge, dropout=0.25, min_support=1).fit(data)
    norm = NormEASE(l2=0.7, dropout=0.25, user_norm=0.0, item_norm=0.0, pop_boost=0.0,
                    temporal=0.0, min_support=1).fit(data)
    np.testing.assert_allclose(norm.weights_, plain.weights_, atol=1e-5)


def test_normalisation_changes_the_weights_and_folds_into_them() -> None:
    data = _frame()
    a = NormEASE(l2=0.7, temporal=0.0, min_support=1).fit(data)
    b = NormEASE(l2=0.7, temporal=0.0, user_norm=0.0, item_norm=0.0, pop_boost=0.0,
                 min_support=1).fit(data)
    assert not np.allclose(a.weights_, b.weights_)
    # served scores are x_u B': the folded weights, no extra state
    s = a._score_rows(np.arange(3))
    np.testing.assert_allclose(s, (data.matrix[:3] > 0).astype(np.float32) @ a.weights_,
                               rtol=1e-5, atol=1e-6)


def test_beats_ease_on_a_movielens_validation_split(ml100k_interactions) -> None:
    """On a validation split carved from the training part of MovieLens-100k (never the
    test part), the normalised Gram beats plain EASE."""
    from feedwise.evaluation import evaluate, random_split

    train = random_split(ml100k_interactions, 0.75, seed=42).train
    val = random_split(train, 0.75, seed=8)

    def ndcg(model: Recommender) -> float:
        t = evaluate(model, val, 10, metrics=("ndcg",), beyond=False)
        return float(t.loc[t["metric"] == "ndcg", "value"].iloc[0])

    norm, ease = ndcg(NormEASE()), ndcg(EASE())
    assert norm > ease * 1.02, (norm, ease)


def _valued() -> Interactions:
    data = _frame()
    rng = np.random.default_rng(1)
    m = data.matrix.copy()
    m.data = rng.integers(1, 6, m.nnz).astype(np.float32)  # ratings 1..5
    return data.with_matrix(m, data.last_ts)


def test_value_power_weighs_interactions_on_each_users_own_scale() -> None:
    data = _valued()
    x = NormEASE(value_power=0.5)._prepare(data.matrix)
    top = np.asarray(data.matrix.max(axis=1).toarray()).ravel()
    want = data.matrix.multiply(1.0 / top[:, None]).tocsr()
    want.data = np.sqrt(want.data)
    np.testing.assert_allclose(x.toarray(), want.toarray(), rtol=1e-6)
    # scale-free: one user's values times 10 (plays instead of ratings) change nothing
    m = data.matrix.tolil()
    m[0] = m[0] * 10.0
    scaled = data.with_matrix(m.tocsr(), data.last_ts)
    a = NormEASE(l2=0.7, min_support=1, window=5).fit(data)
    b = NormEASE(l2=0.7, min_support=1, window=5).fit(scaled)
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-4, atol=1e-6)


def test_value_power_zero_and_binary_are_one_per_interaction() -> None:
    data = _valued()
    plain = NormEASE(l2=0.7, min_support=1, window=5, value_power=0.0).fit(data)
    binary = NormEASE(l2=0.7, min_support=1, window=5, binary=True).fit(data)
    valued = NormEASE(l2=0.7, min_support=1, window=5).fit(data)
    np.testing.assert_allclose(plain.weights_, binary.weights_)
    assert not np.allclose(valued.weights_, binary.weights_)
    with pytest.raises(ConfigError, match="value_power"):
        NormEASE(value_power=-1).fit(data)


def test_explanation_names_the_item_that_contributed_most_after_weighting() -> None:
    """A 5-star item beats a 1-star one with a somewhat larger weight: the reason is the
    item whose x_ui · B_ij is largest, not the largest B_ij."""
    import scipy.sparse as sp

    data = _valued()
    model = NormEASE(l2=0.7, min_support=1, window=5).fit(data)
    a, b, c = 0, 1, 2
    w = np.zeros((data.n_items, data.n_items), dtype=np.float32)
    w[a, c], w[b, c] = 1.0, 1.5
    model.weights_ = w
    history = sp.csr_matrix(([5.0, 1.0], ([0, 0], [a, b])), shape=(1, data.n_items))
    [[reason]] = model._explain(history, [np.array([c])])
    assert reason == f"because you liked {model.item_labels_[a]}"
    model.binary = True
    [[reason]] = model._explain(history, [np.array([c])])
    assert reason == f"because you liked {model.item_labels_[b]}"
