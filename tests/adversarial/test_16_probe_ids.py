"""Item 16 (part): ``duplicates`` and "erased" answers let an ingest key probe which ids exist.

``POST /v1/events`` told any ingest key that a row's ``event_id`` (or, for a row without
one, its exact content) was already stored (``duplicates: 1``), and that a user had been
erased (a row error naming it). Now a key without ``admin`` gets the same answer whatever
the store held before: a stored row and a row of an erased user count as ``accepted`` (the
store holds it, or drops it on purpose), ``duplicates`` counts only rows repeated within the
batch itself, and ``received = accepted + duplicates + rejected`` always. An ``admin`` key
still sees what the store did.
"""

from __future__ import annotations

from service_world import world_events

from feedwise.server.routes.events import _answer_for_ingest_key
from feedwise.server.writer import ERASED_REASON, RowError

TS = "2024-03-01T00:00:00Z"


def _post(client, world, rows, key=None):
    r = client.post("/v1/events", json=rows, headers=world.headers(key or world.ingest))
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["received"] == b["accepted"] + b["duplicates"] + b["rejected"] == len(rows)
    return {k: b[k] for k in ("received", "accepted", "duplicates", "rejected", "errors")}


def _count(client) -> int:
    state = client.app.state.feedwise
    state.writer.call(lambda s: None).result(10)
    return state.store.count_events()


def test_an_ingest_key_cannot_tell_stored_ids_from_new_ones(client, world):
    stored = world_events().iloc[0].to_dict()  # a row the world holds: id w0-0
    known = {"event_id": stored["event_id"], "user_id": "u9", "item_id": "i1",
             "kind": "click", "ts": TS}
    unknown = {**known, "event_id": "never-stored-0001"}
    assert _post(client, world, [known]) == _post(client, world, [unknown])
    # content-derived ids: a second post of the same row answers as the first did
    row = {"user_id": "u3", "item_id": "i2", "kind": "like", "ts": TS}
    assert _post(client, world, [row]) == _post(client, world, [row]) == {
        "received": 1, "accepted": 1, "duplicates": 0, "rejected": 0, "errors": []}
    # repeats inside one batch are the client's own business and still show
    assert _post(client, world, [unknown, unknown])["duplicates"] == 1
    again = {**unknown, "event_id": "never-stored-0002"}
    clash = _post(client, world, [again, {**again, "kind": "like"}])
    assert clash["accepted"] == 1 and clash["duplicates"] + clash["rejected"] == 1
    # an admin key still sees what the store did (a duplicate, or a clash of content)
    adm = _post(client, world, [known], world.admin)
    assert adm["accepted"] == 0 and adm["duplicates"] + adm["rejected"] == 1
    assert _post(client, world, [unknown], world.admin)["duplicates"] == 1


def test_an_ingest_key_cannot_tell_erased_users_from_unknown_ones(client, world):
    assert client.delete("/v1/users/u5", headers=world.headers(world.admin)).status_code == 200
    before = _count(client)
    erased = {"event_id": "probe-1", "user_id": "u5", "item_id": "i1", "kind": "click",
              "ts": TS}
    nobody = {**erased, "event_id": "probe-2", "user_id": "never-a-user-777"}
    a, b = _post(client, world, [erased]), _post(client, world, [nobody])
    assert a == b == {"received": 1, "accepted": 1, "duplicates": 0, "rejected": 0,
                      "errors": []}
    assert _count(client) == before + 1  # the erased user's row was not stored
    # the admin key is told
    adm = _post(client, world, [{**erased, "event_id": "probe-3"}], world.admin)
    assert adm["rejected"] == 1 and "erased" in adm["errors"][0]["reason"]
    # invalid rows are still reported to everyone, by index and field
    bad = _post(client, world, [{**nobody, "event_id": "probe-4", "kind": "bogus"}, nobody])
    assert (bad["accepted"], bad["rejected"]) == (1, 1)
    assert bad["errors"][0]["index"] == 0 and bad["errors"][0]["field"] == "kind"


def test_store_errors_that_depend_on_stored_rows_are_not_shown_to_an_ingest_key():
    """The rule itself, with the store's reasons (a clash with a stored event of other
    content, an erased user) next to errors about the row's own content."""
    ids = ["a", "b", "c", "a", "d"]
    indices = [0, 2, 3, 5, 6]  # 1 and 4 failed earlier checks
    stored = [RowError(2, "event_id", "event_id 'b' is already stored with different "
                                      "content (kind: 'click' -> 'like')"),
              RowError(3, "user_id", ERASED_REASON),
              RowError(5, "event_id", "event_id 'a' repeats row 1 with different content"),
              RowError(6, "event_id", "event ids starting with 'srv:' are reserved")]
    accepted, duplicates, errors = _answer_for_ingest_key(ids, indices, stored)
    assert [e.index for e in errors] == [5, 6]  # the batch's own clash and a content rule
    assert (accepted, duplicates) == (3, 0)  # a, b, c
    assert _answer_for_ingest_key(ids, indices, []) == (4, 1, [])  # nothing from the store
