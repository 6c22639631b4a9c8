"""Auto: feed or catalogue detected from the data, the blend picked on temporal validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from fresh_worlds import T0, catalogue_world, feed_world, ndcg_at_10
from recsys_helpers import group_items

from feedwise.errors import ConfigError
from feedwise.evaluation import temporal_split
from feedwise.models import Auto, Fresh, Hybrid, ItemKNN, Recommender, get_model
from feedwise.testing import RecommenderContract


class TestAuto(RecommenderContract):
    def make_model(self) -> Recommender:
        return Auto(candidates=("fresh",))

    def side_data(self) -> dict:
        return {"items": group_items()}


@pytest.fixture(scope="module")
def on_feed():
    data, items, edges = feed_world()
    split = temporal_split(data, at=T0 + 8 * 24 * 3600)
    return split, items, edges, get_model("auto").fit(split.train, items=items, edges=edges)


def test_auto_picks_fresh_on_a_feed_and_says_why(on_feed) -> None:
    split, items, edges, model = on_feed
    assert model.choice_ == "fresh" and isinstance(model.inner_, Fresh)
    assert model.fresh_share_ > 0.9
    assert model.reason_.startswith("fresh feed: ")
    assert "NDCG@10 on temporal validation" in model.reason_
    assert model.validation_["fresh"] > model.validation_["hybrid"]
    assert ndcg_at_10(model, split) > 5 * ndcg_at_10(ItemKNN().fit(split.train), split)


def test_auto_picks_hybrid_on_a_catalogue() -> None:
    data, items = catalogue_world()
    model = Auto().fit(data, items=items)
    assert model.fresh_share_ < 0.1
    assert model.choice_ == "hybrid" and isinstance(model.inner_, Hybrid)
    assert model.reason_.startswith("static catalogue: ")
    assert "no temporal comparison" in model.reason_ and not model.validation_
    assert model.inner_.calibrate  # random-split calibration only on a catalogue


def test_auto_serves_what_its_choice_serves(on_feed, tmp_path: Path) -> None:
    split, items, edges, model = on_feed
    users = list(split.train.user_ids[:5])
    a = model.recommend(users, 10)
    b = model.inner_.recommend(users, 10)
    assert [list(x.ids) for x in a] == [list(x.ids) for x in b]
    model.save(tmp_path / "auto")
    loaded = Recommender.load(tmp_path / "auto")
    assert isinstance(loaded, Auto) and loaded.reason_ == model.reason_
    assert loaded.choice_ == "fresh" and loaded.fresh_share_ == model.fresh_share_
    c = loaded.recommend(users, 10)
    assert [list(x.ids) for x in a] == [list(x.ids) for x in c]
    assert loaded.forget_user(users[0]) and not loaded.inner_.knows_user(users[0])


def test_auto_rejects_bad_candidates() -> None:
    data, _ = catalogue_world(n_users=12)
    with pytest.raises(ConfigError, match="candidates"):
        Auto(candidates=("auto",)).fit(data)
    with pytest.raises(ConfigError, match="candidates"):
        Auto(candidates=("nope",)).fit(data)
