"""The embedded event store (DuckDB): the only owner of tables."""

from feedwise.store.base import default_db_path
from feedwise.store.ingest import MAPPINGS, IngestReport, parse_mapping
from feedwise.store.protocol import Storage
from feedwise.store.store import EventStore

__all__ = ["MAPPINGS", "EventStore", "IngestReport", "default_db_path", "parse_mapping", "Storage"]
