"""`StoreBase`: the DuckDB connection, its write lock and transactions.

Every part of :class:`~feedwise.store.EventStore` builds on it; only ``feedwise.store``
touches the connection or the lock.
"""

from __future__ import annotations

import hmac
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import duckdb
import pandas as pd

from feedwise.errors import ConfigError
from feedwise.store.idhashes import IdHashes
from feedwise.store.tables import create_all

DEFAULT_DB = "feedwise.duckdb"
#: The variable that holds the pseudonym key (named in every refusal).
KEY_ENV = "FEEDWISE_PSEUDONYM_KEY"
#: A store's key fingerprint is the pseudonym of this label under its key: an HMAC of a
#: fixed text, never the key (and a chained key's rotation maps it like any stored id).
KEY_CHECK_LABEL = "feedwise:pseudonym-key-check:v1"
#: The ``store_meta`` row holding the fingerprint (absent: ids are stored as given).
FINGERPRINT = "pseudonym_key_fingerprint"
#: The ``store_meta`` row holding the store's id (a uuid made when the store is created).
STORE_ID = "store_id"


def default_db_path() -> str:
    """``$FEEDWISE_DB`` or ``feedwise.duckdb`` in the working directory."""
    return os.environ.get("FEEDWISE_DB", DEFAULT_DB)


