"""`EventStore`: the embedded DuckDB store of events, items, users, campaigns and rejects."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from feedwise.errors import DataError
from feedwise.interactions import Interactions, InteractionWeights
from feedwise.schema import (
    CAMPAIGN_COLUMNS,
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    NEGATIVE_KINDS,
    USER_COLUMNS,
    Item,
    User,
    utc,
)
from feedwise.store.ingest import (
    PRESET_COLUMNS,
    PRESET_DELIMITERS,
    IngestReport,
    build_select,
    parse_mapping,
    source_relation,
)

DEFAULT_DB = "feedwise.duckdb"

REJECT_COLUMNS = {"source": "VARCHAR", "row": "BIGINT", "field": "VARCHAR", "reason": "VARCHAR",
                  "raw": "VARCHAR", "rejected_at": "TIMESTAMPTZ"}
#: Erased users: a one-way digest of the stored user id (never the id) and the erasure time.
TOMBSTONE_COLUMNS = {"digest": "VARCHAR", "erased_at": "TIMESTAMPTZ"}
#: Domain separation of tombstone digests, so a digest never equals a plain hash of the id.
TOMBSTONE_PREFIX = "feedwise-tombstone:v1:"


def tombstone_digest(stored_user_id: str) -> str:
    """The tombstone of a stored user id: ``sha256(TOMBSTONE_PREFIX + id)`` (hex)."""
    return hashlib.sha256((TOMBSTONE_PREFIX + str(stored_user_id)).encode("utf-8")).hexdigest()


def _token_pattern(value: str) -> str:
    """A regex matching ``value`` as a whole token (a JSON value or a delimited field)."""
    return r"(^|[^A-Za-z0-9_.@-])" + re.escape(value) + r"($|[^A-Za-z0-9_.@-])"


def default_db_path() -> str:
    """``$FEEDWISE_DB`` or ``feedwise.duckdb`` in the working directory."""
    return os.environ.get("FEEDWISE_DB", DEFAULT_DB)


def _ddl(name: str, cols: Mapping[str, str], key: str | None = None) -> str:
    body = ", ".join(f'"{c}" {t}' for c, t in cols.items())
    pk = f", PRIMARY KEY ({key})" if key else ""
    return f"CREATE TABLE IF NOT EXISTS {name} ({body}{pk})"


class EventStore:
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

    def __init__(self, path: str | os.PathLike | None = None, *, read_only: bool = False,
                 pseudonymizer: Callable[[str], str] | None = None) -> None:
        self.path = str(path) if path is not None else default_db_path()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(self.path, read_only=read_only)
        self.con.execute("SET TimeZone='UTC'")
        self._lock = threading.RLock()
        self.pseudonymizer = pseudonymizer
        if not read_only:
            self._create()

    # ------------------------------------------------------------------ lifecycle
    def _create(self) -> None:
        c = self.con
        c.execute(_ddl("events", EVENT_COLUMNS))
        c.execute(_ddl("items", ITEM_COLUMNS, "item_id"))
        c.execute(_ddl("users", USER_COLUMNS, "user_id"))
        c.execute(_ddl("campaigns", CAMPAIGN_COLUMNS, "campaign_id"))
        c.execute(_ddl("rejects", REJECT_COLUMNS))
        c.execute(_ddl("tombstones", TOMBSTONE_COLUMNS, "digest"))

    def reset(self) -> None:
        """Delete every event, item, user, campaign and reject (keeps the tables)."""
        with self._lock:
            for table in ("events", "items", "users", "campaigns", "rejects"):
                self.con.execute(f"DELETE FROM {table}")

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for concurrent readers (one per thread)."""
        cur = self.con.cursor()
        cur.execute("SET TimeZone='UTC'")
        return cur

    def query(self, sql: str, params: list | tuple | None = None) -> pd.DataFrame:
        """Run a read query and return a DataFrame."""
        return self.cursor().execute(sql, params or []).df()

    def scalar(self, sql: str, params: list | tuple | None = None) -> Any:
        row = self.cursor().execute(sql, params or []).fetchone()
        return row[0] if row else None

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

    def user_key(self, user_id: str) -> str:
        """The id under which ``user_id`` is stored (its pseudonym when one is configured)."""
        return self.pseudonymizer(str(user_id)) if self.pseudonymizer else str(user_id)

    def user_tables(self) -> list[str]:
        """Every base table of the database with a ``user_id`` column (whoever created it)."""
        rows = self.cursor().execute("""SELECT DISTINCT c.table_name
            FROM information_schema.columns c JOIN information_schema.tables t
              ON t.table_catalog = c.table_catalog AND t.table_schema = c.table_schema
             AND t.table_name = c.table_name
            WHERE c.column_name = 'user_id' AND t.table_type = 'BASE TABLE'
              AND c.table_schema = 'main' AND c.table_catalog = current_database()
            ORDER BY 1""").fetchall()
        return [r[0] for r in rows]

    def is_erased(self, user_id: str) -> bool:
        """Whether ``user_id`` (an external id) has been erased."""
        return bool(self.scalar("SELECT count(*) FROM tombstones WHERE digest = ?",
                                [tombstone_digest(self.user_key(user_id))]))

    def erase_user(self, user_id: str, *, now: datetime | None = None) -> dict[str, int]:
        """Delete every row about ``user_id`` and record a tombstone, in one transaction.

        Deletes the rows of every table with a ``user_id`` column (events, users, profiles,
        ad state, consent records, ...), and ``rejects`` rows whose raw text holds the id as
        a whole token (JSON value or delimited field; a reject of another user that holds the
        same token goes too, which only costs a diagnostic row). The tombstone, a one-way
        digest of the stored id, makes :meth:`ingest` skip the user's events from then on.

        Args:
            user_id: The external id (pseudonymised here when the store has a pseudonymizer).
            now: Erasure time (default: the current time).

        Returns:
            Rows deleted per table.
        """
        key = self.user_key(user_id)
        ids = list(dict.fromkeys([key, str(user_id)]))
        when = utc(now) if now is not None else pd.Timestamp.now(tz="UTC").to_pydatetime()
        out: dict[str, int] = {}
        with self._lock:
            c = self.con
            c.execute("BEGIN TRANSACTION")
            try:
                for t in self.user_tables():
                    n = c.execute(f'DELETE FROM "{t}" WHERE user_id IN (SELECT unnest(?))',
                                  [ids]).fetchone()[0]
                    out[t] = int(n)
                pats = list(dict.fromkeys(_token_pattern(v) for i in ids
                                          for v in (i, json.dumps(i)[1:-1])))
                cond = " OR ".join("regexp_matches(raw, ?)" for _ in pats)
                n = c.execute(f"DELETE FROM rejects WHERE raw IS NOT NULL AND ({cond})",
                              pats).fetchone()[0]
                out["rejects"] = out.get("rejects", 0) + int(n)
                # only the stored id: an unkeyed digest of a raw id could be reversed by
                # guessing ids, which would undo the pseudonymisation
                c.execute("INSERT OR IGNORE INTO tombstones VALUES (?, ?)",
                          [tombstone_digest(key), when])
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
        return out

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
        """Ingest a small batch of event dicts (the API path)."""
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

    def item_titles(self) -> dict[str, str]:
        """Item id -> title of every item that has one (labels for reasons)."""
        df = self.query("SELECT item_id, title FROM items WHERE title IS NOT NULL")
        return dict(zip(df["item_id"], df["title"], strict=True))

    # ------------------------------------------------------------------ records
    def _upsert(self, table: str, cols: Mapping[str, str], key: str, df: pd.DataFrame) -> int:
        if df.empty:
            return 0
        missing = [c for c in df.columns if c not in cols]
        if missing:
            raise DataError(f"{table}: unknown column(s) {missing}; columns are {list(cols)}")
        if df[key].isna().any():
            bad = int(np.flatnonzero(df[key].isna().to_numpy())[0])
            raise DataError(f"{table}: row {bad + 1} has no {key}")
        df = df.drop_duplicates(subset=[key], keep="last")
        names = ", ".join(f'"{c}"' for c in df.columns)
        casts = ", ".join(f'CAST("{c}" AS {cols[c]}) AS "{c}"' for c in df.columns)
        with self._lock:
            self.con.register("_fw_up", df)
            try:
                self.con.execute(f"INSERT OR REPLACE INTO {table} ({names}) "
                                 f"SELECT {casts} FROM _fw_up")
            finally:
                self.con.unregister("_fw_up")
        return len(df)

    def upsert_items(self, items: pd.DataFrame | Iterable[Item | Mapping[str, Any]]) -> int:
        """Insert or replace items (posts and ad creatives) by ``item_id``."""
        if not isinstance(items, pd.DataFrame):
            items = pd.DataFrame([Item.model_validate(i).model_dump() for i in items])
        return self._upsert("items", ITEM_COLUMNS, "item_id", items)

    def upsert_users(self, users: pd.DataFrame | Iterable[User | Mapping[str, Any]]) -> int:
        """Insert or replace users (consent flags and attributes) by ``user_id``."""
        if isinstance(users, pd.DataFrame) and self.pseudonymizer is not None and len(users):
            users = users.assign(user_id=[self.user_key(u) for u in users["user_id"]])
        if not isinstance(users, pd.DataFrame):
            now = pd.Timestamp.now(tz="UTC")
            rows = []
            for u in users:
                u = User.model_validate(u)
                rows.append({"user_id": self.user_key(u.user_id),
                             "consent_personalization": u.consent.personalization,
                             "consent_ads": u.consent.ads,
                             "consent_analytics": u.consent.analytics,
                             "consent_updated_at": now, "consent_source": "api",
                             "attributes": json.dumps(u.attributes)})
            users = pd.DataFrame(rows)
        return self._upsert("users", USER_COLUMNS, "user_id", users)

    def upsert_campaigns(self, campaigns: pd.DataFrame) -> int:
        """Insert or replace campaigns by ``campaign_id``."""
        return self._upsert("campaigns", CAMPAIGN_COLUMNS, "campaign_id", campaigns)

    def items(self) -> pd.DataFrame:
        return self.query("SELECT * FROM items ORDER BY item_id")

    def posts(self) -> pd.DataFrame:
        """The organic items (not ad creatives): the catalogue recommenders learn from,
        including posts nobody has engaged with yet."""
        return self.query("SELECT * FROM items WHERE kind IS DISTINCT FROM 'ad' "
                          "ORDER BY item_id")  # a table upserted without kind: posts

    def users(self) -> pd.DataFrame:
        return self.query("SELECT * FROM users ORDER BY user_id")

    def campaigns(self) -> pd.DataFrame:
        return self.query("SELECT * FROM campaigns ORDER BY campaign_id")


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
