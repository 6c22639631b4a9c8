"""Blend calibration: what it varies, what it keeps, and that its shortcut scores what the
public API would."""

from __future__ import annotations

import numpy as np
import pytest

from feedwise.evaluation import evaluate, random_split
from feedwise.models import Hybrid, Recommender
from feedwise.models.calibration import CALIBRATION_SPACES, _Candidates, calibrate, variants
from feedwise.testing import contract_data


def _fit(name, params, data):
    return Recommender.registry[name](**params).fit(data)


def _ndcg(model, split) -> float:
    t = evaluate(model, split, 10, fit=False, metrics=("ndcg",), beyond=False)
    return float(t.loc[t["metric"] == "ndcg", "value"].iloc[0])


def test_variants_start_with_the_given_settings_and_keep_explicit_ones() -> None:
    space = CALIBRATION_SPACES["norm-ease"]
    got = variants("norm-ease", {})
    assert got[0] == {}
    n = 1
    for values in space.values():
        n *= len(values)
    assert len(got) == n  # the defaults are one of the grid's points, tried once (first)
    fixed = variants("norm-ease", {"l2": 50.0})
    assert all(v["l2"] == 50.0 for v in fixed)
    assert len(fixed) == len(space["pop_boost"])
    assert variants("ease", {"l2": 10.0}) == [{"l2": 10.0}]  # nothing to vary


def test_candidate_shortcut_scores_what_evaluate_scores(ml100k_interactions) -> None:
    """The calibration's candidate sets hold the blend's whole top 10: its NDCG equals the
    one of the same blend fitted and evaluated through the public API."""
    split = random_split(ml100k_interactions, 0.9, seed=3)
    specs = [("ease", 1.0, {"l2": 300.0}), ("rp3beta", 0.5, {})]
    hybrid = Hybrid(components=specs, calibrate=False).fit(split.train)
    fitted = {(i, 0): m for i, m in enumerate(hybrid.models_)}
    cands = _Candidates(fitted, split, hybrid._normalise, k=10, per_model=50)
    shortcut = cands.ndcg({(0, 0): 1.0, (1, 0): 0.5})
    assert shortcut == pytest.approx(_ndcg(hybrid, split), abs=1e-9)
    alone = Hybrid(components=specs[:1], calibrate=False).fit(split.train)
    assert cands.ndcg({(0, 0): 1.0}) == pytest.approx(_ndcg(alone, split), abs=1e-9)


def test_calibration_turns_down_a_component_that_hurts(ml100k_interactions) -> None:
    """Popularity at almost EASE's weight drags the blend down; calibration lowers it and
    the chosen blend scores better on the validation splits than the given one."""
    train = random_split(ml100k_interactions, 0.75, seed=42).train
    given = [("ease", 1.0, {"l2": 300.0}), ("popularity", 0.9, {})]
    model = Hybrid(components=given, calibration_splits=1).fit(train)
    cal = model.calibration_
    assert cal is not None and cal.splits == 1 and cal.validation_users > 900
    assert cal.chosen > cal.given
    assert model.components_[1][1] < 0.9
    assert model.components_[0] == ("ease", 1.0, {"l2": 300.0})  # the anchor keeps weight
    assert model.components == given  # the given blend is not rewritten


def test_too_few_users_keeps_the_given_blend() -> None:
    data = contract_data()
    given = [("ease", 1.0, {"l2": 10.0, "min_support": 1}), ("itemknn", 0.5, {})]
    assert calibrate(given, data, _fit, lambda m, s: s, min_users=10_000) is None
    model = Hybrid(components=given).fit(data)  # enough users here: calibrated
    assert model.calibration_ is not None
    off = Hybrid(components=given, calibrate=False).fit(data)
    assert off.calibration_ is None and off.components_ == given


def test_a_zero_weight_component_is_neither_varied_nor_fitted() -> None:
    data = contract_data()
    model = Hybrid(components=[("norm-ease", 1.0, {"min_support": 1}),
                               ("itemknn", 0.0, {})]).fit(data)
    assert model.components_[1] == ("itemknn", 0.0, {})
    assert model.active_.tolist() == [True, False]


def test_calibration_is_reported_and_survives_save(tmp_path) -> None:
    data = contract_data()
    model = Hybrid(components=[("norm-ease", 1.0, {"min_support": 1}),
                               ("itemknn", 0.5, {})]).fit(data)
    back = Recommender.load(model.save(tmp_path / "m"))
    assert back.components_ == model.components_
    assert back.calibration_ == model.calibration_
    users = list(data.user_ids)[:5]
    assert ([list(r.ids) for r in back.recommend(users, 5)]
            == [list(r.ids) for r in model.recommend(users, 5)])


