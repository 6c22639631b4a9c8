"""``feedwise tune MODEL``: hyperparameter search on a validation split of the training data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from feedwise.cli._common import DbOption, Format, FormatOption, console, emit, open_store
from feedwise.errors import ConfigError


def tune(
    model: Annotated[str, typer.Argument(help="Model name, e.g. ease, als, bpr.")],
    trials: Annotated[int, typer.Option(help="Most configurations to try.")] = 20,
    metric: Annotated[str, typer.Option(help="ndcg | map | precision | recall | "
                                             "hit_rate | mrr")] = "ndcg",
    k: Annotated[int, typer.Option(help="List length of the metric.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the splits and the search.")] = 42,
    splits: Annotated[int, typer.Option(
        min=1, help="Validation splits each configuration is scored on (mean).")] = 3,
    validation_ratio: Annotated[float, typer.Option(
        help="Share of each user's training items the candidates are fitted on.")] = 0.9,
    strategy: Annotated[str, typer.Option(
        help="coordinate (ascent from the model's defaults) or random (grid sample).")
    ] = "coordinate",
    space: Annotated[str | None, typer.Option(
        help='Search space as JSON, e.g. \'{"l2": [100, 500]}\' (default: built-in).')
    ] = None,
    holdout: Annotated[float | None, typer.Option(
        help="First hold out this share of each user's items as a test split; tune on "
             "the rest only and report the best configuration's test score.")] = None,
    dataset: Annotated[str | None, typer.Option(
        help="Tune on a public dataset (e.g. movielens-100k) instead of the store.")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder of the datasets.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Where to write the best configuration (default: tuning/MODEL.json).")
    ] = None,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Search MODEL's hyperparameters on validation splits carved from training data.

    Each validation split is a per-user random split of the training interactions
    (``--validation-ratio`` of each user's items to fit, the rest to score; ``--splits``
    of them, averaged); the test split (``--holdout``) is never used to choose. Saves
    the best configuration as JSON (``best_params`` are ``feedwise train --params``).

    Example: feedwise tune ease --trials 20 --metric ndcg
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    import feedwise.models  # noqa: F401 - registers every model
    from feedwise.evaluation import evaluate, random_split
    from feedwise.models import get_model
    from feedwise.models.base import side_data
    from feedwise.selection import tune as search

    try:
        grid = json.loads(space) if space else None
    except json.JSONDecodeError as e:
        raise ConfigError(f"--space is not valid JSON ({e.msg} at char {e.pos}); "
                          'write it like \'{"l2": [100, 500]}\'') from None
    fit_kwargs = {}
    if dataset:
        from feedwise.datasets import load

        ds = load(dataset, data_dir=data_dir)
        data = ds.interactions()
        fit_kwargs = side_data(get_model(model), items=ds.items, edges=ds.edges)
    else:
        with open_store(db) as store:
            data = store.interactions()
            items = store.posts()
        fit_kwargs = side_data(get_model(model), items=items)
    test = None
    if holdout is not None:
        if not 0 < holdout < 1:
            raise ConfigError(f"--holdout must be in (0, 1), got {holdout}")
        split = random_split(data, 1 - holdout, seed=seed)
        data, test = split.train, split
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  transient=True) as bar:
        task = bar.add_task(f"tuning {model}", total=None)
        best = {"score": float("-inf")}

        def step(done: int, total: int, trial) -> None:
            best["score"] = max(best["score"], trial.score)
            bar.update(task, completed=done, total=total,
                       description=f"tuning {model} (best so far "
                                   f"{metric}@{k}={best['score']:.4f})")

        result = search(model, data, space=grid, n_trials=trials, metric=metric, k=k,
                        validation_ratio=validation_ratio, n_splits=splits,
                        strategy=strategy, seed=seed, fit_kwargs=fit_kwargs,
                        progress=step)
    path = result.save(out or Path("tuning") / f"{model}.json")
    rows = [{"rank": r + 1, **t.params, metric: t.score, "fit_s": t.fit_seconds}
            for r, t in enumerate(sorted(result.trials, key=lambda t: -t.score))]
    emit(rows, fmt, title=f"{model}: {metric}@{k}, mean of {splits} validation "
                          "split(s) of train")
    if test is not None:
        est = get_model(model, **result.best_params)
        est.fit(test.train, **fit_kwargs)
        table = evaluate(est, test, k, fit=False, metrics=(metric,), beyond=False)
        value = float(table.loc[table["metric"] == metric, "value"].iloc[0])
        console.print(f"held-out test {metric}@{k} of the best configuration: "
                      f"{value:.4f}", style="bold")
    if fmt == Format.table:
        console.print(f"best {result.best_params} ({metric}@{k}={result.best_score:.4f})"
                      f" -> {path}")


def register(app: typer.Typer) -> None:
    app.command()(tune)
