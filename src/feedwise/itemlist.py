"""`ItemList`: the one list type passed between pipeline steps."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ItemList:
    """An ordered list of items with scores and optional per-item reasons.

    Items are named by external id, by position in a catalogue (``index``, as the feed's
    candidate sources answer), or both.

    Attributes:
        ids: External item ids, best first (``None`` when only ``index`` is known).
        scores: One score per item (higher is better), same length as ``ids``.
        reasons: Optional short human-readable reason per item.
        index: Optional catalogue index of each item (int64).
    """

    ids: np.ndarray | None
    scores: np.ndarray
    reasons: list[str] | None = field(default=None)
    index: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        scores = np.asarray(self.scores, dtype=np.float64)
        if self.ids is None and self.index is None:
            raise ValueError("ItemList needs ids or a catalogue index")
        for name, dtype in (("ids", object), ("index", np.int64)):
            v = getattr(self, name)
            if v is None:
                continue
            v = np.asarray(v, dtype=dtype)
            if v.shape != scores.shape or v.ndim != 1:
                raise ValueError(f"ItemList needs 1-d {name} and scores of equal length, got "
                                 f"{v.shape} and {scores.shape}")
            object.__setattr__(self, name, v)
        if self.reasons is not None and len(self.reasons) != len(scores):
            raise ValueError("ItemList.reasons must have one entry per item")
        object.__setattr__(self, "scores", scores)

    def __len__(self) -> int:
        return len(self.scores)

    def __iter__(self) -> Iterator[str]:
        if self.ids is None:
            raise ValueError("this ItemList has catalogue indices only")
        return iter(self.ids)

    def reason(self, i: int) -> str:
        return self.reasons[i] if self.reasons else ""

    def to_records(self) -> list[dict]:
        return [{"rank": i + 1, "item_id": str(item), "score": float(s), "reason": self.reason(i)}
                for i, (item, s) in enumerate(zip(self, self.scores, strict=True))]
