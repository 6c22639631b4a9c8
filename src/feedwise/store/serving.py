"""The service's write paths: validated event batches and served impressions.

Event ids are unique: every write of ``events`` (:meth:`EventStore.ingest` for files,
tables and the service's batches, :meth:`ServedLog.log_served` for impressions) checks the
stored ids under the store's write lock, and the ids the service builds itself start with
:data:`SERVED_ID_PREFIX` (``srv:``), which ingestion rejects, so a client's event and a
served impression never share an id. (No unique index: DuckDB's doubled the size of the
store and slowed ingest, while the checks cost one semi-join per batch.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from feedwise.errors import DataError
from feedwise.schema import EVENT_COLUMNS, REQUIRED_EVENT_FIELDS
from feedwise.store.base import StoreBase
from feedwise.store.ingest import SERVED_ID_PREFIX, IngestReport
from feedwise.store.privacy import TOMBSTONE_PREFIX

__all__ = ["SERVED_ID_PREFIX", "RowsLanded", "ServedLanded", "ServedLog", "ServedRows"]

#: Arrow types of the ``events`` columns, for rows the service builds itself.
_ARROW = {"event_id": pa.string(), "user_id": pa.string(), "item_id": pa.string(),
          "kind": pa.string(), "ts": pa.timestamp("us", tz="UTC"), "dwell_ms": pa.int64(),
          "value": pa.float64(), "position": pa.int32(), "surface": pa.string(),
          "session_id": pa.string(), "propensity": pa.float64(), "context": pa.string(),
          "text": pa.string(), "parent_id": pa.string()}


@dataclass(frozen=True)
class ServedLanded:
    """What :meth:`ServedLog.log_served` did with a batch of served rows."""

    #: Rows inserted.
    landed: int
    #: Rows whose id was stored already, or repeated earlier in the batch (a retried feed).
    duplicates: int
    #: Rows of erased users, skipped.
    erased: int


@dataclass(frozen=True)
class RowsLanded:
    """What :meth:`ServedLog.ingest_rows` did with each row of a batch."""

    report: IngestReport
    #: Ids of the batch's valid rows (erased users' rows aside) the events table held before.
    existing: set[str]
    #: Row (0-based, in the batch) -> (field, reason) of each rejected row.
    rejected: dict[int, tuple[str, str]]
    #: Ids of the batch the events table holds after it; only when some rows were of erased
    #: users (they are skipped), else ``None``.
    landed: set[str] | None


@dataclass(frozen=True)
class ServedRows:
    """Served rows as the store inserts them (:meth:`ServedLog.log_served`), built from
    columns by :meth:`of`.

    Building them is the part of a landing that holds the GIL (Python values to Arrow), so
    the writer builds them on its own thread, at its priority, and hands only the insert
    to the thread it lands served rows on: a lowered thread that held the GIL while it was
    kept off the cores stalled the event loop of its process for that long.
    """

    #: The rows in the events' columns, the first of each repeated id only.
    table: pa.Table
    #: Rows handed over, repeats included.
    received: int
    #: Every row's id is new by construction (``new_id`` set on every row): the look-up
    #: of stored ids is skipped.
    new_ids: bool

    @classmethod
    def of(cls, columns: Mapping[str, Sequence[Any]]) -> ServedRows:
        """The rows of ``columns`` (event column -> one value per row; a column missing is
        None in every row) in one table.

        Raises:
            DataError: An id outside the service's namespace (:data:`SERVED_ID_PREFIX`).
        """
        n = len(columns["event_id"])
        table = pa.table({c: _column(columns, n, c, t) for c, t in _ARROW.items()})
        ids = table.column("event_id")
        ours = pc.fill_null(pc.starts_with(ids, SERVED_ID_PREFIX), False)
        if n and not pc.all(ours).as_py():
            foreign = ids[pc.index(ours, False).as_py()].as_py()
            raise _foreign(foreign)
        if pc.count_distinct(ids).as_py() < n:  # a retry inside the batch: the first stays
            seen: set = set()
            keep = [i for i, e in enumerate(ids.to_pylist()) if not (e in seen or seen.add(e))]
            table = table.take(pa.array(keep, pa.int64()))
        new = n == 0 or (v := columns.get("new_id")) is not None and len(v) == n and all(v)
        return cls(table, n, new)


def _foreign(event_id: Any) -> DataError:
    return DataError(f"served event id {str(event_id)[:80]!r} does not start with "
                     f"{SERVED_ID_PREFIX!r}: the service's own ids live in that namespace")


def _column(columns: Mapping[str, Sequence[Any]], n: int, name: str, t: pa.DataType
            ) -> pa.Array:
    """Column ``name`` of ``columns`` as an Arrow array of type ``t``."""
    values = columns.get(name)
    if values is None:
        return pa.nulls(n, t)
    try:
        return _arrow(values, t)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        if name == "event_id":  # an id that is not text is not one of the service's
            raise _foreign(next(v for v in values if type(v) is not str)) from None
        raise


class ServedLog(StoreBase):
    """The service's write paths (part of :class:`~feedwise.store.EventStore`)."""

    ingest: Callable[..., IngestReport]  # EventStore.ingest

    def log_served(self, columns: Mapping[str, Sequence[Any]] | ServedRows,
                   then: Sequence[Callable[[], Any]] = ()) -> ServedLanded:
        """Insert events the service built itself (typed and valid; ``ts`` may be integer
        microseconds) in one ``INSERT``, without the validating staging.

        Rows whose id is stored already or repeats an earlier row of the batch (a client
        retrying a feed with the same ``X-Request-ID``, before or after a restart) are not
        inserted again, and rows of erased users are skipped.

        Args:
            columns: Event column -> one value per row, or :class:`ServedRows` built
                beforehand (the writer builds them on its own thread, so that only the
                insert runs where it lands them).
            then: Called in the same transaction after the insert; what they write through
                the store joins it (the service flushes the feed engine's ad state this
                way: impressions and ad state commit together, in one commit).

        Raises:
            DataError: An id outside the service's namespace (:data:`SERVED_ID_PREFIX`).
        """
        rows = columns if isinstance(columns, ServedRows) else ServedRows.of(columns)
        table, n = rows.table, rows.received
        cols = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
        # ids stored already: a semi-join whose hash table is built on the batch, but which
        # reads every stored event id (a landing then costs more the more the table holds);
        # skipped when every row's id is new by construction (``new_id``: the service
        # made the request id up itself, so no earlier landing can hold it)
        stored = ("" if rows.new_ids else
                  """s.event_id NOT IN (SELECT event_id FROM events WHERE event_id IN
                                         (SELECT event_id FROM _fw_served)) AND """)
        with self.transaction() as con:
            con.register("_fw_served", table)
            try:
                landed = con.execute(f"""INSERT INTO events ({cols}) SELECT {cols}
                    FROM _fw_served s
                    WHERE {stored}NOT EXISTS (SELECT 1 FROM tombstones t  -- erased: stay so
                                      WHERE t.digest = sha256('{TOMBSTONE_PREFIX}'
                                                              || s.user_id))""").fetchall()[0][0]
                erased = 0
                if landed < len(table):
                    erased = con.execute(f"""SELECT count(*) FROM _fw_served s
                        WHERE sha256('{TOMBSTONE_PREFIX}' || s.user_id) IN
                              (SELECT digest FROM tombstones)""").fetchall()[0][0]
            finally:
                con.unregister("_fw_served")
            for fn in then:
                fn()
        self._id_hashes.grew(landed)
        return ServedLanded(int(landed), n - int(landed) - int(erased), int(erased))

    def _stored_ids(self, ids: Sequence[str | None]) -> set[str]:
        """Which of ``ids`` the events table holds."""
        with self._lock:
            con = self.con
            con.register("_fw_ids", pa.table({"event_id": pa.array(ids, pa.string())}))
            try:
                return {r[0] for r in con.execute(
                    "SELECT event_id FROM events WHERE event_id IN (SELECT event_id FROM _fw_ids)"
                ).fetchall()}
            finally:
                con.unregister("_fw_ids")

    def ingest_rows(self, columns: Mapping[str, Sequence[str | None]], source: str
                    ) -> RowsLanded:
        """Validate and land text rows (event column -> one value per row) as one
        :meth:`ingest` named ``source``, and say per row what became of it."""
        n = len(columns["event_id"])
        ids = list(columns["event_id"])
        # a column no row fills is left out: the staging parses it as absent (a constant
        # NULL) instead of checking every row of it
        arrays = {}
        for c in EVENT_COLUMNS:
            v = columns.get(c)
            if c in _ALWAYS or v is not None and v.count(None) < n:
                arrays[c] = pa.array([None] * n if v is None else v, pa.string())
        table = pa.table({**arrays, "_idx": pa.array(range(n), pa.int64())})
        with self._lock:  # nothing else lands between the ingest and the reads
            report = self.ingest(table, source_name=source)
            existing = set(report.stored_ids)
            rejected: dict[int, tuple[str, str]] = {}
            if report.rejected:
                for idx, fld, reason in self.con.execute(
                        "SELECT CAST(json_extract_string(raw, '$._idx') AS BIGINT), field, "
                        "reason FROM rejects WHERE source = ?", [source]).fetchall():
                    rejected[int(idx)] = (fld, reason)
            landed = self._stored_ids(ids) if report.erased else None
        return RowsLanded(report, existing, rejected, landed)


#: Columns a batch of client rows always lands with (the required fields and the id), so a
#: row without one is rejected for it, never the batch.
_ALWAYS = frozenset(("event_id", *REQUIRED_EVENT_FIELDS))


def _arrow(values: Sequence[Any], t: pa.DataType) -> pa.Array:
    """A column of served rows; timestamps may come as integer microseconds (cheaper to
    build and to convert than datetime objects)."""
    if pa.types.is_timestamp(t) and values and isinstance(values[0], int):
        return pa.array(values, pa.int64()).cast(t)
    return pa.array(values, t)
