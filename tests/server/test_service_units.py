"""Settings, API keys, the writer and the retraining loop, without HTTP."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from feedwise.errors import AuthError, ConfigError
from feedwise.server.auth import KeyRing, create_key, hash_key, parse_key_spec, revoke_key
from feedwise.server.settings import Settings, get_settings
from feedwise.server.writer import Writer, columns_of
from feedwise.store import EventStore


# ---------------------------------------------------------------------- settings
def test_settings_from_env_and_file(tmp_path, monkeypatch):
    f = tmp_path / "service.yaml"
    f.write_text("db: from_file.duckdb\nmax_batch_events: 7\ncors_origins: [https://a.example]\n")
    monkeypatch.setenv("FEEDWISE_SETTINGS_FILE", str(f))
    monkeypatch.setenv("FEEDWISE_MAX_BATCH_EVENTS", "9")
    s = Settings()
    assert s.db == "from_file.duckdb"
    assert s.max_batch_events == 9  # the environment beats the file
    assert s.cors_origins == ["https://a.example"]
    assert Settings(max_batch_events=3).max_batch_events == 3
    get_settings.cache_clear()
    assert get_settings() is get_settings()
    get_settings.cache_clear()


def test_bad_settings_file_is_a_config_error(tmp_path, monkeypatch):
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"no_such_setting": 1}))
    monkeypatch.setenv("FEEDWISE_SETTINGS_FILE", str(f))
    with pytest.raises(ConfigError, match="no_such_setting"):
        Settings()
    monkeypatch.setenv("FEEDWISE_SETTINGS_FILE", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="cannot read"):
        Settings()


# ---------------------------------------------------------------------- keys
def test_keys_are_hashed_scoped_and_revocable(tmp_path):
    path = tmp_path / "keys.json"
    key, rec = create_key(path, ["read", "ingest"], name="app")
    assert key.startswith(f"fw_{rec.key_id}_") and key not in path.read_text()
    assert hash_key(key) in path.read_text()
    ring = KeyRing.load(path)
    k = ring.authenticate(key)
    assert k.allows("read") and k.allows("ingest") and not k.allows("admin")
    for bad in (None, "", key + "x", key[:-1], hash_key(key)):
        with pytest.raises(AuthError):
            ring.authenticate(bad)
    assert revoke_key(path, rec.key_id) and not revoke_key(path, rec.key_id)
    with pytest.raises(AuthError):
        KeyRing.load(path).authenticate(key)
    with pytest.raises(ConfigError):
        create_key(path, ["root"])


def test_env_key_specs_take_hashes_only():
    ring = KeyRing.load(None, [f"{hash_key('secret-1')}:read+admin"])
    assert ring.authenticate("secret-1").allows("admin")
    with pytest.raises(ConfigError):
        parse_key_spec("secret-1:read")  # a plain key is refused
    with pytest.raises(ConfigError):
        parse_key_spec(f"{hash_key('x')}:superuser")


# ---------------------------------------------------------------------- writer
def _row(eid: str, kind: str = "click") -> dict:
    return {"event_id": eid, "user_id": "u", "item_id": "i", "kind": kind,
            "ts": "2024-01-01T00:00:00Z"}


def test_writer_batches_concurrent_producers_without_loss(tmp_path):
    store = EventStore(tmp_path / "w.duckdb")
    w = Writer(store, max_rows=1000).start()
    results = []

    def produce(p: int) -> None:
        for b in range(20):
            rows = [_row(f"{p}-{b}-{j}") for j in range(25)]
            rows.append(_row(f"{p}-{b}-bad", kind="nope"))
            results.append(w.submit_events(columns_of(rows)).result(30))

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.accepted for r in results) == 6 * 20 * 25
    assert all(len(r.errors) == 1 and r.errors[0].index == 25 and r.errors[0].field == "kind"
               for r in results)
    assert w.batches <= len(results)
    w.close()
    assert store.count_events() == 3000
    store.close()


def test_writer_counts_duplicates_across_jobs_of_one_batch(tmp_path):
    store = EventStore(tmp_path / "w.duckdb")
    w = Writer(store)  # not started: both jobs land in one batch
    f1 = w.submit_events(columns_of([_row("a"), _row("b")]))
    f2 = w.submit_events(columns_of([_row("b"), _row("c"), _row("c")]))
    w.start()
    r1, r2 = f1.result(30), f2.result(30)
    assert (r1.accepted, r1.duplicates, r2.accepted, r2.duplicates) == (2, 0, 1, 2)
    assert w.batches == 1
    w.close()
    assert store.count_events() == 3
    store.close()


def test_writer_answers_each_job_of_a_clean_landing_and_hands_on_every_row(tmp_path):
    """The usual landing (every row new, valid and stored) answers each job without a pass
    over its rows; the landed-events hook gets every position, and only the stored ones
    when some were not."""
    store = EventStore(tmp_path / "w.duckdb")
    hooked: list[list[str | None]] = []
    w = Writer(store, on_events=lambda cols, took: hooked.append(
        [cols["event_id"][g] for g in took]))  # not started: both jobs land together
    f1 = w.submit_events(columns_of([_row("a"), _row("b")]), [3, 7])
    f2 = w.submit_events(columns_of([_row("c")]))
    w.start()
    r1, r2 = f1.result(30), f2.result(30)
    assert (r1.accepted, r1.duplicates, r1.errors, r2.accepted) == (2, 0, [], 1)
    f3 = w.submit_events(columns_of([_row("d"), _row("a"), _row("e", kind="nope")]), [0, 1, 2])
    r3 = f3.result(30)
    assert (r3.accepted, r3.duplicates, [e.index for e in r3.errors]) == (1, 1, [2])
    assert hooked == [["a", "b", "c"], ["d"]]
    w.close()
    assert store.count_events() == 4
    store.close()


def test_writer_lands_served_rows_once_even_after_a_restart(tmp_path):
    from datetime import UTC, datetime

    store = EventStore(tmp_path / "w.duckdb")
    w = Writer(store)  # not started: drained by hand
    now = round(datetime.now(UTC).timestamp() * 1e6)

    def served(*ids: str) -> dict:
        n = len(ids)
        return {"event_id": [f"srv:{i}" for i in ids], "user_id": ["u"] * n,
                "item_id": ["i"] * n, "kind": ["impression"] * n, "ts": [now] * n,
                "position": list(range(n)), "propensity": [1.0] * n}

    flushed = []
    w.log_served(served("r1:0", "r1:1"), flushed.append(1) or (lambda: flushed.append(2)))
    w.log_served(served("r1:0", "r1:1"))  # a retry inside the same batch
    w._land([])
    assert store.count_events() == 2 and flushed == [1, 2]
    w.log_served(served("r2:0", "r2:1", "r2:2"))
    w.log_served(served("r1:0"))  # a retry of an earlier batch
    w._land([])
    assert store.count_events() == 5
    w2 = Writer(store)  # a new process remembers nothing: the store's ids still count
    w2.log_served(served("r1:1", "r3:0"))
    w2._land([])
    assert store.count_events() == 6
    assert store.scalar("SELECT count(*) FROM events WHERE event_id = 'srv:r1:1'") == 1
    w.start()
    w.close()
    with pytest.raises(Exception, match="shut down"):
        w.log_served(served("late"))
    store.close()


def test_writer_sync_answers_served_rows_once_committed(tmp_path):
    from datetime import UTC, datetime

    store = EventStore(tmp_path / "w.duckdb")
    w = Writer(store, sync=True, poll_s=30).start()  # woken per feed, not by the clock
    now = round(datetime.now(UTC).timestamp() * 1e6)
    cols = {"event_id": ["srv:a:0"], "user_id": ["u"], "item_id": ["i"],
            "kind": ["impression"], "ts": [now]}
    done = w.log_served(cols, lambda: None)
    assert done.result(10).landed == 1
    assert store.count_events() == 1
    assert w.log_served(cols).result(10).duplicates == 1
    boom = w.log_served({**cols, "event_id": ["srv:b:0"]}, lambda: 1 / 0)
    with pytest.raises(Exception, match="retry with the same X-Request-ID"):
        boom.result(10)
    w.close()
    store.close()


def test_writer_close_flushes_fire_and_forget_rows(tmp_path):
    store = EventStore(tmp_path / "w.duckdb")
    w = Writer(store).start()
    for i in range(50):
        w.submit_events(columns_of([_row(f"x{i}-{j}") for j in range(10)]))
    w.close()
    assert store.count_events() == 500
    with pytest.raises(Exception, match="shut down"):
        w.submit_events(columns_of([_row("late")]))
    store.close()


def test_writer_call_errors_reach_the_caller(tmp_path):
    store = EventStore(tmp_path / "w.duckdb")
    w = Writer(store).start()
    assert w.call(lambda s: s.count_events()).result(10) == 0

    def boom(s):
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        w.call(boom).result(10)
    assert w.submit_events(columns_of([_row("ok")])).result(10).accepted == 1  # still alive
    w.close()
    store.close()


# ---------------------------------------------------------------------- closed loop
def test_retrain_promotes_keeps_and_skips(tmp_path, shared_data):
    from feedwise.registry import ModelRegistry
    from feedwise.server.retrain import RetrainConfig, retrain

    store = EventStore(tmp_path / "ml.duckdb")
    store.ingest(shared_data / "movielens-100k" / "u.data", mapping="movielens-100k")
    reg = ModelRegistry(tmp_path / "reg")
    t1 = datetime(1998, 3, 1, tzinfo=UTC)
    # first run: nothing promoted yet, the candidate is promoted
    d1 = retrain(store, reg, RetrainConfig(model="popularity"), t1)
    assert d1.action == "promote" and reg.promoted_version() == d1.candidate_version
    assert d1.window.until == t1 and d1.ndcg_candidate > 0
    meta = reg.get(d1.candidate_version)
    assert meta.data_window.until == t1 and "ndcg@10" in meta.metrics
    # later run with a weaker config on this slice (see test figures): kept, not promoted
    t2 = t1 + timedelta(days=61)
    d2 = retrain(store, reg, RetrainConfig(model="itemknn", tolerance=0.0), t2)
    assert d2.baseline == "artifact"  # the promoted version never saw the test slice
    assert d2.ndcg_candidate < d2.ndcg_current
    assert d2.action == "keep" and reg.promoted_version() == d1.candidate_version
    # a generous tolerance lets the same candidate through (the gate's second rule, beat
    # popularity, is off here: this ItemKNN does not beat it on this slice, issue 19)
    d3 = retrain(store, reg, RetrainConfig(model="itemknn", tolerance=1.0,
                                           beat_popularity=False), t2)
    assert d3.action == "promote" and reg.promoted_version() == d3.candidate_version
    # nothing new since the promoted window: skip
    d4 = retrain(store, reg, RetrainConfig(model="itemknn"), t2 + timedelta(days=30))
    assert d4.action == "skip" and d4.candidate_version is None
    assert [d["action"] for d in reg.decisions()] == ["promote", "keep", "promote", "skip"]
    store.close()


def test_ndcg_on_split_matches_evaluate(ml100k_interactions):
    from feedwise.evaluation import evaluate, temporal_split
    from feedwise.models import get_model
    from feedwise.server.retrain import ndcg_on_split

    split = temporal_split(ml100k_interactions, test_fraction=0.1)
    m = get_model("popularity")
    table = evaluate(m, split, 10)
    expected = float(table.loc[table["metric"] == "ndcg", "value"].iloc[0])
    # fitted on the split's train part: its items are left out of the lists either way
    assert ndcg_on_split(m, split, 10) == pytest.approx(expected)


# ---------------------------------------------------------------------- feedwise serve
def test_serve_runs_uvicorn_on_the_asyncio_loop_unless_told_otherwise(tmp_path, monkeypatch):
    import uvicorn
    from typer.testing import CliRunner

    from feedwise.cli import app

    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app_, **kw: calls.append(kw))
    args = ["serve", "--db", str(tmp_path / "s.duckdb"), "--registry", str(tmp_path / "reg")]
    runner = CliRunner()
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, [*args, "--loop", "uvloop"]).exit_code == 0
    assert [c["loop"] for c in calls] == ["asyncio", "uvloop"]
    bad = runner.invoke(app, [*args, "--loop", "trio"])
    assert bad.exit_code == 2 and "must be asyncio or uvloop" in bad.output
    assert len(calls) == 2


def test_retrain_gives_content_models_the_posts_table(tmp_path, shared_data):
    """A content model (and a hybrid's content component) in the loop reads the store's
    posts: a post nobody has engaged with yet joins the catalogue; ad creatives do not."""
    from feedwise.registry import ModelRegistry
    from feedwise.server.retrain import RetrainConfig, retrain

    store = EventStore(tmp_path / "ml.duckdb")
    store.ingest(shared_data / "movielens-100k" / "u.data", mapping="movielens-100k")
    store.upsert_items([{"item_id": "50", "title": "Star Wars", "tags": ["space"]},
                        {"item_id": "fresh", "title": "A new space saga", "tags": ["space"]},
                        {"item_id": "ad-1", "kind": "ad", "title": "Buy space boots"}])
    reg = ModelRegistry(tmp_path / "reg")
    d = retrain(store, reg, RetrainConfig(model="content"), datetime(1998, 5, 1, tzinfo=UTC))
    model = reg.load(d.candidate_version)
    assert "fresh" in set(model.item_ids_) and "ad-1" not in set(model.item_ids_)
    store.close()


def test_writer_lands_served_rows_on_their_clock_not_with_every_event_batch(tmp_path):
    store = EventStore(tmp_path / "w.duckdb")
    w = Writer(store, poll_s=60)  # not started: driven by hand
    now = round(datetime.now(UTC).timestamp() * 1e6)
    rows = {"event_id": ["srv:a:0"], "user_id": ["u"], "item_id": ["i"],
            "kind": ["impression"], "ts": [now], "position": [0], "propensity": [1.0]}
    w.log_served(dict(rows))
    assert w._served_due()  # never landed yet: due
    w._land([], w._served_due())
    assert store.count_events() == 1
    w.log_served({**rows, "event_id": ["srv:b:0"]})
    assert not w._served_due()  # landed under poll_s ago: an event batch goes alone
    w.submit_events(columns_of([_row("e1")]))
    job = w._q.get_nowait()
    w._land([job], w._served_due())
    assert store.count_events() == 2  # the event, not the served row
    w._served_at -= 61  # poll_s later: the next landing takes them
    assert w._served_due()
    # a call always finds the served rows handed over before it landed (an erasure)
    w._served_at += 61
    seen = w.call(lambda s: s.count_events())
    w.start()
    assert seen.result(30) == 3
    w.close()
    store.close()


def test_ingest_report_names_the_ids_stored_before(tmp_path):
    import pyarrow as pa

    store = EventStore(tmp_path / "s.duckdb")
    ts = datetime.now(UTC).isoformat()

    def table(ids: list[str]) -> pa.Table:
        n = len(ids)
        return pa.table({"event_id": ids, "user_id": ["u"] * n, "item_id": ["i"] * n,
                         "kind": ["click"] * n, "ts": [ts] * n})

    assert store.ingest(table(["a", "b"])).stored_ids == frozenset()
    again = store.ingest(table(["b", "c"]))
    assert again.stored_ids == {"b"} and (again.accepted, again.duplicates) == (1, 1)
    store.close()


def test_store_checkpoint_threshold_holds_after_compaction(tmp_path):
    store = EventStore(tmp_path / "c.duckdb")
    store.set_checkpoint_mb(64)
    setting = "SELECT current_setting('checkpoint_threshold')"
    assert store.con.execute(setting).fetchone()[0].startswith("64")
    store.compact()
    assert store.con.execute(setting).fetchone()[0].startswith("64")
    store.close()
