"""SetFit-style fine-tuning of the MiniLM encoder (feedwise.text.finetune) inside the
TextClassifier: top layers tuned, lower ones untouched, split forward pass equal to the
model's own, save/load as safetensors + JSON (no pickle), label names as examples."""

from __future__ import annotations

import json

import numpy as np
import pytest
from care_world import examples

from feedwise.errors import ConfigError, DataError, NotFittedError
from feedwise.text import embeddings
from feedwise.text.classifier import TextClassifier
from feedwise.text.finetune import TunedEncoder, _load_base

needs_text = pytest.mark.skipif(not embeddings.available(),
                                reason="the text extra is not installed")
PROBE = ["my card never arrived", "i forgot the pin", "money back please", ""]


def test_settings_checked_without_the_text_extra():
    texts, labels = examples()
    with pytest.raises(ConfigError, match="encoder_steps"):
        TextClassifier(features="tfidf", encoder_steps=5).fit(texts, labels)
    with pytest.raises(ConfigError, match="encoder_steps"):
        TextClassifier(features="embeddings", encoder_steps=-1).fit(texts, labels)
    with pytest.raises(NotFittedError):
        TunedEncoder().embed(["x"])
    with pytest.raises(DataError, match="two labels with two examples"):
        TunedEncoder(steps=1).fit(["a", "b", "c"], ["x", "y", "z"])


def test_the_recipes_are_valid_classifier_settings():
    """``intents train --recipe NAME`` passes RECIPES[NAME] to TextClassifier: every key must
    be one of its parameters (``encoder_batch`` was not, so ``--recipe all-data`` failed)."""
    from feedwise.care.intents import RECIPES

    for name, params in RECIPES.items():
        got = TextClassifier(**params).get_params()
        assert {k: got[k] for k in params} == params, name
    assert TextClassifier(**RECIPES["all-data"]).encoder_batch == 64


def test_label_names_join_the_training_examples():
    texts, labels = examples()
    plain = TextClassifier(calibrate=False).fit(texts, labels)
    named = TextClassifier(calibrate=False, label_names=True).fit(texts, labels)
    assert named.classes_ == plain.classes_
    # "card arrival" (the name of card_arrival) is now a training text of its label
    assert "arrival" in named.word_vectorizer_.vocabulary_
    assert named.predict(["card arrival"]) == ["card_arrival"]


@pytest.fixture(scope="module")
def tuned():
    if not embeddings.available():
        pytest.skip("the text extra is not installed")
    texts, labels = examples()
    return TextClassifier(features="embeddings", C=3.0, calibrate=False, encoder_steps=4,
                          encoder_layers=1, encoder_lr=1e-3, label_names=True
                          ).fit(texts, labels)


@needs_text
def test_only_the_top_layers_change_and_the_split_pass_matches(tuned):
    enc = tuned.encoder_
    assert len(enc.losses_) == 4 and all(np.isfinite(enc.losses_))
    shipped = _load_base()  # a fresh copy: the module's shared model stays unloaded
    base = shipped[0].auto_model.encoder.layer
    mine = enc.model_[0].auto_model.encoder.layer
    for k in range(len(base) - 1):  # frozen
        for (n, a), (_, b) in zip(base[k].state_dict().items(), mine[k].state_dict().items(),
                                  strict=True):
            assert np.array_equal(a.numpy(), b.numpy()), n
    top = [np.abs(a.numpy() - b.numpy()).max() for a, b in
           zip(base[-1].state_dict().values(), mine[-1].state_dict().values(), strict=True)]
    assert max(top) > 0  # tuned
    # the split forward pass used in training (frozen states, then the tuned layer) is the
    # model's own forward pass, padding included
    import torch

    with torch.no_grad():
        split = enc._upper(enc._lower(PROBE[:3] + ["a much longer text about a card " * 3]))
    np.testing.assert_allclose(split.numpy(), enc.embed(PROBE[:3] + [
        "a much longer text about a card " * 3]), atol=1e-5)
    # and the classifier embeds with the tuned encoder, not the shipped one
    assert not np.allclose(tuned._embed(PROBE[:1]),
                           embeddings.encode_with(shipped, PROBE[:1]), atol=1e-4)


