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


def _fake_embeddings(texts, seed=0):
    """Deterministic unit vectors standing in for MiniLM rows (no model needed)."""
    rng = np.random.default_rng(seed)
    vocab: dict[str, np.ndarray] = {}
    out = []
    for t in texts:
        v = np.zeros(16)
        for w in str(t).lower().split():
            if w not in vocab:
                vocab[w] = rng.normal(size=16)
            v += vocab[w]
        n = np.linalg.norm(v)
        out.append(v / n if n else v)
    return np.array(out, dtype=np.float32)


def test_row_by_row_logits_equal_the_sparse_product():
    from feedwise.text import classifier as mod

    texts, labels = examples()
    emb = _fake_embeddings(texts)
    for params in ({"features": "tfidf"},
                   {"features": "both", "embedding_weight": 2.0, "prototype_weight": 5.0}):
        clf = TextClassifier(calibrate=False, **params).fit(texts, labels, embeddings=emb)
        probe = texts[:3] + ["", "zebra only"]
        pe = _fake_embeddings(probe, seed=0) if params["features"] == "both" else None
        sparse = np.vstack([clf._logits(probe, pe)])  # more than FEW rows: sparse path
        assert len(probe) > mod.FEW
        for r, t in enumerate(probe):
            one = clf._logits([t], None if pe is None else pe[r:r + 1])
            np.testing.assert_allclose(one[0], sparse[r], rtol=1e-5, atol=1e-5)


def test_prototype_term_saved_loaded_and_checked(tmp_path):
    texts, labels = examples()
    emb = _fake_embeddings(texts)
    clf = TextClassifier(features="embeddings", prototype_weight=10.0, calibrate=False)
    clf.fit(texts, labels, embeddings=emb)
    assert clf.prototypes_.shape == (len(clf.classes_), emb.shape[1])
    np.testing.assert_allclose(np.linalg.norm(clf.prototypes_, axis=1), 1.0, rtol=1e-6)
    plain = TextClassifier(features="embeddings", calibrate=False).fit(
        texts, labels, embeddings=emb)
    # the term moves the logits by prototype_weight times the cosine with each prototype
    diff = clf.decision_function(texts[:2], embeddings=emb[:2]) - plain.decision_function(
        texts[:2], embeddings=emb[:2])
    cos = emb[:2].astype(np.float64) @ clf.prototypes_.T
    np.testing.assert_allclose(diff, 10.0 * cos, rtol=1e-4, atol=1e-4)
    clf.save(tmp_path / "m")
    back = TextClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(back.predict_proba(texts[:4], embeddings=emb[:4]),
                               clf.predict_proba(texts[:4], embeddings=emb[:4]), rtol=1e-6)
    with pytest.raises(ConfigError, match="prototype_weight"):
        TextClassifier(features="tfidf", prototype_weight=1.0).fit(texts, labels)
