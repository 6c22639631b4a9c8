"""The Apache Spark engine: the same interactions, ALS and KPIs on a cluster.

Spark reads the Parquet layout written by :func:`feedwise.engines.export.export_parquet`
(from a local folder, HDFS or object storage), builds the weighted interactions with Spark
SQL using the same per-kind weights (:class:`~feedwise.interactions.InteractionWeights`)
and the same id rules as :meth:`EventStore.interactions` (ids sorted as strings; hide and
report are negatives, never weight), trains Spark MLlib ALS with implicit preferences, and
hands the user and item factors back as a :class:`~feedwise.models.spark_als.SparkALS`,
which serves through the normal ``recommend``/``feed`` path. The KPI queries of
:mod:`feedwise.engines.kpis` run as Spark SQL over the same layout.

Needs the ``spark`` extra (``pip install 'feedwise[spark]'``) and Java 17+.

Entry points for the CLI: :func:`train_spark` (``feedwise train --engine spark`` /
``feedwise spark-train``) and :func:`report_spark` (``feedwise report --engine spark`` /
``feedwise spark-report``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from feedwise.engines.kpis import KPI_NAMES, consented_events_sql, run_kpis
from feedwise.errors import ConfigError, DataError
from feedwise.interactions import Interactions, InteractionWeights
from feedwise.models.spark_als import SparkALS
from feedwise.schema import EVENT_COLUMNS, NEGATIVE_KINDS, utc
from feedwise.sparksession import spark_session, to_arrow
from feedwise.store.ingest import derived_event_id, typed_valid

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def events_path(root: str | os.PathLike) -> str:
    """The events folder of an export root (a root ending in ``events`` is taken as is)."""
    p = str(root).rstrip("/")
    if p.endswith("/events") or p == "events":
        return p
    if _is_local(p):
        local = Path(p.removeprefix("file://"))
        if not (local / "events").is_dir():
            raise DataError(f"{p}: no events/ folder; write the layout with "
                            "`feedwise export --format parquet --out DIR`")
    return p + "/events"


def read_events(spark: SparkSession, root: str | os.PathLike) -> DataFrame:
    """The events of an export as a Spark DataFrame (``date`` is the partition column)."""
    return spark.read.parquet(events_path(root))


def training_events(spark: SparkSession, root: str | os.PathLike) -> DataFrame:
    """The events of an export that may train a model: those of users who did not object
    to profiling (``consent_personalization`` false in ``users.parquet``; NULL or no row =
    granted), as ``EventStore.interactions`` leaves them out.

    A layout without ``users.parquet`` (events written by :func:`ingest_events` alone)
    records no objection: every event. An export whose ``users.parquet`` lacks the flag
    (written before it was exported) is refused: it cannot honour an objection.
    """
    events = read_events(spark, root)
    users = read_table(spark, root, "users")
    if users is None:
        return events
    if "consent_personalization" not in users.columns:
        raise DataError(f"{root}: users.parquet has no consent_personalization column (an "
                        "export written before it was exported), so training could not "
                        "leave out users who objected to profiling; write the layout again "
                        "with `feedwise export --format parquet --out DIR`")
    objectors = users.where("consent_personalization = false").select("user_id")
    return events.join(objectors, "user_id", "left_anti")


def read_table(spark: SparkSession, root: str | os.PathLike, name: str) -> DataFrame | None:
    """Table ``name`` (``items``, ``campaigns``, ``users``) of an export, or ``None`` when
    the export has none (older layouts have no ``users``)."""
    p = str(root).rstrip("/").removesuffix("/events") + f"/{name}.parquet"
    if _is_local(p) and not Path(p.removeprefix("file://")).exists():
        return None
    return spark.read.parquet(p)


def register_views(spark: SparkSession, root: str | os.PathLike) -> None:
    """Register temp views ``events``, ``items`` and ``campaigns`` over an export (for
    Spark SQL).

    ``events`` holds only the events of users with analytics consent (users whose
    ``consent_analytics`` is false in ``users.parquet`` are left out, as in
    :func:`feedwise.engines.kpis.duckdb_kpis`); without ``users.parquet`` every event."""
    events = read_events(spark, root)
    users = read_table(spark, root, "users")
    if users is not None:
        events.createOrReplaceTempView("_feedwise_all_events")
        users.createOrReplaceTempView("_feedwise_users")
        events = spark.sql(consented_events_sql("_feedwise_all_events", "_feedwise_users"))
    events.createOrReplaceTempView("events")
    # an export without items or campaigns: empty views with the columns the KPI SQL reads
    for name, columns in (("items", "item_id STRING, campaign_id STRING, title STRING"),
                          ("campaigns", "campaign_id STRING, bid_model STRING, bid DOUBLE")):
        table = read_table(spark, root, name)
        if table is None:
            table = spark.createDataFrame([], columns)
        table.createOrReplaceTempView(name)


# ---------------------------------------------------------------------- ingest
def ingest_events(spark: SparkSession, source: str | os.PathLike | DataFrame,
                  out: str | os.PathLike, *, mode: str = "overwrite") -> dict[str, int]:
    """Validate raw events with Spark and write them as the export layout's ``events/``.

    The cluster-side counterpart of ``EventStore.ingest`` for logs that already live on the
    cluster: rows breaking one of the store's rules for typed columns
    (:data:`feedwise.store.ingest.RULES`: ``user_id``/``item_id``/``kind``/``ts`` missing, a
    ``ts`` outside [1970-01-01, now + 1 day], an unknown kind, a negative dwell or position,
    a value that is not finite, a propensity outside (0, 1]) are dropped (counted, not kept
    in a rejects table), duplicates of an ``event_id`` within the batch are dropped (the
    row kept is chosen by content, the same on every run, not by partition order), and the
    rest is written partitioned by UTC day under ``OUT/events``.

    Args:
        spark: The session.
        source: A Parquet file/folder of events in the store's columns, or a DataFrame.
        out: Export root to write (``OUT/events/date=.../``).
        mode: Spark save mode (``overwrite`` or ``append``).

    Returns:
        Counts: ``read``, ``rejected``, ``duplicates``, ``written``.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    df = source if not isinstance(source, str | os.PathLike) else spark.read.parquet(
        str(source))
    spark_types = {"VARCHAR": "string", "TIMESTAMPTZ": "timestamp", "BIGINT": "bigint",
                   "DOUBLE": "double", "INTEGER": "int"}
    cols = [(F.col(c) if c in df.columns else F.lit(None)).cast(spark_types[t]).alias(c)
            for c, t in EVENT_COLUMNS.items()]
    df = df.select(*cols).withColumn("kind", F.lower("kind"))  # as the store reads kinds
    df = df.withColumn("_ok", F.expr(typed_valid())).cache()
    try:
        read = df.count()
        # the store's derived id: events differing only in value, session or position are
        # distinct events, not duplicates
        valid = df.where("_ok").drop("_ok").withColumn(
            "event_id", F.coalesce("event_id", F.expr(derived_event_id("unix_millis(ts)"))))
        n_valid = valid.count()
        # one row per id, the same on every run (dropDuplicates keeps whichever comes first)
        first = Window.partitionBy("event_id").orderBy(
            *[F.col(c).asc_nulls_last() for c in EVENT_COLUMNS if c != "event_id"])
        dedup = (valid.withColumn("_n", F.row_number().over(first)).where("_n = 1")
                 .drop("_n").withColumn("date", F.to_date("ts")).cache())
        written = dedup.count()
        dedup.write.mode(mode).partitionBy("date").parquet(str(out).rstrip("/") + "/events")
        dedup.unpersist()
    finally:
        df.unpersist()
    return {"read": read, "rejected": read - n_valid, "duplicates": n_valid - written,
            "written": written}


