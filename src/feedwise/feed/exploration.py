"""Exploration: a small, logged randomisation of organic slots.

At each organic slot the engine hands the re-ranked scores of the remaining posts to an
:class:`Explorer`, which returns the chosen post and the exact probability with which it
was chosen given the slots before it. With ``method="none"`` the choice is the arg-max and
the propensity is 1; ``epsilon`` and ``softmax`` randomise among the ``top_k`` best, so
off-policy estimators can re-weight logged feeds without bias.
"""

from __future__ import annotations

import numpy as np

from feedwise.feed.config import ExplorationConfig


class Explorer:
    """Chooses one post per slot and reports its propensity.

    Args:
        config: Method, ε, temperature and ``top_k``. ``softmax`` divides the raw scores
            by the temperature (no normalisation by their spread), so it is in the units of
            the engagement value the scores are built from.
    """

    def __init__(self, config: ExplorationConfig) -> None:
        self.config = config

    def probabilities(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices that may be chosen and the probability of each (exact, sums to 1).

        ``scores`` holds ``-inf`` for posts no longer available.
        """
        cfg = self.config
        valid = np.flatnonzero(np.isfinite(scores))
        if len(valid) == 0:
            return valid, np.empty(0)
        greedy = valid[int(np.argmax(scores[valid]))]
        if cfg.method == "none" or len(valid) == 1:
            return np.array([greedy]), np.ones(1)
        m = min(cfg.top_k, len(valid))
        top = valid[np.argsort(-scores[valid], kind="stable")[:m]]
        if cfg.method == "epsilon":
            p = np.full(m, cfg.epsilon / m)
            p[top == greedy] += 1.0 - cfg.epsilon
        else:
            z = scores[top] / cfg.temperature
            z = np.exp(z - z.max())
            p = z / z.sum()
        return top, p

    def choose(self, scores: np.ndarray, rng: np.random.Generator) -> tuple[int, float]:
        """The chosen index into ``scores`` and its propensity."""
        if self.config.method == "none":
            return int(np.argmax(scores)), 1.0
        idx, p = self.probabilities(scores)
        if len(idx) == 1 or self.config.method == "none":
            return int(idx[0]), 1.0
        k = int(rng.choice(len(idx), p=p))
        return int(idx[k]), float(p[k])
