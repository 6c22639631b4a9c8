"""``feedwise ingest FILE``: validate and land events."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from feedwise.cli._common import DbOption, Format, FormatOption, emit, open_store

#: Rejects printed per file (the rest: ``rejects`` table).
SHOWN_REJECTS = 5
#: Ignored column names printed per file.
SHOWN_COLUMNS = 20


def ingest(
    files: Annotated[list[Path], typer.Argument(
        help="CSV, TSV, Parquet or JSONL files, each read literally (quote a name with *, ? "
             "or [ for the shell; it is no pattern).")],
    mapping: Annotated[str | None, typer.Option(
        help="field=column pairs (field==constant), or a preset: movielens-100k, "
             "movielens-latest.")] = None,
    columns: Annotated[str | None, typer.Option(
        help="Comma-separated column names for a headerless file.")] = None,
    delimiter: Annotated[str | None, typer.Option(help="Field delimiter.")] = None,
    ts_unit: Annotated[str, typer.Option(help="Unit of numeric timestamps: s, ms, us.")]
    = "s",
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Validate and land events; bad rows (and lines that are no rows) go to the rejects
    table with their reason; columns no event field reads are named."""
    rows = []
    with open_store(db) as store:
        for f in files:
            r = store.ingest(f, mapping=mapping, ts_unit=ts_unit, delimiter=delimiter,
                             columns=columns.split(",") if columns else None)
            rows.append({"source": r.source, "accepted": r.accepted,
                         "duplicates": r.duplicates, "rejected": r.rejected,
                         "erased_users_skipped": r.erased,
                         "ignored_columns": list(r.ignored_columns),
                         "seconds": round(r.seconds, 3)})
            if fmt != Format.table:
                continue
            if r.ignored_columns:
                names = ", ".join(r.ignored_columns[:SHOWN_COLUMNS])
                more = len(r.ignored_columns) - SHOWN_COLUMNS
                typer.echo(f"  note: {r.source}: ignored column(s) {names}"
                           f"{f' and {more} more' if more > 0 else ''}: no event field reads "
                           "them (map one with --mapping field=column)", err=True)
            if r.rejected:
                bad = store.rejects(r.source).head(SHOWN_REJECTS)
                for b in bad.itertuples():
                    typer.echo(f"  rejected {r.source} row {b.row} [{b.field}]: "
                               f"{b.reason}", err=True)
    if fmt == Format.table:
        for row in rows:  # the table shows how many; the note above which
            row["ignored_columns"] = len(row["ignored_columns"])
    emit(rows, fmt, title="ingest")


def register(app: typer.Typer) -> None:
    app.command()(ingest)
