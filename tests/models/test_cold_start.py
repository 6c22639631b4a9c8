"""Cold start: unknown users with and without events, declared interests, new items."""

from __future__ import annotations

import numpy as np
import pytest
from recsys_helpers import group_edges, group_items

from feedwise.models import ALS, BPR, EASE, Content, Hybrid, Recommender
from feedwise.testing import contract_data

BLOCK = 10  # contract_data: 40 items in 4 taste blocks


def block_of(item_id: str) -> int:
    return int(item_id[1:]) // BLOCK


@pytest.fixture(scope="module")
def data():
    return contract_data()


@pytest.mark.parametrize("model", [
    ALS(factors=4, num_threads=1, random_state=0),
    BPR(factors=8, learning_rate=0.05, iterations=200, num_threads=1, random_state=0),
    EASE(l2=10.0, min_support=1),
    Content(),
], ids=["als", "bpr", "ease", "content"])
def test_fold_in_serves_a_user_unseen_in_training(model: Recommender, data) -> None:
    kwargs = {"items": group_items()} if isinstance(model, Content) else {}
    model.fit(data, **kwargs)
    history = {"newcomer": ["i20", "i21", "i23", "i25"]}  # block 2
    (rec,) = model.recommend(["newcomer"], 5, history=history)
    assert not set(rec.ids) & set(history["newcomer"])
    assert sum(block_of(i) == 2 for i in rec.ids) >= 3
    assert all(r != "trending" and r != "popular" for r in rec.reasons)
    (cold,) = model.recommend(["stranger"], 5)
    assert len(cold) == 5 and set(cold.reasons) <= {"trending", "popular"}


def test_als_fold_in_matches_training_factors(data) -> None:
    model = ALS(factors=8, num_threads=1, random_state=0).fit(data)
    user = data.user_ids[0]
    history = {"clone": {i: float(data.matrix[0, data.item_col(i)])
                         for i in data.items_of(user)}}
    (a,) = model.recommend([user], 5)
    (b,) = model.recommend(["clone"], 5, history=history)
    assert len(set(a.ids) & set(b.ids)) >= 4
    items = list(data.item_ids)
    trained = model.score(user, items)
    folded = model.score("clone", items, history=history)
    assert np.corrcoef(trained, folded)[0, 1] > 0.95


class TestHybridColdStart:
    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, data) -> Hybrid:
        items = group_items(extra=4)  # i40..i43: new items tagged genre3, no interactions
        return Hybrid(components=[("ease", 1.0, {"l2": 10.0, "min_support": 1}),
                                  ("content", 0.5, {}), ("social", 0.2, {})]).fit(
            data, items=items, edges=group_edges(), interests={"fan": ["genre1"]})

    def test_no_history_uses_declared_interests(self, model: Hybrid) -> None:
        (rec,) = model.recommend(["fan"], 5)
        assert all(block_of(i) == 1 for i in rec.ids)
        assert set(rec.reasons) == {"trending in genre1"}

    def test_no_history_no_interests_is_global_trending(self, model: Hybrid, data) -> None:
        (rec,) = model.recommend(["nobody"], 3)
        assert set(rec.reasons) == {"trending"}
        counts = np.asarray((data.matrix > 0).sum(axis=0)).ravel()
        assert counts[data.item_col(rec.ids[0])] >= np.median(counts)

    def test_interests_can_be_updated_after_fit(self, model: Hybrid) -> None:
        model.set_interests({"fan": ["genre1"], "late": ["genre2"]})
        (rec,) = model.recommend(["late"], 3)
        assert all(block_of(i) == 2 for i in rec.ids)

    def test_few_events_fold_in(self, model: Hybrid) -> None:
        (rec,) = model.recommend(["new"], 5, history={"new": ["i0", "i2", "i5"]})
        assert sum(block_of(i) == 0 for i in rec.ids) >= 3
        assert not set(rec.reasons) & {"trending"}

    def test_new_items_join_and_are_scored_by_content(self, model: Hybrid, data) -> None:
        assert model.n_items == 44
        u3 = next(u for u in data.user_ids if int(u[1:]) % 4 == 3)
        u0 = next(u for u in data.user_ids if int(u[1:]) % 4 == 0)
        new = ["i40", "i41", "i42", "i43"]
        assert np.all(model.score(u3, new) > model.score(u0, new))
        (rec,) = model.recommend([u3], 3, candidates=new)
        assert len(rec) == 3 and all(r.startswith("matches your interests") for r in rec.reasons)

    def test_reasons_name_the_source(self, model: Hybrid, data) -> None:
        (rec,) = model.recommend([data.user_ids[0]], 8)
        assert all(r.startswith(("because you liked", "liked by your friend",
                                 "matches your interests", "similar to")) for r in rec.reasons)


