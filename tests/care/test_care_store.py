"""Messages, replies and answers in the store: idempotence, KPIs by hand, privacy."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from care_world import knowledge

from feedwise.care.kpis import care_kpis
from feedwise.errors import DataError, NotFoundError
from feedwise.privacy import erase_user, export_user, set_consent
from feedwise.store import EventStore

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def s(n: float) -> datetime:
    return T0 + timedelta(seconds=n)


def msg(mid: str, user: str, channel: str, intent: str, routing: str, at: float) -> dict:
    return {"message_id": mid, "user_id": user, "channel": channel, "text": f"text of {mid}",
            "ts": s(at), "intent": intent, "routing": routing}


def reply(rid: str, mid: str, agent: str, at: float, *, auto: bool = False,
          resolves: bool = True) -> dict:
    return {"reply_id": rid, "message_id": mid, "agent": agent, "text": "hi", "ts": s(at),
            "auto": auto, "resolves": resolves}


@pytest.fixture()
def care_store(store: EventStore) -> EventStore:
    for m in (msg("m1", "u1", "dm", "card", "auto", 0),
              msg("m2", "u2", "comment", "refund", "human", 60),
              msg("m3", "u3", "dm", "pin", "human", 120),
              msg("m4", "u4", "dm", "card", "human", 180),
              msg("m5", "u5", "dm", "card", "human", 200)):
        store.add_message(m)
    for r in (reply("r1", "m1", "auto", 2, auto=True),
              reply("r2", "m2", "ann", 660, resolves=False),
              reply("r3", "m2", "ann", 3660),
              reply("r4", "m3", "bob", 420),
              reply("r5", "m5", "bob", 210)):
        store.add_reply(r)
    store.rate_message("m1", 5, now=s(100))
    store.rate_message("m2", 3, now=s(4000))
    store.rate_message("m5", 1, now=s(300))
    # u5 withdrew analytics consent: answered, but not counted
    set_consent(store, "u5", now=s(1), source="test", analytics=False)
    return store


def test_kpis_equal_hand_computed_values(care_store):
    k = care_kpis(care_store).loc["all"]
    assert k["messages"] == 4 and k["answered"] == 3
    assert k["first_response_s_median"] == 300
    assert k["first_response_s_mean"] == pytest.approx((2 + 600 + 300) / 3)
    assert k["resolved"] == 3
    assert k["resolution_s_median"] == 300
    assert k["resolution_s_mean"] == pytest.approx((2 + 3600 + 300) / 3)
    assert k["auto_share"] == 0.25 and k["escalated_share"] == 0.75
    assert k["rated"] == 2 and k["satisfaction"] == 4.0


def test_kpis_per_channel_and_agent(care_store):
    ch = care_kpis(care_store, by="channel")
    assert list(ch.index) == ["comment", "dm"]
    assert ch.loc["dm", "messages"] == 3 and ch.loc["dm", "first_response_s_median"] == 151
    assert ch.loc["dm", "auto_share"] == pytest.approx(1 / 3)
    assert ch.loc["comment", "resolution_s_mean"] == 3600
    assert ch.loc["comment", "satisfaction"] == 3
    ag = care_kpis(care_store, by="agent")
    assert set(ag.index) == {"auto", "ann", "bob", "(none)"}
    assert ag.loc["bob", "first_response_s_mean"] == 300
    assert math.isnan(ag.loc["(none)", "first_response_s_mean"])
    it = care_kpis(care_store, by="intent")
    assert it.loc["card", "messages"] == 2
    window = care_kpis(care_store, since=s(50), until=s(130)).loc["all"]
    assert window["messages"] == 2


def test_writes_are_idempotent(care_store):
    row, created = care_store.add_message(msg("m1", "u1", "dm", "other", "human", 999))
    assert not created and row["intent"] == "card"
    rep, created = care_store.add_reply(reply("r4", "m3", "bob", 9999))
    assert not created and rep["ts"] == s(420)
    assert len(care_store.messages()) == 5 and len(care_store.replies()) == 5
    assert care_store.rate_message("m1", 1, now=s(5000)) is False  # the first rating stands
    assert care_store.get_message("m1")["rating"] == 5
    # the first resolving reply sets resolved_at
    assert care_store.get_message("m2")["resolved_at"] == s(3660)


def test_bad_rows_are_refused_clearly(store):
    with pytest.raises(DataError, match="'user_id'"):
        store.add_message({"message_id": "x", "ts": T0})
    with pytest.raises(NotFoundError, match="no message"):
        store.add_reply(reply("r", "nope", "ann", 1))
    store.add_message(msg("m", "u", "dm", "x", "human", 0))
    with pytest.raises(DataError, match="1 to 5"):
        store.rate_message("m", 7, now=T0)


def test_erasure_removes_messages_and_replies_everywhere(care_store):
    before = export_user(care_store, "u2", now=s(5000))["tables"]
    assert [r["message_id"] for r in before["messages"]] == ["m2"]
    assert [r["reply_id"] for r in before["replies"]] == ["r2", "r3"]
    report = erase_user(care_store, "u2", now=s(5000))
    assert report.deleted["messages"] == 1 and report.deleted["replies"] == 2
    assert care_store.get_message("m2") is None
    assert set(care_store.replies()["message_id"]) == {"m1", "m3", "m5"}
    after = care_store.user_rows("u2")
    assert after["messages"] == [] and after["replies"] == []
    assert care_kpis(care_store).loc["all", "messages"] == 3  # others untouched


def test_pseudonymised_store_keeps_only_pseudonyms(tmp_path):
    from feedwise.privacy import Pseudonymizer

    with EventStore(tmp_path / "p.duckdb", pseudonymizer=Pseudonymizer("k" * 32)) as st:
        st.add_message(msg("m1", "alice@example.org", "dm", "card", "human", 0))
        st.add_reply(reply("r1", "m1", "ann", 5))
        assert "alice@example.org" not in set(st.messages()["user_id"])
        assert st.replies()["user_id"].iloc[0] == st.user_key("alice@example.org")
        erase_user(st, "alice@example.org", now=s(10))
        assert st.messages().empty and st.replies().empty


def test_retention_purges_old_messages_and_replies(care_store):
    out = care_store.purge_before(s(150))
    # each row by its own age: messages m1-m3, and the one reply sent before the cutoff
    assert out["messages"] == 3 and out["replies"] == 1
    assert set(care_store.messages()["message_id"]) == {"m4", "m5"}
    assert "r1" not in set(care_store.replies()["reply_id"])


def test_answers_are_versioned(store):
    v1 = store.add_answers(knowledge(), now=T0)
    assert v1 == 1 and store.answers_version() == 1
    changed = knowledge().iloc[[0]].assign(answer="Cards arrive in 3 days now.")
    v2 = store.add_answers(changed, now=s(10))
    assert v2 == 2
    latest = store.answers().set_index("answer_id")
    assert latest.loc["card-arrival", "answer"] == "Cards arrive in 3 days now."
    assert len(latest) == 3
    old = store.answers(1).set_index("answer_id")
    assert old.loc["card-arrival", "answer"] == "Cards arrive within 5 working days."
    assert list(old.loc["card-arrival", "questions"]) == ["Where is my card?",
                                                          "My card has not arrived"]
    with pytest.raises(DataError, match="questions"):
        store.add_answers(pd.DataFrame([{"answer_id": "x", "answer": "y", "questions": []}]),
                          now=T0)


def test_add_messages_in_one_batch(store):
    erase_user(store, "gone", now=T0)
    rows = [msg("b1", "u1", "dm", "card", "auto", 0), msg("b2", "gone", "dm", "card", "human", 1),
            msg("b1", "u1", "dm", "other", "human", 2), msg("b3", "u3", "dm", "pin", "human", 3)]
    auto = {"reply_id": "b1:auto", "agent": "auto", "text": "hi", "ts": s(0), "auto": True}
    out = store.add_messages(rows, [auto, None, {**auto, "reply_id": "dup"}, None])
    assert [created for _, created in out] == [True, False, False, True]
    assert out[1] == (None, False)  # an erased user's message is not stored
    assert out[2][0]["intent"] == "card"  # the stored row of the repeated id
    assert list(store.messages()["message_id"]) == ["b1", "b3"]
    assert list(store.replies()["reply_id"]) == ["b1:auto"]  # no reply for the duplicate
    assert store.get_message("b1")["resolved_at"] == s(0)


def test_add_messages_skips_a_reply_id_already_stored(store):
    """The batch looks the reply ids up first and inserts plainly: a reply id already
    stored (here by an agent's reply) is not written again and nothing raises."""
    store.add_messages([msg("c1", "u1", "dm", "card", "human", 0)])
    store.add_reply({"reply_id": "c2:auto", "message_id": "c1", "agent": "ann", "text": "x",
                     "ts": s(1)})
    auto = {"reply_id": "c2:auto", "agent": "auto", "text": "hi", "ts": s(2), "auto": True}
    out = store.add_messages([msg("c2", "u2", "dm", "card", "auto", 2)], [auto])
    assert out[0][1] is True
    replies = store.replies()
    assert list(replies["reply_id"]) == ["c2:auto"]
    assert replies["agent"].iloc[0] == "ann"  # the stored one stands
    assert store.get_message("c2")["resolved_at"] is None  # no reply of its own was written