# ---------------------------------------------------------------------- interactions
def interaction_frames(events: DataFrame, *, weights: InteractionWeights | None = None,
                       since: datetime | None = None, until: datetime | None = None
                       ) -> tuple[DataFrame, DataFrame]:
    """Spark DataFrames of positive weights and of negative pairs, as the store builds them.

    Returns:
        ``(positives, negatives)``: ``positives`` has ``user_id, item_id, weight, ts``
        (summed weight > 0, latest event time in unix seconds), ``negatives`` the distinct
        ``user_id, item_id`` pairs hidden or reported.
    """
    from pyspark.sql import functions as F

    w = weights or InteractionWeights()
    ev = events
    if since is not None:
        s = utc(since)
        if "date" in ev.columns:  # partition pruning
            ev = ev.where(F.col("date") >= F.lit(s.date()))
        ev = ev.where(F.col("ts") >= F.lit(s))
    if until is not None:
        u = utc(until)
        if "date" in ev.columns:
            ev = ev.where(F.col("date") <= F.lit(u.date()))
        ev = ev.where(F.col("ts") < F.lit(u))
    neg = ", ".join(f"'{k}'" for k in NEGATIVE_KINDS)
    # Cast to DOUBLE so Spark does float arithmetic like DuckDB (decimal literals otherwise).
    expr = w.sql(dwell="CAST(dwell_ms AS DOUBLE)", value="CAST(value AS DOUBLE)")
    pos = (ev.where(f"kind NOT IN ({neg})")
             .selectExpr("user_id", "item_id", "ts", f"CAST({expr} AS DOUBLE) AS w")
             .where("w > 0")
             .groupBy("user_id", "item_id")
             .agg(F.sum("w").alias("weight"),
                  (F.max(F.unix_micros("ts")).cast("double") / 1e6).alias("ts")))
    negs = ev.where(f"kind IN ({neg})").select("user_id", "item_id").distinct()
    return pos, negs


