"""Item 7: a pseudonymised store opened without its key.

``env -u FEEDWISE_PSEUDONYM_KEY feedwise ingest ...`` stored raw ids in a pseudonymised
store (an erased raw id was back), and nothing recorded that the store was pseudonymised.

Now the store records its key's fingerprint (the pseudonym of a fixed label: an HMAC under
the key, never the key) in ``store_meta`` the first time it is opened with a key. Opened
without the key, it still serves reads that need no key (counts, KPIs, training data), but
everything that writes user data or looks a user up by external id (ingest, user upserts,
consent, export, erasure, the service) refuses with a ConfigError naming
FEEDWISE_PSEUDONYM_KEY; opened with another key it refuses to open at all. A chained key
rotation (``Pseudonymizer(new, previous=old)``) rewrites the ids and the fingerprint in one
transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
from pathlib import Path

import pandas as pd
import pytest
from privacy_world import NOW, SECRET, TARGET, digests, make_world, scan_store
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "privacy"))
from privacy_service import make_service  # noqa: E402

from feedwise.cli import app  # noqa: E402
from feedwise.errors import ConfigError  # noqa: E402
from feedwise.privacy import (  # noqa: E402
    PrivacySettings,
    Pseudonymizer,
    erase_user,
    export_user,
    get_consent,
    set_consent,
)
from feedwise.privacy.pseudonyms import rotate_key  # noqa: E402
from feedwise.store import EventStore  # noqa: E402

OTHER = "another-secret-key-0123456789"
KEY_ENV = "FEEDWISE_PSEUDONYM_KEY"


def _events(user: str, n: int = 3, tag: str = "late") -> pd.DataFrame:
    return pd.DataFrame({"event_id": [f"{tag}-{user}-{k}" for k in range(n)],
                         "user_id": user, "item_id": [f"p{k}" for k in range(n)],
                         "kind": "click", "ts": "2026-03-01T00:00:00Z"})


@pytest.fixture()
def db(tmp_path) -> str:
    """A pseudonymised store in which TARGET has been erased."""
    w = make_world(tmp_path)
    erase_user(w.store, TARGET, now=NOW)
    w.store.close()
    return str(tmp_path / "privacy.duckdb")


def test_the_store_records_a_fingerprint_of_its_key_never_the_key(db):
    p = Pseudonymizer(SECRET)
    with EventStore(db, read_only=True) as store:
        fp = store.key_fingerprint()
        assert fp is not None and fp == p.fingerprint()
        label = hmac.new(SECRET.encode(), b"", hashlib.sha256).hexdigest()  # not this either
        assert scan_store(store, {SECRET, *digests(SECRET), label[:32]}) == []


def test_without_the_key_user_data_is_refused_and_reads_still_work(db):
    with EventStore(db) as store:
        events = store.count_events()
        assert events > 0 and store.interactions().n_users > 0  # reads need no key
        refusals = {
            "ingest": lambda: store.ingest(_events(TARGET)),
            "add_events": lambda: store.add_events(_events("bob").to_dict("records")),
            "upsert_users": lambda: store.upsert_users([{"user_id": "bob"}]),
            "consent": lambda: set_consent(store, "bob", ads=False, source="test", now=NOW),
            "get_consent": lambda: get_consent(store, "user-001"),
            "export": lambda: export_user(store, "user-001", now=NOW),
            "erase": lambda: erase_user(store, "user-001", now=NOW),
            "user_key": lambda: store.user_key("user-001"),
            "require_key": store.require_key,
        }
        for name, call in refusals.items():
            with pytest.raises(ConfigError, match=KEY_ENV):
                call()
            assert store.count_events() == events, name
        # the erased raw id is not back, under any name
        assert scan_store(store, {TARGET}) == []


def test_another_key_refuses_to_open(db):
    for read_only in (False, True):
        with pytest.raises(ConfigError, match=KEY_ENV):
            EventStore(db, read_only=read_only, pseudonymizer=Pseudonymizer(OTHER))


def test_cli_ingest_without_the_key_fails_and_the_erased_id_stays_out(db, tmp_path):
    f = tmp_path / "late.csv"
    _events(TARGET).to_csv(f, index=False)
    runner = CliRunner()
    res = runner.invoke(app, ["ingest", str(f), "--db", db], env={KEY_ENV: None})
    assert res.exit_code == 2, res.output
    assert KEY_ENV in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["ingest", str(f), "--db", db], env={KEY_ENV: OTHER})
    assert res.exit_code == 2 and KEY_ENV in res.output, res.output
    with EventStore(db, read_only=True) as store:
        assert scan_store(store, {TARGET}) == []
        assert store.count_events(), "the store is intact"
    # with the right key the erased user stays erased (tombstone of the pseudonym)
    res = runner.invoke(app, ["ingest", str(f), "--db", db], env={KEY_ENV: SECRET})
    assert res.exit_code == 0, res.output
    with EventStore(db, pseudonymizer=Pseudonymizer(SECRET)) as store:
        assert scan_store(store, {TARGET, store.user_key(TARGET)}) == []


def test_the_service_refuses_to_start_without_the_key(tmp_path, monkeypatch):
    from feedwise.server.deps import ServiceState

    svc = make_service(tmp_path, monkeypatch)
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ConfigError, match=KEY_ENV):
        ServiceState(svc.settings)


def test_chained_rotation_rewrites_ids_and_fingerprint(db, monkeypatch):
    old = Pseudonymizer(SECRET)
    new = Pseudonymizer(OTHER, previous=old)
    with EventStore(db, pseudonymizer=old) as store:
        set_consent(store, "user-001", ads=False, source="test", now=NOW)
        n_user = len(store.events("user_id = ?", [old("user-001")]))
        assert n_user
    # the chained key does not open a store whose ids are still under the old key; the
    # error says how to rotate
    with pytest.raises(ConfigError, match="rotat"):
        EventStore(db, pseudonymizer=new)
    with EventStore(db, pseudonymizer=old) as store:
        changed = rotate_key(store, new)
        assert changed["events"] > 0
        assert store.key_fingerprint() == new.fingerprint()
    with pytest.raises(ConfigError, match=KEY_ENV):
        EventStore(db, pseudonymizer=old)  # the old key alone no longer fits
    with EventStore(db, pseudonymizer=new) as store:
        assert len(store.events("user_id = ?", [new("user-001")])) == n_user
        assert get_consent(store, "user-001").ads is False
        assert scan_store(store, {old("user-001")}) == []
        rep = store.ingest(_events("user-002", tag="after"))
        assert rep.accepted == 3
        assert set(store.events("event_id LIKE 'after-%'")["user_id"]) == {new("user-002")}
    # the CLI and the server build the chained key from the environment
    monkeypatch.setenv(KEY_ENV, OTHER)
    monkeypatch.setenv(f"{KEY_ENV}_PREVIOUS", SECRET)
    with EventStore(db, pseudonymizer=PrivacySettings().pseudonymizer()) as store:
        assert get_consent(store, "user-001").ads is False
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ConfigError, match=f"{KEY_ENV}_PREVIOUS"):
        PrivacySettings().pseudonymizer()
