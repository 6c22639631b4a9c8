"""The store's privacy records: consent, tombstones, erasure, export and retention."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from feedwise.errors import ConfigError
from feedwise.schema import utc
from feedwise.store.base import StoreBase
from feedwise.store.cascades import anonymise_parent_links

TOMBSTONE_PREFIX = "feedwise-tombstone:v1:"


def _sql_text(value: str) -> str:
    """``value`` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _close(con: duckdb.DuckDBPyConnection, wait_s: float = 10.0) -> None:
    """Close ``con``, waiting while another thread is inside a call on it (DuckDB refuses
    to close a busy connection)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            con.close()
            return
        except duckdb.ResourceInUseException:  # noqa: PERF203 - a short wait, then again
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def tombstone_digest(stored_user_id: str) -> str:
    """The tombstone of a stored user id: ``sha256(TOMBSTONE_PREFIX + id)`` (hex)."""
    return hashlib.sha256((TOMBSTONE_PREFIX + str(stored_user_id)).encode("utf-8")).hexdigest()


#: JSON columns that may name other users (a context's ``shared_by``, the ``follows`` list
#: of a user's attributes): erasure rewrites them without the erased user's ids.
JSON_USER_COLUMNS: tuple[tuple[str, str], ...] = (("events", "context"), ("users", "attributes"))


def scrub_json(value: Any, ids: frozenset[str]) -> Any:
    """Parsed JSON ``value`` without the strings in ``ids``: list elements equal to one are
    dropped, object members keyed by one are dropped, and member values equal to one become
    ``null`` (a top-level string equal to one becomes ``None``). Numbers are left alone."""
    if isinstance(value, dict):
        return {k: (None if isinstance(x, str) and x in ids else scrub_json(x, ids))
                for k, x in value.items() if k not in ids}
    if isinstance(value, list):
        return [scrub_json(x, ids) for x in value if not (isinstance(x, str) and x in ids)]
    return None if isinstance(value, str) and value in ids else value


def _scrubbed_text(text: str, ids: frozenset[str]) -> str | None:
    """JSON text without ``ids`` (:func:`scrub_json`); ``None`` when nothing is left, or
    when Python cannot parse what DuckDB matched (too deep): the value is dropped rather
    than kept."""
    try:
        out = scrub_json(json.loads(text), ids)
    except (ValueError, RecursionError):
        return None
    return None if out is None else json.dumps(out)


def _naming(table: str, column: str, n_ids: int) -> str:
    """SQL of ``rowid`` and ``column`` of the rows of ``table`` whose JSON ``column`` holds
    one of ``n_ids`` ids as a string value or an object key (parameters: the ids, then the
    ids as one list, twice). The ``contains`` tests only narrow the rows parsed: a JSON
    string equal to an id is in the text verbatim or written with an escape (a backslash);
    the match itself is on the parsed JSON (``json_tree``)."""
    col = f'"{column}"'
    hint = " OR ".join([f"contains({col}, ?)"] * n_ids + [f"contains({col}, '\\')"])
    return f"""WITH cand AS MATERIALIZED (
            SELECT rowid AS rid, {col} AS doc FROM "{table}"
            WHERE {col} IS NOT NULL AND ({hint}) AND json_valid({col}))
        SELECT rid, doc FROM cand WHERE EXISTS (SELECT 1 FROM json_tree(cand.doc) j
            WHERE (j.type = 'VARCHAR' AND j.value ->> '$' IN (SELECT unnest(?)))
               OR (j.key IN (SELECT unnest(?)) AND NOT ends_with(j.fullkey, ']')))"""


def _purge_edges(c: Any, cutoff: datetime, not_after: datetime | None) -> int:
    """Retention of the social graph: delete the edge acts dated before ``cutoff`` that no
    longer stand (a follow later undone or repeated, the undoing act itself), so what
    stands now is kept however old (a follow made years ago is still a follow), and acts
    dated after ``not_after``. Undated edges have no age and stay. Rows deleted."""
    base = ("CASE kind WHEN 'unfollow' THEN 'follow' WHEN 'unfriend' THEN 'friend' "
            "WHEN 'unblock' THEN 'block' ELSE kind END")
    pair = (f"CASE WHEN {base} = 'friend' THEN least(src_id, dst_id) ELSE src_id END, "
            f"CASE WHEN {base} = 'friend' THEN greatest(src_id, dst_id) ELSE dst_id END, "
            f"{base}")
    n = int(c.execute(f"""DELETE FROM edges WHERE rowid IN (
        SELECT r FROM (SELECT rowid AS r, ts, kind,
                row_number() OVER (PARTITION BY {pair} ORDER BY ts DESC NULLS LAST,
                                   rowid DESC) AS k
            FROM edges)
        WHERE ts < ? AND (k > 1 OR kind IN ('unfollow', 'unfriend', 'unblock')))""",
                      [cutoff]).fetchone()[0])
    if not_after is not None:
        n += int(c.execute("DELETE FROM edges WHERE ts > ?", [not_after]).fetchone()[0])
    return n


class PrivacyRecords(StoreBase):
    """Consent, erasure, export and retention (part of :class:`~feedwise.store.EventStore`)."""

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

    def _ids(self, user_id: str) -> list[str]:
        """The ids rows about ``user_id`` may carry: the stored id and the id as given."""
        return list(dict.fromkeys([self.user_key(user_id), str(user_id)]))

    # ------------------------------------------------------------------ consent
    def consent(self, stored_id: str) -> dict[str, Any] | None:
        """The ``consent_*`` columns of a user's row (``None``: no row); NULL or NaN flags
        are left to the caller."""
        df = self.query("SELECT consent_personalization, consent_ads, consent_analytics, "
                        "consent_updated_at, consent_source FROM users WHERE user_id = ?",
                        [stored_id])
        return None if df.empty else df.iloc[0].to_dict()

    def record_consent(self, stored_id: str, flags: Mapping[str, bool | None], *,
                       changed: Iterable[str], now: datetime, source: str,
                       attributes: str | None = None) -> None:
        """Write a user's three consent flags (``personalization``, ``ads``,
        ``analytics``; ``None`` stores NULL: never set, granted by default) to ``users``
        (creating the row) and append the ``changed`` flags to ``consent_log``, in one
        transaction. ``consent_updated_at`` and ``consent_source`` become ``now`` and
        ``source`` only when a flag changed; ``attributes`` (JSON text) replaces the
        stored attributes when given."""
        changed = list(changed)
        sets = [f"consent_{f} = excluded.consent_{f}" for f in ("personalization", "ads",
                                                                "analytics")]
        if changed:
            sets += ["consent_updated_at = excluded.consent_updated_at",
                     "consent_source = excluded.consent_source"]
        if attributes is not None:
            sets.append("attributes = excluded.attributes")
        with self.transaction() as c:
            c.execute(f"""INSERT INTO users (user_id, consent_personalization, consent_ads,
                    consent_analytics, consent_updated_at, consent_source, attributes)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (user_id) DO UPDATE SET {", ".join(sets)}""",
                      [stored_id, flags["personalization"], flags["ads"], flags["analytics"],
                       now if changed else None, source if changed else None, attributes])
            for f in changed:
                c.execute("INSERT INTO consent_log VALUES (?, ?, ?, ?, ?)",
                          [stored_id, f, flags[f], source, now])

    def opted_out_users(self) -> set[str]:
        """Stored ids of the users who withdrew ``personalization`` consent."""
        return set(self.query("SELECT user_id FROM users WHERE consent_personalization = false"
                              )["user_id"])

    # ------------------------------------------------------------------ erasure
    def is_erased(self, user_id: str) -> bool:
        """Whether ``user_id`` (an external id) has been erased."""
        return bool(self.scalar("SELECT count(*) FROM tombstones WHERE digest = ?",
                                [tombstone_digest(self.user_key(user_id))]))

    def erased_ids(self, stored_ids: Iterable[str]) -> set[str]:
        """The stored ids among ``stored_ids`` that have been erased (tombstoned)."""
        if not self.scalar("SELECT count(*) FROM tombstones"):  # the usual case: no hashing
            return set()
        digests = {tombstone_digest(u): u for u in stored_ids}
        if not digests:
            return set()
        gone = self.query("SELECT digest FROM tombstones WHERE digest IN (SELECT unnest(?))",
                          [list(digests)])["digest"]
        return {digests[d] for d in gone}

    def erase_user(self, user_id: str, *, now: datetime | None = None) -> dict[str, int]:
        """Delete every row about ``user_id``, rewrite the rows of others that name them, and
        record a tombstone, in one transaction. Every row is found by a user-id column or
        by a parsed JSON value, never by searching text.

        * every table with a ``user_id`` column (events, users, consent log, profiles, ad
          impressions, rejected rows, and any table added later): the user's rows deleted;
        * ``items`` the user authored (``author_id``): deleted (the posts are the user's
          content; other users' events on them stay, naming only the item id);
        * ``events.context`` and ``users.attributes`` of other users (a ``follows`` list, a
          context's ``shared_by``): each JSON string equal to the id is removed from its
          list or set to ``null``, and members keyed by it are dropped (:func:`scrub_json`);
        * ``rejects`` of other users: the same inside the raw row's ``context`` member;
        * ``events.parent_id`` of other users naming one of the user's events (a reshare
          of their share): replaced by an ``erased:<random>`` placeholder, one per erased
          parent (``store/cascades.py``: ``anonymise_parent_links``).

        The tombstone, a keyed one-way digest of the stored id, makes :meth:`ingest` skip
        the user's events from then on. Deleted rows' bytes stay in the database file until
        :meth:`compact` rewrites it.

        Args:
            user_id: The external id (pseudonymised here when the store has a pseudonymizer).
            now: Erasure time (default: the current time).

        Returns:
            Rows deleted per table (``items``: authored posts), and rows rewritten per
            column as ``"table.column"``.
        """
        key = self.user_key(user_id)
        ids = self._ids(user_id)
        when = utc(now) if now is not None else pd.Timestamp.now(tz="UTC").to_pydatetime()
        out: dict[str, int] = {}
        with self.transaction() as c:
            # before the user's events go: others' reshares of them get an anonymous parent
            if n_parents := anonymise_parent_links(c, ids):  # reported when there were any
                out["events.parent_id"] = n_parents
            for t in self.user_tables():
                n = c.execute(f'DELETE FROM "{t}" WHERE user_id IN (SELECT unnest(?))',
                              [ids]).fetchone()[0]
                out[t] = int(n)
            out["items"] = int(c.execute("DELETE FROM items WHERE author_id IN "
                                         "(SELECT unnest(?))", [ids]).fetchone()[0])
            # the social graph, both directions, and rejected edge rows naming them
            out["edges"] = int(c.execute(
                "DELETE FROM edges WHERE src_id IN (SELECT unnest(?)) OR dst_id IN "
                "(SELECT unnest(?))", [ids, ids]).fetchone()[0])
            out["rejects"] = out.get("rejects", 0) + int(c.execute(
                "DELETE FROM rejects WHERE raw IS NOT NULL AND json_valid(raw) AND "
                "json_extract_string(raw, '$.dst_id') IN (SELECT unnest(?)) AND "
                "json_exists(raw, '$.src_id')", [ids]).fetchone()[0])
            gone = frozenset(ids)
            for table, column in JSON_USER_COLUMNS:
                rows = c.execute(_naming(table, column, len(ids)), [*ids, ids, ids]).fetchall()
                for rid, doc in rows:
                    c.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE rowid = ?',
                              [_scrubbed_text(doc, gone), rid])
                out[f"{table}.{column}"] = len(rows)
            out["rejects.raw"] = self._scrub_reject_contexts(c, ids)
            # only the stored id: an unkeyed digest of a raw id could be reversed by
            # guessing ids, which would undo the pseudonymisation
            c.execute("INSERT OR IGNORE INTO tombstones VALUES (?, ?)",
                      [tombstone_digest(key), when])
        return out

    @staticmethod
    def _scrub_reject_contexts(c: Any, ids: list[str]) -> int:
        """Rewrite the ``context`` member of other users' rejected rows (the raw row as
        JSON; the context itself may be JSON text) without ``ids``; rows rewritten."""
        gone = frozenset(ids)
        hint = " OR ".join(["contains(raw, ?)"] * len(ids))
        rows = c.execute(f"""SELECT rowid, raw FROM rejects WHERE raw IS NOT NULL
            AND ({hint} OR contains(raw, '\\')) AND json_valid(raw)""", ids).fetchall()
        n = 0
        for rid, raw in rows:
            try:
                doc = json.loads(raw)
            except (ValueError, RecursionError):
                continue
            ctx = doc.get("context") if isinstance(doc, dict) else None
            if isinstance(ctx, str):
                try:
                    json.loads(ctx)
                except (ValueError, RecursionError):  # not JSON: never parsed as a context
                    continue
                new: Any = _scrubbed_text(ctx, gone)
            elif isinstance(ctx, dict | list):
                try:
                    new = scrub_json(ctx, gone)
                except RecursionError:
                    new = None
            else:
                continue
            if new != ctx:
                doc["context"] = new
                c.execute("UPDATE rejects SET raw = ? WHERE rowid = ?", [json.dumps(doc), rid])
                n += 1
        return n

    def compact(self) -> bool:
        """Rewrite the database file from its live rows, so deleted rows leave no bytes.

        DuckDB keeps the bytes of deleted rows in the file (deletion marks, freed blocks)
        until they happen to be overwritten; an erasure is only complete on disk after this.
        The database is copied (``COPY FROM DATABASE``) into a fresh file beside it, which
        then replaces it, and the store reconnects. It holds the write lock throughout
        (writes wait; the copy runs at about 1M events a second); cursors opened before are
        closed. The store must be the only connection to the file in this process
        (:class:`~feedwise.errors.ConfigError` otherwise, with the file unchanged).

        Returns:
            ``False`` for an in-memory store (nothing on disk), else ``True``.
        """
        if self.path == ":memory:":
            return False
        path = Path(self.path)
        tmp = path.with_name(f".{path.name}.compact-{os.getpid()}")
        with self._lock:
            for f in (tmp, Path(f"{tmp}.wal")):
                f.unlink(missing_ok=True)
            c = self.con
            for name in ("fw_compact", "fw_compact_probe"):  # left by a failed attempt
                c.execute(f"DETACH DATABASE IF EXISTS {name}")
            c.execute("CHECKPOINT")
            db = c.execute("SELECT current_database()").fetchone()[0]
            c.execute("ATTACH " + _sql_text(str(tmp)) + " AS fw_compact")
            try:
                c.execute(f'COPY FROM DATABASE "{db}" TO fw_compact')
            except BaseException:
                c.execute("DETACH fw_compact")
                tmp.unlink(missing_ok=True)
                raise
            c.execute("DETACH fw_compact")
            # an attached database is seen by every connection of the same instance: if it is
            # still there after this connection closes, another one holds the file open
            c.execute("ATTACH ':memory:' AS fw_compact_probe")
            with self._gate:  # no cursor is made while the connection is swapped
                self._generation += 1  # reads failing from here on are run again
                try:
                    _close(c)
                    probe = duckdb.connect(self.path)
                except BaseException:
                    tmp.unlink(missing_ok=True)
                    self.con = self._connect()  # the file is unchanged
                    self.con.execute("DETACH DATABASE IF EXISTS fw_compact_probe")
                    raise
                shared = probe.execute("SELECT count(*) FROM duckdb_databases() "
                                       "WHERE database_name = 'fw_compact_probe'").fetchone()[0]
                if shared or Path(f"{path}.wal").exists():
                    if shared:
                        probe.execute("DETACH fw_compact_probe")
                    self.con = self._configure(probe)
                    tmp.unlink(missing_ok=True)
                    raise ConfigError(f"{path}: another connection of this process has the "
                                      "store open; close it, then compact")
                probe.close()
                try:
                    if Path(f"{path}.wal").exists():  # it would be replayed into the copy
                        tmp.unlink(missing_ok=True)
                        raise ConfigError(f"{path}: the store's write-ahead log is still "
                                          "there after closing; not compacted")
                    os.replace(tmp, path)
                finally:  # replaced or not, the store is connected again
                    self.con = self._connect()
        return True

    # ------------------------------------------------------------------ access
    def user_rows(self, user_id: str) -> dict[str, list[dict[str, Any]]]:
        """Every stored row about ``user_id`` (external id), per table: the rows of each
        table with a ``user_id`` column (``events`` by time; ``rejects`` by the user id
        parsed from the rejected row) and, as ``items``, the posts the user authored.
        Values are as DuckDB returns them. Rows are found by those columns only."""
        ids = self._ids(user_id)
        out: dict[str, list[dict[str, Any]]] = {}
        for t in self.user_tables():
            order = {"events": " ORDER BY ts", "rejects": ' ORDER BY source, "row"'}.get(t, "")
            out[t] = self._dicts(f'SELECT * FROM "{t}" WHERE user_id IN (SELECT unnest(?))'
                                 f"{order}", [ids])
        out["items"] = self._dicts("SELECT * FROM items WHERE author_id IN (SELECT unnest(?)) "
                                   "ORDER BY item_id", [ids])
        # the social graph: what the user did, and what others did to them but block
        # and unblock (another's block is the blocker's record, not the user's)
        out["edges"] = self._dicts(
            "SELECT * FROM edges WHERE src_id IN (SELECT unnest(?)) OR (dst_id IN "
            "(SELECT unnest(?)) AND kind NOT IN ('block', 'unblock')) "
            "ORDER BY ts ASC NULLS FIRST, edge_id", [ids, ids])
        return out

    # ------------------------------------------------------------------ retention
    def purge_before(self, cutoff: datetime, *, not_after: datetime | None = None
                     ) -> dict[str, int]:
        """Delete, in one transaction, the rows older than ``cutoff`` of every table with
        both a ``user_id`` and a ``ts`` column (a numeric ``ts`` is unix seconds), and the
        ``rejects`` rejected before it; with ``not_after``, also the rows dated after it
        (impossible times that ingest rejects now but an older store may hold). Returns rows
        deleted per table."""
        types = self.query("""SELECT table_name, data_type FROM information_schema.columns
            WHERE column_name = 'ts' AND table_schema = 'main'
              AND table_catalog = current_database()""")
        ts_type = dict(zip(types["table_name"], types["data_type"], strict=True))
        out: dict[str, int] = {}
        with self.transaction() as c:
            for t in self.user_tables():
                dtype = str(ts_type.get(t, "")).upper()
                if not dtype:
                    continue
                typed = "TIMESTAMP" in dtype or dtype == "DATE"
                bounds = [cutoff] + ([not_after] if not_after is not None else [])
                params = [b if typed else b.timestamp() for b in bounds]
                late = " OR ts > ?" if not_after is not None else ""
                out[t] = int(c.execute(f'DELETE FROM "{t}" WHERE ts < ?{late}',
                                       params).fetchone()[0])
            out["rejects"] = int(c.execute("DELETE FROM rejects WHERE rejected_at < ?",
                                           [cutoff]).fetchone()[0])
            out["edges"] = _purge_edges(c, cutoff, not_after)
        return out
