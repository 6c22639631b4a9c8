"""A/B test statistics: differences with confidence intervals, CUPED, sample size, SRM.

* :func:`welch_ttest` — difference in means (treatment − control) with Welch's t interval.
* :func:`two_proportion_ztest` — difference in proportions with a Wald interval and the
  pooled z-test p-value.
* :func:`cuped` / :func:`cuped_ttest` — CUPED variance reduction: subtract
  ``theta * (x - mean(x))`` with a pre-period covariate ``x`` and ``theta = cov(y, x) /
  var(x)`` estimated on both groups pooled, then compare the adjusted means.
* :func:`sample_size` — users per group for a two-sided test of a mean or a proportion.
* :func:`srm_check` — sample-ratio mismatch: chi-square test of the assignment counts.
* :func:`experiment_users` / :func:`analyze_experiment` — the same over experiment events in
  the store. A user's assignment is read from the ``context`` JSON of their events
  (``{"experiment": "...", "variant": "..."}``); their first assigned event starts their
  exposure, the metric counts their events from then on, and the pre-period covariate the
  same metric over ``pre_days`` before it (the query is
  :func:`feedwise.analytics.experiments.experiment_outcomes`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from feedwise.analytics.experiments import METRICS_SQL, experiment_outcomes
from feedwise.errors import ConfigError, DataError, NotFoundError
from feedwise.store import EventStore


@dataclass(frozen=True)
class ABResult:
    """A treatment − control comparison.

    Attributes:
        metric: What was compared.
        test: ``welch_t``, ``two_proportion_z`` or ``cuped_welch_t``.
        control_mean: Mean (or proportion) in control.
        treatment_mean: Mean (or proportion) in treatment.
        diff: ``treatment_mean - control_mean``.
        ci_low: Lower end of the ``1 - alpha`` interval of ``diff``.
        ci_high: Upper end.
        rel_diff: ``diff / control_mean`` (NaN when control's mean is 0).
        p_value: Two-sided p-value of "no difference".
        n_control: Units in control.
        n_treatment: Units in treatment.
    """

    metric: str
    test: str
    control_mean: float
    treatment_mean: float
    diff: float
    ci_low: float
    ci_high: float
    rel_diff: float
    p_value: float
    n_control: int
    n_treatment: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _arr(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if len(a) < 2:
        raise DataError(f"{name} needs at least 2 observations, got {len(a)}")
    if not np.all(np.isfinite(a)):
        raise DataError(f"{name} has missing or infinite values")
    return a


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")


def welch_ttest(control: Any, treatment: Any, alpha: float = 0.05, metric: str = "metric",
                test: str = "welch_t") -> ABResult:
    """Difference in means with Welch's unequal-variance t interval and p-value."""
    _check_alpha(alpha)
    a, b = _arr(control, "control"), _arr(treatment, "treatment")
    ma, mb = a.mean(), b.mean()
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = np.sqrt(va + vb)
    diff = mb - ma
    if se == 0:
        p, lo, hi = (1.0 if diff == 0 else 0.0), diff, diff
    else:
        dof = (va + vb) ** 2 / ((va ** 2) / (len(a) - 1) + (vb ** 2) / (len(b) - 1)) \
            if va + vb > 0 else len(a) + len(b) - 2
        t = diff / se
        p = float(2 * stats.t.sf(abs(t), dof))
        q = stats.t.ppf(1 - alpha / 2, dof)
        lo, hi = diff - q * se, diff + q * se
    return ABResult(metric, test, float(ma), float(mb), float(diff), float(lo), float(hi),
                    float(diff / ma) if ma else float("nan"), float(p), len(a), len(b))


def two_proportion_ztest(successes_control: int, n_control: int, successes_treatment: int,
                         n_treatment: int, alpha: float = 0.05, metric: str = "conversion"
                         ) -> ABResult:
    """Difference in proportions: Wald interval, pooled two-proportion z-test p-value."""
    _check_alpha(alpha)
    for s, n, g in ((successes_control, n_control, "control"),
                    (successes_treatment, n_treatment, "treatment")):
        if n <= 0 or s < 0 or s > n:
            raise DataError(f"{g}: need 0 <= successes <= n and n > 0 (got {s} of {n})")
    pa, pb = successes_control / n_control, successes_treatment / n_treatment
    diff = pb - pa
    pool = (successes_control + successes_treatment) / (n_control + n_treatment)
    se0 = np.sqrt(pool * (1 - pool) * (1 / n_control + 1 / n_treatment))
    p = float(2 * stats.norm.sf(abs(diff / se0))) if se0 > 0 else (1.0 if diff == 0 else 0.0)
    se = np.sqrt(pa * (1 - pa) / n_control + pb * (1 - pb) / n_treatment)
    z = stats.norm.ppf(1 - alpha / 2)
    return ABResult(metric, "two_proportion_z", pa, pb, diff, float(diff - z * se),
                    float(diff + z * se), diff / pa if pa else float("nan"), p,
                    int(n_control), int(n_treatment))


def cuped(y: Any, x: Any, theta: float | None = None) -> tuple[np.ndarray, float]:
    """CUPED-adjusted outcomes ``y - theta * (x - mean(x))``.

    Args:
        y: Outcomes (all groups pooled).
        x: Pre-period covariate per unit (same order as ``y``).
        theta: Use this coefficient instead of ``cov(y, x) / var(x)``.

    Returns:
        The adjusted outcomes and ``theta``.
    """
    y, x = _arr(y, "y"), _arr(x, "x")
    if len(y) != len(x):
        raise DataError(f"y and x must have the same length ({len(y)} != {len(x)})")
    if theta is None:
        vx = x.var(ddof=1)
        theta = float(np.cov(y, x, ddof=1)[0, 1] / vx) if vx > 0 else 0.0
    return y - theta * (x - x.mean()), float(theta)


def cuped_ttest(y_control: Any, x_control: Any, y_treatment: Any, x_treatment: Any,
                alpha: float = 0.05, metric: str = "metric") -> tuple[ABResult, float]:
    """Welch's test on CUPED-adjusted outcomes (theta estimated on both groups pooled).

    Returns:
        The result and the variance reduction ``1 - var(adjusted) / var(raw)``.
    """
    yc, yt = _arr(y_control, "y_control"), _arr(y_treatment, "y_treatment")
    xc, xt = _arr(x_control, "x_control"), _arr(x_treatment, "x_treatment")
    for y_, x_, g in ((yc, xc, "control"), (yt, xt, "treatment")):
        if len(y_) != len(x_):
            raise DataError(f"y_{g} and x_{g} must have the same length ({len(y_)} != "
                            f"{len(x_)}): pass one pre-period value per unit")
    y = np.concatenate([yc, yt])
    adj, _ = cuped(y, np.concatenate([xc, xt]))
    vy = y.var(ddof=1)
    reduction = float(1 - adj.var(ddof=1) / vy) if vy > 0 else 0.0
    res = welch_ttest(adj[:len(yc)], adj[len(yc):], alpha, metric, test="cuped_welch_t")
    return res, reduction


def sample_size(baseline: float, mde: float, *, kind: str = "proportion",
                sd: float | None = None, alpha: float = 0.05, power: float = 0.8,
                relative: bool = False, ratio: float = 1.0) -> dict[str, int]:
    """Units needed per group for a two-sided test.

    Args:
        baseline: Control mean (or proportion).
        mde: Minimum detectable effect (absolute, or relative to ``baseline``).
        kind: ``proportion`` or ``mean``.
        sd: Standard deviation of the metric (``mean`` only).
        alpha: Significance level.
        power: Power, ``1 - beta``.
        relative: Whether ``mde`` is relative to ``baseline``.
        ratio: Treatment units per control unit.

    Returns:
        ``{"control": n_c, "treatment": n_t, "total": n_c + n_t}``.
    """
    _check_alpha(alpha)
    if not 0 < power < 1:
        raise ConfigError(f"power must be in (0, 1), got {power}")
    if ratio <= 0:
        raise ConfigError(f"ratio must be positive, got {ratio}")
    effect = mde * baseline if relative else mde
    delta = abs(effect)
    if delta == 0:
        raise ConfigError("mde must be non-zero")
    za, zb = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    if kind == "proportion":
        p1, p2 = baseline, baseline + effect
        if not (0 < p1 < 1 and 0 < p2 < 1):
            raise ConfigError(f"proportions must be in (0, 1): baseline {p1}, treated {p2}")
        var_c, var_t = p1 * (1 - p1), p2 * (1 - p2)
    elif kind == "mean":
        if sd is None or sd <= 0:
            raise ConfigError("kind='mean' needs a positive sd")
        var_c = var_t = sd ** 2
    else:
        raise ConfigError(f"kind must be 'proportion' or 'mean', not {kind!r}")
    n_c = int(np.ceil((za + zb) ** 2 * (var_c + var_t / ratio) / delta ** 2))
    n_t = int(np.ceil(n_c * ratio))
    return {"control": n_c, "treatment": n_t, "total": n_c + n_t}


def srm_check(counts: dict[str, int], expected: dict[str, float] | None = None,
              threshold: float = 0.001) -> dict[str, Any]:
    """Sample-ratio mismatch: chi-square goodness of fit of assignment counts.

    Args:
        counts: Variant -> units assigned.
        expected: Variant -> expected share (default: equal shares). A variant with a
            positive share but no entry in ``counts`` counts as 0 units.
        threshold: p-value below which a mismatch is flagged.

    Returns:
        ``{"chi2", "p_value", "srm": bool, "observed", "expected"}``.
    """
    # a variant expected to get units but absent from the counts got none
    names = list(counts) + [k for k, v in (expected or {}).items()
                            if k not in counts and v > 0]
    if len(names) < 2:
        raise DataError(f"an SRM check needs at least two variants, got {names}")
    obs = np.array([counts.get(k, 0) for k in names], dtype=np.float64)
    if expected is None:
        shares = np.full(len(names), 1 / len(names))
    else:
        missing = [k for k in names if k not in expected]
        if missing:
            raise ConfigError(f"expected shares missing for {missing}")
        shares = np.array([expected[k] for k in names], dtype=np.float64)
        shares = shares / shares.sum()
    exp = shares * obs.sum()
    chi2, p = stats.chisquare(obs, exp)
    return {"chi2": float(chi2), "p_value": float(p), "srm": bool(p < threshold),
            "observed": dict(zip(names, obs.astype(int).tolist(), strict=True)),
            "expected": dict(zip(names, exp.round(1).tolist(), strict=True))}


# ----------------------------------------------------------------------------- store

#: Metrics analysed as proportions (share of users with at least one).
BINARY_METRICS: dict[str, str] = {"converted": "conversion", "engaged": "engagements",
                                  "clicked": "clicks"}


def experiment_users(store: EventStore, experiment: str, metric: str = "engagements", *,
                     pre_days: float = 14.0, until: datetime | None = None) -> pd.DataFrame:
    """Per-user assignment, outcome and pre-period covariate of one experiment.

    Args:
        store: The event store.
        experiment: Experiment name in the events' ``context`` JSON.
        metric: One of :data:`~feedwise.analytics.experiments.METRICS_SQL` or
            :data:`BINARY_METRICS`.
        pre_days: Length of the pre-period before each user's first assignment.
        until: Ignore events at or after this time.

    Returns:
        Columns ``user_id, variant, assigned_at, y, x`` (``x`` = pre-period value; both 0/1
        for a binary metric), read by
        :func:`~feedwise.analytics.experiments.experiment_outcomes`.

    Users seen in more than one variant are dropped and counted in
    ``result.attrs['multi_variant_users']``.

    Raises:
        ConfigError: An unknown metric.
        NotFoundError: No events carry this experiment.
    """
    binary = metric in BINARY_METRICS
    base = BINARY_METRICS[metric] if binary else metric
    if not binary and metric not in METRICS_SQL:
        raise ConfigError(f"unknown metric {metric!r}; choose from "
                          f"{sorted([*METRICS_SQL, *BINARY_METRICS])}")
    out = experiment_outcomes(store, experiment, base, pre_days=pre_days, until=until)
    if binary:
        out["y"] = (out["y"] > 0).astype(np.float64)
        out["x"] = (out["x"] > 0).astype(np.float64)
    return out


def analyze_experiment(store: EventStore, experiment: str, metric: str = "engagements", *,
                       control: str = "control", use_cuped: bool = True,
                       pre_days: float = 14.0, alpha: float = 0.05,
                       expected: dict[str, float] | None = None,
                       until: datetime | None = None) -> dict[str, Any]:
    """Compare every variant with ``control`` over the experiment's events in the store.

    Returns:
        ``{"results": DataFrame (one row per treatment variant and test), "srm": dict,
        "users": per-user frame, "variance_reduction": {variant: share}}``.
    """
    users = experiment_users(store, experiment, metric, pre_days=pre_days, until=until)
    counts = users["variant"].value_counts().to_dict()
    if control not in counts:
        raise NotFoundError(f"control variant {control!r} not found in experiment "
                            f"{experiment!r}; variants are {sorted(counts)}")
    variants = set(counts) | {k for k, v in (expected or {}).items() if v > 0}
    srm = srm_check(counts, expected) if len(variants) > 1 else None
    rows, red = [], {}
    c = users[users["variant"] == control]
    for v in sorted(k for k in counts if k != control):
        t = users[users["variant"] == v]
        if metric in BINARY_METRICS:
            r = two_proportion_ztest(int(c["y"].sum()), len(c), int(t["y"].sum()), len(t),
                                     alpha, metric)
        else:
            r = welch_ttest(c["y"], t["y"], alpha, metric)
        rows.append({"variant": v, **r.as_dict()})
        if use_cuped and metric not in BINARY_METRICS:
            rc, reduction = cuped_ttest(c["y"], c["x"], t["y"], t["x"], alpha, metric)
            rows.append({"variant": v, **rc.as_dict()})
            red[v] = reduction
    return {"results": pd.DataFrame(rows), "srm": srm, "users": users,
            "variance_reduction": red}
