"""`FeedConfig`: every knob of the feed engine in one pydantic model.

The one knob that trades revenue against user experience is ``ux_lambda`` (λ): an ad takes
a slot only if its expected revenue minus λ × its expected user-experience cost (predicted
annoyance plus the engagement value of the organic post it displaces) is positive. λ = 0 is
the revenue-greedy feed within the hard rules; a large λ shows no ads.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from feedwise.errors import ConfigError


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CandidateConfig(_Config):
    """How many candidates each source contributes (quotas) and the pool size.

    Attributes:
        pool_size: Total candidates handed to ranking (the merged, de-duplicated pool).
        quotas: Source name -> maximum candidates it contributes, in fallback order: when
            the pool is short, later sources fill it (``trending`` and ``fresh`` never run
            dry while the catalogue has posts, so a feed is never empty).
        fresh_max_age_hours: Posts younger than this count as fresh.
        followed_per_author: Newest posts taken from each followed author.
    """

    pool_size: int = Field(200, ge=1)
    quotas: dict[str, int] = Field(default_factory=lambda: {
        "recommender": 150, "followed": 40, "fresh": 30, "trending": 30})
    fresh_max_age_hours: float = Field(72.0, gt=0)
    followed_per_author: int = Field(3, ge=1)


class RerankConfig(_Config):
    """Weights of the re-ranking stage (all multiplicative or subtractive on the value).

    Attributes:
        author_decay: The k-th post (k = 0, 1, …) of one author is worth ``author_decay**k``.
        mmr_lambda: Weight of topic similarity to already chosen posts (MMR); 0 disables.
        freshness_weight: Bonus ``freshness_weight * 0.5 ** (age_h / freshness_half_life_h)``
            as a fraction of the value.
        freshness_half_life_hours: Half-life of the freshness bonus.
        fatigue_window_hours: After a hide/report, the author and topics are suppressed for
            this long …
        fatigue_ramp_hours: … then ramp linearly back to full weight over this long.
        fatigue_floor: Weight of a suppressed author/topic inside the window.
        max_per_author: Hard cap on one author's posts in a feed (``None`` = no cap; the
            feed is shorter rather than break it).
    """

    author_decay: float = Field(0.6, ge=0, le=1)
    mmr_lambda: float = Field(0.3, ge=0)
    freshness_weight: float = Field(0.2, ge=0)
    freshness_half_life_hours: float = Field(24.0, gt=0)
    fatigue_window_hours: float = Field(72.0, ge=0)
    fatigue_ramp_hours: float = Field(72.0, ge=0)
    fatigue_floor: float = Field(0.0, ge=0, le=1)
    max_per_author: int | None = Field(None, ge=1)


class ExplorationConfig(_Config):
    """Optional randomisation of organic slots with exact, logged propensities.

    Attributes:
        method: ``none`` (deterministic, propensity 1), ``epsilon`` (with probability
            ``epsilon`` pick uniformly among the ``top_k`` best remaining posts) or
            ``softmax`` (pick among the ``top_k`` best with probability ∝ exp(score / T),
            ``score`` being a post's re-ranked score at that slot, the one logged in
            ``Slot.score``).
        epsilon: Exploration probability of ``epsilon``.
        temperature: Temperature ``T`` of ``softmax``, in the units of the engagement value
            (the re-ranked scores are the engagement value after the freshness, fatigue,
            author-decay and MMR adjustments, in the same units). The scores are divided
            by ``T`` as they are, not normalised by their spread: the same ``T`` explores
            more when score gaps are small and less when they are large, so rescaling
            ``value_weights`` (or swapping the engagement predictor) changes how much
            ``softmax`` explores.
        top_k: Posts considered at each slot.
        seed: Seed of the engine's generator (a request may carry its own ``seed`` in
            ``context``).
    """

    method: Literal["none", "epsilon", "softmax"] = "none"
    epsilon: float = Field(0.1, ge=0, le=1)
    temperature: float = Field(1.0, gt=0)
    top_k: int = Field(5, ge=1)
    seed: int | None = 0


class QuietHours(_Config):
    """Hours of the day (UTC, ``start`` inclusive, ``end`` exclusive; may wrap midnight) in
    which no ads are shown."""

    start: int = Field(ge=0, le=23)
    end: int = Field(ge=0, le=24)

    def contains(self, hour: int) -> bool:
        if self.start <= self.end:
            return self.start <= hour < self.end
        return hour >= self.start or hour < self.end


class AdConfig(_Config):
    """Auction, pacing and exposure settings.

    Attributes:
        reserve_ecpm: Reserve price (effective CPM); ads below it never show, and the last
            winner pays it.
        pacing: Throttle campaigns that spend ahead of their daily schedule.
        pacing_band: Fraction of the daily budget of over-delivery over which the throttle
            falls from 1 to ``pacing_min_pass``.
        pacing_min_pass: Lowest pass probability of the throttle (0 = full stop).
        dayparting: Pace each campaign's daily budget by its audience's activity per UTC
            hour (from the stored user profiles, set when the engine is loaded from the
            store) instead of evenly through the day.
        exposure_window_s: Window over which a user's recent ad exposure is counted.
        no_consent: Ads for users without ads consent: ``none`` or ``non_targeted`` (only
            campaigns without any targeting).
    """

    reserve_ecpm: float = Field(0.5, ge=0)
    pacing: bool = True
    pacing_band: float = Field(0.1, gt=0)
    pacing_min_pass: float = Field(0.0, ge=0, le=1)
    dayparting: bool = True
    exposure_window_s: float = Field(3600.0, gt=0)
    no_consent: Literal["none", "non_targeted"] = "non_targeted"


class FeedConfig(_Config):
    """Everything the :class:`~feedwise.feed.engine.FeedEngine` can be told.

    Attributes:
        ux_lambda: λ, revenue per unit of user-experience cost; 0 = revenue-greedy within
            the hard rules, very large = no ads.
        max_ad_load: Maximum fraction of the composed feed that may be ads: a feed of
            ``L`` slots (ads plus organic posts actually shown, ``L <= n``) carries at most
            ``floor(max_ad_load * L)`` ads. When the posts fill the ``n`` requested slots
            this is ``floor(max_ad_load * n)``; when they run out (small catalogue, author
            cap, hidden posts) ads never fill the slots no post was left for, so with ``m``
            posts there are at most ``floor(max_ad_load / (1 - max_ad_load) * m)`` ads and
            no posts means no ads (1 = no limit on the share). See :meth:`max_ads_shown`.
        first_ad_slot: First (0-based) slot an ad may take.
        min_ad_gap: Minimum number of organic slots between two ads.
        ux_depth_discount: The UX cost of an ad at slot ``p`` of an ``n``-slot feed is
            scaled by ``max(0, 1 - ux_depth_discount · p / n)``: an ad deep in the feed cuts
            a shorter remaining session than one at the top (0 = position-blind).
        one_ad_per_advertiser: At most one ad per advertiser in one feed.
        quiet_hours: Hour ranges (UTC) with no ads.
        candidates, rerank, exploration, ads: Stage settings.
        value_weights: Objective -> weight of the multi-objective engagement value (negative
            for hide/report); used by the default engagement predictor.
        exclude_served_within_s: Posts already served to the user this recently are not
            shown again (0 disables).
    """

    #: 0.01: chosen by evidence, not on the demo world it is checked on — the FeedEngine's
    #: λ frontier in the attention simulator on a held-out world (world seed 1, 1,000 users
    #: x 8 days, behaviour seeds 1 and 2): the most revenue with session depth and D7
    #: return within 5 % of no ads (benchmarks/default_policy.py, docs/evidence_defaults.md).
    #: The old default, 1.0, placed no ad at all. A deployment's applied policy
    #: (``feedwise frontier --apply``) replaces it.
    ux_lambda: float = Field(0.01, ge=0)
    max_ad_load: float = Field(0.2, ge=0, le=1)
    first_ad_slot: int = Field(2, ge=0)
    min_ad_gap: int = Field(3, ge=0)
    ux_depth_discount: float = Field(0.0, ge=0)
    one_ad_per_advertiser: bool = True
    quiet_hours: list[QuietHours] = Field(default_factory=list)
    candidates: CandidateConfig = Field(default_factory=CandidateConfig)
    rerank: RerankConfig = Field(default_factory=RerankConfig)
    exploration: ExplorationConfig = Field(default_factory=ExplorationConfig)
    ads: AdConfig = Field(default_factory=AdConfig)
    value_weights: dict[str, float] = Field(default_factory=lambda: {
        "click": 1.0, "like": 2.0, "comment": 3.0, "share": 4.0, "long_dwell": 1.0,
        "hide": -5.0, "report": -20.0})
    exclude_served_within_s: float = Field(86400.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> FeedConfig:
        if self.candidates.pool_size < 1:
            raise ConfigError("candidates.pool_size must be >= 1")
        return self

    def max_ads(self, n: int) -> int:
        """Most ads a composed feed of ``n`` slots may carry: ``floor(max_ad_load × n)``."""
        return int(self.max_ad_load * n + 1e-9)

    def max_ads_shown(self, n: int, organic: int) -> int:
        """Most ads a request for ``n`` slots may place when ``organic`` posts are available.

        The largest ``a <= max_ads(n)`` with ``a <= max_ads(min(n, a + organic))``: the ads
        stay within the load of the feed that is actually composed (``a`` ads and
        ``organic`` posts, or ``n`` slots when the posts fill them). Equals ``max_ads(n)``
        whenever the posts fill the feed (``organic >= n - max_ads(n)``); 0 without posts
        (unless ``max_ad_load`` is 1).
        """
        cap = self.max_ads(n)
        if organic >= n - cap or self.max_ad_load >= 1.0:
            return cap
        # a <= max_ads(a + organic) holds for a prefix of 0, 1, ... (the share of one more
        # ad grows faster than the load allows), so step down from the cap
        a = cap
        while a > 0 and a > self.max_ads(a + organic):
            a -= 1
        return a

    def is_quiet(self, hour: int) -> bool:
        return any(q.contains(hour) for q in self.quiet_hours)
