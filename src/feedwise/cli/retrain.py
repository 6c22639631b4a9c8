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
from feedwise.cli.train import DEFAULT_MODEL, parse_params, say_choice


@fails_on(ValueError)
def retrain(model: Annotated[str, typer.Option("--model", "-m", help="Model name.")
                             ] = DEFAULT_MODEL,
            params: Annotated[str | None, typer.Option(
                help='Hyperparameters as JSON, e.g. \'{"k": 100}\'.')] = None,
            window_days: Annotated[float | None, typer.Option(
                help="Train on the last N days only (default: all history).")] = None,
            test_fraction: Annotated[float, typer.Option(
                help="Newest share of pairs held out for the decision.")] = 0.2,
            k: Annotated[int, typer.Option(help="NDCG@k.")] = 10,
            tolerance: Annotated[float, typer.Option(
                help="Largest relative NDCG@k drop vs the promoted version still promoted "
                     "(0.05: down to 95 % of its NDCG@k on the same newest slice).")
            ] = 0.05,
            beat_popularity: Annotated[bool, typer.Option(
                "--beat-popularity/--no-beat-popularity",
                help="The candidate must also score above popularity on that slice.")
            ] = True,
            min_new_events: Annotated[int, typer.Option(
                help="Skip when fewer events arrived since the last window.")] = 1,
            now: Annotated[str | None, typer.Option(
                help="End of the window, ISO-8601 (default: now, UTC).")] = None,
            promote: Annotated[bool, typer.Option(
                "--promote", help="Promote the candidate when the gate passes (the "
                "default; a running service on the store swaps to it at once).")] = True,
            registry: Annotated[str | None, typer.Option(
                "--registry", envvar="FEEDWISE_REGISTRY",
                help="Model registry (default: the store's, STORE.models beside it).")
            ] = None,
            db: DbOption = None,
            fmt: FormatOption = Format.table) -> None:
    """Retrain on the newest window, evaluate on its newest slice, promote if NDCG@k is
    within the relative --tolerance of the promoted version and above popularity there;
    the decision and its figures are recorded in the registry (`registry decisions`).

    Example: feedwise retrain --model itemknn --tolerance 0.05 --db deploy/feedwise.duckdb
    """
    from feedwise.cli._live import ask_reload
    from feedwise.deployment import Deployment
    from feedwise.registry import ModelRegistry
    from feedwise.server.retrain import RetrainConfig
    from feedwise.server.retrain import retrain as run
    from feedwise.store.base import default_db_path

    cfg = RetrainConfig(model=model, params=parse_params(params),
                        window_days=window_days, test_fraction=test_fraction, k=k,
                        tolerance=tolerance, beat_popularity=beat_popularity,
                        min_new_events=min_new_events)
    at = parse_when(now, "--now") if now else datetime.now(UTC)
    with open_store(db) as store, console.status("retraining"):
        reg = ModelRegistry(registry or Deployment.for_store(
            db or default_db_path()).registry_dir, store_id=store.store_id(), db=db)
        d = run(store, reg, cfg, at)
    if promote and d.action == "promote":
        ask_reload(db)  # a service on this store serves the new version now
    row = d.model_dump(mode="json")
    row.pop("window")
    emit([row], fmt, title=f"retrain: {d.action}")
    if fmt == Format.table and d.candidate_version:  # what auto picked, and why
        say_choice(reg.load(d.candidate_version))


def register(app: typer.Typer) -> None:
    app.command()(retrain)
