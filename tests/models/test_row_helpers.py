"""The request-path helpers of ``models/base.py``: :func:`dense_block` (a few rows and
columns of a CSR matrix or an array, as scipy's indexing gives them) and the one-row paths
of :func:`relative` and :func:`binary` (a user's history row at request time) are equal to
the general code, value for value."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from feedwise.models.base import binary, csr_row, dense_block, relative


def _scipy_block(m, rows, cols) -> np.ndarray:
    sub = m[np.asarray(rows)][:, np.asarray(cols)]
    return np.asarray(sub.toarray() if sp.issparse(sub) else sub)


@pytest.mark.parametrize("density", [0.0, 0.02, 0.3])
def test_dense_block_equals_scipy_indexing(density: float) -> None:
    rng = np.random.default_rng(7)
    m = sp.random(60, 80, density=density, format="csr", dtype=np.float32, random_state=3)
    m.sum_duplicates()
    for _ in range(30):
        rows = rng.integers(0, 60, int(rng.integers(0, 12)))
        # repeated and unsorted columns, as a request may ask for them
        cols = rng.integers(0, 80, int(rng.integers(0, 15)))
        got = dense_block(m, rows, cols)
        want = _scipy_block(m, rows, cols)
        assert got.dtype == m.dtype and got.shape == (len(rows), len(cols))
        assert np.array_equal(got, want)
        dense = m.toarray()
        assert np.array_equal(dense_block(dense, rows, cols), _scipy_block(dense, rows, cols))


def test_dense_block_of_a_matrix_not_in_canonical_format() -> None:
    # a repeated entry (summed by scipy) and unsorted indices: the general path answers
    m = sp.csr_matrix((np.array([1.0, 2.0, 4.0], np.float32), np.array([3, 1, 3]),
                       np.array([0, 3, 3])), shape=(2, 5))
    assert not m.has_canonical_format
    got = dense_block(m, np.array([0, 1, 0]), np.array([3, 1, 0]))
    assert np.array_equal(got, [[5.0, 2.0, 0.0], [0.0, 0.0, 0.0], [5.0, 2.0, 0.0]])


@pytest.mark.parametrize("power", [0.0, 0.5, 1.0, 2.0])
def test_one_row_relative_and_binary_equal_the_general_path(power: float) -> None:
    rng = np.random.default_rng(11)
    m = sp.random(40, 200, density=0.05, format="csr", random_state=5) * 7
    m.data[::5] = -1.0  # negative strengths (a dislike) clip to 0
    whole = relative(m, power)
    for r in range(m.shape[0]):
        one = relative(m[r], power)
        assert one.dtype == np.float32 and one.shape == (1, 200)
        assert np.array_equal(one.indices, whole[r].indices)
        assert np.array_equal(one.data, whole[r].data)
        b = binary(m[r])
        assert np.array_equal(b.toarray(), binary(m)[r].toarray())
    empty = sp.csr_matrix((1, 200), dtype=np.float32)
    assert relative(empty, power).nnz == 0 and binary(empty).nnz == 0
    # the row it was given is left as it was
    row = m[int(rng.integers(40))]
    before = row.data.copy()
    relative(row, power)
    assert np.array_equal(row.data, before)


def test_rp3beta_columns_from_the_liked_rows_equal_the_in_walks() -> None:
    """RP3beta scores a few columns from its liked items' rows of ``weights_``; summed in
    the same order as the items walking into each column (``gather_scores``), bit for bit."""
    from datetime import UTC, datetime

    import pandas as pd

    from feedwise.interactions import Interactions
    from feedwise.models import get_model
    from feedwise.models.base import gather_scores

    rng = np.random.default_rng(2)
    now = datetime(2024, 3, 1, tzinfo=UTC)
    rows = [{"user_id": f"u{u}", "item_id": f"i{i}", "weight": float(rng.choice([1, 2, 5])),
             "ts": now} for u in range(150) for i in rng.choice(80, 12, replace=False)]
    model = get_model("rp3beta").fit(Interactions.from_frame(pd.DataFrame(rows)))
    assert model.weights_.has_canonical_format
    wt = model.weights_.T.tocsr()
    cols = rng.permutation(model.n_items)[:30]
    for u in ("u0", "u17", "u149"):
        hist = model.history_matrix(None, [u])
        x = relative(hist, model.value_power)
        want, _ = gather_scores(wt, x.indices.astype(np.int64), x.data.astype(np.float64),
                                cols)
        got = model.score_columns(hist, cols)
        assert got.dtype == np.float32
        assert np.array_equal(got, want.astype(np.float32))
        assert np.allclose(got, model._score_history(sp.csr_matrix(hist))[0][cols],
                           rtol=1e-5, atol=1e-6)


def test_rp3beta_reasons_from_the_liked_rows_equal_the_in_walks() -> None:
    """RP3beta's reasons read the liked items' rows of ``weights_`` (no transposed copy):
    the same liked item as the walks into each shown item, ties to the lowest index."""
    from datetime import UTC, datetime

    import pandas as pd

    from feedwise.interactions import Interactions
    from feedwise.models import get_model

    rng = np.random.default_rng(3)
    now = datetime(2024, 3, 1, tzinfo=UTC)
    rows = [{"user_id": f"u{u}", "item_id": f"i{i}", "weight": float(rng.choice([1, 2, 5])),
             "ts": now} for u in range(120) for i in rng.choice(60, 10, replace=False)]
    model = get_model("rp3beta", k=8).fit(Interactions.from_frame(pd.DataFrame(rows)))
    wt = model.weights_.T.tocsr()  # the walks into each item
    users = ["u0", "u5", "u77", "u119"]
    hist = model.history_matrix(None, users)
    cols = [rng.permutation(model.n_items)[:25] for _ in users]
    x = relative(hist, model.value_power)
    x.sort_indices()
    fallbacks = 0
    for r, (got, items) in enumerate(zip(model._explain(hist, cols), cols, strict=True)):
        liked = x.indices[x.indptr[r]:x.indptr[r + 1]]
        weight = x.data[x.indptr[r]:x.indptr[r + 1]]
        for reason, j in zip(got, items, strict=True):
            into = wt[j]
            mask = np.isin(into.indices, liked)
            if not mask.any():
                assert reason == model.fallback_reason
                fallbacks += 1
                continue
            share = into.data[mask] * weight[np.searchsorted(liked, into.indices[mask])]
            i = into.indices[mask][int(np.argmax(share))]
            assert reason == f"because you liked {model.item_labels_[i]}"
    assert 0 < fallbacks < sum(len(c) for c in cols)  # both kinds of answer were checked


@pytest.mark.parametrize("seed", range(6))
def test_csr_row_equals_the_constructors_row(seed: int) -> None:
    """The one-row matrix built without scipy's checks is the constructor's: the same
    index type, entries, canonical format and products; past 2**31 columns the
    constructor itself builds it."""
    rng = np.random.default_rng(seed)
    n_cols = int(rng.integers(1, 5000))
    idx = np.sort(rng.choice(n_cols, int(rng.integers(0, min(n_cols, 40) + 1)), replace=False))
    data = rng.random(len(idx)).astype(np.float32)
    ref = sp.csr_matrix((data, idx, np.array([0, len(idx)])), shape=(1, n_cols))
    row = csr_row(data, idx.astype(np.int64), n_cols)
    assert row.shape == ref.shape and row.indices.dtype == ref.indices.dtype
    assert row.indptr.dtype == ref.indptr.dtype and row.has_canonical_format
    assert (row != ref).nnz == 0
    w = sp.random(n_cols, 7, density=0.3, format="csr", dtype=np.float32, random_state=seed)
    assert np.array_equal((row @ w).toarray(), (ref @ w).toarray())
    assert np.array_equal(relative(row, 0.5).toarray(), relative(ref, 0.5).toarray())
    wide = csr_row(data, idx + 2**31, 2**31 + n_cols)
    assert wide.indices.dtype == np.int64
    assert wide.indices.tolist() == (idx + 2**31).tolist() and wide.nnz == len(idx)
