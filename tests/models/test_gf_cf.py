"""GFCF: linear + ideal low-pass graph filters on the degree-normalised interaction matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from feedwise.errors import ConfigError
from feedwise.interactions import Interactions
from feedwise.models import GFCF


def _frame() -> Interactions:
    rng = np.random.default_rng(0)
    pairs = zip(rng.integers(0, 40, 400), rng.integers(0, 15, 400), strict=True)
    df = pd.DataFrame([(f"u{u}", f"i{i}") for u, i in pairs], columns=["user_id", "item_id"])
    return Interactions.from_frame(df.drop_duplicates(), weight=None)


def test_scores_are_the_two_filters_of_the_paper() -> None:
    data = _frame()
    x = (data.matrix.toarray() > 0).astype(np.float64)
    du, di = x.sum(axis=1), x.sum(axis=0)
    rn = x / np.sqrt(du)[:, None] / np.sqrt(di)[None, :]
    vt = np.linalg.svd(rn, full_matrices=False)[2][:5]
    ideal = (vt.T @ vt) / np.sqrt(di)[:, None] * np.sqrt(di)[None, :]
    want = x @ (0.7 * rn.T @ rn + 0.4 * ideal)
    model = GFCF(factors=5, ideal=0.4, linear=0.7).fit(data)
    np.testing.assert_allclose(model._score_rows(np.arange(data.n_users)), want,
                               rtol=1e-4, atol=1e-5)
    # folding in a training user's own history gives the same scores
    hist = model.history_matrix(None, list(data.user_ids[:3]))
    np.testing.assert_allclose(model._score_history(hist), want[:3], rtol=1e-4, atol=1e-5)


def test_rejects_a_filter_that_scores_nothing() -> None:
    with pytest.raises(ConfigError):
        GFCF(ideal=0.0, linear=0.0).fit(_frame())
    with pytest.raises(ConfigError):
        GFCF(factors=0).fit(_frame())


def test_the_ideal_filter_is_the_same_every_fit(shared_data) -> None:
    """On Last.fm's tag assignments (1,892 users x 12,523 artists) ARPACK's top vectors
    differed between fits of the same data in one process (close singular values near the
    cut), which flipped a Hybrid calibration's choices; the dense Gram solve used up to
    ``DENSE_GRAM_MAX`` gives the same filter every time, and the subspace ARPACK finds where
    it is well separated."""
    from scipy.sparse.linalg import svds

    from feedwise.models.gf_cf import _top_right_vectors

    df = pd.read_csv(shared_data / "lastfm-hetrec2011-2k" / "user_taggedartists.dat",
                     sep="\t", encoding="latin-1", usecols=["userID", "artistID"])
    data = Interactions.from_frame(
        df.drop_duplicates().astype(str).set_axis(["user_id", "item_id"], axis=1), weight=None)
    a, b = (GFCF(linear=0.0).fit(data).factors_ for _ in range(2))
    assert a.shape == (32, data.n_items)
    np.testing.assert_array_equal(a, b)
    rn = sp.random(300, 2000, density=0.02, random_state=3, format="csr")
    for m in (rn, rn.T.tocsr()):  # wide and tall
        got = _top_right_vectors(m, 20)
        want = svds(m.tocsc(), k=20, random_state=0)[2]
        np.testing.assert_allclose(got.T @ got, want.T @ want, atol=1e-10)


def test_directions_beyond_the_rank_add_nothing() -> None:
    """40 users who copy 8 distinct histories (rank 8), 20 users without any, 32 factors:
    the dense solve's directions beyond the rank are left at zero instead of a rounding
    error divided by a singular value of ~0, so the filter is the rank-8 one."""
    rng = np.random.default_rng(1)
    histories = [rng.choice(200, 12, replace=False) for _ in range(8)]
    rows = [(f"u{u}", f"i{i}") for u in range(40) for i in histories[u % 8]]
    df = pd.DataFrame(rows, columns=["user_id", "item_id"])
    data = Interactions.from_frame(df, weight=None,
                                   user_ids=np.array([f"u{u}" for u in range(60)], object),
                                   item_ids=np.array([f"i{i}" for i in range(200)], object))
    model = GFCF(linear=0.0).fit(data)
    assert np.isfinite(model.factors_).all()
    assert (np.abs(model.factors_).sum(axis=1) > 0).sum() <= 8
    full = GFCF(linear=0.0, factors=8).fit(data)
    f, g = model.factors_, full.factors_
    np.testing.assert_allclose(f.T @ f, g.T @ g, atol=1e-5)
    assert np.isfinite(model._score_rows(np.arange(60))).all()
    from feedwise.models.gf_cf import _top_right_vectors

    rn = sp.csr_matrix(data.matrix.T)  # tall: the items' side solved
    tall = _top_right_vectors(rn, 32)
    assert (np.abs(tall).sum(axis=1) > 0).sum() <= 8
    want = _top_right_vectors(rn, 8)
    np.testing.assert_allclose(tall.T @ tall, want.T @ want, atol=1e-5)
