"""Answer retrieval: the best knowledge-base answers for a message, with scores and why.

Each entry is indexed by its question variants (and, at a lower weight, its answer text).
A message is scored against every entry by

- **BM25** (Okapi, ``k1 = 1.5``, ``b = 0.75``) over lower-cased word tokens without stop
  words: the entry's score is its best question variant's, squashed to ``[0, 1)`` by
  ``s / (s + bm25_half)``;
- **embeddings** (when the ``text`` extra is installed and ``use_embeddings`` is not
  ``False``): the cosine of the MiniLM sentence embeddings of the message and the entry's
  closest question variant, clipped at 0;
- the **intent**: an entry whose ``intent`` is the message's predicted intent gets
  ``intent_weight * confidence``.

The blend is ``(1 - w) * bm25 + w * cosine + intent bonus`` with ``w = embedding_weight``
(``w = 0`` without embeddings), and each suggestion says which parts made its score.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from feedwise.text import embeddings as text_embeddings

_TOKEN = re.compile(r"\w+", re.U)
STOP = frozenset("""a an the and or but if to of in on at for by with from is are was were be
been am i me my we our you your it its this that these those do does did have has had can
could would should will shall may might please there here so as about into than then just
hi hello hey""".split())


def tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(str(text).lower()) if t not in STOP]


@dataclass
class Suggestion:
    """One suggested answer."""

    answer_id: str
    answer: str
    score: float
    bm25: float
    cosine: float | None
    intent_match: bool
    matched_question: str
    why: str

    def as_dict(self) -> dict:
        return {"answer_id": self.answer_id, "answer": self.answer,
                "score": round(self.score, 4), "bm25": round(self.bm25, 4),
                "cosine": None if self.cosine is None else round(self.cosine, 4),
                "intent_match": self.intent_match,
                "matched_question": self.matched_question, "why": self.why}


class AnswerIndex:
    """BM25 (+ embeddings) over the question variants of a knowledge base (module doc).

    Args:
        entries: The knowledge base (``answer_id``, ``questions``, ``answer``, ``intent``;
            rows with ``active`` false are left out).
        use_embeddings: ``None``: when the ``text`` extra is installed; ``False``: never.
    """

    def __init__(self, entries: pd.DataFrame, *, k1: float = 1.5, b: float = 0.75,
                 bm25_half: float = 4.0, embedding_weight: float = 0.5,
                 intent_weight: float = 0.3, use_embeddings: bool | None = False) -> None:
        self.k1, self.b, self.bm25_half = k1, b, bm25_half
        self.intent_weight = intent_weight
        if "active" in entries.columns:
            entries = entries[entries["active"].fillna(True).astype(bool)]
        self.entries = entries.reset_index(drop=True)
        # plain Python copies of what search reads (no pandas on the per-message path)
        self._ids = [str(v) for v in self.entries["answer_id"]]
        self._answers = [str(v) for v in self.entries["answer"]]
        intents = (self.entries["intent"] if "intent" in self.entries.columns
                   else [None] * len(self.entries))
        self._intents = np.array([None if v is None or v != v else str(v) for v in intents],
                                 dtype=object)
        self.use_embeddings = (text_embeddings.available() if use_embeddings is None
                               else bool(use_embeddings))
        self.embedding_weight = embedding_weight if self.use_embeddings else 0.0
        docs, owner, variants = [], [], []
        for i, questions in enumerate(self.entries["questions"]):
            for q in list(questions):
                docs.append(tokens(q))
                owner.append(i)
                variants.append(str(q))
            docs.append(tokens(self._answers[i]))  # the answer text, as one more variant
            owner.append(i)
            variants.append("")
        self._owner = np.array(owner, dtype=np.int64)
        self._variants = variants
        self._is_answer = np.array([v == "" for v in variants])
        self._n_docs = len(docs)
        self._len = np.array([len(d) for d in docs], dtype=float)
        self._avg = float(self._len.mean()) if len(docs) else 0.0
        self._tf: dict[str, dict[int, int]] = {}
        for j, d in enumerate(docs):
            for t, n in Counter(d).items():
                self._tf.setdefault(t, {})[j] = n
        self._idf = {t: math.log(1 + (self._n_docs - len(p) + 0.5) / (len(p) + 0.5))
                     for t, p in self._tf.items()}
        self._emb = None
        if self.use_embeddings and variants:
            qs = [v for v in variants if v]
            self._emb_owner = self._owner[~self._is_answer]
            self._emb_text = qs
            self._emb = text_embeddings.embed(qs)

    def __len__(self) -> int:
        return len(self.entries)

    def _bm25(self, query: list[str]) -> np.ndarray:
        s = np.zeros(self._n_docs)
        if not self._n_docs:
            return s
        norm = self.k1 * (1 - self.b + self.b * self._len / max(self._avg, 1e-9))
        for t in set(query):
            post = self._tf.get(t)
            if not post:
                continue
            idx = np.fromiter(post.keys(), dtype=np.int64)
            tf = np.fromiter(post.values(), dtype=float)
            s[idx] += self._idf[t] * tf * (self.k1 + 1) / (tf + norm[idx])
        s[self._is_answer] *= 0.5  # the answer text counts half as much as a question
        return s

    def search(self, text: str, *, k: int = 3, intent: str | None = None,
               confidence: float = 0.0, embedding: np.ndarray | None = None
               ) -> list[Suggestion]:
        """The ``k`` best entries for ``text``, best first (none with a zero score)."""
        n = len(self.entries)
        if not n:
            return []
        raw = self._bm25(tokens(text))
        best_bm = np.zeros(n)
        best_var = np.full(n, -1)
        pos = np.flatnonzero(raw > 0)
        for j in pos[np.argsort(-raw[pos], kind="stable")]:
            i = self._owner[j]
            if best_var[i] < 0:
                best_bm[i], best_var[i] = raw[j], j
        bm = best_bm / (best_bm + self.bm25_half)
        cos = None
        cos_var = None
        if self._emb is not None:
            e = text_embeddings.embed([text])[0] if embedding is None else embedding
            sims = self._emb @ e
            cos = np.zeros(n)
            cos_var = np.full(n, -1)
            for j in np.argsort(-sims):
                i = self._emb_owner[j]
                if cos_var[i] < 0:
                    cos[i], cos_var[i] = max(float(sims[j]), 0.0), j
        w = self.embedding_weight
        score = (1 - w) * bm + (w * cos if cos is not None else 0.0)
        match = np.zeros(n, dtype=bool)
        if intent is not None:
            match = self._intents == intent
            score = score + match * self.intent_weight * float(confidence)
        out = []
        for i in np.argsort(-score, kind="stable")[:k]:
            if score[i] <= 0:
                break
            parts = []
            if bm[i] > 0:
                parts.append(f"BM25 {bm[i]:.2f} on question "
                             f"{self._variants[best_var[i]] or '(answer text)'!r}")
            if cos is not None:
                parts.append(f"embedding cosine {cos[i]:.2f} to "
                             f"{self._emb_text[cos_var[i]]!r}")
            if match[i]:
                parts.append(f"answers the predicted intent {intent!r} ({confidence:.2f})")
            matched = (self._variants[best_var[i]] if best_var[i] >= 0 else
                       (self._emb_text[cos_var[i]] if cos_var is not None else ""))
            out.append(Suggestion(
                answer_id=self._ids[i], answer=self._answers[i],
                score=float(score[i]), bm25=float(bm[i]),
                cosine=None if cos is None else float(cos[i]), intent_match=bool(match[i]),
                matched_question=matched or "", why="; ".join(parts)))
        return out
