"""Every feed policy passes :class:`feedwise.testing.PolicyContract`: the FeedEngine, the
service's ModelFeedPolicy, the λ policy and the simulator's baselines, and the FeedEngine
played in the simulator."""

from __future__ import annotations

import zlib
from dataclasses import replace
from functools import cache

import numpy as np
from feed_world import build_engine, make_world

from feedwise.evidence.engine_policy import simulated_engine
from feedwise.evidence.policies import (
    AdTolerance,
    FixedSlotPolicy,
    LambdaPolicy,
    NoAdsPolicy,
    RevenueGreedyPolicy,
)
from feedwise.evidence.simulator import CandidateBatch, Simulator, SimulatorConfig
from feedwise.feed import ExplorationConfig, FeedConfig, FeedRequest
from feedwise.models import ItemKNN
from feedwise.server.policy import ModelFeedPolicy
from feedwise.testing import POLICY_NOW, PolicyContract, contract_data


class _PlacesAds:
    """The world has ads this policy shows, so the contract's ad-slot checks bite."""

    def test_places_ads(self):
        policy = self.make_policy()
        assert any(policy.compose(self.make_request(u, self.n)).ad_slots
                   for u in self.known_users())


# ---------------------------------------------------------------------------- FeedEngine
class TestFeedEngine(_PlacesAds, PolicyContract):
    config = FeedConfig(ux_lambda=0.005, first_ad_slot=1)

    def make_policy(self):
        return build_engine(make_world(), self.config)

    def known_users(self):
        return list(make_world()["users"]["user_id"])

    def catalogue(self, request):
        world = make_world()
        return set(world["items"]["item_id"]) | {
            cr.item_id for c in world["campaigns"] for cr in c.creatives}


class TestExploringFeedEngine(TestFeedEngine):
    """Exploration draws from the request's seed and logs propensities below 1."""

    config = FeedConfig(ux_lambda=0.005, first_ad_slot=1,
                        exploration=ExplorationConfig(method="epsilon", epsilon=0.5))

    def test_explores_with_logged_propensities(self):
        policy = self.make_policy()
        props = [s.propensity for u in self.known_users()
                 for s in policy.compose(self.make_request(u, self.n)).slots
                 if s.kind == "organic"]
        assert min(props) < 1


# ---------------------------------------------------------------------------- the service's
@cache
def _knn() -> ItemKNN:
    return ItemKNN(k=10).fit(contract_data())


class TestModelFeedPolicy(PolicyContract):
    def make_policy(self):
        return ModelFeedPolicy(_knn())

    def known_users(self):
        return [str(u) for u in _knn().user_ids_]

    def catalogue(self, request):
        return {str(i) for i in _knn().item_ids_}


# ---------------------------------------------------------------------------- simulator's
SIM = SimulatorConfig(n_users=30, n_items=80, n_ads=8, n_slots=10, n_candidates=40,
                      world_seed=3)


@cache
def _sim() -> Simulator:
    return Simulator(SIM)


def sim_request(user_id: str, n: int, seed: int = 0) -> FeedRequest:
    """A request carrying the simulator's candidates: ``n`` ranked posts and every ad."""
    w = _sim().world
    rng = np.random.default_rng([seed, zlib.crc32(user_id.encode())])
    posts = rng.choice(SIM.n_items, size=n, replace=False)
    score = np.sort(rng.uniform(0.01, 0.4, n))[::-1]
    pctr = rng.uniform(0.005, 0.05, SIM.n_ads)
    value = np.where(w.ad_is_cpm, w.ad_bid / 1000.0, pctr * w.ad_bid)
    batch = CandidateBatch(np.array([0]), n, posts[None], score[None], value[None],
                           pctr[None], w.ad_quality[None].copy(),
                           (rng.random(SIM.n_ads) < 0.7)[None],
                           np.array([rng.uniform(0, 2)]), POLICY_NOW)
    request = batch.request(0)
    return replace(request, user_id=user_id, context={**request.context, "seed": seed})


class _SimulatorPolicy(PolicyContract):
    """A policy that serves the candidates the simulator puts in the request."""

    def make_request(self, user_id, n, seed=0):
        return sim_request(user_id, n, seed)

    def known_users(self):
        return [f"user{i}" for i in range(SIM.n_users)]

    def catalogue(self, request):
        c = request.context["candidates"]
        return set(c["organic_ids"]) | set(c["ad_ids"])

    def bad_requests(self):
        return [FeedRequest(user_id="user0", n=self.n, now=POLICY_NOW)]  # no candidates


class TestLambdaPolicy(_PlacesAds, _SimulatorPolicy):
    def make_policy(self):
        return LambdaPolicy()


class TestLambdaPolicyEngineRuleAdaptive(_PlacesAds, _SimulatorPolicy):
    def make_policy(self):
        return LambdaPolicy(rule="engine", displaced_weight=0.5, tolerance=AdTolerance())


class TestNoAdsPolicy(_SimulatorPolicy):
    def make_policy(self):
        return NoAdsPolicy()


class TestFixedSlotPolicy(_PlacesAds, _SimulatorPolicy):
    def make_policy(self):
        return FixedSlotPolicy(every=3)


class TestRevenueGreedyPolicy(_PlacesAds, _SimulatorPolicy):
    def make_policy(self):
        return RevenueGreedyPolicy()


class TestSimulatedFeedEngine(_PlacesAds, _SimulatorPolicy):
    """The FeedEngine in the simulator: its own sources (fresh, trending) may add any post."""

    def make_policy(self):
        return simulated_engine(_sim(), FeedConfig(ux_lambda=0.004, first_ad_slot=1))

    def catalogue(self, request):
        return {f"post{i}" for i in range(SIM.n_items)} | {f"ad{j}" for j in range(SIM.n_ads)}

    def bad_requests(self):
        return []