def _strings(col: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(col.cast(pa.string()).to_numpy(zero_copy_only=False), dtype=str)


def collect_interactions(pos: pa.Table, negs: pa.Table, *,
                         item_titles: Mapping[str, str] | None = None,
                         since: datetime | None = None, until: datetime | None = None
                         ) -> Interactions:
    """Build :class:`Interactions` on the driver with the store's id-mapping rules
    (:meth:`Interactions.from_pairs`, shared with ``EventStore.interactions``)."""
    return Interactions.from_pairs(pos, negs, item_titles=item_titles, since=since,
                                   until=until, empty_hint="check the events path and the "
                                                           "--since/--until window")


def _item_titles(spark: SparkSession, root: str | os.PathLike) -> dict[str, str] | None:
    items = read_table(spark, root, "items")
    if items is None or "title" not in items.columns:
        return None
    t = to_arrow(items.where("title IS NOT NULL").select("item_id", "title"))
    if t.num_rows == 0:
        return None
    return dict(zip(_strings(t["item_id"]), _strings(t["title"]), strict=True))


def spark_interactions(spark: SparkSession, root: str | os.PathLike, *,
                       weights: InteractionWeights | None = None,
                       since: datetime | None = None, until: datetime | None = None,
                       exclude_objectors: bool = True) -> Interactions:
    """The interaction matrix built by Spark SQL over an export, collected to the driver.

    Equal to ``EventStore.interactions(since, until, weights=weights)`` on the store that
    was exported (same ids, order, weights, last-event times and negatives; users who
    objected to profiling left out, see :func:`training_events`).
    """
    events = training_events(spark, root) if exclude_objectors else read_events(spark, root)
    pos, negs = interaction_frames(events, weights=weights, since=since, until=until)
    return collect_interactions(to_arrow(pos), to_arrow(negs),
                                item_titles=_item_titles(spark, root), since=since, until=until)


# ---------------------------------------------------------------------- ALS
def _indexed(ids: DataFrame, col: str) -> tuple[DataFrame, DataFrame]:
    """``col, idx``: each distinct id with its rank in sorted (binary string) order, the
    order ``numpy.unique`` gives on the driver.

    Distributed and JVM-only (executors need no Python): range-partition the distinct ids,
    count each partition, and number rows within a partition from its offset.

    Returns:
        The indexed ids and the cached intermediate (unpersist it when done).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = ids.sparkSession
    parts = (ids.select(col).distinct().repartitionByRange(col).sortWithinPartitions(col)
             .withColumn("_pid", F.spark_partition_id())).cache()
    counts = sorted((r["_pid"], r["count"]) for r in parts.groupBy("_pid").count().collect())
    offsets, total = [], 0
    for pid, n in counts:
        offsets.append((int(pid), total))
        total += int(n)
    off = spark.createDataFrame(offsets or [(0, 0)], "_pid INT, _off BIGINT")
    rank = F.row_number().over(Window.partitionBy("_pid").orderBy(col)) - 1
    return (parts.join(F.broadcast(off), "_pid")
            .select(col, (rank + F.col("_off")).alias("idx"))), parts


def train_als(spark: SparkSession, root: str | os.PathLike, model: SparkALS | None = None, *,
              weights: InteractionWeights | None = None, since: datetime | None = None,
              until: datetime | None = None) -> SparkALS:
    """The full Spark path: interactions in Spark SQL, MLlib ALS, factors into a model.

    The id maps are built in Spark (sorted distinct ids, indexed) by the same rules as the
    driver-side :class:`Interactions`, so factor rows line up with the model's id maps.
    The interaction matrix is also collected to the driver: the served model keeps it to
    exclude seen items and to fold in users. The events of users who objected to profiling
    are left out (:func:`training_events`).

    Args:
        spark: The session.
        root: Export root (local folder or ``hdfs://`` / ``s3a://`` URI).
        model: Hyperparameters (an unfitted :class:`SparkALS`); default ``SparkALS()``.
        weights: Per-kind weights (default: the embedded path's).
        since, until: Event time window ``[since, until)``.

    Returns:
        The fitted :class:`SparkALS`.
    """
    from pyspark.sql import functions as F

    model = model if model is not None else SparkALS()
    pos, negs = interaction_frames(training_events(spark, root), weights=weights,
                                   since=since, until=until)
    pos, negs = pos.cache(), negs.cache()
    cached = [pos, negs]
    try:
        users, c1 = _indexed(pos.select("user_id").union(negs.select("user_id")), "user_id")
        items, c2 = _indexed(pos.select("item_id").union(negs.select("item_id")), "item_id")
        cached += [c1, c2]
        train = (pos.join(users, "user_id").withColumnRenamed("idx", "u")
                    .join(items, "item_id").withColumnRenamed("idx", "i")
                    .select(F.col("u").cast("int"), F.col("i").cast("int"),
                            F.col("weight").cast("float")))
        data = collect_interactions(to_arrow(pos), to_arrow(negs),
                                    item_titles=_item_titles(spark, root), since=since,
                                    until=until)
        return model.fit(data, frame=train)
    finally:
        for df in cached:
            df.unpersist()


# ---------------------------------------------------------------------- KPIs
def spark_kpis(spark: SparkSession, root: str | os.PathLike,
               names: tuple[str, ...] | list[str] = KPI_NAMES, *, k: int = 10
               ) -> dict[str, pd.DataFrame]:
    """The KPI queries as Spark SQL over an export (results equal the DuckDB path's):
    consenting users only, rows describing fewer than ``k`` users suppressed (see
    :mod:`feedwise.engines.kpis`)."""
    unknown = [n for n in names if n not in KPI_NAMES]
    if unknown:
        raise ConfigError(f"unknown KPI(s) {unknown}; KPIs are {', '.join(KPI_NAMES)}")
    register_views(spark, root)
    return run_kpis(lambda q: to_arrow(spark.sql(q)).to_pandas(), "spark", names, k=k)


# ---------------------------------------------------------------------- CLI entry points
def train_spark(events: str | os.PathLike, *, out: str | os.PathLike | None = None,
                master: str | None = None, model: SparkALS | None = None,
                weights: InteractionWeights | None = None, since: datetime | None = None,
                until: datetime | None = None, spark_conf: Mapping[str, str] | None = None
                ) -> SparkALS:
    """``feedwise train --engine spark``: train on an export and save the model to ``out``.

    Args:
        events: Export root (local path or ``hdfs://``/``s3a://`` URI).
        out: Model directory to write (``model.npz`` + ``model.json``), or ``None``.
        master: Spark master (default ``$FEEDWISE_SPARK_MASTER`` or ``local[*]``).
        model: Hyperparameters (an unfitted :class:`SparkALS`).
        weights: Per-kind interaction weights (default: the embedded path's defaults).
        since, until: Event time window ``[since, until)``.
        spark_conf: Extra Spark settings.
    """
    spark = spark_session(master, conf=spark_conf)
    model = train_als(spark, events, model, weights=weights, since=since, until=until)
    if out is not None:
        model.save(out)
    return model


def report_spark(events: str | os.PathLike, *, master: str | None = None,
                 names: tuple[str, ...] | list[str] = KPI_NAMES, k: int = 10,
                 spark_conf: Mapping[str, str] | None = None) -> dict[str, pd.DataFrame]:
    """``feedwise report --engine spark``: the KPI tables computed by Spark SQL (rows
    describing fewer than ``k`` users suppressed)."""
    spark = spark_session(master, conf=spark_conf)
    return spark_kpis(spark, events, names, k=k)
