"""``feedwise spark-train`` and ``feedwise spark-report``: the batch jobs on Apache Spark.

Both read the Parquet layout written by ``feedwise export --format parquet`` (a local
folder or an ``hdfs://`` / ``s3a://`` URI) and run on ``--master`` (default
``$FEEDWISE_SPARK_MASTER`` or ``local[*]``). Needs the ``spark`` extra and Java 17+.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from feedwise.cli._common import Format, FormatOption, console, emit, fails_on
from feedwise.cli._insight import KOption
from feedwise.errors import ConfigError, FeedwiseError

if TYPE_CHECKING:
    import pandas as pd

EventsOption = Annotated[str, typer.Option(
    "--events", help="Export root (folder or hdfs:// / s3a:// URI) written by "
                     "`feedwise export --format parquet`.")]
MasterOption = Annotated[str | None, typer.Option(
    "--master", envvar="FEEDWISE_SPARK_MASTER",
    help="Spark master URL (default local[*]).")]
ConfOption = Annotated[list[str] | None, typer.Option(
    "--conf", help="Extra Spark setting KEY=VALUE (repeatable).")]


def _conf(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise ConfigError(f"--conf {p!r}: expected KEY=VALUE")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _when(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    from feedwise.schema import utc

    try:
        return utc(datetime.fromisoformat(text))
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected an ISO date or time, "
                          "e.g. 2024-01-31 or 2024-01-31T12:00:00Z") from None


def emit_kpis(tables: dict[str, pd.DataFrame], fmt: Format) -> None:
    """Print several KPI tables: one Rich table each, a JSON object of them, or long rows
    with a ``kpi`` column (JSON Lines / CSV)."""
    import pandas as pd
    if fmt == Format.table:
        for name, df in tables.items():
            emit(df, fmt, title=name)
    elif fmt == Format.json:
        obj = {n: json.loads(df.to_json(orient="records", date_format="iso"))
               for n, df in tables.items()}
        sys.stdout.write(json.dumps(obj, indent=2) + "\n")
    else:
        emit(pd.concat([df.assign(kpi=n)[["kpi", *df.columns]] for n, df in tables.items()],
                       ignore_index=True), fmt)


@fails_on(TypeError, json.JSONDecodeError)
def spark_train(events: EventsOption,
                out: Annotated[Path, typer.Option(
                    help="Model artifact folder.")] = Path("models/spark_als"),
                params: Annotated[str | None, typer.Option(
                    help='SparkALS hyperparameters as JSON, e.g. \'{"factors": 64}\'.'
                )] = None,
                since: Annotated[str | None, typer.Option(
                    help="Only events at/after this time (ISO).")] = None,
                until: Annotated[str | None, typer.Option(
                    help="Only events before this time (ISO).")] = None,
                master: MasterOption = None, conf: ConfOption = None,
                fmt: FormatOption = Format.table) -> None:
    """Train ALS on Spark (interactions by Spark SQL, MLlib ALS) into a servable model.

    Example: feedwise spark-train --events ev/ --out models/als-spark
    """
    from feedwise.engines.spark import train_spark
    from feedwise.models.spark_als import SparkALS

    model = SparkALS(**(json.loads(params) if params else {}))
    with console.status(f"training SparkALS on {master or 'local[*]'}"):
        fitted = train_spark(events, out=out, master=master, model=model,
                             since=_when(since, "--since"),
                             until=_when(until, "--until"), spark_conf=_conf(conf))
    emit([{"model": fitted.name, "users": len(fitted.user_ids_),
           "items": len(fitted.item_ids_), "pairs": int(fitted.seen_.nnz),
           "factors": fitted.factors, "out": str(out)}], fmt, title="spark-train")


def spark_report(events: EventsOption,
                 kpi: Annotated[list[str] | None, typer.Option(
                     "--kpi", help="KPI to compute (repeatable; default all): "
                                   "active_users, ctr, engagement, retention, campaigns."
                 )] = None,
                 verify: Annotated[bool, typer.Option(
                     help="Also compute the KPIs with DuckDB on the same layout and "
                          "fail unless the results are equal.")] = False,
                 k: KOption = 10,
                 master: MasterOption = None, conf: ConfOption = None,
                 fmt: FormatOption = Format.table) -> None:
    """The KPI queries as Spark SQL over the Parquet layout (users with analytics consent
    only; rows describing fewer than --k users blanked and marked ``suppressed``).

    Example: feedwise spark-report --events ev/ --kpi campaigns
    """
    from feedwise.engines.kpis import KPI_NAMES, compare_kpis, duckdb_kpis
    from feedwise.engines.spark import report_spark

    names = tuple(kpi) if kpi else KPI_NAMES
    with console.status("computing KPIs on Spark"):
        tables = report_spark(events, master=master, names=names, k=k,
                              spark_conf=_conf(conf))
    if verify:
        diffs = compare_kpis(tables, duckdb_kpis(events, names, k=k))
        if diffs:
            raise FeedwiseError("Spark and DuckDB KPIs differ: " + "; ".join(diffs[:5]))
    emit_kpis(tables, fmt)
    if verify and fmt == Format.table:
        console.print("[green]verified:[/] Spark KPIs equal DuckDB's on the same layout")


def register(app: typer.Typer) -> None:
    app.command("spark-train")(spark_train)
    app.command("spark-report")(spark_report)
