"""Intent recognition for incoming comments and messages.

Two models, one interface (``classes_``, ``predict_proba(texts)``, ``predict(texts)``):

- :class:`DefaultIntentModel` needs no labels: the fixed classes every brand needs,
  ``question``, ``complaint``, ``praise``, ``spam`` and ``other``, from cues (a question mark,
  a question word first, complaint and praise lexicons, links and promotion phrases for
  spam). Each class's cue score becomes a probability by a softmax with a fixed slope
  (:data:`SLOPE`); ``other`` has a constant score, so a text with no cue is ``other``. The
  confidence is "calibrated-ish": the slope was set by argument (two strong cues of one
  class give it about 0.9), not fitted on labelled data, which this model never sees.
- A trained :class:`~feedwise.text.classifier.TextClassifier` (``feedwise intents train``):
  the brand's own intents (``card_arrival``, ``refund`` ...) from labelled examples, with
  temperature-calibrated confidence and the auto-reply threshold chosen on its calibration
  share (:func:`train_intents`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from feedwise.care.routing import choose_threshold
from feedwise.errors import DataError
from feedwise.text.classifier import TextClassifier, clean_texts

#: Measured settings of a trained intent model (:class:`TextClassifier` parameters), by name
#: (``feedwise intents train --recipe NAME``); chosen on validation carved from the training
#: part of BANKING77's first fold, then measured once over its five folds (docs/care.md,
#: ``benchmarks/care.py``):
#:
#: * ``few-shot`` (about 10 examples per intent): MiniLM's top 2 layers tuned 100 steps on
#:   same-intent pairs, each intent's name as one more example; 0.857 with 10 per intent;
#: * ``all-data``: word+char TF-IDF and MiniLM embeddings (top layer tuned 300 steps, 64
#:   intents a step) in one logistic regression; 0.931 with all training data.
#:
#: Both embed each message with MiniLM (``feedwise[text]``), so they cost more per message
#: than the TF-IDF default.
RECIPES: dict[str, dict[str, Any]] = {
    "few-shot": {"features": "embeddings", "C": 3.0, "encoder_steps": 100,
                 "encoder_layers": 2, "encoder_lr": 1e-4, "label_names": True},
    "all-data": {"features": "both", "C": 30.0, "embedding_weight": 1.0,
                 "encoder_steps": 300, "encoder_layers": 1, "encoder_lr": 2e-4,
                 "encoder_batch": 64},
}

#: The fixed classes of the default model.
DEFAULT_CLASSES: tuple[str, ...] = ("question", "complaint", "praise", "spam", "other")
#: Softmax slope of the default model's cue scores.
SLOPE = 1.6
#: The constant score of ``other``.
OTHER_SCORE = 0.8

_QWORDS = ("how", "what", "where", "when", "why", "who", "which", "can", "could", "do",
           "does", "did", "is", "are", "will", "would", "should", "may", "whats", "where's",
           "what's", "how's", "anyone", "any")
_QPHRASES = re.compile(
    r"\b(how (do|can|to|long|much)|is it possible|i (need|want) to know|i('m| am) wondering|"
    r"wondering|help me|i need help|please (help|advise|tell)|could you|can you|can i|"
    r"do you|is there|are there|where (is|can)|what (is|are))\b", re.I)
_COMPLAINT = re.compile(
    r"\b(terrible|awful|worst|horrible|useless|ridiculous|unacceptable|disgusting|pathetic|"
    r"rude|scam(med)?|fraud|broken|not working|doesn'?t work|does not work|didn'?t work|"
    r"never (arrived|came|received|got)|still (waiting|not|no|hasn'?t|haven'?t)|"
    r"not (received|arrived|happy|ok|okay)|charged (me )?twice|double charged|overcharged|"
    r"refund|complain(t|ing)?|disappointed|disappointing|angry|furious|annoyed|fed up|"
    r"frustrat(ed|ing)|waste|wrong|failed|declined|problem|issue|delay(ed)?|late|lost|"
    r"cancel(led)?|hate|bad|poor|slow|stuck|error|missing|damaged|unhappy)\b", re.I)
_PRAISE = re.compile(
    r"\b(thanks?( you)?|thx|ty|love|loved|loving|great|awesome|amazing|excellent|best|"
    r"perfect|fantastic|wonderful|brilliant|superb|happy|impressed|helpful|well done|"
    r"good job|kudos|appreciate(d)?|recommend|favou?rite|nice|cool|beautiful)\b", re.I)
_PRAISE_EMOJI = re.compile("[\u2764\U0001F44D\U0001F44F\U0001F64C\U0001F60D\U0001F970"
                           "\U0001F389\U0001F525\U0001F4AF\U0001F60A\U0001F600-\U0001F606]")
_URL = re.compile(r"(https?://|www\.|\b\w+\.(ly|xyz|top|click|biz|ru|io)\b)", re.I)
_SPAM = re.compile(
    r"\b(click (here|the link)|free (money|gift|followers|iphone|crypto)|win(ner)?\b.*\$|"
    r"earn \$?\d+|make money|crypto|bitcoin|forex|investment opportunit|dm me|"
    r"check (out )?my (page|profile|channel)|follow (me|back)|promo code|giveaway|"
    r"sub4sub|f4f|onlyfans|work from home|guaranteed|100% free|limited offer|act now)\b", re.I)


def _cues(text: str) -> dict[str, list[str]]:
    """The cues found in ``text``, per class (``other`` has none)."""
    t = text.strip()
    low = t.lower()
    out: dict[str, list[str]] = {c: [] for c in DEFAULT_CLASSES}
    if "?" in t:
        out["question"].append("question mark")
    first = re.match(r"[\w']+", low)
    if first and first.group(0) in _QWORDS:
        out["question"].append(f"starts with {first.group(0)!r}")
    out["question"] += [f"{m.group(0).lower()!r}" for m in _QPHRASES.finditer(t)][:2]
    out["complaint"] += [f"{m.group(0).lower()!r}" for m in _COMPLAINT.finditer(t)][:3]
    praise = [m.group(0).lower() for m in _PRAISE.finditer(t)]
    # "not great", "no thanks": a negated praise word is no praise
    praise = [w for w in praise if not re.search(rf"\b(not|no|never)\s+{re.escape(w)}", low)]
    out["praise"] += [repr(w) for w in praise][:3]
    if _PRAISE_EMOJI.search(t):
        out["praise"].append("praise emoji")
    if _URL.search(t):
        out["spam"].append("a link")
    out["spam"] += [f"{m.group(0).lower()!r}" for m in _SPAM.finditer(t)][:2]
    letters = [c for c in t if c.isalpha()]
    if len(letters) >= 12 and sum(c.isupper() for c in letters) > 0.8 * len(letters):
        out["spam"].append("shouting in capitals")
    if re.search(r"(.)\1{6,}", t):
        out["spam"].append("a character repeated")
    return out


def _scores(cues: dict[str, list[str]]) -> np.ndarray:
    s = np.array([float(len(cues[c])) for c in DEFAULT_CLASSES])
    s[DEFAULT_CLASSES.index("other")] = OTHER_SCORE
    # a complaint asked as a question ("why is my card still not here?") is a complaint
    if s[1] >= 1 and s[0] >= 1:
        s[0] -= 0.5
    return s


class DefaultIntentModel:
    """The fixed classes (question, complaint, praise, spam, other) with no labelled data;
    see the module doc. Stateless: nothing to fit, nothing to save."""

    classes_: list[str] = list(DEFAULT_CLASSES)

    def predict_proba(self, texts: Sequence[Any]) -> np.ndarray:
        """Class probabilities, ``(n, 5)``, columns in ``classes_`` order."""
        rows = [_scores(_cues(t)) for t in clean_texts(texts)]
        if not rows:
            return np.zeros((0, len(DEFAULT_CLASSES)))
        z = SLOPE * np.vstack(rows)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def read(self, text: str) -> tuple[np.ndarray, list[str]]:
        """One checked text's probabilities and the cues of its most probable class (one
        pass over the text, for the per-message path)."""
        cues = _cues(text)
        z = SLOPE * _scores(cues)
        e = np.exp(z - z.max())
        p = e / e.sum()
        return p, cues[DEFAULT_CLASSES[int(p.argmax())]]

    def predict(self, texts: Sequence[Any]) -> list[str]:
        return [self.classes_[i] for i in self.predict_proba(texts).argmax(axis=1)]

    def explain(self, text: Any) -> list[str]:
        """The cues behind ``text``'s class, in words (empty: no cue, so ``other``)."""
        t = clean_texts([text])[0]
        cues = _cues(t)
        label = self.predict([t])[0]
        return cues[label]


