"""Hyperparameter search on validation splits carved from the training data only.

``tune`` never sees a test split: it takes the training interactions, splits them again
(per-user random splits, seeded) into a fit part and a validation part, fits each candidate
configuration on each fit part and ranks configurations by a top-k metric averaged over the
validation parts. The best configuration is returned (and can be saved as JSON) so the final
model is refitted on the full training data.

Two choices matter more than they look:

* **The fit part should be as dense as the data the final model sees.** Regularisation and
  popularity settings that win on a sparser fit part over-regularise the refit: on
  MovieLens-100k the best ``l2`` / ``pop_boost`` of NormEASE moved from (24-36, 0.1) with
  75 % of the training data in the fit part to (12, 0) with 90 %, while keeping the fit part
  and shrinking the validation part moved nothing (validation splits of the training data
  only). So the default keeps 90 % for fitting and averages three such splits against the
  noise of the smaller validation parts.
* **Coordinate search from the defaults** (``strategy="coordinate"``, the default) changes
  one parameter at a time, keeps a change only if it scores higher and stops after a pass
  without one: it starts from what the model does out of the box, so it never returns
  something that scored worse on validation, and it spends its trials near a good
  configuration instead of on random corners of the grid (``strategy="random"``).
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
from feedwise.evaluation import evaluate, random_split
from feedwise.evaluation.metrics import ACCURACY
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
                  "item_norm": [0.0, 0.25], "pop_boost": [0.0, 0.1, 0.25],
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
    n_splits: int = 1
    strategy: str = "random"
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


def _key(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def coordinate_search(space: Mapping[str, Sequence[Any]], start: Mapping[str, Any],
                      score: Callable[[dict[str, Any]], float], n_trials: int) -> None:
    """Coordinate ascent over ``space`` from ``start``: for each parameter in turn try its
    other values with the rest held at the best so far, keep the best; stop after a pass
    that changed nothing or after ``n_trials`` evaluations (``score`` is called once per
    distinct configuration)."""
    seen: dict[str, float] = {}

    def ev(cfg: dict[str, Any]) -> float | None:
        key = _key(cfg)
        if key not in seen:
            if len(seen) >= n_trials:
                return None
            seen[key] = score(cfg)
        return seen[key]

    best = dict(start)
    best_score = ev(best)
    changed = True
    while changed and best_score is not None:
        changed = False
        for name, values in space.items():
            for v in values:
                cfg = {**best, name: v}
                got = ev(cfg)
                if got is None:
                    return
                if got > best_score:
                    best, best_score, changed = cfg, got, True


def tune(model: str, train: Interactions, *, space: Mapping[str, Sequence[Any]] | None = None,
         fixed: Mapping[str, Any] | None = None, n_trials: int = 20, metric: str = "ndcg",
         k: int = 10, validation_ratio: float = 0.9, n_splits: int = 3,
         strategy: str = "coordinate", seed: int = 42,
         fit_kwargs: Mapping[str, Any] | None = None,
         progress: Callable[[int, int, Trial], None] | None = None) -> TuneResult:
    """Search hyperparameters of ``model`` on validation splits of ``train``.

    Args:
        model: Registered model name.
        train: Training interactions (never pass the test part).
        space: Parameter -> values to try (default: :data:`SEARCH_SPACES`).
        fixed: Parameters held fixed in every trial.
        n_trials: Most configurations evaluated. ``coordinate`` starts from the model's
            defaults (listed in the space or not); ``random`` samples the grid, and on the
            built-in space its first trial is the defaults unless the sample holds them.
        metric: A metric of :data:`feedwise.evaluation.metrics.ACCURACY`.
        k: List length of the metric.
        validation_ratio: Share of each user's training items kept for fitting.
        n_splits: Validation splits (seeds ``seed``, ``seed + 1``, ...) each configuration
            is scored on; the score is their mean.
        strategy: ``coordinate`` (ascent from the defaults) or ``random`` (grid sample).
        seed: Seed of the validation splits and of the sampling of the grid.
        fit_kwargs: Side data for ``fit`` (``items=``, ``edges=``).
        progress: Called after each trial with (done, most trials, trial).
    """
    if model not in Recommender.registry:
        raise ConfigError(f"unknown model {model!r}; choose one of "
                          f"{sorted(Recommender.registry)}")
    if metric not in ACCURACY:
        raise ConfigError(f"unknown metric {metric!r}; choose one of {sorted(ACCURACY)}")
    if strategy not in ("coordinate", "random"):
        raise ConfigError(f"strategy must be 'coordinate' or 'random', got {strategy!r}")
    if n_splits < 1 or n_trials < 1:
        raise ConfigError(f"n_splits and n_trials must be >= 1, got {n_splits} and {n_trials}")
    grid = SEARCH_SPACES.get(model, {}) if space is None else space
    out_of_box = Recommender.registry[model]().get_params()
    unknown = set(grid) - set(out_of_box)
    if unknown:
        raise ConfigError(f"{model} has no parameter(s) {sorted(unknown)}")
    grid = {p: list(v) for p, v in grid.items() if p not in (fixed or {})}
    splits = [random_split(train, validation_ratio, seed=seed + i) for i in range(n_splits)]
    trials: list[Trial] = []

    def score(params: dict[str, Any]) -> float:
        values, fit_s = [], 0.0
        for split in splits:
            est = Recommender.registry[model](**{**(fixed or {}), **params})
            t0 = time.perf_counter()
            est.fit(split.train, **(fit_kwargs or {}))
            fit_s += time.perf_counter() - t0
            table = evaluate(est, split, k, fit=False, metrics=(metric,), beyond=False)
            values.append(float(table.loc[table["metric"] == metric, "value"].iloc[0]))
        trial = Trial(params=params, score=float(np.mean(values)), fit_seconds=fit_s / n_splits)
        trials.append(trial)
        if progress is not None:
            progress(len(trials), n_trials, trial)
        return trial.score

    if strategy == "coordinate":
        coordinate_search(grid, {p: out_of_box[p] for p in grid}, score, n_trials)
    else:
        configs = candidates(grid, n_trials, seed)
        # on the built-in space the defaults always compete: tuning never returns a
        # configuration that scored worse on validation than the model out of the box
        defaults = {p: out_of_box[p] for p in grid}
        if space is None and defaults and defaults not in configs:
            configs = [defaults, *configs[:n_trials - 1]]
        for params in configs:
            score(params)
    best = max(trials, key=lambda t: t.score)
    return TuneResult(model=model, metric=metric, k=k, validation_ratio=validation_ratio,
                      n_splits=n_splits, strategy=strategy, seed=seed,
                      best_params={**(fixed or {}), **best.params},
                      best_score=best.score, trials=trials)
