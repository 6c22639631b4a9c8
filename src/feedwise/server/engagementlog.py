"""`EngagementLog`: the engagement the owner landed, in order, for its feed workers to poll.

Each landing of client events appends one chunk (user, item and kind columns, as the
refresher noted them). A worker's poll (``routes/workers.py``) is answered with the chunks
after its last sequence number as JSON arrays; each chunk is encoded once, when it is
appended, and only the text is kept, for every worker that polls it (under heavy ingest a
poll carries thousands of events, and encoding them anew per worker cost more than landing
them). The log keeps the last ``max_events`` events; a worker that fell further behind is
told (``gap``) and rebuilds.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

COLUMNS = ("user_id", "item_id", "kind")


@dataclass(frozen=True)
class _Chunk:
    first: int  # sequence number of its first event (1-based over the log's life)
    n: int
    text: tuple[str, str, str]  # the columns as the insides of JSON arrays

    def __len__(self) -> int:
        return self.n

    def encoded(self, start: int = 0) -> tuple[str, str, str]:
        """The columns from position ``start`` as the insides of JSON arrays."""
        if start == 0:
            return self.text
        return tuple(_inside(json.loads(f"[{t}]")[start:]) for t in self.text)  # type: ignore[return-value]


def _inside(values: list[str]) -> str:
    return json.dumps(values, separators=(",", ":"))[1:-1]


class EngagementLog:
    """Landed engagement for the workers: append on the writer, read on requests."""

    def __init__(self, max_events: int = 1_000_000) -> None:
        self.max_events = max_events
        self.seq = 0  # the last event's sequence number
        self._chunks: deque[_Chunk] = deque()
        self._held = 0
        self._lock = threading.Lock()

    def append(self, users: Sequence[str], items: Sequence[str], kinds: Sequence[str]) -> None:
        if not users:
            return
        # kept as text only: as lists, a landing's columns (tens of thousands of references)
        # were walked by every young collection of the owner until they aged, and the
        # log's million events by every full one
        chunk = _Chunk(self.seq + 1, len(users), (_inside(list(map(str, users))),
                                                  _inside(list(map(str, items))),
                                                  _inside(list(map(str, kinds)))))
        with self._lock:
            self._chunks.append(chunk)
            self.seq += len(chunk)
            self._held += len(chunk)
            while self._held - len(self._chunks[0]) >= self.max_events:
                self._held -= len(self._chunks.popleft())

    def since(self, seq: int, limit: int) -> tuple[str, int, bool]:
        """The events after ``seq`` (whole chunks, at most ``limit`` events unless the
        first chunk alone holds more) as the JSON object of their columns; the last
        sequence number they reach; whether events after ``seq`` were dropped already."""
        with self._lock:
            chunks = list(self._chunks)
        first = chunks[0].first if chunks else self.seq + 1
        gap = bool(chunks) and seq + 1 < first
        parts: list[tuple[str, str, str]] = []
        last, taken = seq, 0
        for c in chunks:
            end = c.first + len(c) - 1
            if end <= last:
                continue
            if parts and taken + len(c) > limit:
                break
            start = max(last + 1 - c.first, 0)
            parts.append(c.encoded(start))
            taken += len(c) - start
            last = end
        body = ",".join(f'"{name}":[{",".join(p[k] for p in parts if p[k])}]'
                        for k, name in enumerate(COLUMNS))
        return "{" + body + "}", last, gap
