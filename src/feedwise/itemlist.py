"""`ItemList`: the one list type passed between pipeline steps."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ItemList:
    """An ordered list of items with scores and optional per-item reasons.

    Attributes:
        ids: External item ids, best first.
        scores: One score per item (higher is better), same length as ``ids``.
        reasons: Optional short human-readable reason per item.
    """

    ids: np.ndarray
    scores: np.ndarray
    reasons: list[str] | None = field(default=None)

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids, dtype=object)
        scores = np.asarray(self.scores, dtype=np.float64)
        if ids.shape != scores.shape or ids.ndim != 1:
            raise ValueError(f"ItemList needs 1-d ids and scores of equal length, got {ids.shape} "
                             f"and {scores.shape}")
        if self.reasons is not None and len(self.reasons) != len(ids):
            raise ValueError("ItemList.reasons must have one entry per item")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "scores", scores)

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def reason(self, i: int) -> str:
        return self.reasons[i] if self.reasons else ""

    def to_records(self) -> list[dict]:
        return [{"rank": i + 1, "item_id": str(item), "score": float(s), "reason": self.reason(i)}
                for i, (item, s) in enumerate(zip(self.ids, self.scores, strict=True))]
