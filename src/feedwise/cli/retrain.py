"""``feedwise retrain``: the closed loop (train on new events, evaluate, promote or keep)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from feedwise.cli._common import (
    DbOption,
    Format,
    FormatOption,
    console,
    emit,
    fails_on,
    open_store,
)
from feedwise.cli._insight import parse_when
from feedwise.cli.registry import RegistryOption
from feedwise.cli.train import parse_params


@fails_on(ValueError)
def retrain(model: Annotated[str, typer.Option("--model", "-m", help="Model name.")
                             ] = "itemknn",
            params: Annotated[str | None, typer.Option(
                help='Hyperparameters as JSON, e.g. \'{"k": 100}\'.')] = None,
            window_days: Annotated[float | None, typer.Option(
                help="Train on the last N days only (default: all history).")] = None,
            test_fraction: Annotated[float, typer.Option(
                help="Newest share of pairs held out for the decision.")] = 0.2,
            k: Annotated[int, typer.Option(help="NDCG@k.")] = 10,
            tolerance: Annotated[float, typer.Option(
                help="Largest NDCG@k drop vs the promoted version still promoted.")
            ] = 0.01,
            min_new_events: Annotated[int, typer.Option(
                help="Skip when fewer events arrived since the last window.")] = 1,
            now: Annotated[str | None, typer.Option(
                help="End of the window, ISO-8601 (default: now, UTC).")] = None,
            registry: RegistryOption = "registry", db: DbOption = None,
            fmt: FormatOption = Format.table) -> None:
    """Retrain on the newest window, evaluate on its newest slice, promote if NDCG@k
    does not drop more than --tolerance; the decision is recorded in the registry."""
    from feedwise.registry import ModelRegistry
    from feedwise.server.retrain import RetrainConfig
    from feedwise.server.retrain import retrain as run

    cfg = RetrainConfig(model=model, params=parse_params(params),
                        window_days=window_days, test_fraction=test_fraction, k=k,
                        tolerance=tolerance, min_new_events=min_new_events)
    at = parse_when(now, "--now") if now else datetime.now(UTC)
    with open_store(db) as store, console.status("retraining"):
        d = run(store, ModelRegistry(registry), cfg, at)
    row = d.model_dump(mode="json")
    row.pop("window")
    emit([row], fmt, title=f"retrain: {d.action}")


def register(app: typer.Typer) -> None:
    app.command()(retrain)