class StoreBase:
    """The connection to one DuckDB database (see :class:`~feedwise.store.EventStore`)."""

    def __init__(self, path: str | os.PathLike | None = None, *, read_only: bool = False,
                 pseudonymizer: Callable[[str], str] | None = None) -> None:
        self.path = str(path) if path is not None else default_db_path()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        #: WAL size (MiB) at which a commit writes the tables back (:meth:`set_checkpoint_mb`).
        self.checkpoint_mb: int | None = None
        #: Threads DuckDB runs a statement on (:meth:`set_threads`; None: one per core).
        self.threads: int | None = None
        self.con = self._connect(read_only=read_only)
        self._lock = threading.RLock()
        #: Held while a cursor is made and while compact() swaps the connection.
        self._gate = threading.Lock()
        #: Connection swaps so far (compact()): a read that fails across one is run again.
        self._generation = 0
        self._tx_depth = 0  # transaction() blocks open in the lock-holding thread
        #: Hashes of the stored event ids: a landing of new ids reads none of them.
        self._id_hashes = IdHashes()
        self.pseudonymizer = pseudonymizer
        try:
            if not read_only:
                create_all(self.con)
                # the store's identity (store/meta.py store_id): made once, never changed
                self.con.execute("INSERT OR IGNORE INTO store_meta SELECT ?, "
                                 "CAST(uuid() AS VARCHAR), now()", [STORE_ID])
            self._check_key(read_only)
        except BaseException:
            self.con.close()
            raise

    def _connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        """A connection to the file with the store's session settings."""
        return self._configure(duckdb.connect(self.path, read_only=read_only))

    def _configure(self, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        con.execute("SET TimeZone='UTC'")
        if self.checkpoint_mb is not None:
            con.execute(f"SET checkpoint_threshold='{int(self.checkpoint_mb)}MiB'")
        if self.threads is not None:
            con.execute(f"SET threads={int(self.threads)}")
        return con

    def set_checkpoint_mb(self, mb: int) -> None:
        """Let the write-ahead log grow to ``mb`` MiB before a commit checkpoints (writes the
        tables back). DuckDB's default (16 MB) checkpoints every few seconds under heavy
        ingest, each a stall of the one writer; a restart replays at most this much log."""
        with self._lock:
            self.checkpoint_mb = int(mb)
            self._configure(self.con)

    def set_threads(self, n: int) -> None:
        """Run every statement on at most ``n`` threads (DuckDB's default: one per core).
        One keeps a statement on the thread that runs it, with that thread's priority."""
        with self._lock:
            self.threads = int(n)
            self._configure(self.con)

    def _check_key(self, read_only: bool) -> None:
        """Hold the store to the pseudonym key its ids are under.

        The first read-write open with a key records the key's fingerprint in
        ``store_meta``. From then on, another key refuses to open the store
        (:class:`ConfigError`), and no key at all leaves it open for reads that need no
        user id while every use of the key (ingest, user upserts, :meth:`user_key`, so
        consent, export, erasure and the service's lookups) raises a ConfigError naming
        ``FEEDWISE_PSEUDONYM_KEY``: raw ids never mix with pseudonyms.
        """
        try:
            rows = self.con.execute("SELECT value FROM store_meta WHERE name = ?",
                                    [FINGERPRINT]).fetchall()
        except duckdb.CatalogException:  # an older store opened read-only
            rows = []
        row = rows[0] if rows else None
        given = self.pseudonymizer
        if row is None:
            if given is not None and not read_only:  # first use with a key: remember it
                self.con.execute("INSERT OR REPLACE INTO store_meta VALUES (?, ?, now())",
                                 [FINGERPRINT, given(KEY_CHECK_LABEL)])
            return
        if given is None:
            self.pseudonymizer = _KeyMissing(
                f"{self.path}: this store holds pseudonymised user ids, but {KEY_ENV} is not "
                "set; set it to the key the store was created with to ingest, write or look "
                "up user data (reads that need no user id work without it)")
            return
        if hmac.compare_digest(given(KEY_CHECK_LABEL), str(row[0])):
            return
        previous = getattr(given, "previous", None)
        if previous is not None and hmac.compare_digest(previous(KEY_CHECK_LABEL),
                                                        str(row[0])):
            raise ConfigError(
                f"{self.path}: {KEY_ENV} is a chained key whose previous key is this store's, "
                "but the stored ids are still under the previous key; rotate them first: "
                "open the store with the previous key and run "
                "feedwise.privacy.pseudonyms.rotate_key(store, new) (docs/privacy.md, "
                "Key rotation)")
        raise ConfigError(
            f"{self.path}: {KEY_ENV} is not the key this store's user ids are pseudonymised "
            "with (its fingerprint differs); set it to the store's key")

    # ------------------------------------------------------------------ lifecycle
    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction under the store's write lock: commits on success, rolls
        back on any exception. Yields the connection; only ``feedwise.store`` uses it.

        A block opened inside another one joins it (one commit for both: e.g. the ad state
        flushed with the impressions of the same feeds, see ``ServedLog.log_served``)."""
        with self._lock:
            c = self.con
            if self._tx_depth:
                self._tx_depth += 1
                try:
                    yield c
                finally:
                    self._tx_depth -= 1
                return
            c.execute("BEGIN TRANSACTION")
            self._tx_depth = 1
            try:
                yield c
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            finally:
                self._tx_depth = 0

    def reset(self) -> None:
        """Delete every event, item, user, campaign and reject (keeps the tables)."""
        with self._lock:
            for table in ("events", "items", "users", "campaigns", "rejects"):
                self.con.execute(f"DELETE FROM {table}")

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for concurrent readers (one per thread)."""
        with self._gate:  # not while compact() swaps the connection
            cur = self.con.cursor()
        cur.execute("SET TimeZone='UTC'")
        return cur

    def _read(self, fn: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        """``fn(cursor)`` on a cursor of its own, run once more on a new cursor if
        :meth:`compact` swapped the connection under the first one (reads are idempotent)."""
        for attempt in (0, 1):
            generation = self._generation
            cur = None
            try:
                cur = self.cursor()
                return fn(cur)
            except duckdb.Error:
                if attempt or self._generation == generation:
                    raise
            finally:
                if cur is not None:
                    try:
                        cur.close()
                    except duckdb.Error:
                        pass
        raise AssertionError("unreachable")

    def query(self, sql: str, params: list | tuple | None = None) -> pd.DataFrame:
        """Run a read query and return a DataFrame."""
        return self._read(lambda cur: cur.execute(sql, params or []).df())

    def scalar(self, sql: str, params: list | tuple | None = None) -> Any:
        row = self._read(lambda cur: cur.execute(sql, params or []).fetchone())
        return row[0] if row else None

    def _dicts(self, sql: str, params: list) -> list[dict[str, Any]]:
        """Rows of a read query as dicts, on a cursor of their own (readers never wait for
        the writer)."""
        def rows(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
            res = cur.execute(sql, params)
            desc = res.description
            if desc is None:  # the cursor was closed under the query (compact)
                raise duckdb.ConnectionException("the cursor was closed during the read")
            names = [d[0] for d in desc]
            return [dict(zip(names, row, strict=True)) for row in res.fetchall()]

        return self._read(rows)

    def user_key(self, user_id: str) -> str:
        """The id under which ``user_id`` is stored (its pseudonym when one is configured).

        Raises:
            ConfigError: The store is pseudonymised but was opened without its key.
        """
        return self.pseudonymizer(str(user_id)) if self.pseudonymizer else str(user_id)


class _KeyMissing:
    """The pseudonymizer of a pseudonymised store opened without its key: every use raises
    (the store still behaves as pseudonymised, e.g. rejects keep no raw line text)."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __call__(self, user_id: str) -> str:
        raise ConfigError(self.message)

    def __repr__(self) -> str:
        return "<pseudonym key missing>"
