"""The store's privacy records: consent, tombstones, erasure, export and retention."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

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


def _reject_match(ids: list[str]) -> tuple[str, list[str]]:
    """The condition on ``rejects.raw`` (and its parameters) matching any of ``ids`` as a
    token: raw text holds an id as given or JSON-escaped."""
    pats = list(dict.fromkeys(_token_pattern(v) for i in ids for v in (i, json.dumps(i)[1:-1])))
    return "raw IS NOT NULL AND (" + " OR ".join("regexp_matches(raw, ?)" for _ in pats) + ")", \
        pats


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

    def record_consent(self, stored_id: str, flags: Mapping[str, bool], *,
                       changed: Iterable[str], now: datetime, source: str) -> None:
        """Write a user's three consent flags (``personalization``, ``ads``,
        ``analytics``), time and source to ``users`` (creating the row) and append the
        ``changed`` flags to ``consent_log``, in one transaction."""
        with self.transaction() as c:
            c.execute("""INSERT INTO users (user_id, consent_personalization, consent_ads,
                    consent_analytics, consent_updated_at, consent_source)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (user_id) DO UPDATE SET
                    consent_personalization = excluded.consent_personalization,
                    consent_ads = excluded.consent_ads,
                    consent_analytics = excluded.consent_analytics,
                    consent_updated_at = excluded.consent_updated_at,
                    consent_source = excluded.consent_source""",
                      [stored_id, flags["personalization"], flags["ads"], flags["analytics"],
                       now, source])
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
        ids = self._ids(user_id)
        when = utc(now) if now is not None else pd.Timestamp.now(tz="UTC").to_pydatetime()
        out: dict[str, int] = {}
        with self.transaction() as c:
            for t in self.user_tables():
                n = c.execute(f'DELETE FROM "{t}" WHERE user_id IN (SELECT unnest(?))',
                              [ids]).fetchone()[0]
                out[t] = int(n)
            cond, pats = _reject_match(ids)
            n = c.execute(f"DELETE FROM rejects WHERE {cond}", pats).fetchone()[0]
            out["rejects"] = out.get("rejects", 0) + int(n)
            # only the stored id: an unkeyed digest of a raw id could be reversed by
            # guessing ids, which would undo the pseudonymisation
            c.execute("INSERT OR IGNORE INTO tombstones VALUES (?, ?)",
                      [tombstone_digest(key), when])
        return out

    # ------------------------------------------------------------------ access
    def user_rows(self, user_id: str) -> dict[str, list[dict[str, Any]]]:
        """Every stored row about ``user_id`` (external id), per table: the rows of each
        table with a ``user_id`` column (``events`` by time) and the ``rejects`` rows that
        hold the id (those :meth:`erase_user` deletes). Values are as DuckDB returns them."""
        ids = self._ids(user_id)
        out: dict[str, list[dict[str, Any]]] = {}
        for t in self.user_tables():
            order = " ORDER BY ts" if t == "events" else ""
            out[t] = self._dicts(f'SELECT * FROM "{t}" WHERE user_id IN (SELECT unnest(?))'
                                 f"{order}", [ids])
        cond, pats = _reject_match(ids)
        out["rejects"] = self._dicts(f"SELECT * FROM rejects WHERE {cond}", pats)
        return out

    # ------------------------------------------------------------------ retention
    def purge_before(self, cutoff: datetime) -> dict[str, int]:
        """Delete, in one transaction, the rows older than ``cutoff`` of every table with
        both a ``user_id`` and a ``ts`` column (a numeric ``ts`` is unix seconds) and the
        ``rejects`` rejected before it. Returns rows deleted per table."""
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
                at = cutoff if "TIMESTAMP" in dtype or dtype == "DATE" else cutoff.timestamp()
                out[t] = int(c.execute(f'DELETE FROM "{t}" WHERE ts < ?', [at]).fetchone()[0])
            out["rejects"] = int(c.execute("DELETE FROM rejects WHERE rejected_at < ?",
                                           [cutoff]).fetchone()[0])
        return out
