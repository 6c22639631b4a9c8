"""Send-time optimisation: Thompson sampling over local hours, per user, with a prior
from the population and from the user's own activity.

For user ``u`` and local hour ``h`` the open probability has a Beta posterior. Its prior
mean is the population's open rate at ``h`` times the user's relative activity at ``h``
(``(24 * share of their events at h) ** activity_weight``, the share smoothed, the factor
kept within ``[1/4, 4]``), with weight ``prior_strength`` pseudo-sends;
the user's own sends and opens at ``h`` are added to it. Each plan draws one sample per
hour from the posterior and sends at the best open hour; the probability of that choice
(the propensity, logged with the send) is estimated from ``n_draws`` further draws.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from feedwise.errors import ConfigError, DataError, NotFittedError

#: Largest factor a user's activity moves the prior mean of an hour by (either way).
MAX_LIFT = 4.0


class SendTimeBandit:
    """Per-user Thompson sampling over the 24 local hours.

    Args:
        prior_strength: Pseudo-sends of the prior at each hour.
        activity_weight: How strongly the user's activity shape moves the prior (0: the
            population's hourly rates for everyone).
        activity_smoothing: Pseudo-events added to each hour of a user's activity.
        base_rate: Population open rate assumed before any outcome is logged.
        n_draws: Draws used to estimate each choice's propensity.
        seed: Seed of the sampler.
    """

    def __init__(self, prior_strength: float = 10.0, activity_weight: float = 1.0,
                 activity_smoothing: float = 0.5, base_rate: float = 0.1,
                 n_draws: int = 200, seed: int = 0) -> None:
        self.prior_strength = prior_strength
        self.activity_weight = activity_weight
        self.activity_smoothing = activity_smoothing
        self.base_rate = base_rate
        self.n_draws = n_draws
        self.seed = seed

    def _check(self) -> None:
        if self.prior_strength <= 0 or self.activity_smoothing <= 0 or self.n_draws < 1:
            raise ConfigError("prior_strength and activity_smoothing must be > 0, n_draws >= 1")
        if not 0 < self.base_rate < 1 or self.activity_weight < 0:
            raise ConfigError("base_rate must be in (0, 1) and activity_weight >= 0")

    # ------------------------------------------------------------------ fit
    def fit(self, activity: pd.DataFrame, outcomes: pd.DataFrame | None = None
            ) -> SendTimeBandit:
        """Learn the priors and posteriors.

        Args:
            activity: ``user_id, local_hour, n``: events per user and local hour.
            outcomes: ``user_id, local_hour, opened`` (bool): past notifications.
        """
        self._check()
        for col in ("user_id", "local_hour", "n"):
            if col not in activity.columns:
                raise DataError(f"activity needs columns user_id, local_hour, n; has "
                                f"{list(activity.columns)}")
        outcomes = (outcomes if outcomes is not None
                    else pd.DataFrame(columns=["user_id", "local_hour", "opened"]))
        ids = pd.Index(pd.unique(pd.concat([activity["user_id"], outcomes["user_id"]])
                                 .astype(str)))
        self.user_ids_ = np.asarray(ids, dtype=object)
        self._index = {u: i for i, u in enumerate(self.user_ids_)}
        n = len(ids)
        act = np.zeros((n, 24))
        if len(activity):
            np.add.at(act, (ids.get_indexer(activity["user_id"].astype(str)),
                            activity["local_hour"].to_numpy(np.int64) % 24),
                      activity["n"].to_numpy(np.float64))
        sends = np.zeros((n, 24))
        opens = np.zeros((n, 24))
        if len(outcomes):
            r = ids.get_indexer(outcomes["user_id"].astype(str))
            h = outcomes["local_hour"].to_numpy(np.int64) % 24
            np.add.at(sends, (r, h), 1.0)
            np.add.at(opens, (r, h), outcomes["opened"].astype(bool).to_numpy(np.float64))
        pop_s, pop_o = sends.sum(axis=0), opens.sum(axis=0)
        overall = (pop_o.sum() + self.base_rate * 24) / (pop_s.sum() + 24)
        k = 20.0  # pseudo-sends shrinking each hour's population rate to the overall rate
        self.population_rate_ = (pop_o + k * overall) / (pop_s + k)
        self.prior_mean_ = self._prior_mean(act)
        self.alpha_ = self.prior_strength * self.prior_mean_ + opens
        self.beta_ = self.prior_strength * (1.0 - self.prior_mean_) + sends - opens
        self.rng_ = np.random.default_rng(self.seed)
        return self

    def _prior_mean(self, act: np.ndarray) -> np.ndarray:
        share = (act + self.activity_smoothing) / (act.sum(axis=1, keepdims=True)
                                                   + 24 * self.activity_smoothing)
        lift = np.clip((24.0 * share) ** self.activity_weight, 1.0 / MAX_LIFT, MAX_LIFT)
        return np.clip(self.population_rate_[None, :] * lift, 1e-4, 0.95)

    def _require(self) -> None:
        if not hasattr(self, "alpha_"):
            raise NotFittedError("SendTimeBandit is not fitted; call fit(activity) first")

    def _rows(self, user_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Posterior (alpha, beta) rows of the users; unknown users get the population's."""
        self._require()
        pa = self.prior_strength * self.population_rate_
        pb = self.prior_strength * (1.0 - self.population_rate_)
        r = np.fromiter((self._index.get(str(u), -1) for u in user_ids), np.int64,
                        len(user_ids))
        a = np.where(r[:, None] >= 0, self.alpha_[np.maximum(r, 0)], pa[None, :])
        b = np.where(r[:, None] >= 0, self.beta_[np.maximum(r, 0)], pb[None, :])
        return a, b

    # ------------------------------------------------------------------ use
    def expected(self, user_ids: Sequence[str]) -> np.ndarray:
        """(n, 24) posterior mean open probability per local hour."""
        a, b = self._rows(user_ids)
        return a / (a + b)

    def choose(self, user_ids: Sequence[str], allowed: np.ndarray,
               rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A local hour per user among ``allowed`` ((n, 24) or (24,) bool) by Thompson
        sampling, and the propensity of that choice. A user with no allowed hour gets
        hour -1 and propensity 0."""
        rng = rng if rng is not None else self.rng_
        a, b = self._rows(user_ids)
        allowed = np.broadcast_to(np.asarray(allowed, bool), a.shape)
        draw = np.where(allowed, rng.beta(a, b), -1.0)
        hours = draw.argmax(axis=1)
        none = ~allowed.any(axis=1)
        wins = np.zeros(a.shape)
        for _ in range(self.n_draws):  # the chance each hour is the argmax
            d = np.where(allowed, rng.beta(a, b), -1.0)
            wins[np.arange(len(d)), d.argmax(axis=1)] += 1.0
        rows = np.arange(len(hours))
        wins[rows, hours] += 1.0  # the draw that chose counts too: propensity > 0
        prop = wins[rows, hours] / (self.n_draws + 1.0)
        return np.where(none, -1, hours), np.where(none, 0.0, prop)

    def update(self, user_ids: Sequence[str], local_hours: np.ndarray, opened: np.ndarray
               ) -> SendTimeBandit:
        """Add outcomes of sends (users unseen at fit start from the population prior)."""
        self._require()
        new = [str(u) for u in pd.unique(np.asarray(user_ids, dtype=object).astype(str))
               if str(u) not in self._index]
        if new:
            pa = self.prior_strength * self.population_rate_
            pb = self.prior_strength * (1.0 - self.population_rate_)
            for u in new:
                self._index[u] = len(self._index)
            self.user_ids_ = np.concatenate([self.user_ids_, np.asarray(new, dtype=object)])
            self.alpha_ = np.vstack([self.alpha_, np.tile(pa, (len(new), 1))])
            self.beta_ = np.vstack([self.beta_, np.tile(pb, (len(new), 1))])
            self.prior_mean_ = np.vstack([self.prior_mean_,
                                          np.tile(self.population_rate_, (len(new), 1))])
        r = np.fromiter((self._index[str(u)] for u in user_ids), np.int64, len(user_ids))
        h = np.asarray(local_hours, np.int64) % 24
        o = np.asarray(opened, bool).astype(np.float64)
        np.add.at(self.alpha_, (r, h), o)
        np.add.at(self.beta_, (r, h), 1.0 - o)
        return self

    def forget_user(self, user_id: str) -> bool:
        """Reset a user to the population prior; ``True`` if the bandit knew them."""
        r = getattr(self, "_index", {}).pop(str(user_id), None)
        if r is None:
            return False
        self.alpha_[r] = self.prior_strength * self.population_rate_
        self.beta_[r] = self.prior_strength * (1.0 - self.population_rate_)
        self.prior_mean_[r] = self.population_rate_
        self.user_ids_[r] = ""
        return True

    # ------------------------------------------------------------------ persistence
    def get_params(self) -> dict[str, float | int]:
        return {k: getattr(self, k) for k in ("prior_strength", "activity_weight",
                                              "activity_smoothing", "base_rate", "n_draws",
                                              "seed")}

    def save(self, path: str | Path) -> None:
        """Write ``<path>.npz`` (arrays) and ``<path>.json`` (parameters, user ids)."""
        self._require()
        p = Path(path)
        np.savez(p.with_suffix(".npz"), alpha=self.alpha_, beta=self.beta_,
                 prior_mean=self.prior_mean_, population_rate=self.population_rate_)
        p.with_suffix(".json").write_text(json.dumps(
            {"params": self.get_params(), "user_ids": [str(u) for u in self.user_ids_]}))

    @classmethod
    def load(cls, path: str | Path) -> SendTimeBandit:
        p = Path(path)
        meta = json.loads(p.with_suffix(".json").read_text())
        out = cls(**meta["params"])
        with np.load(p.with_suffix(".npz"), allow_pickle=False) as z:
            out.alpha_, out.beta_ = z["alpha"], z["beta"]
            out.prior_mean_, out.population_rate_ = z["prior_mean"], z["population_rate"]
        out.user_ids_ = np.asarray(meta["user_ids"], dtype=object)
        out._index = {u: i for i, u in enumerate(out.user_ids_) if u}
        out.rng_ = np.random.default_rng(out.seed)
        return out
