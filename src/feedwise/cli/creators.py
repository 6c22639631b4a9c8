"""``feedwise creators``: creators ranked by influence (predicted reshares per post), with
reach, engagement, follower growth and, for a segment, who to partner with; ``--cascades``
lists the most viral posts and how they spread."""

from __future__ import annotations

from typing import Annotated

import typer

from feedwise.cli._common import (
    DbOption,
    Format,
    FormatOption,
    emit,
    err_console,
    fails_on,
    open_store,
)
from feedwise.cli._insight import FromOption, KOption, ToOption, parse_window, resolve_window


@fails_on(ValueError)
def creators(
    segment: Annotated[str | None, typer.Option(
        "--segment", help="Rank the creators to partner with for this user_profiles "
                          "segment (run `feedwise profiles` first).")] = None,
    cascades: Annotated[bool, typer.Option(
        "--cascades", help="List the most viral posts (reshare cascades) instead.")] = False,
    top: Annotated[int, typer.Option("--top", "-n", min=1, help="Rows to show.")] = 20,
    start: FromOption = None,
    end: ToOption = None,
    k: KOption = 10,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Creators by influence score: the reshares per post their next posts are predicted to
    get, fit on the first half of the window (its measures) and the second (its reshares),
    applied to the second. Without --from the window starts at the first share (at most
    28 days before --to). Authors engaged by fewer than k users are not listed; users
    without analytics consent are left out.

    Examples:

        feedwise creators --from 2025-01-06 --to 2025-01-20

        feedwise creators --segment S1 --top 10

        feedwise creators --cascades --format json

    Example: feedwise creators --segment S1 --top 10
    """
    import pandas as pd

    from feedwise.report.graph import creators_to_partner, top_creators, viral_posts

    t_from, t_to = parse_window(start, end)
    with open_store(db) as store:
        t_start, t_end = resolve_window(store, t_from, t_to)
        if t_from is None:  # no earlier than the first share: both halves hold data
            first = store.share_events(t_start, t_end)["ts"].min()
            if pd.notna(first):
                t_start = max(t_start, pd.Timestamp(first).floor("D").to_pydatetime())
        if cascades:
            err_console.print("reconstructing reshare cascades...")
            emit(viral_posts(store, t_start, t_end, k=k, top_n=top), fmt,
                 title="most viral posts")
            return
        err_console.print("measuring authors and fitting the influence score "
                          "(two half windows)...")
        if segment is not None:
            df = creators_to_partner(store, t_start, t_end, segment, k=k, top_n=top)
            emit(df, fmt, title=f"creators to partner with for segment {segment}")
        else:
            emit(top_creators(store, t_start, t_end, k=k, top_n=top), fmt,
                 title="creators by influence")


def register(app: typer.Typer) -> None:
    app.command("creators")(creators)
