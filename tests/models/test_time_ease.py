"""TimeEASE: EASE on a temporal-adjacency Gram matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from feedwise.interactions import Interactions
from feedwise.models import EASE, Recommender, TimeEASE
from feedwise.models.time_ease import temporal_gram
from feedwise.testing import RecommenderContract


class TestTimeEASE(RecommenderContract):
    def make_model(self) -> Recommender:
        return TimeEASE(l2=10.0, window=5, min_support=1)


def _frame(rows: list[tuple[str, str, float]]) -> Interactions:
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "ts"])
    return Interactions.from_frame(df, weight=None,
                                   item_ids=np.array(["a", "b", "c", "d"], dtype=object))


def test_gram_counts_neighbours_in_time_order() -> None:
    # u1 engaged a, c, b, d in that order (by time, not by id); u2 engaged d then a
    data = _frame([("u1", "a", 10), ("u1", "b", 30), ("u1", "c", 20), ("u1", "d", 40),
                   ("u2", "a", 200), ("u2", "d", 100)])
    g = temporal_gram(data.matrix, data.last_ts, window=2, decay=0.5).toarray()
    a, b, c, d = range(4)
    np.testing.assert_allclose(np.diag(g), [2, 1, 1, 2])  # users per item
    assert g[a, c] == 1.0 and g[c, b] == 1.0 and g[b, d] == 1.0  # next in time
    assert g[a, b] == 0.5 and g[c, d] == 0.5  # two apart
    assert g[a, d] == 1.0  # u2's pair; u1's a and d are three apart (outside the window)
    np.testing.assert_allclose(g, g.T)


def test_one_fixed_time_is_plain_ease() -> None:
    data = _frame([("u1", "a", 5), ("u1", "b", 5), ("u1", "c", 5), ("u2", "a", 5),
                   ("u2", "d", 5), ("u3", "b", 5), ("u3", "c", 5), ("u3", "d", 5)])
    g = temporal_gram(data.matrix, data.last_ts, window=1, decay=1.0)
    x = sp.csr_matrix(data.matrix)
    np.testing.assert_allclose(g.toarray(), (x.T @ x).toarray())
    te = TimeEASE(l2=1.0, window=1, min_support=1).fit(data)
    ease = EASE(l2=1.0, dropout=0.0, min_support=1).fit(data)
    np.testing.assert_allclose(te.weights_, ease.weights_, atol=1e-6)


def test_beats_ease_on_a_movielens_validation_split(ml100k_interactions) -> None:
    """On a validation split carved from the training part of MovieLens-100k (never the
    test part), the temporal Gram beats plain EASE's co-engagement Gram."""
    from feedwise.evaluation import evaluate, random_split

    train = random_split(ml100k_interactions, 0.75, seed=42).train
    val = random_split(train, 0.75, seed=7)

    def ndcg(model: Recommender) -> float:
        t = evaluate(model, val, 10, metrics=("ndcg",), beyond=False)
        return float(t.loc[t["metric"] == "ndcg", "value"].iloc[0])

    time_ease, ease = ndcg(TimeEASE()), ndcg(EASE(dropout=0.5))
    assert time_ease > ease * 1.02, (time_ease, ease)
