"""Hyperparameter search on a validation split carved from the training data only.

``tune`` never sees a test split: it takes the training interactions, splits them again
(per-user random split, seeded) into a fit part and a validation part, fits each candidate
configuration on the fit part and ranks configurations by a top-k metric on the validation
part. The best configuration is returned (and can be saved as JSON) so the final model is
refitted on the full training data.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from feedwise.errors import ConfigError
from feedwise.interactions import Interactions
from feedwise.models.base import Recommender

#: Default grids per model (values tried; the search samples from their product).
SEARCH_SPACES: dict[str, dict[str, list[Any]]] = {
    "popularity": {"half_life_days": [None, 7.0, 30.0, 180.0], "weighted": [False, True]},
    "itemknn": {"k": [20, 50, 100, 200], "shrink": [0.0, 10.0, 50.0],
                "normalize": [False, True]},
    "ease": {"l2": [50.0, 100.0, 200.0, 300.0, 500.0, 1000.0, 2000.0],
             "dropout": [0.0, 0.25, 0.5]},
    "als": {"factors": [16, 32, 64, 128], "regularization": [0.01, 0.1, 1.0, 10.0],
            "alpha": [0.5, 1.0, 2.0, 5.0, 10.0, 20.0], "weighting": ["log", "linear"]},
    "bpr": {"factors": [32, 64, 128], "learning_rate": [0.005, 0.01, 0.03, 0.05],
            "regularization": [0.0001, 0.001, 0.01], "iterations": [50, 100, 200]},
    "time-ease": {"l2": [100.0, 200.0, 300.0, 500.0], "window": [10, 20, 40, 80],
                  "dropout": [0.0, 0.25]},
    "norm-ease": {"l2": [12.0, 24.0, 48.0], "user_norm": [0.0, 0.5],
                  "item_norm": [0.0, 0.25], "pop_boost": [0.1, 0.25],
                  "temporal": [0.0, 0.5, 1.0], "value_power": [0.0, 0.5, 1.0]},
    "gf-cf": {"factors": [16, 32, 64, 128], "ideal": [0.3, 0.5, 1.0, 2.0],
              "linear": [0.0, 1.0]},
    "rp3beta": {"alpha": [0.5, 0.75, 1.0], "beta": [0.0, 0.3, 0.5, 0.7], "k": [50, 100, 200]},
    "content": {"tag_weight": [1, 3, 5], "min_df": [1, 2]},
    "social": {"weighted": [False, True]},
    "hybrid": {"fusion": ["score", "rrf"],
               "components": [None,
                              [("ease", 1.0, {}), ("itemknn", 0.5, {}), ("content", 0.3, {}),
                               ("social", 0.3, {"symmetric": True})],
                              [("ease", 1.0, {}), ("als", 0.3, {}), ("content", 0.15, {}),
                               ("social", 0.15, {"symmetric": True})]]},
}


class Trial(BaseModel):
    """One evaluated configuration."""

    params: dict[str, Any]
    score: float
    fit_seconds: float


class TuneResult(BaseModel):
    """Outcome of a search: the best configuration and every trial."""

    model_config = ConfigDict(extra="forbid")

    model: str
    metric: str
    k: int
    validation_ratio: float
    seed: int
    best_params: dict[str, Any]
    best_score: float
    trials: list[Trial] = Field(default_factory=list)

    def save(self, path: str | Path) -> Path:
        """Write the result as JSON (``best_params`` feed ``get_model(model, **params)``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.model_dump(), indent=2, default=str))
        return path


def candidates(space: Mapping[str, Sequence[Any]], n_trials: int, seed: int
               ) -> list[dict[str, Any]]:
    """Up to ``n_trials`` distinct configurations from the grid (all of it if it fits),
    drawn without replacement with a seeded generator."""
    if n_trials <= 0:
        raise ConfigError(f"n_trials must be positive, got {n_trials}")
    keys = list(space)
    grid = list(itertools.product(*(list(space[k]) for k in keys)))
    if not grid:
        return [{}]
    if len(grid) > n_trials:
        pick = np.random.default_rng(seed).choice(len(grid), size=n_trials, replace=False)
        grid = [grid[i] for i in sorted(pick)]
    return [dict(zip(keys, g, strict=True)) for g in grid]


def tune(model: str, train: Interactions, *, space: Mapping[str, Sequence[Any]] | None = None,
         fixed: Mapping[str, Any] | None = None, n_trials: int = 20, metric: str = "ndcg",
         k: int = 10, validation_ratio: float = 0.75, seed: int = 42,
         fit_kwargs: Mapping[str, Any] | None = None,
         progress: Callable[[int, int, Trial], None] | None = None) -> TuneResult:
    """Search hyperparameters of ``model`` on a validation split of ``train``.

    Args:
        model: Registered model name.
        train: Training interactions (never pass the test part).
        space: Parameter -> values to try (default: :data:`SEARCH_SPACES`).
        fixed: Parameters held fixed in every trial.
        n_trials: Most configurations evaluated; on the built-in space the first is the
            model's defaults (for the searched parameters) unless the sample holds them.
        metric: A metric of :data:`feedwise.evaluation.metrics.ACCURACY`.
        k: List length of the metric.
        validation_ratio: Share of each user's training items kept for fitting.
        seed: Seed of the validation split and of the sampling of the grid.
        fit_kwargs: Side data for ``fit`` (``items=``, ``edges=``).
        progress: Called after each trial with (done, total, trial).
    """
    # imported here: feedwise.evaluation imports feedwise.models (no import cycle at load)
    from feedwise.evaluation import evaluate, random_split
    from feedwise.evaluation.metrics import ACCURACY

    if model not in Recommender.registry:
        raise ConfigError(f"unknown model {model!r}; choose one of "
                          f"{sorted(Recommender.registry)}")
    if metric not in ACCURACY:
        raise ConfigError(f"unknown metric {metric!r}; choose one of {sorted(ACCURACY)}")
    grid = SEARCH_SPACES.get(model, {}) if space is None else space
    unknown = set(grid) - set(Recommender.registry[model]().get_params())
    if unknown:
        raise ConfigError(f"{model} has no parameter(s) {sorted(unknown)}")
    split = random_split(train, validation_ratio, seed=seed)
    configs = candidates(grid, n_trials, seed)
    # on the built-in space the defaults always compete: tuning never returns a
    # configuration that scored worse on validation than the model out of the box
    defaults = {p: v for p, v in Recommender.registry[model]().get_params().items()
                if p in grid and p not in (fixed or {})}
    if space is None and defaults and defaults not in configs:
        configs = [defaults, *configs[:n_trials - 1]]
    trials: list[Trial] = []
    for n, params in enumerate(configs, 1):
        est = Recommender.registry[model](**{**(fixed or {}), **params})
        t0 = time.perf_counter()
        est.fit(split.train, **(fit_kwargs or {}))
        fit_s = time.perf_counter() - t0
        table = evaluate(est, split, k, fit=False, metrics=(metric,), beyond=False)
        score = float(table.loc[table["metric"] == metric, "value"].iloc[0])
        trial = Trial(params=params, score=score, fit_seconds=fit_s)
        trials.append(trial)
        if progress is not None:
            progress(n, len(configs), trial)
    best = max(trials, key=lambda t: t.score)
    return TuneResult(model=model, metric=metric, k=k, validation_ratio=validation_ratio,
                      seed=seed, best_params={**(fixed or {}), **best.params},
                      best_score=best.score, trials=trials)
