"""`FeedEngine`: the one policy that composes every feed.

``compose(FeedRequest) -> Feed`` runs candidates → engagement value → re-ranking (with
optional exploration) → ads (eligibility, pacing, auction) → insertion under guardrails:

* hard rules: ad load (of the feed actually composed: when the posts run out before ``n``
  slots, ads do not fill the rest), first ad slot, minimum gap, one ad per advertiser,
  quiet hours, consent, frequency caps and budgets;
* within them, the next ad in auction order takes slot ``p`` only if

      value − λ × (annoyance · depth + engagement value of the organic post it displaces) > 0,

  (``depth = max(0, 1 − ux_depth_discount · p / n)``, 1 by default: an ad deep in the feed
  cuts a shorter remaining session),

  where an ad's value is its effective bid per impression (eCPM / 1000; what it pays is the
  second price, at most that): its value minus λ × its UX cost beats the displaced post,
  worth λ × its engagement value. The ad sequence does not depend on λ and a failing ad
  is not replaced by a lower one, so a larger λ never places more ads: revenue and
  predicted UX cost fall monotonically as λ rises; λ = 0 places every ad the hard rules
  allow (revenue-greedy), λ = ∞ places none.

Every slot carries its kind, score, reasons, source and the propensity with which it was
chosen given the slots above it: for an organic slot, the exploration probability of that
post among the remaining ones (1 without exploration); for an ad slot, the probability that
the pacing throttle let this campaign through and failed the ones ranked between it and
the previous ad (1 without pacing). Which slots are ads is a deterministic function of
those draws and the hard rules.

Callers inject predictors (``engagement``, ``ad_ctr``, ``ux_cost``) and read or swap the
cross-request :class:`EngineState` (frequency caps, spend, exposure, fatigue, served posts).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from feedwise.errors import ConfigError, NotFoundError
from feedwise.feed.adstate import AdImpression, AdState
from feedwise.feed.auction import AuctionResult, pacing_pass_probability, run_auction
from feedwise.feed.campaigns import Campaign, CampaignBook
from feedwise.feed.candidates import (
    CandidateGenerator,
    CandidatePool,
    CandidateSource,
    FollowedSource,
    ForgetsUsers,
    FreshSource,
    RecommenderSource,
    TrendingSource,
    first_of_each,
)
from feedwise.feed.catalog import Catalog, UserTable
from feedwise.feed.config import FeedConfig
from feedwise.feed.context import UserContext
from feedwise.feed.exploration import Explorer
from feedwise.feed.guardrails import Guardrail, GuardrailState, Violation, check_all
from feedwise.feed.loader import load_engine
from feedwise.feed.predictors import (
    AdCTRPredictor,
    EngagementPredictor,
    ExposureUXCost,
    HeuristicEngagement,
    InterestAdCTR,
    ModelEngagement,
    UXCostPredictor,
)
from feedwise.feed.rerank import FatigueState, Reranker, RerankResult, nan_to_lowest
from feedwise.feed.social import NetworkSource, ResharedSource
from feedwise.feed.types import Feed, FeedRequest, Slot
from feedwise.ranking.engagement import MultiObjectiveModel
from feedwise.store import EventStore

#: Most recently served posts remembered per user (for the served-post exclusion).
MAX_SERVED = 2000
#: A served post as :attr:`EngineState.served` packs it: when, and its catalogue index.
#: Bytes hold no references, so the garbage collector never walks them (a deque of tuples
#: per user was a tenth of what a collection walked while serving: docs/serving.md, session
#: 23).
SERVED_POST = np.dtype([("t", "<f8"), ("k", "<i8")])
_NO_POSTS = np.empty(0, np.int64)

SOURCE_REASONS = {"trending": "trending now", "fresh": "new post", "recommender":
                  "recommended for you", "followed": "from someone you follow"}


@dataclass
class EngineState:
    """Everything that persists across requests.

    Attributes:
        ads: Frequency caps, exposure and spend (persisted to the store when it has one).
        fatigue: Hidden authors and topics per user.
        served: Per user, ``(time, catalogue index)`` of recently served posts, oldest
            first, packed as :data:`SERVED_POST` (at most :data:`MAX_SERVED`).
        hidden: Per user, catalogue indices hidden or reported (never shown again).
    """

    ads: AdState
    fatigue: FatigueState = field(default_factory=FatigueState)
    served: dict[str, bytes] = field(default_factory=dict)
    hidden: dict[str, set[int]] = field(default_factory=dict)

    def copy(self) -> EngineState:
        """A deep copy (detached from the store), e.g. to replay one state under many
        policies."""
        return EngineState(self.ads.copy(), copy.deepcopy(self.fatigue),
                           dict(self.served),
                           {u: set(h) for u, h in self.hidden.items()})

    def forget_user(self, user_id: str) -> bool:
        """Drop the user's served and hidden posts, fatigue and ad state (frequency caps,
        exposure, unsaved impressions); ``True`` if anything was held."""
        found = self.served.pop(user_id, None) is not None
        found = (self.hidden.pop(user_id, None) is not None) or found
        found = self.fatigue.forget_user(user_id) or found
        return self.ads.forget_user(user_id) or found


@dataclass(frozen=True)
class FeedStats:
    """Predicted outcomes of one composed feed.

    Attributes:
        n_ads: Ads placed.
        revenue: Expected revenue of the ads (CPM: the impression charge; CPC: charge ×
            pCTR).
        ux_cost: Predicted user-experience cost of the ads (sum of annoyance).
        organic_value: Predicted engagement value of the organic posts shown.
    """

    n_ads: int
    revenue: float
    ux_cost: float
    organic_value: float


@dataclass
class AdPlan:
    """The ads a request may place, in the order they would be placed."""

    auction: AuctionResult
    propensity: np.ndarray
    ux_cost: np.ndarray

    @property
    def value(self) -> np.ndarray:
        """Each ad's expected value per impression: its effective bid (eCPM / 1000)."""
        return self.auction.ecpm / 1000.0

    def __len__(self) -> int:
        return len(self.auction)


