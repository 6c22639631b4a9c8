"""Feed composition: candidates, re-ranking, ads, guardrails and the FeedEngine."""

from feedwise.feed.adstate import AdState
from feedwise.feed.campaigns import Campaign, CampaignBook, Creative, FrequencyCap
from feedwise.feed.candidates import (
    CandidateGenerator,
    CandidateSource,
    FactorSource,
    FollowedSource,
    FreshSource,
    RecommenderSource,
    TrendingSource,
)
from feedwise.feed.catalog import Catalog, UserTable
from feedwise.feed.config import (
    AdConfig,
    CandidateConfig,
    ExplorationConfig,
    FeedConfig,
    QuietHours,
    RerankConfig,
)
from feedwise.feed.context import UserContext
from feedwise.feed.engine import EngineState, FeedEngine, FeedStats
from feedwise.feed.guardrails import Guardrail, GuardrailState, Violation, check_all
from feedwise.feed.predictors import (
    AdCTRPredictor,
    EngagementPredictor,
    ExposureUXCost,
    HeuristicEngagement,
    InterestAdCTR,
    ModelEngagement,
    UXCostPredictor,
)
from feedwise.feed.types import Feed, FeedRequest, Policy, Slot

__all__ = [
    "AdCTRPredictor", "AdConfig", "AdState", "Campaign", "CampaignBook", "CandidateConfig",
    "CandidateGenerator", "CandidateSource", "Catalog", "Creative", "EngagementPredictor",
    "EngineState", "ExplorationConfig", "ExposureUXCost", "FactorSource", "Feed", "FeedConfig",
    "FeedEngine", "FeedRequest", "FeedStats", "FollowedSource", "FreshSource", "FrequencyCap",
    "Guardrail", "GuardrailState", "HeuristicEngagement", "InterestAdCTR", "ModelEngagement",
    "Policy", "QuietHours", "RecommenderSource", "RerankConfig", "Slot", "TrendingSource",
    "UXCostPredictor", "UserContext", "UserTable", "Violation", "check_all",
]
