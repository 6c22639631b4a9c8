"""The console's query memo: the analytics' SQL results per window, shared by every view
of that window whatever its other filters.

The KPI, campaign, listening and best-time functions take a :class:`~feedwise.analytics.
scope.Scope` and run their SQL on it; the privacy threshold ``k`` (and the chart grain of
most tables) is applied afterwards, in pandas. So a view that changes only ``k`` — or
whose comparison period, grain or page shares a window with one computed just before —
runs the same SQL over the same window. :class:`MemoScope` is a ``Scope`` that answers
such a query from the result kept for ``(store, window, SQL, parameters)`` while it is
younger than the console cache's freshness (:data:`~feedwise.server.console.views.
CACHE_TTL_S`: the same staleness the pages document), and runs it otherwise. Only when a
query misses does it open its cursor and create the window's views (and the session
table a query reads), so a view answered from the memo touches DuckDB not at all.

The functions themselves run unchanged on it, so every figure is the one they compute on
a plain ``Scope``. Results are handed out as copies (callers add columns to them). A
change made through the console clears the memo with the page cache.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from feedwise.analytics.scope import Scope
from feedwise.store import EventStore

#: Results kept at most, and cells (rows x columns) in all of them: beyond either the
#: oldest half is dropped.
MAX_ENTRIES = 2048
MAX_CELLS = 5_000_000
_memo: dict[tuple, tuple[float, Any]] = {}
_cells = [0]
_lock = threading.Lock()
_stats = {"hits": 0, "misses": 0}
_ttl: Callable[[], float] = lambda: 30.0  # noqa: E731
_tl = threading.local()


def configure(ttl_s: Callable[[], float]) -> None:
    """How long a result is reused: ``ttl_s()`` seconds (the console cache's freshness)."""
    global _ttl
    _ttl = ttl_s


def begin() -> float | None:
    """Start tracking the oldest memoised result this thread uses (see :func:`end`)."""
    prev = getattr(_tl, "oldest", None)
    _tl.oldest = math.inf
    return prev


def end(prev: float | None) -> float:
    """The ``time.monotonic()`` at which the oldest result used since :func:`begin` was
    computed (``inf``: none was used); an enclosing tracking sees it too. A page result
    built on it is as old as that result, and the console cache dates it so."""
    oldest = getattr(_tl, "oldest", math.inf)
    _tl.oldest = None if prev is None else min(prev, oldest)
    return oldest


def clear() -> None:
    with _lock:
        _memo.clear()
        _cells[0] = 0


def _size(value: Any) -> int:
    return int(value.size) if isinstance(value, pd.DataFrame) else 1


def stats() -> dict[str, int]:
    """Hits and misses so far (for tests and the benchmark)."""
    with _lock:
        return {**_stats, "entries": len(_memo)}


class MemoScope(Scope):
    """A :class:`~feedwise.analytics.scope.Scope` whose ``query``/``scalar`` results are
    memoised per window (see the module docstring). Same arguments as ``Scope``."""

    def __init__(self, store: EventStore, start: datetime, end: datetime, *, k: int = 10,
                 materialize: bool = False) -> None:
        self._settle(store, start, end, k, materialize)
        self._built: set[str] = set()
        self._cur: duckdb.DuckDBPyConnection | None = None
        self._views: dict[str, str] = {}  # views not created yet: name -> statement
        self._pending: list[tuple[str, Any]] = []  # temp tables named, built on a miss

    @property
    def cur(self) -> duckdb.DuckDBPyConnection:
        """The cursor of the window, opened on the first query that misses; each of the
        window's views is created before the first query that reads it (:meth:`_need`)."""
        if self._cur is None:
            self._cur = self.store.cursor()
            self._views = self._view_sql()
        return self._cur

    def _need(self, sql: str) -> None:
        """Create the views ``sql`` names (and the ``hist`` view the user views read)."""
        cur = self.cur
        names = {n for n in self._views if re.search(rf"\b{n}\b", sql)}
        if names & {"user_span", "user_days"}:
            names.add("hist")
        for name, create in list(self._views.items()):  # in the order they read each other
            if name in names:
                cur.execute(create)
                del self._views[name]

    def shifted(self, delta: Any) -> MemoScope:
        return MemoScope(self.store, self.start + delta, self.end + delta, k=self.k,
                         materialize=self.materialize)

    def sessions_table(self, gap_minutes: float = 30.0) -> str:
        name = f"sess_{int(round(gap_minutes * 60))}"
        if name not in self._built and all(n != name for n, _ in self._pending):
            self._pending.append((name, lambda: Scope.sessions_table(self, gap_minutes)))
        return name

    def pairs_table(self) -> str:
        if "pairs" not in self._built and all(n != "pairs" for n, _ in self._pending):
            self._pending.append(("pairs", lambda: Scope.pairs_table(self)))
        return "pairs"

    def _key(self, op: str, sql: str, params: Any) -> tuple:
        return (id(self.store), self.start, self.end, op, sql, repr(list(params or [])))

    def _run(self, op: str, sql: str, params: Any, fn: Any) -> Any:
        key = self._key(op, sql, params)
        now = time.monotonic()
        with _lock:
            hit = _memo.get(key)
            if hit is not None and now - hit[0] < _ttl():
                _stats["hits"] += 1
                if getattr(_tl, "oldest", None) is not None:
                    _tl.oldest = min(_tl.oldest, hit[0])
                return hit[1]
            _stats["misses"] += 1
        if self._pending:  # the temp tables this query may read (they read ev)
            self._need("ev")
            for _, build in self._pending:
                build()
            self._pending.clear()
        self._need(sql)
        value = fn()
        with _lock:
            if len(_memo) >= MAX_ENTRIES or _cells[0] + _size(value) > MAX_CELLS:
                for k in sorted(_memo, key=lambda k: _memo[k][0])[:max(1, len(_memo) // 2)]:
                    _cells[0] -= _size(_memo.pop(k)[1])
            old = _memo.get(key)
            if old is not None:
                _cells[0] -= _size(old[1])
            _memo[key] = (now, value)
            _cells[0] += _size(value)
        return value

    def query(self, sql: str, params: list | tuple | None = None) -> pd.DataFrame:
        df = self._run("df", sql, params, lambda: Scope.query(self, sql, params))
        return df.copy()

    def scalar(self, sql: str, params: list | tuple | None = None) -> Any:
        return self._run("scalar", sql, params, lambda: Scope.scalar(self, sql, params))

    def row(self, sql: str, params: list | tuple | None = None) -> dict[str, Any]:
        return dict(self._run("row", sql, params, lambda: Scope.row(self, sql, params)))

    def close(self) -> None:
        if self._cur is not None:
            self._cur.close()
            self._cur = None


class ScoreMemo:
    """The default sentiment analyser, remembering the scores of the texts it has read.

    A comment's scores depend on its text alone (the analyser reads each text by itself
    and turns its compound score into probabilities element by element), so a text
    scored for one window is not read again for another: :meth:`analyse` returns the
    frame the analyser returns for the same texts, row for row."""

    MAX_TEXTS = 200_000

    def __init__(self, inner: Any = None) -> None:
        self._inner = inner
        self._rows: dict[str, tuple] = {}
        self._lock = threading.Lock()

    def analyse(self, texts: Any) -> pd.DataFrame:
        from feedwise.text.sentiment import COLUMNS  # noqa: PLC0415 - lazy, as the analyser

        items = [t if isinstance(t, str) else str(t) for t in texts]
        with self._lock:
            missing = list(dict.fromkeys(t for t in items if t not in self._rows))
        if missing:
            if self._inner is None:
                from feedwise.analytics.listening import default_analyser  # noqa: PLC0415

                self._inner = default_analyser()
            res = self._inner.analyse(missing).reset_index(drop=True)
            rows = list(zip(*(res[c].tolist() for c in COLUMNS), strict=True))
            with self._lock:
                if len(self._rows) + len(rows) > self.MAX_TEXTS:
                    self._rows.clear()
                self._rows.update(zip(missing, rows, strict=True))
                got = [self._rows[t] for t in items]
        else:
            with self._lock:
                got = [self._rows[t] for t in items]
        cols = list(zip(*got, strict=True)) if got else [[] for _ in COLUMNS]
        label, neg, neu, pos, lang, reason = cols
        return pd.DataFrame({"label": pd.Series(list(label), dtype=object),
                             "negative": np.asarray(neg, dtype=np.float64),
                             "neutral": np.asarray(neu, dtype=np.float64),
                             "positive": np.asarray(pos, dtype=np.float64),
                             "language": pd.Series(list(lang), dtype=object),
                             "reason": pd.Series(list(reason), dtype=object)},
                            columns=COLUMNS)