def test_norm_ease_derives_another_pop_boost_without_refitting(ml100k_interactions) -> None:
    from feedwise.models import NormEASE

    data = random_split(ml100k_interactions, 0.5, seed=1).train
    fitted = NormEASE(pop_boost=0.1).fit(data)
    derived = fitted.variant({"pop_boost": 0.25})
    fresh = NormEASE(pop_boost=0.25).fit(data)
    np.testing.assert_allclose(derived.weights_, fresh.weights_, rtol=1e-4, atol=1e-7)
    assert derived.pop_boost == 0.25 and fitted.pop_boost == 0.1
    assert fitted.variant({"l2": 50.0}) is None  # another ridge needs a new solve
    assert NormEASE(topk=10).fit(data).variant({"pop_boost": 0.0}) is None


def test_candidates_leave_out_hidden_items_as_recommend_does(ml100k_interactions) -> None:
    """Items a user hid are never recommended; the shortcut must not count them as hits
    (here every user hid a third of the items they will engage with in the validation part)."""
    from dataclasses import replace

    import scipy.sparse as sp

    split = random_split(ml100k_interactions, 0.9, seed=3)
    t = split.test.matrix.tocoo()
    hide = (t.col % 3) == 0
    neg = sp.csr_matrix((np.ones(hide.sum(), np.float32), (t.row[hide], t.col[hide])),
                        shape=t.shape)
    split = replace(split, train=replace(split.train, negatives=neg))
    specs = [("ease", 1.0, {"l2": 300.0})]
    hybrid = Hybrid(components=specs, calibrate=False).fit(split.train)
    cands = _Candidates({(0, 0): hybrid.models_[0]}, split, hybrid._normalise, k=10,
                        per_model=50)
    assert cands.ndcg({(0, 0): 1.0}) == pytest.approx(_ndcg(hybrid, split), abs=1e-9)


def test_shortcut_never_counts_items_recommend_leaves_out() -> None:
    """With fewer unseen candidates than k, the shortcut must not fill the list with seen or
    hidden items (their -inf scores are not scores): here every validation item is hidden,
    so nothing the public API recommends can be a hit."""
    from dataclasses import replace

    import scipy.sparse as sp

    data = contract_data(n_users=40, n_items=12, n_groups=1)
    split = random_split(data, 0.9, seed=3)
    hidden = sp.csr_matrix((split.test.matrix > 0).astype(np.float32))
    split = replace(split, train=replace(split.train, negatives=hidden))
    hybrid = Hybrid(components=[("ease", 1.0, {"l2": 10.0, "min_support": 1})],
                    calibrate=False).fit(split.train)
    cands = _Candidates({(0, 0): hybrid.models_[0]}, split, hybrid._normalise, k=10,
                        per_model=50)
    assert _ndcg(hybrid, split) == 0.0
    assert cands.ndcg({(0, 0): 1.0}) == 0.0


@pytest.mark.parametrize(("params", "named"), [
    ({"calibration_splits": 0}, "calibration_splits"),
    ({"calibration_splits": "2"}, "calibration_splits"),
    ({"calibration_splits": 1.5}, "calibration_splits"),
    ({"calibration_splits": True}, "calibration_splits"),
    ({"calibration_seed": "0"}, "calibration_seed"),
    ({"calibration_seed": -1}, "calibration_seed"),
    ({"calibrate": "false"}, "calibrate"),
    ({"calibrate": 1}, "calibrate"),
])
def test_bad_calibration_settings_are_clear_errors(params, named) -> None:
    from feedwise.errors import ConfigError

    with pytest.raises(ConfigError, match=named):
        Hybrid(components=[("ease", 1.0, {"min_support": 1})], **params).fit(contract_data())


def test_calibration_accepts_numpy_settings() -> None:
    model = Hybrid(components=[("ease", 1.0, {"min_support": 1}), ("itemknn", 0.5, {})],
                   calibrate=np.bool_(True), calibration_splits=np.int64(1),
                   calibration_seed=np.int64(0)).fit(contract_data())
    assert model.calibration_ is not None and model.calibration_.splits == 1


@pytest.mark.parametrize("calibrate_", [True, False])
def test_all_zero_weights_is_a_clear_error(calibrate_) -> None:
    from feedwise.errors import ConfigError

    zero = [("ease", 0.0, {}), ("itemknn", 0.0, {})]
    with pytest.raises(ConfigError, match="weight"):
        Hybrid(components=zero, calibrate=calibrate_).fit(contract_data())


@pytest.mark.parametrize("weight", [float("nan"), float("inf"), "heavy", None])
def test_a_weight_that_is_not_a_finite_number_is_a_clear_error(weight) -> None:
    from feedwise.errors import ConfigError

    with pytest.raises(ConfigError, match="weight"):
        Hybrid(components=[("ease", 1.0, {}), ("itemknn", weight, {})]).fit(contract_data())


