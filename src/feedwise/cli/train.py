"""``feedwise train`` and ``feedwise evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from feedwise.cli._common import DbOption, Format, FormatOption, console, emit, fail, open_store
from feedwise.errors import FeedwiseError

ModelOption = Annotated[str, typer.Option("--model", "-m", help="Model name, e.g. itemknn.")]
ParamsOption = Annotated[str | None, typer.Option(
    "--params", help='Hyperparameters as JSON, e.g. \'{"k": 100}\'.')]


def model_dir(name: str) -> Path:
    """Default artifact folder of a model trained by the CLI."""
    return Path("models") / name


def build(name: str, params: str | None):
    from feedwise.models import get_model

    return get_model(name, **(json.loads(params) if params else {}))


def register(app: typer.Typer) -> None:
    @app.command()
    def train(model: ModelOption = "itemknn", params: ParamsOption = None,
              out: Annotated[Path | None, typer.Option(
                  help="Artifact folder (default: models/MODEL).")] = None,
              db: DbOption = None) -> None:
        """Train a model on every event in the store and write its artifact (npz + JSON)."""
        try:
            estimator = build(model, params)
            with open_store(db) as store, console.status(f"training {model}"):
                data = store.interactions()
                m = estimator.fit(data)
                path = m.save(out or model_dir(model))
        except FeedwiseError as e:
            raise fail(e) from None
        console.print(f"trained {m!r} on {data.n_users} users x {data.n_items} items "
                      f"({data.nnz} pairs) -> {path}")

    @app.command()
    def evaluate(model: ModelOption = "itemknn", params: ParamsOption = None,
                 split: Annotated[str, typer.Option(
                     help="temporal | random | last-n")] = "temporal",
                 k: Annotated[int, typer.Option(help="List length.")] = 10,
                 seed: Annotated[int, typer.Option(help="Seed of the random split.")] = 42,
                 db: DbOption = None, fmt: FormatOption = Format.table) -> None:
        """Train on the split's train part and report ranking metrics on its test part."""
        from feedwise.evaluation import evaluate as run
        from feedwise.evaluation import last_n_split, random_split, temporal_split

        splitters = {"temporal": temporal_split, "random": lambda d: random_split(d, seed=seed),
                     "last-n": last_n_split}
        if split not in splitters:
            raise fail(FeedwiseError(f"unknown split {split!r}; use {sorted(splitters)}"))
        try:
            estimator = build(model, params)
            with open_store(db) as store:
                s = splitters[split](store.interactions())
            table = run(estimator, s, k)
        except FeedwiseError as e:
            raise fail(e) from None
        emit(table, fmt, title=f"{model} on {s.name} split, k={k}")
