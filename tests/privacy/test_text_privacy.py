"""Comment text is user data: it lands through every ingest path and erasure, export and
retention cover it like every other field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from service_world import client, world  # noqa: F401 - the service test world's fixtures

from feedwise.privacy.erasure import erase_user
from feedwise.privacy.export import dumps_export, export_user
from feedwise.privacy.retention import purge
from feedwise.store import EventStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SECRET = "my secret opinion: the new flavour is 糟糕透了"


def _events(user: str, n: int = 3, *, days: float = 0.0) -> list[dict]:
    return [{"event_id": f"{user}-c{j}", "user_id": user, "item_id": f"p{j}", "kind": "comment",
             "ts": T0 + timedelta(days=days, hours=j), "text": f"{SECRET} #{user}-{j}",
             "parent_id": f"p{j}"} for j in range(n)]


def _texts_anywhere(store: EventStore, needle: str) -> list[str]:
    """Every table.column of the store whose text holds ``needle`` (a test-side scan)."""
    cur = store.cursor()
    cols = cur.execute("""SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = 'main' AND data_type IN ('VARCHAR', 'JSON')""").fetchall()
    hits = []
    for t, c in cols:
        n = cur.execute(f'SELECT count(*) FROM "{t}" WHERE strpos("{c}", ?) > 0',
                        [needle]).fetchone()[0]
        if n:
            hits.append(f"{t}.{c}")
    return hits


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_comment_text_lands_through_file_ingest(tmp_path, fmt: str) -> None:
    df = pd.DataFrame(_events("alice") + _events("bob"))
    df["ts"] = df["ts"].map(lambda t: t.isoformat())
    path = tmp_path / f"events.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "jsonl":
        df.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        df.to_parquet(path)
    with EventStore(":memory:") as store:
        rep = store.ingest(path)
        assert rep.accepted == 6, rep
        rows = store.user_rows("alice")["events"]
        assert [r["text"] for r in rows] == [f"{SECRET} #alice-{j}" for j in range(3)]
        assert [r["parent_id"] for r in rows] == ["p0", "p1", "p2"]


def test_text_over_the_limit_is_rejected_and_the_rest_lands() -> None:
    rows = _events("carol", 2)
    rows[1]["text"] = "x" * 10_001
    with EventStore(":memory:") as store:
        rep = store.ingest(pd.DataFrame(rows))
        assert rep.accepted == 1 and rep.rejected == 1
        rej = store.rejects()
        assert "text" in set(rej["field"]) and "10000" in " ".join(rej["reason"])


def test_erasure_removes_comment_text_everywhere_and_export_holds_it() -> None:
    with EventStore(":memory:") as store:
        bad = _events("alice", 1)[0] | {"event_id": "alice-bad", "kind": "nonsense"}
        store.ingest(pd.DataFrame([*_events("alice"), bad, *_events("bob")]))
        assert store.count_events() == 6
        exported = export_user(store, "alice", now=T0 + timedelta(days=1))
        texts = [e["text"] for e in exported["tables"]["events"]]
        assert texts == [f"{SECRET} #alice-{j}" for j in range(3)]
        assert "#alice-" in dumps_export(exported)
        assert _texts_anywhere(store, "#alice-")  # events and the rejected row
        erase_user(store, "alice", now=T0 + timedelta(days=2))
        assert _texts_anywhere(store, "#alice-") == []
        assert len(_texts_anywhere(store, "#bob-")) >= 1  # others' comments stay
        assert len(store.user_rows("bob")["events"]) == 3


def test_retention_purges_old_comment_text() -> None:
    with EventStore(":memory:") as store:
        store.ingest(pd.DataFrame(_events("dave", days=0) + _events("erin", days=40)))
        purge(store, 30, now=T0 + timedelta(days=45))
        assert _texts_anywhere(store, "#dave-") == []
        assert len(_texts_anywhere(store, "#erin-")) == 1


def test_post_events_carries_text_and_parent(world, client) -> None:  # noqa: F811
    long_text = "完" * 9_000  # over the API's 4,096-character field cap, under the text limit
    rows = [{"event_id": "api-c1", "user_id": "u1", "item_id": "i1", "kind": "comment",
             "ts": (T0 + timedelta(days=31)).isoformat(), "text": SECRET, "parent_id": "i1"},
            {"event_id": "api-c2", "user_id": "u2", "item_id": "i2", "kind": "comment",
             "ts": (T0 + timedelta(days=31)).isoformat(), "text": long_text},
            {"event_id": "api-c3", "user_id": "u3", "item_id": "i3", "kind": "comment",
             "ts": (T0 + timedelta(days=31)).isoformat(), "text": "y" * 10_001}]
    r = client.post("/v1/events", json=rows, headers=world.headers(world.ingest))
    assert r.status_code in (200, 202), r.text
    body = r.json()
    assert body["accepted"] == 2, body
    assert any("text" in json.dumps(e) for e in body.get("errors", body.get("rejected", [])))
    store = client.app.state.feedwise.store
    got = store.user_rows("u1")["events"]
    mine = [e for e in got if e["event_id"] == "api-c1"]
    assert mine and mine[0]["text"] == SECRET and mine[0]["parent_id"] == "i1"
    assert [e["text"] for e in store.user_rows("u2")["events"]
            if e["event_id"] == "api-c2"] == [long_text]