def test_content_neighbours_of_a_new_item() -> None:
    model = Content().fit(contract_data(), items=group_items(extra=4))
    sim = model.similar_items("i42", 5)
    assert all(block_of(i) >= 3 for i in sim.ids)  # genre3 (block 3 and new items)
    assert all("genre3" in r for r in sim.reasons)


def test_social_reason_names_the_friend() -> None:
    from feedwise.models import Social

    data = contract_data()
    model = Social().fit(data, edges=group_edges())
    (rec,) = model.recommend(["u0"], 3)
    friends = set(model.friends_of("u0"))
    assert friends == {"u4", "u8"}
    for item, reason in zip(rec.ids, rec.reasons, strict=True):
        assert reason.startswith("liked by your friend ")
        named = reason.removeprefix("liked by your friend ").split(" ")[0]
        assert named in friends and item in set(data.items_of(named))


def test_components_sitting_out_never_explain() -> None:
    from feedwise.evaluation import random_split

    data = random_split(contract_data(), 0.6, seed=0).train
    model = Hybrid().fit(data)  # content and social sit out (no items, no edges)
    recs = model.recommend(list(data.user_ids), 10)
    reasons = {r for rec in recs for r in rec.reasons}
    assert reasons and all(r.startswith("because you liked") or r == "trending"
                           for r in reasons)


def test_concurrent_requests_keep_their_own_reasons() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from feedwise.models import Social

    data = contract_data()
    social = Social().fit(data, edges=group_edges())
    hybrid = Hybrid(components=[("ease", 1.0, {"l2": 10.0, "min_support": 1}),
                                ("social", 1.0, {})]).fit(data, edges=group_edges())
    users = [f"u{i}" for i in range(12)]
    for model in (social, hybrid):
        expected = {u: model.recommend([u], 5)[0].reasons for u in users}
        with ThreadPoolExecutor(max_workers=6) as pool:
            got = list(pool.map(lambda u, m=model: (u, m.recommend([u], 5)[0].reasons),
                                users * 8))
        assert all(reasons == expected[u] for u, reasons in got)


def test_saved_default_hybrid_keeps_its_blend(tmp_path) -> None:
    """A default hybrid reloads with the blend it was fitted with, whatever the default is now
    (files written before the blend was saved: the blend of that time, EASE 0.25)."""
    import json

    from feedwise.models import hybrid as hybrid_mod

    data = contract_data()
    model = Hybrid().fit(data, items=group_items(), edges=group_edges())
    users = list(data.user_ids)[:5]
    want = [list(r.ids) for r in model.recommend(users, 5)]
    model.save(tmp_path / "now")
    back = Recommender.load(tmp_path / "now")
    assert back.components is None and back.components_ == model.components_
    names = [c[0] for c in hybrid_mod.DEFAULT_COMPONENTS]
    if model.calibration_ is not None:  # calibration lists the optional components too
        names += [c[0] for c in hybrid_mod.OPTIONAL_COMPONENTS]
    assert [c[0] for c in back.components_] == names
    assert [list(r.ids) for r in back.recommend(users, 5)] == want

    # fitted as then: the parameters components gained later at their value of before
    then = [(n, w, {**Recommender.registry[n].saved_before, **p})
            for n, w, p in hybrid_mod._SAVED_BEFORE_SPECS]
    old = Hybrid(components=then).fit(data, items=group_items(), edges=group_edges())
    old.save(tmp_path / "old")
    z = dict(np.load(tmp_path / "old" / "model.npz"))
    del z["model.specs"], z["model.params"]  # as written before the blend was saved
    np.savez_compressed(tmp_path / "old" / "model.npz", **z)
    meta = json.loads((tmp_path / "old" / "model.json").read_text())
    meta["params"]["components"] = None
    (tmp_path / "old" / "model.json").write_text(json.dumps(meta))
    legacy = Recommender.load(tmp_path / "old")
    assert [c[0] for c in legacy.components_] == [c[0] for c in hybrid_mod._SAVED_BEFORE_SPECS]
    assert ([list(r.ids) for r in legacy.recommend(users, 5)]
            == [list(r.ids) for r in old.recommend(users, 5)])


