"""Routing: reply automatically only when it is safe, otherwise a human queue.

A message is answered automatically only when all of these hold, and every decision says
which did not:

- the text could be read (not empty, not binary, not over the length limit) and is in a
  language the assistant answers (:attr:`RoutingPolicy.languages`);
- the intent confidence is at or above the threshold chosen for a target precision on
  validation data (:func:`choose_threshold`);
- the default model does not read it as a ``complaint`` (complaints go to a person) or
  ``spam`` (spam is not answered at all: queue ``spam``);
- the sentiment analyser does not read it as negative (probability of negative at or above
  :attr:`RoutingPolicy.negative_at`);
- the knowledge base has an answer for it, scoring at least
  :attr:`RoutingPolicy.min_answer_score`.

Queues: ``complaints`` (complaints and negative messages), ``spam``, ``review`` (everything
else that a person should see: low confidence, no answer, unreadable text).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from feedwise.errors import ConfigError


def choose_threshold(confidence: Sequence[float], correct: Sequence[float],
                     target: float = 0.97, *, z: float = 1.0, min_count: int = 10) -> float:
    """The lowest confidence threshold whose auto-replies are precise enough on validation.

    Messages are ranked by confidence; for each cut, the precision of those at or above it
    is checked by its Wilson lower bound (``z`` standard errors, so a handful of lucky hits
    is not enough) against ``target``. Returns the confidence of the lowest cut that keeps at
    least ``min_count`` messages and passes, or ``1.01`` (never auto-reply) when none does.
    """
    if not 0.0 < target < 1.0:
        raise ConfigError(f"target precision {target!r}: use a value between 0 and 1")
    conf = np.asarray(confidence, dtype=float)
    hit = np.asarray(correct, dtype=float)
    if conf.size == 0:
        return 1.01
    order = np.argsort(-conf, kind="stable")
    conf, hit = conf[order], hit[order]
    n = np.arange(1, len(conf) + 1, dtype=float)
    p = np.cumsum(hit) / n
    zz = z * z
    lower = (p + zz / (2 * n) - z * np.sqrt(p * (1 - p) / n + zz / (4 * n * n))) / (1 + zz / n)
    # a cut must fall between distinct confidences (ties are all in or all out)
    last_of_tie = np.r_[conf[1:] < conf[:-1], True]
    ok = (lower >= target) & (n >= min_count) & last_of_tie
    if not ok.any():
        return 1.01
    k = int(np.flatnonzero(ok).max())
    return float(conf[k])


@dataclass
class RoutingPolicy:
    """When to reply automatically (see the module doc)."""

    #: Intent confidence at or above which a reply may go out automatically.
    threshold: float = 1.01
    #: Probability of negative sentiment from which a message goes to a person.
    negative_at: float = 0.5
    #: The least answer score an automatic reply needs.
    min_answer_score: float = 0.35
    #: Languages the assistant answers automatically (others go to a person).
    languages: tuple[str, ...] = ("en",)
    #: Default-model classes that never get an automatic reply.
    human_kinds: tuple[str, ...] = ("complaint",)


@dataclass
class Routing:
    """A routing decision: ``auto`` or ``human`` (with its queue) and the reasons."""

    decision: str
    queue: str | None
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"decision": self.decision, "queue": self.queue, "reasons": list(self.reasons)}


def route(policy: RoutingPolicy, *, problem: str | None, language: str, kind: str,
          kind_confidence: float, intent: str | None, confidence: float,
          negative: float | None, answer_score: float | None) -> Routing:
    """Apply ``policy`` to one message's signals (see the module doc)."""
    if problem is not None:
        return Routing("human", "review", [f"cannot read the message ({problem})"])
    if kind == "spam":
        return Routing("human", "spam", [f"reads as spam ({kind_confidence:.2f})"])
    reasons: list[str] = []
    queue = "review"
    if kind in policy.human_kinds:
        reasons.append(f"reads as a {kind} ({kind_confidence:.2f}): a person answers")
        queue = "complaints"
    if negative is not None and not math.isnan(negative) and negative >= policy.negative_at:
        reasons.append(f"negative sentiment ({negative:.2f} >= {policy.negative_at:.2f})")
        queue = "complaints"
    if language not in policy.languages:
        reasons.append(f"language {language!r} is not answered automatically "
                       f"(answered: {', '.join(policy.languages)})")
    if confidence < policy.threshold:
        what = f"intent {intent!r}" if intent else "intent"
        reasons.append(f"{what} confidence {confidence:.2f} is below the auto-reply "
                       f"threshold {min(policy.threshold, 1.0):.2f}")
    if answer_score is None:
        reasons.append("no answer in the knowledge base")
    elif answer_score < policy.min_answer_score:
        reasons.append(f"best answer scores {answer_score:.2f} "
                       f"(< {policy.min_answer_score:.2f})")
    if reasons:
        return Routing("human", queue, reasons)
    return Routing("auto", None, [
        f"intent {intent!r} at {confidence:.2f} >= threshold {policy.threshold:.2f}",
        f"best answer scores {answer_score:.2f}", "not a complaint, not negative"])
