"""TextClassifier: fit, predict, calibration share, save/load without pickle; embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from care_world import examples

from feedwise.errors import ConfigError, DataError, NotFittedError
from feedwise.text import embeddings
from feedwise.text.classifier import TextClassifier


def test_fit_predict_and_probabilities():
    texts, labels = examples()
    clf = TextClassifier().fit(texts, labels)
    assert clf.classes_ == ["card_arrival", "pin", "refund"]
    p = clf.predict_proba(["my card never arrived", "i forgot the pin", "money back please"])
    assert p.shape == (3, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert clf.predict(["my card never arrived", "i forgot the pin", "money back please"]) == [
        "card_arrival", "pin", "refund"]
    assert clf.temperature_ > 0
    assert clf.validation_ is not None and len(clf.validation_["confidence"]) > 0


def test_not_fitted_bad_params_and_bad_labels():
    with pytest.raises(NotFittedError):
        TextClassifier().predict(["x"])
    with pytest.raises(ConfigError, match="features"):
        TextClassifier(features="bag").fit(["a", "b"], ["x", "y"])
    with pytest.raises(DataError, match="one label"):
        TextClassifier().fit(["a", "b"], ["x", "x"])
    with pytest.raises(DataError, match="2 texts but 1 labels"):
        TextClassifier().fit(["a", "b"], ["x"])


def test_odd_inputs_never_raise_at_predict():
    texts, labels = examples()
    clf = TextClassifier(calibrate=False).fit(texts, labels)
    p = clf.predict_proba([None, "", b"\xff\xfe", "x" * 50_000, float("nan")])
    assert p.shape == (5, 3) and np.isfinite(p).all()


def test_save_load_round_trip_without_pickle(tmp_path):
    texts, labels = examples()
    clf = TextClassifier().fit(texts, labels)
    clf.meta_ = {"auto_reply_threshold": 0.8}
    clf.save(tmp_path / "m")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["format"] == "feedwise.TextClassifier/1"
    back = TextClassifier.load(tmp_path / "m")
    probe = ["where is my card", "refund", "pin blocked", "something else"]
    np.testing.assert_allclose(back.predict_proba(probe), clf.predict_proba(probe), atol=1e-6)
    assert back.meta_ == {"auto_reply_threshold": 0.8}
    assert back.classes_ == clf.classes_
    with pytest.raises(DataError, match="no text classifier"):
        TextClassifier.load(tmp_path / "missing")


def test_two_classes():
    clf = TextClassifier(calibrate=False).fit(["good", "great", "bad", "awful"] * 3,
                                              ["pos", "pos", "neg", "neg"] * 3)
    p = clf.predict_proba(["great", "awful"])
    assert p.shape == (2, 2) and clf.predict(["great", "awful"]) == ["pos", "neg"]


def test_embeddings_unavailable_error_names_the_extra(monkeypatch):
    monkeypatch.setattr(embeddings, "available", lambda: False)
    with pytest.raises(ConfigError, match=r"pip install feedwise\[text\]"):
        embeddings.embed(["hello"])


@pytest.mark.skipif(not embeddings.available(), reason="the text extra is not installed")
def test_embeddings_shape_norm_and_classifier_with_both():
    e = embeddings.embed(["where is my card?", "my card has not arrived", ""])
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > 0.5
    texts, labels = examples()
    clf = TextClassifier(features="both", calibrate=False).fit(texts, labels)
    assert clf.predict(["my card is not here yet"]) == ["card_arrival"]


def test_fast_transform_equals_scikit_learn():
    from feedwise.text.classifier import _tfidf_rows

    texts, labels = examples()
    clf = TextClassifier(calibrate=False).fit(texts, labels)
    probe = texts[:7] + ["", "Unseen words only: zebra!", "CARD card Card?"]
    for vec in (clf.word_vectorizer_, clf.char_vectorizer_):
        want = vec.transform(probe).toarray()
        got = _tfidf_rows(vec, probe).toarray()
        np.testing.assert_allclose(got, want, atol=1e-6)
