"""Off-policy estimators: what would a new policy have earned on logged feeds?

They read :class:`~feedwise.evidence.logs.OffPolicyData`: per logged row the reward, the
logging policy's ``propensity``, the target policy's ``target_propensity`` and, for the
model-based estimators, the reward model's predictions (see :mod:`feedwise.evidence.logs`).

Estimators (all ``*Estimator`` classes share :meth:`OffPolicyEstimator.estimate`):

* :class:`DirectMethodEstimator` (DM) — the reward model's value of the target policy.
* :class:`IPSEstimator` — inverse propensity scoring, ``mean(w * r)`` with
  ``w = target_propensity / propensity``; unbiased under full support, high variance.
* :class:`SNIPSEstimator` — self-normalised IPS, ``sum(w * r) / sum(w)``; slightly biased,
  far lower variance; undefined (NaN) when the target gives no logged row any probability.
* :class:`DoublyRobustEstimator` (DR) — ``mean(q_target + w * (r - q_logged))``; unbiased
  when either the propensities or the reward model are right.
* :class:`SwitchDREstimator` — DR that drops the IPS correction for rows whose weight
  exceeds ``tau`` (those fall back on the model).

**Position-aware evaluation (per-slot IPS under the independence assumption).** A feed is a
ranking, and the exact propensity of a whole ranking is tiny. We instead assume the reward at
a slot depends only on the item at that slot (not on the items around it) and weight each
row by the ratio of the *marginal* per-slot probabilities ``pi_e(item at k | x) /
pi_0(item at k | x)`` (the "independent IPS" of Li et al., 2018). The estimate per position
``k`` is the mean of the per-row terms of that position and the value of a whole feed is
their sum over positions (:meth:`OffPolicyEstimator.estimate_by_position`). When rewards
depend on neighbours (an annoying ad above lowers the click rate below), this estimator is
biased; the simulator (:mod:`feedwise.evidence.simulator`) is the evidence for such effects.

Every estimate comes with a bootstrap confidence interval (rows resampled with replacement,
or whole groups such as sessions when ``groups`` is given) and the effective sample size
``(sum w)^2 / sum w^2`` of its importance weights. :func:`accuracy_table` checks every
estimator against the known truth of :func:`~feedwise.evidence.logs.synthetic_bandit_log`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from feedwise.errors import ConfigError, DataError
from feedwise.evidence.logs import OffPolicyData, synthetic_bandit_log

# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class OffPolicyEstimate:
    """One estimate with its bootstrap confidence interval.

    Attributes:
        estimator: Estimator name.
        value: Estimated mean reward per logged row (per impression).
        ci_low: Lower end of the bootstrap interval.
        ci_high: Upper end of the bootstrap interval.
        ess: Effective sample size of the importance weights (``n`` for DM).
        n: Number of rows.
    """

    estimator: str
    value: float
    ci_low: float
    ci_high: float
    ess: float
    n: int

    def as_dict(self) -> dict:
        return {"estimator": self.estimator, "value": self.value, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "ess": self.ess, "n": self.n}


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` of importance weights."""
    w = np.asarray(weights, dtype=np.float64)
    s2 = float(np.sum(w * w))
    return float(np.sum(w) ** 2 / s2) if s2 > 0 else 0.0


def _bootstrap_indices(n: int, groups: np.ndarray | None, rng: np.random.Generator
                       ) -> np.ndarray:
    if groups is None:
        return rng.integers(0, n, size=n)
    try:
        uniq, inv = np.unique(groups, return_inverse=True)
    except TypeError:  # ids of mixed types (e.g. strings and missing values): not sortable
        inv, uniq = pd.factorize(groups, use_na_sentinel=False)  # missing ids: one group
    inv = np.asarray(inv).ravel()
    order = np.argsort(inv, kind="stable")
    counts = np.bincount(inv, minlength=len(uniq))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pick = rng.integers(0, len(uniq), size=len(uniq))
    c = counts[pick]
    offsets = np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
    return order[np.repeat(starts[pick], c) + offsets]


# ----------------------------------------------------------------------------- estimators


