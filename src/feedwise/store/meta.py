"""Facts about the store itself (``store_meta``): which pseudonym key its user ids are under.

A pseudonymised store records its key's fingerprint the first time it is opened with a key
(:meth:`StoreBase._check_key <feedwise.store.base.StoreBase._check_key>`): the pseudonym
of a fixed label, i.e. an HMAC under the key, never the key. Opened without the key it
refuses every use of the key; opened with another key it does not open.
"""

from __future__ import annotations

import hmac
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa

from feedwise.errors import ConfigError
from feedwise.store.base import FINGERPRINT, KEY_CHECK_LABEL, KEY_ENV, STORE_ID, StoreBase
from feedwise.store.tables import TABLES


class StoreMeta(StoreBase):
    """The store's own facts (part of :class:`~feedwise.store.EventStore`)."""

    user_tables: Callable[[], list[str]]  # PrivacyRecords.user_tables

    def key_fingerprint(self) -> str | None:
        """The fingerprint of the pseudonym key the stored user ids are under (``None``: ids
        are stored as given, or the store was never opened with a key)."""
        try:
            row = self.cursor().execute("SELECT value FROM store_meta WHERE name = ?",
                                        [FINGERPRINT]).fetchone()
        except duckdb.CatalogException:  # an older store opened read-only has no table
            return None
        return str(row[0]) if row else None

    def store_id(self) -> str | None:
        """The store's identity: a uuid made when the store was created (``None``: an older
        store opened read-only, never opened for writing since). Models record it
        (:class:`~feedwise.registry.ModelRegistry`), so a model of another store is refused."""
        try:
            row = self.cursor().execute("SELECT value FROM store_meta WHERE name = ?",
                                        [STORE_ID]).fetchone()
        except duckdb.CatalogException:
            return None
        return str(row[0]) if row else None

    def missing_tables(self) -> list[str]:
        """Tables of ``store/tables.py`` this store file lacks (an older store opened
        read-only: a read-write open creates them)."""
        rows = self.cursor().execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() AND table_schema = 'main'").fetchall()
        have = {r[0] for r in rows}
        return [t for t in TABLES if t not in have]

    def snapshot(self, dest: str | os.PathLike) -> Path:
        """A consistent copy of the store file at ``dest``, made under the write lock: the
        log is checkpointed into the file, then the file is copied (no write lands in
        between). Another process opens the copy read-only while this one keeps writing
        (``feedwise serve`` makes them for the CLI's read-only commands)."""
        dest = Path(dest)
        if self.path == ":memory:":
            raise ConfigError("an in-memory store has no file to snapshot")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        with self._lock:
            for attempt in range(20):  # a reader's transaction may hold it off a moment
                try:
                    self.con.execute("CHECKPOINT")
                    break
                except duckdb.TransactionException:
                    time.sleep(0.05 * (attempt + 1))
            # no commit lands while the lock is held: the file and its log (when the
            # checkpoint could not fold it in) are copied as one state
            shutil.copyfile(self.path, tmp)
            wal = Path(f"{self.path}.wal")
            if wal.exists() and wal.stat().st_size:  # not folded in: copy it with the file
                shutil.copyfile(wal, f"{tmp}.wal")
        if Path(f"{tmp}.wal").exists():
            os.replace(f"{tmp}.wal", f"{dest}.wal")
        os.replace(tmp, dest)
        return dest

    def require_key(self) -> None:
        """Raise unless user ids can be mapped here (a pseudonymised store opened without
        its key cannot: the service refuses to start on one).

        Raises:
            ConfigError: Naming ``FEEDWISE_PSEUDONYM_KEY``.
        """
        if self.pseudonymizer is not None:
            self.pseudonymizer(KEY_CHECK_LABEL)  # raises when the key is missing

    def rekey_user_ids(self, new: Callable[[str], str], rekey: Callable[[str], str]
                       ) -> dict[str, int]:
        """Rotate the pseudonym key in place, in one transaction.

        Every ``user_id`` column of every table (and the pseudonym inside a reject's raw
        text) is rewritten with ``rekey`` and the fingerprint with it, so the store then
        opens with ``new`` only. ``new`` must be chained on the store's key
        (``Pseudonymizer(new_key, previous=current)``, whose ``rekey`` maps a stored
        pseudonym to ``new(raw id)``). Tombstones are digests of the old pseudonyms and
        cannot be rewritten (see docs/privacy.md, Key rotation).

        Args:
            new: The new (chained) pseudonymizer; the store uses it from then on.
            rekey: Stored pseudonym -> its pseudonym under ``new``.

        Returns:
            Rows rewritten per table.

        Raises:
            ConfigError: The store is not pseudonymised, was opened without its key, or
                ``new`` is not chained on its key.
        """
        current = self.key_fingerprint()
        if current is None or self.pseudonymizer is None:
            raise ConfigError(f"{self.path}: the store holds no pseudonymised ids; there is "
                              "no key to rotate")
        self.require_key()
        target = new(KEY_CHECK_LABEL)
        if not hmac.compare_digest(rekey(current), target):
            raise ConfigError(f"the new {KEY_ENV} is not chained on this store's key: build "
                              "it as Pseudonymizer(new_key, previous=<the store's key>)")
        out: dict[str, int] = {}
        with self.transaction() as c:
            tables = self.user_tables()
            union = " UNION ".join(f'SELECT user_id FROM "{t}"' for t in tables)
            union += " UNION SELECT src_id FROM edges UNION SELECT dst_id FROM edges"
            ids = [r[0] for r in c.execute(
                f"SELECT DISTINCT user_id FROM ({union}) WHERE user_id IS NOT NULL").fetchall()]
            c.register("_fw_rekey", pa.table({
                "old": pa.array(ids, pa.string()),
                "new": pa.array([rekey(i) for i in ids], pa.string())}))
            try:
                for t in tables:
                    raw = ", raw = replace(raw, m.old, m.new)" if t == "rejects" else ""
                    n = c.execute(f'UPDATE "{t}" SET user_id = m.new{raw} FROM _fw_rekey m '
                                  f'WHERE "{t}".user_id = m.old').fetchall()[0][0]
                    out[t] = int(n)
                for col in ("src_id", "dst_id"):  # the social graph (store/edges.py)
                    n = c.execute(f"UPDATE edges SET {col} = m.new FROM _fw_rekey m "
                                  f"WHERE edges.{col} = m.old").fetchall()[0][0]
                    out[f"edges.{col}"] = int(n)
            finally:
                c.unregister("_fw_rekey")
            c.execute("UPDATE store_meta SET value = ?, updated_at = now() WHERE name = ?",
                      [target, FINGERPRINT])
        self.pseudonymizer = new
        return out
