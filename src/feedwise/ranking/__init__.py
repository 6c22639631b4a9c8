"""Features and the engagement (CTR) model: P(y=1 | x) = sigmoid(θ·φ(x))."""

from feedwise.ranking.engagement import (
    EngagementModel,
    MultiObjectiveModel,
    expected_calibration_error,
    holdout_report,
    log_loss,
    roc_auc,
    temporal_split,
)
from feedwise.ranking.features import (
    FEATURE_NAMES,
    OBJECTIVES,
    build_features,
    impression_features,
    label_impressions,
)
from feedwise.ranking.pointintime import PointInTimeFeatures, fit_point_in_time

__all__ = [
    "FEATURE_NAMES", "OBJECTIVES", "EngagementModel", "MultiObjectiveModel",
    "PointInTimeFeatures", "build_features", "expected_calibration_error", "fit_point_in_time",
    "holdout_report", "impression_features", "label_impressions", "log_loss", "roc_auc",
    "temporal_split",
]
