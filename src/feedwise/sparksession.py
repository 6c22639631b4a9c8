"""The Spark session feedwise runs on, and Arrow transfers of Spark frames to the driver.

A leaf of the package: both the Spark engine (:mod:`feedwise.engines.spark`) and the
Spark-trained model (:mod:`feedwise.models.spark_als`) start Spark here. ``pyspark`` is an
optional heavy dependency (the ``spark`` extra, plus Java 17+), imported only when a
session is asked for.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pyarrow as pa

from feedwise.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

MASTER_ENV = "FEEDWISE_SPARK_MASTER"


def _pyspark():
    try:
        import pyspark  # noqa: F401
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError("the Spark engine needs pyspark: pip install 'feedwise[spark]' "
                          "(and Java 17+)") from None
    return SparkSession


def spark_session(master: str | None = None, *, app_name: str = "feedwise",
                  shuffle_partitions: int | None = None, driver_memory: str | None = None,
                  ui: bool = False, conf: Mapping[str, str] | None = None) -> SparkSession:
    """Get or create a SparkSession configured for feedwise (UTC, Arrow transfers).

    Args:
        master: Spark master URL; default ``$FEEDWISE_SPARK_MASTER`` or ``local[*]``.
            Under ``spark-submit`` the master given there wins.
        app_name: Application name shown by the cluster manager.
        shuffle_partitions: ``spark.sql.shuffle.partitions`` (keep small in local mode).
        driver_memory: ``spark.driver.memory`` (only effective when this starts the JVM).
        ui: Start the Spark web UI.
        conf: Extra Spark settings (e.g. S3 credentials providers).

    Raises:
        ConfigError: pyspark is not installed.
    """
    session_cls = _pyspark()
    # pyspark warns on pandas >= 3 although feedwise moves data through Arrow only
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas",
                            category=FutureWarning)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    b = session_cls.builder.appName(app_name)
    if master or MASTER_ENV in os.environ or "PYSPARK_GATEWAY_PORT" not in os.environ:
        b = b.master(master or os.environ.get(MASTER_ENV, "local[*]"))
    settings = {"spark.sql.session.timeZone": "UTC",
                "spark.sql.execution.arrow.pyspark.enabled": "true",
                "spark.ui.enabled": str(ui).lower(),
                "spark.ui.showConsoleProgress": "false",
                "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
                "spark.executor.extraJavaOptions": "-Duser.timezone=UTC"}
    if shuffle_partitions:
        settings["spark.sql.shuffle.partitions"] = str(shuffle_partitions)
    if driver_memory:
        settings["spark.driver.memory"] = driver_memory
    settings.update(conf or {})
    for k, v in settings.items():
        b = b.config(k, v)
    spark = b.getOrCreate()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    return spark


def to_arrow(df: DataFrame) -> pa.Table:
    """A Spark DataFrame collected to the driver as an Arrow table."""
    return df.toArrow() if hasattr(df, "toArrow") else pa.Table.from_pandas(df.toPandas())