@needs_text
def test_tuned_model_round_trip_without_pickle(tuned, tmp_path):
    tuned.save(tmp_path / "m")
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["encoder"] == "m.encoder" and doc["params"]["encoder_steps"] == 4
    assert (tmp_path / "m.encoder.safetensors").exists()
    enc_doc = json.loads((tmp_path / "m.encoder.json").read_text())
    assert enc_doc["format"] == "feedwise.TunedEncoder/1"
    with np.load(tmp_path / "m.npz", allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
    back = TextClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(back.predict_proba(PROBE), tuned.predict_proba(PROBE),
                               atol=1e-5)
    assert back.predict(PROBE[:3]) == ["card_arrival", "pin", "refund"]
    (tmp_path / "m.encoder.safetensors").unlink()
    with pytest.raises(DataError, match="no tuned encoder"):
        TextClassifier.load(tmp_path / "m")


@needs_text
def test_precomputed_states_chunks_and_the_softmax_loss(tuned):
    """The lower states computed once (``lower_states``) and passed to ``fit``/
    ``embed_states`` give the texts' own embeddings; the length-sorted chunks of the top
    layers equal one padded batch; the ``softmax`` loss (every label a negative) tunes."""
    import torch

    enc = tuned.encoder_
    texts = PROBE[:3] + ["a much longer text about a card " * 3, "pin", "where is my refund"]
    states = enc.lower_states(texts)
    assert [s.shape[1] for s in states] == [384] * len(texts)
    np.testing.assert_allclose(enc.embed_states(states), enc.embed(texts), atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(enc._upper(states, chunk=2).numpy(),
                                   enc._upper_padded(states).numpy(), atol=1e-5)
    ex_texts, ex_labels = examples()
    with pytest.raises(ConfigError, match="loss"):
        TunedEncoder(steps=1, loss="triplet").fit(ex_texts, ex_labels)
    sm = TunedEncoder(steps=3, batch_size=4, train_layers=1, learning_rate=1e-3,
                      loss="softmax")
    ex_states = sm.lower_states(ex_texts)
    sm.fit(ex_texts, ex_labels, states=ex_states)
    assert len(sm.losses_) == 3 and all(np.isfinite(sm.losses_))
    assert sm.get_params()["loss"] == "softmax"
    np.testing.assert_allclose(sm.embed_states(ex_states[:3]), sm.embed(ex_texts[:3]),
                               atol=1e-5)
    with pytest.raises(DataError, match="states"):
        TunedEncoder(steps=1, train_layers=1).fit(ex_texts, ex_labels, states=ex_states[:2])


@needs_text
def test_onnx_runtime_serves_the_tuned_encoder(tuned, tmp_path, monkeypatch):
    """Saved with its top layers' ONNX graph; loaded, it embeds in ONNX Runtime without
    building the torch model, equal to torch within 1e-4; the shared lower pass gives the
    tuned and the shipped embeddings at once."""
    if not embeddings.ort_available():
        pytest.skip("onnxruntime is not installed")
    enc = tuned.encoder_
    texts = PROBE + ["a much longer text about a card " * 3]
    monkeypatch.setenv(embeddings.BACKEND_ENV, "torch")
    ref, ref_shipped = enc.embed(texts), embeddings.embed(texts)
    ref_proba = tuned.predict_proba(texts)
    monkeypatch.delenv(embeddings.BACKEND_ENV)
    np.testing.assert_allclose(enc.embed(texts), ref, atol=1e-4)
    tuned.save(tmp_path / "m")
    assert (tmp_path / "m.encoder.onnx").stat().st_size > 1_000_000
    back = TextClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(back.predict_proba(texts), ref_proba, atol=1e-4)
    assert back.encoder_.__dict__.get("_model") is None  # no torch model was built
    both = back.encoder_.embed_with_shipped(texts)
    np.testing.assert_allclose(both[0], ref, atol=1e-4)
    np.testing.assert_allclose(both[1], ref_shipped, atol=1e-4)


@needs_text
def test_assistant_feeds_each_consumer_its_embedding(tuned):
    """A tuned intent model reads its own encoder's embedding and the answers the shipped
    model's; handle_many (the service's micro-batch) decides as handle does one by one."""
    import pandas as pd

    from feedwise.care.answers import AnswerIndex
    from feedwise.care.assistant import CareAssistant

    kb = pd.DataFrame([{"answer_id": "a1", "intent": "card_arrival", "answer": "Soon.",
                        "questions": ["where is my card", "card not arrived"]},
                       {"answer_id": "a2", "intent": "pin", "answer": "Reset it in the app.",
                        "questions": ["forgot my pin"]}])
    a = CareAssistant(intents=tuned, index=AnswerIndex(kb, use_embeddings=True))
    assert a.uses_encoder
    e_int, e_ans = a.embed(PROBE[:2])
    np.testing.assert_allclose(e_int, tuned.encoder_.embed(PROBE[:2]), atol=1e-5)
    np.testing.assert_allclose(e_ans, embeddings.embed(PROBE[:2]), atol=1e-5)
    msgs = PROBE + ["\x00\x01binary", "where is my card??"]
    many = a.handle_many(msgs)
    for got, text in zip(many, msgs, strict=True):
        one = a.handle(text)
        assert (got["intent"], got["routing"], got["problem"]) == (
            one["intent"], one["routing"], one["problem"])
        if one["confidence"] is not None:
            assert abs(got["confidence"] - one["confidence"]) < 1e-4
