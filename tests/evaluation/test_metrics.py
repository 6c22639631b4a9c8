"""Ranking metrics against hand-computed examples, and the splits' invariants."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from feedwise.evaluation import evaluate, last_n_split, random_split, temporal_split
from feedwise.evaluation import metrics as M
from feedwise.interactions import Interactions
from feedwise.models import ItemKNN, Popularity

# user 0: relevant {1, 3, 7}; recommended [1, 2, 3, 4] -> hits at ranks 1 and 3
# user 1: relevant {5};       recommended [0, 5, -1, -1] (short list) -> hit at rank 2
RECS = np.array([[1, 2, 3, 4], [0, 5, -1, -1]])
TRUTH = sp.csr_matrix(([1, 1, 1, 1], ([0, 0, 0, 1], [1, 3, 7, 5])), shape=(2, 8))
N_REL = np.array([3, 1])


def test_hits() -> None:
    assert M.hits_matrix(RECS, TRUTH).tolist() == [[True, False, True, False],
                                                   [False, True, False, False]]


def test_hand_computed_values() -> None:
    hits = M.hits_matrix(RECS, TRUTH)
    np.testing.assert_allclose(M.precision(hits, N_REL), [2 / 4, 1 / 4])
    np.testing.assert_allclose(M.recall(hits, N_REL), [2 / 3, 1 / 1])
    np.testing.assert_allclose(M.hit_rate(hits, N_REL), [1, 1])
    np.testing.assert_allclose(M.mrr(hits, N_REL), [1, 1 / 2])
    np.testing.assert_allclose(M.average_precision(hits, N_REL), [(1 / 1 + 2 / 3) / 3, (1 / 2) / 1])
    dcg0 = 1 / math.log2(2) + 1 / math.log2(4)
    idcg0 = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    np.testing.assert_allclose(M.ndcg(hits, N_REL), [dcg0 / idcg0, (1 / math.log2(3)) / 1])


def test_beyond_accuracy() -> None:
    assert M.coverage(RECS, 8) == pytest.approx(6 / 8)  # items 0..5 appear
    pop = np.array([8, 4, 2, 1, 1, 1, 1, 1])
    # p(i) = pop / n_users; novelty = mean -log2 p over the 6 recommended items
    expect = np.mean(-np.log2(pop[[1, 2, 3, 4, 0, 5]] / 8))
    assert M.novelty(RECS, pop, 8) == pytest.approx(expect)
    vecs = np.eye(8)  # orthogonal items: every pair at distance 1
    assert M.intra_list_diversity(RECS, vecs) == pytest.approx(1.0)
    same = np.ones((8, 2))
    assert M.intra_list_diversity(RECS, same) == pytest.approx(0.0, abs=1e-9)


def _data(n_users=40, n_items=30, seed=0) -> Interactions:
    rng = np.random.default_rng(seed)
    rows = [(f"u{u}", f"i{i}", 1.0, 1_700_000_000 + int(rng.integers(0, 10**6)))
            for u in range(n_users) for i in rng.choice(n_items, size=int(rng.integers(1, 12)),
                                                        replace=False)]
    return Interactions.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "weight",
                                                               "ts"]))


def test_random_split_is_stratified_and_seeded() -> None:
    d = _data()
    s = random_split(d, 0.75, seed=42)
    assert s.train.nnz + s.test.nnz == d.nnz
    assert (s.train.matrix.multiply(s.test.matrix)).nnz == 0  # disjoint
    per_user = np.diff(d.matrix.indptr)
    train_u = np.diff(s.train.matrix.indptr)
    test_u = np.diff(s.test.matrix.indptr)
    assert np.all(train_u >= 1)
    assert np.all(test_u[per_user >= 2] >= 1)
    assert np.all(np.abs(train_u - np.round(per_user * 0.75)) <= 1)
    again = random_split(d, 0.75, seed=42)
    assert (again.test.matrix != s.test.matrix).nnz == 0
    other = random_split(d, 0.75, seed=7)
    assert (other.test.matrix != s.test.matrix).nnz > 0


def test_temporal_and_last_n_splits() -> None:
    d = _data()
    s = temporal_split(d, test_fraction=0.25)
    assert s.train.last_ts.data.max() < s.test.last_ts.data.min()
    assert abs(s.test.nnz / d.nnz - 0.25) < 0.05
    ln = last_n_split(d, 1)
    for r in range(d.n_users):
        if d.matrix[r].nnz > 1:
            t_test = ln.test.last_ts[r].data
            assert len(t_test) == 1 and t_test[0] >= ln.train.last_ts[r].data.max()


def test_evaluate_table_and_personalisation_wins(ml100k_interactions) -> None:
    split = random_split(ml100k_interactions, 0.75, seed=42)
    pop = evaluate(Popularity(), split, 10).set_index("metric")["value"]
    knn = evaluate(ItemKNN(k=50), split, 10).set_index("metric")["value"]
    assert set(pop.index) >= {"precision", "recall", "map", "ndcg", "hit_rate", "mrr",
                              "coverage", "novelty", "diversity"}
    assert pop["users"] == 943
    assert knn["ndcg"] > pop["ndcg"] + 0.1
    assert knn["coverage"] > pop["coverage"]


def test_items_outside_the_split_count_as_misses() -> None:
    from feedwise.evaluation import recommend_matrix

    d = _data()
    wide_ids = np.r_[d.item_ids, ["brand-new-1", "brand-new-2"]].astype(object)
    wide = Interactions.from_frame(d.to_frame().assign(ts=1.7e9), item_ids=wide_ids)
    model = Popularity().fit(wide)
    recs = recommend_matrix(model, list(d.user_ids[:3]), 5, d.item_index)
    assert recs.max() < d.n_items  # never a column of the wider catalogue
    split = random_split(d, 0.75, seed=1)
    table = evaluate(model, split, 5, fit=False).set_index("metric")["value"]
    assert 0 <= table["ndcg"] <= 1


def test_a_repeated_item_is_not_a_second_hit() -> None:
    # user 0: relevant {1}; recommended [1, 1, 2]: one hit, not two
    recs = np.array([[1, 1, 2]])
    truth = sp.csr_matrix(([1], ([0], [1])), shape=(1, 4))
    hits = M.hits_matrix(recs, truth)
    assert hits.tolist() == [[True, False, False]]
    n_rel = np.array([1])
    assert M.recall(hits, n_rel)[0] == pytest.approx(1.0)
    assert M.ndcg(hits, n_rel)[0] == pytest.approx(1.0)
    assert M.average_precision(hits, n_rel)[0] == pytest.approx(1.0)


def test_relevant_items_are_the_positive_entries_hits_count() -> None:
    # an explicit 0 in the truth is neither a hit nor a relevant item to be recalled
    truth = sp.csr_matrix((np.array([1.0, 0.0, 2.0, 0.0]), np.array([0, 1, 2, 1]),
                           np.array([0, 3, 4])), shape=(2, 3))  # zeros stored explicitly
    assert truth.nnz == 4
    assert M.n_relevant(truth).tolist() == [2, 0]
    hits = M.hits_matrix(np.array([[0, 2, 1], [1, 0, 2]]), truth)
    np.testing.assert_allclose(M.recall(hits, M.n_relevant(truth))[0], 1.0)
