"""`Popularity`: most-engaged items, optionally time-decayed."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from feedwise.errors import ConfigError
from feedwise.interactions import Interactions
from feedwise.models.base import Recommender


class Popularity(Recommender):
    """Scores every item by how many users engaged with it.

    Args:
        half_life_days: If set, each (user, item) engagement counts
            ``0.5 ** (age_days / half_life_days)``, its age measured from the newest event
            in the training data, so recent engagement dominates ("trending").
        weighted: Count interaction weights instead of distinct users.
    """

    name = "popularity"

    def __init__(self, half_life_days: float | None = None, weighted: bool = False) -> None:
        self.half_life_days = half_life_days
        self.weighted = weighted

    def _fit(self, data: Interactions) -> None:
        if self.half_life_days is not None and self.half_life_days <= 0:
            raise ConfigError(f"half_life_days must be positive, got {self.half_life_days}")
        m = data.matrix.copy() if self.weighted else (data.matrix > 0).astype(np.float32)
        m = sp.csr_matrix(m, dtype=np.float32)
        if self.half_life_days is not None and data.last_ts is not None:
            ts = data.last_ts.tocsr()
            ts.sort_indices()
            age_days = (ts.data.max() - ts.data) / 86400.0
            m.data = m.data * np.power(0.5, age_days / self.half_life_days).astype(np.float32)
        self.scores_ = np.asarray(m.sum(axis=0), dtype=np.float32).ravel()
        self.fallback_reason = "trending" if self.half_life_days else "popular"

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.scores_, (len(rows), len(self.scores_))).copy()

    def _static_scores(self) -> np.ndarray:
        return self.scores_

    def _score_history(self, history: sp.csr_matrix) -> np.ndarray:
        return self._score_rows(np.arange(history.shape[0]))

    def _explain(self, history: sp.csr_matrix, cols: list[np.ndarray]) -> list[list[str]]:
        return [[self.fallback_reason] * len(c) for c in cols]

    def _state(self) -> dict[str, np.ndarray]:
        return {"scores": self.scores_}

    def _set_state(self, state: dict) -> None:
        super()._set_state(state)
        self.fallback_reason = "trending" if self.half_life_days else "popular"
