"""The stored ids' hashes (store/idhashes.py): a landing of new ids does not look the stored
ids up, and a retry or a clash is still found, also after deletions and rows another
connection inserted."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feedwise.store import EventStore
from feedwise.store.idhashes import IdHashes


def _rows(ids: list[str], item: str = "i1") -> pd.DataFrame:
    return pd.DataFrame({"event_id": ids, "user_id": "u1", "item_id": item, "kind": "click",
                         "ts": "2026-01-01T00:00:00Z"})


class _Recorder:
    """The store's connection, recording the statements it runs."""

    def __init__(self, con: Any) -> None:
        self.con = con
        self.sql: list[str] = []

    def execute(self, q: str, *a: Any) -> Any:
        self.sql.append(re.sub(r"\s+", " ", q))
        return self.con.execute(q, *a)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.con, name)


def test_new_ids_are_not_looked_up_but_retries_and_clashes_are(tmp_path: Path) -> None:
    with EventStore(tmp_path / "s.duckdb") as s:
        s.ingest(_rows([f"e{i}" for i in range(100)]))
        rec = _Recorder(s.con)
        s.con = rec
        r = s.ingest(_rows([f"n{i}" for i in range(50)]))
        assert r.accepted == 50
        assert not [q for q in rec.sql if "FROM events WHERE event_id IN" in q]
        rec.sql.clear()
        r = s.ingest(_rows(["e7", "n3", "x1"]))  # two retries and a new id
        assert (r.accepted, r.duplicates) == (1, 2)
        assert [q for q in rec.sql if "FROM events WHERE event_id IN" in q]
        r = s.ingest(_rows(["e8"], item="i2"))  # a stored id with other content
        assert (r.accepted, r.rejected) == (0, 1)
        s.con = rec.con
        assert s.con.execute("SELECT count(*) FROM events").fetchone()[0] == 151


def test_deletions_and_another_connections_rows_are_seen(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with EventStore(path) as a:
        a.ingest(_rows([f"a{i}" for i in range(20)]))
        with EventStore(path) as b:  # another connection to the same database
            assert b.ingest(_rows(["b1", "b2"])).accepted == 2
        r = a.ingest(_rows(["b1", "b2"], item="i9"))  # clash with rows a never landed
        assert (r.accepted, r.rejected) == (0, 2)
        a.con.execute("DELETE FROM events WHERE event_id = 'a3'")  # e.g. retention
        assert a.ingest(_rows(["a3"])).accepted == 1  # deleted, so new again
        assert a.ingest(_rows(["a3"])).duplicates == 1


def test_hashes_merge_and_stay_a_superset() -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE TABLE events AS SELECT 'e' || range AS event_id FROM range(1000)")
    h = IdHashes(merge_at=8)

    def hashes(ids: list[str]) -> np.ndarray:
        return np.sort(np.array([con.execute("SELECT hash(?)", [i]).fetchone()[0]
                                 for i in ids], dtype=np.uint64))

    assert h.may_hold(con, 1000, hashes(["e5"]))
    assert not h.may_hold(con, 1000, hashes(["x1", "x2"]))
    new = [f"n{i}" for i in range(20)]  # more than merge_at: merged into the large array
    con.execute("INSERT INTO events SELECT unnest(?)", [new])
    h.inserted(hashes(new), len(new))
    assert h.may_hold(con, 1020, hashes(["n19"])) and h.may_hold(con, 1020, hashes(["e999"]))
    assert not h.may_hold(con, 1020, hashes(["n20"]))
    h.grew(3)  # rows no client id can clash with: the count follows, no reread
    assert h._count == 1023
    assert not h.may_hold(con, 1023, hashes(["n20"]))
    # a count it was not kept for (a deletion, another connection): read again
    con.execute("DELETE FROM events WHERE event_id = 'e5'")
    assert not h.may_hold(con, 1019, hashes(["e5"]))
    # above max_ids every batch goes to the exact look-up
    assert IdHashes(max_ids=10).may_hold(con, 1019, hashes(["zz"]))
