"""``POST /v1/messages`` and ``/reply`` through the service: decisions, idempotence, privacy."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime

import pytest
from care_world import examples, knowledge

from feedwise.care.intents import train_intents
from feedwise.server.routes import messages as messages_route
from feedwise.store import EventStore

T = "2024-02-01T10:00:00Z"


@pytest.fixture()
def care_client(world, tmp_path, monkeypatch):
    texts, labels = examples()
    model = train_intents(texts * 3, labels * 3, target_precision=0.9)
    model.meta_["auto_reply_threshold"] = 0.5  # the tiny world's own threshold is too strict
    model.save(tmp_path / "intents")
    monkeypatch.setenv(messages_route.MODEL_ENV, str(tmp_path / "intents"))
    with EventStore(world.settings.db) as store:
        store.add_answers(knowledge(), now=datetime(2024, 1, 1, tzinfo=UTC))
    from fastapi.testclient import TestClient

    from feedwise.server.app import create_app

    with TestClient(create_app(world.settings)) as c:
        yield c, world


def post(c, world, body, key=None):
    return c.post("/v1/messages", json=body, headers=world.headers(key or world.ingest))


def test_message_in_decision_out_and_idempotent(care_client):
    c, world = care_client
    body = {"message_id": "m1", "user_id": "u1", "text": "Where is my card? Not arrived yet",
            "channel": "dm", "ts": T}
    r = post(c, world, body)
    assert r.status_code == 200, r.text
    out = r.json()
    d = out["decision"]
    assert out["stored"] and not out["duplicate"]
    assert d["intent"] == "card_arrival" and len(d["top"]) == 3
    assert d["routing"]["decision"] == "auto" and d["reply"].startswith("Cards arrive")
    assert d["suggestions"][0]["answer_id"] == "card-arrival" and d["suggestions"][0]["why"]
    again = post(c, world, body).json()
    assert again["duplicate"] and again["decision"] == d
    conflict = post(c, world, {**body, "text": "something else"})
    assert conflict.status_code == 409
    with nullcontext(c.app.state.feedwise.store) as store:
        assert len(store.messages()) == 1
        reps = store.replies()
        assert list(reps["agent"]) == ["auto"] and bool(reps["auto"].iloc[0])


def test_complaint_goes_to_a_person_and_reply_is_recorded_once(care_client):
    c, world = care_client
    r = post(c, world, {"message_id": "m2", "user_id": "u2", "channel": "comment", "ts": T,
                        "text": "Worst bank ever. My refund never came, this is a scam!"})
    d = r.json()["decision"]
    assert d["routing"]["decision"] == "human" and d["routing"]["queue"] == "complaints"
    assert d["reply"] is None and d["routing"]["reasons"]
    rep = {"reply_id": "r1", "agent": "ann", "text": "Sorry! Refunded now.",
           "ts": "2024-02-01T10:05:00Z"}
    a = c.post("/v1/messages/m2/reply", json=rep, headers=world.headers(world.ingest))
    b = c.post("/v1/messages/m2/reply", json=rep, headers=world.headers(world.ingest))
    assert a.status_code == 200 and not a.json()["duplicate"] and b.json()["duplicate"]
    assert c.post("/v1/messages/nope/reply", json=rep,
                  headers=world.headers(world.ingest)).status_code == 404
    rated = c.post("/v1/messages/m2/rating", json={"rating": 4},
                   headers=world.headers(world.ingest))
    assert rated.json() == {"message_id": "m2", "recorded": True}
    with nullcontext(c.app.state.feedwise.store) as store:
        assert len(store.replies("m2")) == 1
        m = store.get_message("m2")
        assert m["rating"] == 4 and m["resolved_at"] is not None


@pytest.mark.parametrize("text", ["", None, "\x00\x01\x02\x03binary", "x" * 20_000,
                                  "Wo ist meine Karte? Sie ist noch nicht angekommen"])
def test_bad_input_gets_a_clear_answer(care_client, text):
    c, world = care_client
    r = post(c, world, {"message_id": f"bad-{len(text or '')}", "user_id": "u3", "text": text,
                        "ts": T})
    assert r.status_code == 200, r.text
    d = r.json()["decision"]
    assert d["routing"]["decision"] == "human" and d["routing"]["reasons"]


def test_a_one_megabyte_body_is_refused_or_routed(care_client):
    c, world = care_client
    r = post(c, world, {"message_id": "big", "user_id": "u3", "text": "y" * 1_000_000,
                        "ts": T})
    assert r.status_code in (200, 413, 422), r.text
    if r.status_code == 200:
        assert r.json()["decision"]["routing"]["decision"] == "human"


def test_scopes_and_erasure_through_the_service(care_client):
    c, world = care_client
    body = {"message_id": "m9", "user_id": "gone", "text": "how do I change my pin?", "ts": T}
    assert post(c, world, body, key=world.read).status_code == 403
    assert post(c, world, body).status_code == 200
    c.post("/v1/messages/m9/reply", json={"reply_id": "r9", "agent": "bob", "text": "ok"},
           headers=world.headers(world.ingest))
    exported = c.get("/v1/users/gone/export", headers=world.headers(world.admin))
    if exported.status_code == 200:
        tables = exported.json()["tables"]
        assert [m["message_id"] for m in tables["messages"]] == ["m9"]
        assert {r["reply_id"] for r in tables["replies"]} >= {"r9"}
    assert c.delete("/v1/users/gone", headers=world.headers(world.admin)).status_code == 200
    with nullcontext(c.app.state.feedwise.store) as store:
        assert store.get_message("m9") is None and store.replies("m9").empty
    # an erased user's new message is answered but not stored
    again = post(c, world, {**body, "message_id": "m10"}).json()
    assert again["stored"] is False and again["decision"]["routing"]


def test_concurrent_posts_double_nothing(care_client):
    from concurrent.futures import ThreadPoolExecutor

    c, world = care_client

    def one(i: int):
        return post(c, world, {"message_id": f"c{i % 5}", "user_id": f"u{i % 5}",
                               "text": f"where is my card number {i % 5}?", "ts": T}).json()

    with ThreadPoolExecutor(8) as ex:
        outs = list(ex.map(one, range(40)))
    assert sum(not o["duplicate"] for o in outs) == 5
    by_id = {}
    for o in outs:
        by_id.setdefault(o["message_id"], []).append(o["decision"])
    assert all(all(d == ds[0] for d in ds) for ds in by_id.values())
    with nullcontext(c.app.state.feedwise.store) as store:
        assert len(store.messages()) == 5
        assert len(store.replies()) == len(set(store.replies()["reply_id"]))


def test_broken_unicode_is_refused_or_routed_never_a_5xx(care_client):
    c, world = care_client
    h = {**world.headers(world.ingest), "Content-Type": "application/json"}
    body = '{"message_id": "s1", "user_id": "u1", "text": "where is my card \\ud800?"}'
    r = c.post("/v1/messages", content=body, headers=h)
    assert r.status_code == 200, r.text
    d = r.json()["decision"]
    assert d["routing"]["decision"] == "human" and d["problem"].startswith("binary")
    bad_id = '{"message_id": "s\\udfff", "user_id": "u1", "text": "hi"}'
    assert c.post("/v1/messages", content=bad_id, headers=h).status_code == 422
    rep = '{"reply_id": "r1", "agent": "ann", "text": "sorry \\ud800"}'
    assert c.post("/v1/messages/s1/reply", content=rep, headers=h).status_code == 422


def test_an_encoder_model_is_decided_in_batches_off_the_loop(world, tmp_path, monkeypatch):
    """An embedding intent model: concurrent messages are embedded together
    (``CareAssistant.embed_many`` on the encoder's thread, batches of at most
    ``ENCODE_MAX``), each decided as the assistant decides it alone; unreadable ones still
    go to a person."""
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    from feedwise.care.assistant import CareAssistant
    from feedwise.server.app import create_app
    from feedwise.text import embeddings

    if not embeddings.available():
        pytest.skip("the text extra is not installed")
    texts, labels = examples()
    model = train_intents(texts * 3, labels * 3, target_precision=0.9, features="both")
    model.meta_["auto_reply_threshold"] = 0.5
    model.save(tmp_path / "enc")
    monkeypatch.setenv(messages_route.MODEL_ENV, str(tmp_path / "enc"))
    monkeypatch.setattr(messages_route, "ENCODE_WAIT_S", 0.02)
    sizes: list[int] = []
    real = CareAssistant.embed_many

    def spy(self, batch, **kw):
        sizes.append(len(batch))
        return real(self, batch, **kw)

    monkeypatch.setattr(CareAssistant, "embed_many", spy)
    with EventStore(world.settings.db) as store:
        store.add_answers(knowledge(), now=datetime(2024, 1, 1, tzinfo=UTC))
    msgs = [f"{t} (order {i})" for i, t in enumerate(texts[:20])] + ["", "\x00\x00\x00"]
    with TestClient(create_app(world.settings)) as c:
        def one(i: int):
            return post(c, world, {"message_id": f"e{i}", "user_id": f"u{i % 3}",
                                   "text": msgs[i], "ts": T}).json()

        with ThreadPoolExecutor(8) as ex:
            outs = list(ex.map(one, range(len(msgs))))
        helper = messages_route.assistant(c.app.state.feedwise)
    assert helper.uses_encoder and sum(sizes) == len(msgs)
    assert max(sizes) <= messages_route.ENCODE_MAX
    for o, text in zip(outs, msgs, strict=True):
        alone = helper.handle(text)
        d = o["decision"]
        assert (d["intent"], d["routing"]["decision"], d["problem"]) == (
            alone["intent"], alone["routing"]["decision"], alone["problem"])
    assert outs[-1]["decision"]["routing"]["decision"] == "human"
