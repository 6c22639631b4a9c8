"""``feedwise export``: the store's events as the Parquet layout the scale-out engines read,
or its logged feeds as the logged-bandit file ``feedwise offpolicy`` reads."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from feedwise.cli._common import DbOption, Format, console, emit, open_store
from feedwise.errors import DataError


class DataFormat(StrEnum):
    parquet = "parquet"
    bandit = "bandit"


def export(out: Annotated[Path, typer.Option(
               "--out", "-o", help="Destination: a folder (parquet) or a file (bandit: .csv, "
               ".tsv, .jsonl or .parquet).")],
           data_format: Annotated[DataFormat, typer.Option(
               "--format", help="parquet: the events for the engines; bandit: the logged "
               "feeds for offpolicy / frontier --logs.")] = DataFormat.parquet,
           overwrite: Annotated[bool, typer.Option(
               help="Replace an earlier export in --out.")] = False,
           reward_window: Annotated[float, typer.Option(
               help="bandit: seconds after an impression in which an engagement with the "
                    "item counts as its reward.")] = 1800.0,
           db: DbOption = None,
           summary: Annotated[Format, typer.Option(
               "--summary-format", help="How to print the summary.")] = Format.table
           ) -> None:
    """Write the store's events as a date-partitioned Parquet dataset, or its logged feeds
    as a logged-bandit file.

    parquet layout: OUT/events/date=YYYY-MM-DD/*.parquet, OUT/items.parquet,
    OUT/campaigns.parquet and OUT/_feedwise.json. Spark, DuckDB and any Hive-aware
    reader take it as is (copy it to HDFS or S3 for a cluster).

    bandit: one row per logged impression (timestamp, user_id, session_id, item_id,
    slot_kind, position, propensity, policy, reward, engaged, clicked, target_propensity);
    target_propensity is the logging policy's own, so offpolicy on the file as written
    estimates the logged policy (a check); put a target policy's probabilities there.

    Example: feedwise export --format bandit --out feeds.csv
    """
    if data_format == DataFormat.bandit:
        _export_bandit(out, overwrite=overwrite, reward_window=reward_window, db=db,
                       summary=summary)
        return
    from feedwise.engines.export import export_parquet

    with open_store(db) as store, console.status(f"exporting events to {out}"):
        report = export_parquet(store, out, overwrite=overwrite)
    emit([{"out": report.out_dir, "format": data_format.value, "events": report.events,
           "days": report.days, "first_day": report.first_day,
           "last_day": report.last_day, "items": report.items,
           "campaigns": report.campaigns, "users": report.users,
           "seconds": round(report.seconds, 3)}],
         summary, title="export")


def _export_bandit(out: Path, *, overwrite: bool, reward_window: float, db: str | None,
                   summary: Format) -> None:
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".tsv", ".jsonl", ".parquet"):
        raise DataError(f"{out}: a bandit export is one file: name it .csv, .tsv, .jsonl or "
                        ".parquet")
    if out.exists() and not overwrite:
        raise DataError(f"{out} exists: pass --overwrite to replace it")
    if reward_window <= 0:
        raise DataError(f"--reward-window {reward_window:g}: give seconds above 0")
    with open_store(db) as store, console.status(f"exporting logged feeds to {out}"):
        log = store.logged_feeds(reward_window)
    if log.empty:
        raise DataError("the store has no logged feeds: no impression carries a position and "
                        "a propensity (feeds served by feedwise serve or the synthetic "
                        "world log them)")
    log["target_propensity"] = log["propensity"]
    log["timestamp"] = log["timestamp"].map(lambda t: t.isoformat())
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        log.to_parquet(out, index=False)
    elif suffix == ".jsonl":
        log.to_json(out, orient="records", lines=True)
    else:
        log.to_csv(out, index=False, sep="\t" if suffix == ".tsv" else ",")
    emit([{"out": str(out), "format": "bandit", "rows": len(log),
           "sessions": int(log["session_id"].nunique()),
           "users": int(log["user_id"].nunique()),
           "ads": int((log["slot_kind"] == "ad").sum()),
           "reward_rate": round(float(log["reward"].mean()), 4),
           "policies": int(log["policy"].nunique())}], summary, title="export")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
