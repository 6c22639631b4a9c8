"""Item 16 (the ingest part): CSV details.

An unbalanced CSV quote stored the id ``"u1``; extra CSV columns were dropped without notice;
a fractional ``dwell_ms`` was rounded silently. Now a line with an unbalanced quote is a
reject of that line (the lines after it land), columns that no event field reads are named
in ``IngestReport.ignored_columns`` (and by the CLI), a line with more fields than the
header is a reject, and ``dwell_ms`` (and ``position``) of 1.5 is a reject, not 2.
"""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.store import EventStore

runner = CliRunner()
TS = "2024-02-01T10:00:00Z"
HEAD = "event_id,user_id,item_id,kind,ts\n"


def _ids(store: EventStore, col: str = "user_id") -> list[str]:
    return list(store.query(f"SELECT {col} FROM events ORDER BY event_id")[col])


@pytest.mark.parametrize("line", [
    f'e1,"u1,i1,click,{TS}',          # opened, never closed
    f'e1,"u1"x,i1,click,{TS}',        # text after the closing quote
])
def test_an_unbalanced_quote_rejects_that_line_only(tmp_path, store: EventStore,
                                                     line: str) -> None:
    p = tmp_path / "q.csv"
    p.write_text(HEAD + line + "\n" + f"e2,u2,i2,click,{TS}\n" + f'e3,"u3",i3,click,{TS}\n'
                 + f'e4,"u ""four""",i4,click,{TS}\n' + f'e5,"multi\nline",i5,click,{TS}\n')
    rep = store.ingest(p)
    assert (rep.accepted, rep.rejected) == (4, 1), store.rejects()
    assert _ids(store) == ["u2", "u3", 'u "four"', "multi\nline"]
    rej = store.rejects(str(p))
    assert list(rej["row"]) == [1] and "quote" in rej["reason"][0].lower()
    assert rej["raw"][0].startswith("e1,")


def test_a_quote_that_swallows_lines_rejects_only_its_line(tmp_path, store: EventStore
                                                           ) -> None:
    """RFC 4180 lets a quoted field span lines: a quote opened on line 2 and never closed
    properly must not take lines 3 and 4 with it."""
    p = tmp_path / "swallow.csv"
    p.write_text(HEAD + f'e1,"u1,i1,click,{TS}\n' + f"e2,u2,i2,click,{TS}\n"
                 + f'e3,"u3",i3,click,{TS}\n' + f"e4,u4,i4,poke,{TS}\n"
                 + f"e5,u5,i5,click,{TS}\n")
    rep = store.ingest(p)
    assert (rep.accepted, rep.rejected) == (3, 2)
    assert _ids(store) == ["u2", "u3", "u5"]
    rej = store.rejects(str(p))
    assert list(rej["row"]) == [1, 4] and list(rej["field"])[1] == "kind"


def test_extra_columns_are_named_in_the_report_and_by_the_cli(tmp_path, store: EventStore
                                                              ) -> None:
    p = tmp_path / "extra.csv"
    p.write_text("event_id,user_id,item_id,kind,ts,colour,score\n"
                 f"e1,u1,i1,click,{TS},red,3\n")
    rep = store.ingest(p)
    assert rep.accepted == 1 and rep.ignored_columns == ("colour", "score")
    # mapped columns are used, not ignored
    rep = store.ingest(p, mapping="value=score", source_name="mapped")
    assert rep.ignored_columns == ("colour",)
    res = runner.invoke(app, ["ingest", str(p), "--db", str(tmp_path / "fw.duckdb")])
    assert res.exit_code == 0, res.output
    assert "colour" in res.output and "score" in res.output and "ignored" in res.output
    res = runner.invoke(app, ["ingest", str(p), "--db", str(tmp_path / "fw2.duckdb"),
                              "-f", "json"])
    assert json.loads(res.stdout)[0]["ignored_columns"] == ["colour", "score"]


def test_a_line_with_more_fields_than_the_header_is_a_reject(tmp_path, store: EventStore
                                                             ) -> None:
    p = tmp_path / "wide.csv"
    p.write_text(HEAD + f"e1,u1,i1,click,{TS}\n" + f"e2,u2,i2,click,{TS},surprise\n")
    rep = store.ingest(p)
    assert (rep.accepted, rep.rejected) == (1, 1) and rep.ignored_columns == ()
    rej = store.rejects(str(p))
    assert list(rej["row"]) == [2] and "surprise" in rej["raw"][0]


@pytest.mark.parametrize("fmt", ["csv", "dataframe", "parquet", "jsonl"])
def test_fractional_dwell_and_position_are_rejects(tmp_path, store: EventStore,
                                                   fmt: str) -> None:
    df = pd.DataFrame({"event_id": ["e1", "e2", "e3", "e4"], "user_id": "u",
                       "item_id": "i", "kind": "dwell", "ts": TS,
                       "dwell_ms": [1.5, 2000.0, 3.0, None],
                       "position": [1.0, None, 2.5, 3.0]})
    if fmt == "csv":
        src = tmp_path / "d.csv"
        df.to_csv(src, index=False)
    elif fmt == "parquet":
        src = tmp_path / "d.parquet"
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), src)
    elif fmt == "jsonl":
        src = tmp_path / "d.jsonl"
        df.to_json(src, orient="records", lines=True)
    else:
        src = df
    rep = store.ingest(src, source_name="d")
    assert (rep.accepted, rep.rejected) == (2, 2)
    rej = store.rejects("d")
    assert list(rej["field"]) == ["dwell_ms", "position"]
    assert "dwell_ms '1.5' is not an integer (ms)" in rej["reason"][0]
    assert "position '2.5' is not an integer" in rej["reason"][1]
    got = store.query("SELECT event_id, dwell_ms FROM events ORDER BY event_id")
    assert list(got["event_id"]) == ["e2", "e4"] and got["dwell_ms"][0] == 2000
