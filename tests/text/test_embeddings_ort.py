"""The shipped MiniLM in ONNX Runtime (feedwise.text.embeddings): the same embeddings as
torch (within 1e-4), one message or a padded batch, the split pass equal to the whole, and
an unwritable cache falls back to a graph in memory."""

from __future__ import annotations

import numpy as np
import pytest

from feedwise.text import embeddings

pytestmark = pytest.mark.skipif(not embeddings.ort_available(),
                                reason="the text extra (with onnxruntime) is not installed")
TEXTS = ["where is my card?", "", None, "I was charged twice for the same purchase!!! 😡",
         "我的卡在哪里", "how do I reset my PIN " * 60, "ok"]


@pytest.fixture(scope="module")
def torch_rows():
    mp = pytest.MonkeyPatch()
    mp.setenv(embeddings.BACKEND_ENV, "torch")
    try:
        assert embeddings.backend() == "torch"
        return embeddings.embed(TEXTS)
    finally:
        mp.undo()


def test_onnx_runtime_gives_torchs_embeddings(torch_rows):
    assert embeddings.backend() == "onnxruntime"
    got = embeddings.embed(TEXTS)
    assert got.shape == (len(TEXTS), 384) and got.dtype == np.float32
    np.testing.assert_allclose(got, torch_rows, atol=1e-4)
    one = np.vstack([embeddings.embed([t]) for t in TEXTS])  # one message, no padding
    np.testing.assert_allclose(one, torch_rows, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # the lower layers, then the shipped top layer: the whole model again
    m = embeddings.ort_model()
    split = m.embed_split(TEXTS, m.n_layers - 1, [], shipped=True)
    assert len(split) == 1
    np.testing.assert_allclose(split[0], torch_rows, atol=1e-4)
    # long texts are cut at the model's 256 tokens, as sentence-transformers does
    assert len(m.tokenizer.encode(TEXTS[5]).ids) == embeddings.MAX_TOKENS


def test_groups_sort_by_length_and_limit_padding():
    m = embeddings.ort_model()
    texts = ["a b c d e f g h"] * 3 + ["hi"] * 4 + ["x " * 40]
    groups = m.groups(texts, batch_size=2)
    rows = sorted(r for g, _ in groups for r in g)
    assert rows == list(range(len(texts)))  # every text once
    for g, feeds in groups:
        assert len(g) <= 2
        assert feeds["input_ids"].shape[0] == len(g)
        real = feeds["attention_mask"].sum()
        assert feeds["attention_mask"].size <= (1 + embeddings.PAD_SHARE) * real + 1e-9 \
            or len(g) == 1


def test_unwritable_cache_keeps_the_graph_in_memory(tmp_path, monkeypatch, torch_rows):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(embeddings.CACHE_ENV, str(blocker / "cache"))
    m = embeddings.OrtMiniLM()
    graph = m.graph(m.n_layers - 1, m.n_layers, True)  # the small top-layer graph
    assert isinstance(graph, bytes) and not (blocker / "cache").exists()
    # it runs: the lower layers from the shared cache, this top layer from memory
    shared = embeddings.ort_model()
    out = shared.embed_split(TEXTS[:2], m.n_layers - 1,
                             [lambda threads: embeddings.ort_session(graph, threads)])
    np.testing.assert_allclose(out[0], torch_rows[:2], atol=1e-4)
