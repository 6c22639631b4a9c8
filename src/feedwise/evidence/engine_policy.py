"""Play the real :class:`~feedwise.feed.engine.FeedEngine` in the attention simulator.

:func:`simulated_engine` builds a ``FeedEngine`` over the simulator's world — its posts as
the catalogue, one campaign per simulated ad (CPM or CPC, its bid, and the ad's true quality,
floored at 0.05, as the creative quality) — with predictors injected that read the
simulator's per-request candidates from ``request.context["candidates"]``:

* the candidate source returns the simulator recommender's ranked posts;
* the engagement predictor returns their predicted engagement probability;
* the ad CTR predictor returns the simulator's (noisy) pCTR;
* the UX-cost predictor is ``ad_base_cost · (1.2 − predicted quality) + annoyance_cost ·
  exposure``, where exposure is the user's observed recent exposure plus the ads the
  engine has placed above the slot (the same model as
  :class:`~feedwise.evidence.policies.LambdaPolicy`).

The engine then runs its own auction (generalised second price, quality-weighted), pacing,
guardrails and λ rule through ``compose``; the simulator reads back which slots are ads.

Consistency with the simulator: the engine's margin values an ad at its effective bid per
impression (``eCPM / 1000``: the CPM bid / 1000, or pCTR × CPC bid), which is exactly what
the simulator charges (it does not simulate the second-price discount; the engine's GSP
``price`` is what a real platform would bill, at most the bid). An earlier note here said the
margin used the second price; it never did. The reserve price and pacing are switched off
(the simulator draws eligibility itself), and so is the re-ranking that would reorder the
simulator's organic list.

With ``tolerance`` the UX-cost predictor multiplies its cost by the per-user
:class:`~feedwise.evidence.policies.AdTolerance` estimated from the user's logged history
(``request.context["candidates"]["history"]``), as the vectorised λ policy does; the
engine's ``ux_depth_discount`` gives it the same position discount.

Differences from the vectorised :class:`~feedwise.evidence.policies.LambdaPolicy` with
``rule="engine"``, which are worth knowing when comparing the two: the engine ranks ads by
eCPM × quality, with the creative's true quality (the vectorised policies and the UX-cost
predictor see only the noisy predicted quality), applies the simulator's per-request
eligibility draw by switching the ineligible campaigns off for that request, and runs per
request in Python, so it is much slower.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from feedwise.errors import ConfigError
from feedwise.evidence.policies import AdTolerance
from feedwise.evidence.simulator import Simulator
from feedwise.feed import Campaign, Creative, FeedEngine
from feedwise.feed.config import FeedConfig, RerankConfig
from feedwise.itemlist import ItemList


class _SimCandidates:
    name = "recommender"
    personal = False

    def __init__(self, index: dict[str, int]) -> None:
        self.index = index

    def candidates(self, ctx: Any, k: int) -> ItemList:
        c = ctx.request.context["candidates"]
        ids = np.array([self.index[i] for i in c["organic_ids"][:k]], np.int64)
        return ItemList(None, np.asarray(c["organic_score"][:k], np.float64), index=ids)


class _SimEngagement:
    def predict(self, ctx: Any, items: np.ndarray, rec_score: np.ndarray) -> np.ndarray:
        c = ctx.request.context["candidates"]
        lookup = dict(zip(c["organic_ids"], c["organic_score"], strict=True))
        ids = ctx.request.context["_catalog_ids"]
        return np.array([lookup.get(ids[i], 0.0) for i in items], np.float64)


class _SimAdCTR:
    def __init__(self, creative_to_ad: np.ndarray) -> None:
        self.creative_to_ad = creative_to_ad

    def predict(self, ctx: Any, creatives: np.ndarray) -> np.ndarray:
        pctr = np.asarray(ctx.request.context["candidates"]["ad_pctr"], np.float64)
        return np.clip(pctr[self.creative_to_ad[creatives]], 1e-6, 0.999)


class _SimUXCost:
    def __init__(self, creative_to_ad: np.ndarray, ad_base_cost: float,
                 annoyance_cost: float, tolerance: AdTolerance | None = None) -> None:
        self.creative_to_ad = creative_to_ad
        self.ad_base_cost = ad_base_cost
        self.annoyance_cost = annoyance_cost
        self.tolerance = tolerance

    def predict(self, ctx: Any, creatives: np.ndarray, exposure: np.ndarray) -> np.ndarray:
        c = ctx.request.context["candidates"]
        q = np.asarray(c["ad_quality"], np.float64)[self.creative_to_ad[creatives]]
        # the engine's own exposure count covers only its window; use the observed one
        exp_ = float(c["ad_exposure"]) + np.asarray(exposure, np.float64) - ctx.ad_exposure
        cost = self.ad_base_cost * (1.2 - q) + self.annoyance_cost * exp_
        if self.tolerance is not None:
            hist = {k: np.array([float(v)]) for k, v in (c.get("history") or {}).items()}
            cost = cost * float(self.tolerance.multiplier(hist, 1)[0])
        return cost


class EnginePolicy:
    """A :class:`FeedEngine` seen through the per-request ``compose`` contract.

    Adds the catalogue ids to the request context the injected predictors need.
    """

    def __init__(self, engine: FeedEngine, catalog_ids: np.ndarray) -> None:
        self.engine = engine
        self.catalog_ids = catalog_ids
        self.name = f"FeedEngine(λ={engine.config.ux_lambda:g})"
        book = engine.book
        self._campaign_ad = np.array([int(c.campaign_id.removeprefix("ad"))
                                      for c in book.campaigns])
        self._active = np.asarray(book.active).copy()

    def compose(self, request: Any) -> Any:
        c = request.context.get("candidates") or {}
        book = self.engine.book
        if "ad_eligible" in c:
            # the simulator's per-request eligibility (targeting, budgets, pacing) switches
            # campaigns on and off for this request only
            book.active = self._active & np.asarray(c["ad_eligible"], bool)[self._campaign_ad]
        try:
            req = replace(request, context={**request.context, "_catalog_ids": self.catalog_ids})
            return self.engine.compose(req)
        finally:
            book.active = self._active


def simulated_engine(sim: Simulator, config: FeedConfig | None = None, *,
                     ad_base_cost: float = 1.2, annoyance_cost: float = 1.0,
                     tolerance: AdTolerance | None = None) -> EnginePolicy:
    """A real :class:`FeedEngine` over ``sim``'s world with simulator-backed predictors.

    Args:
        sim: The simulator (its world becomes the catalogue and the campaigns).
        config: Engine settings (λ, ad load, first slot, gap, ...). Re-ranking that would
            reorder the simulator's organic list (MMR, author decay, freshness) and the
            served-post exclusion are switched off, since the simulator plays the organic
            posts in its own order.
        ad_base_cost: UX cost per unit of ``1.2 - quality``.
        annoyance_cost: UX cost per unit of recent ad exposure.
        tolerance: Per-user ad tolerance from the logged history (``None``: everyone alike).
    """
    for param, value in (("ad_base_cost", ad_base_cost), ("annoyance_cost", annoyance_cost)):
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{param} must be a finite number >= 0 (a UX cost), got {value!r}")
    cfg = sim.config
    w = sim.world
    config = (config or FeedConfig()).model_copy(update={
        "rerank": RerankConfig(author_decay=1.0, mmr_lambda=0.0, freshness_weight=0.0),
        "exclude_served_within_s": 0.0})
    created = cfg.start - timedelta(days=30)
    items = pd.DataFrame({
        "item_id": [f"post{i}" for i in range(cfg.n_items)], "kind": "post",
        "author_id": [f"author{i % 500}" for i in range(cfg.n_items)],
        "created_at": created,
        "tags": [[f"t{int(np.argmax(t))}"] for t in w.item_topics]})
    campaigns = [Campaign(campaign_id=f"ad{j}", advertiser_id=f"adv{j}",
                          creatives=[Creative(item_id=f"ad{j}",
                                              quality=float(max(w.ad_quality[j], 0.05)))],
                          bid_model="cpm" if w.ad_is_cpm[j] else "cpc",
                          bid=float(w.ad_bid[j]))
                 for j in range(cfg.n_ads)]
    index = {f"post{i}": i for i in range(cfg.n_items)}
    engine = FeedEngine(_SimCandidates(index), items, campaigns,
                        config.model_copy(update={"ads": config.ads.model_copy(
                            update={"reserve_ecpm": 0.0, "pacing": False})}),
                        engagement=_SimEngagement(),
                        ad_ctr=_SimAdCTR(np.arange(cfg.n_ads)),
                        ux_cost=_SimUXCost(np.arange(cfg.n_ads), ad_base_cost,
                                           annoyance_cost))
    creative_to_ad = np.array([int(str(c).removeprefix("ad")) for c in engine.book.creative_ids])
    engine.ad_ctr = _SimAdCTR(creative_to_ad)
    engine.ux_cost = _SimUXCost(creative_to_ad, ad_base_cost, annoyance_cost, tolerance)
    ids = engine.catalog.ids if hasattr(engine.catalog, "ids") else np.array(
        [f"post{i}" for i in range(cfg.n_items)], dtype=object)
    return EnginePolicy(engine, np.asarray(ids, dtype=object))
