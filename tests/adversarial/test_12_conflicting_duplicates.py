"""Item 12: conflicting duplicates were resolved at random.

``DISTINCT ON`` without ``ORDER BY`` kept an arbitrary row of a batch for a repeated
``event_id``, and a later payload that differed from the stored event was reported only as a
duplicate. Now, per event id, the first row of the batch (by row number) is kept; a later row
with the same id and different content is a reject (``event_id``) that names the difference,
in the batch and against the stored event alike; identical repeats stay duplicates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from feedwise.store import EventStore

TS = "2024-02-01T10:00:00Z"


def _ev(eid: str, kind: str = "click", **kw) -> dict:
    return {"event_id": eid, "user_id": "u1", "item_id": "i1", "kind": kind, "ts": TS, **kw}


def test_the_first_row_of_a_batch_wins_and_later_conflicts_are_rejects(store: EventStore
                                                                        ) -> None:
    rows = [_ev("a", "click"), _ev("b"), _ev("a", "like"), _ev("a", "click"),
            _ev("a", "share"), _ev("b")]
    rep = store.add_events(rows, source_name="batch")
    assert (rep.accepted, rep.duplicates, rep.rejected) == (2, 2, 2)
    ev = store.query("SELECT event_id, kind FROM events ORDER BY event_id")
    assert list(ev.itertuples(index=False, name=None)) == [("a", "click"), ("b", "click")]
    rej = store.rejects("batch")
    assert list(rej["row"]) == [3, 5] and set(rej["field"]) == {"event_id"}
    assert "row 1" in rej["reason"][0] and "kind" in rej["reason"][0]
    assert "different content" in rej["reason"][0]


def test_the_choice_does_not_depend_on_chance(store: EventStore) -> None:
    """Many repeated ids across a large batch: always the first row of each id lands."""
    rng = np.random.default_rng(3)
    n = 20_000
    ids = rng.integers(0, 2_000, n)
    df = pd.DataFrame({"event_id": [f"e{i}" for i in ids], "user_id": "u",
                       "item_id": [f"i{j}" for j in range(n)], "kind": "click", "ts": TS})
    first = df.drop_duplicates("event_id", keep="first").set_index("event_id")["item_id"]
    rep = store.ingest(df)
    assert rep.accepted == len(first) and rep.rejected == n - len(first)
    got = store.query("SELECT event_id, item_id FROM events").set_index("event_id")["item_id"]
    assert got.sort_index().equals(first.sort_index())


def test_a_differing_payload_for_a_stored_id_is_a_reject(store: EventStore) -> None:
    store.add_events([_ev("order-42:0", "click", dwell_ms=5)], source_name="first")
    rep = store.add_events([_ev("order-42:0", "click", dwell_ms=5),      # the same event
                            _ev("order-42:0", "purchase", dwell_ms=5),   # another event
                            _ev("order-42:0", "click", dwell_ms=7)],     # changed content
                           source_name="second")
    assert (rep.accepted, rep.duplicates, rep.rejected) == (0, 1, 2)
    rej = store.rejects("second")
    assert list(rej["row"]) == [2, 3]
    assert all("already stored with different content" in r for r in rej["reason"])
    assert "kind" in rej["reason"][0] and "dwell_ms" in rej["reason"][1]
    ev = store.events()
    assert len(ev) == 1 and ev["kind"][0] == "click" and ev["dwell_ms"][0] == 5


def test_identical_reingest_is_all_duplicates(tmp_path, store: EventStore) -> None:
    p = tmp_path / "ev.csv"
    pd.DataFrame([_ev(f"e{i}", context='{"a": 1}', value=0.1 * i) for i in range(50)]
                 ).to_csv(p, index=False)
    assert store.ingest(p).accepted == 50
    again = store.ingest(p)
    assert (again.accepted, again.duplicates, again.rejected) == (0, 50, 0)
