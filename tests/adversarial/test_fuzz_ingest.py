"""Fuzzing ingest: random rows, hostile values, every format.

For random batches written as CSV, JSONL, Parquet or a DataFrame (valid rows, rows that
break a rule, repeated and conflicting event ids, hostile text: quotes, delimiters, line
breaks, huge fields, impossible times, non-finite numbers; and, in text files, lines that
are not rows at all), ingest never raises, and it accounts for every row it read:
``accepted + rejected + duplicates == rows``, ``events`` grows by ``accepted``, ``rejects``
by ``rejected`` (one row number each), and every row that was not rejected is stored.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedwise.schema import EVENT_COLUMNS, EVENT_KINDS
from feedwise.store import EventStore

HUGE = "h" * 2_500_000  # over the CSV reader's 2 MB line limit
HOSTILE_TEXT = ['"', '""', '"u1', 'u"1', "a,b", "a\tb", "line\nbreak", "cr\rlf", "\\", "'",
                "  ", "", "NULL", "null", "None", "-", "💥", "é", "\u2028", "\x01", "{}",
                "[1]", "x" * 300, HUGE]
TIMES = ["2024-02-01T10:00:00Z", "2024-02-01 10:00:00", "2024-02-01", "1706781600",
         "1706781600.5", "infinity", "-infinity", "nan", "290000-01-01", "99999999999",
         "1e300", "-1", "1969-12-31T23:59:59Z", "yesterday", "2024-13-45T99:00:00Z"]
NUMBERS = ["0", "1", "-1", "1.5", "2.0", "1e3", "1e400", "nan", "inf", "-inf", "0x10", "1_000",
           "99999999999999999999999", " 7 ", "abc"]
CONTEXTS = ['{"ref": "feed"}', '{"a": [1, 2, {"b": null}]}', "{not json", "[]", '"s"', "{}"]


def text_or(*options: list[str]) -> st.SearchStrategy:
    pools = [st.sampled_from(o) for o in options]
    return st.one_of(st.none(), *pools, st.text(max_size=12))


FIELDS = {
    "event_id": text_or(["e0", "e1", "e2", "e3", " e1 ", "e1\n"], HOSTILE_TEXT),
    "user_id": text_or(["u0", "u1", "u2"], HOSTILE_TEXT),
    "item_id": text_or(["i0", "i1"], HOSTILE_TEXT),
    "kind": text_or(list(EVENT_KINDS), ["CLICK", " like ", "poke"]),
    "ts": text_or(TIMES),
    "dwell_ms": text_or(NUMBERS),
    "value": text_or(NUMBERS),
    "position": text_or(NUMBERS),
    "propensity": text_or(NUMBERS, ["0.5", "1", "0"]),
    "surface": text_or(HOSTILE_TEXT),
    "session_id": text_or(["s1"], HOSTILE_TEXT),
    "context": text_or(CONTEXTS),
    "text": text_or(HOSTILE_TEXT),
    "parent_id": text_or(["e0", "i1"], HOSTILE_TEXT),
}
VALID = st.fixed_dictionaries({
    "event_id": st.sampled_from(["e0", "e1", "e2", "e3", "e4", "e5"]),
    "user_id": st.sampled_from(["u0", "u1"]), "item_id": st.sampled_from(["i0", "i1"]),
    "kind": st.sampled_from(["click", "like"]), "ts": st.sampled_from(TIMES[:3]),
})
ROW = st.one_of(VALID, st.fixed_dictionaries(
    {f: FIELDS[f] for f in ("user_id", "item_id", "kind", "ts")},
    optional={f: FIELDS[f] for f in EVENT_COLUMNS if f not in ("user_id", "item_id", "kind",
                                                                "ts")}))
#: Whole lines that are not rows of the format (each still one row read).
BAD_JSONL = ["not json", "{", '{"user_id": "u1"', "[1, 2]", "null", '"text"', "1",
             '{"user_id": "\\ud800"}', "\x00", "{}" + "x" * 10]
BAD_CSV = ['e9,"u1"x,i1,click,2024-02-01', "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p", "\x01\x02",
           ",,,,,,,,,,,,,,,,,,,,,,,,,"]


def _cell(v) -> str:
    return "" if v is None else str(v)


def write_source(tmp: Path, fmt: str, rows: list[dict], bad: list[tuple[int, str]],
                 tail: str | None, blanks: list[int] = (), crlf: bool = False):
    """Write rows (with bad lines and blank lines at given positions, an unterminated quote
    as the last line, CRLF line ends) as ``fmt``; return the source and, per row read in
    order, (its row number as ``rejects`` counts it, the row written or ``None`` for a bad
    line). Blank lines are no rows; JSONL numbers rows by line (blank lines count), CSV by
    data row (they do not)."""
    cols = list(EVENT_COLUMNS)
    if fmt == "dataframe":
        return (pd.DataFrame(rows, columns=cols).astype(object),
                list(enumerate(rows, 1)))
    if fmt == "parquet":
        df = pd.DataFrame(rows, columns=cols).astype(object)
        table = pa.table({c: pa.array([None if v is None else str(v) for v in df[c]],
                                       pa.string()) for c in cols})
        path = tmp / "fuzz.parquet"
        pq.write_table(table, path)
        return path, list(enumerate(rows, 1))
    lines: list[str] = []
    if fmt == "jsonl":
        for r in rows:
            lines.append(json.dumps({k: v for k, v in r.items()}))
    else:  # one string per record (a quoted field may hold a line break)
        for r in rows:
            buf = io.StringIO()
            # RFC 4180: a field holding \r or \n is quoted (with "\n" as the terminator the
            # csv module would leave a lone \r bare, which is a line break to any reader)
            csv.writer(buf, lineterminator="\r\n").writerow([_cell(r.get(c)) for c in cols])
            lines.append(buf.getvalue()[:-2])
    entries: list[tuple[str, dict | None | bool]] = [(t, r) for t, r in zip(lines, rows,
                                                                            strict=True)]
    for pos, text in sorted(bad):
        entries.insert(min(pos, len(entries)), (text, None))
    for pos in blanks:
        entries.insert(min(pos, len(entries)), ("", False))
    if tail is not None:
        entries.append((tail, None))
    lines = [text for text, _ in entries]
    read, number = [], 0
    for i, (_, r) in enumerate(entries, 1):
        number = i if fmt == "jsonl" else number + (r is not False)
        if r is not False:
            read.append((number, r))
    path = tmp / f"fuzz.{fmt}"
    end = "\r\n" if crlf else "\n"
    body = end.join(lines) + end
    if fmt == "csv":
        body = ",".join(cols) + end + body
    path.write_bytes(body.encode("utf-8", "surrogatepass"))
    return path, read


def _given_id(v) -> str | None:
    if v is None:
        return None
    s = str(v).strip(" ")
    return s or None


@settings(max_examples=int(os.environ.get("FEEDWISE_FUZZ_EXAMPLES", "40")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(fmt=st.sampled_from(["csv", "jsonl", "parquet", "dataframe"]),
       rows=st.lists(ROW, min_size=1, max_size=25),
       bad=st.lists(st.tuples(st.integers(0, 30), st.sampled_from(BAD_JSONL + BAD_CSV)),
                    max_size=3),
       tail=st.sampled_from([None, 'e8,"never closed,i1,click', '{"open": "never closed']),
       blanks=st.lists(st.integers(0, 30), max_size=2), crlf=st.booleans(),
       twice=st.booleans())
def test_ingest_accounts_for_every_row(tmp_path_factory, fmt, rows, bad, tail, blanks, crlf,
                                       twice) -> None:
    tmp = tmp_path_factory.mktemp("fuzz")
    if fmt not in ("csv", "jsonl"):
        bad, tail = [], None
    else:
        pool = BAD_CSV if fmt == "csv" else BAD_JSONL
        bad = [(p, t) for p, t in bad if t in pool]
        if tail is not None and (tail.startswith("{") != (fmt == "jsonl")):
            tail = None
    src, read = write_source(tmp, fmt, rows, bad, tail, blanks, crlf)
    n = len(rows) + len(bad) + (tail is not None)
    assert len(read) == n
    with EventStore(":memory:") as store:
        for attempt in range(2 if twice else 1):
            before = store.count_events()
            rep = store.ingest(src, source_name=f"run{attempt}")
            assert rep.accepted + rep.rejected + rep.duplicates + rep.erased == n, rep
            assert store.count_events() - before == rep.accepted
            rej = store.rejects(f"run{attempt}")
            assert len(rej) == rep.rejected
            assert rej["row"].is_unique and set(rej["row"]) <= {no for no, _ in read}
            assert (rej["raw"].dropna().str.len() <= 4000).all()
            if attempt:
                assert rep.accepted == 0  # a second ingest of the same rows adds nothing
            # every row that was not rejected is stored (rows with an explicit id)
            stored = set(store.query("SELECT event_id FROM events")["event_id"])
            rejected = set(rej["row"])
            for no, row in read:
                if row is None:  # a bad line: a reject
                    assert no in rejected, (no, rej)
                    continue
                eid = _given_id(row.get("event_id"))
                if no not in rejected and eid is not None:
                    assert eid in stored, (no, row, rej)
