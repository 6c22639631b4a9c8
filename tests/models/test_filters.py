"""Business filters: seen, exclude, candidates, hidden/reported items and their authors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp

from feedwise.errors import NotFittedError
from feedwise.models import EASE, Hybrid, ItemKNN, Popularity, Recommender
from feedwise.models.filters import BusinessFilter
from feedwise.testing import contract_data

AUTHORS = {f"i{i}": f"a{i % 5}" for i in range(40)}  # five authors, eight items each


@pytest.fixture(scope="module")
def data():
    base = contract_data()
    neg = sp.lil_matrix(base.shape, dtype=np.float32)
    neg[base.user_row("u0"), base.item_col("i3")] = 1.0  # u0 hid i3 (author a3)
    return replace(base, negatives=sp.csr_matrix(neg))


MODELS = [Popularity(), ItemKNN(), EASE(l2=10.0, min_support=1),
          Hybrid(components=[("ease", 1.0, {"l2": 10.0, "min_support": 1}),
                             ("itemknn", 0.5, {})])]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_hidden_item_and_its_author_are_filtered(model: Recommender, data) -> None:
    model.fit(data)
    rules = BusinessFilter(AUTHORS)
    assert rules.hidden_authors(model, "u0") == {"a3"}
    (plain,) = model.recommend(["u0"], 30)
    assert "i3" not in set(plain.ids)  # the hidden item itself (base filter)
    assert any(AUTHORS[i] == "a3" for i in plain.ids)  # ... but its author still shows
    (rec,) = rules.recommend(model, "u0", 30)
    assert len(rec) > 0 and all(AUTHORS[i] != "a3" for i in rec.ids)
    (other,) = rules.recommend(model, "u1", 30)
    assert any(AUTHORS[i] == "a3" for i in other.ids)  # only u0 hid a3


def test_blocked_and_request_time_hidden_authors_merge_with_exclude(data) -> None:
    model = EASE(l2=10.0, min_support=1).fit(data)
    rules = BusinessFilter(AUTHORS, blocked_authors=["a0"])
    (rec,) = rules.recommend(model, ["u5"], 20, exclude={"u5": ["i1"]},
                             hidden_authors={"u5": ["a2"]})
    assert "i1" not in set(rec.ids)
    assert not {AUTHORS[i] for i in rec.ids} & {"a0", "a2"}
    ex = rules.exclusions(model, ["u5", "stranger"])
    assert set(ex["stranger"]) == {i for i, a in AUTHORS.items() if a == "a0"}


def test_candidates_and_exclude_respected_together(data) -> None:
    model = Hybrid(components=[("ease", 1.0, {"l2": 10.0, "min_support": 1})]).fit(data)
    seen = set(data.items_of("u2"))
    pool = [i for i in data.item_ids if i not in seen][:6]
    (rec,) = BusinessFilter(AUTHORS).recommend(model, "u2", 10, candidates=pool,
                                               exclude=pool[:2])
    assert set(rec.ids) == set(pool[2:])


def test_filter_needs_a_fitted_model() -> None:
    with pytest.raises(NotFittedError):
        BusinessFilter(AUTHORS).exclusions(EASE(), ["u0"])
