"""Materialised lists kept between starts of the service (``FEEDWISE_LISTS_CACHE``): the same
version, n, shared columns and users load the saved lists instead of scoring every user;
anything else builds again; a forget empties the cache (lists are derived from user data)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from feedwise.feed import materialised as mat
from feedwise.interactions import Interactions
from feedwise.models import get_model

NOW = datetime(2024, 2, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(3)
    rows = [{"user_id": f"u{u}", "item_id": f"i{i}",
             "ts": NOW - timedelta(hours=float(rng.uniform(1, 99)))}
            for u in range(60) for i in rng.choice(50, size=6, replace=False)]
    data = Interactions.from_frame(pd.DataFrame(rows), weight=None)
    return get_model("als", factors=8, iterations=3).fit(data)


def _rows(lists: mat.MaterialisedLists) -> dict[str, list[int]]:
    return {u: list(np.asarray(lists.cols[lists.indptr[r]:lists.indptr[r + 1]]))
            for u, r in lists.index.items()}


def test_lists_are_built_once_then_loaded(model, tmp_path, monkeypatch):
    builds = []
    real = mat.MaterialisedLists.build.__func__

    def counting(cls, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        builds.append(1)
        return real(cls, *a, **k)

    monkeypatch.setattr(mat.MaterialisedLists, "build", classmethod(counting))
    extra = np.array([1, 5, 9])
    first = mat.build_cached(model, 20, version="v1", cache_dir=tmp_path, extra_cols=extra)
    again = mat.build_cached(model, 20, version="v1", cache_dir=tmp_path, extra_cols=extra)
    assert len(builds) == 1
    assert _rows(again) == _rows(first) and len(again) == len(first) > 0
    assert not again.cols.flags.writeable  # memory-mapped from the saved files
    # another n, or other shared columns: built again (and the stale folder replaced)
    mat.build_cached(model, 10, version="v1", cache_dir=tmp_path, extra_cols=extra)
    assert len(builds) == 2
    assert len(list(tmp_path.glob("v1-*"))) == 1
    # a user left the lists: the cache is emptied
    mat.forget_cache(tmp_path)
    assert not any(tmp_path.iterdir())
    mat.build_cached(model, 10, version="v1", cache_dir=tmp_path, extra_cols=extra)
    assert len(builds) == 3


def test_a_model_without_a_user_never_matches_the_old_lists(model):
    key = mat.lists_cache_key("v1", model, 20, None)

    class Fewer:
        user_ids_ = [u for u in model.user_ids_ if u != "u0"]

    assert mat.lists_cache_key("v1", Fewer(), 20, None) != key
    assert mat.lists_cache_key("v1", model, 20, None) == key
