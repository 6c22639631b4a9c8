"""``feedwise friends USER``: people the user may know (graph proximity and taste)."""

from __future__ import annotations

from typing import Annotated

import typer

from feedwise.cli._common import DbOption, Format, FormatOption, emit, err_console, open_store


def friends(
    user: Annotated[str, typer.Argument(help="The user's id (as ingested).")],
    n: Annotated[int, typer.Option("-n", min=1, help="Suggestions to show.")] = 10,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Suggest people USER may know: common connections (Adamic-Adar, resource
    allocation, paths), shared taste and co-engagement, blended by a logistic regression
    learned on edges held out from the stored graph. Never someone USER already follows,
    befriends or trusts, nor anyone blocked either way; nothing for a user who withdrew
    personalisation consent.

    Example: feedwise friends 2 -n 5 --db lastfm.duckdb
    """
    from feedwise.graph.pymk import suggest_from_store

    with open_store(db) as store, err_console.status("learning from the social graph"):
        df, note = suggest_from_store(store, user, n)
    if note:
        err_console.print(f"note: {note}")
    emit(df.drop(columns=["user_id"]), fmt, title=f"people {user} may know")


def register(app: typer.Typer) -> None:
    app.command("friends")(friends)
