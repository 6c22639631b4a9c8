"""The revenue ↔ user-experience frontier estimated off-policy, from logged feeds.

The simulator frontier (:mod:`feedwise.evidence.frontier`) plays every policy against
simulated users. When real logs are at hand, this module estimates the same trade-off from
them with the estimators of :mod:`feedwise.evidence.estimators` (nothing is re-implemented
here):

* **Logs.** The generic logged-bandit table (:func:`~feedwise.evidence.logs.
  load_bandit_log`): ``timestamp, item_id, position, reward, propensity`` plus

  - two reward columns, ``revenue`` (ad revenue of the impression) and ``engagement`` (its
    experience value: a click, dwell, a like); a missing one falls back on ``reward``;
  - for every candidate policy ``NAME`` a column ``target_propensity_NAME``: the probability
    with which that policy would have shown the logged item at the logged position, in the
    logged context (a plain ``target_propensity`` column is the policy ``target``);
  - optionally ``target_item_id_NAME`` (the item a deterministic policy would show there):
    with it a reward model is fitted per reward column and DR becomes available;
  - optionally ``session_id`` (bootstrap by whole sessions) and numeric context columns
    (``--features``) for the reward model.

* **Estimates.** For each policy and each of the two rewards: SNIPS and DR point estimates
  (per logged impression) with bootstrap intervals, and the effective sample size of the
  policy's importance weights. Rows are Pareto-marked on (revenue, experience) of the
  primary estimator (DR when available, else SNIPS, else the first estimator run) with the
  simulator frontier's
  :func:`~feedwise.evidence.frontier.pareto_mask`.

* **Assumption.** Per-slot importance weights ``pi_e(item at k | x) / pi_0(item at k | x)``
  (independence assumption, see :mod:`~feedwise.evidence.estimators`): the reward at a slot
  depends only on the item at that slot. Effects that cross slots (an annoying ad lowering
  engagement below it, shorter sessions, fewer return visits) are invisible here; the
  simulator is the evidence for those.

:func:`synthetic_frontier_log` builds logs with ads and organic items whose true frontier is
known exactly; it validates the estimates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from feedwise.errors import ConfigError, DataError
from feedwise.evidence.estimators import ESTIMATORS, effective_sample_size
from feedwise.evidence.frontier import pareto_mask
from feedwise.evidence.logs import OffPolicyData, RewardModel, _softmax, draw_slots

TARGET_PREFIX = "target_propensity_"
TARGET_ITEM_PREFIX = "target_item_id_"
REWARDS: tuple[str, str] = ("revenue", "engagement")


@dataclass
class LoggedFeeds:
    """Estimator inputs shared by every candidate policy (all arrays of length ``n``).

    Attributes:
        propensity: Logging policy's probability of the logged item at its position.
        position: Slot of each row.
        rewards: Observed reward per row, per reward name (e.g. ``revenue``, ``engagement``).
        targets: Target propensity of the logged item per row, per policy name.
        q_logged: Reward-model prediction for the logged item, per reward name (for DR).
        q_target: Reward-model value of the target policy per row, per policy then per
            reward name (for DR).
        groups: Bootstrap clusters (sessions), or ``None`` for row resampling.
    """

    propensity: np.ndarray
    position: np.ndarray
    rewards: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    q_logged: dict[str, np.ndarray] = field(default_factory=dict)
    q_target: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    groups: np.ndarray | None = None

    def data(self, policy: str, reward: str) -> OffPolicyData:
        """:class:`OffPolicyData` of one policy on one reward (with DR inputs when known)."""
        ql = self.q_logged.get(reward)
        qt = self.q_target.get(policy, {}).get(reward)
        if ql is None or qt is None:
            ql = qt = None
        return OffPolicyData(self.rewards[reward], self.propensity, self.targets[policy],
                             self.position, ql, qt, self.groups)


def feeds_from_log(log: pd.DataFrame, *, revenue: str = "revenue",
                   experience: str = "engagement", features: Sequence[str] = (),
                   policies: Sequence[str] | None = None, reward_model: bool = True,
                   group: str | None = "session_id") -> LoggedFeeds:
    """Collect the policies and rewards of a loaded log (see the module docstring).

    Args:
        log: Output of :func:`~feedwise.evidence.logs.load_bandit_log`.
        revenue: Revenue column (falls back on ``reward``).
        experience: Experience column (falls back on ``reward``).
        features: Numeric context columns for the reward models.
        policies: Policy names to keep (default: every ``target_propensity_*`` column).
        reward_model: Fit a :class:`RewardModel` per reward for policies with a
            ``target_item_id_NAME`` column (enables DR).
        group: Session column for the bootstrap.
    """
    found = {c[len(TARGET_PREFIX):]: c for c in log.columns if c.startswith(TARGET_PREFIX)}
    if "target_propensity" in log.columns:
        found.setdefault("target", "target_propensity")
    if policies is not None:
        missing = [p for p in policies if p not in found]
        if missing:
            raise DataError(f"the log has no {TARGET_PREFIX}<name> column for {missing}")
        found = {p: found[p] for p in policies}
    if not found:
        raise DataError(f"the log has no target policy: add one {TARGET_PREFIX}<name> column "
                        "per candidate policy (its probability of the logged item at the "
                        "logged position)")
    if len(log) == 0:
        raise DataError("the log is empty: no logged rows to estimate the frontier from")
    rewards = {}
    for name in (revenue, experience):
        col = name if name in log.columns else "reward"
        rewards[name] = _numeric(log, col, "a reward per logged row", finite=True)
    targets = {p: _numeric(log, c, "the policy's probability of the logged item, in [0, 1]",
                           finite=True, unit=True) for p, c in found.items()}
    q_logged: dict[str, np.ndarray] = {}
    q_target: dict[str, dict[str, np.ndarray]] = {}
    det = {p: TARGET_ITEM_PREFIX + p for p in found if TARGET_ITEM_PREFIX + p in log.columns}
    if reward_model and det:
        for name in rewards:
            sub = log.assign(reward=rewards[name])
            model = RewardModel(list(features)).fit(sub)
            q_logged[name] = model.predict(sub)
            for p, col in det.items():
                q_target.setdefault(p, {})[name] = model.predict(
                    sub.assign(**{col: sub[col].astype(str)}), item_col=col)
    groups = log[group].to_numpy() if group and group in log.columns else None
    return LoggedFeeds(log["propensity"].to_numpy(np.float64),
                       log["position"].to_numpy(np.int64), rewards, targets, q_logged,
                       q_target, groups)


def _numeric(log: pd.DataFrame, col: str, what: str, *, finite: bool = False,
             unit: bool = False) -> np.ndarray:
    """Column ``col`` as float64, or a :class:`DataError` naming the column and row."""
    v = pd.to_numeric(log[col], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(v) if finite else np.zeros(len(v), dtype=bool)
    if unit:
        bad |= (v < 0) | (v > 1)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise DataError(f"column {col!r}, row {r + 1}: {log[col].iloc[r]!r} is not valid "
                        f"(expected {what})")
    return v


def offpolicy_frontier(feeds: LoggedFeeds | pd.DataFrame, *, revenue: str = "revenue",
                       experience: str = "engagement",
                       estimators: Sequence[str] = ("snips", "dr"), n_bootstrap: int = 200,
                       alpha: float = 0.05, seed: int = 0, **log_kwargs) -> pd.DataFrame:
    """Estimated revenue and experience of every candidate policy, Pareto rows marked.

    Args:
        feeds: A :class:`LoggedFeeds`, or a loaded log (passed to :func:`feeds_from_log`
            with ``log_kwargs``).
        revenue: Name of the revenue reward.
        experience: Name of the experience reward.
        estimators: Estimators to run (names of
            :data:`~feedwise.evidence.estimators.ESTIMATORS`); model-based ones are
            skipped (NaN) for policies without reward-model predictions.
        n_bootstrap: Bootstrap resamples per estimate (0: no interval).
        alpha: One minus the interval's coverage.
        seed: Bootstrap seed (the same for every policy: common resamples).

    Returns:
        One row per policy: ``policy``; for each reward ``R`` and estimator ``E`` the columns
        ``R_E, R_E_low, R_E_high`` (per logged impression); ``ess`` (effective sample size
        of the policy's weights), ``n``, ``estimator`` (the one Pareto marking used) and
        ``pareto``.
    """
    if isinstance(feeds, pd.DataFrame):
        feeds = feeds_from_log(feeds, revenue=revenue, experience=experience, **log_kwargs)
    if not estimators:
        raise ConfigError("estimators is empty: name at least one of "
                          f"{list(ESTIMATORS)} (e.g. 'snips', 'dr')")
    for e in estimators:
        if e not in ESTIMATORS:
            raise ConfigError(f"unknown estimator {e!r}; choose from {list(ESTIMATORS)}")
    for r in (revenue, experience):
        if r not in feeds.rewards:
            raise DataError(f"no reward {r!r}; the feeds have {list(feeds.rewards)}")
    rows = []
    for policy in feeds.targets:
        row: dict = {"policy": policy}
        for r in (revenue, experience):
            data = feeds.data(policy, r)
            for e in estimators:
                est = ESTIMATORS[e](n_bootstrap=n_bootstrap, alpha=alpha)
                if est.needs_model and data.q_target is None:
                    row[f"{r}_{e}"] = row[f"{r}_{e}_low"] = row[f"{r}_{e}_high"] = np.nan
                    continue
                res = est.estimate(data, seed=seed)
                row[f"{r}_{e}"] = res.value
                row[f"{r}_{e}_low"], row[f"{r}_{e}_high"] = res.ci_low, res.ci_high
        w = feeds.targets[policy] / feeds.propensity
        row["ess"] = effective_sample_size(w)
        row["n"] = len(w)
        rows.append(row)
    df = pd.DataFrame(rows)
    # Pareto on the primary estimator of each row: DR when present, else SNIPS, else the
    # first other estimator given.
    order = sorted(estimators, key=lambda e: {"dr": 0, "snips": 1}.get(e, 2))
    prim = [next((e for e in order if not np.isnan(r[f"{revenue}_{e}"])
                  and not np.isnan(r[f"{experience}_{e}"])), None) for _, r in df.iterrows()]
    df["estimator"] = [p or "" for p in prim]
    pts = pd.DataFrame({revenue: [r[f"{revenue}_{p}"] if p else np.nan
                                  for (_, r), p in zip(df.iterrows(), prim, strict=True)],
                        experience: [r[f"{experience}_{p}"] if p else np.nan
                                     for (_, r), p in zip(df.iterrows(), prim, strict=True)]})
    ok = pts.notna().all(axis=1).to_numpy()
    mask = np.zeros(len(df), dtype=bool)
    if ok.any():
        mask[ok] = pareto_mask(pts[ok], maximize=(revenue, experience))
    df["pareto"] = mask
    return df


# ----------------------------------------------------------------------------- synthetic

#: A synthetic target policy: ``(p_click (S, K), slot) -> probabilities (S, K)``.
SlotPolicy = Callable[[np.ndarray, int], np.ndarray]


@dataclass
class SyntheticFrontierLog:
    """Synthetic logged feeds with the exact frontier of several target policies.

    Attributes:
        log: Logged rows (``timestamp, item_id, position, reward, propensity, revenue,
            engagement, session_id, x0..``, one ``target_propensity_NAME`` per policy).
        feeds: Estimator inputs with a coarse per-(item, slot) reward model for DR.
        truth: One row per policy: ``policy, revenue, engagement`` (exact, per impression).
    """

    log: pd.DataFrame = field(repr=False)
    feeds: LoggedFeeds = field(repr=False)
    truth: pd.DataFrame


def synthetic_frontier_log(n_impressions: int = 50_000, *, n_items: int = 20,
                           n_ads: int = 6, n_slots: int = 5, dim: int = 5,
                           lambdas: Sequence[float] = (0.0, 1.0, 3.0),
                           fixed_every: Sequence[int] = (2, 3), temperature: float = 0.3,
                           explore: float = 0.3, seed: int = 0) -> SyntheticFrontierLog:
    """Logged feeds of ads and organic items, and the true frontier of candidate policies.

    The world is that of :func:`~feedwise.evidence.logs.synthetic_bandit_log`
    (context ``x ~ N(0, I)`` per session, click probability ``examine_k * sigmoid(x . theta_a
    + b_a)``, a noisy softmax logging policy drawn independently per slot). The first
    ``n_ads`` items are ads paying ``bid_a`` per click with a small engagement value; the
    others are organic, paying nothing with engagement value ``e_a`` per click.

    Candidate policies (softmax at ``temperature`` of expected value per slot):
    ``lambda=L`` scores every item by ``p (bid + L * e)``; ``no-ads`` scores organic items
    by ``p e``; ``fixed-every-k`` shows an ad (best ``p bid``) at every k-th slot and organic
    elsewhere; ``uniform`` picks uniformly (dominated by construction).
    """
    rng = np.random.default_rng(seed)
    world = np.random.default_rng(2024)
    theta = world.normal(0, 0.7, size=(dim, n_items))
    bias = world.normal(-1.5, 0.5, size=n_items)
    log_noise = world.normal(0, 1.0, size=(dim, n_items))
    is_ad = np.arange(n_items) < n_ads
    bid = np.where(is_ad, world.uniform(0.5, 2.0, n_items), 0.0)
    eng = np.where(is_ad, 0.1, world.uniform(0.5, 1.5, n_items))
    examine = 1.0 / (1.0 + 0.3 * np.arange(n_slots))

    def masked_softmax(score: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        # scale-free: scores relative to each context's best allowed item
        top = np.where(allowed, score, -np.inf).max(axis=1, keepdims=True)
        return _softmax(np.where(allowed, score / (temperature * top), -np.inf))

    pols: dict[str, SlotPolicy] = {}
    for lam in lambdas:
        pols[f"lambda={lam:g}"] = (lambda p, k, lam=lam:
                                   masked_softmax(p * (bid + lam * eng), np.ones(n_items, bool)))
    pols["no-ads"] = lambda p, k: masked_softmax(p * eng, ~is_ad)
    for every in fixed_every:
        pols[f"fixed-every-{every}"] = (
            lambda p, k, every=every: masked_softmax(p * bid, is_ad) if (k + 1) % every == 0
            else masked_softmax(p * eng, ~is_ad))
    pols["uniform"] = lambda p, k: np.full_like(p, 1.0 / n_items)

    # Exact values on a large independent sample of contexts.
    xt = world.normal(size=(100_000, dim))
    pt = 1.0 / (1.0 + np.exp(-(xt @ theta + bias)))
    truth = []
    for name, pol in pols.items():
        rev = engv = 0.0
        for k in range(n_slots):
            pk = pol(pt, k) * pt * examine[k]
            rev += float((pk @ bid).mean()) / n_slots
            engv += float((pk @ eng).mean()) / n_slots
        truth.append({"policy": name, "revenue": rev, "engagement": engv})

    n_sessions = max(1, n_impressions // n_slots)
    x = rng.normal(size=(n_sessions, dim))
    p_true = 1.0 / (1.0 + np.exp(-(x @ theta + bias)))
    pi0 = ((1 - explore) * _softmax(x @ (theta + log_noise) + bias)
           + explore / n_items)
    sess, pos, a = draw_slots(rng, pi0, n_slots)
    click = (rng.random(len(a)) < p_true[sess, a] * examine[pos]).astype(np.float64)
    rewards = {"revenue": click * bid[a], "engagement": click * eng[a]}
    prop = pi0[sess, a]
    # Coarse reward model per (item, slot), ignoring the context (DR must correct it).
    cell = a * n_slots + pos
    cnts = np.bincount(cell, minlength=n_items * n_slots)
    qcells = {}
    for r, v in rewards.items():
        sums = np.bincount(cell, weights=v, minlength=n_items * n_slots)
        qcells[r] = ((sums + v.mean()) / (cnts + 1.0)).reshape(n_items, n_slots)
    targets: dict[str, np.ndarray] = {}
    q_target: dict[str, dict[str, np.ndarray]] = {}
    for name, pol in pols.items():
        tp = np.empty(len(a))
        qt = {r: np.empty(len(a)) for r in rewards}
        for k in range(n_slots):
            rows = np.flatnonzero(pos == k)
            probs = pol(p_true[sess[rows]], k)
            tp[rows] = probs[np.arange(len(rows)), a[rows]]
            for r in rewards:
                qt[r][rows] = probs @ qcells[r][:, k]
        targets[name] = tp
        q_target[name] = qt
    q_logged = {r: qcells[r][a, pos] for r in rewards}
    feeds = LoggedFeeds(prop, pos, rewards, targets, q_logged, q_target, sess)
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    log = pd.DataFrame({"timestamp": t0 + pd.to_timedelta(sess, unit="s"),
                        "item_id": [f"i{k}" for k in a], "position": pos,
                        "reward": rewards["engagement"], "propensity": prop,
                        "revenue": rewards["revenue"], "engagement": rewards["engagement"],
                        "session_id": sess})
    for d in range(dim):
        log[f"x{d}"] = x[sess, d]
    for name, tp in targets.items():
        log[TARGET_PREFIX + name] = tp
    return SyntheticFrontierLog(log, feeds, pd.DataFrame(truth))
