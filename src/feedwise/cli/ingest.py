"""``feedwise ingest FILE``: validate and land events."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from feedwise.cli._common import DbOption, Format, FormatOption, emit, open_store


def ingest(
    files: Annotated[list[Path], typer.Argument(help="CSV, TSV, Parquet or JSONL files.")],
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
    """Validate and land events; bad rows go to the rejects table with their reason."""
    rows = []
    with open_store(db) as store:
        for f in files:
            r = store.ingest(f, mapping=mapping, ts_unit=ts_unit, delimiter=delimiter,
                             columns=columns.split(",") if columns else None)
            rows.append({"source": r.source, "accepted": r.accepted,
                         "duplicates": r.duplicates, "rejected": r.rejected,
                         "erased_users_skipped": r.erased,
                         "seconds": round(r.seconds, 3)})
            if r.rejected and fmt == Format.table:
                bad = store.rejects(r.source).head(5)
                for b in bad.itertuples():
                    typer.echo(f"  rejected {r.source} row {b.row} [{b.field}]: "
                               f"{b.reason}", err=True)
    emit(rows, fmt, title="ingest")


def register(app: typer.Typer) -> None:
    app.command()(ingest)