class OffPolicyEstimator:
    """Base class: subclasses implement :meth:`_value` on :class:`OffPolicyData`.

    Args:
        n_bootstrap: Bootstrap resamples for the confidence interval (0 disables it).
        alpha: One minus the interval's coverage (0.05 gives a 95 % interval).
    """

    name = "estimator"
    needs_model = False

    def __init__(self, n_bootstrap: int = 200, alpha: float = 0.05) -> None:
        self.n_bootstrap = n_bootstrap
        self.alpha = alpha

    def _check(self, data: OffPolicyData) -> None:
        if (isinstance(self.n_bootstrap, bool) or not isinstance(self.n_bootstrap, int | np.integer)
                or self.n_bootstrap < 0):
            raise ConfigError(f"n_bootstrap must be a whole number >= 0, got {self.n_bootstrap!r}")
        if not 0 < self.alpha < 1:
            raise ConfigError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.needs_model and (data.q_target is None or
                                 (self.name != "dm" and data.q_logged is None)):
            raise DataError(f"{self.name} needs reward-model predictions (q_target"
                            f"{'' if self.name == 'dm' else ' and q_logged'}); fit a "
                            "RewardModel or pass q_hat")

    def _value(self, data: OffPolicyData) -> float:
        raise NotImplementedError

    def _ess(self, data: OffPolicyData) -> float:
        return effective_sample_size(data.weights)

    def estimate(self, data: OffPolicyData, seed: int | np.random.Generator | None = 0
                 ) -> OffPolicyEstimate:
        """Point estimate, bootstrap interval and effective sample size.

        Args:
            data: The logged rows with target propensities (and model predictions).
            seed: Seed or generator for the bootstrap.
        """
        self._check(data)
        value = float(self._value(data))
        lo = hi = value
        if self.n_bootstrap:
            rng = np.random.default_rng(seed)
            boots = np.array([self._value(data.take(_bootstrap_indices(len(data), data.groups,
                                                                        rng)))
                              for _ in range(self.n_bootstrap)])
            lo, hi = (float(x) for x in np.quantile(boots, [self.alpha / 2, 1 - self.alpha / 2]))
        return OffPolicyEstimate(self.name, value, lo, hi, self._ess(data), len(data))

    def estimate_by_position(self, data: OffPolicyData) -> pd.DataFrame:
        """Per-slot estimates (independence assumption) and their sum, the feed value.

        Returns:
            A DataFrame with columns ``position, value, n, ess``; the last row, position
            ``-1``, is the per-feed value (sum over positions).
        """
        if data.position is None:
            raise DataError("estimate_by_position needs the position of every logged row")
        self._check(data)
        rows = []
        for k in np.unique(data.position):
            sub = data.take(np.flatnonzero(data.position == k))
            rows.append({"position": int(k), "value": float(self._value(sub)), "n": len(sub),
                         "ess": self._ess(sub)})
        df = pd.DataFrame(rows)
        total = {"position": -1, "value": float(df["value"].sum()), "n": int(df["n"].sum()),
                 "ess": float("nan")}
        return pd.concat([df, pd.DataFrame([total])], ignore_index=True)


class DirectMethodEstimator(OffPolicyEstimator):
    """Direct Method: the mean of the reward model's value of the target policy."""

    name = "dm"
    needs_model = True

    def _value(self, data: OffPolicyData) -> float:
        return float(np.mean(data.q_target))

    def _ess(self, data: OffPolicyData) -> float:
        return float(len(data))


class IPSEstimator(OffPolicyEstimator):
    """Inverse propensity scoring: ``mean(w * r)``."""

    name = "ips"

    def _value(self, data: OffPolicyData) -> float:
        return float(np.mean(data.weights * data.reward))


class SNIPSEstimator(OffPolicyEstimator):
    """Self-normalised IPS: ``sum(w * r) / sum(w)`` (NaN when every weight is 0)."""

    name = "snips"

    def _value(self, data: OffPolicyData) -> float:
        # undefined (NaN) when the target gives no logged row any probability: the log says
        # nothing about it (its ESS is 0), which is not the same as "it earns nothing"
        w = data.weights
        s = float(np.sum(w))
        return float(np.sum(w * data.reward) / s) if s > 0 else float("nan")


