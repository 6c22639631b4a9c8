"""Options and output helpers shared by every command."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from feedwise.cli._live import open_for_command
from feedwise.errors import FeedwiseError

if TYPE_CHECKING:
    import pandas as pd

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
    the variable (exit 2); with another key it does not open (docs/privacy.md).

    One owner of the data (docs/service.md, "The CLI while the service runs"): a command
    that only reads (:func:`writes_store` is false) opens the store read-only and never
    takes the write lock; when a live ``feedwise serve`` holds the store (its deployment's
    state file, :class:`~feedwise.deployment.Deployment`), reads go to a snapshot the
    service makes, and a command that writes is sent to the service's admin API and run
    there (its output printed here, its exit code returned). A lock no server explains
    ends in one ``error:`` line naming what holds the store (exit 2)."""
    return open_for_command(db)


def emit(rows: pd.DataFrame | list[dict], fmt: Format, title: str | None = None) -> None:
    """Print rows as a Rich table or as JSON / JSON Lines / CSV for scripts.

    Whole numbers print as integers (``1961``, never ``1961.0000``), a missing figure as
    ``–`` in a table, empty in CSV and ``null`` in JSON (never ``nan``); JSON keeps ``/``
    as is. A table is never cut: on a terminal long cells fold onto more lines, and when
    stdout is no terminal (a pipe, a file) the table is as wide as its widest row."""
    import pandas as pd  # on use: `feedwise --help` loads no pandas

    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    if fmt in (Format.json, Format.jsonl, Format.csv):
        df = _whole_as_int(df)
    if fmt == Format.json:
        text = df.to_json(orient="records", date_format="iso", indent=2)
        # pandas writes "/" as "\/" (legal, unreadable): the backslash before a slash is
        # always that escape, so dropping it is exact
        sys.stdout.write(text.replace("\\/", "/") + "\n")
    elif fmt == Format.jsonl:
        emit_jsonl(df.to_dict(orient="records"))
    elif fmt == Format.csv:
        sys.stdout.write(df.to_csv(index=False))
    else:
        table = Table(title=title)
        for c in df.columns:
            table.add_column(str(c), justify="right" if pd.api.types.is_numeric_dtype(df[c])
                             else "left", overflow="fold")
        cells = [[_cell(v) for v in row] for row in df.itertuples(index=False)]
        for row in cells:
            table.add_row(*row)
        if console.is_terminal:
            console.print(table)
        else:
            widths = [max([len(str(c))] + [len(r[i]) for r in cells])
                      for i, c in enumerate(df.columns)]
            width = max(80, sum(w + 3 for w in widths) + 1, len(title or ""))
            Console(file=sys.stdout, width=width, soft_wrap=False).print(table)


def _cell(v: Any) -> str:
    """One table cell: integers as integers, a missing value as ``–``."""
    import pandas as pd  # on use: `feedwise --help` loads no pandas

    if v is None or v is pd.NaT or (isinstance(v, float) and v != v):
        return "–"
    try:
        if pd.isna(v) is True:
            return "–"
    except (TypeError, ValueError):
        pass
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        if v != 0 and abs(v) < 1e-3:
            return f"{v:.3g}"
        return f"{v:.4f}"
    return str(v)


def _whole_as_int(df: pd.DataFrame) -> pd.DataFrame:
    """Float columns whose values are whole numbers as integers (a column that mixes whole
    and fractional values keeps its fractions, its whole numbers become integers)."""
    import pandas as pd  # on use: `feedwise --help` loads no pandas

    out = None
    for c in df.columns:
        s = df[c]
        if not pd.api.types.is_float_dtype(s):
            continue
        ok = s.notna()
        whole = ok & (s % 1 == 0) & (s.abs() < 1e15)
        if not whole.any():
            continue
        out = df.copy() if out is None else out
        if whole[ok].all():
            out[c] = s.astype("Int64")
        else:
            out[c] = [int(x) if w else (None if x != x else x)
                      for x, w in zip(s.tolist(), whole.tolist(), strict=True)]
    return df if out is None else out


def emit_jsonl(records: Iterable[dict]) -> None:
    for r in records:
        sys.stdout.write(json.dumps({k: _plain(v) for k, v in r.items()}, default=str) + "\n")


def _plain(v: Any) -> Any:
    """A JSON value: NaN, NaT and NA as null, numpy scalars as Python numbers."""
    import pandas as pd  # on use: `feedwise --help` loads no pandas

    if v is None:
        return None
    if hasattr(v, "item") and not isinstance(v, list | dict | str):
        try:
            v = v.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(v, float) and (v != v):
        return None
    if v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


def fail(err: Exception) -> typer.Exit:
    """Print an error as one line (no traceback) and return the exit to raise: code 2 for
    a :class:`FeedwiseError`, 1 for anything else."""
    err_console.print(f"[bold red]error:[/] {err}")
    return typer.Exit(code=2 if isinstance(err, FeedwiseError) else 1)


class CommandGroup(TyperGroup):
    """The ``feedwise`` group: a :class:`FeedwiseError` raised by any command or subcommand
    ends the run through :func:`fail`, so commands raise errors and never catch them."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        # the command line as given: a write sent to a running service is run with it
        ctx.meta.setdefault("feedwise.argv", list(args))
        return super().parse_args(ctx, args)

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
