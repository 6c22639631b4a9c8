"""``feedwise answers``: the knowledge base of answers (add from CSV/YAML, list a version).

Examples::

    feedwise answers add faq.yaml
    feedwise answers list --format json
    feedwise answers list --version 1
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from feedwise.cli._common import DbOption, Format, FormatOption, emit, err_console, open_store

answers_app = typer.Typer(help="The knowledge base of answers (FAQ entries), versioned.",
                          no_args_is_help=True)


@answers_app.command("add")
def add(
    file: Annotated[Path, typer.Argument(help="FAQ entries: CSV (answer_id, question, answer"
                                         "[, intent, tags, language]) or YAML.")],
    db: DbOption = None,
) -> None:
    """Add (or replace, by answer_id) FAQ entries as a new version of the knowledge base.

    Bad rows are reported (file, row, field) and left out; the good ones are added.
    Example: feedwise answers add faq.yaml
    """
    from feedwise.care.knowledge import load_answers

    loaded = load_answers(file)
    for p in loaded.problems:
        err_console.print(p)
    with open_store(db) as store:
        if loaded.entries.empty:
            err_console.print(f"{file}: no valid entry; nothing added")
            raise typer.Exit(2)
        version = store.add_answers(loaded.entries, now=datetime.now(UTC))
    err_console.print(f"added {len(loaded.entries):,} answers as version {version}"
                      + (f" ({len(loaded.problems)} rows left out)" if loaded.problems else ""))


@answers_app.command("list")
def list_answers(
    version: Annotated[int | None, typer.Option("--version", help="Knowledge-base version "
                                                "(default: the latest).")] = None,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """The knowledge base as of a version. Example: feedwise answers list --format json"""
    with open_store(db) as store:
        df = store.answers(version)
    df = df.assign(questions=df["questions"].map(lambda q: " | ".join(q)),
                   tags=df["tags"].map(lambda t: ", ".join(t)))
    if fmt == Format.table:
        df = df.drop(columns=["added_at"])
    emit(df, fmt, title="answers")


def register(app: typer.Typer) -> None:
    app.add_typer(answers_app, name="answers")
