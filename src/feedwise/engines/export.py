"""Export the store as the Parquet interchange layout shared with the scale-out engines.

The layout written by :func:`export_parquet` (and read by :mod:`feedwise.engines.spark`)::

    OUT/
      events/date=2024-01-01/data_0.parquet   events, Hive-partitioned by UTC day
      events/date=2024-01-02/...
      items.parquet                           the items table (campaign_id links ads)
      campaigns.parquet                       the campaigns table
      users.parquet                           user_id, consent_analytics (the KPIs leave out
                                              users whose analytics consent is false),
                                              consent_personalization (Spark training leaves
                                              out users who objected to profiling)
      _feedwise.json                          what was written (counts, date range, schema)

``events`` keeps every column of the store's ``events`` table (``ts`` as a UTC timestamp)
plus the partition column ``date`` (the UTC calendar day of ``ts``). Any engine that reads
Hive-partitioned Parquet (DuckDB, Spark, Trino, pandas/pyarrow) reads it unchanged, from a
local folder or from object storage.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from feedwise.errors import ConfigError, DataError
from feedwise.schema import EVENT_COLUMNS
from feedwise.store import EventStore

LAYOUT_VERSION = 1
MANIFEST = "_feedwise.json"


@dataclass(frozen=True)
class ExportReport:
    """What one export wrote."""

    out_dir: str
    events: int
    days: int
    items: int
    campaigns: int
    users: int
    first_day: str | None
    last_day: str | None
    seconds: float


def events_glob(root: str | Path) -> str:
    """The glob of the event files below an export root (for DuckDB's ``read_parquet``)."""
    return f"{str(root).rstrip('/')}/events/**/*.parquet"


def export_parquet(store: EventStore, out_dir: str | Path, *, overwrite: bool = False,
                   row_group_size: int = 1_000_000) -> ExportReport:
    """Write the store's events as a date-partitioned Parquet dataset (plus items, campaigns
    and the users' analytics and personalization consent).

    Args:
        store: An :class:`~feedwise.store.EventStore`.
        out_dir: Destination folder (created). Must be empty or absent unless ``overwrite``.
        overwrite: Replace an existing export in ``out_dir``.
        row_group_size: Parquet row group size of the event files.

    Returns:
        An :class:`ExportReport`.

    Raises:
        DataError: The store holds no events.
        ConfigError: ``out_dir`` exists and is not empty, and ``overwrite`` is false.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(f"{out}: folder exists and is not empty; choose another --out or "
                              "pass --overwrite")
        if not (out / MANIFEST).exists():
            raise ConfigError(f"{out}: not a feedwise export (no {MANIFEST}); refusing to "
                              "delete it — choose an empty folder")
        shutil.rmtree(out)
    n = int(store.scalar("SELECT count(*) FROM events"))
    if n == 0:
        raise DataError("the store holds no events; ingest events first (feedwise ingest FILE)")
    out.mkdir(parents=True, exist_ok=True)
    cols = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
    cur = store.cursor()
    ev = out / "events"
    # One writer per partition keeps files few; ORDER BY makes the files deterministic.
    cur.execute(f"""COPY (SELECT {cols}, CAST(ts AS DATE) AS date FROM events
                          ORDER BY ts, event_id)
                   TO '{_quote(ev)}' (FORMAT PARQUET, PARTITION_BY (date),
                                      ROW_GROUP_SIZE {int(row_group_size)})""")
    items = int(store.scalar("SELECT count(*) FROM items"))
    campaigns = int(store.scalar("SELECT count(*) FROM campaigns"))
    cur.execute(f"COPY (SELECT * FROM items ORDER BY item_id) TO '{_quote(out / 'items.parquet')}'"
                " (FORMAT PARQUET)")
    cur.execute(f"COPY (SELECT * FROM campaigns ORDER BY campaign_id) "
                f"TO '{_quote(out / 'campaigns.parquet')}' (FORMAT PARQUET)")
    # the store's user ids (pseudonymised like the events'), and only the consent flags the
    # KPIs and training need: no other user attributes leave the store
    users = int(store.scalar("SELECT count(*) FROM users"))
    cur.execute(f"COPY (SELECT user_id, consent_analytics, consent_personalization FROM users "
                f"ORDER BY user_id) TO '{_quote(out / 'users.parquet')}' (FORMAT PARQUET)")
    first, last, days = cur.execute(
        "SELECT min(CAST(ts AS DATE)), max(CAST(ts AS DATE)), count(DISTINCT CAST(ts AS DATE)) "
        "FROM events").fetchone()
    report = ExportReport(str(out), n, int(days), items, campaigns, users,
                          str(first) if first else None, str(last) if last else None,
                          time.perf_counter() - t0)
    manifest = {"layout": LAYOUT_VERSION, "partition": "date", "columns": EVENT_COLUMNS,
                **asdict(report)}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return report


def _quote(p: Path | str) -> str:
    return str(p).replace("'", "''")
