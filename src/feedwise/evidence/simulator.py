"""A seeded, vectorised user-attention simulator that plays feed policies over many days.

The world (users, posts, ad creatives) is drawn once from ``SimulatorConfig.world_seed``;
behaviour is drawn from the ``seed`` of :meth:`Simulator.run`. Random draws are made for
*every* user at every (day, session, slot) step whether or not the user is active, so two
policies run with the same seed share their random numbers (common random numbers) and
their differences are not drowned in sampling noise.

What a simulated user does (all parameters in :class:`SimulatorConfig`, see
``docs/simulator.md``):

* **Interests.** A topic mixture per user; engaging with a post moves it toward the post's
  topics (``interest_drift``).
* **Attention.** Slots are seen in order (cascade). A reached slot is examined with
  probability ``examine_top * examine_decay ** position``.
* **Patience.** Each session starts with a patience budget; every slot spends
  ``slot_cost``, an ad spends more (worse for low-quality ads, for annoyed users and for
  ad-sensitive users), and an engaging post refunds ``refund``. The session ends when
  patience runs out, with a small per-slot chance of leaving anyway, or at the feed's end.
* **Ad annoyance** accumulates with each ad seen and decays with a half-life in hours.
* **Ad blindness.** Exposure to low-quality ads lowers the user's ad CTR; it decays over days.
* **Negative feedback.** Users hide (and sometimes report) poor ads and off-topic posts.
* **Return.** The chance of coming back the next day rises with the satisfaction of the
  recent sessions (an exponential moving average).
* **Money.** Ads pay by their campaign's bid model: CPM per thousand impressions, CPC per
  click. Budgets are not simulated.

A policy is anything with ``compose(FeedRequest) -> Feed``; for speed the simulator calls
``compose_batch(batch: CandidateBatch) -> np.ndarray`` when the policy has it. The organic
candidates come from the simulator's own recommender (the top posts by a noisy estimate of
the user's affinity), so the policies compared here differ in how they mix ads into the
feed, which is what the revenue ↔ experience frontier is about.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from feedwise.errors import ConfigError
from feedwise.feed.types import Feed, FeedRequest

#: Marker in a slot plan for "the next organic post".
ORGANIC = -1

#: The per-user logged history the simulator hands policies in ``CandidateBatch.history``.
#: Every field is something a platform observes in its own logs (counts since the user's
#: first session in the run); none reads the simulated user's hidden state.
HISTORY_FIELDS: dict[str, str] = {
    "sessions": "sessions so far",
    "depth": "slots seen, summed over sessions",
    "full_sessions": "sessions that reached the end of the feed",
    "engagements": "organic engagements (likes, comments, long dwell)",
    "ads_seen": "ad impressions (ad slots reached)",
    "ad_clicks": "ad clicks",
    "ad_hides": "ads hidden or reported",
    "ad_exits": "sessions that ended on an ad slot or the slot right after one",
    "org_exits": "sessions that ended on an organic slot not right after an ad "
                 "(before the feed's end)",
    "active_days": "days with at least one session",
    "days_observed": "days since the user's first session, that day included",
}


class SimulatorConfig(BaseModel):
    """Every parameter of the simulator, with its documented default."""

    # NaN or infinite settings would turn the metrics into NaN silently; half-lives may be
    # infinite (no decay)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # population and horizon
    n_users: int = Field(5000, ge=1, description="Simulated users.")
    n_days: int = Field(8, ge=2, description="Simulated days (day 0 .. n_days-1); D7 needs 8.")
    n_slots: int = Field(20, ge=1, description="Slots per feed.")
    max_sessions_per_day: int = Field(3, ge=1, description="Most sessions a user has a day.")
    extra_session_prob: float = Field(0.3, ge=0, le=1,
                                      description="Chance of each further session on an "
                                                  "active day.")
    session_gap_hours: float = Field(4.0, gt=0, description="Hours between sessions.")
    # world
    n_topics: int = Field(8, ge=1, description="Latent topics.")
    n_items: int = Field(2000, ge=1, description="Organic posts.")
    n_ads: int = Field(40, ge=1, description="Ad creatives (one campaign each).")
    n_candidates: int = Field(200, ge=1, description="Posts the recommender scores per session "
                                                     "(at least n_slots).")
    recommender_noise: float = Field(0.05, ge=0, description="Noise sd of the recommender's "
                                                             "affinity estimate.")
    world_seed: int = Field(7, ge=0, description="Seed of users, posts and ads.")
    # attention
    examine_top: float = Field(0.95, gt=0, le=1, description="P(examine) of the first slot.")
    examine_decay: float = Field(0.97, gt=0, le=1, description="Per-position decay of P(examine).")
    # engagement
    engage_intercept: float = Field(-3.5, description="Logit of P(engage | examined) at zero "
                                                      "affinity and average quality.")
    engage_affinity: float = Field(4.0, description="Logit slope on affinity (0..1).")
    engage_quality: float = Field(1.5, description="Logit slope on post quality - 0.5.")
    dwell_seen_s: float = Field(2.0, ge=0, description="Seconds on an examined slot.")
    dwell_engaged_s: float = Field(15.0, ge=0, description="Extra seconds on an engaged post.")
    interest_drift: float = Field(0.03, ge=0, le=1, description="Step of interests toward an "
                                                               "engaged post's topics.")
    # patience
    patience_mean: float = Field(7.0, gt=0, description="Mean patience at session start.")
    patience_sd: float = Field(2.5, ge=0, description="Sd of patience at session start.")
    slot_cost: float = Field(1.0, ge=0, description="Patience spent on every slot.")
    refund: float = Field(1.6, ge=0, description="Patience refunded by an engaging post.")
    leave_prob: float = Field(0.02, ge=0, le=1, description="Per-slot chance of leaving anyway.")
    ad_base_cost: float = Field(1.2, ge=0, description="Extra patience an ad costs, times "
                                                       "(1.2 - quality).")
    annoyance_cost: float = Field(0.5, ge=0, description="Extra patience an ad costs per unit "
                                                         "of annoyance.")
    ad_sensitivity_sd: float = Field(0.5, ge=0, description="Sd of log ad sensitivity across "
                                                            "users (multiplies ad costs).")
    # annoyance, blindness, negative feedback
    annoyance_per_ad: float = Field(1.0, ge=0, description="Annoyance added by an ad seen, "
                                                          "times (0.5 + 1 - quality).")
    annoyance_half_life_hours: float = Field(6.0, gt=0, allow_inf_nan=True,
                                             description="Half-life of annoyance.")
    blindness_rate: float = Field(0.03, ge=0, description="Blindness added per examined ad of "
                                                          "quality below 0.5, times the gap.")
    blindness_half_life_days: float = Field(5.0, gt=0, allow_inf_nan=True,
                                            description="Half-life of blindness.")
    hide_ad: float = Field(0.04, ge=0, description="P(hide) of an examined ad, times "
                                                   "(1 - quality) * (1 + annoyance).")
    hide_post: float = Field(0.01, ge=0, description="P(hide) of an examined post, times "
                                                     "(1 - affinity).")
    report_share: float = Field(0.2, ge=0, le=1, description="Share of hides of ads with "
                                                             "quality < 0.3 that are reports.")
    hide_cost: float = Field(2.0, ge=0, description="Patience a hide costs.")
    # ads
    ad_ctr_intercept: float = Field(-5.5, description="Logit of ad CTR at zero affinity, "
                                                      "quality 0.5.")
    ad_ctr_affinity: float = Field(2.5, description="Logit slope of ad CTR on affinity.")
    ad_ctr_quality: float = Field(1.5, description="Logit slope of ad CTR on quality - 0.5.")
    cpm_share: float = Field(0.5, ge=0, le=1, description="Share of CPM campaigns (rest CPC).")
    cpm_bid_mean: float = Field(6.0, gt=0, description="Mean CPM bid (currency / 1000 "
                                                       "impressions), lognormal.")
    cpc_bid_mean: float = Field(0.5, gt=0, description="Mean CPC bid (currency / click), "
                                                       "lognormal.")
    bid_sd: float = Field(0.6, ge=0, description="Sd of log bids.")
    ad_eligible_prob: float = Field(0.15, gt=0, le=1,
                                    description="Chance that an ad is eligible for a request "
                                                "(targeting, budgets, pacing).")
    predictor_noise: float = Field(0.15, ge=0, description="Noise of the pCTR (log scale) and "
                                                           "quality predictions policies get.")
    # satisfaction and return
    sat_engage: float = Field(1.0, description="Satisfaction per engagement.")
    sat_depth: float = Field(0.1, description="Satisfaction per slot seen.")
    sat_hide: float = Field(-2.0, description="Satisfaction per hide or report.")
    sat_annoyance: float = Field(-0.4, description="Satisfaction per unit of annoyance at the "
                                                   "end of the session.")
    sat_ema: float = Field(0.5, gt=0, le=1, description="Weight of the latest session in the "
                                                       "satisfaction average.")
    sat_reference: float = Field(6.5, description="Satisfaction at which P(return) is the "
                                                  "base rate.")
    return_base: float = Field(0.7, gt=0, lt=1, description="P(return next day) at the "
                                                            "reference satisfaction.")
    return_slope: float = Field(0.3, ge=0, description="Logit slope of P(return) on "
                                                       "satisfaction - reference.")
    start: datetime = Field(datetime(2026, 1, 5, 8, tzinfo=UTC),
                            description="Time of day 0's first session (UTC).")

    @model_validator(mode="after")
    def _check(self) -> SimulatorConfig:
        if self.n_candidates < self.n_slots:
            raise ConfigError(f"n_candidates ({self.n_candidates}) must be at least n_slots "
                              f"({self.n_slots}): the recommender fills every slot from them")
        if (self.max_sessions_per_day - 1) * self.session_gap_hours >= 24:
            raise ConfigError(
                f"session_gap_hours ({self.session_gap_hours:g}) x (max_sessions_per_day - 1) "
                f"({self.max_sessions_per_day - 1}) must be under 24 h, so that a day's sessions "
                "end before the next day's first one; lower one of them")
        return self

    @classmethod
    def from_file(cls, path: str | Path) -> SimulatorConfig:
        """Read a YAML or JSON file of overrides (missing keys keep their defaults)."""
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: simulator config file not found")
        text = p.read_text()
        try:
            if p.suffix.lower() in (".yaml", ".yml"):
                import yaml

                raw = yaml.safe_load(text) or {}
            else:
                raw = json.loads(text)
        except Exception as e:  # noqa: BLE001 - parser errors differ by format
            raise ConfigError(f"{p}: cannot parse: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: expected a mapping of parameter: value")
        try:
            return cls.model_validate(raw)
        except ValidationError as e:
            err = e.errors()[0]
            where = "".join(f"{x}." for x in err["loc"])[:-1]
            msg = str(err["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"{p}: {where + ': ' if where else ''}{msg}") from None


# ----------------------------------------------------------------------------- world


@dataclass
class World:
    """The simulated population and inventory (drawn from ``world_seed``)."""

    interests: np.ndarray        # (U, T) topic mixture per user
    ad_sensitivity: np.ndarray   # (U,)
    item_topics: np.ndarray      # (M, T)
    item_quality: np.ndarray     # (M,)
    ad_topics: np.ndarray        # (A, T)
    ad_quality: np.ndarray       # (A,)
    ad_is_cpm: np.ndarray        # (A,) bool
    ad_bid: np.ndarray           # (A,)

    @classmethod
    def draw(cls, cfg: SimulatorConfig) -> World:
        # separate streams, so the inventory does not change with the number of users
        users_rng, rng = (np.random.default_rng(s)
                          for s in np.random.SeedSequence(cfg.world_seed).spawn(2))
        t = cfg.n_topics
        interests = users_rng.dirichlet(np.full(t, 0.5), size=cfg.n_users)
        sens = np.exp(users_rng.normal(0, cfg.ad_sensitivity_sd, size=cfg.n_users))
        item_topics = rng.dirichlet(np.full(t, 0.3), size=cfg.n_items)
        item_quality = rng.beta(2, 2, size=cfg.n_items)
        ad_topics = rng.dirichlet(np.full(t, 0.5), size=cfg.n_ads)
        ad_quality = rng.beta(2, 2, size=cfg.n_ads)
        is_cpm = rng.random(cfg.n_ads) < cfg.cpm_share
        mean = np.where(is_cpm, cfg.cpm_bid_mean, cfg.cpc_bid_mean)
        bid = mean * np.exp(rng.normal(-cfg.bid_sd ** 2 / 2, cfg.bid_sd, size=cfg.n_ads))
        return cls(interests, sens, item_topics, item_quality, ad_topics, ad_quality, is_cpm,
                   bid)


def _affinity(interests: np.ndarray, topics: np.ndarray) -> np.ndarray:
    """Cosine similarity of topic mixtures, in [0, 1]."""
    a = interests / np.linalg.norm(interests, axis=-1, keepdims=True)
    b = topics / np.linalg.norm(topics, axis=-1, keepdims=True)
    return a @ b.T


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


# ----------------------------------------------------------------------------- policy I/O


@dataclass
class CandidateBatch:
    """What a policy sees for ``B`` simultaneous requests (all arrays lead with ``B``).

    Attributes:
        user_index: Simulated user row per request.
        n_slots: Slots to fill.
        organic_ids: Ranked organic candidates (item rows), ``(B, n_slots)``.
        organic_score: Predicted engagement of those posts, ``(B, n_slots)``.
        ad_value: Expected revenue of each ad per impression (``bid / 1000`` for CPM,
            ``pCTR * bid`` for CPC), ``(B, A)``.
        ad_pctr: Predicted click-through rate of each ad, ``(B, A)``.
        ad_quality: Predicted quality of each ad in [0, 1], ``(B, A)``.
        ad_eligible: Whether each ad may be shown in this request, ``(B, A)``.
        ad_exposure: The user's recent ad exposure (ads seen, decayed with the annoyance
            half-life); what a real system knows from its own logs, ``(B,)``.
        now: The request time.
        history: The user's own logged history before this request, observed-only (what a
            platform's logs hold; never the simulator's hidden state): a dict of ``(B,)``
            arrays, see :data:`HISTORY_FIELDS`. Empty when the caller has none.
    """

    user_index: np.ndarray
    n_slots: int
    organic_ids: np.ndarray
    organic_score: np.ndarray
    ad_value: np.ndarray
    ad_pctr: np.ndarray
    ad_quality: np.ndarray
    ad_eligible: np.ndarray
    ad_exposure: np.ndarray
    now: datetime
    history: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.user_index)

    def request(self, b: int) -> FeedRequest:
        """The per-request view of row ``b``: candidates travel in ``context``."""
        ctx = {"candidates": {
            "organic_ids": [f"post{i}" for i in self.organic_ids[b]],
            "organic_score": self.organic_score[b].tolist(),
            "ad_ids": [f"ad{j}" for j in range(self.ad_value.shape[1])],
            "ad_value": self.ad_value[b].tolist(), "ad_pctr": self.ad_pctr[b].tolist(),
            "ad_quality": self.ad_quality[b].tolist(),
            "ad_eligible": self.ad_eligible[b].tolist(),
            "ad_exposure": float(self.ad_exposure[b]),
            "history": {k: float(v[b]) for k, v in self.history.items()}}}
        return FeedRequest(user_id=f"user{self.user_index[b]}", n=self.n_slots, now=self.now,
                           context=ctx)

    @classmethod
    def from_request(cls, request: FeedRequest) -> CandidateBatch:
        """Rebuild a one-row batch from :meth:`request` (used by per-request ``compose``)."""
        c = request.context.get("candidates")
        if not c:
            raise ConfigError("this policy needs request.context['candidates'] (as the "
                              "simulator provides); it has no candidate source of its own")
        ids = np.array([[int(str(i).removeprefix("post")) for i in c["organic_ids"]]])
        return cls(np.array([0]), request.n, ids, np.array([c["organic_score"]]),
                   np.array([c["ad_value"]]), np.array([c["ad_pctr"]]),
                   np.array([c["ad_quality"]]), np.array([c["ad_eligible"]], dtype=bool),
                   np.array([c["ad_exposure"]]), request.now,
                   {k: np.array([float(v)]) for k, v in (c.get("history") or {}).items()})


def plan_from_feed(feed: Feed, n_slots: int) -> np.ndarray:
    """Turn a composed feed back into a slot plan (``ORGANIC`` or ad column per slot)."""
    plan = np.full(n_slots, ORGANIC, dtype=np.int64)
    for k, s in enumerate(feed.slots[:n_slots]):
        if s.kind == "ad":
            j = str(s.item_id).removeprefix("ad")
            if not j.isdigit():
                raise ConfigError(f"slot {k} of the feed is an ad {s.item_id!r}; the simulator "
                                  "knows only its own ads 'ad<column>' (request.context"
                                  "['candidates']['ad_ids'])")
            plan[k] = int(j)
    return plan


def plan_batch(policy: Any, batch: CandidateBatch) -> np.ndarray:
    """Slot plans ``(B, n_slots)`` from ``policy.compose_batch`` or, failing that, ``compose``."""
    if hasattr(policy, "compose_batch"):
        raw = np.asarray(policy.compose_batch(batch))
        if raw.dtype.kind not in "iu" and not (
                raw.dtype.kind == "f" and np.all(raw == np.round(raw))):
            raise ConfigError(f"policy returned a plan of {raw.dtype} values; it must hold "
                              f"integer slot codes ({ORGANIC} = organic post, j = ad column j)")
        plan = raw.astype(np.int64)
    else:
        plan = np.stack([plan_from_feed(policy.compose(batch.request(b)), batch.n_slots)
                         for b in range(len(batch))])
    if plan.shape != (len(batch), batch.n_slots):
        raise ConfigError(f"policy returned a plan of shape {plan.shape}, expected "
                          f"{(len(batch), batch.n_slots)}")
    n_ads = batch.ad_value.shape[1]
    bad = (plan < ORGANIC) | (plan >= n_ads)
    if bad.any():
        b, k = np.argwhere(bad)[0]
        raise ConfigError(f"policy put {plan[b, k]} in slot {k} of request {b}: a slot is "
                          f"{ORGANIC} (organic post) or an ad column 0..{n_ads - 1}; there is no "
                          f"ad column {plan[b, k]}")
    rows, slots = np.nonzero(plan != ORGANIC)
    inel = ~np.asarray(batch.ad_eligible, dtype=bool)[rows, plan[rows, slots]]
    if inel.any():
        b, k = rows[inel][0], slots[inel][0]
        raise ConfigError(f"policy put ad {plan[b, k]} in slot {k} of request {b}, but it is not "
                          "eligible for that request (batch.ad_eligible); place only eligible "
                          "ads")
    return plan


# ----------------------------------------------------------------------------- results


METRICS: tuple[str, ...] = ("sessions", "session_depth", "dwell_s", "engagements",
                            "hide_rate", "report_rate", "ad_load", "ad_ctr", "revenue",
                            "revenue_per_user", "revenue_per_session", "d1_return",
                            "d7_return")


@dataclass
class SimulationResult:
    """Metrics of one policy over the simulated horizon.

    Attributes:
        policy: Policy name.
        metrics: ``sessions``; ``session_depth`` (slots seen per session); ``dwell_s``
            (seconds per session); ``engagements`` (per session); ``hide_rate`` and
            ``report_rate`` (per slot seen); ``ad_load`` (share of seen slots that were ads);
            ``ad_ctr``; ``revenue`` (total), ``revenue_per_user``, ``revenue_per_session``;
            ``d1_return`` and ``d7_return`` (share of day-0 users active on day 1 / day 7).
        daily: Per-day active users, sessions and revenue.
        seconds: Wall time of the run.
    """

    policy: str
    metrics: dict[str, float]
    daily: list[dict[str, float]]
    seconds: float

    @property
    def sessions_per_minute(self) -> float:
        return self.metrics["sessions"] / self.seconds * 60.0 if self.seconds > 0 else 0.0

    def row(self) -> dict[str, Any]:
        return {"policy": self.policy, **self.metrics}


# ----------------------------------------------------------------------------- simulator


class Simulator:
    """Plays policies against simulated users.

    Args:
        config: Simulator parameters (defaults documented in :class:`SimulatorConfig`).
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        if config is not None and not isinstance(config, SimulatorConfig):
            raise ConfigError(f"Simulator takes a SimulatorConfig, not {type(config).__name__}; "
                              "build one with SimulatorConfig(**settings) or "
                              "SimulatorConfig.from_file(path)")
        self.config = config or SimulatorConfig()
        self.world = World.draw(self.config)

    def run(self, policy: Any, seed: int = 0, name: str | None = None,
            progress: Callable[[int, int], None] | None = None) -> SimulationResult:
        """Simulate ``policy`` for ``n_days`` and return its metrics.

        Args:
            policy: Anything with ``compose_batch(CandidateBatch)`` or ``compose(FeedRequest)``.
            seed: Seed of user behaviour (use the same seed to compare policies).
            name: Name in the result (default: the policy's ``name`` or class name).
            progress: Called as ``progress(done, total)`` after every session round.
        """
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer (the same seed replays the "
                              f"same user behaviour), got {seed!r}")
        cfg, w = self.config, self.world
        rng = np.random.default_rng(seed)
        name = name or getattr(policy, "name", None) or type(policy).__name__
        U, n, A = cfg.n_users, cfg.n_slots, cfg.n_ads
        t0 = time.perf_counter()
        interests = w.interests.copy()
        annoy = np.zeros(U)
        exposure = np.zeros(U)
        blind = np.zeros(U)
        sat = np.full(U, cfg.sat_reference)
        last_t = np.zeros(U)       # hours since start of the last session
        hist = {k: np.zeros(U) for k in HISTORY_FIELDS}   # observed logs, per user
        active_days = np.zeros((cfg.n_days, U), dtype=bool)
        ret_logit0 = np.log(cfg.return_base / (1 - cfg.return_base))
        ann_decay_per_h = np.log(2) / cfg.annoyance_half_life_hours
        blind_decay_day = 0.5 ** (1.0 / cfg.blindness_half_life_days)
        exam = cfg.examine_top * cfg.examine_decay ** np.arange(n)
        tot = dict.fromkeys(("sessions", "depth", "dwell", "eng", "hide", "report", "ads",
                             "clicks", "revenue"), 0.0)
        daily = []
        rounds_total = cfg.n_days * cfg.max_sessions_per_day
        done = 0
        for day in range(cfg.n_days):
            # who comes today: everyone on day 0, then by P(return | satisfaction)
            u_ret = rng.random(U)
            if day == 0:
                today = np.ones(U, dtype=bool)
            else:
                p = _sigmoid(ret_logit0 + cfg.return_slope * (sat - cfg.sat_reference))
                today = u_ret < p
                blind *= blind_decay_day
            active_days[day] = today
            hist["active_days"] += today
            hist["days_observed"] += (hist["days_observed"] > 0) | today
            extra = rng.random((cfg.max_sessions_per_day, U)) < cfg.extra_session_prob
            day_rev = day_sess = 0.0
            for r in range(cfg.max_sessions_per_day):
                has = today if r == 0 else today & np.all(extra[1:r + 1], axis=0)
                # policy-independent draws for all users (common random numbers)
                u_pat = rng.normal(size=U)
                u_rec = rng.random((U, cfg.n_candidates))
                rec_noise = rng.normal(size=(U, cfg.n_candidates))
                u_pred = rng.normal(size=(2, A))
                u_elig = rng.random((U, A)) < cfg.ad_eligible_prob
                draws = rng.random((5, n, U))  # examine, engage/click, hide, leave, report
                idx = np.flatnonzero(has)
                done += 1
                if len(idx) == 0:
                    if progress:
                        progress(done, rounds_total)
                    continue
                hours = day * 24.0 + r * cfg.session_gap_hours
                gap = hours - last_t[idx]
                annoy[idx] *= np.exp(-ann_decay_per_h * gap)
                exposure[idx] *= np.exp(-ann_decay_per_h * gap)
                last_t[idx] = hours
                B = len(idx)
                # the recommender: top-n of n_candidates random posts by noisy affinity*quality
                cand = (u_rec[idx] * cfg.n_items).astype(np.int64)
                aff_c = np.einsum("bt,bct->bc", interests[idx] / np.linalg.norm(
                    interests[idx], axis=1, keepdims=True), _unit(w.item_topics)[cand])
                est = aff_c * (0.5 + w.item_quality[cand]) + cfg.recommender_noise * \
                    rec_noise[idx]
                top = np.argsort(-est, axis=1)[:, :n]
                org = np.take_along_axis(cand, top, axis=1)
                org_aff = np.take_along_axis(aff_c, top, axis=1)
                org_q = w.item_quality[org]
                p_eng = _sigmoid(cfg.engage_intercept + cfg.engage_affinity * org_aff
                                 + cfg.engage_quality * (org_q - 0.5))
                # ads: true CTR and the policy's noisy predictions
                ad_aff_all = _affinity(interests[idx], w.ad_topics)            # (B, A)
                ctr = _sigmoid(cfg.ad_ctr_intercept + cfg.ad_ctr_affinity * ad_aff_all
                               + cfg.ad_ctr_quality * (w.ad_quality - 0.5))
                pctr = ctr * np.exp(cfg.predictor_noise * u_pred[0])
                qhat = np.clip(w.ad_quality + cfg.predictor_noise * 0.5 * u_pred[1], 0, 1)
                value = np.where(w.ad_is_cpm, w.ad_bid / 1000.0, pctr * w.ad_bid)
                now = cfg.start + timedelta(hours=hours)
                batch = CandidateBatch(idx, n, org, p_eng, value, pctr,
                                       np.broadcast_to(qhat, (B, A)).copy(), u_elig[idx],
                                       exposure[idx].copy(), now,
                                       {k: v[idx] for k, v in hist.items()})
                plan = plan_batch(policy, batch)
                # play the session slot by slot, vectorised over users
                patience = cfg.patience_mean + cfg.patience_sd * u_pat[idx]
                alive = np.ones(B, dtype=bool)
                org_ptr = np.zeros(B, dtype=np.int64)
                sens = w.ad_sensitivity[idx]
                depth = np.zeros(B)
                dwell = np.zeros(B)
                eng = np.zeros(B)
                hides = np.zeros(B)
                reports = np.zeros(B)
                rows = np.arange(B)
                u_idx = idx
                prev_ad = np.zeros(B, dtype=bool)
                h_ads = np.zeros(B)
                h_clicks = np.zeros(B)
                h_ad_hides = np.zeros(B)
                h_ad_exit = np.zeros(B, dtype=bool)
                h_org_exit = np.zeros(B, dtype=bool)
                for k in range(n):
                    if not alive.any():
                        break
                    a = plan[:, k]
                    is_ad = (a >= 0) & alive
                    is_org = (a < 0) & alive
                    depth += alive
                    ex = (draws[0, k, u_idx] < exam[k]) & alive
                    dwell += ex * cfg.dwell_seen_s
                    # organic
                    j = np.minimum(org_ptr, n - 1)
                    pe = p_eng[rows, j]
                    engaged = is_org & ex & (draws[1, k, u_idx] < pe)
                    oa = org_aff[rows, j]
                    hid_o = is_org & ex & ~engaged & (draws[2, k, u_idx] < cfg.hide_post *
                                                     (1 - oa))
                    org_ptr += is_org
                    eng += engaged
                    dwell += engaged * cfg.dwell_engaged_s
                    if engaged.any():
                        e = np.flatnonzero(engaged)
                        topics = w.item_topics[org[e, j[e]]]
                        ui = u_idx[e]
                        interests[ui] += cfg.interest_drift * (topics - interests[ui])
                    # ads
                    ac = np.where(is_ad, a, 0)
                    q = w.ad_quality[ac]
                    clicked = is_ad & ex & (draws[1, k, u_idx] < ctr[rows, ac] *
                                           (1 - blind[u_idx]))
                    p_hide = cfg.hide_ad * (1 - q) * (1 + annoy[u_idx]) * sens
                    hid_a = is_ad & ex & ~clicked & (draws[2, k, u_idx] < p_hide)
                    rep = hid_a & (q < 0.3) & (draws[4, k, u_idx] < cfg.report_share)
                    cpm = w.ad_is_cpm[ac]
                    rev = is_ad * np.where(cpm, w.ad_bid[ac] / 1000.0, 0.0) + \
                        clicked * np.where(cpm, 0.0, w.ad_bid[ac])
                    tot["revenue"] += float(rev.sum())
                    day_rev += float(rev.sum())
                    tot["ads"] += float(is_ad.sum())
                    tot["clicks"] += float(clicked.sum())
                    ad_cost = sens * (cfg.ad_base_cost * (1.2 - q)
                                      + cfg.annoyance_cost * annoy[u_idx])
                    annoy[u_idx] += is_ad * cfg.annoyance_per_ad * (1.5 - q)
                    exposure[u_idx] += is_ad
                    blind[u_idx] = np.minimum(0.9, blind[u_idx] + (is_ad & ex) *
                                              cfg.blindness_rate * np.maximum(0, 0.5 - q) * 2)
                    hid = hid_o | hid_a
                    hides += hid
                    reports += rep
                    patience -= alive * cfg.slot_cost + is_ad * ad_cost + hid * cfg.hide_cost
                    patience += engaged * cfg.refund
                    leave = (patience <= 0) | (draws[3, k, u_idx] < cfg.leave_prob)
                    # observed logs: what the platform sees of this slot
                    h_ads += is_ad
                    h_clicks += clicked
                    h_ad_hides += hid_a
                    left = alive & leave & (k < n - 1)
                    h_ad_exit |= left & (is_ad | prev_ad)
                    h_org_exit |= left & ~(is_ad | prev_ad)
                    prev_ad = is_ad
                    alive &= ~leave
                s = (cfg.sat_engage * eng + cfg.sat_depth * depth + cfg.sat_hide * hides
                     + cfg.sat_annoyance * annoy[idx])
                sat[idx] = (1 - cfg.sat_ema) * sat[idx] + cfg.sat_ema * s
                for key, v in (("sessions", 1.0), ("depth", depth),
                               ("full_sessions", depth >= n), ("engagements", eng),
                               ("ads_seen", h_ads), ("ad_clicks", h_clicks),
                               ("ad_hides", h_ad_hides), ("ad_exits", h_ad_exit),
                               ("org_exits", h_org_exit)):
                    hist[key][idx] += v
                interests[idx] /= interests[idx].sum(axis=1, keepdims=True)
                tot["sessions"] += B
                tot["depth"] += float(depth.sum())
                tot["dwell"] += float(dwell.sum())
                tot["eng"] += float(eng.sum())
                tot["hide"] += float(hides.sum())
                tot["report"] += float(reports.sum())
                day_sess += B
                if progress:
                    progress(done, rounds_total)
            daily.append({"day": day, "active_users": int(today.sum()), "sessions": day_sess,
                          "revenue": day_rev})
        seconds = time.perf_counter() - t0
        S = max(tot["sessions"], 1.0)
        seen = max(tot["depth"], 1.0)
        d0 = active_days[0]
        metrics = {
            "sessions": tot["sessions"], "session_depth": tot["depth"] / S,
            "dwell_s": tot["dwell"] / S, "engagements": tot["eng"] / S,
            "hide_rate": tot["hide"] / seen, "report_rate": tot["report"] / seen,
            "ad_load": tot["ads"] / seen,
            "ad_ctr": tot["clicks"] / tot["ads"] if tot["ads"] else 0.0,
            "revenue": tot["revenue"], "revenue_per_user": tot["revenue"] / U,
            "revenue_per_session": tot["revenue"] / S,
            "d1_return": float(active_days[1][d0].mean()),
            "d7_return": float(active_days[7][d0].mean()) if cfg.n_days > 7 else float("nan"),
        }
        return SimulationResult(name, metrics, daily, seconds)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)
