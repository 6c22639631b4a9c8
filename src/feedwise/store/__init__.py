"""The embedded event store (DuckDB)."""

from feedwise.store.ingest import MAPPINGS, IngestReport, parse_mapping
from feedwise.store.store import EventStore, default_db_path

__all__ = ["MAPPINGS", "EventStore", "IngestReport", "default_db_path", "parse_mapping"]
