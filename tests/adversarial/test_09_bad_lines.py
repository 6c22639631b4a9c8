"""Item 9: one bad line rejected a whole file.

A non-JSON line in JSONL aborted the file (the error showed internal SQL and was off by one
line); a 10 MB CSV field aborted the file and printed ~10 KB of it; a Parquet ``ts`` of NaN
raised an uncaught ``ConversionException``. Now each bad line goes to ``rejects`` with its
1-based row number, a short excerpt and a reason, the rest of the file lands, and no error
shows SQL.
"""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.errors import DataError
from feedwise.store import EventStore

runner = CliRunner()
TS = "2024-02-01T10:00:00Z"
EXCERPT_MAX = 200


def _event(i: int, **kw) -> dict:
    return {"event_id": f"e{i}", "user_id": f"u{i}", "item_id": "i1", "kind": "click",
            "ts": TS, **kw}


def _no_sql(text: str) -> None:
    for word in ("SELECT", "LINE 1", "read_json", "read_csv", "_fw_", "^^^"):
        assert word not in text, text


def test_jsonl_bad_lines_are_rejected_and_the_rest_lands(tmp_path, store: EventStore) -> None:
    lines = [
        json.dumps(_event(1)),                                   # 1 good
        "this is not json",                                      # 2 not JSON
        json.dumps(_event(3)),                                   # 3 good
        '{"event_id": "e4", "user_id": "u4", "item_id"',         # 4 truncated
        "",                                                      # 5 blank: not a row
        "[1, 2, 3]",                                             # 6 not an object
        json.dumps(_event(7, ts=1706781600)),                    # 7 good, unix seconds
        '{"event_id": "e8", "user_id": ' + '"' + "x" * 5000,     # 8 long and broken
        json.dumps(_event(9, context={"ref": "feed", "n": 3})),  # 9 good, nested context
        json.dumps(_event(10, kind="poke")),                     # 10 a rule
        "null",                                                  # 11 not an object
        json.dumps(_event(12)) + "\r",                           # 12 good, CRLF ending
    ]
    p = tmp_path / "events.jsonl"
    p.write_text("\n".join(lines) + "\n")
    rep = store.ingest(p)
    assert (rep.accepted, rep.rejected, rep.duplicates) == (5, 6, 0)
    landed = set(store.query("SELECT event_id FROM events")["event_id"])
    assert landed == {"e1", "e3", "e7", "e9", "e12"}
    rej = store.rejects(str(p))
    assert list(rej["row"]) == [2, 4, 6, 8, 10, 11]  # the line numbers of the file
    assert rej["raw"].str.len().max() <= EXCERPT_MAX + 1
    assert rej["raw"][0] == "this is not json"
    assert rej["raw"][3].startswith('{"event_id": "e8"')
    assert "not valid JSON" in rej["reason"][0] and "JSON object" in rej["reason"][2]
    assert rej["field"][4] == "kind"
    assert store.query("SELECT context FROM events WHERE event_id = 'e9'")["context"][0] \
        == '{"ref":"feed","n":3}'
    for r in rej["reason"]:
        _no_sql(r)


def test_jsonl_all_bad_lines_give_rejects_not_an_error(tmp_path, store: EventStore) -> None:
    p = tmp_path / "junk.jsonl"
    p.write_bytes(b"nope\n\xff\xfe not utf-8\n{\n")
    rep = store.ingest(p)
    assert (rep.accepted, rep.rejected) == (0, 3)
    assert list(store.rejects(str(p))["row"]) == [1, 2, 3]


def test_jsonl_with_invalid_utf8_line_keeps_its_neighbours(tmp_path, store: EventStore) -> None:
    p = tmp_path / "mixed.jsonl"
    p.write_bytes(json.dumps(_event(1)).encode() + b"\n" + b'{"user_id": "\xff"}\n'
                  + json.dumps(_event(3)).encode() + b"\n")
    rep = store.ingest(p)
    assert (rep.accepted, rep.rejected) == (2, 1)
    rej = store.rejects(str(p))
    assert list(rej["row"]) == [2] and "UTF-8" in rej["reason"][0]


def test_huge_csv_field_is_one_reject_with_a_short_excerpt(tmp_path, store: EventStore) -> None:
    p = tmp_path / "huge.csv"
    rows = [_event(1), _event(2, user_id="x" * 10_000_000), _event(3)]
    pd.DataFrame(rows).to_csv(p, index=False)
    rep = store.ingest(p)
    assert (rep.accepted, rep.rejected) == (2, 1)
    rej = store.rejects(str(p))
    assert list(rej["row"]) == [2]
    assert len(rej["raw"][0]) <= EXCERPT_MAX + 1 and len(rej["reason"][0]) < 300
    _no_sql(rej["reason"][0])


def test_cli_prints_no_huge_excerpt(tmp_path) -> None:
    p = tmp_path / "huge.csv"
    pd.DataFrame([_event(1), _event(2, item_id="y" * 10_000_000)]).to_csv(p, index=False)
    res = runner.invoke(app, ["ingest", str(p), "--db", str(tmp_path / "fw.duckdb")])
    assert res.exit_code == 0, res.output[:2000]
    assert len(res.output) < 3000 and "yyyyyyyyyy" * 30 not in res.output


def test_csv_row_numbers_stay_right_after_a_broken_line(tmp_path, store: EventStore) -> None:
    """Rows after a line the CSV reader could not split keep their own row numbers."""
    p = tmp_path / "shifted.csv"
    p.write_text("event_id,user_id,item_id,kind,ts\n"
                 f"e1,u1,i1,click,{TS}\n"
                 f"e2,u2,i1,click,{TS},extra\n"      # row 2: too many fields
                 f"e3,u3,i1,click,{TS}\n"
                 f"e4,u4,i1,poke,{TS}\n"             # row 4: a rule
                 f"e5,u5,i1,click,{TS},a,b\n"        # row 5: too many fields
                 f"e6,u6,i1,click,yesterday\n")      # row 6: a rule
    rep = store.ingest(p)
    assert (rep.accepted, rep.rejected) == (2, 4)
    rej = store.rejects(str(p))
    assert list(zip(rej["row"], rej["field"], strict=True))[1::2] == [(4, "kind"), (6, "ts")]
    assert list(rej["row"]) == [2, 4, 5, 6]
    assert "e2,u2" in rej["raw"][0]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_parquet_non_finite_ts_is_a_reject(tmp_path, store: EventStore, bad: float) -> None:
    p = tmp_path / "nan.parquet"
    pq.write_table(pa.table({"user_id": ["a", "b", "c"], "item_id": ["x", "y", "z"],
                             "kind": ["click"] * 3,
                             "ts": [1706781600.0, bad, 1706785200.0]}), p)
    rep = store.ingest(p)
    assert (rep.accepted, rep.rejected) == (2, 1)
    rej = store.rejects(str(p))
    assert list(rej["row"]) == [2] and rej["field"][0] == "ts"


def test_unreadable_sources_fail_cleanly_without_sql(tmp_path, store: EventStore) -> None:
    p = tmp_path / "broken.parquet"
    p.write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(DataError) as e:
        store.ingest(p)
    assert str(p) in str(e.value)
    _no_sql(str(e.value))
    res = runner.invoke(app, ["ingest", str(p), "--db", str(tmp_path / "fw.duckdb")])
    assert res.exit_code == 2
    _no_sql(res.output)
