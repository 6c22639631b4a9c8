"""``feedwise recommend USER`` / ``--all``: top-n items with reasons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from feedwise.cli._common import (
    DbOption,
    Format,
    FormatOption,
    emit,
    emit_jsonl,
    err_console,
    open_store,
)
from feedwise.cli.train import ModelOption, model_dir
from feedwise.errors import FeedwiseError


def load_or_train(name: str, db: str | None, path: Path | None = None,
                  memory_budget: str | None = None):
    """The model saved at ``path`` (default models/NAME), trained and saved if absent;
    ``memory_budget`` (e.g. ``"2GiB"``) bounds its working blocks in fit and recommend."""
    from feedwise.models import Recommender, get_model
    from feedwise.models.memory import parse_bytes

    budget = None if memory_budget is None else parse_bytes(memory_budget,
                                                            source="--memory-budget")
    path = path or model_dir(name)
    if (path / "model.json").exists():
        model = Recommender.load(path)
        model.memory_budget = budget
        return model
    err_console.print(f"no trained {name} at {path}: training one now")
    model = get_model(name)
    model.memory_budget = budget
    with open_store(db) as store:
        model.fit(store.interactions())
    model.save(path)
    return model


def recommend(
    user: Annotated[str | None, typer.Argument(help="User id.")] = None,
    n: Annotated[int, typer.Option("-n", help="Number of items.")] = 10,
    all_users: Annotated[bool, typer.Option("--all", help="Every user, streamed.")] = False,
    model: ModelOption = "itemknn",
    model_path: Annotated[Path | None, typer.Option(help="Artifact folder.")] = None,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
    memory_budget: Annotated[str | None, typer.Option(
        help="Working memory of one scoring block, e.g. 2GiB (default: "
             "$FEEDWISE_MEMORY_BUDGET, else 1GiB).")] = None,
) -> None:
    """Recommend items to one user, or to every user (``--all``, streamed)."""
    if (user is None) == (not all_users):
        raise FeedwiseError("give one USER or --all")
    m = load_or_train(model, db, model_path, memory_budget)
    if not all_users:
        (items,) = m.recommend([user], n)
        emit([{"user_id": user, **r} for r in items.to_records()], fmt,
             title=f"{model} for {user}")
        return
    users = list(m.user_ids_)
    stream = Format.jsonl if fmt == Format.table else fmt
    first = True
    if stream == Format.csv:
        typer.echo("user_id,rank,item_id,score,reason")
    elif stream == Format.json:
        typer.echo("[")
    for start in range(0, len(users), 1024):
        batch = users[start:start + 1024]
        rows = [{"user_id": u, **r} for u, il in zip(batch, m.recommend(batch, n),
                                                     strict=True)
                for r in il.to_records()]
        if stream == Format.csv:
            typer.echo("\n".join(",".join(_csv(v) for v in r.values()) for r in rows))
        elif stream == Format.json:
            typer.echo(("" if first else ",\n") + ",\n".join(json.dumps(r)
                                                             for r in rows))
        else:
            emit_jsonl(rows)
        first = False
    if stream == Format.json:
        typer.echo("]")


def _csv(v: object) -> str:
    s = str(v)
    return '"' + s.replace('"', '""') + '"' if any(c in s for c in ',"\n') else s


def register(app: typer.Typer) -> None:
    app.command()(recommend)
