"""``score_columns``: a few items' scores for one history row, without a row over the
catalogue, equal to the dense row's columns for every model that serves from it (the EASE
family, GF-CF, Content, and the blends Hybrid and Auto given the user's row state), and the
blend's reasons from that state equal to the reasons of a scored row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from feedwise.interactions import Interactions
from feedwise.models import get_model

NOW = datetime(2024, 2, 1, tzinfo=UTC)
N_USERS, N_ITEMS = 120, 90


def _events() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    rows = []
    for u in range(N_USERS):
        pool = [i for i in range(N_ITEMS) if i % 3 == u % 3 or rng.random() < 0.1]
        for i in rng.choice(pool, size=8, replace=False):
            rows.append({"user_id": f"u{u}", "item_id": f"i{i}",
                         "weight": float(rng.choice([1.0, 2.0, 3.5])),
                         "ts": NOW - timedelta(hours=float(rng.uniform(1, 400)))})
    return pd.DataFrame(rows)


def _items() -> pd.DataFrame:
    return pd.DataFrame({"item_id": [f"i{k}" for k in range(N_ITEMS)],
                         "title": [f"post {k} about {['cats', 'cars', 'cakes'][k % 3]}"
                                   for k in range(N_ITEMS)],
                         "tags": [[f"t{k % 3}", f"s{k % 7}"] for k in range(N_ITEMS)]})


@pytest.fixture(scope="module")
def data() -> Interactions:
    return Interactions.from_frame(_events())


@pytest.fixture(scope="module")
def hybrid(data: Interactions):  # noqa: ANN201
    # every component that has a column path, as the calibrated default blends them
    comps = [("norm-ease", 2.0, {"l2": 20.0}), ("time-ease", 0.5, {"l2": 50.0}),
             ("rp3beta", 0.2, {}), ("content", 0.15, {}), ("gf-cf", 1.2, {"linear": 0.5,
                                                                          "factors": 8})]
    return get_model("hybrid", components=comps, calibrate=False).fit(data, items=_items())


def _histories(model, users: list[str]) -> list[tuple[str, dict | None]]:  # noqa: ANN001
    """Training users as they are, and one with new engagement folded in."""
    return [(u, None) for u in users] + [(users[0], {"i4": 2.0, "i11": 1.0})]


@pytest.mark.parametrize("name,params", [
    ("ease", {"l2": 30.0}), ("ease", {"l2": 30.0, "topk": 12}),
    ("ease", {"l2": 30.0, "min_support": 9}),  # some items left out of the solve
    ("norm-ease", {"l2": 20.0}), ("time-ease", {"l2": 50.0}),
    ("gf-cf", {"linear": 0.5, "factors": 8}), ("content", {})])
def test_score_columns_equal_the_dense_row(data: Interactions, name: str,
                                           params: dict) -> None:
    kw = {"items": _items()} if name == "content" else {}
    model = get_model(name, **params).fit(data, **kw)
    cols = np.random.default_rng(1).permutation(model.n_items)[:40]
    for u, extra in _histories(model, ["u1", "u7", "u50"]):
        hist = model.history_matrix({u: extra} if extra else None, [u])
        dense = model._score_history(sp.csr_matrix(hist))[0]
        got = model.score_columns(hist, cols)
        assert got is not None and got.dtype == np.float32
        np.testing.assert_allclose(got, dense[cols], rtol=1e-5, atol=1e-6)


def test_norm_ease_variant_scores_columns_from_the_shared_weights(data: Interactions) -> None:
    model = get_model("norm-ease", l2=20.0).fit(data)
    other = model.variant({"pop_boost": 0.5})
    assert other is not None and other._col_scale is not None
    cols = np.arange(other.n_items)
    hist = other.history_matrix(None, ["u3"])
    np.testing.assert_allclose(other.score_columns(hist, cols),
                               other._score_history(hist)[0], rtol=1e-5, atol=1e-6)


def test_blend_scores_columns_from_the_users_state(data: Interactions, hybrid) -> None:  # noqa: ANN001
    cols = np.random.default_rng(2).permutation(hybrid.n_items)[:50]
    users = ["u2", "u9", "u33", "u80"]
    for u, extra in _histories(hybrid, users):
        history = {u: extra} if extra else None
        _, _, state = hybrid._scores_and_state([u], history)
        assert state is not None and state.shape == (1, 3 * len(hybrid.models_))
        hist = hybrid.history_matrix(history, [u])
        dense = hybrid.score_row(u, history=history)
        got = hybrid.score_columns(hist, cols, state=state[0])
        np.testing.assert_allclose(got, dense[cols], rtol=1e-4, atol=1e-4)
        assert hybrid.score_columns(hist, cols) is None  # no state: no column path
    # a batch's states are each user's own (what a row scored alone gets)
    _, _, batch = hybrid._scores_and_state(users, None)
    for b, u in enumerate(users):
        np.testing.assert_allclose(batch[b], hybrid._scores_and_state([u], None)[2][0],
                                   rtol=1e-5, atol=1e-6)


def test_blend_reasons_from_the_state_equal_a_scored_rows(hybrid) -> None:  # noqa: ANN001
    same = total = 0
    for u in [f"u{k}" for k in range(0, N_USERS, 7)]:
        got = hybrid.recommend([u], 15)[0]
        cols = hybrid.item_columns(got.ids)
        _, _, state = hybrid._scores_and_state([u], None)
        hybrid.recommend(["u1"], 5)  # another user's scoring in between changes nothing
        mine = hybrid.explain_columns(u, hybrid.history_matrix(None, [u]), cols, state[0])
        same += sum(a == b for a, b in zip(mine, got.reasons, strict=True))
        total += len(cols)
    assert same == total


def test_auto_delegates_columns_and_reasons_to_its_choice(data: Interactions,
                                                         hybrid) -> None:  # noqa: ANN001
    auto = get_model("auto", candidates=["hybrid"])
    auto.inner_ = hybrid  # the fitted choice (fitting auto itself is tested elsewhere)
    cols = np.arange(20)
    _, _, state = auto._scores_and_state(["u5"], None)
    hist = hybrid.history_matrix(None, ["u5"])
    np.testing.assert_array_equal(auto.score_columns(hist, cols, state=state[0]),
                                  hybrid.score_columns(hist, cols, state=state[0]))
    assert auto.explain_columns("u5", hist, cols, state[0]) == \
        hybrid.explain_columns("u5", hist, cols, state[0])
