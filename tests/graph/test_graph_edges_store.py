"""Edges as first-class data: validation, dedupe, rejects, as-of reads, privacy."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from feedwise.store import EventStore


def _t(day: int) -> str:
    return f"2024-01-{day:02d}T00:00:00Z"


def test_bad_rows_are_rejected_with_row_field_and_fix_and_good_rows_land(store):
    rep = store.add_edges([
        {"src_id": "a", "dst_id": "b", "kind": "follow", "ts": _t(1)},
        {"src_id": "a", "dst_id": "a", "kind": "follow"},          # self
        {"src_id": "a", "dst_id": "c", "kind": "poke"},            # kind
        {"src_id": "", "dst_id": "c", "kind": "follow"},           # src missing
        {"src_id": "a", "dst_id": "c", "kind": "block", "ts": "not a time"},
        {"src_id": "a", "dst_id": "b", "kind": "follow", "ts": _t(1)},  # duplicate
        {"src_id": "b", "dst_id": "c", "kind": "FRIEND"},
    ], source_name="batch")
    assert (rep.accepted, rep.duplicates, rep.rejected) == (2, 1, 4)
    rej = store.rejects("batch")
    assert list(rej["row"]) == [2, 3, 4, 5]
    assert list(rej["field"]) == ["dst_id", "kind", "src_id", "ts"]
    assert all(len(r) > 20 for r in rej["reason"])
    assert "use one of follow" in rej["reason"].iloc[1]
    assert len(store.edge_log()) == 2


def test_an_edge_id_reused_with_other_content_is_a_reject(store):
    store.add_edges([{"edge_id": "e1", "src_id": "a", "dst_id": "b", "kind": "follow"}])
    rep = store.add_edges([{"edge_id": "e1", "src_id": "a", "dst_id": "c", "kind": "follow"},
                           {"edge_id": "e1", "src_id": "a", "dst_id": "b", "kind": "follow"}],
                          source_name="again")
    assert (rep.accepted, rep.duplicates, rep.rejected) == (0, 1, 1)
    assert "already stored with different content" in store.rejects("again")["reason"][0]


def test_edges_as_of_replays_follows_and_unfollows_in_time(store):
    store.add_edges([
        {"src_id": "a", "dst_id": "b", "kind": "follow", "ts": _t(1)},
        {"src_id": "a", "dst_id": "b", "kind": "unfollow", "ts": _t(5)},
        {"src_id": "a", "dst_id": "b", "kind": "follow", "ts": _t(9)},
        {"src_id": "c", "dst_id": "a", "kind": "friend", "ts": _t(3)},
        {"src_id": "a", "dst_id": "c", "kind": "unfriend", "ts": _t(7)},
        {"src_id": "d", "dst_id": "a", "kind": "trust"},  # undated: always there
    ])

    def at(day: int | None) -> set[tuple[str, str, str]]:
        until = None if day is None else datetime(2024, 1, day, 12, tzinfo=UTC)
        df = store.edges_as_of(until)
        return set(zip(df["src_id"], df["dst_id"], df["kind"], strict=True))

    assert at(2) == {("a", "b", "follow"), ("d", "a", "trust")}
    assert at(4) == {("a", "b", "follow"), ("c", "a", "friend"), ("a", "c", "friend"),
                     ("d", "a", "trust")}
    assert at(6) == {("c", "a", "friend"), ("a", "c", "friend"), ("d", "a", "trust")}
    assert at(None) == {("a", "b", "follow"), ("d", "a", "trust")}
    since = store.edges_as_of().set_index("kind").loc["follow", "since"]
    assert pd.Timestamp(since) == pd.Timestamp(_t(9))


def test_objectors_relations_are_left_out_but_their_blocks_stay(store):
    store.upsert_users(pd.DataFrame({"user_id": ["x"], "consent_personalization": [False]}))
    store.add_edges([{"src_id": "x", "dst_id": "b", "kind": "follow"},
                     {"src_id": "b", "dst_id": "x", "kind": "friend"},
                     {"src_id": "x", "dst_id": "c", "kind": "block"},
                     {"src_id": "b", "dst_id": "c", "kind": "follow"}])
    df = store.edges_as_of(exclude_objectors=True)
    assert set(zip(df["src_id"], df["dst_id"], df["kind"], strict=True)) == {
        ("x", "c", "block"), ("b", "c", "follow")}
    assert len(store.edges_as_of()) == 5


def test_erasing_a_user_removes_their_edges_in_both_directions_and_keeps_them_out(store):
    store.add_edges([{"src_id": "a", "dst_id": "b", "kind": "follow"},
                     {"src_id": "b", "dst_id": "a", "kind": "follow"},
                     {"src_id": "c", "dst_id": "a", "kind": "block"},
                     {"src_id": "b", "dst_id": "c", "kind": "friend"},
                     {"src_id": "c", "dst_id": "a", "kind": "nope"}], source_name="s")
    assert store.user_rows("a")["edges"] and len(store.user_rows("a")["edges"]) == 2
    out = store.erase_user("a")
    assert out["edges"] == 3
    assert out["rejects"] == 1  # c's rejected row naming a (its user_id is c)
    assert store.rejects().empty
    log = store.edge_log()
    assert "a" not in set(log["src_id"]) | set(log["dst_id"])
    assert len(log) == 1
    rep = store.add_edges([{"src_id": "b", "dst_id": "a", "kind": "follow"}])
    assert (rep.accepted, rep.erased) == (0, 1)


def test_export_includes_the_users_edges(store):
    from feedwise.privacy import export_user

    store.add_edges([{"src_id": "a", "dst_id": "b", "kind": "follow"},
                     {"src_id": "c", "dst_id": "a", "kind": "follow"},
                     {"src_id": "d", "dst_id": "a", "kind": "block"}])
    doc = export_user(store, "a", now=datetime(2025, 1, 1, tzinfo=UTC))
    rows = doc["tables"]["edges"]
    assert {(r["src_id"], r["dst_id"]) for r in rows} == {("a", "b"), ("c", "a")}


def test_retention_drops_ended_relations_but_keeps_standing_ones(store):
    store.add_edges([
        {"src_id": "a", "dst_id": "b", "kind": "follow", "ts": _t(1)},
        {"src_id": "a", "dst_id": "c", "kind": "follow", "ts": _t(1)},
        {"src_id": "a", "dst_id": "c", "kind": "unfollow", "ts": _t(2)},
        {"src_id": "a", "dst_id": "d", "kind": "follow", "ts": _t(20)}])
    out = store.purge_before(datetime(2024, 1, 10, tzinfo=UTC))
    assert out["edges"] == 2
    df = store.edges_as_of()
    assert set(df["dst_id"]) == {"b", "d"}


def test_pseudonymised_store_keeps_no_raw_ids_in_edges(tmp_path):
    from feedwise.privacy import Pseudonymizer

    p = Pseudonymizer(b"k" * 32)
    with EventStore(tmp_path / "p.duckdb", pseudonymizer=p) as s:
        s.add_edges([{"src_id": "alice", "dst_id": "bob", "kind": "follow"},
                     {"src_id": "alice", "dst_id": "alice", "kind": "follow"}])
        log = s.edge_log()
        assert set(log["src_id"]) == {p("alice")} and set(log["dst_id"]) == {p("bob")}
        assert "alice" not in " ".join(s.rejects()["raw"].astype(str))
        assert len(s.edge_log("alice")) == 1
        s.erase_user("bob")
        assert s.edge_log().empty


def test_file_ingest_with_a_preset_and_a_mapping(tmp_path, store, shared_data):
    rep = store.ingest_edges(shared_data / "filmtrust" / "trust.txt", mapping="filmtrust-trust")
    assert rep.accepted == 1853 and rep.rejected == 0
    f = tmp_path / "e.csv"
    f.write_text("who,whom,what,when\n1,2,follow,2024-01-01\n3,,follow,\n")
    rep = store.ingest_edges(f, mapping="src_id=who,dst_id=whom,kind=what,ts=when")
    assert (rep.accepted, rep.rejected) == (1, 1)
    assert store.rejects(str(f))["field"].tolist() == ["dst_id"]


def test_dataset_and_synthetic_loaders_store_their_graphs(store, shared_data):
    from feedwise.datasets import load, synthetic_social

    load("filmtrust", data_dir=shared_data).load_into(store)
    trust = store.edges_as_of(kinds=("trust",))
    assert len(trust) == 1853 and set(trust["kind"]) == {"trust"}
    w = synthetic_social(n_users=120, n_authors=15, n_posts=200, n_days=3, seed=2,
                         cascades=True)
    with EventStore(":memory:") as s:
        out = w.load_into(s)
        assert out["edges"] == len(s.edge_log()) > 0
        assert set(s.edge_log()["kind"]) <= {"follow", "unfollow"}
        start = pd.to_datetime(w.events["ts"], utc=True).min()
        assert len(s.edges_as_of(start)) <= len(s.edges_as_of())
