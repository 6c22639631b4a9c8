"""The engagement the owner hands its feed workers (server/engagementlog.py): in order, each
landing encoded once, whole landings per poll, and a gap said when the log dropped some."""

from __future__ import annotations

import json

from feedwise.server.engagementlog import EngagementLog


def _events(log: EngagementLog, since: int, limit: int = 50_000) -> tuple[dict, int, bool]:
    text, seq, gap = log.since(since, limit)
    return json.loads(text), seq, gap


def test_polls_return_the_events_after_a_sequence_number_in_order():
    log = EngagementLog()
    assert _events(log, 0) == ({"user_id": [], "item_id": [], "kind": []}, 0, False)
    log.append(["u1", "u2"], ["i1", "i2"], ["click", "like"])
    log.append(["ü3"], ["i3"], ["share"])  # any text survives the encoding
    got, seq, gap = _events(log, 0)
    assert got == {"user_id": ["u1", "u2", "ü3"], "item_id": ["i1", "i2", "i3"],
                   "kind": ["click", "like", "share"]}
    assert (seq, gap, log.seq) == (3, False, 3)
    # a worker that started in the middle of a landing gets the rest of it
    assert _events(log, 1)[0]["user_id"] == ["u2", "ü3"]
    assert _events(log, 3) == ({"user_id": [], "item_id": [], "kind": []}, 3, False)
    # each landing is encoded once for every worker that polls it, and kept as that text
    # only (no list for the collector to walk)
    first = log._chunks[0].text
    _events(log, 0)
    assert log._chunks[0].text is first and all(type(t) is str for t in first)
    assert not any(isinstance(v, list) for v in vars(log._chunks[0]).values())


def test_a_poll_takes_whole_landings_up_to_its_limit():
    log = EngagementLog()
    for b in range(3):
        log.append([f"u{b}-{j}" for j in range(4)], ["i"] * 4, ["click"] * 4)
    got, seq, _ = _events(log, 0, limit=6)
    assert seq == 4 and len(got["user_id"]) == 4  # a second landing would pass the limit
    got, seq, _ = _events(log, 4, limit=6)
    assert seq == 8 and got["user_id"][0] == "u1-0"
    got, seq, _ = _events(log, 0, limit=2)  # one landing is given whole
    assert seq == 4 and len(got["user_id"]) == 4


def test_a_worker_behind_what_the_log_keeps_is_told():
    log = EngagementLog(max_events=5)
    for b in range(4):
        log.append([f"u{b}a", f"u{b}b"], ["i", "i"], ["click", "click"])
    assert log.seq == 8 and sum(len(c) for c in log._chunks) == 6  # the oldest dropped
    got, seq, gap = _events(log, 0)
    assert gap and seq == 8 and got["user_id"][0] == "u1a"
    assert _events(log, 2)[2] is False  # right where the log starts: nothing lost