def test_norm_ease_variant_after_forget_user_is_the_fitted_models(tmp_path) -> None:
    """Erasure empties the user's row of ``seen_`` but leaves the item weights (until the next
    fit): a variant must rescale them by the support they were fitted with, also when the
    model was saved and loaded."""
    from feedwise.models import NormEASE

    data = contract_data()
    fitted = NormEASE(min_support=1).fit(data)
    want = fitted.variant({"pop_boost": 0.25}).weights_
    loaded = Recommender.load(fitted.save(tmp_path / "m"))
    for model in (fitted, loaded):
        for u in list(data.user_ids)[:20]:
            model.forget_user(u)
        np.testing.assert_allclose(model.variant({"pop_boost": 0.25}).weights_, want,
                                   rtol=1e-6)


def test_calibration_never_turns_off_the_component_that_serves_new_items(
        ml100k_interactions, monkeypatch) -> None:
    """A component that hurts is turned off, unless it is the one that scores posts nobody
    has engaged with yet (Content): that one keeps a weight (here popularity plays it)."""
    import feedwise.models.calibration as cal

    assert "content" in cal.NEW_ITEM_SCORERS
    train = random_split(ml100k_interactions, 0.75, seed=42).train
    given = [("ease", 1.0, {"l2": 300.0}), ("popularity", 0.9, {})]
    off = Hybrid(components=given, calibration_splits=1).fit(train)
    assert off.components_[1][1] == 0.0
    monkeypatch.setattr(cal, "NEW_ITEM_SCORERS", frozenset({"popularity"}))
    kept = Hybrid(components=given, calibration_splits=1).fit(train)
    assert 0.0 < kept.components_[1][1] < 0.9


def test_too_few_users_with_a_positive_item_keeps_the_given_blend() -> None:
    """Stored zero weights are no validation items: a split whose users hold only those is
    too small to calibrate on (it used to reach the scoring with no users and crash)."""
    data = contract_data()
    m = data.matrix.copy()
    m.data[:] = 0.0  # stored, but not positive
    zeroed = data.with_matrix(m, data.last_ts)
    given = [("ease", 1.0, {"l2": 10.0, "min_support": 1}), ("itemknn", 0.5, {})]
    assert calibrate(given, zeroed, _fit, lambda m, s: s) is None


def test_an_optional_component_that_helps_is_added(ml100k_interactions) -> None:
    """Optional components start switched off; one that lifts the validation NDCG (EASE
    next to popularity alone) is switched on, listed after the blend as given."""
    train = random_split(ml100k_interactions, 0.75, seed=42).train
    given = [("popularity", 1.0, {})]
    cal = calibrate(given, train, _fit, Hybrid()._normalise, n_splits=1,
                    optional=[("ease", 1.0, {"l2": 300.0})])
    assert cal is not None and cal.chosen > cal.given
    assert cal.components[0] == ("popularity", 1.0, {})  # the anchor is a given component
    assert cal.components[1][0] == "ease" and cal.components[1][1] > 0


def test_an_optional_component_that_does_not_help_changes_nothing(
        ml100k_interactions) -> None:
    """An optional component that never lifts the validation NDCG stays at weight 0, and
    the rest of the blend is what calibration chooses without it (it starts switched off,
    so the search takes the same path)."""
    train = random_split(ml100k_interactions, 0.75, seed=42).train
    given = [("ease", 1.0, {"l2": 300.0}), ("rp3beta", 0.5, {})]
    norm = Hybrid()._normalise
    alone = calibrate(given, train, _fit, norm, n_splits=1)
    with_opt = calibrate(given, train, _fit, norm, n_splits=1,
                         optional=[("popularity", 3.0, {})])
    assert with_opt.components[:2] == alone.components
    assert with_opt.components[2] == ("popularity", 0.0, {})
    assert with_opt.given == alone.given and with_opt.chosen == alone.chosen


def test_default_hybrid_may_add_optional_components_a_given_blend_never() -> None:
    from feedwise.models.hybrid import DEFAULT_COMPONENTS, OPTIONAL_COMPONENTS

    data = contract_data()
    default = Hybrid().fit(data)
    assert default.calibration_ is not None
    names = [c[0] for c in default.components_]
    assert names == [c[0] for c in (*DEFAULT_COMPONENTS, *OPTIONAL_COMPONENTS)]
    given = [("norm-ease", 1.0, {"min_support": 1}), ("itemknn", 0.5, {})]
    assert [c[0] for c in Hybrid(components=given).fit(data).components_] == [
        "norm-ease", "itemknn"]
    off = Hybrid(calibrate=False).fit(data)  # not calibrated: the default blend as it is
    assert [c[0] for c in off.components_] == [c[0] for c in DEFAULT_COMPONENTS]
