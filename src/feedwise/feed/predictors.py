"""Predictors the engine consults: engagement value, ad click-through and UX cost.

Each is a small protocol, so a simulator (or a trained model) can be plugged in::

    engine = FeedEngine(..., engagement=MyEngagement(), ad_ctr=MyCTR(), ux_cost=MyCost())

The defaults are a trained :class:`~feedwise.ranking.engagement.MultiObjectiveModel` over
the features of :mod:`feedwise.ranking.features` (or, without one, a score heuristic), a
campaign-prior × interest-match CTR, and an annoyance cost that rises with the user's recent
ad exposure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from feedwise.feed.campaigns import CampaignBook
from feedwise.feed.catalog import Catalog, UserTable
from feedwise.feed.context import UserContext
from feedwise.ranking.engagement import MultiObjectiveModel
from feedwise.ranking.features import build_features


@runtime_checkable
class EngagementPredictor(Protocol):
    """Expected engagement value of organic posts for a user."""

    def predict(self, ctx: UserContext, items: np.ndarray, rec_score: np.ndarray
                ) -> np.ndarray:
        """Value per post (catalogue indices ``items``; ``rec_score`` from the candidates)."""
        ...


@runtime_checkable
class AdCTRPredictor(Protocol):
    """Predicted click-through rate of ad creatives for a user."""

    def predict(self, ctx: UserContext, creatives: np.ndarray) -> np.ndarray:
        """pCTR per creative (indices into the engine's :class:`CampaignBook`)."""
        ...


@runtime_checkable
class UXCostPredictor(Protocol):
    """Expected user-experience cost (hide / annoyance) of showing an ad."""

    def predict(self, ctx: UserContext, creatives: np.ndarray, exposure: np.ndarray
                ) -> np.ndarray:
        """Cost per creative when it would be the user's ``exposure``-th recent ad (the
        user's exposure before the request plus the ads placed earlier in the feed)."""
        ...


class ModelEngagement:
    """Value ``Σ_k w_k p_k`` of a fitted multi-objective model at a reference position.

    Args:
        model: The fitted model.
        catalog, users: The engine's arrays (for the features).
        weights: Objective weights (``FeedConfig.value_weights``).
        position: The position the features assume (0 = top; relative order is what
            matters for ranking).
        text: Optional fitted :class:`~feedwise.ranking.text.TextEngagement` whose signals
            the model was trained with (appended after the base features).
    """

    def __init__(self, model: MultiObjectiveModel, catalog: Catalog, users: UserTable,
                 weights: Mapping[str, float], position: int = 0, text: Any = None) -> None:
        self.text = text
        self.model = model
        self.catalog = catalog
        self.users = users
        self.weights = dict(weights)
        self.position = position

    def features(self, ctx: UserContext, items: np.ndarray, rec_score: np.ndarray
                 ) -> np.ndarray:
        cat = self.catalog
        aff: np.ndarray | float = 0.0
        if ctx.consent_personalization:
            a_idx, a_val = self.users.author_affinity(ctx.row)
            if len(a_idx):
                authors = cat.author[items]
                pos = np.clip(np.searchsorted(a_idx, authors), 0, len(a_idx) - 1)
                aff = np.where(a_idx[pos] == authors, a_val[pos], 0.0)
        tag = cat.tag_rows(items) @ ctx.interests if ctx.interests.any() else 0.0
        X = build_features(rec_score=rec_score, log_popularity=cat.log_popularity[items],
                           age_hours=(ctx.now_s - cat.created_s[items]) / 3600.0,
                           author_affinity=aff, tag_match=tag, hour=ctx.hour,
                           position=self.position, ad_exposure=ctx.ad_exposure)
        if self.text is not None:
            X = np.hstack([X, self.text.transform([ctx.user_id] * len(items),
                                                  cat.item_ids[items]).astype(np.float32)])
        return X

    def predict(self, ctx: UserContext, items: np.ndarray, rec_score: np.ndarray
                ) -> np.ndarray:
        return np.asarray(self.model.value(self.features(ctx, items, rec_score), self.weights),
                          np.float64)


class HeuristicEngagement:
    """Without a trained model: a blend of rank-normalised personal score, interest match
    and popularity, in [0, 1]."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.max_log_pop = float(catalog.log_popularity.max()) or 1.0

    def predict(self, ctx: UserContext, items: np.ndarray, rec_score: np.ndarray
                ) -> np.ndarray:
        n = len(items)
        if n == 0:
            return np.empty(0)
        r = np.empty(n)
        r[np.argsort(rec_score, kind="stable")] = np.arange(n)
        rank = r / max(n - 1, 1)
        tag = (self.catalog.tag_rows(items) @ ctx.interests) if ctx.interests.any() else 0.0
        pop = self.catalog.log_popularity[items] / self.max_log_pop
        return 0.6 * rank + 0.25 * tag + 0.15 * pop


class InterestAdCTR:
    """pCTR = campaign prior × (0.5 + interest match of the creative), match in [0, 1].

    The interest match is used only with personalisation and ads consent.
    """

    def __init__(self, book: CampaignBook) -> None:
        self.book = book

    def predict(self, ctx: UserContext, creatives: np.ndarray) -> np.ndarray:
        base = self.book.base_ctr[self.book.creative_campaign[creatives]]
        if ctx.consent_ads and ctx.consent_personalization and ctx.interests.any():
            match = np.clip(self.book.creative_tag_matrix[creatives] @ ctx.interests, 0, 1)
        else:
            match = 0.0
        return np.clip(base * (0.5 + match), 1e-6, 0.999)


class ExposureUXCost:
    """Annoyance cost ``(base + per_exposure × exposure) × (1 − relevance_discount × match)``.

    Args:
        base: Cost of an ad to a user who saw none recently.
        per_exposure: Added per recent ad (the user's exposure plus the ads above it).
        relevance_discount: How much a relevant creative (interest match 1) lowers it.
    """

    def __init__(self, book: CampaignBook, base: float = 0.05, per_exposure: float = 0.02,
                 relevance_discount: float = 0.5) -> None:
        self.book = book
        self.base = base
        self.per_exposure = per_exposure
        self.relevance_discount = relevance_discount

    def predict(self, ctx: UserContext, creatives: np.ndarray, exposure: np.ndarray
                ) -> np.ndarray:
        if ctx.interests.any():
            match = np.clip(self.book.creative_tag_matrix[creatives] @ ctx.interests, 0, 1)
        else:
            match = 0.0
        return ((self.base + self.per_exposure * np.asarray(exposure, np.float64))
                * (1.0 - self.relevance_discount * match))
