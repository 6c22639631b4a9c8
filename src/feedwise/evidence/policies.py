"""Baseline feed policies and the λ ad-insertion policy, for the simulator and the frontier.

Every policy here has the per-request contract ``compose(FeedRequest) -> Feed`` (candidates
travel in ``request.context["candidates"]``, as :class:`~feedwise.evidence.simulator.
CandidateBatch.request` builds them) and a vectorised ``compose_batch(CandidateBatch) ->
np.ndarray`` slot plan (``-1`` = next organic post, ``j >= 0`` = ad column ``j``).

* :class:`NoAdsPolicy` — organic posts only.
* :class:`FixedSlotPolicy` — an ad at every ``every``-th position, the highest expected
  revenue ad each time (a plain eCPM auction), no ad repeated in a feed.
* :class:`RevenueGreedyPolicy` — an ad wherever the guardrails allow, highest eCPM first.
* :class:`LambdaPolicy` — feedwise's insertion rule: going down the feed, at each slot the
  guardrails allow, take the ad maximising ``value - λ · ux_cost`` and insert it only if that
  is positive. ``ux_cost = (ad_base_cost · (1.2 - quality) + annoyance_cost · exposure)
  · (1 - depth_discount · k / n) · tolerance``, where ``exposure`` is the user's recent ad
  exposure plus the ads already placed in this feed, ``k`` the slot (an ad deep in the
  feed cuts a shorter remaining session; ``depth_discount`` 1.0 by default, which measured
  better than 0.5 in all five simulator worlds tried) and ``tolerance`` an optional per-user
  multiplier (:class:`AdTolerance`) learned from the user's own logged history: ad hides
  per ad seen and the share of sessions read to the end of the feed. Guardrails: ``max_ad_load``
  (share of slots), ``first_ad_slot`` (0-based) and ``min_gap`` (organic slots between two
  ads). With ``rule="engine"`` it follows :class:`~feedwise.feed.engine.FeedEngine`'s
  insertion rule instead (ads in auction order; see :class:`LambdaPolicy`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from feedwise.errors import ConfigError
from feedwise.evidence.simulator import ORGANIC, CandidateBatch
from feedwise.feed.types import Feed, FeedRequest, Slot


@dataclass(frozen=True)
class AdTolerance:
    """Per-user ad tolerance learned online from the user's own logged history.

    A multiplier on the predicted UX cost of an ad for each request, from two shrinkage
    (Beta-binomial style) estimates over what the platform logged for the user
    (:data:`~feedwise.evidence.simulator.HISTORY_FIELDS`), never the simulated user's
    hidden state:

    * **ad-hide rate** ``h = (ad_hides + h0 · n_hide) / (ads_seen + n_hide)``: users who hide
      ads more often than the population (``h0``) are more ad-sensitive, so ads cost them
      more: factor ``(h / h0) ** hide_weight``;
    * **full-session share** ``f = (full_sessions + f0 · n_full) / (sessions + n_full)``:
      users who often read to the end of the feed have attention to spare, so an ad costs
      them less depth: factor ``((1 - f) / (1 - f0)) ** full_weight``.

    The population priors ``h0`` and ``f0`` are the pooled rates over the requests of the
    batch when it holds at least ``min_pool`` users with history (the platform's population
    rates), else ``default_hide_rate`` / ``default_full_share``. Users without history get
    1. The product is clipped to ``[lo, hi]``.
    """

    hide_weight: float = 1.0
    full_weight: float = 1.0
    n_hide: float = 30.0
    n_full: float = 3.0
    default_hide_rate: float = 0.03
    default_full_share: float = 0.1
    min_pool: int = 50
    lo: float = 0.25
    hi: float = 4.0

    def multiplier(self, history: dict[str, np.ndarray], n: int) -> np.ndarray:
        """The cost multiplier ``(n,)`` for a batch of ``n`` requests (1 without history)."""
        need = ("ads_seen", "ad_hides", "sessions", "full_sessions")
        if not history or any(k not in history for k in need):
            return np.ones(n)
        ads = np.asarray(history["ads_seen"], np.float64)
        hides = np.asarray(history["ad_hides"], np.float64)
        sess = np.asarray(history["sessions"], np.float64)
        full = np.asarray(history["full_sessions"], np.float64)
        pooled = (sess > 0).sum() >= self.min_pool
        h0 = (hides.sum() / ads.sum() if pooled and ads.sum() > 0
              else self.default_hide_rate)
        h0 = max(h0, 1e-4)
        f0 = (full.sum() / sess.sum() if pooled and sess.sum() > 0
              else self.default_full_share)
        f0 = min(max(f0, 1e-3), 0.95)
        h = (hides + h0 * self.n_hide) / (ads + self.n_hide)
        f = (full + f0 * self.n_full) / (sess + self.n_full)
        m = (h / h0) ** self.hide_weight * ((1 - f) / (1 - f0)) ** self.full_weight
        return np.where(sess > 0, np.clip(m, self.lo, self.hi), 1.0)


class _BatchPolicy:
    """Shared ``compose`` on top of ``compose_batch``."""

    name = "policy"

    def compose_batch(self, batch: CandidateBatch) -> np.ndarray:
        raise NotImplementedError

    def compose(self, request: FeedRequest) -> Feed:
        """Compose one feed from the candidates in ``request.context['candidates']``."""
        batch = CandidateBatch.from_request(request)
        plan = self.compose_batch(batch)[0]
        c = request.context["candidates"]
        slots, o = [], 0
        for a in plan:
            if a >= 0:
                slots.append(Slot(item_id=c["ad_ids"][a], kind="ad", score=float(c["ad_value"][a]),
                                  campaign_id=c["ad_ids"][a], price=float(c["ad_value"][a]),
                                  reasons=("sponsored",)))
            else:
                slots.append(Slot(item_id=c["organic_ids"][o], score=float(c["organic_score"][o])))
                o += 1
        return Feed(request=request, slots=tuple(slots), policy=self.name)


def _pick(score: np.ndarray, used: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.where(used, -np.inf, score)  # `used` also marks ineligible ads
    j = np.argmax(s, axis=1)
    return j, s[np.arange(len(j)), j]


class NoAdsPolicy(_BatchPolicy):
    """Organic posts only."""

    name = "no-ads"

    def compose_batch(self, batch: CandidateBatch) -> np.ndarray:
        return np.full((len(batch), batch.n_slots), ORGANIC, dtype=np.int64)


class FixedSlotPolicy(_BatchPolicy):
    """An ad at positions ``every, 2*every, ...`` (1-based), best expected revenue first.

    Args:
        every: Ad period ``k`` (an ad at every k-th position).
    """

    def __init__(self, every: int = 5) -> None:
        self.every = every

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"fixed-every-{self.every}"

    def compose_batch(self, batch: CandidateBatch) -> np.ndarray:
        if self.every < 1:
            raise ConfigError(f"every must be >= 1, got {self.every}")
        plan = np.full((len(batch), batch.n_slots), ORGANIC, dtype=np.int64)
        used = ~batch.ad_eligible.astype(bool)
        rows = np.arange(len(batch))
        for k in range(self.every - 1, batch.n_slots, self.every):
            j, s = _pick(batch.ad_value, used)
            ok = np.isfinite(s)
            plan[ok, k] = j[ok]
            used[rows[ok], j[ok]] = True
        return plan


class _Guarded(_BatchPolicy):
    def __init__(self, max_ad_load: float, first_ad_slot: int, min_gap: int) -> None:
        self.max_ad_load = max_ad_load
        self.first_ad_slot = first_ad_slot
        self.min_gap = min_gap

    def _check(self) -> None:
        if not 0 <= self.max_ad_load <= 1:
            raise ConfigError(f"max_ad_load must be in [0, 1], got {self.max_ad_load}")
        if self.first_ad_slot < 0 or self.min_gap < 0:
            raise ConfigError("first_ad_slot and min_gap must be >= 0")

    def _plan(self, batch: CandidateBatch, score_fn) -> np.ndarray:
        # score_fn(n_ads, k) -> (B, A) scores; an ad is inserted where its score is > 0
        self._check()
        B, n = len(batch), batch.n_slots
        plan = np.full((B, n), ORGANIC, dtype=np.int64)
        used = ~batch.ad_eligible.astype(bool)
        n_ads = np.zeros(B)
        last = np.full(B, -10**6)
        max_ads = int(np.floor(self.max_ad_load * n + 1e-9))
        rows = np.arange(B)
        for k in range(self.first_ad_slot, n):
            ok = (n_ads < max_ads) & (k - last > self.min_gap)
            if not ok.any():
                continue
            j, s = _pick(score_fn(n_ads, k), used)
            ins = ok & (s > 0)
            plan[ins, k] = j[ins]
            used[rows[ins], j[ins]] = True
            n_ads += ins
            last = np.where(ins, k, last)
        return plan


class RevenueGreedyPolicy(_Guarded):
    """An ad wherever the guardrails allow, highest expected revenue first.

    Args:
        max_ad_load: Most ads as a share of the feed's slots.
        first_ad_slot: Earliest slot (0-based) an ad may take.
        min_gap: Organic slots required between two ads.
    """

    name = "revenue-greedy"

    def __init__(self, max_ad_load: float = 0.5, first_ad_slot: int = 0, min_gap: int = 1
                 ) -> None:
        super().__init__(max_ad_load, first_ad_slot, min_gap)

    def compose_batch(self, batch: CandidateBatch) -> np.ndarray:
        return self._plan(batch, lambda n_ads, k: batch.ad_value)


class LambdaPolicy(_Guarded):
    """feedwise's rule: an ad takes a slot when ``value - λ · ux_cost > 0``.

    Args:
        ux_lambda: Price of one unit of user-experience cost, in revenue units per impression.
        max_ad_load: Most ads as a share of the feed's slots.
        first_ad_slot: Earliest slot (0-based) an ad may take.
        min_gap: Organic slots required between two ads.
        ad_base_cost: UX cost of an ad per unit of ``1.2 - quality``.
        annoyance_cost: UX cost per unit of recent ad exposure (incl. this feed's ads).
        depth_discount: The cost at slot ``k`` is scaled by ``1 - depth_discount * k / n``:
            an ad deep in the feed cuts a shorter remaining session than one at the top.
        rule: ``net`` — at each allowed slot take the ad with the best ``value - λ·cost``;
            ``engine`` — :class:`~feedwise.feed.engine.FeedEngine`'s rule: ads in auction
            (value) order, the next one takes the slot only if ``value - λ·(cost +
            displaced_weight · engagement of the displaced post) > 0``, and a failing ad is
            not replaced by a lower one.
        displaced_weight: Weight of the displaced organic post's predicted engagement in
            the cost (``engine`` rule only).
        tolerance: Per-user :class:`AdTolerance` learned from the user's logged history
            (``CandidateBatch.history``); ``None`` treats every user alike.
    """

    def __init__(self, ux_lambda: float = 0.004, max_ad_load: float = 0.25,
                 first_ad_slot: int = 2, min_gap: int = 2, ad_base_cost: float = 1.2,
                 annoyance_cost: float = 1.0, depth_discount: float = 1.0,
                 rule: str = "net", displaced_weight: float = 0.0,
                 tolerance: AdTolerance | None = None) -> None:
        super().__init__(max_ad_load, first_ad_slot, min_gap)
        self.depth_discount = depth_discount
        self.tolerance = tolerance
        self.rule = rule
        self.displaced_weight = displaced_weight
        self.ux_lambda = ux_lambda
        self.ad_base_cost = ad_base_cost
        self.annoyance_cost = annoyance_cost

    @property
    def name(self) -> str:  # type: ignore[override]
        tag = "-adaptive" if self.tolerance is not None else ""
        return f"feedwise-{self.rule}{tag}-lambda-{self.ux_lambda:g}"

    def ux_cost(self, batch: CandidateBatch, n_ads: np.ndarray, k: int = 0) -> np.ndarray:
        """Predicted UX cost ``(B, A)`` of each ad at slot ``k`` given ``n_ads`` before it."""
        exp_ = batch.ad_exposure + n_ads
        cost = self.ad_base_cost * (1.2 - batch.ad_quality) + self.annoyance_cost * exp_[:, None]
        cost = cost * max(0.0, 1.0 - self.depth_discount * k / batch.n_slots)
        if self.tolerance is not None:
            cost = cost * self.tolerance.multiplier(batch.history, len(batch))[:, None]
        return cost

    def compose_batch(self, batch: CandidateBatch) -> np.ndarray:
        if self.ux_lambda < 0:
            raise ConfigError(f"ux_lambda must be >= 0, got {self.ux_lambda}")
        if self.rule == "engine":
            return self._engine_plan(batch)
        if self.rule != "net":
            raise ConfigError(f"rule must be 'net' or 'engine', not {self.rule!r}")
        return self._plan(batch, lambda n_ads, k: batch.ad_value
                          - self.ux_lambda * self.ux_cost(batch, n_ads, k))

    def _engine_plan(self, batch: CandidateBatch) -> np.ndarray:
        self._check()
        B, n = len(batch), batch.n_slots
        rows = np.arange(B)
        order = np.argsort(-np.where(batch.ad_eligible, batch.ad_value, -np.inf), axis=1,
                           kind="stable")
        n_elig = batch.ad_eligible.sum(axis=1)
        plan = np.full((B, n), ORGANIC, dtype=np.int64)
        j = np.zeros(B, dtype=np.int64)      # next ad in auction order
        i = np.zeros(B, dtype=np.int64)      # next organic post
        last = np.full(B, -10**6)
        max_ads = int(np.floor(self.max_ad_load * n + 1e-9))
        for k in range(n):
            ok = (j < n_elig) & (j < max_ads) & (k >= self.first_ad_slot) & \
                (k - last > self.min_gap)
            ad = order[rows, np.minimum(j, order.shape[1] - 1)]
            cost = self.ux_cost(batch, j.astype(np.float64), k)[rows, ad]
            displaced = batch.organic_score[rows, np.minimum(i, n - 1)]
            margin = batch.ad_value[rows, ad] - self.ux_lambda * (
                cost + self.displaced_weight * displaced)
            ins = ok & (margin > 0)
            plan[ins, k] = ad[ins]
            j += ins
            i += ~ins
            last = np.where(ins, k, last)
        return plan
