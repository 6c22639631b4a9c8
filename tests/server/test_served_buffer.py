"""``ServedBuffer`` (server/writer.py): served rows kept as one list per column until taken."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from feedwise.server.writer import ServedBuffer


def _feed(rid: str, n: int, **extra: list) -> dict[str, list]:
    return {"event_id": [f"srv:{rid}:{p}" for p in range(n)], "user_id": [rid] * n,
            "position": list(range(n)), **extra}


def test_columns_line_up_whatever_each_feed_carries() -> None:
    buf = ServedBuffer()
    f1, f2 = Future(), Future()

    def flush() -> None:
        return None

    buf.add(_feed("a", 2), flush, f1)
    buf.add(_feed("b", 3, new_id=[True] * 3), flush, f2)  # a column the first lacks
    buf.add(_feed("c", 1))  # ...and one it lacks
    assert (buf.rows, buf.parts) == (6, 3)
    cols, thens, futures = buf.take()
    assert cols["new_id"] == [None, None, True, True, True, None]
    assert cols["user_id"] == ["a", "a", "b", "b", "b", "c"]
    assert all(len(v) == 6 for v in cols.values())
    assert thens == [flush] and futures == [f1, f2]  # each distinct then once
    assert buf.take() == ({}, [], []) and buf.rows == 0


def test_a_feed_with_a_short_column_is_refused_and_nothing_of_it_kept() -> None:
    buf = ServedBuffer()
    buf.add(_feed("a", 2))
    with pytest.raises(ValueError, match="one value per row"):
        buf.add({**_feed("b", 3), "position": [0]})
    assert buf.rows == 2 and buf.take()[0]["user_id"] == ["a", "a"]


def test_put_back_goes_before_what_came_since() -> None:
    buf = ServedBuffer()
    buf.add(_feed("a", 2))
    taken = buf.take()[0]
    buf.add(_feed("b", 1, kind=["impression"]))
    buf.put_back(taken)
    cols = buf.take()[0]
    assert cols["user_id"] == ["a", "a", "b"] and cols["kind"] == [None, None, "impression"]


def test_feeds_added_from_threads_while_taken_are_each_kept_once_and_whole() -> None:
    buf, got, stop = ServedBuffer(), [], threading.Event()

    def add(t: int) -> None:
        for k in range(2000):
            buf.add(_feed(f"{t}-{k}", 1 + k % 5))

    def take() -> None:
        while not stop.is_set():
            got.append(buf.take()[0])

    taker = threading.Thread(target=take)
    taker.start()
    adders = [threading.Thread(target=add, args=(t,)) for t in range(4)]
    for a in adders:
        a.start()
    for a in adders:
        a.join()
    stop.set()
    taker.join()
    got.append(buf.take()[0])
    ids = [e for c in got if c for e in c["event_id"]]
    users = [u for c in got if c for u in c["user_id"]]
    assert len(ids) == len(set(ids)) == 4 * sum(1 + k % 5 for k in range(2000))
    assert all(e.split(":")[1] == u for e, u in zip(ids, users, strict=True))
