"""A trainable text classifier: word+char TF-IDF and/or sentence embeddings, a linear model.

``TextClassifier`` follows the house estimator rules: hyperparameters in ``__init__``,
``fit() -> self``, learned state ending in ``_``, :class:`~feedwise.errors.NotFittedError`
before ``fit``, and ``save``/``load`` as ``.npz`` + JSON (the TF-IDF vocabularies, idf
weights and the linear model's coefficients are stored as plain arrays, never pickled)::

    clf = TextClassifier().fit(texts, labels)
    clf.predict(["where is my card?"])          # ['card_arrival']
    clf.predict_proba(texts)                    # (n, len(clf.classes_))
    clf.save("intents")                         # intents.npz + intents.json
    TextClassifier.load("intents")

Features:

- ``"tfidf"``: word 1-2-grams and character 2-5-grams (within word boundaries), sublinear
  TF-IDF, L2-normalised, the two blocks side by side.
- ``"embeddings"``: the shipped MiniLM sentence embeddings (:mod:`feedwise.text.embeddings`,
  the ``text`` extra).
- ``"both"``: the TF-IDF blocks and the embeddings (scaled by ``embedding_weight``) side by
  side in one linear model.

With embeddings, ``prototype_weight > 0`` adds a nearest-centroid term to the linear
model's logits: ``prototype_weight`` times the cosine of the text's embedding with each
class's prototype (the L2-normalised mean embedding of its training examples, kept as
``prototypes_``). It helps with few examples per class, where a centroid is a steadier
estimate than a linear model's weights.

Few examples per intent (SetFit-style): ``encoder_steps > 0`` fine-tunes the MiniLM
encoder's top ``encoder_layers`` layers contrastively on pairs of same-label training texts
(:class:`feedwise.text.finetune.TunedEncoder`) before the linear model is fitted on its
embeddings; the tuned layers are saved beside the model as ``<path>.encoder.safetensors``
(+ ``.json``), never pickled. ``label_names=True`` adds each label's name, underscores as
spaces (``card_arrival`` -> "card arrival"), as one more training example of the label.

Confidence: with ``calibrate=True`` the model's logits are divided by a temperature fitted
(by log-loss) on a stratified validation share carved from the training data, then the
model is refitted on all of it; the temperature is kept. Scores are therefore calibrated on
data the final model did not see at calibration time, as well as one split allows. The
calibration share's confidences and hits are kept as ``validation_`` (saved with the model),
so a caller can choose a confidence threshold on them (``feedwise.care.routing``); ``meta_``
is a JSON-able dict saved alongside (e.g. that threshold).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from feedwise.errors import ConfigError, DataError, NotFittedError
from feedwise.text import embeddings as text_embeddings
from feedwise.text.finetune import TunedEncoder

FEATURES = ("tfidf", "embeddings", "both")
FORMAT = "feedwise.TextClassifier/1"
MAX_CHARS = 10_000  # longer texts are cut (the stored text limit); nothing raises on length
#: Up to this many texts, logits are computed row by row without a sparse matrix.
FEW = 4


def clean_texts(texts: Sequence[Any]) -> list[str]:
    """Texts as ``str``: ``None``/NaN become ``""``, bytes are decoded, long ones are cut."""
    out: list[str] = []
    for t in texts:
        if t is None or (isinstance(t, float) and np.isnan(t)):
            out.append("")
        elif isinstance(t, bytes | bytearray):
            out.append(bytes(t).decode("utf-8", errors="replace")[:MAX_CHARS])
        else:
            out.append(str(t)[:MAX_CHARS])
    return out


def _word_vectorizer(max_features: int | None) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=1,
        lowercase=True, token_pattern=r"(?u)\b\w+\b", max_features=max_features,
        dtype=np.float32,
    )


def _char_vectorizer(max_features: int | None) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2,
        lowercase=True, max_features=max_features, dtype=np.float32,
    )


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising validation log-loss (a grid, then a local refinement)."""

    def nll(t: float) -> float:
        p = _softmax(logits / t)
        return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))

    # bounded below: a small validation share that the model gets all right would otherwise
    # drive the temperature to 0 and every confidence to 1
    grid = np.exp(np.linspace(np.log(0.2), np.log(20.0), 61))
    losses = [nll(t) for t in grid]
    best = float(grid[int(np.argmin(losses))])
    fine = np.clip(best * np.exp(np.linspace(-0.12, 0.12, 25)), 0.2, 20.0)
    return float(fine[int(np.argmin([nll(t) for t in fine]))])


