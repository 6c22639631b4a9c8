"""Options and output helpers shared by every command."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from feedwise.errors import FeedwiseError

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


def open_store(db: str | None):
    """The store; user ids are pseudonymised when ``FEEDWISE_PSEUDONYM_KEY`` is set."""
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
    """Print a feedwise error cleanly (no traceback) and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {err}")
    return typer.Exit(code=2 if isinstance(err, FeedwiseError) else 1)
