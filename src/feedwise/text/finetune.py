"""Contrastive fine-tuning of the shipped MiniLM sentence encoder (SetFit-style).

With a few labelled examples per intent, the frozen MiniLM embeddings put some intents too
close together for a linear model to part them. :class:`TunedEncoder` fine-tunes the
encoder's top ``train_layers`` transformer layers on pairs drawn from the labelled
examples, as SetFit does, then embeds with the tuned model:

- each step draws ``batch_size`` distinct labels and, for each, two different examples of
  it (an anchor and a positive); the loss is the symmetric in-batch softmax over the
  cosine similarities times ``scale`` (multiple-negatives ranking: an anchor's positive
  against the other labels' examples in the batch);
- the lower layers stay frozen, so their outputs for the training texts are computed once
  (no gradient) and each step runs only the top layers: about 3 times cheaper than tuning
  the whole encoder on a CPU, and with few examples it also overfits less.

The tuned layers are saved as ``<path>.safetensors`` (their tensors only) with a JSON
description; loading rebuilds the shipped MiniLM from the ``text`` extra's package and puts
the tuned tensors in place. Nothing is pickled, nothing is downloaded.

Inference runs in ONNX Runtime when it is installed (:mod:`feedwise.text.embeddings`): the
shipped lower layers' graph (cached), then the tuned top layers' graph, exported at
:meth:`TunedEncoder.save` as ``<path>.onnx`` beside the tensors (an encoder saved without
it is exported once in memory when first used). A loaded encoder then needs no torch at
all; the torch model is rebuilt only when asked for (``model_``: fitting, the torch path).
:meth:`TunedEncoder.embed_with_shipped` runs the shared lower layers once for both the tuned
and the shipped top layers (a message's intent and its answer retrieval)::

    enc = TunedEncoder(steps=150).fit(texts, labels)
    E = enc.embed(["where is my card?"])        # (1, 384), rows of unit length
    enc.save("intents.encoder")                 # .safetensors + .json
    TunedEncoder.load("intents.encoder")
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from feedwise.errors import ConfigError, DataError, NotFittedError
from feedwise.text import embeddings as text_embeddings

FORMAT = "feedwise.TunedEncoder/1"


def _load_base():
    """A fresh copy of the shipped MiniLM (never the shared one :func:`embed` uses)."""
    return text_embeddings._load_copy()


def _bert(model):
    return model[0].auto_model


class TunedEncoder:
    """The shipped MiniLM with its top layers fine-tuned on labelled pairs (module doc).

    Parameters
    ----------
    steps: optimiser steps (each ``batch_size`` anchor-positive pairs of distinct labels).
    batch_size: pairs per step (at most the number of labels with two examples or more).
    learning_rate: AdamW learning rate of the tuned layers.
    train_layers: how many of the top transformer layers are tuned (the rest stay frozen).
    scale: the similarity scale of the in-batch softmax.
    loss: ``"pairs"`` (each anchor against the batch's positives, the module doc) or
        ``"softmax"`` (each text of the batch against every label: a cosine classifier whose
        label vectors start at the labels' mean embeddings and are learned with the layers;
        with many examples per label it uses all labels as negatives at every step).
    random_state: seed of the pair draws and of torch.
    threads: torch threads while fitting (0: leave torch's setting).
    """

    def __init__(self, *, steps: int = 150, batch_size: int = 32, learning_rate: float = 1e-4,
                 train_layers: int = 2, scale: float = 20.0, random_state: int = 0,
                 threads: int = 0, loss: str = "pairs") -> None:
        self.steps = steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.train_layers = train_layers
        self.scale = scale
        self.random_state = random_state
        self.threads = threads
        self.loss = loss

    # -- the torch model, built when first asked for after a load ---------------------------
    @property
    def model_(self):
        m = self.__dict__.get("_model")
        if m is None:
            source = self.__dict__.get("_source")
            if source is None:
                raise AttributeError("model_")  # not fitted
            m = self.__dict__["_model"] = self._build(source)
        return m

    @model_.setter
    def model_(self, model) -> None:
        self.__dict__["_model"] = model
        self.__dict__["_ort_graph"] = None  # a new model: its graph is exported again
        self.__dict__["_ort_sessions"] = {}

    def get_params(self) -> dict[str, Any]:
        return {"steps": self.steps, "batch_size": self.batch_size,
                "learning_rate": self.learning_rate, "train_layers": self.train_layers,
                "scale": self.scale, "random_state": self.random_state,
                "threads": self.threads, "loss": self.loss}

    def _check_params(self, n_layers: int) -> None:
        if not (isinstance(self.steps, int) and self.steps >= 1):
            raise ConfigError(f"TunedEncoder(steps={self.steps!r}): use an integer >= 1")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 2):
            raise ConfigError(f"TunedEncoder(batch_size={self.batch_size!r}): use an "
                              "integer >= 2")
        if not (isinstance(self.train_layers, int) and 1 <= self.train_layers <= n_layers):
            raise ConfigError(f"TunedEncoder(train_layers={self.train_layers!r}): use 1 to "
                              f"{n_layers} (the encoder's layers)")
        if self.loss not in ("pairs", "softmax"):
            raise ConfigError(f"TunedEncoder(loss={self.loss!r}): use 'pairs' or 'softmax'")
        if not float(self.learning_rate) > 0:
            raise ConfigError(f"TunedEncoder(learning_rate={self.learning_rate!r}): use a "
                              "positive number")

    # -- the split forward pass ---------------------------------------------------------------
    def _lower(self, texts: list[str], model=None):
        """Per text, the hidden states entering the first tuned layer (no gradient),
        trimmed to its tokens."""
        import torch

        model = self.model_ if model is None else model
        bert = _bert(model)
        first = len(bert.encoder.layer) - self.train_layers
        out: list = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda j: len(texts[j]))  # little padding
        layers = bert.encoder.layer
        bert.encoder.layer = torch.nn.ModuleList(layers[:first])  # only the frozen layers run
        try:
            with torch.no_grad():
                for i in range(0, len(order), 64):
                    rows = order[i:i + 64]
                    feats = getattr(model, "preprocess", model.tokenize)(
                        [texts[j] for j in rows])
                    hs = bert(input_ids=feats["input_ids"],
                              attention_mask=feats["attention_mask"],
                              token_type_ids=feats.get("token_type_ids"),
                              output_hidden_states=True).hidden_states[first]
                    lengths = feats["attention_mask"].sum(dim=1).tolist()
                    for j, n, r in zip(range(len(rows)), lengths, rows, strict=True):
                        out[r] = hs[j, :n].clone()
        finally:
            bert.encoder.layer = layers
        return out

    def _upper(self, states: list, chunk: int = 32) -> Any:
        """Sentence embeddings (unit rows, with gradient) from lower-layer states. The texts
        run in chunks of similar length (sorted), so little of the work goes to padding."""
        import torch

        if len(states) <= chunk:
            return self._upper_padded(states)
        order = sorted(range(len(states)), key=lambda j: states[j].shape[0])
        parts = [self._upper_padded([states[j] for j in order[c:c + chunk]])
                 for c in range(0, len(order), chunk)]
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        return torch.cat(parts)[inverse]

    def _upper_padded(self, states: list) -> Any:
        import torch

        bert = _bert(self.model_)
        first = len(bert.encoder.layer) - self.train_layers
        n = max(s.shape[0] for s in states)
        h = torch.zeros(len(states), n, states[0].shape[1])
        mask = torch.zeros(len(states), n)
        for j, s in enumerate(states):
            h[j, :s.shape[0]] = s
            mask[j, :s.shape[0]] = 1.0
        add = (1.0 - mask)[:, None, None, :] * torch.finfo(h.dtype).min
        for layer in bert.encoder.layer[first:]:
            h = layer(h, add)
            if isinstance(h, tuple):
                h = h[0]
        pooled = (h * mask[:, :, None]).sum(dim=1) / mask.sum(dim=1, keepdim=True)
        return torch.nn.functional.normalize(pooled, dim=-1)

    # -- fit / embed ------------------------------------------------------------------------------
    def lower_states(self, texts: Sequence[str]) -> list:
        """Per text, the frozen lower layers' output (a ``(tokens, 384)`` tensor): what
        :meth:`fit` computes first. It depends only on ``train_layers``, not on the tuning,
        so a benchmark computes it once for a data set and passes its rows to every fit
        (``states=``) and to :meth:`embed_states`."""
        model = getattr(self, "model_", None) or _load_base()  # the lower layers: shipped
        self._check_params(len(_bert(model).encoder.layer))
        model.eval()
        return self._lower(["" if t is None else str(t)[:10_000] for t in texts], model)

    def embed_states(self, states: list, *, batch_size: int = 256) -> np.ndarray:
        """Embed from :meth:`lower_states` rows (equal to :meth:`embed` of the texts)."""
        self._check_fitted()
        import torch

        out = []
        self.model_.eval()
        with torch.no_grad():
            for i in range(0, len(states), batch_size):
                out.append(self._upper(states[i:i + batch_size]).numpy())
        if not out:
            return np.zeros((0, text_embeddings.DIMENSION), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)

    def fit(self, texts: Sequence[str], labels: Sequence[Any], *,
            progress: Callable[[int, int, float], None] | None = None,
            states: list | None = None) -> TunedEncoder:
        """Tune the top layers on pairs of same-label texts. ``progress(step, steps, loss)``
        is called every 25 steps. ``states``: the texts' :meth:`lower_states`, computed
        before with the same ``train_layers`` (saves the frozen part of the work)."""
        texts = ["" if t is None else str(t)[:10_000] for t in texts]
        labels = [str(v) for v in labels]
        if len(texts) != len(labels):
            raise DataError(f"TunedEncoder.fit: {len(texts)} texts but {len(labels)} labels")
        by: dict[str, list[int]] = {}
        for i, v in enumerate(labels):
            by.setdefault(v, []).append(i)
        usable = sorted(v for v, rows in by.items() if len(rows) >= 2)
        if len(usable) < 2:
            raise DataError("TunedEncoder.fit: needs two labels with two examples or more "
                            "(pairs of same-label texts)")
        import torch  # optional heavy extra

        self.model_ = _load_base()
        bert = _bert(self.model_)
        self._check_params(len(bert.encoder.layer))
        prev = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(int(self.threads))
        try:
            t0 = time.perf_counter()
            torch.manual_seed(int(self.random_state))
            rng = np.random.default_rng(self.random_state)
            first = len(bert.encoder.layer) - self.train_layers
            for p in self.model_.parameters():
                p.requires_grad_(False)
            tuned = [p for layer in bert.encoder.layer[first:] for p in layer.parameters()]
            for p in tuned:
                p.requires_grad_(True)
            self.model_.eval()  # lower states without dropout
            if states is None:
                states = self._lower(texts)
            elif len(states) != len(texts):
                raise DataError(f"TunedEncoder.fit: {len(states)} states for {len(texts)} "
                                "texts")
            for layer in bert.encoder.layer[first:]:
                layer.train()
            groups = [{"params": tuned}]
            code = {v: k for k, v in enumerate(usable)}
            if self.loss == "softmax":  # label vectors from the untuned layers' embeddings
                for layer in bert.encoder.layer[first:]:
                    layer.eval()
                with torch.no_grad():
                    emb = torch.cat([self._upper([states[i] for i in rows[j:j + 256]])
                                     for v in usable for rows in [by[v]]
                                     for j in range(0, len(rows), 256)])
                    sizes = torch.tensor([len(by[v]) for v in usable])
                    seg = torch.repeat_interleave(torch.arange(len(usable)), sizes)
                    proto = torch.zeros(len(usable), emb.shape[1]).index_add_(0, seg, emb)
                label_vectors = torch.nn.Parameter(
                    torch.nn.functional.normalize(proto, dim=-1))
                groups.append({"params": [label_vectors], "lr": 10 * float(self.learning_rate)})
                for layer in bert.encoder.layer[first:]:
                    layer.train()
            opt = torch.optim.AdamW(groups, lr=float(self.learning_rate))
            bs = min(int(self.batch_size), len(usable))
            eye = torch.arange(bs)
            self.losses_ = []
            for step in range(int(self.steps)):
                picked = rng.choice(len(usable), size=bs, replace=False)
                pairs = [rng.choice(by[usable[k]], size=2, replace=False) for k in picked]
                u = self._upper([states[p[0]] for p in pairs] + [states[p[1]] for p in pairs])
                a, b = u[:bs], u[bs:]
                if self.loss == "softmax":
                    z = float(self.scale) * (u @ torch.nn.functional.normalize(
                        label_vectors, dim=-1).T)
                    target = torch.tensor([code[usable[k]] for k in picked] * 2)
                    loss = torch.nn.functional.cross_entropy(z, target)
                else:
                    sim = float(self.scale) * (a @ b.T)
                    loss = (torch.nn.functional.cross_entropy(sim, eye)
                            + torch.nn.functional.cross_entropy(sim.T, eye)) / 2
                opt.zero_grad()
                loss.backward()
                opt.step()
                self.losses_.append(float(loss.item()))
                if progress is not None and (step % 25 == 0 or step == self.steps - 1):
                    progress(step + 1, int(self.steps), float(loss.item()))
            self.model_.eval()
            for p in self.model_.parameters():
                p.requires_grad_(False)
            self.fit_seconds_ = time.perf_counter() - t0
        finally:
            torch.set_num_threads(prev)
        return self

    def _check_fitted(self) -> None:
        if self.__dict__.get("_model") is None and self.__dict__.get("_source") is None:
            raise NotFittedError("TunedEncoder is not fitted; call fit(texts, labels) first")

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Embed with the tuned encoder: ``(n, 384)`` float32, rows of unit length (ONNX
        Runtime when installed, else torch; module doc)."""
        self._check_fitted()
        if text_embeddings.uses_graphs():
            m = text_embeddings.ort_model()
            return m.embed_split(texts, m.n_layers - int(self.train_layers),
                                 [self._upper_session],
                                 batch_size=batch_size)[0]
        return text_embeddings.encode_with(self.model_, texts, batch_size=batch_size)

    def embed_with_shipped(self, texts: Sequence[str], *, batch_size: int = 64
                           ) -> tuple[np.ndarray, np.ndarray]:
        """``(tuned, shipped)`` embeddings of the texts: :meth:`embed` and
        :func:`feedwise.text.embeddings.embed`. In ONNX Runtime the shared lower layers run
        once for both (the two differ only in their top layers)."""
        self._check_fitted()
        if text_embeddings.uses_graphs():
            m = text_embeddings.ort_model()
            tuned, shipped = m.embed_split(texts, m.n_layers - int(self.train_layers),
                                           [self._upper_session], batch_size=batch_size,
                                           shipped=True)
            return tuned, shipped
        return self.embed(texts, batch_size=batch_size), text_embeddings.embed(texts)

    def onnx_graph(self) -> bytes | Path:
        """The ONNX graph of the tuned top layers (hidden states in, pooled unit embeddings
        out): the file saved beside the encoder, else exported from the torch model."""
        got = self.__dict__.get("_ort_graph")
        if got is None:
            st = self.__dict__.get("_source")
            saved = None if st is None else self._graph_path(st)
            if saved is not None and saved.exists() and self.__dict__.get("_model") is None:
                got = saved
            else:
                bert = _bert(self.model_)
                n = len(bert.encoder.layer)
                got = text_embeddings.export_part(bert, n - int(self.train_layers), n,
                                                  embed=False, pool=True)
            self.__dict__["_ort_graph"] = got
        return got

    def _upper_session(self, threads: int):
        sessions = self.__dict__.setdefault("_ort_sessions", {})
        key = (threads, text_embeddings.backend())
        got = sessions.get(key)
        if got is None:
            got = sessions[key] = text_embeddings.graph_session(self.onnx_graph(), threads)
        return got

    # -- persistence ------------------------------------------------------------------------------
    @staticmethod
    def _paths(path) -> tuple[Path, Path]:
        p = Path(path)
        return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")

    def _tuned_state(self) -> dict:
        bert = _bert(self.model_)
        first = len(bert.encoder.layer) - self.train_layers
        return {f"layer.{first + k}.{name}": t.detach().contiguous()
                for k, layer in enumerate(bert.encoder.layer[first:])
                for name, t in layer.state_dict().items()}

    @staticmethod
    def _graph_path(st: Path) -> Path:
        """``<path>.onnx`` beside ``<path>.safetensors``: the tuned layers' graph."""
        return st.with_name(st.name[: -len(".safetensors")] + ".onnx")

    def save(self, path) -> None:
        """Write ``<path>.safetensors`` (the tuned layers' tensors), ``<path>.json`` and,
        with ONNX Runtime installed, ``<path>.onnx`` (the tuned layers' graph)."""
        from safetensors.torch import save_file  # comes with the text extra

        self._check_fitted()
        st, meta = self._paths(path)
        st.parent.mkdir(parents=True, exist_ok=True)
        save_file(self._tuned_state(), str(st))
        graph = self._graph_path(st)
        if text_embeddings.ort_available():
            data = self.onnx_graph()
            graph.write_bytes(data if isinstance(data, bytes) else Path(data).read_bytes())
        elif graph.exists():
            graph.unlink()  # an older graph would not match these tensors
        doc = {"format": FORMAT, "params": self.get_params(),
               "base_model": text_embeddings.MODEL_PACKAGE,
               "dimension": text_embeddings.DIMENSION}
        meta.write_text(json.dumps(doc), encoding="utf-8")

    @classmethod
    def load(cls, path) -> TunedEncoder:
        """Read an encoder written by :meth:`save` (needs the ``text`` extra)."""
        st, meta = cls._paths(path)
        if not st.exists() or not meta.exists():
            raise DataError(f"no tuned encoder at {Path(path)}: expected {st.name} and "
                            f"{meta.name}")
        doc = json.loads(meta.read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT:
            raise DataError(f"{meta}: format {doc.get('format')!r} is not {FORMAT!r}")
        obj = cls(**doc["params"])
        obj.__dict__["_source"] = st
        if not text_embeddings.uses_graphs():
            obj.model_  # noqa: B018 - the torch path: build (and check) the model now
        return obj

    @staticmethod
    def _build(st: Path):
        """The shipped MiniLM with the tuned tensors of ``st`` in place (torch)."""
        from safetensors.torch import load_file  # comes with the text extra

        model = _load_base()
        bert = _bert(model)
        tensors = load_file(str(st))
        for key, t in tensors.items():
            _, idx, name = key.split(".", 2)
            layer = bert.encoder.layer[int(idx)]
            missing = layer.load_state_dict({name: t}, strict=False)
            if missing.unexpected_keys:
                raise DataError(f"{st}: tensor {key} does not fit the shipped MiniLM")
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model
