"""Sentence encoders in OpenVINO (``FEEDWISE_EMBEDDINGS=openvino``): the backend is chosen
only when asked for, a missing package or an unknown backend is a clear error, and the
same graphs give ONNX Runtime's embeddings within bf16 rounding, for the shipped model and
a tuned encoder's split pass."""

from __future__ import annotations

import numpy as np
import pytest

from feedwise.errors import ConfigError
from feedwise.text import embeddings

TEXTS = ["where is my card?", "", None, "I was charged twice for the same purchase!!! 😡",
         "我的卡在哪里", "how do I reset my PIN " * 60, "ok", "top up failed"]


def test_backend_is_what_was_asked_for(monkeypatch):
    monkeypatch.setenv(embeddings.BACKEND_ENV, "torch")
    assert embeddings.backend() == "torch" and not embeddings.uses_graphs()
    monkeypatch.setenv(embeddings.BACKEND_ENV, "tensorflow")
    with pytest.raises(ConfigError, match="FEEDWISE_EMBEDDINGS='tensorflow' is not a backend"):
        embeddings.backend()
    monkeypatch.setenv(embeddings.BACKEND_ENV, "openvino")
    monkeypatch.setattr(embeddings, "openvino_available", lambda: False)
    with pytest.raises(ConfigError, match=r"openvino is not installed.*feedwise\[text,openvino\]"):
        embeddings.backend()
    monkeypatch.delenv(embeddings.BACKEND_ENV)
    assert embeddings.backend() in ("onnxruntime", "torch")  # never OpenVINO unasked


needs_openvino = pytest.mark.skipif(
    not (embeddings.openvino_available() and embeddings.ort_available()),
    reason="the text extra with onnxruntime and openvino is not installed")


@needs_openvino
def test_openvino_gives_onnx_runtimes_embeddings_within_bf16(monkeypatch):
    monkeypatch.delenv(embeddings.BACKEND_ENV, raising=False)
    ort = embeddings.embed(TEXTS)
    monkeypatch.setenv(embeddings.BACKEND_ENV, "openvino")
    m = embeddings.ort_model()
    got = embeddings.embed(TEXTS)
    assert got.shape == ort.shape and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-3)
    assert (got * ort).sum(axis=1).min() > 0.999  # bf16: about 1e-5 off in cosine
    one = np.vstack([embeddings.embed([t]) for t in TEXTS])  # one message, no padding
    assert (one * ort).sum(axis=1).min() > 0.999
    # the sessions are OpenVINO's, cached apart from ONNX Runtime's
    s = m.session(0, m.n_layers, True, 1)
    assert isinstance(s, embeddings.OpenVinoSession) and s.precision in ("bf16", "f32")
    monkeypatch.delenv(embeddings.BACKEND_ENV)
    assert not isinstance(m.session(0, m.n_layers, True, 1), embeddings.OpenVinoSession)


@needs_openvino
def test_openvino_groups_allow_more_padding(monkeypatch):
    """Fewer groups than ONNX Runtime's, each padded to a multiple of 16 tokens (masked:
    the embeddings are the unpadded ones, checked above with one message at a time)."""
    m = embeddings.ort_model()
    texts = ["hi", "a b c", "a b c d e f", "a b c d e f g h i", "x " * 40]
    monkeypatch.delenv(embeddings.BACKEND_ENV, raising=False)
    ort_groups = m.groups(texts, batch_size=8)
    assert all(f["input_ids"].shape[1] == f["attention_mask"].sum(axis=1).max()
               for _, f in ort_groups)  # ONNX Runtime: no padding past the longest
    monkeypatch.setenv(embeddings.BACKEND_ENV, "openvino")
    ov_groups = m.groups(texts, batch_size=8)
    assert len(ov_groups) < len(ort_groups)
    assert sorted(r for rows, _ in ov_groups for r in rows) == list(range(len(texts)))
    for _, feeds in ov_groups:
        mask = feeds["attention_mask"]
        assert mask.shape[1] % embeddings.TOKEN_MULTIPLE_OPENVINO == 0
        assert mask.shape[1] - mask.sum(axis=1).max() < embeddings.TOKEN_MULTIPLE_OPENVINO
        assert (feeds["input_ids"][mask == 0] == 0).all()


@needs_openvino
def test_a_tuned_encoder_runs_in_openvino(monkeypatch):
    from feedwise.text.finetune import TunedEncoder

    texts = ["where is my card", "my card has not arrived", "card still not here",
             "how do I top up", "top up failed", "adding money did not work"] * 2
    labels = ["card"] * 3 + ["top_up"] * 3
    labels = labels * 2
    monkeypatch.delenv(embeddings.BACKEND_ENV, raising=False)
    enc = TunedEncoder(steps=3, train_layers=1, batch_size=4, random_state=0).fit(texts, labels)
    want = enc.embed(texts)
    monkeypatch.setenv(embeddings.BACKEND_ENV, "openvino")
    got = enc.embed(texts)
    assert (got * want).sum(axis=1).min() > 0.999
    tuned, shipped = enc.embed_with_shipped(texts)
    assert (tuned * want).sum(axis=1).min() > 0.999
    assert (shipped * embeddings.embed(texts)).sum(axis=1).min() > 0.9999  # both OpenVINO