def top_k(proba: np.ndarray, classes: Sequence[str], k: int = 3) -> list[list[dict]]:
    """Per row, the ``k`` most probable classes as ``{"intent", "confidence"}``, best first."""
    k = min(k, len(classes))
    order = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    return [[{"intent": classes[j], "confidence": float(proba[i, j])} for j in row]
            for i, row in enumerate(order)]


def train_intents(texts: Sequence[str], labels: Sequence[str], *,
                  target_precision: float = 0.97, embeddings: np.ndarray | None = None,
                  **params: Any) -> TextClassifier:
    """A :class:`TextClassifier` of the brand's intents, with the auto-reply threshold for
    ``target_precision`` chosen on its calibration share and kept in ``meta_``
    (``auto_reply_threshold``, ``target_precision``, and the validation coverage and
    precision at it). ``params`` go to :class:`TextClassifier`; ``embeddings`` are
    precomputed embeddings of ``texts`` (optional)."""
    params.setdefault("calibrate", True)
    clf = TextClassifier(**params).fit(texts, labels, embeddings=embeddings)
    meta: dict[str, Any] = {"target_precision": float(target_precision)}
    if clf.validation_ is not None:
        conf, correct = clf.validation_["confidence"], clf.validation_["correct"]
        t = choose_threshold(conf, correct, target_precision)
        hit = conf >= t
        meta.update(auto_reply_threshold=t, validation_coverage=float(hit.mean()),
                    validation_precision=float(correct[hit].mean()) if hit.any() else None,
                    validation_size=int(len(conf)))
    else:
        meta["auto_reply_threshold"] = 1.01  # nothing to choose it on: never auto-reply
        meta["note"] = "too few examples per intent to hold out a calibration share"
    clf.meta_ = meta
    return clf


def load_intents(path: str | Path) -> TextClassifier:
    """A model written by ``feedwise intents train`` (``TextClassifier.save``)."""
    clf = TextClassifier.load(path)
    if "auto_reply_threshold" not in clf.meta_:
        raise DataError(f"{path}: a text classifier but not an intent model (no auto-reply "
                        "threshold); train one with `feedwise intents train`")
    return clf
