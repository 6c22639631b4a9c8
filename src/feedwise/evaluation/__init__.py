"""Offline evaluation: splits, ranking metrics and `evaluate`."""

from feedwise.evaluation.evaluate import evaluate, recommend_matrix
from feedwise.evaluation.splits import Split, last_n_split, random_split, temporal_split

__all__ = ["Split", "evaluate", "last_n_split", "random_split", "recommend_matrix",
           "temporal_split"]
