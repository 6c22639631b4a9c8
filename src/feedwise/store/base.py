"""`StoreBase`: the DuckDB connection, its write lock and transactions.

Every part of :class:`~feedwise.store.EventStore` builds on it; only ``feedwise.store``
touches the connection or the lock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import duckdb
import pandas as pd

from feedwise.store.tables import create_all

DEFAULT_DB = "feedwise.duckdb"


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
        self.con = duckdb.connect(self.path, read_only=read_only)
        self.con.execute("SET TimeZone='UTC'")
        self._lock = threading.RLock()
        self.pseudonymizer = pseudonymizer
        if not read_only:
            create_all(self.con)

    # ------------------------------------------------------------------ lifecycle
    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction under the store's write lock: commits on success, rolls
        back on any exception. Yields the connection; only ``feedwise.store`` uses it."""
        with self._lock:
            c = self.con
            c.execute("BEGIN TRANSACTION")
            try:
                yield c
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

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
        cur = self.con.cursor()
        cur.execute("SET TimeZone='UTC'")
        return cur

    def query(self, sql: str, params: list | tuple | None = None) -> pd.DataFrame:
        """Run a read query and return a DataFrame."""
        return self.cursor().execute(sql, params or []).df()

    def scalar(self, sql: str, params: list | tuple | None = None) -> Any:
        row = self.cursor().execute(sql, params or []).fetchone()
        return row[0] if row else None

    def _dicts(self, sql: str, params: list) -> list[dict[str, Any]]:
        """Rows of a read query as dicts, on a cursor of their own (readers never wait for
        the writer)."""
        cur = self.cursor()
        try:
            res = cur.execute(sql, params)
            names = [d[0] for d in res.description]
            return [dict(zip(names, row, strict=True)) for row in res.fetchall()]
        finally:
            cur.close()

    def user_key(self, user_id: str) -> str:
        """The id under which ``user_id`` is stored (its pseudonym when one is configured)."""
        return self.pseudonymizer(str(user_id)) if self.pseudonymizer else str(user_id)