class FeedEngine:
    """Composes feeds of organic posts and ads under user-experience guardrails.

    Args:
        recommender: The personal candidate source: a fitted
            :class:`~feedwise.models.base.Recommender`, any
            :class:`~feedwise.feed.candidates.CandidateSource` (e.g.
            :class:`~feedwise.feed.candidates.FactorSource`), or ``None``.
        items: The posts (the store's ``items`` columns) or a prebuilt :class:`Catalog`.
        campaigns: The ad campaigns.
        config: All knobs (λ, ad load, slots, gaps, quiet hours, exploration, weights).
        engagement: An :class:`EngagementPredictor` or a fitted
            :class:`~feedwise.ranking.engagement.MultiObjectiveModel` (default: a heuristic
            on the recommender score, interest match and popularity).
        ad_ctr: An :class:`AdCTRPredictor` (default :class:`InterestAdCTR`).
        ux_cost: A :class:`UXCostPredictor` (default :class:`ExposureUXCost`).
        users: The users (the store's ``users`` columns) or a prebuilt :class:`UserTable`.
        store: An :class:`~feedwise.store.EventStore` to persist ad state in (restart-safe),
            or ``None`` for memory only.
        sources: Extra candidate sources (after the recommender, before ``followed``,
            ``fresh`` and ``trending``, which are always added).
        popularity: Item id -> popularity when ``items`` is a frame without a
            ``popularity`` column.
        guardrails: Guardrails :meth:`check` uses (default: all).
        seed: Seed of the engine's generator (exploration and pacing); a request's
            ``context["seed"]`` overrides it for that request.
    """

    name = "feed_engine"

    def __init__(self, recommender: Any = None, items: pd.DataFrame | Catalog | None = None,
                 campaigns: Iterable[Campaign] = (), config: FeedConfig | None = None, *,
                 engagement: EngagementPredictor | MultiObjectiveModel | None = None,
                 ad_ctr: AdCTRPredictor | None = None, ux_cost: UXCostPredictor | None = None,
                 users: pd.DataFrame | UserTable | None = None,
                 store: EventStore | None = None,
                 sources: Sequence[CandidateSource] = (), popularity: Any = None,
                 guardrails: Sequence[Guardrail] | None = None, seed: int | None = None
                 ) -> None:
        if items is None:
            raise ConfigError("FeedEngine needs items (a DataFrame of posts or a Catalog)")
        self.config = config if config is not None else FeedConfig()
        tag_index: dict[str, int] = {}
        if isinstance(items, Catalog):
            self.catalog = items
            tag_index = items.tag_index
        else:
            self.catalog = Catalog.from_frame(items, popularity=popularity, tag_index=tag_index)
            tag_index = self.catalog.tag_index
        seg_index: dict[str, int] = {}
        if isinstance(users, UserTable):
            self.users = users
            seg_index = users.segment_index
        elif users is not None:
            self.users = UserTable.from_frame(users, tag_index, seg_index,
                                              self.catalog.author_index)
            seg_index = self.users.segment_index
        else:
            self.users = UserTable(np.array([], dtype=object))
        self.book = CampaignBook(campaigns, tag_index, seg_index)
        self.catalog.tag_index = tag_index
        self.catalog.grow_tags(len(tag_index))
        self.users.segment_index = seg_index
        self.book.rebuild_matrices(len(tag_index), len(seg_index))
        self.n_tags = len(tag_index)
        self.n_segments = len(seg_index)

        srcs: list[CandidateSource] = []
        if recommender is not None:
            # a candidate source (its `personal` flag tells it from a model whose
            # hyperparameter is named `candidates`, e.g. Auto)
            if hasattr(recommender, "candidates") and hasattr(recommender, "personal"):
                srcs.append(recommender)
            else:
                srcs.append(RecommenderSource(recommender, self.catalog))
        srcs.extend(sources)
        cc = self.config.candidates
        srcs.append(FollowedSource(self.catalog, self.users, cc.followed_per_author))
        # the stored social graph (filled by feed/social.py load_graph; empty until then)
        srcs.append(NetworkSource(self.catalog, self.users))
        # what the people the user follows shared recently (feed/social.py load_graph)
        self.reshared = ResharedSource(self.catalog, self.users)
        srcs.append(self.reshared)
        srcs.append(FreshSource(self.catalog, cc.fresh_max_age_hours))
        srcs.append(TrendingSource(self.catalog))
        self.sources = srcs
        self.personal_sources = frozenset(s.name for s in srcs if s.personal)
        self.generator = CandidateGenerator(srcs, cc, self.catalog.n)

        if isinstance(engagement, MultiObjectiveModel):
            engagement = ModelEngagement(engagement, self.catalog, self.users,
                                         self.config.value_weights)
        self.engagement: EngagementPredictor = engagement or HeuristicEngagement(self.catalog)
        self.ad_ctr: AdCTRPredictor = ad_ctr or InterestAdCTR(self.book)
        self.ux_cost: UXCostPredictor = ux_cost or ExposureUXCost(self.book)
        self.reranker = Reranker(self.config.rerank, self.catalog)
        self.explorer = Explorer(self.config.exploration)
        self.guardrails = guardrails
        self.store = store
        self.state = self.new_state(store)
        self._lock = threading.RLock()
        self.rng = np.random.default_rng(seed if seed is not None
                                         else self.config.exploration.seed)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_store(cls, store: EventStore, recommender: Any = None,
                   config: FeedConfig | None = None, *, until: datetime | None = None,
                   **kwargs: Any) -> FeedEngine:
        """An engine over the store's items, users and campaigns.

        Popularity, author affinity and interest profiles are derived from the events before
        ``until`` (all when ``None``; set it to keep a hold-out period out of the features);
        ad state is loaded from (and persisted to) the store. See
        :func:`~feedwise.feed.loader.load_engine`.
        """
        return load_engine(cls, store, recommender, config, until=until, **kwargs)

    def replace_source(self, name: str, source: CandidateSource) -> None:
        """Serve the candidates of source ``name`` from ``source`` instead (same quota and
        position; the pool's scorer too when it was the replaced one), e.g. the
        materialised lists of :mod:`feedwise.feed.materialised`."""
        with self._lock:
            i = next(k for k, s in enumerate(self.sources) if s.name == name)
            old = self.sources[i]
            self.sources[i] = source
            gen = self.generator
            gen.sources[gen.sources.index(old)] = source
            if gen.scorer is old:
                gen.scorer = source if hasattr(source, "score") else gen.scorer
            self.personal_sources = frozenset(s.name for s in self.sources if s.personal)

    def add_posts(self, items: pd.DataFrame) -> bool:
        """Append new posts to the live catalogue, without a rebuild (see
        :meth:`Catalog.append`): the fresh, followed-author, network and reshared sources
        see them at once, each filtered by the request's time; a model that does not know
        a post scores it as cold. ``False`` (nothing changed) when the rows need a rebuild
        instead (a replaced post, a new tag)."""
        with self._lock:
            if self.catalog.append(items) is None:
                return False
            self.catalogue_grew()
            return True

    def catalogue_grew(self) -> None:
        """Bring the sources and the pool generator up to the catalogue's size (after
        :meth:`add_posts`, here or in an engine sharing the catalogue)."""
        with self._lock:
            for src in self.sources:
                grown = getattr(src, "grown", None)
                if grown is not None:
                    grown()
            self.generator.n_items = self.catalog.n

    def _explain_shown(self, ctx: UserContext, pool: CandidatePool, shown: np.ndarray
                       ) -> None:
        """Reasons for the shown posts of sources that explain lazily (``explain``): a
        source may leave them out of its candidates and give them for these few only."""
        gen = self.generator
        for si in sorted(set(pool.source[shown].tolist())):
            src = gen.sources[si]
            explain = getattr(src, "explain", None)
            if explain is None:
                continue
            ks = shown[pool.source[shown] == si]
            if pool.reasons is not None:
                ks = ks[np.equal(pool.reasons[ks], None)]
            if not len(ks):
                continue
            why = explain(ctx, pool.items[ks])
            if pool.reasons is None:
                pool.reasons = np.full(len(pool), None, object)
            for k, w in zip(ks.tolist(), why, strict=True):
                pool.reasons[k] = w

    def new_state(self, store: EventStore | None = None) -> EngineState:
        """A fresh state (loaded from ``store`` when given)."""
        return EngineState(AdState(self.book, store,
                                   exposure_window_s=self.config.ads.exposure_window_s))

    # ------------------------------------------------------------------ per request
    def context(self, request: FeedRequest) -> UserContext:
        """What the engine knows about the user at request time."""
        uid = str(request.user_id)
        r = self.users.row(uid)
        known = r >= 0
        ca = bool(self.users.consent_ads[r]) if known else self.users.default_consent
        cp = (bool(self.users.consent_personalization[r]) if known
              else self.users.default_consent)
        ctx_c = request.context or {}
        if "consent_ads" in ctx_c:
            ca = ca and bool(ctx_c["consent_ads"])
        if "consent_personalization" in ctx_c:
            cp = cp and bool(ctx_c["consent_personalization"])
        now_s = request.now.timestamp()
        interests = (self.users.interest_vector(r, self.n_tags) if cp and known
                     else np.zeros(self.n_tags, np.float32))
        segments = (self.users.segment_vector(r, self.n_segments) if known
                    else np.zeros(self.n_segments, np.float32))
        st = self.state
        recent = _NO_POSTS
        served = st.served.get(uid)
        if served and self.config.exclude_served_within_s > 0:
            posts = np.frombuffer(served, SERVED_POST)
            within = posts["t"] > now_s - self.config.exclude_served_within_s
            old = int(within.argmax()) if within.any() else len(posts)  # left the window
            if old:
                st.served[uid] = served[old * SERVED_POST.itemsize:]
                posts = posts[old:]
            recent = posts["k"][posts["t"] <= now_s]
        hid = st.hidden.get(uid)
        return UserContext(request=request, user_id=uid, row=r, now_s=now_s,
                           hour=request.now.hour, consent_ads=ca, consent_personalization=cp,
                           interests=interests, segments=segments,
                           ad_exposure=st.ads.recent_exposure(uid, now_s),
                           excluded=np.fromiter(hid, np.int64, len(hid)) if hid else
                           np.empty(0, np.int64),
                           served=np.unique(recent))

    def _rng(self, request: FeedRequest) -> np.random.Generator:
        seed = (request.context or {}).get("seed")
        return np.random.default_rng(seed) if seed is not None else self.rng

    def plan_ads(self, ctx: UserContext, n: int, rng: np.random.Generator) -> AdPlan | None:
        """Eligible ads for this request in placement order, with prices, propensities and
        UX costs (``None`` when no ad may show)."""
        cfg = self.config
        b = self.book
        if b.n == 0 or cfg.max_ads(n) == 0 or cfg.is_quiet(ctx.hour):
            return None
        if not ctx.consent_ads and cfg.ads.no_consent == "none":
            return None
        ads = self.state.ads
        ads.roll_day(ctx.now_s)
        t = ctx.now_s
        ok = b.active & (b.start_s <= t) & (t < b.end_s) & b.hours[:, ctx.hour]
        max_charge = np.where(b.is_cpc, b.bid, b.bid / 1000.0)
        left_day, left_total = ads.remaining()
        ok &= (left_day >= max_charge) & (left_total >= max_charge)
        if not ctx.consent_ads:
            ok &= ~b.targeted
        else:
            if b.has_tag_target.any():
                ok &= ~b.has_tag_target | ((b.target_tag_matrix @ ctx.interests) > 0)
            if b.has_seg_target.any():
                ok &= ~b.has_seg_target | ((b.target_seg_matrix @ ctx.segments) > 0)
        if b.has_caps.any() and ctx.user_id in ads.freq:
            ok &= ~ads.capped(ctx.user_id, t)
        camps = np.flatnonzero(ok)
        if len(camps) == 0:
            return None
        # creatives of eligible campaigns; the best (pCTR × quality) per campaign
        cr = np.flatnonzero(ok[b.creative_campaign])
        pctr = np.asarray(self.ad_ctr.predict(ctx, cr), np.float64)
        q = b.creative_quality[cr]
        cc = b.creative_campaign[cr]  # sorted: a campaign's creatives are adjacent
        camps = cc
        if (cc[1:] == cc[:-1]).any():  # some campaign has several: keep its best
            order = np.lexsort((-pctr * q, cc))
            first = order[np.concatenate(([True], cc[order][1:] != cc[order][:-1]))]
            camps, cr, pctr, q = cc[first], cr[first], pctr[first], q[first]
        ecpm = np.where(b.is_cpc[camps], b.bid[camps] * pctr * 1000.0, b.bid[camps])
        keep = ecpm >= cfg.ads.reserve_ecpm
        camps, cr, pctr, q, ecpm = (a[keep] for a in (camps, cr, pctr, q, ecpm))
        score = ecpm * q
        rank = np.lexsort((camps, -score))
        camps, cr, pctr, q, score = (a[rank] for a in (camps, cr, pctr, q, score))
        first = first_of_each(b.advertiser[camps]) if cfg.one_ad_per_advertiser else None
        if first is not None:
            camps, cr, pctr, q, score = (a[first] for a in (camps, cr, pctr, q, score))
        # pacing throttle (one draw per ranked campaign, so draws do not depend on λ)
        passp = (pacing_pass_probability(b, ads, t, cfg.ads.pacing_band,
                                         cfg.ads.pacing_min_pass)[camps]
                 if cfg.ads.pacing else np.ones(len(camps)))
        u = rng.random(len(camps))
        passed = u < passp
        # propensity of the k-th passing ad: it passes and those ranked between it and the
        # previous passing ad fail
        fail_cum = np.cumprod(np.where(passed, 1.0, 1.0 - passp))
        idx = np.flatnonzero(passed)
        prev = np.concatenate(([-1], idx[:-1]))
        before = np.where(prev >= 0, fail_cum[np.maximum(prev, 0)], 1.0)
        skipped = fail_cum[np.maximum(idx - 1, 0)] / np.where(before > 0, before, 1.0)
        skipped = np.where(idx - 1 > prev, skipped, 1.0)
        prop = passp[idx] * skipped
        camps, cr, pctr, q = camps[idx], cr[idx], pctr[idx], q[idx]
        if len(camps) == 0:
            return None
        auction = run_auction(b, camps, cr, pctr, q, cfg.ads.reserve_ecpm)
        k = min(len(auction), cfg.max_ads(n))
        auction = AuctionResult(*(a[:k] for a in (
            auction.campaigns, auction.creatives, auction.ecpm, auction.score,
            auction.price_ecpm, auction.revenue, auction.charge, auction.pctr)))
        pos = {int(c): i for i, c in enumerate(camps)}
        prop = np.array([prop[pos[int(c)]] for c in auction.campaigns])
        exposure = ctx.ad_exposure + np.arange(k)
        cost = np.asarray(self.ux_cost.predict(ctx, auction.creatives, exposure), np.float64)
        return AdPlan(auction, prop, cost)

    def compose(self, request: FeedRequest, *, record: bool = True) -> Feed:
        """Compose one feed (see :meth:`compose_with_stats`)."""
        return self.compose_with_stats(request, record=record)[0]

    def compose_under(self, request: FeedRequest, config: FeedConfig, *, record: bool = True
                      ) -> Feed:
        """Compose one feed under ``config`` instead of :attr:`config` (an experiment arm's
        λ and guardrails: only the top-level fields are read per request), on the same
        state: caps, budgets and spend stay shared and exact."""
        with self._lock:
            old = self.config
            self.config = config
            try:
                return self._compose(request, record=record)[0]
            finally:
                self.config = old

    def compose_with_stats(self, request: FeedRequest, *, record: bool = True
                           ) -> tuple[Feed, FeedStats]:
        """Compose one feed and report its expected revenue and predicted UX cost.

        Args:
            request: User, number of slots, time, context (``seed`` fixes this request's
                randomness; ``consent_ads`` / ``consent_personalization`` can only narrow
                the stored consent).
            record: Update the cross-request state (frequency caps, spend, exposure, served
                posts). ``False`` composes a what-if feed that leaves the state untouched.
        """
        with self._lock:  # check-and-record is atomic: caps and budgets hold under concurrency
            return self._compose(request, record=record)

    def _compose(self, request: FeedRequest, *, record: bool) -> tuple[Feed, FeedStats]:
        cfg = self.config
        n = request.n
        ctx = self.context(request)
        rng = self._rng(request)
        plan = self.plan_ads(ctx, n, rng)
        pool = self.generator.generate(ctx, n)
        cat = self.catalog
        if len(pool):
            # a NaN (a post the predictor could not score) ranks with the worst, not first
            values = nan_to_lowest(self.engagement.predict(ctx, pool.items, pool.rec_score))
            social, why = self.reshared.bonus(ctx, pool.items)
            if social.any():  # posts the people the user follows shared recently
                values = values + social
                if pool.reasons is None:
                    pool.reasons = np.full(len(pool), None, object)
                hit = social > 0
                pool.reasons[hit] = np.asarray(why, dtype=object)[hit]
            fat = self.state.fatigue.factors(ctx.user_id, cat.author[pool.items],
                                             cat.topic[pool.items], ctx.now_s, cfg.rerank)
            rr = self.reranker.rank(pool.items, values, n, ctx.now_s, self.explorer, rng, fat)
        else:
            values = np.empty(0)
            rr = None
        org = rr.order if rr is not None else np.empty(0, np.int64)
        if len(org):
            self._explain_shown(ctx, pool, org[:n])
        org_value = np.maximum(values[org], 0.0) if len(org) else np.empty(0)
        lam = cfg.ux_lambda
        slots: list[Slot] = []
        i = j = 0
        last_ad = -(10 ** 9)
        n_ads = len(plan) if plan is not None else 0
        # the ad load holds on the feed actually composed: when the posts run out before
        # n slots, ads do not fill the rest (len(org) <= n posts can be shown)
        max_ads = cfg.max_ads_shown(n, len(org))
        # plain floats: inf - inf is a quiet NaN (no margin), and no numpy scalar per slot
        ad_value = plan.value.tolist() if n_ads else []
        ad_cost = plan.ux_cost.tolist() if n_ads else []
        org_v = org_value.tolist()
        liked = ctx.interests > 0 if ctx.interests.any() else None
        organic = self._organic_slots(pool, org, rr, liked) if len(org) else []
        for p in range(n):
            if (j < n_ads and j < max_ads and p >= cfg.first_ad_slot
                    and p - last_ad > cfg.min_ad_gap):
                displaced = org_v[i] if i < len(org_v) else 0.0
                depth = max(0.0, 1.0 - cfg.ux_depth_discount * p / n)
                margin = ad_value[j] - lam * (ad_cost[j] * depth + displaced)
                if margin > 0:
                    slots.append(self._ad_slot(ctx, plan, j, float(margin)))
                    j += 1
                    last_ad = p
                    continue
            if i < len(org):
                slots.append(organic[i])
                i += 1
            else:
                break
        feed = Feed(request, tuple(slots), f"{self.name}(lambda={lam:g})")
        if record:
            self.record(feed, plan)
        stats = FeedStats(n_ads=j,
                          revenue=float(plan.auction.revenue[:j].sum()) if j else 0.0,
                          ux_cost=float(plan.ux_cost[:j].sum()) if j else 0.0,
                          organic_value=float(org_value[:i].sum()))
        return feed, stats

    # ------------------------------------------------------------------ slots
    def _organic_slots(self, pool: CandidatePool, org: np.ndarray, rr: RerankResult,
                       liked: np.ndarray | None) -> list[Slot]:
        """The organic slots of the chosen pool positions ``org``, in order, with their
        reasons (``liked``: the user's tags of interest); the posts' fields are gathered
        for all of them at once, not one numpy scalar at a time."""
        cat = self.catalog
        idx = pool.items[org]
        names = pool.sources
        special = (pool.reasons[org].tolist() if pool.reasons is not None
                   else [None] * len(org))
        out = []
        for item, author, topic, src, why, score, prop in zip(
                cat.item_ids[idx].tolist(), cat.authors[cat.author[idx]].tolist(),
                cat.topic[idx].tolist(), pool.source[org].tolist(), special,
                rr.scores.tolist(), rr.propensities.tolist(),
                strict=True):
            src = names[src]
            if why is not None:
                reasons = [why]
            elif src == "followed":
                reasons = [f"from {author}, whom you follow"]
            else:
                reasons = [SOURCE_REASONS.get(src, src)]
            if liked is not None and topic >= 0 and liked[topic]:
                reasons.append(f"matches #{self._tag_name(topic).lstrip('#')}")
            if prop < 1.0:
                reasons.append("exploring")
            out.append(Slot(item_id=str(item), kind="organic", score=score, propensity=prop,
                            reasons=tuple(reasons), author_id=str(author) or None,
                            source=src))
        return out

    def _tag_name(self, code: int) -> str:
        if not hasattr(self, "_tag_names"):
            names = np.empty(len(self.catalog.tag_index), dtype=object)
            for t, c in self.catalog.tag_index.items():
                names[c] = t
            self._tag_names = names
        return str(self._tag_names[code])

    def _ad_slot(self, ctx: UserContext, plan: AdPlan, j: int, margin: float) -> Slot:
        b = self.book
        a = plan.auction
        c = int(a.campaigns[j])
        camp = b.campaigns[c]
        reason = "sponsored"
        if ctx.consent_ads and camp.target_tags and ctx.interests.any():
            hit = [t for t in camp.target_tags
                   if ctx.interests[self.catalog.tag_index[t]] > 0]
            if hit:
                reason = f"sponsored: matches #{hit[0].lstrip('#')}"
        elif ctx.consent_ads and camp.target_segments:
            reason = "sponsored: for people like you"
        return Slot(item_id=str(b.creative_ids[a.creatives[j]]), kind="ad", score=margin,
                    propensity=float(plan.propensity[j]), campaign_id=camp.campaign_id,
                    reasons=(reason,), price=float(a.charge[j]),
                    author_id=camp.advertiser_id, source="ad",
                    impression_charge=0.0 if b.is_cpc[c] else float(a.charge[j]))

    # ------------------------------------------------------------------ state updates
    def record(self, feed: Feed, plan: AdPlan | None = None) -> None:
        """Record a served feed: frequency, exposure and spend for its ads (CPM charged at
        impression, never beyond the budget), and its posts as served."""
        uid = str(feed.request.user_id)
        now_s = feed.request.now.timestamp()
        st = self.state
        keep_served = self.config.exclude_served_within_s > 0
        posts: list[int] = []
        b = self.book
        for s in feed.slots:
            if s.kind == "ad":
                st.ads.record(AdImpression(uid, b.index[s.campaign_id], s.item_id, now_s, 0.0,
                                           feed.request.request_id), s.impression_charge)
            elif keep_served:
                k = self.catalog.index.get(s.item_id)
                if k is not None:
                    posts.append(k)
        if keep_served:
            new = np.empty(len(posts), SERVED_POST)
            new["t"], new["k"] = now_s, posts
            kept = st.served.get(uid, b"") + new.tobytes()
            st.served[uid] = kept[-MAX_SERVED * SERVED_POST.itemsize:]

    def record_click(self, campaign_id: str, price: float) -> float:
        """Charge a CPC click; returns the amount charged (capped by the budget left)."""
        if campaign_id not in self.book.index:
            raise NotFoundError(f"unknown campaign {campaign_id!r}")
        return self.state.ads.record_click(campaign_id, price)

    def record_feedback(self, user_id: str, item_id: str, kind: str, ts: Any) -> None:
        """Record a hide or report: the item is never shown again to the user and its author
        and topics enter the fatigue window."""
        if kind not in ("hide", "report"):
            return
        k = self.catalog.index.get(str(item_id))
        if k is None:
            return
        t = pd.Timestamp(ts).tz_localize("UTC") if pd.Timestamp(ts).tzinfo is None else \
            pd.Timestamp(ts)
        tags = self.catalog.tags[k].indices
        self.state.fatigue.record(str(user_id), int(self.catalog.author[k]), tags,
                                  t.timestamp())
        self.state.hidden.setdefault(str(user_id), set()).add(k)

    def flush(self) -> int:
        """Persist pending ad state to the store (no-op without a store)."""
        return self.state.ads.flush()

    def set_flush_every(self, n: int) -> None:
        """Flush ad state to the store every ``n`` recorded ad impressions (0: only on
        :meth:`flush`)."""
        self.state.ads.flush_every = n

    # ------------------------------------------------------------------ privacy
    def forget_user(self, user_id: str) -> bool:
        """Forget a user (stored id) at once, between two requests: the candidate sources'
        state (the recommender's, a factor source's user factors), the user table row
        (interests, segments, follows, affinity, consent) and the cross-request state
        (frequency caps, exposure, served and hidden posts, fatigue, unsaved ad
        impressions).

        Returns:
            ``True`` if the engine held anything about the user.
        """
        with self._lock:  # not in the middle of a compose
            found = False
            for src in self.sources:
                if isinstance(src, ForgetsUsers):
                    found = bool(src.forget_user(user_id)) or found
            found = self.users.forget_user(user_id) or found
            return self.state.forget_user(user_id) or found

    def with_state(self, fn: Callable[[EngineState], Any]) -> Any:
        """Run ``fn(state)`` between two requests (e.g. to merge the ad state of other
        processes, feed/adshare.py) and return what it returns."""
        with self._lock:
            return fn(self.state)

    def set_consent(self, user_id: str, personalization: bool, ads: bool) -> bool:
        """Make a consent change of a user (stored id) effective from the next request (the
        engine otherwise reads consent when it is built).

        Returns:
            ``True`` if the engine knew the user (unknown users are covered by passing
            ``consent_*`` in the request context, as the HTTP service does).
        """
        with self._lock:
            return self.users.set_consent(user_id, personalization, ads)

    # ------------------------------------------------------------------ guardrails
    def guardrail_state(self, request: FeedRequest) -> GuardrailState:
        ctx = self.context(request)
        return GuardrailState(self.config, self.book, self.state.ads, ctx.consent_ads,
                              ctx.consent_personalization, self.personal_sources)

    def check(self, feed: Feed) -> list[Violation]:
        """Violations of ``feed`` (check after it was composed and recorded)."""
        return check_all(feed, self.guardrail_state(feed.request), self.guardrails)


def engine_for_service(model: Any, store: EventStore | None, config: FeedConfig | None = None,
                       flush_every: int = 50) -> FeedEngine:
    """The engine the HTTP service serves: the store's posts, users and campaigns around
    ``model``; ad state is flushed to the store every ``flush_every`` ad impressions."""
    if store is None:
        raise ConfigError("the feed engine needs the store (items, users, campaigns)")
    engine = FeedEngine.from_store(store, model, config)
    engine.set_flush_every(flush_every)
    return engine
