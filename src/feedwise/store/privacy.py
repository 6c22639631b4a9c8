"""The store's privacy records: which tables hold a user, tombstones and erasure."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime

import pandas as pd

from feedwise.schema import utc
from feedwise.store.base import StoreBase

TOMBSTONE_PREFIX = "feedwise-tombstone:v1:"


def tombstone_digest(stored_user_id: str) -> str:
    """The tombstone of a stored user id: ``sha256(TOMBSTONE_PREFIX + id)`` (hex)."""
    return hashlib.sha256((TOMBSTONE_PREFIX + str(stored_user_id)).encode("utf-8")).hexdigest()


def _token_pattern(value: str) -> str:
    """A regex matching ``value`` as a whole token (a JSON value or a delimited field)."""
    return r"(^|[^A-Za-z0-9_.@-])" + re.escape(value) + r"($|[^A-Za-z0-9_.@-])"



class PrivacyRecords(StoreBase):
    """Erasure and the lookups privacy needs (part of :class:`~feedwise.store.EventStore`)."""

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

