"""``feedwise datasets``: list, fetch and generate datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from feedwise.cli._common import DbOption, Format, FormatOption, console, emit, open_store
from feedwise.errors import DataError

datasets_app = typer.Typer(no_args_is_help=True, help="Public datasets (MovieLens, Last.fm, "
                           "FilmTrust) and the synthetic social-feed generator.")


@datasets_app.command("list")
def list_(fmt: FormatOption = Format.table) -> None:
    """List the datasets `fetch` knows, with their source and whether they are cached.

    Example: feedwise datasets list
    """
    from feedwise.datasets import DATASETS
    from feedwise.datasets.loaders import SPECS, data_home

    rows = [{"name": name, "description": desc, "source": SPECS[name].url,
             "cached": all((data_home() / SPECS[name].folder / f).is_file()
                           for f in SPECS[name].files)}
            for name, desc in DATASETS.items()]
    emit(rows, fmt, title=f"datasets (cache: {data_home()})")


@datasets_app.command()
def fetch(
    name: Annotated[str, typer.Argument(help="Dataset name (see `feedwise datasets list`).")],
    data_dir: Annotated[str | None, typer.Option(
        "--data-dir", envvar="FEEDWISE_DATASETS_DIR",
        help="Local folder holding the unpacked datasets (no download); checksums are "
             "still verified.")] = None,
    ingest: Annotated[bool, typer.Option(
        "--ingest", help="Also load the items and events into the store (--db).")] = False,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Download (or find), verify and read a dataset; print where it landed and its counts.

    Example: feedwise datasets fetch movielens-100k --ingest
    """
    from feedwise.datasets import load

    ds = load(name, data_dir=data_dir)
    row = {"dataset": ds.name, "path": str(ds.path), **ds.counts()}
    if ingest:
        with open_store(db) as store:
            rep = ds.load_into(store)
            row.update({"db": store.path, "accepted": rep.accepted,
                        "duplicates": rep.duplicates, "rejected": rep.rejected})
    if fmt == Format.table:
        console.print(f"[bold]{ds.name}[/] verified in {ds.path}")
        if ds.meta.get("ts_note"):
            console.print(f"note: {ds.meta['ts_note']}")
    emit([row], fmt, title=name)


@datasets_app.command()
def synthetic(
    users: Annotated[int, typer.Option(help="Users.")] = 2000,
    authors: Annotated[int, typer.Option(help="Authors.")] = 200,
    posts: Annotated[int, typer.Option(help="Organic posts.")] = 5000,
    days: Annotated[int, typer.Option(help="Days of activity.")] = 14,
    topics: Annotated[int, typer.Option(help="Latent topics.")] = 12,
    campaigns: Annotated[int, typer.Option(help="Ad campaigns.")] = 10,
    feed_len: Annotated[int, typer.Option(help="Slots per feed.")] = 20,
    sessions_per_day: Annotated[float, typer.Option(help="Mean sessions per user-day.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the generator.")] = 0,
    parquet: Annotated[Path | None, typer.Option(
        help="Also write events/items/users/campaigns as Parquet files into this folder.")]
    = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Do not load into the store.")]
    = False,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Generate a synthetic social-feed log and load it into the store (and/or Parquet).

    Example: feedwise datasets synthetic --users 1000 --days 30 --seed 7
    """
    from rich.progress import Progress

    from feedwise.datasets import synthetic_social

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("generating", total=None)
        world = synthetic_social(n_users=users, n_authors=authors, n_posts=posts,
                                 n_days=days, n_topics=topics, n_campaigns=campaigns,
                                 feed_len=feed_len, sessions_per_day=sessions_per_day,
                                 seed=seed)
        row: dict = {"world": world.name, "events": len(world.events),
                     "users": len(world.users), "items": len(world.items),
                     "campaigns": len(world.campaigns)}
        if parquet is not None:
            bar.update(task, description="writing parquet")
            try:
                parquet.mkdir(parents=True, exist_ok=True)
                for part in ("events", "items", "users", "campaigns"):
                    getattr(world, part).to_parquet(parquet / f"{part}.parquet",
                                                    index=False)
            except OSError as e:
                raise DataError(f"{parquet}: cannot write the Parquet files there ({e}); "
                                "--parquet takes a folder (created if missing)") from None
            row["parquet"] = str(parquet)
        if not no_store:
            bar.update(task, description="loading into the store")
            with open_store(db) as store:
                out = world.load_into(store)
                row.update({"db": store.path, "accepted": out["events"],
                            "duplicates": out["duplicates"], "rejected": out["rejected"]})
    emit([row], fmt, title="synthetic social feed")


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