def _tfidf_terms(vec: TfidfVectorizer, text: str) -> tuple[np.ndarray, np.ndarray]:
    """One text's TF-IDF row as (column indices, values), unsorted: the analyser's terms
    counted against the vocabulary, sublinear tf, times idf, L2-normalised."""
    analyse = vec.__dict__.get("_fw_analyzer")
    if analyse is None:
        analyse = vec.__dict__["_fw_analyzer"] = vec.build_analyzer()
    idf = vec.__dict__.get("_fw_idf")
    if idf is None:
        idf = vec.__dict__["_fw_idf"] = np.asarray(vec.idf_, dtype=np.float64)
    vocab = vec.vocabulary_
    counts: dict[int, int] = {}
    for term in analyse(text):
        j = vocab.get(term)
        if j is not None:
            counts[j] = counts.get(j, 0) + 1
    if not counts:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
    tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
    val = (1.0 + np.log(tf)) * idf[idx]
    val /= np.sqrt(val @ val)
    return idx, val


def _tfidf_rows(vec: TfidfVectorizer, texts: list[str]) -> sp.csr_matrix:
    """``vec.transform(texts)`` without scikit-learn's per-call validation (which costs more
    than the work for one short message). Equal to ``vec.transform`` (tested)."""
    vocab = vec.vocabulary_
    indptr, indices, data = [0], [], []
    for t in texts:
        idx, val = _tfidf_terms(vec, t)
        if len(idx):
            order = np.argsort(idx)
            indices.append(idx[order])
            data.append(val[order])
        indptr.append(indptr[-1] + len(idx))
    ind = np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64)
    dat = np.concatenate(data) if data else np.zeros(0)
    return sp.csr_matrix((dat.astype(np.float32), ind, np.asarray(indptr)),
                         shape=(len(texts), len(vocab)))


