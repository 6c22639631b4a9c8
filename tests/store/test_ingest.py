"""Ingestion: validation, rejects, dedupe, formats and atomic batches."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feedwise.errors import DataError
from feedwise.store import EventStore


def make_events(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    kinds = np.array(["impression", "click", "like", "share", "dwell", "hide"])
    return pd.DataFrame({
        "event_id": [f"e{i}" for i in range(n)],
        "user_id": [f"u{x}" for x in rng.integers(0, 50, n)],
        "item_id": [f"i{x}" for x in rng.integers(0, 80, n)],
        "kind": kinds[rng.integers(0, len(kinds), n)],
        "ts": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 86400 * 7, n),
                                                                     unit="s"),
        "dwell_ms": rng.integers(0, 90_000, n),
        "propensity": rng.uniform(0.05, 1.0, n).round(4),
    })


def corrupt(df: pd.DataFrame, frac: float = 0.05, seed: int = 1) -> tuple[pd.DataFrame, dict]:
    """Make ``frac`` of the rows bad in one of five ways; return the frame and row -> field."""
    rng = np.random.default_rng(seed)
    out = df.astype({"ts": str, "dwell_ms": object, "propensity": object}).copy()
    bad_rows = rng.choice(len(df), size=int(len(df) * frac), replace=False)
    fields = {}
    for j, r in enumerate(bad_rows):
        how = j % 5
        if how == 0:
            out.loc[r, "kind"] = "poke"
            fields[r] = "kind"
        elif how == 1:
            out.loc[r, "ts"] = "yesterday-ish"
            fields[r] = "ts"
        elif how == 2:
            out.loc[r, "user_id"] = None
            fields[r] = "user_id"
        elif how == 3:
            out.loc[r, "dwell_ms"] = -250
            fields[r] = "dwell_ms"
        else:
            out.loc[r, "propensity"] = 1.7
            fields[r] = "propensity"
    return out, fields


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "jsonl", "dataframe"])
def test_five_percent_malformed_rows(tmp_path, store: EventStore, fmt: str) -> None:
    good = make_events(2000)
    bad, fields = corrupt(good)
    path = tmp_path / f"events.{fmt}"
    if fmt == "csv":
        bad.to_csv(path, index=False)
    elif fmt == "tsv":
        bad.to_csv(path, index=False, sep="\t")
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pandas(bad.astype(str).replace({"None": None}),
                                            preserve_index=False), path)
    elif fmt == "jsonl":
        bad.to_json(path, orient="records", lines=True)
    src = bad if fmt == "dataframe" else path

    report = store.ingest(src)
    assert report.rejected == len(fields) == 100
    assert report.accepted == len(good) - len(fields)
    rejects = store.rejects()
    assert len(rejects) == len(fields)
    # every bad row is in rejects with its 1-based row number, the field at fault and a reason
    got = dict(zip(rejects["row"] - 1, rejects["field"], strict=True))
    assert got == fields
    assert rejects["reason"].str.len().min() > 10
    # every valid row landed, unchanged
    landed = set(store.query("SELECT event_id FROM events")["event_id"])
    assert landed == set(good["event_id"]) - {f"e{r}" for r in fields}

    again = store.ingest(src)
    assert again.accepted == 0
    assert again.duplicates == len(good) - len(fields)
    assert store.count_events() == report.accepted


def test_reject_reasons_are_actionable(store: EventStore) -> None:
    df = pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"], "kind": ["poke", "click"],
                       "ts": ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"],
                       "propensity": [0.5, 0.0]})
    store.ingest(df, source_name="batch-7")
    rej = store.rejects("batch-7")
    assert list(rej["row"]) == [1, 2]
    assert "unknown kind 'poke'" in rej["reason"][0] and "click" in rej["reason"][0]
    assert rej["field"][1] == "propensity" and "(0, 1]" in rej["reason"][1]
    assert json.loads(rej["raw"][0])["kind"] == "poke"


def test_non_finite_values_are_rejected(store: EventStore) -> None:
    """'NaN' or 'inf' is no rating: stored, it made the training matrix NaN / inf."""
    df = pd.DataFrame({"user_id": ["a", "a", "b", "b"], "item_id": ["x", "y", "x", "y"],
                       "kind": ["rating"] * 4, "ts": ["2026-01-01T00:00:00Z"] * 4,
                       "value": ["NaN", "inf", "-Infinity", "4"]})
    r = store.ingest(df, source_name="ratings")
    assert (r.accepted, r.rejected) == (1, 3)
    rej = store.rejects("ratings")
    assert list(rej["field"]) == ["value"] * 3
    assert all("finite" in x for x in rej["reason"])
    t = pa.table({"user_id": ["c"], "item_id": ["x"], "kind": ["rating"],
                  "ts": ["2026-01-01T00:00:00Z"], "value": pa.array([float("nan")])})
    assert store.ingest(t).rejected == 1
    assert np.isfinite(store.interactions().matrix.data).all()


def test_event_id_hash_is_stable_and_dedupes(store: EventStore) -> None:
    df = pd.DataFrame({"user_id": ["a", "a", "a"], "item_id": ["x", "x", "y"],
                       "kind": ["click"] * 3, "ts": [1_767_225_600] * 3})
    r = store.ingest(df)
    assert (r.accepted, r.duplicates) == (2, 1)  # rows 1 and 2 are the same event
    ids = store.query("SELECT event_id FROM events ORDER BY item_id")["event_id"]
    other = EventStore(":memory:")
    other.ingest(df)
    assert list(other.query("SELECT event_id FROM events ORDER BY item_id")["event_id"]) == \
        list(ids)


def test_movielens_mapping_and_time(shared_data, store: EventStore) -> None:
    r = store.ingest(shared_data / "movielens-100k" / "u.data", mapping="movielens-100k")
    assert (r.accepted, r.rejected) == (100_000, 0)
    row = store.query("SELECT kind, min(ts) AS first, count(DISTINCT user_id) AS users "
                      "FROM events GROUP BY kind")
    assert row["kind"][0] == "rating" and row["users"][0] == 943
    assert row["first"][0] == pd.Timestamp(874724710, unit="s", tz="UTC")


def test_mapping_errors_are_clear(tmp_path, store: EventStore) -> None:
    p = tmp_path / "x.csv"
    p.write_text("who,what,when\na,b,2026-01-01\n")
    with pytest.raises(DataError, match="required field"):
        store.ingest(p)
    with pytest.raises(DataError, match="no column 'nope'"):
        store.ingest(p, mapping="user_id=who,item_id=nope,ts=when,kind==click")
    r = store.ingest(p, mapping="user_id=who,item_id=what,ts=when,kind==click")
    assert r.accepted == 1
    with pytest.raises(DataError, match="file not found"):
        store.ingest(tmp_path / "missing.csv")


def test_batch_is_atomic(tmp_path, store: EventStore, monkeypatch) -> None:
    """A failure after rows were inserted rolls the whole batch back."""
    path = tmp_path / "events.csv"
    make_events(50).to_csv(path, index=False)

    def boom(name: str) -> int:
        raise RuntimeError("crash mid-ingest")

    monkeypatch.setattr(store, "_csv_structural_rejects", boom)
    with pytest.raises(RuntimeError):
        store.ingest(path)
    assert store.count_events() == 0
    assert store.rejects().empty
    monkeypatch.undo()
    assert store.ingest(path).accepted == 50


def test_structurally_broken_csv_lines_are_rejected(tmp_path, store: EventStore) -> None:
    p = tmp_path / "broken.csv"
    p.write_text("user_id,item_id,kind,ts\n"
                 "a,x,click,2026-01-01T00:00:00Z\n"
                 'b,"y,click,2026-01-01T00:00:00Z,extra,"\n'
                 "c,z,click,2026-01-02T00:00:00Z\n")
    r = store.ingest(p)
    assert r.accepted >= 2
    assert r.accepted + r.rejected >= 3


def test_interactions_weights_and_negatives(store: EventStore) -> None:
    t = "2026-01-01T00:00:00Z"
    df = pd.DataFrame([
        ("u1", "a", "click", t, None), ("u1", "a", "like", t, None),
        ("u1", "b", "dwell", t, 95_000), ("u1", "c", "hide", t, None),
        ("u2", "a", "share", t, None), ("u2", "b", "impression", t, None),
        ("u2", "c", "dwell", t, 10 * 60_000), ("u3", "d", "rating", t, None),
    ], columns=["user_id", "item_id", "kind", "ts", "dwell_ms"])
    df["value"] = [None] * 7 + [4.5]
    store.ingest(df)
    data = store.interactions()
    w = {(u, i): float(data.matrix[data.user_row(u), data.item_col(i)])
         for u in ("u1", "u2", "u3") for i in ("a", "b", "c", "d")}
    assert w[("u1", "a")] == 3.0  # click 1 + like 2
    assert w[("u1", "b")] == pytest.approx(95 / 30)  # dwell: 1 per 30 s
    assert w[("u2", "c")] == 5.0  # dwell capped at 5
    assert w[("u2", "a")] == 4.0 and w[("u3", "d")] == 4.5
    assert w[("u1", "c")] == 0.0 and w[("u2", "b")] == 0.0  # hide and impression add nothing
    assert data.negatives[data.user_row("u1"), data.item_col("c")] == 1


def test_interactions_time_window(store: EventStore) -> None:
    df = make_events(500)
    store.ingest(df)
    cut = pd.Timestamp("2026-01-04", tz="UTC")
    data = store.interactions(until=cut.to_pydatetime())
    assert data.last_ts.data.max() < cut.timestamp()
    assert data.until == cut.to_pydatetime()


def test_upsert_records(store: EventStore) -> None:
    store.upsert_items([{"item_id": "p1", "title": "Morning run", "tags": ["running"]}])
    store.upsert_items([{"item_id": "p1", "title": "Evening run", "tags": ["running", "dusk"]}])
    items = store.items()
    assert len(items) == 1 and items["title"][0] == "Evening run"
    assert list(items["tags"][0]) == ["running", "dusk"]
    store.upsert_users([{"user_id": "u1", "consent": {"ads": False}}])
    u = store.users()
    assert not u["consent_ads"][0] and u["consent_personalization"][0]
    with pytest.raises(DataError, match="unknown column"):
        store.upsert_items(pd.DataFrame({"item_id": ["x"], "colour": ["red"]}))


def test_file_store_persists(tmp_path) -> None:
    path = tmp_path / "fw.duckdb"
    with EventStore(path) as s:
        s.ingest(make_events(10))
    with EventStore(path) as s:
        assert s.count_events() == 10


def test_typed_rules_keep_what_ingest_keeps(store: EventStore) -> None:
    """The typed rules (what the Spark engine checks) accept a typed row iff ingest does."""
    from feedwise.store.ingest import RULES, typed_valid

    assert {r.field for r in RULES} == {"event_id", "user_id", "item_id", "kind", "ts",
                                        "dwell_ms", "value", "position", "propensity",
                                        "context", "text"}
    inf = float("inf")
    df = pd.DataFrame({
        "event_id": [f"e{i}" for i in range(10)],
        "user_id": ["u1", None, "u1", "u1", "u1", "u1", "u1", "u1", "u1", "u1"],
        "item_id": ["p1"] * 10,
        "kind": ["click", "click", "poke", None, "like", "like", "like", "like", "like", "like"],
        "ts": pd.to_datetime(["2024-01-01T00:00:00Z"] * 9 + [None], utc=True),
        "dwell_ms": pd.array([5, None, None, None, -1, None, None, None, None, None],
                             dtype="Int64"),
        "value": [1.0, None, None, None, None, inf, None, None, None, None],
        "position": pd.array([0, None, None, None, None, None, -2, None, None, None],
                             dtype="Int32"),
        "propensity": [0.5, None, None, None, None, None, None, 0.0, 1.5, None],
        "text": ["ok"] + [None] * 9})
    cur = store.cursor()
    cur.register("_typed", df)
    kept = cur.execute(f"SELECT event_id FROM _typed WHERE {typed_valid()}").fetchall()
    rep = store.ingest(df)
    assert kept == [("e0",)] and rep.accepted == 1 and rep.rejected == 9


def test_an_older_store_gains_rejects_user_id(tmp_path) -> None:
    """A store made before ``rejects.user_id`` existed opens with the column added (NULL
    for the old rows), and ingest fills it from then on."""
    import duckdb

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE rejects (source VARCHAR, row BIGINT, field VARCHAR, "
                "reason VARCHAR, raw VARCHAR, rejected_at TIMESTAMPTZ)")
    con.execute("INSERT INTO rejects VALUES ('old', 1, 'kind', 'x', '{}', now())")
    con.close()
    df = pd.DataFrame({"user_id": ["u7"], "item_id": ["i"], "kind": ["poke"],
                       "ts": ["2026-01-01T00:00:00Z"]})
    for _ in range(2):  # the migration is idempotent
        with EventStore(path) as s:
            s.ingest(df, source_name="new")
    with EventStore(path, read_only=True) as s:
        rej = s.rejects()
        assert list(rej.columns[-1:]) == ["user_id"]
        assert (rej[rej.source == "new"]["user_id"] == "u7").all()
        assert rej[rej.source == "old"]["user_id"].isna().all()


def test_paths_are_literal_and_csv_lines_are_read_safely() -> None:
    """Units of the line-safe readers: glob characters escaped; a stray quote costs its own
    line only; a record longer than the limit is skipped whole."""
    from feedwise.store.ingest import MAX_CSV_LINE, CsvLines, path_literal

    assert path_literal("/d/ev*[1]?.csv") == "'/d/ev[*][[]1][?].csv'"
    assert path_literal("it's.csv") == "'it''s.csv'"
    text = ('a,b\n1,"x\n2,y\n3,"q ""z"""\n\n4,"multi\nline"\n5,"ok"tail\n6,'
            + "h" * (MAX_CSV_LINE + 1) + "\n7,last")
    rows, cols, bad = CsvLines(text, ",").rows(header=True, ncol=2)
    assert rows == [2, 3, 4, 7] and cols[1] == ["y", 'q "z"', "multi\nline", "last"]
    assert [(r, k) for r, k, _ in bad] == [(1, "UNQUOTED VALUE"), (5, "UNQUOTED VALUE"),
                                           (6, "LINE SIZE OVER MAXIMUM")]
    assert all(len(e) <= 200 for _, _, e in bad)


def test_an_arrow_tables_types_are_read_from_its_schema():
    """An arrow source of plain types is not described by DuckDB (one statement less a
    landing): the types from its schema equal DuckDB's description; any other type (or a
    column named like the row number) falls back to describing it."""
    import duckdb

    from feedwise.store.ingest import _arrow_types

    t = pa.table({"event_id": pa.array(["e1"]), "n": pa.array([1], pa.int64()),
                  "m": pa.array([1], pa.int32()), "x": pa.array([0.5]),
                  "ok": pa.array([True]), "big": pa.array(["y"], pa.large_string())})
    con = duckdb.connect()
    con.register("_fw_src", t)
    described = {r[0]: r[1] for r in con.execute(
        "DESCRIBE SELECT * FROM (SELECT row_number() OVER () AS _row, * FROM _fw_src)"
    ).fetchall()}
    assert _arrow_types(t) == described
    assert _arrow_types(pa.table({"ts": pa.array([1], pa.timestamp("us"))})) is None
    assert _arrow_types(pa.table({"_row": pa.array(["a"])})) is None
