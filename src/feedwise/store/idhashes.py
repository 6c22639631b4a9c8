"""`IdHashes`: hashes of every stored event id, so a landing can tell that its ids are new
without reading the stored ones.

Before it inserts, a landing looks up which of its ids the events table holds already. That
lookup (a semi-join) reads the whole ``event_id`` column wherever DuckDB's zone maps cannot
rule a row group out: with random ids (UUIDv4, content hashes) it costs 14 ms for 500 ids
on 1M stored events, and grows with the table. The store keeps the DuckDB ``hash()`` of
every stored id in a sorted array instead; a batch none of whose hashes is there holds only
new ids, and the semi-join runs only when one matches (a retry, or a hash collision: the
semi-join then finds nothing).

The hashes only ever need to be a superset of the stored ids' (a hash too many costs one
semi-join). They are read from the table when first needed, and again whenever the events'
count is not the one they were kept for: after a deletion (erasure, retention) or rows
another connection inserted, they are read again before they are used. What this cannot
see is another connection inserting exactly as many rows as were deleted between two
landings; every insert of this store's own goes through :meth:`IdHashes.inserted` or
:meth:`IdHashes.grew`. The hashes live in memory only: an erasure changes the count, so
the erased ids' hashes are gone once the next landing reads them again.
"""

from __future__ import annotations

import duckdb
import numpy as np

__all__ = ["IdHashes"]


class IdHashes:
    """The hashes of the stored event ids (see the module doc).

    Args:
        max_ids: Above this many stored events the hashes are not kept (8 bytes an event)
            and every landing runs the semi-join.
        merge_at: The hashes of each landing wait in a small sorted array of their own until
            there are this many, then join the large one.
    """

    def __init__(self, *, max_ids: int = 20_000_000, merge_at: int = 65_536) -> None:
        self.max_ids = max_ids
        self.merge_at = merge_at
        self._main = np.empty(0, np.uint64)  # sorted
        self._recent: list[np.ndarray] = []  # each sorted
        self._n_recent = 0
        self._count: int | None = None  # the events' count the hashes stand for; None: unread

    @staticmethod
    def of_stage(con: duckdb.DuckDBPyConnection) -> np.ndarray:
        """The hashes of the valid rows' ids of the staged batch (``_fw_stage``), sorted
        (looked up in a sorted array, sorted ones are found three times as fast)."""
        got = con.execute("SELECT hash(event_id) AS h FROM _fw_stage "
                          "WHERE _reason IS NULL").fetchnumpy()["h"]
        return np.sort(np.asarray(got, dtype=np.uint64))

    def may_hold(self, con: duckdb.DuckDBPyConnection, count: int, hashes: np.ndarray
                 ) -> bool:
        """Whether any of ``hashes`` may be a stored id; ``count`` is the events' count now
        (read in the landing's transaction). False means none is stored."""
        if count > self.max_ids:
            self._count = None
            return True
        if self._count != count:
            self._read(con, count)
        return any(_hits(part, hashes).any() for part in (self._main, *self._recent))

    def inserted(self, hashes: np.ndarray, n_rows: int) -> None:
        """``n_rows`` events were inserted whose ids hash to values among ``hashes``
        (sorted, as :meth:`of_stage` gives them)."""
        if self._count is None:
            return
        self._recent.append(hashes)
        self._n_recent += len(hashes)
        if self._n_recent >= self.merge_at:
            new = np.sort(np.concatenate(self._recent))
            self._main = np.insert(self._main, np.searchsorted(self._main, new), new)
            self._recent, self._n_recent = [], 0
        self._count += int(n_rows)

    def grew(self, n_rows: int) -> None:
        """``n_rows`` events were inserted whose ids no client row can use (the service's
        impressions: ids a landing rejects before it looks ids up)."""
        if self._count is not None:
            self._count += int(n_rows)

    def _read(self, con: duckdb.DuckDBPyConnection, count: int) -> None:
        got = con.execute("SELECT hash(event_id) AS h FROM events").fetchnumpy()["h"]
        self._main = np.sort(np.asarray(got, dtype=np.uint64))
        self._recent, self._n_recent = [], 0
        self._count = count


def _hits(sorted_hashes: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Which of ``hashes`` are in ``sorted_hashes`` (sorted)."""
    if not len(sorted_hashes) or not len(hashes):
        return np.zeros(len(hashes), dtype=bool)
    at = np.searchsorted(sorted_hashes, hashes)
    at[at == len(sorted_hashes)] = 0
    return sorted_hashes[at] == hashes
