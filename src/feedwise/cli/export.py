"""``feedwise export``: the store's events as the Parquet layout the scale-out engines read."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from feedwise.cli._common import DbOption, Format, console, emit, open_store


class DataFormat(StrEnum):
    parquet = "parquet"


def export(out: Annotated[Path, typer.Option("--out", "-o", help="Destination folder.")],
           data_format: Annotated[DataFormat, typer.Option(
               "--format", help="Data format of the export.")] = DataFormat.parquet,
           overwrite: Annotated[bool, typer.Option(
               help="Replace an earlier export in --out.")] = False,
           db: DbOption = None,
           summary: Annotated[Format, typer.Option(
               "--summary-format", help="How to print the summary.")] = Format.table
           ) -> None:
    """Write the store's events as a date-partitioned Parquet dataset.

    Layout: OUT/events/date=YYYY-MM-DD/*.parquet, OUT/items.parquet,
    OUT/campaigns.parquet and OUT/_feedwise.json. Spark, DuckDB and any Hive-aware
    reader take it as is (copy it to HDFS or S3 for a cluster).
    """
    from feedwise.engines.export import export_parquet

    with open_store(db) as store, console.status(f"exporting events to {out}"):
        report = export_parquet(store, out, overwrite=overwrite)
    emit([{"out": report.out_dir, "format": data_format.value, "events": report.events,
           "days": report.days, "first_day": report.first_day,
           "last_day": report.last_day, "items": report.items,
           "campaigns": report.campaigns, "users": report.users,
           "seconds": round(report.seconds, 3)}],
         summary, title="export")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
