"""`ListsLog` (server/listslog.py): the lists the owner recomputed, kept in order for its
feed workers: encoded and decoded exactly, read after a position, bounded, and an erased
user's lists dropped."""

from __future__ import annotations

import msgspec
import numpy as np

from feedwise.feed.materialised import WHY
from feedwise.server.listslog import ListsLog, decode


def _entry(seed: int, why: bool = True):  # noqa: ANN202
    rng = np.random.default_rng(seed)
    cols = rng.choice(1000, 7, replace=False).astype(np.int32)
    vals = rng.random(7).astype(np.float32)
    reasons = np.zeros(7, WHY)
    reasons["k"], reasons["liked"] = 1, cols[::-1]
    return cols, vals, bool(seed % 2), reasons if why else None


def _chunks(log: ListsLog, since: int) -> list[dict]:
    text, _ = log.since(since)
    return msgspec.json.decode(text)


def test_a_block_comes_back_as_it_went_in() -> None:
    log = ListsLog()
    new = {"u1": _entry(1), "u2": _entry(2, why=False),
           "u3": (np.empty(0, np.int32), np.empty(0, np.float32), False, None)}
    extra = {"u1": np.arange(4, dtype=np.float32), "u3": None}
    log.append("v1", new, extra)
    [chunk] = _chunks(log, 0)
    assert chunk["version"] == "v1"
    got, got_extra = decode(chunk)
    assert list(got) == ["u1", "u2", "u3"]
    for u, (c, v, k, why) in new.items():
        gc, gv, gk, gwhy = got[u]
        assert gc.dtype == np.int32 and np.array_equal(gc, c)
        assert gv.dtype == np.float32 and np.array_equal(gv, v)
        assert gk == k
        assert (gwhy is None) == (why is None)
        assert why is None or (gwhy.dtype == WHY and np.array_equal(gwhy, why))
    assert set(got_extra) == {"u1", "u3"} and got_extra["u3"] is None
    assert np.array_equal(got_extra["u1"], extra["u1"])
    got["u1"][0][0] = -5  # writable copies, not views of the message
    assert new["u1"][0][0] != -5


def test_a_poll_gets_the_blocks_after_its_position_and_the_log_is_bounded() -> None:
    log = ListsLog(max_users=4)
    for k in range(3):
        log.append("v1", {f"u{k}a": _entry(k), f"u{k}b": _entry(k + 10)}, {})
    assert log.seq == 6
    # the first block fell out (4 users are kept); a poll at 2 gets the next two blocks
    assert [list(decode(c)[0]) for c in _chunks(log, 2)] == [["u1a", "u1b"], ["u2a", "u2b"]]
    assert [list(decode(c)[0]) for c in _chunks(log, 4)] == [["u2a", "u2b"]]
    assert _chunks(log, 6) == [] and log.since(6)[1] == 6
    log.append("v1", {}, {})  # nothing recomputed: nothing appended
    assert log.seq == 6


def test_an_erased_users_lists_leave_the_log() -> None:
    log = ListsLog()
    log.append("v1", {"u1": _entry(1), "u2": _entry(2)}, {"u1": None})
    log.append("v1", {"u1": _entry(3)}, {})
    log.forget("u1")
    chunks = _chunks(log, 0)
    assert [list(decode(c)[0]) for c in chunks] == [["u2"], []]
    assert b"u1" not in log.since(0)[0]
    assert log.seq == 3  # positions unchanged: a worker's cursor stays valid
