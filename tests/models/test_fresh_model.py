"""Fresh: freshness inside the model (trending, newness, authors, follows, live content)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fresh_worlds import T0, feed_world, ndcg_at_10
from recsys_helpers import group_items

from feedwise.errors import ConfigError
from feedwise.evaluation import temporal_split
from feedwise.models import Fresh, ItemKNN, Recommender
from feedwise.testing import RecommenderContract

CUT = T0 + 8 * 24 * 3600  # test: the last two days, posts created after the cut


class TestFreshGivenWeights(RecommenderContract):
    def make_model(self) -> Recommender:
        return Fresh(weights={"collab": 1.0, "trending": 0.2, "content": 0.3})

    def side_data(self) -> dict:
        return {"items": group_items()}


class TestFreshValidated(RecommenderContract):
    def make_model(self) -> Recommender:
        return Fresh()

    def side_data(self) -> dict:
        return {"items": group_items()}


@pytest.fixture(scope="module")
def world():
    data, items, edges = feed_world()
    split = temporal_split(data, at=CUT)
    model = Fresh().fit(split.train, items=items, edges=edges)
    return split, items, edges, model


def test_fresh_beats_itemknn_on_a_feed(world) -> None:
    split, items, edges, model = world
    fresh = ndcg_at_10(model, split)
    knn = ndcg_at_10(ItemKNN().fit(split.train), split)
    assert fresh > 0.5
    assert fresh > 5 * knn  # ItemKNN ranks posts nobody is shown any more


def test_validation_chooses_time_aware_signals(world) -> None:
    split, items, edges, model = world
    v = model.validation_
    assert v is not None and v["chosen"] >= v["start"] and v["users"] > 10
    # in this world engagement follows authors and recency, not co-engagement alone
    w = model.weights_
    assert w["newness"] + w["author"] + w["follow"] + w["content"] > 0
    # the cut is the newest training engagement, before the test part
    assert model.now_ < CUT


def test_new_posts_join_and_old_ones_fade(world) -> None:
    split, items, edges, model = world
    u = split.test.user_ids[np.flatnonzero(np.diff(split.test.matrix.indptr))[0]]
    (rec,) = model.recommend([u], 10)
    born = items.set_index("item_id")["created_at"].astype("int64") / 1e9
    ages = model.now_ - born.loc[list(rec.ids)].to_numpy()
    assert np.median(ages) < 2 * 86400  # fresh posts, not last week's hits
    # posts created after the cut (no engagement at all) are in the catalogue
    assert "p9_0_0" in model.item_index_


def test_given_weights_skip_validation_and_follows_count(world) -> None:
    split, items, edges, _ = world
    m = Fresh(weights={"follow": 1.0, "newness": 0.5}).fit(split.train, items=items,
                                                          edges=edges)
    assert m.validation_ is None
    u = "u0"
    followed = set(edges.loc[edges.src_id == u, "dst_id"])
    (rec,) = m.recommend([u], 5)
    authors = items.set_index("item_id").loc[list(rec.ids), "author_id"]
    assert set(authors) <= followed
    assert not [r for r in rec.reasons if not r]


def test_bad_params_are_config_errors() -> None:
    data, items, _ = feed_world(n_users=8, days=3)
    with pytest.raises(ConfigError, match="unknown signal"):
        Fresh(weights={"magic": 1.0}).fit(data)
    with pytest.raises(ConfigError, match="collaborative"):
        Fresh(collaborative="auto").fit(data)
    with pytest.raises(ConfigError, match="validation_fraction"):
        Fresh(validation_fraction=1.5).fit(data)


def test_save_load_and_forget(world, tmp_path: Path) -> None:
    split, items, edges, model = world
    users = list(split.train.user_ids[:4])
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.weights_ == model.weights_ and loaded.settings_ == model.settings_
    a, b = model.recommend(users, 10), loaded.recommend(users, 10)
    assert [list(x.ids) for x in a] == [list(x.ids) for x in b]
    assert loaded.forget_user(users[0])
    assert loaded.follows_[model.user_index_[users[0]]].nnz == 0
    assert not loaded.knows_user(users[0])


def _friends_world():
    import pandas as pd

    from feedwise.interactions import Interactions

    rows = [("b", "i1"), ("b", "i2"), ("c", "i3"), ("a", "i4"), ("d", "i5"), ("d", "i6"),
            ("e", "i1"), ("e", "i5")]
    pairs = pd.DataFrame({"user_id": [u for u, _ in rows], "item_id": [i for _, i in rows],
                          "weight": 1.0, "ts": pd.Timestamp("2025-01-01", tz="UTC")})
    edges = pd.DataFrame({"src_id": ["a", "d"], "dst_id": ["b", "c"],
                          "kind": ["friend", "follow"]})
    return Interactions.from_frame(pairs), edges


def test_friends_signal_ranks_what_followed_people_engaged_with(tmp_path: Path) -> None:
    data, edges = _friends_world()
    m = Fresh(weights={"friends": 1.0}).fit(data, edges=edges)

    def top(model, user, n):
        return set(model.recommend([user], n)[0].ids)

    assert top(m, "a", 2) == {"i1", "i2"}  # a befriends b: what b engaged with
    assert top(m, "b", 1) == {"i4"}  # a friendship goes both ways
    assert top(m, "d", 1) == {"i3"}  # d follows c: what c engaged with
    assert m.friends_[m.user_index_["c"]].nnz == 0  # ... and not the other way
    loaded = Recommender.load(m.save(tmp_path / "m"))
    assert (loaded.friends_ != m.friends_).nnz == 0 and top(loaded, "a", 2) == {"i1", "i2"}
    # erasing b takes b out of everyone's friends (and b's engagements out of the model)
    assert loaded.forget_user("b")
    b = m.user_index_["b"]
    assert loaded.friends_[:, b].nnz == 0 and loaded.friends_[b].nnz == 0
    assert "i2" not in top(loaded, "a", 2)
