"""`ListsLog`: the lists the owner's refresher recomputed, in order, for its feed workers.

With ``feedwise serve --workers N`` only the owner recomputes the materialised lists of users
with new engagement (:class:`~feedwise.feed.materialised.Refresher`). A dense blend's list
costs 20-60 ms a user, most of it holding the GIL: in a worker that held its event loop
(the feed p99 under ingest 47-57 ms against 38 ms without the workers' refresh and
engagement noting, docs/serving.md), while the owner stands by with its GIL free. Each
refresh block appends one chunk, encoded once (arrays as base64 of their bytes) with the
model version it was computed for; a worker's poll (``routes/workers.py``) carries the
chunks after its last sequence number and the worker puts them in its overlay
(:meth:`~feedwise.feed.materialised.MaterialisedLists.put`). The log keeps the last
``max_users`` lists; a worker that fell further behind keeps the older lists it holds (a
staler list, never a wrong one: its engagement since is still folded in per request).
"""

from __future__ import annotations

import base64
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from feedwise.feed.materialised import WHY, Entry


@dataclass(frozen=True)
class _Chunk:
    first: int  # sequence number of its first list (1-based over the log's life)
    users: tuple[str, ...]
    text: bytes  # the JSON object {"version": ..., "lists": [...]}

    def __len__(self) -> int:
        return len(self.users)


def _b64(a: np.ndarray | None) -> str | None:
    return None if a is None else base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def _array(text: str | None, dtype: Any) -> np.ndarray | None:
    return None if text is None else np.frombuffer(base64.b64decode(text), dtype).copy()


def encode(version: str | None, new: Mapping[str, Entry],
           extra: Mapping[str, np.ndarray | None]) -> bytes:
    """One refresh block as JSON: each user's list and, where the lists keep one, extra row."""
    rows = []
    for u, (cols, vals, complete, why) in new.items():
        row = {"u": u, "c": _b64(np.asarray(cols, np.int32)),
               "v": _b64(np.asarray(vals, np.float32)), "k": bool(complete),
               "w": _b64(None if why is None else np.asarray(why, WHY))}
        if u in extra:
            g = extra[u]
            row["x"] = _b64(None if g is None else np.asarray(g, np.float32))
        rows.append(row)
    return msgspec.json.encode({"version": version, "lists": rows})


def decode(chunk: Mapping[str, Any]) -> tuple[dict[str, Entry], dict[str, np.ndarray | None]]:
    """A chunk of :func:`encode` back as the overlay's entries and extra rows."""
    new: dict[str, Entry] = {}
    extra: dict[str, np.ndarray | None] = {}
    for row in chunk["lists"]:
        u = row["u"]
        new[u] = (_array(row["c"], np.int32), _array(row["v"], np.float32), bool(row["k"]),
                  _array(row["w"], WHY))
        if "x" in row:
            extra[u] = _array(row["x"], np.float32)
    return new, extra


class ListsLog:
    """Recomputed lists for the workers: append on the refresher, read on the polls."""

    def __init__(self, max_users: int = 2_000) -> None:
        self.max_users = max_users
        self.seq = 0  # the last list's sequence number
        self._chunks: deque[_Chunk] = deque()
        self._held = 0
        self._lock = threading.Lock()

    def append(self, version: str | None, new: Mapping[str, Entry],
               extra: Mapping[str, np.ndarray | None]) -> None:
        if not new:
            return
        text = encode(version, new, extra)
        with self._lock:
            chunk = _Chunk(self.seq + 1, tuple(new), text)
            self._chunks.append(chunk)
            self.seq += len(chunk)
            self._held += len(chunk)
            while self._held - len(self._chunks[0]) >= self.max_users:
                self._held -= len(self._chunks.popleft())

    def forget(self, user_id: str) -> None:
        """Drop a user's lists (erasure): no later poll carries them."""
        with self._lock:
            self._chunks = deque(c if user_id not in c.users else _Chunk(
                c.first, c.users, _without(c.text, user_id)) for c in self._chunks)

    def since(self, seq: int) -> tuple[bytes, int]:
        """The chunks after ``seq`` as a JSON array, and the last sequence number held."""
        with self._lock:
            chunks = list(self._chunks)
            last = self.seq
        return b"[" + b",".join(c.text for c in chunks if c.first + len(c) - 1 > seq) + b"]", \
            last


def _without(text: bytes, user_id: str) -> bytes:
    d = msgspec.json.decode(text)
    d["lists"] = [r for r in d["lists"] if r["u"] != user_id]
    return msgspec.json.encode(d)
