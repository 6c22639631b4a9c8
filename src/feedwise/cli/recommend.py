"""``feedwise recommend USER`` / ``--all``: top-n items with reasons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
from feedwise.cli.train import DEFAULT_MODEL, data_end, say_choice
from feedwise.errors import FeedwiseError

if TYPE_CHECKING:
    from feedwise.store import EventStore


def load_or_train(name: str | None, db: str | None, path: Path | None = None,
                  memory_budget: str | None = None, registry: str | None = None):
    """The model to serve from the store's deployment (never ``./models`` of the working
    directory): with ``path``, the artifact there (trained and saved if absent); else the
    registry's (``registry``, default the deployment's ``<store>.models``) promoted version
    when it is a ``name`` model (or ``name`` is not given), else its newest ``name``
    version, else one trained now and registered. A version trained on another store is
    refused (``ConfigError``, :meth:`ModelRegistry.check_store`); ``memory_budget`` (e.g.
    ``"2GiB"``) bounds its working blocks in fit and recommend."""
    from feedwise.deployment import Deployment
    from feedwise.models import Recommender, get_model
    from feedwise.models.memory import parse_bytes
    from feedwise.registry import ModelRegistry
    from feedwise.store.base import default_db_path

    budget = None if memory_budget is None else parse_bytes(memory_budget,
                                                            source="--memory-budget")
    db_path = db if db is not None else default_db_path()
    if path is not None and (path / "model.json").exists():
        if (path / "meta.json").exists():  # a registry version folder: tied to its store
            from feedwise.registry import ModelVersion

            with open_store(db) as store:
                ModelRegistry(path.parent.parent, store_id=store.store_id(), db=db_path
                              ).check_store(ModelVersion.model_validate_json(
                                  (path / "meta.json").read_text()))
        model = Recommender.load(path)
        model.memory_budget = budget
        return model
    with open_store(db) as store:  # a read: a missing store is an error, not an empty one
        store_id = store.store_id()
        if path is not None:
            err_console.print(f"no trained {name or DEFAULT_MODEL} at {path}: training one "
                              "now")
            model = get_model(name or DEFAULT_MODEL)
            model.memory_budget = budget
            _fit(model, store)
            model.save(path)
            return model
        reg = ModelRegistry(registry or Deployment.for_store(db_path).registry_dir,
                            store_id=store_id, db=db_path)
        meta = pick_version(reg, name)
        if meta is not None:
            model = reg.load(meta.version)
            model.memory_budget = budget
            return model
        name = name or DEFAULT_MODEL
        err_console.print(f"no trained {name} in {reg.root}: training one now")
        model = get_model(name)
        model.memory_budget = budget
        _fit(model, store)
        meta = reg.register(model, notes="trained by feedwise recommend/feed")
        err_console.print(f"registered {meta.version} in {reg.root}")
    return model


def _fit(model, store: EventStore) -> None:  # noqa: ANN001 - a Recommender
    """Fit ``model`` on the store's training view with the side data it reads (posts,
    the graph standing at the data's end), as ``feedwise train`` does; say what ``auto``
    picked."""
    from feedwise.models.base import side_data

    data = store.interactions()
    model.fit(data, **side_data(model, items=store.posts(),
                                edges=store.edges_as_of(data_end(data),
                                                        exclude_objectors=True)))
    say_choice(model, err_console)


def pick_version(reg, name: str | None):  # noqa: ANN001, ANN201 - registry -> meta | None
    """The promoted version if it is a ``name`` model (or no name), else the newest
    ``name`` version (newest of any model without a name); ``None`` if there is none."""
    promoted = reg.promoted()
    if promoted is not None and promoted.retired_at is None and name in (None,
                                                                          promoted.model):
        return promoted
    live = [v for v in reg.versions() if v.retired_at is None
            and (name is None or v.model == name)]
    return live[-1] if live else None


def recommend(
    user: Annotated[str | None, typer.Argument(help="User id.")] = None,
    n: Annotated[int, typer.Option("-n", help="Number of items.")] = 10,
    all_users: Annotated[bool, typer.Option("--all", help="Every user, streamed.")] = False,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="Model name, e.g. itemknn (default: the promoted model of "
                              "the store's registry, else a new auto model: the blend for a fresh "
                              "feed or a static catalogue, picked from the data).")] = None,
    model_path: Annotated[Path | None, typer.Option(help="Artifact folder.")] = None,
    registry: Annotated[str | None, typer.Option(
        "--registry", envvar="FEEDWISE_REGISTRY",
        help="Model registry (default: the store's, STORE.models beside it).")] = None,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
    memory_budget: Annotated[str | None, typer.Option(
        help="Working memory of one scoring block, e.g. 2GiB (default: "
             "$FEEDWISE_MEMORY_BUDGET, else 1GiB).")] = None,
) -> None:
    """Recommend items to one user, or to every user (``--all``, streamed), with the
    promoted model of the store's registry (a model of another store is refused).

    Example: `feedwise recommend u1 -n 5 --db deploy/feedwise.duckdb`
    """
    if (user is None) == (not all_users):
        raise FeedwiseError("give one USER or --all")
    m = load_or_train(model, db, model_path, memory_budget, registry)
    if not all_users:
        (items,) = m.recommend([user], n)
        emit([{"user_id": user, **r} for r in items.to_records()], fmt,
             title=f"{m.name} for {user}")
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