class DoublyRobustEstimator(OffPolicyEstimator):
    """Doubly robust: ``mean(q_target + w * (r - q_logged))``."""

    name = "dr"
    needs_model = True

    def _value(self, data: OffPolicyData) -> float:
        return float(np.mean(data.q_target + data.weights * (data.reward - data.q_logged)))


class SwitchDREstimator(OffPolicyEstimator):
    """Switch-DR: the DR correction only where the weight is at most ``tau``.

    Args:
        tau: Weight threshold; rows with ``w > tau`` use the model alone.
        n_bootstrap: See :class:`OffPolicyEstimator`.
        alpha: See :class:`OffPolicyEstimator`.
    """

    name = "switch-dr"
    needs_model = True

    def __init__(self, tau: float = 10.0, n_bootstrap: int = 200, alpha: float = 0.05) -> None:
        super().__init__(n_bootstrap, alpha)
        self.tau = tau

    def _check(self, data: OffPolicyData) -> None:
        super()._check(data)
        if not self.tau > 0:   # also catches NaN, which would silently turn DR into DM
            raise ConfigError(f"tau must be positive, got {self.tau}")

    def _value(self, data: OffPolicyData) -> float:
        w = data.weights
        keep = w <= self.tau
        return float(np.mean(data.q_target + keep * w * (data.reward - data.q_logged)))

    def _ess(self, data: OffPolicyData) -> float:
        w = data.weights
        return effective_sample_size(np.where(w <= self.tau, w, 0.0))


ESTIMATORS: dict[str, type[OffPolicyEstimator]] = {
    "dm": DirectMethodEstimator, "ips": IPSEstimator, "snips": SNIPSEstimator,
    "dr": DoublyRobustEstimator, "switch-dr": SwitchDREstimator,
}


def estimate_all(data: OffPolicyData, estimators: Sequence[str] | None = None, *,
                 n_bootstrap: int = 200, alpha: float = 0.05, tau: float = 10.0,
                 seed: int | np.random.Generator | None = 0) -> pd.DataFrame:
    """Run several estimators on the same data and return a tidy table.

    Estimators that need a reward model are skipped when ``data`` has no predictions.

    Returns:
        One row per estimator: ``estimator, value, ci_low, ci_high, ess, n``.
    """
    names = list(estimators) if estimators is not None else list(ESTIMATORS)
    rows = []
    for name in names:
        if name not in ESTIMATORS:
            raise ConfigError(f"unknown estimator {name!r}; choose from {list(ESTIMATORS)}")
        cls = ESTIMATORS[name]
        est = (cls(tau=tau, n_bootstrap=n_bootstrap, alpha=alpha) if cls is SwitchDREstimator
               else cls(n_bootstrap=n_bootstrap, alpha=alpha))
        if est.needs_model and data.q_target is None:
            continue
        rows.append(est.estimate(data, seed=seed).as_dict())
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- validation


def accuracy_table(n_impressions: int = 100_000, seeds: Sequence[int] = (0, 1, 2, 3, 4), *,
                   n_bootstrap: int = 0, **kwargs) -> pd.DataFrame:
    """Relative error of every estimator against the known truth over several seeds.

    Returns:
        One row per estimator: ``estimator, median_rel_error, max_rel_error, mean_estimate,
        true_value, mean_ess, covered`` (share of seeds whose bootstrap interval contains
        the truth when ``n_bootstrap > 0``).
    """
    rows = []
    for s in seeds:
        syn = synthetic_bandit_log(n_impressions, seed=s, **kwargs)
        df = estimate_all(syn.data, n_bootstrap=n_bootstrap, seed=s)
        df["true_value"] = syn.true_value
        df["rel_error"] = (df["value"] - syn.true_value).abs() / syn.true_value
        df["covered"] = (df["ci_low"] <= syn.true_value) & (syn.true_value <= df["ci_high"])
        df["seed"] = s
        rows.append(df)
    all_ = pd.concat(rows, ignore_index=True)
    out = all_.groupby("estimator", sort=False).agg(
        median_rel_error=("rel_error", "median"), max_rel_error=("rel_error", "max"),
        mean_estimate=("value", "mean"), true_value=("true_value", "mean"),
        mean_ess=("ess", "mean"), covered=("covered", "mean")).reset_index()
    if not n_bootstrap:
        out = out.drop(columns="covered")
    return out
