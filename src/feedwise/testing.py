"""Contract test mixins: :class:`RecommenderContract` for every Recommender,
:class:`PolicyContract` for every feed policy.

Use in a test module::

    from feedwise.testing import RecommenderContract

    class TestMyModel(RecommenderContract):
        def make_model(self):
            return MyModel(factors=8, random_state=0)

The recommender mixin builds a small seeded data set with planted structure, so each check
is quick and every assertion can fail. A policy brings its own small world (see
:class:`PolicyContract`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from feedwise.errors import ConfigError, DataError, NotFittedError
from feedwise.feed.types import Feed, FeedRequest, Policy
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


#: The request time of :meth:`PolicyContract.make_request` unless a subclass picks another.
POLICY_NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class PolicyContract:
    """Checks of the feed policy contract, ``compose(FeedRequest) -> Feed``.

    Subclass and implement :meth:`make_policy` (a fresh policy over a small world),
    :meth:`known_users` and :meth:`catalogue`; override :meth:`make_request` when the
    policy needs more than a plain request (e.g. the simulator's candidates in the
    context) and :meth:`bad_requests` when it refuses some requests.
    """

    n = 10
    #: A user id no world of a contract test knows.
    stranger = "never-seen-user"

    def make_policy(self) -> Policy:  # pragma: no cover - overridden
        raise NotImplementedError

    def known_users(self) -> list[str]:  # pragma: no cover - overridden
        """Users of the policy's world (with history, profile or factors)."""
        raise NotImplementedError

    def catalogue(self, request: FeedRequest) -> set[str]:  # pragma: no cover - overridden
        """Every item id (post or ad creative) a slot of a feed for ``request`` may show."""
        raise NotImplementedError

    def make_request(self, user_id: str, n: int, seed: int = 0) -> FeedRequest:
        """A request the policy can serve; ``seed`` fixes its randomness."""
        return FeedRequest(user_id=user_id, n=n, now=POLICY_NOW, context={"seed": seed})

    def bad_requests(self) -> list[FeedRequest]:
        """Requests the policy must refuse with :class:`ConfigError` or :class:`DataError`."""
        return []

    # ------------------------------------------------------------------ helpers
    def check_feed(self, feed: Feed, request: FeedRequest) -> None:
        """What every composed feed satisfies."""
        assert isinstance(feed, Feed)
        assert feed.request.user_id == request.user_id and feed.request.n == request.n
        assert isinstance(feed.policy, str) and feed.policy
        assert 0 < len(feed) <= request.n, f"{len(feed)} slots for n={request.n}"
        ids = feed.item_ids
        assert len(set(ids)) == len(ids), f"an item shown twice: {ids}"
        outside = set(ids) - self.catalogue(request)
        assert not outside, f"items from outside the catalogue: {sorted(outside)}"
        for s in feed.slots:
            assert s.kind in ("organic", "ad")
            assert 0 < s.propensity <= 1, f"propensity {s.propensity} of {s.item_id}"
            assert math.isfinite(s.score), f"score {s.score} of {s.item_id}"
            assert isinstance(s.reasons, tuple) and all(isinstance(r, str) and r
                                                        for r in s.reasons)
            if s.kind == "ad":
                assert s.campaign_id, f"ad {s.item_id} without a campaign"
                assert math.isfinite(s.price) and s.price >= 0
            else:
                assert s.campaign_id is None and s.price == 0

    # ------------------------------------------------------------------ checks
    def test_is_a_policy(self) -> None:
        assert isinstance(self.make_policy(), Policy)

    def test_feeds_of_known_users(self) -> None:
        policy = self.make_policy()
        for user in self.known_users()[:6]:
            request = self.make_request(user, self.n)
            self.check_feed(policy.compose(request), request)

    def test_any_length(self) -> None:
        policy = self.make_policy()
        user = self.known_users()[0]
        for n in (1, 2, 3 * self.n):
            request = self.make_request(user, n)
            self.check_feed(policy.compose(request), request)

    def test_user_never_seen(self) -> None:
        request = self.make_request(self.stranger, self.n)
        self.check_feed(self.make_policy().compose(request), request)

    def test_without_personalisation_consent(self) -> None:
        request = self.make_request(self.known_users()[0], self.n)
        request = replace(request, context={**request.context,
                                            "consent_personalization": False})
        self.check_feed(self.make_policy().compose(request), request)

    def test_deterministic_for_a_seed(self) -> None:
        """Two fresh policies compose the same feed for the same (seeded) request."""
        for user in self.known_users()[:3]:
            request = self.make_request(user, self.n, seed=7)
            a, b = self.make_policy().compose(request), self.make_policy().compose(request)
            assert a.slots == b.slots

    def test_leaves_the_request_alone(self) -> None:
        request = self.make_request(self.known_users()[0], self.n)
        before = copy.deepcopy(request.context)
        self.make_policy().compose(request)
        assert request.context == before

    def test_refuses_bad_requests(self) -> None:
        bad = self.bad_requests()
        if not bad:
            pytest.skip("the policy serves every well-formed FeedRequest")
        policy = self.make_policy()
        for request in bad:
            with pytest.raises((ConfigError, DataError)):
                policy.compose(request)
