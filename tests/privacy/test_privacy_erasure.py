"""Erasure reaches every table, the loaded models and engines, and survives re-ingestion."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from privacy_world import NOW, SECRET, TARGET, make_world, scan_store, write_events

from feedwise.analytics.profiles import UserProfiler
from feedwise.analytics.scope import Scope
from feedwise.feed.config import FeedConfig
from feedwise.feed.engine import FeedEngine
from feedwise.feed.types import FeedRequest
from feedwise.models.als import ALS
from feedwise.models.itemknn import ItemKNN
from feedwise.privacy import erase_user, export_user, set_consent
from feedwise.store import EventStore


@pytest.fixture()
def world(tmp_path):
    w = make_world(tmp_path)
    yield w
    w.store.close()


def _needles(w) -> set[str]:
    from privacy_world import digests

    key = w.target_key
    return {TARGET, key} | digests(TARGET) | digests(key)


def _fill_other_tables(w, model) -> FeedEngine:
    """Rows about TARGET in tables other modules create: consent log, profiles, ad state."""
    # only a change is logged: withdraw ads consent and grant it again
    set_consent(w.store, TARGET, ads=False, source="banner", now=NOW - pd.Timedelta(hours=1))
    set_consent(w.store, TARGET, ads=True, personalization=True, source="banner", now=NOW)
    with Scope(w.store, NOW - pd.Timedelta(days=60), NOW) as scope:
        UserProfiler().fit(scope, NOW).write(w.store)
    engine = FeedEngine.from_store(w.store, model, FeedConfig(ux_lambda=0.0))
    for k in range(3):
        engine.compose(FeedRequest(user_id=w.target_key, n=10, now=NOW + pd.Timedelta(minutes=k)))
    engine.flush()
    # customer care: a message of the user and a reply to it (store/messages.py)
    w.store.add_message({"message_id": "care-m1", "user_id": TARGET, "channel": "dm",
                         "text": "where is my order?", "ts": NOW})
    w.store.add_reply({"reply_id": "care-r1", "message_id": "care-m1", "agent": "ann",
                       "text": "on its way", "ts": NOW + pd.Timedelta(minutes=5)})
    # a queued notification (store/notifications.py holds stored ids)
    w.store.add_notifications([{"notification_id": "n1", "user_id": w.target_key,
                                "kind": "digest", "ts": NOW + pd.Timedelta(hours=2)}])
    return engine


def test_erasure_leaves_no_trace_and_export_had_everything(world):
    w = world
    model = ALS(factors=8, iterations=3, num_threads=1).fit(w.store.interactions())
    engine = _fill_other_tables(w, model)
    key = w.target_key
    tables = set(w.store.user_tables())
    assert {"events", "users", "consent_log", "user_profiles", "ad_impressions"} <= tables
    # before: the user is everywhere (so the scan below can fail)
    assert {t for t, _, _ in scan_store(w.store, {key})} >= tables
    assert scan_store(w.store, {TARGET}) == []  # pseudonymised at ingest: no raw id stored

    export = export_user(w.store, TARGET, now=NOW)
    stored = w.store.events("user_id = ?", [key])
    assert len(stored) == w.target_events
    assert {e["event_id"] for e in export["tables"]["events"]} == set(stored["event_id"])
    assert len(export["tables"]["rejects"]) == 2
    assert export["consent"]["source"] == "banner"
    assert export["tables"]["ad_impressions"] and export["tables"]["user_profiles"]
    json.dumps(export)  # JSON-ready

    other = "user-005"
    n_other = len(w.store.events("user_id = ?", [w.store.user_key(other)]))
    rep = erase_user(w.store, TARGET, now=NOW, models=[model], engines=[engine])
    assert rep.deleted["events"] == w.target_events
    assert rep.deleted["rejects"] == 2 and rep.models == 1 and rep.engines == 1
    assert scan_store(w.store, _needles(w)) == []
    # nothing else was touched
    assert len(w.store.events("user_id = ?", [w.store.user_key(other)])) == n_other
    assert w.store.is_erased(TARGET) and not w.store.is_erased(other)
    with pytest.raises(Exception, match="erased"):
        set_consent(w.store, TARGET, ads=True, source="api", now=NOW)


def test_model_stops_scoring_the_user(world):
    w = world
    data = w.store.interactions()
    key = w.target_key
    for model in (ALS(factors=8, iterations=3, num_threads=1).fit(data), ItemKNN().fit(data)):
        anon = model.recommend(["nobody-at-all"], 10, exclude_seen=False)[0]
        before = model.recommend([key], 10, exclude_seen=False)[0]
        assert list(before.ids) != list(anon.ids)  # personal before
        erase_user(w.store, TARGET, now=NOW, models=[model])
        after = model.recommend([key], 10, exclude_seen=False)[0]
        assert list(after.ids) == list(anon.ids)
        assert set(after.reasons) == {model.fallback_reason}
        assert np.allclose(model.score(key, ["p1", "p2"]),
                           model.score("nobody-at-all", ["p1", "p2"]))
        assert key not in set(map(str, model.user_ids_))
        assert model.seen_.shape == data.shape


def test_saved_model_after_forget_holds_no_trace(world, tmp_path):
    w = world
    model = ALS(factors=8, iterations=3, num_threads=1).fit(w.store.interactions())
    r = model.user_index_[w.target_key]
    erase_user(w.store, TARGET, now=NOW, models=[model])
    assert not model.user_factors_[r].any() and model.seen_[r].nnz == 0
    path = model.save(tmp_path / "m")
    with np.load(path / "model.npz", allow_pickle=False) as z:
        for name in z.files:
            if z[name].dtype.kind in "US":
                assert w.target_key not in set(z[name].ravel().tolist()), name
    loaded = ALS.load(path)
    assert not loaded.knows_user(w.target_key)


def test_reingesting_old_file_does_not_resurrect(world):
    w = world
    before = w.store.count_events()
    erase_user(w.store, TARGET, now=NOW)
    rep = w.store.ingest(w.events_file)
    assert rep.erased == w.target_events + 2  # valid and bad rows of the erased user
    assert rep.accepted == 0  # everyone else's rows were already there
    assert w.store.count_events() == before - w.target_events
    assert scan_store(w.store, {w.target_key, TARGET}) == []
    # valid rows of other users in the same batch still land
    path, _ = write_events(w.events_file.parent / "new.csv", seed=7)
    rep = w.store.ingest(path)
    assert rep.accepted == 23 * 12 and rep.erased == 12 + 2
    assert scan_store(w.store, {w.target_key, TARGET}) == []
    # and the next retrain excludes them
    assert w.target_key not in w.store.interactions().user_index


def test_erasure_without_pseudonyms(tmp_path):
    w = make_world(tmp_path, pseudonymize=False)
    try:
        assert scan_store(w.store, {TARGET})
        erase_user(w.store, TARGET, now=NOW)
        assert scan_store(w.store, {TARGET} | __import__("privacy_world").digests(TARGET)) == []
        assert w.store.ingest(w.events_file).erased == w.target_events + 2
    finally:
        w.store.close()


def test_export_has_the_rejects_that_erasure_deletes(tmp_path):
    """An id that JSON escapes (a backslash, a quote) is stored escaped in rejects' raw
    text: the export (right of access) must find what the erasure deletes."""
    from feedwise.store import EventStore

    uid = 'CORP\\o"neil'
    with EventStore(tmp_path / "s.duckdb") as store:
        store.ingest(pd.DataFrame({"user_id": [uid, uid], "item_id": ["x", "y"],
                                   "kind": ["click", "poke"], "ts": ["2026-01-01"] * 2}))
        export = export_user(store, uid, now=NOW)
        assert len(export["tables"]["events"]) == 1
        rep = erase_user(store, uid, now=NOW)
        assert rep.deleted["rejects"] == 1
        assert len(export["tables"]["rejects"]) == 1


def test_erasure_is_atomic(world, monkeypatch):
    w = world
    n = w.store.count_events()
    tables = w.store.user_tables

    def broken():
        return [*tables(), "no_such_table"]

    monkeypatch.setattr(w.store, "user_tables", broken)
    with pytest.raises(Exception):  # noqa: B017 - any DuckDB error
        erase_user(w.store, TARGET, now=NOW)
    assert w.store.count_events() == n and not w.store.is_erased(TARGET)


def test_secret_never_in_repr():
    from feedwise.privacy import Pseudonymizer

    p = Pseudonymizer(SECRET)
    assert SECRET not in repr(p) and SECRET not in str(p)


def test_loaded_model_is_cleaned_of_erased_and_opted_out_users(world):
    from feedwise.privacy import forget_erased

    w = world
    data = w.store.interactions()
    erase_user(w.store, TARGET, now=NOW)
    set_consent(w.store, "user-007", personalization=False, source="settings", now=NOW)
    model = ItemKNN().fit(data)  # trained before the erasure and the objection
    assert model.knows_user(w.target_key) and model.knows_user(w.store.user_key("user-007"))
    assert forget_erased(w.store, model) == 2
    assert not model.knows_user(w.target_key)
    assert not model.knows_user(w.store.user_key("user-007"))
    assert model.knows_user(w.store.user_key("user-008"))


# ---------------------------------------------------------------------- item 4 details
def test_scrub_json_removes_only_the_ids():
    from feedwise.store.privacy import scrub_json

    ids = frozenset({"x"})
    doc = {"follows": ["a", "x", "b"], "x": {"deep": 1}, "ref": "x", "n": 1,
           "nested": [{"by": "x"}, ["x", "y"]], "text": "x marks the spot"}
    assert scrub_json(doc, ids) == {"follows": ["a", "b"], "ref": None, "n": 1,
                                    "nested": [{"by": None}, ["y"]],
                                    "text": "x marks the spot"}
    assert scrub_json("x", ids) is None and scrub_json(7, ids) == 7


def test_json_values_written_with_escapes_are_found(tmp_path):
    """A context naming the user with JSON escapes (non-ASCII, a quote) is matched on the
    parsed value, not on the text."""
    uid = 'Zoë "Z" O\'Neil'
    with EventStore(tmp_path / "s.duckdb") as store:
        store.ingest(pd.DataFrame({
            "event_id": ["a", "b", "c"], "user_id": [uid, "other", "other"],
            "item_id": ["x", "y", "z"], "kind": "click", "ts": "2026-01-01",
            "context": [None, json.dumps({"from": uid}),  # ensure_ascii: \u00eb, \"
                        json.dumps({"from": "Zoë"}, ensure_ascii=False)]}))
        store.upsert_users([{"user_id": "other", "attributes": {"follows": [uid, "k"]}}])
        rep = erase_user(store, uid, now=NOW)
        assert rep.scrubbed == {"events.context": 1, "users.attributes": 1, "rejects.raw": 0}
        ctx = dict(zip(store.events()["event_id"], store.events()["context"], strict=True))
        assert json.loads(ctx["b"]) == {"from": None} and json.loads(ctx["c"]) == {"from": "Zoë"}
        assert json.loads(store.users()["attributes"][0]) == {"follows": ["k"]}


def test_item_ids_equal_to_a_user_id_are_not_that_user(tmp_path):
    """Erasing user "1" rewrites models without user "1" and keeps item "1"."""
    from feedwise.registry import ModelRegistry

    with EventStore(tmp_path / "s.duckdb") as store:
        store.ingest(pd.DataFrame({"user_id": ["1", "1", "2", "2", "3"],
                                   "item_id": ["1", "2", "1", "3", "2"], "kind": "click",
                                   "ts": "2026-01-01"}))
        reg = ModelRegistry(tmp_path / "registry")
        reg.register(ItemKNN(k=5).fit(store.interactions()))
        rep = erase_user(store, "1", now=NOW, registries=[reg])
    assert rep.files.models_rewritten == 1 and rep.files.models_retired == 0
    model = reg.load("v0001")
    assert not model.knows_user("1") and model.knows_user("2")
    assert "1" in set(map(str, model.item_ids_))
    assert reg.get("v0001").erased_users == 1


def test_a_version_that_cannot_be_rewritten_is_retired(tmp_path, world):
    from feedwise.errors import NotFoundError
    from feedwise.registry import ModelRegistry

    w = world
    reg = ModelRegistry(tmp_path / "registry")
    data = w.store.interactions()
    reg.register(ItemKNN(k=5).fit(data))
    reg.register(ItemKNN(k=5).fit(data))
    meta = json.loads((reg.versions_dir / "v0002" / "model.json").read_text())
    meta["class"] = "no-such-model"  # e.g. written by a newer feedwise
    (reg.versions_dir / "v0002" / "model.json").write_text(json.dumps(meta))
    rep = erase_user(w.store, TARGET, now=NOW, registries=[reg])
    assert (rep.files.models_rewritten, rep.files.models_retired) == (1, 1)
    assert reg.get("v0002").retired_at is not None
    assert not (reg.versions_dir / "v0002" / "model.npz").exists()
    with pytest.raises(NotFoundError, match="retired"):
        reg.load("v0002")
    assert not reg.load("v0001").knows_user(w.target_key)


def test_compaction_removes_deleted_bytes_and_keeps_the_rest(tmp_path):
    from feedwise.errors import ConfigError

    path = tmp_path / "c.duckdb"
    uid = "erasure-target-compact"
    with EventStore(path) as store:
        store.ingest(pd.DataFrame({"user_id": [uid, "bob"] * 20, "kind": "click",
                                   "item_id": [f"i{k}" for k in range(40)],
                                   "ts": "2026-01-01"}))
        store.upsert_users([{"user_id": "bob"}])
        erase_user(store, uid, now=NOW)
        store.con.execute("CHECKPOINT")
        assert uid.encode() in path.read_bytes()  # DuckDB keeps deleted rows' bytes
        with EventStore(path) as other:  # a second connection: the file is not replaced
            with pytest.raises(ConfigError, match="another connection"):
                store.compact()
            assert other.count_events() == 20
        assert store.compact()
        assert uid.encode() not in path.read_bytes()
        assert store.count_events() == 20 and store.is_erased(uid)
        store.upsert_users([{"user_id": "bob"}])  # the primary key survived the copy
        assert len(store.users()) == 1
        assert store.ingest(pd.DataFrame({"user_id": [uid], "item_id": ["x"], "kind": "click",
                                          "ts": "2026-01-02"})).erased == 1
