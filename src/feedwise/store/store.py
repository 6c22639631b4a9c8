"""`EventStore`: the embedded DuckDB store of events, items, users, campaigns and rejects."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from feedwise.errors import DataError
from feedwise.interactions import Interactions, InteractionWeights
from feedwise.schema import (
    EVENT_COLUMNS,
    NEGATIVE_KINDS,
    utc,
)
from feedwise.store.ads import AdLedger
from feedwise.store.events import EventReads
from feedwise.store.feedback import Feedback
from feedwise.store.ingest import (
    PRESET_COLUMNS,
    PRESET_DELIMITERS,
    IngestReport,
    build_select,
    parse_mapping,
    source_relation,
)
from feedwise.store.privacy import TOMBSTONE_PREFIX, PrivacyRecords
from feedwise.store.profiles import Profiles
from feedwise.store.records import Records
from feedwise.store.serving import ServedLog


class EventStore(Records, EventReads, Feedback, AdLedger, ServedLog, Profiles, PrivacyRecords):
    """Events, items, users and campaigns in one DuckDB database.

    Args:
        path: Database file, or ``":memory:"``. Defaults to :func:`default_db_path`.
        read_only: Open an existing file read-only.
        pseudonymizer: Optional one-way map of external user ids to stored ids (e.g.
            :class:`feedwise.privacy.Pseudonymizer`, a keyed HMAC). When set, ingestion and
            :meth:`upsert_users` store only pseudonyms and lookups go through
            :meth:`user_key`.

    Writes are serialised by a lock (DuckDB allows one writer); each ingest is one
    transaction, so a failure mid-batch leaves nothing behind.
    """

    # ------------------------------------------------------------------ events
    def ingest(self, source: Any, *, mapping: str | Mapping[str, str] | None = None,
               columns: list[str] | None = None, delimiter: str | None = None,
               header: bool | None = None, fmt: str | None = None, ts_unit: str = "s",
               source_name: str | None = None) -> IngestReport:
        """Validate and land events from a file (CSV, TSV, Parquet, JSONL) or a table.

        Valid rows land; bad rows go to ``rejects`` with source, row, field and reason;
        events whose ``event_id`` is already stored (or repeated in the batch) are counted
        as duplicates and not added. The whole batch is one transaction.

        Args:
            source: A path, a pandas DataFrame or a pyarrow Table.
            mapping: Target field -> source column (``"=value"`` for a constant), a
                ``"a=b,c=d"`` string, or a preset name such as ``"movielens-100k"``.
            columns: Column names for a headerless delimited file.
            delimiter: Field delimiter of a delimited file (default: sniffed).
            header: Whether a delimited file has a header row (default: sniffed).
            fmt: Force the format: ``csv``, ``tsv``, ``parquet`` or ``jsonl``.
            ts_unit: Unit of numeric timestamps: ``s``, ``ms`` or ``us``.
            source_name: Name recorded in ``rejects`` (default: the path).
        """
        if isinstance(mapping, str) and mapping in PRESET_COLUMNS:
            columns = columns or PRESET_COLUMNS[mapping]
            delimiter = delimiter or PRESET_DELIMITERS.get(mapping)
        if ts_unit not in ("s", "ms", "us"):
            raise DataError(f"ts_unit must be 's', 'ms' or 'us', not {ts_unit!r}")
        m = parse_mapping(mapping)
        t0 = time.perf_counter()
        with self._lock:
            c = self.con
            src, name = source_relation(c, source, columns=columns, delimiter=delimiter,
                                        header=header, fmt=fmt)
            name = source_name or name
            try:
                parsed, select, reason = build_select(c, src, m, ts_unit)
            except duckdb.Error as e:
                raise DataError(f"{name}: cannot read source: {e}") from None
            raw_json = "CAST(to_json(s) AS VARCHAR)"
            if self.pseudonymizer is not None:
                ucol = m.get("user_id", "user_id")
                if not ucol.startswith("="):
                    raw_json = (f"CAST(json_merge_patch({raw_json}, json_object("
                                f"'{ucol.replace(chr(39), chr(39) * 2)}', r.user_id)) AS VARCHAR)")
            cols = ", ".join(f'"{k}"' for k in EVENT_COLUMNS)
            c.execute("BEGIN TRANSACTION")
            try:
                before = c.execute("SELECT count(*) FROM events").fetchone()[0]
                if self.pseudonymizer is not None:
                    # ids are replaced before anything derives from them (event ids, rejects)
                    parsed = self._pseudonymize(c, src, parsed)
                c.execute(f"""CREATE OR REPLACE TEMP TABLE _fw_stage AS
                    SELECT {select}, {reason} AS _reason, _row FROM {parsed} p""")
                erased = 0
                if c.execute("SELECT count(*) FROM tombstones").fetchone()[0]:
                    # erased users stay erased: their rows land nowhere, not even in rejects
                    erased = c.execute(f"""DELETE FROM _fw_stage WHERE user_id IS NOT NULL AND
                        sha256('{TOMBSTONE_PREFIX}' || user_id) IN
                        (SELECT digest FROM tombstones)""").fetchone()[0]
                valid, distinct = c.execute(
                    "SELECT count(*), count(DISTINCT event_id) FROM _fw_stage "
                    "WHERE _reason IS NULL").fetchone()
                # rows repeated inside the batch: keep one (rare, so only then pay for it)
                rows = (f"SELECT DISTINCT ON (event_id) {cols} FROM _fw_stage "
                        f"WHERE _reason IS NULL" if distinct < valid else
                        f"SELECT {cols} FROM _fw_stage WHERE _reason IS NULL")
                # ids already stored: a semi-join whose hash table is built on the batch, not
                # on the events table (NOT EXISTS built it on events: ~40x slower per batch)
                new = "" if before == 0 else (
                    "WHERE v.event_id NOT IN (SELECT event_id FROM events WHERE event_id IN "
                    "(SELECT event_id FROM _fw_stage WHERE _reason IS NULL))")
                c.execute(f"INSERT INTO events ({cols}) SELECT {cols} FROM ({rows}) v {new}")
                after = c.execute("SELECT count(*) FROM events").fetchone()[0]
                c.execute(f"""INSERT INTO rejects
                    SELECT ?, r._row, split_part(r._reason, '|', 1),
                           substr(r._reason, strpos(r._reason, '|') + 1),
                           {raw_json}, now()
                    FROM (SELECT _row, _reason, user_id FROM _fw_stage
                          WHERE _reason IS NOT NULL) r
                    JOIN {src} s ON s._row = r._row""", [name])
                rejected = c.execute("SELECT count(*) FROM _fw_stage WHERE _reason IS NOT NULL"
                                     ).fetchone()[0]
                if "read_csv(" in src:
                    rejected += self._csv_structural_rejects(name)
                c.execute("DROP TABLE _fw_stage")
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            finally:
                if isinstance(source, pd.DataFrame | pa.Table):
                    c.unregister("_fw_src")
                if self.pseudonymizer is not None:
                    c.execute("DROP TABLE IF EXISTS _fw_parsed")
                    c.unregister("_fw_pmap")
        accepted = after - before
        return IngestReport(name, accepted, valid - accepted, rejected, time.perf_counter() - t0,
                            erased=int(erased))

    # ------------------------------------------------------------------ privacy
    def _pseudonymize(self, c: duckdb.DuckDBPyConnection, src: str, parsed: str) -> str:
        """``parsed`` with user ids replaced by pseudonyms, before anything derives from them.

        The distinct ids of the batch are read once, mapped in Python (one HMAC each) and
        joined back in SQL. Text sources are parsed once into a temporary table first (a
        second CSV scan would cost more and repeat its structural rejects); Parquet and
        in-memory tables are read twice, the first time for the id column only.
        """
        if "read_parquet(" not in src and "_fw_src" not in src:
            c.execute(f"CREATE OR REPLACE TEMP TABLE _fw_parsed AS SELECT * FROM {parsed}")
            parsed = "_fw_parsed"
        ids = [r[0] for r in c.execute(f"SELECT DISTINCT user_id FROM {parsed} "
                                       "WHERE user_id IS NOT NULL").fetchall()]
        fn = self.pseudonymizer
        c.register("_fw_pmap", pa.table({"raw": pa.array(ids, pa.string()),
                                         "pid": pa.array([fn(v) for v in ids], pa.string())}))
        return (f"(SELECT p.* REPLACE (m.pid AS user_id) FROM {parsed} p "
                "LEFT JOIN _fw_pmap m ON m.raw = p.user_id)")

    def _csv_structural_rejects(self, name: str) -> int:
        """Move lines DuckDB's CSV reader could not split into ``rejects``.

        A pseudonymised store keeps their source, line, field and reason but not the line's
        text: it holds the raw user id, and a line that could not be split has no field to
        pseudonymise reliably.
        """
        n = self.con.execute("SELECT count(*) FROM reject_errors").fetchone()[0]
        if n:
            raw, note = (("csv_line", "''") if self.pseudonymizer is None else
                         ("NULL", "'; line text not kept (it holds the raw user id): see "
                                  "that line of the source'"))
            self.con.execute(f"""INSERT INTO rejects SELECT ?, line, coalesce(column_name, ''),
                error_type || ': ' || error_message || {note}, {raw}, now()
                FROM reject_errors""", [name])
            self.con.execute("DELETE FROM reject_errors")
            self.con.execute("DELETE FROM reject_scans")
        return int(n)

    def add_events(self, events: Iterable[Mapping[str, Any]], source_name: str = "<api>"
                   ) -> IngestReport:
        """Ingest a small batch of event dicts (the service lands its batches through
        :meth:`ingest_rows`)."""
        rows = [dict(e) for e in events]
        for r in rows:
            if isinstance(r.get("context"), dict):
                r["context"] = json.dumps(r["context"])
            if isinstance(r.get("ts"), datetime):
                r["ts"] = utc(r["ts"]).isoformat()
        df = pd.DataFrame(rows, columns=list(EVENT_COLUMNS)).astype(object)
        df = df.where(pd.notna(df), None).astype(str).replace({"None": None})
        return self.ingest(df, source_name=source_name)

    def count_events(self, since: datetime | None = None, until: datetime | None = None
                     ) -> int:
        """Events with ``since <= ts < until`` (either bound optional)."""
        where, params = _window(since, until)
        return int(self.scalar(f"SELECT count(*) FROM events WHERE {where}", params))

    def rejects(self, source: str | None = None) -> pd.DataFrame:
        if source is None:
            return self.query("SELECT * FROM rejects ORDER BY source, row")
        return self.query("SELECT * FROM rejects WHERE source = ? ORDER BY row", [source])

    def events(self, where: str = "", params: list | None = None) -> pd.DataFrame:
        return self.query(f"SELECT * FROM events {('WHERE ' + where) if where else ''} "
                          "ORDER BY ts, event_id", params)

    # ------------------------------------------------------------------ training view
    def interactions(self, since: datetime | None = None, until: datetime | None = None, *,
                     weights: InteractionWeights | None = None) -> Interactions:
        """The weighted user x item matrix of events in ``[since, until)``.

        Hide and report events carry no weight and are returned as ``negatives``.
        """
        w = weights or InteractionWeights()
        where, params = _window(since, until)
        neg = ", ".join(f"'{k}'" for k in NEGATIVE_KINDS)
        cur = self.cursor()
        pos = cur.sql(f"""SELECT user_id, item_id, sum(w) AS weight, max(epoch(ts)) AS ts
            FROM (SELECT user_id, item_id, ts, {w.sql()} AS w FROM events
                  WHERE {where} AND kind NOT IN ({neg}))
            WHERE w > 0 GROUP BY user_id, item_id""", params=params).to_arrow_table()
        negs = cur.sql(f"""SELECT DISTINCT user_id, item_id FROM events
            WHERE {where} AND kind IN ({neg})""", params=params).to_arrow_table()
        return Interactions.from_pairs(pos, negs, item_titles=self.item_titles(), since=since,
                                       until=until)

def _window(since: datetime | None, until: datetime | None) -> tuple[str, list]:
    """SQL condition and parameters of ``since <= ts < until`` (either bound optional)."""
    cond, params = ["TRUE"], []
    if since is not None:
        cond.append("ts >= ?")
        params.append(utc(since))
    if until is not None:
        cond.append("ts < ?")
        params.append(utc(until))
    return " AND ".join(cond), params
