"""``feedwise demo``: the whole spine end to end on the embedded store."""

from __future__ import annotations

import time
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.progress import Progress

from feedwise.cli._common import DbOption, Format, console, emit, open_store


def demo(
    dataset: Annotated[str, typer.Option(
        help="synthetic (generated social feed log) or movielens-100k.")] = "synthetic",
    data_dir: Annotated[str | None, typer.Option(
        help="Local folder holding the public datasets (skips the download).")] = None,
    users: Annotated[int, typer.Option(help="Synthetic users.")] = 2000,
    days: Annotated[int, typer.Option(help="Synthetic days of activity.")] = 14,
    seed: Annotated[int, typer.Option(help="Seed of the generator.")] = 0,
    reset: Annotated[bool, typer.Option(
        help="Empty the store first (it may hold another data set).")] = False,
    db: DbOption = None,
) -> None:
    """Generate (or load) data, ingest it, train Popularity and ItemKNN, evaluate on a
    temporal split, and show sample recommendations with reasons.

    Example: feedwise demo --dataset synthetic --users 500 --days 14
    """
    from feedwise.evaluation import evaluate, temporal_split
    from feedwise.models import ItemKNN, Popularity

    with open_store(db) as store, Progress(console=console, transient=True) as bar:
        task = bar.add_task("loading data", total=4)
        if reset:
            store.reset()
        elif store.count_events():
            console.print(f"[yellow]note:[/] {store.path} already holds "
                          f"{store.count_events():,} events; they are evaluated too "
                          "(use --reset for a clean run)")
        t0 = time.perf_counter()
        if dataset == "synthetic":
            from feedwise.datasets import synthetic_social

            world = synthetic_social(n_users=users, n_days=days, seed=seed)
            reports = world.load_into(store)
            what = f"synthetic social feed: {len(world.events):,} events"
        else:
            from feedwise.datasets import load

            ds = load(dataset, data_dir=data_dir)
            reports = ds.load_into(store)
            what = f"{dataset}: {len(ds.events):,} events"
        bar.advance(task)
        bar.update(task, description="building interactions")
        data = store.interactions()
        split = temporal_split(data, test_fraction=0.2)
        bar.advance(task)
        tables = []
        for model in (Popularity(half_life_days=3.0), ItemKNN(k=100)):
            bar.update(task, description=f"training and evaluating {model.name}")
            tables.append(evaluate(model, split, k=10, beyond=True))
            bar.advance(task)
        last = model
    console.print(f"[bold]feedwise demo[/] — {what} into {store.path} "
                  f"({time.perf_counter() - t0:.1f} s)")
    rep = reports.get("report") if isinstance(reports, dict) else reports
    if rep is not None:
        console.print(f"ingested {rep.accepted:,} events ({rep.duplicates:,} duplicates, "
                      f"{rep.rejected:,} rejected) in {rep.seconds:.1f} s")
    console.print(f"interactions: {data.n_users:,} users x {data.n_items:,} items, "
                  f"{data.nnz:,} pairs; temporal split: {split.train.nnz:,} train / "
                  f"{split.test.nnz:,} test pairs")
    table = pd.concat(tables).pivot(index="metric", columns="model", values="value")
    order = ["precision", "recall", "map", "ndcg", "hit_rate", "mrr", "coverage", "novelty",
             "fit_seconds", "recommend_seconds", "users"]
    emit(table.loc[order].reset_index(), Format.table,
         title="temporal split, k=10 (test = the newest 20% of user-item pairs)")
    known = np.asarray((split.train.matrix > 0).sum(axis=0)).ravel() > 0
    fresh = 1.0 - float(known[split.test.matrix.tocoo().col].mean())
    console.print(f"{fresh:.0%} of the test engagements are on items nobody engaged with "
                  "before the cut (fresh posts): collaborative filtering cannot rank those, "
                  "which bounds these scores; content and hybrid models address it.")
    sample = [u for u in split.test.user_ids[:50] if last.knows_user(u)][:3]
    for u, items in zip(sample, last.recommend(sample, 5), strict=True):
        console.print(f"[bold]{u}[/]")
        for r in items.to_records():
            console.print(f"  {r['rank']}. {r['item_id']}  ({r['reason']})")


def register(app: typer.Typer) -> None:
    app.command()(demo)
