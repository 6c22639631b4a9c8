"""ANN retrieval: exact below the threshold, HNSW above it, MIPS recall, candidate source."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("hnswlib", reason="the ann extra is not installed (pip install -e '.[ann]')")

from feedwise.errors import ConfigError, DataError, NotFittedError  # noqa: E402
from feedwise.models.ann import (  # noqa: E402
    ANNIndex,
    ANNSource,
    ann_candidates,
    exact_top_k,
    recall_at_k,
)


def clustered(n: int, d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(20, d))
    items = centers[rng.integers(0, 20, n)] * 0.5 + rng.normal(size=(n, d)) * 0.5
    items *= rng.uniform(0.2, 2.0, size=(n, 1))  # unequal norms: MIPS != cosine
    queries = centers[rng.integers(0, 20, 50)] + rng.normal(size=(50, d)) * 0.5
    return items.astype(np.float32), queries.astype(np.float32)


def test_exact_top_k_matches_full_sort():
    items, q = clustered(500)
    idx, scores = exact_top_k(items, q, 10, batch_size=7)
    full = q @ items.T
    want = np.argsort(-full, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(np.sort(idx, 1), np.sort(want, 1))
    assert np.all(np.diff(scores, axis=1) <= 0)
    np.testing.assert_allclose(scores, np.take_along_axis(full, idx, 1), rtol=1e-5)


def test_below_threshold_is_exact_above_is_hnsw():
    items, q = clustered(3000)
    small = ANNIndex(threshold=5000).fit(items)
    assert small.exact_ and small.index_ is None
    big = ANNIndex(threshold=1000, ef_search=100, num_threads=1).fit(items)
    assert not big.exact_ and big.index_ is not None
    truth, _ = exact_top_k(items, q, 50)
    got_small, _ = small.search(q, 50)
    got_big, scores = big.search(q, 50)
    assert recall_at_k(got_small, truth) == 1.0
    assert recall_at_k(got_big, truth) >= 0.95
    # scores are the exact inner products of what was found, best first
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", q, items[got_big]), rtol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_inner_product_graph_beats_plain_l2_on_unequal_norms():
    """Euclidean neighbours are not the top inner products; the ip graph finds the latter."""
    items, q = clustered(2000, seed=3)
    truth, _ = exact_top_k(items, q, 20)
    l2 = np.argsort(((q[:, None, :] - items[None]) ** 2).sum(-1), axis=1)[:, :20]
    hnsw, _ = ANNIndex(threshold=0, num_threads=1).fit(items).search(q, 20)
    assert recall_at_k(hnsw, truth) > recall_at_k(l2, truth) + 0.2


def test_save_load_roundtrip(tmp_path):
    items, q = clustered(1500)
    ids = [f"item{i}" for i in range(len(items))]
    idx = ANNIndex(threshold=100, num_threads=1).fit(items, ids)
    idx.save(tmp_path / "ann")
    back = ANNIndex.load(tmp_path / "ann")
    assert not back.exact_ and back.get_params() == idx.get_params()
    a, b = idx.search(q, 10), back.search(q, 10)
    np.testing.assert_array_equal(a[0], b[0])
    lists = back.search_ids(q[:2], 5)
    assert len(lists) == 2 and all(str(i).startswith("item") for i in lists[0].ids)
    assert not (tmp_path / "ann" / "ann.pkl").exists()


def test_errors():
    with pytest.raises(NotFittedError):
        ANNIndex().search(np.zeros(4), 3)
    with pytest.raises(DataError):
        ANNIndex().fit(np.array([[np.nan, 1.0]]))
    with pytest.raises(DataError, match="dimensions"):
        ANNIndex().fit(np.ones((5, 3))).search(np.ones(4), 2)
    with pytest.raises(ConfigError):
        ANNIndex(m=1).fit(np.ones((5, 3)))


def test_source_excludes_and_handles_unknown_users():
    items, q = clustered(2500)
    src = ANNSource(q, items, user_index={"a": 0, "b": 1}, threshold=1000)
    ctx = SimpleNamespace(user_id="a", row=-1, excluded=np.empty(0, np.int64))
    lst = src.candidates(ctx, 20)
    idx, s = lst.index, lst.scores
    assert len(idx) == 20 and np.all(np.diff(s) <= 1e-6)
    ctx2 = SimpleNamespace(user_id="a", row=-1, excluded=idx[:5])
    idx2 = src.candidates(ctx2, 20).index
    assert len(idx2) == 20 and not set(idx[:5]) & set(idx2)
    np.testing.assert_allclose(src.score(ctx, idx[:3]), s[:3], rtol=1e-5)
    assert len(src.candidates(SimpleNamespace(user_id="zz", row=-1), 10)) == 0
    assert src.forget_user("a") and not src.forget_user("a")
    assert len(src.candidates(ctx, 20)) == 0 and not src.user_factors[0].any()


def test_ann_candidates_narrow_a_factor_model():
    from feedwise.models.als import ALS
    from feedwise.testing import contract_data

    data = contract_data(n_users=60, n_items=40)
    model = ALS(factors=8, iterations=5, random_state=0).fit(data)
    users = list(data.user_ids[:10])
    cand = ann_candidates(model, users + ["ghost"], 15, threshold=10)
    assert set(cand) == set(users) and all(len(v) == 15 for v in cand.values())
    recs = model.recommend(users, 5, candidates=cand)
    for u, r in zip(users, recs, strict=True):
        assert set(r.ids) <= set(cand[u])