def test_saved_hybrid_keeps_its_component_params(tmp_path) -> None:
    """Components reload with the params they were fitted with, whatever their defaults are
    now (files written before the params were saved: NormEASE weighed one per interaction)."""
    import json

    data = contract_data()
    data = data.with_matrix(data.matrix.multiply(
        1.0 + np.arange(data.n_items)[None, :] % 3).tocsr(), data.last_ts)
    users = list(data.user_ids)[:5]
    now = Hybrid(components=[("norm-ease", 1.0, {"min_support": 1})]).fit(data)
    now.save(tmp_path / "now")
    np.testing.assert_allclose(Recommender.load(tmp_path / "now")._models[0].weights_,
                               now._models[0].weights_)

    from feedwise.models.hybrid import _SAVED_BEFORE_PARAMS

    before = _SAVED_BEFORE_PARAMS["norm-ease"]
    old = Hybrid(components=[("norm-ease", 1.0, {"min_support": 1, **before})]).fit(data)
    assert not np.allclose(old._models[0].weights_, now._models[0].weights_)
    old.save(tmp_path / "old")
    z = dict(np.load(tmp_path / "old" / "model.npz"))
    del z["model.params"]  # as written before the params were saved, with the spec as then
    z["model.specs"] = np.array(json.dumps([["norm-ease", 1.0, {"min_support": 1}]]))
    np.savez_compressed(tmp_path / "old" / "model.npz", **z)
    meta = json.loads((tmp_path / "old" / "model.json").read_text())
    meta["params"]["components"] = None
    (tmp_path / "old" / "model.json").write_text(json.dumps(meta))
    legacy = Recommender.load(tmp_path / "old")
    assert {k: legacy._models[0].get_params()[k] for k in before} == before
    assert ([list(r.ids) for r in legacy.recommend(users, 5)]
            == [list(r.ids) for r in old.recommend(users, 5)])


@pytest.mark.parametrize("name", ["ease", "itemknn", "rp3beta", "gf-cf", "norm-ease", "als",
                                  "bpr", "content", "hybrid"])
def test_a_known_user_with_an_empty_row_is_served_as_an_unknown_one(name: str, data) -> None:
    """A user the training data names without a positive event of their own (every user a
    temporal split finds only after its cut) gets what an unknown user gets (the popular
    or trending items), on the dense and the sparse path alike, not the catalogue's order
    of scores that are all the same."""
    import scipy.sparse as sp

    from feedwise.models import get_model

    m = data.matrix.tolil()
    m[0, :] = 0  # user 0 stays in the data with nothing of their own
    empty = data.with_matrix(sp.csr_matrix(m), None)
    assert empty.matrix[0].nnz == 0
    user = str(empty.user_ids[0])
    model = get_model(name).fit(empty, **({"items": group_items()} if name == "content"
                                          else {}))
    (stranger,) = model.recommend(["stranger"], 5)
    assert list(stranger.ids) != [f"i{k}" for k in range(5)]  # not the catalogue's order
    for budget in (None, 1):  # a budget of 1 byte takes the sparse path where there is one
        model.memory_budget = budget
        (rec,) = model.recommend([user], 5)
        assert list(rec.ids) == list(stranger.ids)
        assert set(rec.reasons) <= {"trending", "popular"}
    model.memory_budget = None
    (rec,) = model.recommend([user], 5, history={user: ["i20", "i21", "i23"]})
    assert not set(rec.reasons) & {"trending", "popular"}  # a history is still folded in
