"""The estimator contract for every issue-3 recommender."""

from __future__ import annotations

from recsys_helpers import group_edges, group_items, planted_hit_rate

from feedwise.interactions import Interactions
from feedwise.models import ALS, BPR, EASE, GFCF, Content, Hybrid, Recommender, RP3beta, Social
from feedwise.testing import RecommenderContract, contract_data


class TestALS(RecommenderContract):
    def make_model(self) -> Recommender:
        return ALS(factors=8, iterations=10, num_threads=1, random_state=0)


class TestBPR(RecommenderContract):
    def make_model(self) -> Recommender:
        return BPR(factors=8, learning_rate=0.05, iterations=200, num_threads=1,
                   random_state=0)


class TestEASE(RecommenderContract):
    def make_model(self) -> Recommender:
        return EASE(l2=10.0, min_support=1)


class TestEASESparse(RecommenderContract):
    def make_model(self) -> Recommender:
        return EASE(l2=10.0, topk=10, min_support=1)


class TestRP3beta(RecommenderContract):
    def make_model(self) -> Recommender:
        return RP3beta(k=20)


class TestGFCF(RecommenderContract):
    def make_model(self) -> Recommender:
        return GFCF(factors=4)


class TestGFCFIdealOnly(RecommenderContract):
    def make_model(self) -> Recommender:
        return GFCF(factors=4, linear=0.0, ideal=1.0)


class TestContent(RecommenderContract):
    def make_model(self) -> Recommender:
        return Content()

    def side_data(self) -> dict:
        return {"items": group_items()}

    def test_beats_random_on_planted_groups(self, data: Interactions) -> None:
        model = self.make_model().fit(data, **self.side_data())
        assert planted_hit_rate(model, data) > 0.5


class TestSocial(RecommenderContract):
    def make_model(self) -> Recommender:
        return Social()

    def side_data(self) -> dict:
        return {"edges": group_edges()}

    def test_beats_random_on_planted_groups(self, data: Interactions) -> None:
        model = self.make_model().fit(data, **self.side_data())
        assert planted_hit_rate(model, data) > 0.5


class TestHybrid(RecommenderContract):
    def make_model(self) -> Recommender:
        return Hybrid(components=[("ease", 1.0, {"l2": 10.0, "min_support": 1}),
                                  ("als", 0.3, {"factors": 8, "num_threads": 1,
                                                "random_state": 0}),
                                  ("content", 0.2, {}),
                                  ("social", 0.2, {})], calibrate=False)

    def side_data(self) -> dict:
        return {"items": group_items(), "edges": group_edges()}

    def test_all_components_active_with_side_data(self, fitted: Hybrid) -> None:
        assert fitted.active_.tolist() == [True, True, True, True]


class TestHybridRRF(RecommenderContract):
    def make_model(self) -> Recommender:
        return Hybrid(components=[("ease", 1.0, {"l2": 10.0, "min_support": 1}),
                                  ("itemknn", 1.0, {})], fusion="rrf")


class TestCalibratedHybrid(RecommenderContract):
    """The default: the blend is calibrated at fit."""

    def make_model(self) -> Recommender:
        return Hybrid()

    def side_data(self) -> dict:
        return {"items": group_items(), "edges": group_edges()}

    def test_calibration_ran(self, fitted: Hybrid) -> None:
        assert fitted.calibration_ is not None
        assert fitted.calibration_.chosen >= fitted.calibration_.given
        assert fitted.components_ == fitted.calibration_.components


def test_default_hybrid_fits_without_side_data() -> None:
    data = contract_data()
    model = Hybrid(calibrate=False).fit(data)
    # social (no edges) and content (no text) sit out; the collaborative ones blend
    assert model.active_.tolist() == [True, True, True, False, False]
    assert planted_hit_rate(model, data) > 0.5
