"""The engine tests' world, shared by tests/engines and tests/cli (their conftests import
these fixtures): a small synthetic world in a store, its Parquet export and one local Spark
session."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

START = datetime(2024, 1, 3, tzinfo=UTC)  # a Wednesday: cohorts start mid-week


def _extra_events() -> pd.DataFrame:
    """Kinds the generator does not emit (rating, purchase, dwell without dwell_ms) and a
    user seen only through a negative, so every weight rule is exercised."""
    rows = [
        ("x1", "xu1", "p0", "rating", "2024-01-05T10:00:00Z", None, 4.5),
        ("x2", "xu1", "p1", "purchase", "2024-01-06T11:00:00Z", None, 19.9),
        ("x3", "xu1", "p2", "dwell", "2024-01-07T12:00:00Z", None, None),
        ("x4", "xu1", "p3", "dwell", "2024-01-08T13:00:00Z", 95_000, None),
        ("x5", "xu2", "p4", "hide", "2024-01-09T14:00:00Z", None, None),
        ("x6", "xu1", "p5", "rating", "2024-01-30T23:59:59Z", None, 2.0),
    ]
    return pd.DataFrame(rows, columns=["event_id", "user_id", "item_id", "kind", "ts",
                                       "dwell_ms", "value"])


@pytest.fixture(scope="session")
def world():
    from feedwise.datasets.synthetic import synthetic_social

    return synthetic_social(n_users=100, n_authors=15, n_posts=200, n_days=16, n_campaigns=4,
                            start=START, seed=7)


@pytest.fixture(scope="session")
def world_store(world):
    """A file-less store holding the world plus the extra events (read-only for tests)."""
    from feedwise.store import EventStore

    store = EventStore(":memory:")
    world.load_into(store)
    store.ingest(_extra_events(), source_name="extra")
    yield store
    store.close()


@pytest.fixture(scope="session")
def exported(world_store, tmp_path_factory):
    """The world's Parquet export (root folder)."""
    from feedwise.engines.export import export_parquet

    out = tmp_path_factory.mktemp("export") / "layout"
    export_parquet(world_store, out)
    return out


@pytest.fixture(scope="session")
def spark():
    """One local Spark session (2 threads, few shuffle partitions, no UI) for all tests."""
    pytest.importorskip("pyspark", reason="the spark extra is not installed "
                                          "(pip install -e '.[spark]')")
    from feedwise.sparksession import spark_session

    session = spark_session("local[2]", app_name="feedwise-tests", shuffle_partitions=4,
                            driver_memory="1g", conf={"spark.default.parallelism": "2"})
    yield session
    session.stop()
