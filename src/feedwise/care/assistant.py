"""The reply assistant: one message in, intents, suggested answers and a routing decision out.

:meth:`CareAssistant.handle` never raises on a message: unreadable text (empty, binary,
over the length limit) and languages it does not answer go to a person with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from feedwise.care.answers import AnswerIndex
from feedwise.care.intents import DefaultIntentModel, load_intents, top_k
from feedwise.care.routing import RoutingPolicy, route
from feedwise.store import EventStore
from feedwise.text import embeddings as text_embeddings
from feedwise.text.classifier import TextClassifier
from feedwise.text.language import detect
from feedwise.text.sentiment import check_text, default_analyser

#: Longest message read (the stored text limit); longer ones go to a person.
MAX_CHARS = 10_000


@dataclass
class Embedded:
    """Messages after :meth:`CareAssistant.embed_many`: the texts, the row of each readable
    one in the embeddings, and the embeddings (``(for the intent model, for the answers)``;
    ``None`` when the encoder call failed)."""

    texts: list[Any]
    rows: dict[int, int]
    embeddings: tuple[Any, Any] | None


class CareAssistant:
    """Intent, answers and routing for customer messages.

    Args:
        intents: A trained intent model (``feedwise intents train``), or ``None`` to use
            only the default classes (then nothing is auto-replied unless ``policy`` sets a
            threshold for the default model's confidence).
        index: The knowledge base's :class:`AnswerIndex` (``None``: no answers).
        policy: The routing policy; by default its threshold is the intent model's chosen
            auto-reply threshold.
        analyser: A sentiment analyser (``analyse(texts) -> DataFrame``); by default
            :func:`feedwise.text.sentiment.default_analyser`.
    """

    def __init__(self, *, intents: TextClassifier | None = None,
                 index: AnswerIndex | None = None, policy: RoutingPolicy | None = None,
                 analyser: Any = None, kb_version: int | None = None) -> None:
        self.intents = intents
        self.kinds = DefaultIntentModel()
        self.index = index
        if policy is None:
            policy = RoutingPolicy()
            if intents is not None:
                policy.threshold = float(getattr(intents, "meta_", {}).get(
                    "auto_reply_threshold", 1.01))
        self.policy = policy
        self.analyser = analyser if analyser is not None else default_analyser()
        self.kb_version = kb_version

    @classmethod
    def from_store(cls, store: EventStore, *, model: str | Path | None = None,
                   policy: RoutingPolicy | None = None,
                   use_embeddings: bool | None = False) -> CareAssistant:
        """The assistant over the store's latest knowledge base and an intent model file."""
        version = store.answers_version()
        index = AnswerIndex(store.answers(version), use_embeddings=use_embeddings)
        intents = load_intents(model) if model is not None else None
        return cls(intents=intents, index=index, policy=policy, kb_version=version)

    def handle(self, text: Any, *, k: int = 3) -> dict[str, Any]:
        """The decision for one message (see the module doc); never raises."""
        try:
            return self._handle(text, k)
        except Exception as exc:  # noqa: BLE001 - a message must never break the service
            return self._human(f"internal error while reading the message: "
                               f"{type(exc).__name__}", "und")

    def _human(self, problem: str, language: str) -> dict[str, Any]:
        r = route(self.policy, problem=problem, language=language, kind="other",
                  kind_confidence=0.0, intent=None, confidence=0.0, negative=None,
                  answer_score=None)
        return {"language": language, "kind": None, "kind_confidence": None, "cues": [],
                "intent": None, "confidence": None, "top": [], "sentiment": None,
                "negative": None, "suggestions": [], "routing": r.as_dict(), "reply": None,
                "answer_id": None, "problem": problem, "kb_version": self.kb_version}

    def _sentiment(self, text: str) -> tuple[Any, float]:
        """(label, probability of negative) of one text; the default analyser's one-text
        ``score`` when it has one (no DataFrame for one message), else ``analyse``."""
        score = getattr(self.analyser, "score", None)
        if callable(score):
            row = score(text)  # label, negative, neutral, positive, language, reason
            return row[0], float(row[1])
        senti = self.analyser.analyse([text])
        return senti["label"].iloc[0], float(senti["negative"].iloc[0])

    @property
    def uses_encoder(self) -> bool:
        """Whether a message runs the sentence encoder (an embedding intent model, or
        answers retrieved by embeddings): then :meth:`handle_many` saves work."""
        return any(self._needs())

    def _needs(self) -> tuple[bool, bool]:
        """(the intent model reads embeddings, the answer index reads embeddings)."""
        return (self.intents is not None and self.intents.features != "tfidf",
                self.index is not None and bool(self.index.use_embeddings))

    def embed(self, texts: list[str]) -> tuple[Any, Any]:
        """The embeddings a message needs, for several checked texts at once: ``(for the
        intent model, for the answers)``, each ``(n, 384)`` or ``None``. A tuned intent
        model reads its own encoder's embeddings and the answers the shipped model's; in
        ONNX Runtime both come from one pass of the shared lower layers."""
        for_intent, for_answers = self._needs()
        if not texts or not (for_intent or for_answers):
            return None, None
        encoder = getattr(self.intents, "encoder_", None) if for_intent else None
        if encoder is None:
            e = text_embeddings.embed(texts)
            return (e if for_intent else None), (e if for_answers else None)
        if for_answers:
            return encoder.embed_with_shipped(texts)
        return encoder.embed(texts), None

    def handle_many(self, texts: list[Any], *, k: int = 3) -> list[dict[str, Any]]:
        """:meth:`handle` for several messages, with one encoder call for all of them
        (what a service does with concurrent messages); never raises."""
        return self.decide_many(self.embed_many(texts), k=k)

    def embed_many(self, texts: list[Any]) -> Embedded:
        """The first step of :meth:`handle_many`: the messages checked and embedded in one
        encoder call (the step a service runs one batch at a time); never raises (a failed
        call leaves each message to :meth:`handle`)."""
        checked = [check_text(t, max_chars=MAX_CHARS) for t in texts]
        ok = [i for i, (_, problem) in enumerate(checked) if problem is None]
        try:
            pair = self.embed([checked[i][0] for i in ok])
        except Exception:  # noqa: BLE001 - each message is then handled on its own
            pair = None
        return Embedded(list(texts), {i: j for j, i in enumerate(ok)}, pair)

    def decide_many(self, batch: Embedded, *, k: int = 3) -> list[dict[str, Any]]:
        """The second step of :meth:`handle_many`: each message's decision from its
        embeddings (no encoder call); never raises."""
        if batch.embeddings is None:
            return [self.handle(t, k=k) for t in batch.texts]
        e_int, e_ans = batch.embeddings
        out = []
        for i, t in enumerate(batch.texts):
            j = batch.rows.get(i)
            if j is None:
                out.append(self.handle(t, k=k))
                continue
            pair = (None if e_int is None else e_int[j:j + 1],
                    None if e_ans is None else e_ans[j:j + 1])
            try:
                out.append(self._handle(t, k, pair))
            except Exception as exc:  # noqa: BLE001 - as handle
                out.append(self._human(f"internal error while reading the message: "
                                       f"{type(exc).__name__}", "und"))
        return out

    def _handle(self, text: Any, k: int, embedded: tuple | None = None) -> dict[str, Any]:
        clean, problem = check_text(text, max_chars=MAX_CHARS)
        if problem is not None:
            return self._human(problem, "und")
        language = detect(clean)
        kp, cues = self.kinds.read(clean)
        ki = int(kp.argmax())
        kind, kind_conf = self.kinds.classes_[ki], float(kp[ki])
        # the message's embeddings: one encoder pass (its lower layers shared) for the
        # intent model and the answers, when either uses embeddings
        e_int, e_ans = self.embed([clean]) if embedded is None else embedded
        if self.intents is not None:
            proba = self.intents.predict_proba([clean], embeddings=e_int)
            top = top_k(proba, self.intents.classes_, 3)[0]
        else:
            top = top_k(kp[None, :], self.kinds.classes_, 3)[0]
        intent, confidence = top[0]["intent"], top[0]["confidence"]
        label, negative = self._sentiment(clean)
        suggestions = (self.index.search(clean, k=k, intent=intent, confidence=confidence,
                                         embedding=None if e_ans is None else e_ans[0])
                       if self.index is not None else [])
        best = suggestions[0].score if suggestions else None
        r = route(self.policy, problem=None, language=language, kind=kind,
                  kind_confidence=kind_conf, intent=intent, confidence=confidence,
                  negative=None if math.isnan(negative) else negative, answer_score=best)
        auto = r.decision == "auto"
        return {
            "language": language, "kind": kind, "kind_confidence": kind_conf,
            "cues": cues, "intent": intent, "confidence": confidence,
            "top": top, "sentiment": None if pd.isna(label) else str(label),
            "negative": None if math.isnan(negative) else negative,
            "suggestions": [s.as_dict() for s in suggestions], "routing": r.as_dict(),
            "reply": suggestions[0].answer if auto else None,
            "answer_id": suggestions[0].answer_id if suggestions else None,
            "problem": None, "kb_version": self.kb_version}