def _prototypes(emb: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Each class's L2-normalised mean embedding, ``(n_classes, dim)``."""
    proto = np.zeros((n_classes, emb.shape[1]))
    np.add.at(proto, y, emb)
    norm = np.linalg.norm(proto, axis=1, keepdims=True)
    return proto / np.where(norm > 0, norm, 1.0)


def _cosine(emb: np.ndarray, proto: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(emb, axis=1, keepdims=True)
    return (emb / np.where(norm > 0, norm, 1.0)) @ proto.T


class TextClassifier:
    """Word+char TF-IDF and/or sentence embeddings with a multinomial logistic regression.

    Parameters
    ----------
    features: ``"tfidf"``, ``"embeddings"`` (needs the ``text`` extra) or ``"both"``.
    C: inverse L2 regularisation of the logistic regression.
    calibrate: fit a temperature on a validation share of the training data (see module doc).
    random_state: seed of the calibration split and the solver.
    embedding_weight: scale of the embedding block against the TF-IDF blocks (``"both"``).
    calibration_share: share of the training data held out to fit the temperature.
    max_iter: solver iterations.
    max_features: cap on each TF-IDF vocabulary (``None``: no cap).
    prototype_weight: weight of the class-prototype cosine term (embeddings only; 0: off).
    encoder_steps: steps of contrastive fine-tuning of the MiniLM encoder (embeddings only;
        0: the shipped encoder as it is). See the module doc.
    encoder_layers: how many top encoder layers are tuned.
    encoder_lr: the tuning's learning rate.
    encoder_batch: intents (pairs) per tuning step.
    label_names: add each label's name as one more training example of it.
    """

    def __init__(
        self,
        *,
        features: str = "tfidf",
        C: float = 10.0,
        calibrate: bool = True,
        random_state: int = 0,
        embedding_weight: float = 1.0,
        calibration_share: float = 0.2,
        max_iter: int = 300,
        max_features: int | None = None,
        prototype_weight: float = 0.0,
        encoder_steps: int = 0,
        encoder_layers: int = 2,
        encoder_lr: float = 1e-4,
        label_names: bool = False,
        encoder_batch: int = 32,
    ) -> None:
        self.features = features
        self.C = C
        self.calibrate = calibrate
        self.random_state = random_state
        self.embedding_weight = embedding_weight
        self.calibration_share = calibration_share
        self.max_iter = max_iter
        self.max_features = max_features
        self.prototype_weight = prototype_weight
        self.encoder_steps = encoder_steps
        self.encoder_layers = encoder_layers
        self.encoder_lr = encoder_lr
        self.label_names = label_names
        self.encoder_batch = encoder_batch

    # -- parameters -------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {
            "features": self.features, "C": self.C, "calibrate": self.calibrate,
            "random_state": self.random_state, "embedding_weight": self.embedding_weight,
            "calibration_share": self.calibration_share, "max_iter": self.max_iter,
            "max_features": self.max_features, "prototype_weight": self.prototype_weight,
            "encoder_steps": self.encoder_steps, "encoder_layers": self.encoder_layers,
            "encoder_lr": self.encoder_lr, "label_names": self.label_names,
            "encoder_batch": self.encoder_batch,
        }

    def _check_params(self) -> None:
        if self.features not in FEATURES:
            raise ConfigError(
                f"TextClassifier(features={self.features!r}): use one of {', '.join(FEATURES)}"
            )
        if not (isinstance(self.C, int | float) and self.C > 0):
            raise ConfigError(f"TextClassifier(C={self.C!r}): C must be a positive number")
        if not 0.0 < float(self.calibration_share) < 0.5:
            raise ConfigError(
                f"TextClassifier(calibration_share={self.calibration_share!r}): "
                "use a share between 0 and 0.5"
            )
        if not (isinstance(self.prototype_weight, int | float) and self.prototype_weight >= 0):
            raise ConfigError(f"TextClassifier(prototype_weight={self.prototype_weight!r}): "
                              "use a number >= 0")
        if self.prototype_weight and not self._uses_embeddings:
            raise ConfigError("TextClassifier(prototype_weight>0) needs features "
                              "'embeddings' or 'both' (prototypes are mean embeddings)")
        if not (isinstance(self.encoder_steps, int) and self.encoder_steps >= 0):
            raise ConfigError(f"TextClassifier(encoder_steps={self.encoder_steps!r}): use an "
                              "integer >= 0")
        if self.encoder_steps and not self._uses_embeddings:
            raise ConfigError("TextClassifier(encoder_steps>0) needs features 'embeddings' or "
                              "'both' (it fine-tunes the sentence encoder)")

    @property
    def _uses_tfidf(self) -> bool:
        return self.features in ("tfidf", "both")

    @property
    def _uses_embeddings(self) -> bool:
        return self.features in ("embeddings", "both")

    # -- features ---------------------------------------------------------------------------
    def _embed(self, texts: list[str]) -> np.ndarray:
        encoder = getattr(self, "encoder_", None)
        if encoder is not None:
            return encoder.embed(texts)
        return text_embeddings.embed(texts)

    @property
    def _uses_prototypes(self) -> bool:
        return self._uses_embeddings and float(self.prototype_weight) > 0

    def _fit_features(self, texts: list[str], emb: np.ndarray | None):
        self._last_emb = None
        blocks = []
        if self._uses_tfidf:
            self.word_vectorizer_ = _word_vectorizer(self.max_features)
            self.char_vectorizer_ = _char_vectorizer(self.max_features)
            blocks.append(self.word_vectorizer_.fit_transform(texts))
            try:
                blocks.append(self.char_vectorizer_.fit_transform(texts))
            except ValueError:  # too few texts for min_df=2: fall back to min_df=1
                self.char_vectorizer_.set_params(min_df=1)
                blocks.append(self.char_vectorizer_.fit_transform(texts))
        if self._uses_embeddings:
            e = self._embed(texts) if emb is None else emb
            self._last_emb = e
            blocks.append(sp.csr_matrix(e * float(self.embedding_weight)))
        return sp.hstack(blocks, format="csr") if len(blocks) > 1 else sp.csr_matrix(blocks[0])

    def _transform(self, texts: list[str], emb: np.ndarray | None = None):
        """(feature matrix, embeddings or ``None``)."""
        blocks = []
        e = None
        if self._uses_tfidf:
            blocks.append(_tfidf_rows(self.word_vectorizer_, texts))
            blocks.append(_tfidf_rows(self.char_vectorizer_, texts))
        if self._uses_embeddings:
            e = self._embed(texts) if emb is None else emb
            blocks.append(sp.csr_matrix(e * float(self.embedding_weight)))
        X = sp.hstack(blocks, format="csr") if len(blocks) > 1 else sp.csr_matrix(blocks[0])
        return X, e

    def _linear(self) -> LogisticRegression:
        return LogisticRegression(
            C=float(self.C), max_iter=int(self.max_iter), random_state=self.random_state,
        )

    # -- fit / predict ----------------------------------------------------------------------
    def fit(
        self, texts: Sequence[str], labels: Sequence[str], *, embeddings: np.ndarray | None = None
    ) -> TextClassifier:
        """Learn from labelled texts. ``embeddings`` may pass precomputed rows of
        :func:`feedwise.text.embeddings.embed` for ``texts`` (a cache for benchmarks)."""
        self._check_params()
        texts = clean_texts(texts)
        labels = [str(v) for v in labels]
        if len(texts) != len(labels):
            raise DataError(
                f"TextClassifier.fit: {len(texts)} texts but {len(labels)} labels; "
                "pass one label per text"
            )
        if not texts:
            raise DataError("TextClassifier.fit: no training texts; pass labelled examples")
        classes = sorted(set(labels))
        if len(classes) < 2:
            raise DataError(
                f"TextClassifier.fit: only one label ({classes[0]!r}); a classifier needs "
                "at least two labels"
            )
        y = np.searchsorted(np.array(classes), np.array(labels))
        self.classes_ = classes
        self.temperature_ = 1.0
        self.validation_ = None
        self.encoder_ = None
        counts = np.bincount(y, minlength=len(classes))
        if self.calibrate and counts.min() >= 2 and len(texts) >= 4 * len(classes):
            self.temperature_ = self._calibration_temperature(texts, y, embeddings)
        self.meta_ = dict(getattr(self, "meta_", {}) or {})
        if self.encoder_steps:
            self.encoder_ = TunedEncoder(
                steps=int(self.encoder_steps), learning_rate=float(self.encoder_lr),
                train_layers=int(self.encoder_layers), random_state=self.random_state,
                batch_size=int(self.encoder_batch),
            ).fit(texts, labels)
            embeddings = None  # precomputed rows come from the shipped encoder: re-embed
        if self.label_names:
            names = [c.replace("_", " ") for c in classes]
            if embeddings is not None:
                embeddings = np.vstack([embeddings, self._embed(names)])
            texts = texts + names
            y = np.concatenate([y, np.arange(len(classes))])
        X = self._fit_features(texts, embeddings)
        model = self._linear().fit(X, y)
        self.prototypes_ = None
        if self._uses_prototypes:
            self.prototypes_ = _prototypes(np.asarray(self._last_emb, dtype=np.float64), y,
                                           len(classes))
        self._last_emb = None
        self.coef_ = model.coef_.astype(np.float32)
        self.intercept_ = model.intercept_.astype(np.float32)
        if len(classes) == 2:  # sklearn keeps one row for two classes: make it two logits
            self.coef_ = np.vstack([-self.coef_ / 2, self.coef_ / 2])
            self.intercept_ = np.concatenate([-self.intercept_ / 2, self.intercept_ / 2])
        self.n_features_ = int(X.shape[1])
        return self

    def _calibration_temperature(
        self, texts: list[str], y: np.ndarray, emb: np.ndarray | None
    ) -> float:
        from sklearn.model_selection import StratifiedShuffleSplit

        n_classes = int(y.max()) + 1
        share = max(float(self.calibration_share), n_classes / len(texts))
        share = min(share, 0.5)
        split = StratifiedShuffleSplit(n_splits=1, test_size=share, random_state=self.random_state)
        tr, va = next(split.split(np.zeros(len(y)), y))
        inner = TextClassifier(**{**self.get_params(), "calibrate": False})
        inner.fit(
            [texts[i] for i in tr], [str(v) for v in y[tr]],
            embeddings=None if emb is None else emb[tr],
        )
        logits = inner._logits([texts[i] for i in va], None if emb is None else emb[va])
        # inner classes are the label codes as strings, possibly a subset: map back to codes
        cols = np.array([int(c) for c in inner.classes_])
        full = np.full((len(va), n_classes), -1e4, dtype=np.float64)
        full[:, cols] = logits
        t = _fit_temperature(full, y[va])
        p = _softmax(full / t)
        # what the calibration share says about confidence: kept (and saved) so a caller can
        # choose an auto-reply threshold on data the inner model did not see
        self.validation_ = {"confidence": p.max(axis=1),
                            "correct": (p.argmax(axis=1) == y[va]).astype(np.float64)}
        return t

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("TextClassifier is not fitted; call fit(texts, labels) first")

    def _coef_rows(self) -> np.ndarray:
        """``coef_`` transposed, C-contiguous: one row of class weights per feature."""
        ct = self.__dict__.get("_coef_t")
        if ct is None or ct.shape[0] != self.coef_.shape[1]:
            ct = self.__dict__["_coef_t"] = np.ascontiguousarray(self.coef_.T,
                                                                 dtype=np.float64)
        return ct

    def _logits_few(self, texts: list[str], emb: np.ndarray | None
                    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The logits of a few texts without building a sparse matrix (a service's one
        message): each text's non-zero features pick their rows of class weights. Equal
        to the sparse product (tested)."""
        ct = self._coef_rows()
        z = np.tile(self.intercept_.astype(np.float64), (len(texts), 1))
        off = 0
        if self._uses_tfidf:
            for vec in (self.word_vectorizer_, self.char_vectorizer_):
                for r, t in enumerate(texts):
                    idx, val = _tfidf_terms(vec, t)
                    if len(idx):
                        z[r] += val @ ct[idx + off]
                off += len(vec.vocabulary_)
        e = None
        if self._uses_embeddings:
            e = np.asarray(self._embed(texts) if emb is None else emb, dtype=np.float64)
            z += (e * float(self.embedding_weight)) @ ct[off:]
        return z, e

    def _logits(self, texts: list[str], emb: np.ndarray | None = None) -> np.ndarray:
        if len(texts) <= FEW:
            z, e = self._logits_few(texts, emb)
        else:
            X, e = self._transform(texts, emb)
            z = np.asarray(X @ self.coef_.T, dtype=np.float64) + self.intercept_
        if getattr(self, "prototypes_", None) is not None:
            z += float(self.prototype_weight) * _cosine(np.asarray(e, dtype=np.float64),
                                                        self.prototypes_)
        return z

    def decision_function(
        self, texts: Sequence[str], *, embeddings: np.ndarray | None = None
    ) -> np.ndarray:
        """Raw (uncalibrated) logits, shape ``(n, len(classes_))``."""
        self._check_fitted()
        return self._logits(clean_texts(texts), embeddings)

    def predict_proba(
        self, texts: Sequence[str], *, embeddings: np.ndarray | None = None
    ) -> np.ndarray:
        """Class probabilities, shape ``(n, len(classes_))``, columns in ``classes_`` order."""
        self._check_fitted()
        texts = clean_texts(texts)
        if not texts:
            return np.zeros((0, len(self.classes_)))
        return _softmax(self._logits(texts, embeddings) / self.temperature_)

    def predict(self, texts: Sequence[str], *, embeddings: np.ndarray | None = None) -> list[str]:
        """The most probable label of each text."""
        proba = self.predict_proba(texts, embeddings=embeddings)
        return [self.classes_[i] for i in proba.argmax(axis=1)]

    # -- persistence --------------------------------------------------------------------------
    @staticmethod
    def _paths(path) -> tuple[Path, Path]:
        p = Path(path)
        base = p.with_suffix("") if p.suffix in (".npz", ".json") else p
        return base.with_name(base.name + ".npz"), base.with_name(base.name + ".json")

    def save(self, path) -> None:
        """Write ``<path>.npz`` (arrays) and ``<path>.json`` (parameters, classes, vocabularies)."""
        self._check_fitted()
        npz, meta = self._paths(path)
        npz.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"coef": self.coef_, "intercept": self.intercept_}
        doc: dict[str, Any] = {
            "format": FORMAT, "params": self.get_params(), "classes": list(self.classes_),
            "temperature": float(self.temperature_), "n_features": self.n_features_,
            "meta": getattr(self, "meta_", {}),
        }
        if getattr(self, "prototypes_", None) is not None:
            arrays["prototypes"] = self.prototypes_
        if getattr(self, "encoder_", None) is not None:
            enc = npz.with_name(npz.name[: -len(".npz")] + ".encoder")
            self.encoder_.save(enc)
            doc["encoder"] = enc.name
        if getattr(self, "validation_", None) is not None:
            arrays["val_confidence"] = np.asarray(self.validation_["confidence"])
            arrays["val_correct"] = np.asarray(self.validation_["correct"])
        if self._uses_tfidf:
            for name, vec in (("word", self.word_vectorizer_), ("char", self.char_vectorizer_)):
                vocab = vec.vocabulary_
                terms = sorted(vocab, key=vocab.__getitem__)
                doc[f"{name}_terms"] = terms
                doc[f"{name}_min_df"] = vec.min_df
                arrays[f"{name}_idf"] = vec.idf_.astype(np.float64)
        np.savez_compressed(npz, **arrays)
        meta.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path) -> TextClassifier:
        """Read a classifier written by :meth:`save`."""
        npz, meta = cls._paths(path)
        if not npz.exists() or not meta.exists():
            raise DataError(
                f"no text classifier at {Path(path)}: expected {npz.name} and {meta.name} "
                "(write one with TextClassifier.save or `feedwise intents train`)"
            )
        try:
            doc = json.loads(meta.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{meta}: not a text classifier description ({exc})") from exc
        if doc.get("format") != FORMAT:
            raise DataError(f"{meta}: format {doc.get('format')!r} is not {FORMAT!r}")
        obj = cls(**doc["params"])
        with np.load(npz, allow_pickle=False) as data:
            obj.coef_ = data["coef"]
            obj.intercept_ = data["intercept"]
            obj.prototypes_ = data["prototypes"] if "prototypes" in data.files else None
            if obj._uses_tfidf:
                for name, make in (("word", _word_vectorizer), ("char", _char_vectorizer)):
                    vec = make(obj.max_features)
                    vec.set_params(min_df=doc[f"{name}_min_df"])
                    terms = doc[f"{name}_terms"]
                    vec.vocabulary_ = {t: i for i, t in enumerate(terms)}
                    vec.idf_ = data[f"{name}_idf"]
                    setattr(obj, f"{name}_vectorizer_", vec)
            obj.validation_ = (
                {"confidence": data["val_confidence"], "correct": data["val_correct"]}
                if "val_confidence" in data.files else None)
        obj.encoder_ = None
        if doc.get("encoder"):
            obj.encoder_ = TunedEncoder.load(npz.with_name(doc["encoder"]))
        obj.meta_ = dict(doc.get("meta") or {})
        obj.classes_ = list(doc["classes"])
        obj.temperature_ = float(doc["temperature"])
        obj.n_features_ = int(doc["n_features"])
        return obj
