"""`EventStore`: the embedded DuckDB store of events, items, users, campaigns and rejects."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
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
from feedwise.store.banditlog import BanditLog
from feedwise.store.cascades import Cascades
from feedwise.store.edges import Edges
from feedwise.store.events import EventReads
from feedwise.store.feedback import Feedback
from feedwise.store.ingest import (
    CSV_REASONS,
    EXCERPT,
    JSONL_REASONS,
    PRESET_COLUMNS,
    PRESET_DELIMITERS,
    STORED_CONFLICT,
    IngestReport,
    Source,
    build_select,
    clean_error,
    has_inner_blank_line,
    open_source,
    parse_csv_lines,
    parse_mapping,
)
from feedwise.store.messages import Messages
from feedwise.store.meta import StoreMeta
from feedwise.store.notifications import Notifications
from feedwise.store.privacy import TOMBSTONE_PREFIX, PrivacyRecords
from feedwise.store.profiles import Profiles
from feedwise.store.recordfiles import RecordFiles
from feedwise.store.records import Records
from feedwise.store.serving import ServedLog


class EventStore(Records, EventReads, Feedback, AdLedger, ServedLog, Profiles, PrivacyRecords,
                 StoreMeta, Notifications, Edges, Cascades, Messages, RecordFiles,
                 BanditLog):
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
               source_name: str | None = None, ts_default: str | None = None
               ) -> IngestReport:
        """Validate and land events from a file (CSV, TSV, Parquet, JSONL) or a table.

        Valid rows land; bad rows go to ``rejects`` with source, 1-based row (JSONL: the
        line number; CSV: the data row, header and blank lines not counted), field, reason
        and the row's stored ``user_id``; so does a line that is no row at all (a JSONL line
        that is not a JSON object, a CSV line with an unbalanced quote), its ``raw`` a short
        excerpt. Columns no field reads are named in ``IngestReport.ignored_columns``. Per
        ``event_id``, the first row of the batch is kept; a later row
        with the same id is a duplicate when its content is the same, and a reject when it
        differs, as is a row whose id is stored with different content. A path is read
        literally (no glob patterns). The whole batch is one transaction.

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
            ts_default: The time of every event of a source with no ``ts`` column (and no
                ``ts`` mapping), e.g. ``"2024-01-01"`` for data without time; same as
                mapping ``ts==2024-01-01``.

        Raises:
            DataError: The source cannot be read at all (no such file, not Parquet, no
                column for a required field); never for a bad row.
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
            src = open_source(c, source, columns=columns, delimiter=delimiter, header=header,
                              fmt=fmt, mapping=m)
            if ts_default is not None and "ts" not in m and "ts" not in src.columns:
                m["ts"] = "=" + ts_default  # data without time: one documented instant
            name = source_name or src.name
            try:
                try:
                    counts = self._land(c, src, name, m, ts_unit)
                except duckdb.Error:
                    if src.kind != "csv" or src.fallback:
                        raise
                    # DuckDB's CSV reader gave up on the file (its state machine fails on
                    # some quoted text): the line-safe reader takes it
                    src.fallback = True
                    counts = self._land(c, src, name, m, ts_unit)
            except duckdb.Error as e:  # never the SQL, never the input it echoes
                raise DataError(f"{name}: cannot ingest: {clean_error(e)}") from None
            finally:
                for view in src.registered:
                    c.unregister(view)
                for table in src.temp:
                    c.execute(f"DROP TABLE IF EXISTS {table}")
        accepted, duplicates, rejected, erased, stored = counts
        return IngestReport(name, accepted, duplicates, rejected, time.perf_counter() - t0,
                            stored_ids=stored,
                            erased=erased, ignored_columns=src.ignored(m))

    def _land(self, c: duckdb.DuckDBPyConnection, src: Source, name: str,
              m: dict[str, str], ts_unit: str
              ) -> tuple[int, int, int, int, frozenset[str]]:
        """Stage, check and land one source in one transaction: (accepted, duplicates,
        rejected, erased, ids of valid rows stored before)."""
        cols = ", ".join(f'"{k}"' for k in EVENT_COLUMNS)
        user_col = None
        if self.pseudonymizer is not None:
            ucol = m.get("user_id", "user_id")
            user_col = None if ucol.startswith("=") else ucol
        c.execute("BEGIN TRANSACTION")
        try:
            # the counts a landing needs, in as few statements as it can (each statement
            # costs a few tenths of a ms whatever it reads: a service lands many batches)
            before, tombstoned = c.execute("SELECT (SELECT count(*) FROM events), "
                                           "(SELECT count(*) FROM tombstones)").fetchall()[0]
            types = self._stage(c, src, m, ts_unit)
            if src.kind == "csv":
                if not src.fallback and self._csv_needs_care(c, src):
                    src.fallback = True
                    types = self._stage(c, src, m, ts_unit)
                self._csv_bad_lines(c, src)
            erased = 0
            if tombstoned:
                # erased users stay erased: their rows land nowhere, not even in rejects
                erased = c.execute(f"""DELETE FROM _fw_stage WHERE user_id IS NOT NULL AND
                    sha256('{TOMBSTONE_PREFIX}' || user_id) IN
                    (SELECT digest FROM tombstones)""").fetchone()[0]
            hashes = self._id_hashes.of_stage(c)
            repeated, stored = self._conflicts(c, before, hashes)
            known = bool(stored)
            valid, rejected = c.execute(
                "SELECT count(*) FILTER (WHERE _reason IS NULL), "
                "count(*) FILTER (WHERE _reason IS NOT NULL) FROM _fw_stage").fetchall()[0]
            # per id the first row of the batch (the others are identical by now)
            rows = (f"SELECT DISTINCT ON (event_id) {cols} FROM _fw_stage "
                    f"WHERE _reason IS NULL ORDER BY event_id, _row" if repeated else
                    f"SELECT {cols} FROM _fw_stage WHERE _reason IS NULL")
            new = "WHERE v.event_id NOT IN (SELECT event_id FROM _fw_known)" if known else ""
            accepted = c.execute(f"INSERT INTO events ({cols}) SELECT {cols} FROM ({rows}) v "
                                 f"{new}").fetchall()[0][0]
            self._id_hashes.inserted(hashes, accepted)
            structural = 0
            if src.kind == "csv":
                structural = self._csv_structural_rejects(name)
            elif src.kind == "jsonl":
                structural = self._jsonl_line_rejects(name)
            if rejected:
                c.execute(f"""INSERT INTO rejects
                        (source, "row", field, reason, raw, rejected_at, user_id)
                    SELECT ?, r._row, split_part(r._reason, '|', 1),
                           substr(r._reason, strpos(r._reason, '|') + 1),
                           {src.raw(types, user_col)}, now(), r.user_id
                    FROM (SELECT _row, _reason, user_id FROM _fw_stage
                          WHERE _reason IS NOT NULL) r
                    LEFT JOIN {src.raw_rel()} s ON s._row = r._row""", [name])
            if src.kind == "csv":
                self._clear_csv_rejects(c)
            for table in ("_fw_stage", "_fw_known", "_fw_gaps"):
                c.execute(f"DROP TABLE IF EXISTS {table}")
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        finally:
            if self.pseudonymizer is not None:
                c.execute("DROP TABLE IF EXISTS _fw_parsed")
                with contextlib.suppress(duckdb.Error):
                    c.unregister("_fw_pmap")
        return (int(accepted), int(valid) - int(accepted), int(rejected + structural),
                int(erased), stored)

    def _stage(self, c: duckdb.DuckDBPyConnection, src: Source, m: dict[str, str],
               ts_unit: str) -> dict[str, str]:
        """Parse ``src`` into ``_fw_stage`` (the events, their reject reasons, ``_row``);
        return the source's column types."""
        if src.fallback and "_fw_csvfb" not in src.registered:
            assert src.path is not None and src.dialect is not None
            if src.kind == "csv" and "read_csv(" in src.rel:
                self._clear_csv_rejects(c)  # the DuckDB reader's view of this file
            rows, bad = parse_csv_lines(src.path, src.dialect)
            c.register("_fw_csvfb", rows)
            c.register("_fw_csvbad", bad)
            src.registered += ["_fw_csvfb", "_fw_csvbad"]
            src.rel = "(SELECT * FROM _fw_csvfb)"
            src.gaps = False  # rows numbered by the reader itself
        parsed, select, reason, types = build_select(c, src.rel, m, ts_unit, src.columns,
                                                     src.types)
        if self.pseudonymizer is not None:
            # ids are replaced before anything derives from them (event ids, rejects)
            parsed = self._pseudonymize(c, src, parsed)
        c.execute(f"""CREATE OR REPLACE TEMP TABLE _fw_stage AS
            SELECT {select}, {reason} AS _reason, _row FROM {parsed} p""")
        return types

    def _conflicts(self, c: duckdb.DuckDBPyConnection, before: int, hashes: np.ndarray
                   ) -> tuple[bool, frozenset[str]]:
        """Turn rows of ``_fw_stage`` that reuse an ``event_id`` with different content into
        rejects: a row whose id is stored already with other content, then a row of the
        batch later than the first one with its id. Returns (ids repeat in the batch, the
        batch's ids stored already: ``_fw_known``).

        Identical repeats stay valid (duplicates, not inserted). Both checks cost little
        when there is nothing to check: the stored ids are looked up (a semi-join on the
        events' id column whose hash table is built on the batch) only when one of the
        batch's id ``hashes`` is among the stored ids' (:class:`IdHashes`), and the batch's
        own repeats are a count of distinct ids.
        """
        stored: frozenset[str] = frozenset()
        if before and self._id_hashes.may_hold(c, before, hashes):
            c.execute("""CREATE OR REPLACE TEMP TABLE _fw_known AS
                SELECT DISTINCT event_id FROM events WHERE event_id IN
                    (SELECT event_id FROM _fw_stage WHERE _reason IS NULL)""")
            stored = frozenset(r[0] for r in c.execute("SELECT event_id FROM _fw_known"
                                                       ).fetchall())
        if stored:
            # the stored rows of those ids (only now the events' other columns are read)
            diff = _differs("s", "o")
            c.execute(f"""UPDATE _fw_stage SET _reason = 'event_id|event_id ''' ||
                    left(_fw_stage.event_id, 40) || ''' is {STORED_CONFLICT} (' || x.diff ||
                    '){_ONE_ID}'
                FROM (SELECT s._row AS k, min({diff}) AS diff
                      FROM _fw_stage s
                      JOIN (SELECT * FROM events WHERE event_id IN
                            (SELECT event_id FROM _fw_known)) o ON o.event_id = s.event_id
                      WHERE s._reason IS NULL
                      GROUP BY s._row HAVING bool_and({diff} <> '')) x
                WHERE _fw_stage._row = x.k""")
        valid, distinct = c.execute("SELECT count(*), count(DISTINCT event_id) FROM "
                                    "_fw_stage WHERE _reason IS NULL").fetchone()
        repeated = distinct < valid
        if repeated:
            c.execute("""CREATE OR REPLACE TEMP TABLE _fw_first AS
                SELECT DISTINCT ON (event_id) * FROM _fw_stage WHERE _reason IS NULL
                ORDER BY event_id, _row""")
            diff = _differs("_fw_stage", "f")
            c.execute(f"""UPDATE _fw_stage SET _reason = 'event_id|event_id ''' ||
                    left(f.event_id, 40) || ''' is already used by row ' || f._row ||
                    ' of this source with different content (' || {diff} || '){_ONE_ID}'
                FROM _fw_first f
                WHERE _fw_stage.event_id = f.event_id AND _fw_stage._row > f._row
                  AND _fw_stage._reason IS NULL AND {diff} <> ''""")
            c.execute("DROP TABLE _fw_first")
        return repeated, stored

    # ------------------------------------------------------------------ privacy
    def _pseudonymize(self, c: duckdb.DuckDBPyConnection, src: Source, parsed: str) -> str:
        """``parsed`` with user ids replaced by pseudonyms, before anything derives from them.

        The distinct ids of the batch are read once, mapped in Python (one HMAC each) and
        joined back in SQL. Text files are parsed once into a temporary table first (a
        second CSV scan would cost more and repeat its structural rejects); Parquet and
        in-memory tables are read twice, the first time for the id column only.
        """
        if src.kind in ("csv", "jsonl") and not src.fallback:
            c.execute(f"CREATE OR REPLACE TEMP TABLE _fw_parsed AS SELECT * FROM {parsed}")
            parsed = "_fw_parsed"
        ids = [r[0] for r in c.execute(f"SELECT DISTINCT user_id FROM {parsed} "
                                       "WHERE user_id IS NOT NULL").fetchall()]
        fn = self.pseudonymizer
        with contextlib.suppress(duckdb.Error):
            c.unregister("_fw_pmap")
        c.register("_fw_pmap", pa.table({"raw": pa.array(ids, pa.string()),
                                         "pid": pa.array([fn(v) for v in ids], pa.string())}))
        return (f"(SELECT p.* REPLACE (m.pid AS user_id) FROM {parsed} p "
                "LEFT JOIN _fw_pmap m ON m.raw = p.user_id)")

    def _csv_needs_care(self, c: duckdb.DuckDBPyConnection, src: Source) -> bool:
        """Whether DuckDB's reading of a CSV must be replaced by the line-safe reader's: a
        quote left open took the lines after it into one field, a line too long left the
        reader unsure where the next one starts, or rows after a blank line cannot be
        numbered from the reader's rejects (it counts blank lines in their line numbers,
        not as rows)."""
        swallowed, bad = c.execute(
            "SELECT count(*) FILTER (strpos(csv_line, chr(10)) > 0 "
            "OR error_type = 'LINE SIZE OVER MAXIMUM'), count(*) FROM reject_errors"
        ).fetchone()
        assert src.path is not None
        return bool(swallowed) or bool(bad and has_inner_blank_line(src.path))

    def _csv_bad_lines(self, c: duckdb.DuckDBPyConnection, src: Source) -> int:
        """Gather the CSV lines that could not be split (from DuckDB's ``reject_errors``, or
        from the line-safe reader) in ``_fw_badlines``, one per line, by row; then number
        the staged rows as the file does (DuckDB numbers the rows it read, so a row after a
        rejected line would be off by one)."""
        assert src.dialect is not None
        bad = "_fw_csvbad" if src.fallback else "reject_errors"
        c.execute(f"""CREATE OR REPLACE TEMP TABLE _fw_badlines AS
            SELECT line - {int(src.dialect.header)} AS "row", min(column_name) AS column_name,
                   min(error_type) AS error_type, left(min(csv_line), {EXCERPT}) AS excerpt
            FROM {bad} GROUP BY line""")
        n = c.execute("SELECT count(*) FROM _fw_badlines").fetchone()[0]
        if src.fallback or not n:
            return n
        # the k-th row read is row k + (rejected rows r_i with r_i - i < k)
        c.execute("""CREATE OR REPLACE TEMP TABLE _fw_gaps AS
            SELECT "row" - row_number() OVER (ORDER BY "row") AS g FROM _fw_badlines""")
        c.execute("""UPDATE _fw_stage SET _row = _row +
            (SELECT count(*) FROM _fw_gaps WHERE g < _fw_stage._row)""")
        src.gaps = True
        return n

    def _csv_structural_rejects(self, name: str) -> int:
        """Move the CSV lines that could not be split (``_fw_badlines``) into ``rejects``:
        row, reason and the line's first :data:`EXCERPT` characters.

        A pseudonymised store keeps their source, row, field and reason but not the line's
        text: it holds the raw user id, and a line that could not be split has no field to
        pseudonymise reliably.
        """
        n = self.con.execute("SELECT count(*) FROM _fw_badlines").fetchone()[0]
        if n:
            raw, note = (("excerpt", "''") if self.pseudonymizer is None else
                         ("NULL", f"'{_NOT_KEPT}'"))
            reasons = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in CSV_REASONS.items())
            self.con.execute(f"""INSERT INTO rejects
                    (source, "row", field, reason, raw, rejected_at, user_id)
                SELECT ?, "row", coalesce(column_name, ''),
                       CASE error_type {reasons} ELSE 'unreadable line' END
                       || ' (' || error_type || ')' || {note},
                       {raw}, now(), NULL
                FROM _fw_badlines""", [name])
        self.con.execute("DROP TABLE _fw_badlines")
        return int(n)

    def _jsonl_line_rejects(self, name: str) -> int:
        """Move the JSONL lines that are no JSON object into ``rejects`` (row = line
        number, the line's first :data:`EXCERPT` characters; a pseudonymised store keeps no
        text, as for CSV lines)."""
        n = self.con.execute("SELECT count(*) FROM _fw_lines WHERE _bad IS NOT NULL"
                             ).fetchone()[0]
        if n:
            raw, note = ((f"left(line, {EXCERPT})", "''") if self.pseudonymizer is None else
                         ("NULL", f"'{_NOT_KEPT}'"))
            reasons = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}"
                               for k, v in JSONL_REASONS.items())
            self.con.execute(f"""INSERT INTO rejects
                    (source, "row", field, reason, raw, rejected_at, user_id)
                SELECT ?, _row, '', CASE _bad {reasons} END || {note}, {raw}, now(), NULL
                FROM _fw_lines WHERE _bad IS NOT NULL""", [name])
        return int(n)

    def _clear_csv_rejects(self, c: duckdb.DuckDBPyConnection) -> None:
        """Empty DuckDB's CSV reject tables (they outlive a scan)."""
        have = {r[0] for r in c.execute(
            "SELECT table_name FROM duckdb_tables() WHERE temporary AND table_name IN "
            "('reject_errors', 'reject_scans')").fetchall()}
        for table in sorted(have):
            c.execute(f"DELETE FROM {table}")

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
                     weights: InteractionWeights | None = None,
                     exclude_objectors: bool = True) -> Interactions:
        """The weighted user x item matrix of events in ``[since, until)``: the training
        view every model is fitted on.

        Hide and report events carry no weight and are returned as ``negatives``. The
        events of users who objected to profiling (``consent_personalization`` false)
        are left out, so no model trained on this view holds them;
        ``exclude_objectors=False`` keeps them (for analysis that is not profiling).
        """
        w = weights or InteractionWeights()
        where, params = _window(since, until)
        if exclude_objectors:
            where += (" AND user_id NOT IN (SELECT user_id FROM users "
                      "WHERE consent_personalization = false)")
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


#: What a reject says when a pseudonymised store keeps no text of a line.
_NOT_KEPT = ("; line text not kept (it holds the raw user id): see that line of the "
             "source")
#: The end of a conflict's reason.
_ONE_ID = ": an event id names one event; give a different event its own id"
_CONTENT = [c for c in EVENT_COLUMNS if c != "event_id"]


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _differs(a: str, b: str) -> str:
    """SQL: the event fields (but the id) in which rows ``a`` and ``b`` differ, as text
    (``''`` when none)."""
    return "concat_ws(', ', " + ", ".join(
        f"CASE WHEN {a}.\"{c}\" IS DISTINCT FROM {b}.\"{c}\" THEN '{c}' END"
        for c in _CONTENT) + ")"
