"""Model selection: hyperparameter search on validation splits of the training data."""

from feedwise.selection.tuning import TuneResult, tune

__all__ = ["TuneResult", "tune"]
