"""NormEASE: EASE on a degree-normalised (and optionally temporal) Gram matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd

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
