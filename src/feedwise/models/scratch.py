"""Per-thread scratch space of a model instance.

``Recommender.recommend`` calls ``_scores_for`` and then ``_explain`` for each batch; a model
whose reasons need more than the history rows (the users' friends, each component's share of
the score) keeps that batch state here, so concurrent requests served by one model instance
on several threads never see each other's batches.
"""

from __future__ import annotations

import threading


def call_state(model: object) -> threading.local:
    """The calling thread's scratch namespace for ``model`` (created on first use)."""
    return model.__dict__.setdefault("_scratch", threading.local())
