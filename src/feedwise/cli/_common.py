"""Options and output helpers shared by every command."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from feedwise.errors import FeedwiseError

if TYPE_CHECKING:
    from feedwise.store import EventStore

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


class Format(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


DbOption = Annotated[str | None, typer.Option("--db", envvar="FEEDWISE_DB",
                                              help="DuckDB file of the store "
                                                   "(default: ./feedwise.duckdb).")]
FormatOption = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]


def open_store(db: str | None) -> EventStore:
    """The store; user ids are pseudonymised when ``FEEDWISE_PSEUDONYM_KEY`` is set.

    A pseudonymised store opened without its key serves reads that need no user id, and
    every command that writes user data or looks a user up fails with a ConfigError naming
    the variable (exit 2); with another key it does not open (docs/privacy.md)."""
    from feedwise.privacy import PrivacySettings
    from feedwise.store import EventStore

    return EventStore(db, pseudonymizer=PrivacySettings().pseudonymizer())


def emit(rows: pd.DataFrame | list[dict], fmt: Format, title: str | None = None) -> None:
    """Print rows as a Rich table or as JSON / JSON Lines / CSV for scripts."""
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    if fmt == Format.json:
        sys.stdout.write(df.to_json(orient="records", date_format="iso", indent=2) + "\n")
    elif fmt == Format.jsonl:
        emit_jsonl(df.to_dict(orient="records"))
    elif fmt == Format.csv:
        sys.stdout.write(df.to_csv(index=False))
    else:
        table = Table(title=title)
        for c in df.columns:
            table.add_column(str(c), justify="right" if pd.api.types.is_numeric_dtype(df[c])
                             else "left")
        for row in df.itertuples(index=False):
            table.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row])
        console.print(table)


def emit_jsonl(records: Iterable[dict]) -> None:
    for r in records:
        sys.stdout.write(json.dumps(r, default=str) + "\n")


def fail(err: Exception) -> typer.Exit:
    """Print an error as one line (no traceback) and return the exit to raise: code 2 for
    a :class:`FeedwiseError`, 1 for anything else."""
    err_console.print(f"[bold red]error:[/] {err}")
    return typer.Exit(code=2 if isinstance(err, FeedwiseError) else 1)


class CommandGroup(TyperGroup):
    """The ``feedwise`` group: a :class:`FeedwiseError` raised by any command or subcommand
    ends the run through :func:`fail`, so commands raise errors and never catch them."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except FeedwiseError as e:
            raise fail(e) from None


def fails_on(*errors: type[Exception]) -> Callable[[F], F]:
    """Decorator of a command whose lower layers report bad input as ``errors`` (e.g.
    ``ValueError``): those end it through :func:`fail` too, as FeedwiseErrors do."""

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except errors as e:
                raise fail(e) from None

        return run  # type: ignore[return-value]

    return decorate
