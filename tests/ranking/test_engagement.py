"""Engagement model, features, labels and hold-out metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from feedwise.errors import ConfigError, DataError, NotFittedError
from feedwise.ranking.engagement import (
    EngagementModel,
    MultiObjectiveModel,
    expected_calibration_error,
    holdout_report,
    log_loss,
    roc_auc,
    temporal_split,
)
from feedwise.ranking.features import FEATURE_NAMES, build_features, label_impressions

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def logistic_data(n: int = 4000, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    theta = np.array([1.5, -2.0, 0.0])
    p = 1 / (1 + np.exp(-(X @ theta - 1.0)))
    return X, (rng.random(n) < p).astype(int), p


def test_metrics_by_hand():
    y = np.array([0, 0, 1, 1])
    assert roc_auc(y, np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert roc_auc(y, np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.5)
    assert np.isnan(roc_auc(np.zeros(3), np.ones(3)))
    assert log_loss(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(np.log(2))
    # bins: [0.0-0.1): rate 0 vs 0.05 ; [0.9-1.0]: rate 1/2 vs 0.95
    ece = expected_calibration_error(np.array([0, 1, 0]), np.array([0.05, 0.95, 0.95]))
    assert ece == pytest.approx((0.05 + 2 * abs(0.5 - 0.95)) / 3)


def test_logistic_model_recovers_a_known_model_on_held_out_rows():
    X, y, p_true = logistic_data()
    m = EngagementModel(C=10.0).fit(X[:3000], y[:3000])
    p = m.predict_proba(X[3000:])
    assert m.coef_ == pytest.approx([1.5, -2.0, 0.0], abs=0.25)
    assert roc_auc(y[3000:], p) > 0.8
    assert roc_auc(y[3000:], p) == pytest.approx(roc_auc(y[3000:], p_true[3000:]), abs=0.03)
    assert expected_calibration_error(y[3000:], p) < 0.05
    clone = EngagementModel.from_dict(m.to_dict())
    assert clone.predict_proba(X[:5]) == pytest.approx(m.predict_proba(X[:5]))


def test_unfitted_and_bad_input():
    with pytest.raises(NotFittedError):
        EngagementModel().predict_proba(np.zeros((1, 2)))
    with pytest.raises(DataError):
        EngagementModel().fit(np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(ConfigError):
        EngagementModel(kind="forest").fit(np.zeros((4, 1)), np.array([0, 1, 0, 1]))
    # one class only: a constant model at the observed rate
    m = EngagementModel().fit(np.zeros((4, 1)), np.zeros(4))
    assert m.predict_proba(np.zeros((2, 1))) == pytest.approx([0, 0], abs=1e-5)


def test_gbdt_is_optional():
    X, y, _ = logistic_data(400)
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="gbdt"):
            EngagementModel(kind="gbdt").fit(X, y)
    else:  # pragma: no cover - only with the gbdt extra
        m = EngagementModel(kind="gbdt", n_estimators=20).fit(X, y)
        assert roc_auc(y, m.predict_proba(X)) > 0.7


def test_multi_objective_value_and_save_load(tmp_path):
    X, y, _ = logistic_data(1000)
    labels = pd.DataFrame({"click": y, "hide": 1 - y})
    m = MultiObjectiveModel(("click", "hide")).fit(X, labels)
    p = m.predict(X[:10])
    v = m.value(X[:10], {"click": 2.0, "hide": -1.0})
    assert v == pytest.approx(2.0 * p["click"] - p["hide"], rel=1e-5)
    back = MultiObjectiveModel.load(m.save(tmp_path / "eng"))
    assert back.value(X[:10], {"click": 2.0, "hide": -1.0}) == pytest.approx(v, rel=1e-5)


def test_temporal_holdout_tests_only_on_later_rows():
    X, y, _ = logistic_data(1000)
    ts = np.arange(1000.0)
    train, test = temporal_split(ts, 0.2)
    assert ts[train].max() < ts[test].min() and test.sum() == pytest.approx(200, abs=1)
    model, report = holdout_report(X, pd.DataFrame({"click": y}), ts, objectives=("click",))
    row = report.iloc[0]
    assert row["n_test"] == test.sum() and row["n_train"] == train.sum()
    assert row["auc"] > 0.8 and 0 <= row["ece"] < 0.1


def test_label_impressions_uses_the_response_window():
    ev = pd.DataFrame([
        ("u", "a", "impression", T0, 0, None), ("u", "a", "click", T0 + timedelta(seconds=5),
                                                0, None),
        ("u", "a", "dwell", T0 + timedelta(seconds=9), 0, 30_000),
        ("u", "b", "impression", T0, 1, None),
        ("u", "b", "like", T0 + timedelta(hours=5), 1, None),  # too late
        ("u", "c", "impression", T0, 2, None), ("u", "c", "hide", T0 + timedelta(seconds=2), 2,
                                                None),
        ("u", "c", "dwell", T0 + timedelta(seconds=3), 2, 500)],  # short dwell
        columns=["user_id", "item_id", "kind", "ts", "position", "dwell_ms"])
    lab = label_impressions(ev).set_index("item_id")
    assert lab.loc["a", "engage"] == 1 and lab.loc["a", "long_dwell"] == 1
    assert lab.loc["b", "like"] == 0 and lab.loc["b", "engage"] == 0
    assert lab.loc["c", "hide"] == 1 and lab.loc["c", "long_dwell"] == 0
    with pytest.raises(DataError):
        label_impressions(ev[ev["kind"] != "impression"])


def test_build_features_shape():
    X = build_features(rec_score=np.ones(3), log_popularity=np.zeros(3),
                       age_hours=np.array([0, 1, 10.0]), author_affinity=0.0, tag_match=0.5,
                       hour=6, position=np.arange(3), ad_exposure=2)
    assert X.shape == (3, len(FEATURE_NAMES))
    assert X[:, FEATURE_NAMES.index("hour_sin")] == pytest.approx(1.0)
    assert X[2, FEATURE_NAMES.index("log_position")] == pytest.approx(np.log(3))


def _served_and_trained_features(consent_personalization: bool, at: datetime):
    """Features of one post for one user as the engine serves them and as training builds
    them from a logged impression at the same moment."""
    from feedwise.feed import FeedEngine, FeedRequest
    from feedwise.feed.predictors import ModelEngagement
    from feedwise.ranking.features import impression_features

    items = pd.DataFrame({"item_id": ["p0", "p1"], "author_id": ["a", "b"],
                          "created_at": [T0 - timedelta(hours=3)] * 2,
                          "tags": [["run"], ["cook"]]})
    users = pd.DataFrame({"user_id": ["u"], "consent_personalization": [consent_personalization],
                          "attributes": ['{"interests": ["run"]}']})
    engine = FeedEngine(None, items, users=users)
    engine.users.affinity = sp.csr_matrix(([3.0], ([0], [0])), shape=(1, 2))
    ctx = engine.context(FeedRequest("u", n=1, now=at))
    served = ModelEngagement(None, engine.catalog, engine.users, {}).features(
        ctx, np.array([0]), np.zeros(1, np.float32))
    imps = pd.DataFrame({"user_id": ["u"], "item_id": ["p0"], "ts": [at], "position": [0]})
    trained, _ = impression_features(imps, engine.catalog, engine.users)
    return served, trained


def test_training_features_match_serving_within_the_hour():
    served, trained = _served_and_trained_features(True, T0 + timedelta(hours=12, minutes=45))
    assert trained == pytest.approx(served, abs=1e-6)


def test_training_features_match_serving_without_personalisation_consent():
    served, trained = _served_and_trained_features(False, T0 + timedelta(hours=12))
    assert served[0, FEATURE_NAMES.index("tag_match")] == 0
    assert trained == pytest.approx(served, abs=1e-6)
