"""Pseudonymous ids: keyed, stable, never stored raw, lookups by raw id, rotation."""

from __future__ import annotations

import hashlib
import hmac
import pickle

import pandas as pd
import pytest
from privacy_world import SECRET, TARGET, scan_store

from feedwise.errors import ConfigError
from feedwise.privacy import PrivacySettings, Pseudonymizer, get_consent, set_consent
from feedwise.store import EventStore


def test_pseudonym_is_truncated_hmac_sha256():
    p = Pseudonymizer(SECRET)
    want = hmac.new(SECRET.encode(), TARGET.encode(), hashlib.sha256).hexdigest()[:32]
    assert p(TARGET) == want == p(TARGET)
    assert p("bob") != p(TARGET)
    assert Pseudonymizer(SECRET + "x")(TARGET) != want  # the key matters


def test_key_is_protected():
    with pytest.raises(ConfigError, match="16 bytes"):
        Pseudonymizer("short")
    p = Pseudonymizer(SECRET)
    assert SECRET not in repr(p) and SECRET not in str(p)
    with pytest.raises(TypeError):
        pickle.dumps(p)


def test_settings_read_key_from_env(monkeypatch):
    monkeypatch.setenv("FEEDWISE_PSEUDONYM_KEY", SECRET)
    s = PrivacySettings()
    assert SECRET not in repr(s)
    assert s.pseudonymizer()(TARGET) == Pseudonymizer(SECRET)(TARGET)
    monkeypatch.delenv("FEEDWISE_PSEUDONYM_KEY")
    assert PrivacySettings().pseudonymizer() is None


def test_store_never_holds_raw_ids():
    p = Pseudonymizer(SECRET)
    users = [TARGET, "bob", "carol"]
    df = pd.DataFrame({"user_id": users * 3 + [TARGET],
                       "item_id": [f"i{k}" for k in range(10)],
                       "kind": ["click"] * 9 + ["warp"],  # the last row is rejected
                       "ts": ["2026-01-01T00:00:00Z"] * 10})
    with EventStore(":memory:", pseudonymizer=p) as store:
        rep = store.ingest(df)
        assert (rep.accepted, rep.rejected) == (9, 1)
        store.upsert_users([{"user_id": "dave"}])
        store.add_events([{"user_id": "erin", "item_id": "i1", "kind": "like",
                           "ts": "2026-01-02T00:00:00Z"}])
        assert scan_store(store, {*users, "dave", "erin"}) == []
        assert set(store.events()["user_id"]) == {p(u) for u in [*users, "erin"]}
        assert store.user_key(TARGET) == p(TARGET)
        # the reject keeps its row, with the pseudonym in place of the id
        assert p(TARGET) in store.rejects()["raw"].iloc[0]
        # lookups by raw id go through the same function
        set_consent(store, "dave", ads=False, source="api",
                    now=pd.Timestamp("2026-01-03", tz="UTC").to_pydatetime())
        assert get_consent(store, "dave").ads is False
        # same ids, same event ids: re-ingestion is idempotent
        assert store.ingest(df).duplicates == 9


def test_chained_rotation_matches_rekeyed_store_ids():
    old = Pseudonymizer(SECRET)
    new = Pseudonymizer("another-secret-key-0123456789", previous=old)
    assert new(TARGET) == new.rekey(old(TARGET)) != old(TARGET)


def test_many_distinct_ids_map_one_to_one():
    p = Pseudonymizer(SECRET)
    n = 5000
    df = pd.DataFrame({"user_id": [f"u{k}" for k in range(n)], "item_id": "i",
                       "kind": "click", "ts": "2026-01-01T00:00:00Z"})
    with EventStore(":memory:", pseudonymizer=p) as store:
        store.ingest(df)
        got = store.query("SELECT DISTINCT user_id FROM events")["user_id"]
        assert set(got) == {p(f"u{k}") for k in range(n)}


def test_structural_csv_rejects_hold_no_raw_ids(tmp_path):
    """Lines the CSV reader cannot parse stay diagnosable but never keep the raw id."""
    f = tmp_path / "broken.csv"
    f.write_bytes(b"user_id,item_id,kind,ts\n"
                  b"bob,x,click,2026-01-01T00:00:00Z\n"
                  + TARGET.encode() + b",y\xff\xfe,click,2026-01-01T00:00:00Z\n"
                  b"carol,z,click,2026-01-02T00:00:00Z\n")
    with EventStore(":memory:", pseudonymizer=Pseudonymizer(SECRET)) as store:
        rep = store.ingest(f)
        assert (rep.accepted, rep.rejected) == (2, 1)
        assert scan_store(store, {TARGET}) == []
        rej = store.rejects()
        assert len(rej) == 1 and "INVALID ENCODING" in rej["reason"].iloc[0]
        assert "line text not kept" in rej["reason"].iloc[0]
        # row 2: the second data row (line 3 of the file), numbered as every reject is
        assert rej["raw"].isna().all() and (rej["row"] == 2).all()
        assert (rej["source"] == str(f)).all()
    with EventStore(":memory:") as store:  # without pseudonyms the line is kept as read
        store.ingest(f)
        assert store.rejects()["raw"].iloc[0].startswith(TARGET + ",y")
