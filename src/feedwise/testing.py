"""Contract test mixins that every Recommender must pass.

Use in a test module::

    from feedwise.testing import RecommenderContract

    class TestMyModel(RecommenderContract):
        def make_model(self):
            return MyModel(factors=8, random_state=0)

The mixin builds a small seeded data set with planted structure, so each check is quick
and every assertion can fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from feedwise.errors import NotFittedError
from feedwise.interactions import Interactions
from feedwise.itemlist import ItemList
from feedwise.models.base import Recommender


def contract_data(n_users: int = 60, n_items: int = 40, n_groups: int = 4, seed: int = 0
                  ) -> Interactions:
    """Users in ``n_groups`` taste groups, each engaging mostly with its own block of items."""
    rng = np.random.default_rng(seed)
    rows = []
    block = n_items // n_groups
    for u in range(n_users):
        g = u % n_groups
        own = rng.choice(np.arange(g * block, (g + 1) * block), size=block // 2, replace=False)
        other = rng.choice(n_items, size=2, replace=False)
        for i in np.r_[own, other]:
            rows.append((f"u{u}", f"i{i}", float(rng.integers(1, 5)), 1_700_000_000 + 3600 * i))
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "weight", "ts"])
    df = df.drop_duplicates(["user_id", "item_id"])
    return Interactions.from_frame(df, item_ids=np.array([f"i{i}" for i in range(n_items)]))


class RecommenderContract:
    """Checks of the estimator contract; subclass and implement :meth:`make_model`."""

    n = 5

    def make_model(self) -> Recommender:  # pragma: no cover - overridden
        raise NotImplementedError

    def side_data(self) -> dict[str, Any]:
        """Keyword arguments of ``fit`` besides the interactions (item table, social graph)."""
        return {}

    @pytest.fixture(scope="class")
    @classmethod
    def data(cls) -> Interactions:
        return contract_data()

    @pytest.fixture()
    def fitted(self, data: Interactions) -> Recommender:
        return self.make_model().fit(data, **self.side_data())

    def test_fit_returns_self(self, data: Interactions) -> None:
        model = self.make_model()
        assert model.fit(data) is model

    def test_constructor_only_stores_params(self) -> None:
        model = self.make_model()
        assert not [k for k in vars(model) if k.endswith("_") and not k.startswith("_")]
        assert type(model)(**model.get_params()).get_params() == model.get_params()

    def test_not_fitted_raises(self) -> None:
        model = self.make_model()
        with pytest.raises(NotFittedError):
            model.recommend(["u0"], self.n)
        with pytest.raises(NotFittedError):
            model.score("u0", ["i0"])

    def test_shapes_and_types(self, fitted: Recommender, data: Interactions) -> None:
        users = list(data.user_ids[:7])
        recs = fitted.recommend(users, self.n)
        assert len(recs) == len(users)
        for r in recs:
            assert isinstance(r, ItemList)
            assert len(r) == self.n
            assert len(set(r.ids)) == len(r.ids)
            assert np.all(np.diff(r.scores) <= 1e-9), "scores must be sorted best first"
            assert r.reasons is not None and all(r.reasons)

    def test_no_seen_items(self, fitted: Recommender, data: Interactions) -> None:
        for u in data.user_ids[:10]:
            seen = set(data.items_of(u))
            (rec,) = fitted.recommend([u], self.n)
            assert not seen & set(rec.ids)

    def test_exclude_and_candidates(self, fitted: Recommender, data: Interactions) -> None:
        u = data.user_ids[0]
        (base,) = fitted.recommend([u], self.n)
        (ex,) = fitted.recommend([u], self.n, exclude=list(base.ids[:2]))
        assert not set(base.ids[:2]) & set(ex.ids)
        unseen = [i for i in data.item_ids if i not in set(data.items_of(u))][:3]
        (cand,) = fitted.recommend([u], self.n, candidates=unseen)
        assert set(cand.ids) <= set(unseen) and len(cand) == len(unseen)

    def test_score_agrees_with_recommend(self, fitted: Recommender, data: Interactions
                                         ) -> None:
        u = data.user_ids[3]
        (rec,) = fitted.recommend([u], self.n)
        s = fitted.score(u, list(rec.ids))
        np.testing.assert_allclose(s, rec.scores, rtol=1e-4, atol=1e-5)

    def test_deterministic(self, data: Interactions) -> None:
        users = list(data.user_ids[:5])
        a = self.make_model().fit(data).recommend(users, self.n)
        b = self.make_model().fit(data).recommend(users, self.n)
        assert [list(x.ids) for x in a] == [list(x.ids) for x in b]

    def test_refit_forgets_the_previous_fit(self, data: Interactions) -> None:
        """A refitted model serves exactly what a fresh fit on the new data serves: no cache
        (transposed weights, unit factors, engagement matrices) survives the refit."""
        other = contract_data(seed=1)
        users = list(other.user_ids[:5])
        model = self.make_model().fit(data, **self.side_data())
        model.recommend(users, self.n)  # warms the caches on the first data
        model.similar_items(str(data.item_ids[0]), self.n)
        model.fit(other, **self.side_data())
        fresh = self.make_model().fit(other, **self.side_data())
        a, b = model.recommend(users, self.n), fresh.recommend(users, self.n)
        assert [list(x.ids) for x in a] == [list(x.ids) for x in b]
        assert [list(x.reasons) for x in a] == [list(x.reasons) for x in b]
        item = str(other.item_ids[0])
        assert list(model.similar_items(item, self.n).ids) == \
            list(fresh.similar_items(item, self.n).ids)

    def test_unknown_user_gets_items(self, fitted: Recommender) -> None:
        (rec,) = fitted.recommend(["nobody-ever"], self.n)
        assert len(rec) == self.n

    def test_save_load_roundtrip(self, fitted: Recommender, data: Interactions,
                                 tmp_path: Path) -> None:
        users = list(data.user_ids[:5])
        fitted.save(tmp_path / "m")
        loaded = Recommender.load(tmp_path / "m")
        assert type(loaded) is type(fitted)
        a, b = fitted.recommend(users, self.n), loaded.recommend(users, self.n)
        assert [list(x.ids) for x in a] == [list(x.ids) for x in b]
        np.testing.assert_allclose(a[0].scores, b[0].scores, rtol=1e-5)

    def test_beats_random_on_planted_groups(self, data: Interactions) -> None:
        """Personalised models must favour the user's own taste block over chance."""
        if type(self.make_model()).__name__ == "Popularity":
            pytest.skip("not personalised")
        model = self.make_model().fit(data)
        block = data.n_items // 4
        hits = 0
        users = list(data.user_ids[:20])
        for u, rec in zip(users, model.recommend(users, 3), strict=True):
            g = int(u[1:]) % 4
            hits += sum(g * block <= int(i[1:]) < (g + 1) * block for i in rec.ids)
        assert hits / (3 * len(users)) > 0.5  # chance is ~0.25
