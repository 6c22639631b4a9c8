"""Ingestion: read a source, validate every row in SQL, land valid rows, reject the rest.

Validation runs inside DuckDB (no per-row Python), so ingest stays close to the store's
bulk-insert speed. Each rejected row keeps its source, 1-based row number, the field at
fault and a reason that says how to fix it. The rules are written once, in :data:`RULES`:
files and tables from the CLI, the HTTP API's batches and the Spark engine's ingest
(:func:`typed_valid`) all check them.

Reading is line-safe (:func:`open_source`): a path is read literally (``*``, ``?`` and ``[``
are no pattern); a JSONL line that is not a JSON object, a CSV line the reader cannot split
(an unbalanced quote, too many fields, over :data:`MAX_CSV_LINE` bytes, not UTF-8) becomes
a reject of that line with a short excerpt, and the rest of the file lands.
"""

from __future__ import annotations

import mmap
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from feedwise.errors import DataError
from feedwise.schema import EVENT_COLUMNS, EVENT_KINDS, MAX_TEXT_CHARS

#: Ready-made column mappings for public datasets (target field -> source column or "=constant").
MAPPINGS: dict[str, dict[str, str]] = {
    "movielens-100k": {"user_id": "user", "item_id": "item", "value": "rating", "ts": "timestamp",
                       "kind": "=rating"},
    "movielens-latest": {"user_id": "userId", "item_id": "movieId", "value": "rating",
                         "ts": "timestamp", "kind": "=rating"},
}
#: Column names for headerless formats of the presets.
PRESET_COLUMNS: dict[str, list[str]] = {"movielens-100k": ["user", "item", "rating", "timestamp"]}
PRESET_DELIMITERS: dict[str, str] = {"movielens-100k": "\t"}


@dataclass(frozen=True)
class IngestReport:
    """What one ingest call did."""

    source: str
    accepted: int
    duplicates: int
    rejected: int
    seconds: float
    #: Rows of erased (tombstoned) users: skipped, and not kept in ``rejects`` either.
    erased: int = 0
    #: Columns of the source that no event field reads (a mapping can name them).
    ignored_columns: tuple[str, ...] = ()
    #: Ids of valid rows the store held before (a retry, or another row's id): the rows
    #: counted in ``duplicates`` and the conflicts in ``rejects`` (kept from the check the
    #: landing makes anyway, so the service asks no second time).
    stored_ids: frozenset[str] = frozenset()

    @property
    def rows(self) -> int:
        return self.accepted + self.duplicates + self.rejected + self.erased

    @property
    def events_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def parse_mapping(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """Parse ``"user_id=user,item_id=item,kind==rating"`` or a preset name into a dict."""
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        mapping = dict(spec)
    elif spec in MAPPINGS:
        mapping = dict(MAPPINGS[spec])
    else:
        mapping = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            if "=" not in part:
                raise DataError(f"mapping entry {part!r} must look like field=column "
                                f"(or field==constant)")
            k, v = part.split("=", 1)
            mapping[k.strip()] = v.strip()
    unknown = set(mapping) - set(EVENT_COLUMNS)
    if unknown:
        raise DataError(f"mapping names unknown event field(s) {sorted(unknown)}; "
                        f"fields are {list(EVENT_COLUMNS)}")
    return mapping


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


#: Characters of a rejected line (or of one field of a rejected row) kept in ``rejects.raw``.
EXCERPT = 200
#: The longest CSV line (bytes) read; a longer one is a reject (DuckDB's ``max_line_size``).
MAX_CSV_LINE = 2_000_000
#: Columns a source relation carries for the store, not from the source.
INTERNAL_COLUMNS = frozenset({"_row", "_line", "file_row_number"})
#: ``error_type`` of the CSV reader (and of :func:`parse_csv_lines`) -> the reject reason.
CSV_REASONS = {
    "UNQUOTED VALUE": "unbalanced quote: a quoted field must end with a quote followed by the "
                      "delimiter or the end of the line (write a quote inside one as \"\")",
    "UNTERMINATED QUOTES": "unbalanced quote: a quoted field is never closed",
    "TOO MANY COLUMNS": "more fields than the header has columns: quote a field that holds "
                        "the delimiter",
    "MISSING COLUMNS": "fewer fields than the header has columns",
    "LINE SIZE OVER MAXIMUM": f"line longer than {MAX_CSV_LINE:,} bytes",
    "INVALID ENCODING": "not valid UTF-8 text: save the file as UTF-8",
    "INVALID UNICODE": "not valid UTF-8 text: save the file as UTF-8",
}
#: How a reject names a row whose ``event_id`` is stored with other content.
STORED_CONFLICT = "already stored with different content"
#: ``_bad`` of a JSONL line -> the reject reason.
JSONL_REASONS = {
    "utf8": "not valid UTF-8 text: save the file as UTF-8",
    "json": "line is not valid JSON: each line must be one JSON object",
    "object": "line is valid JSON but not a JSON object: each line must be one event object",
}
_GLOB = re.compile(r"([*?\[])")
_SURROGATE = re.compile("[\udc80-\udcff]")
_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl",
            ".json": "jsonl", ".tsv": "tsv", ".csv": "csv"}


def path_literal(path: str | os.PathLike) -> str:
    """SQL literal of a file path that DuckDB's readers take literally: ``*``, ``?`` and
    ``[`` (glob characters to them) are escaped as ``[*]``, ``[?]`` and ``[[]``."""
    return _lit(_GLOB.sub(r"[\1]", str(path)))


def clean_error(e: BaseException) -> str:
    """A reader's error as one short line: never the SQL around it or the input it echoes."""
    text = str(e).split("\nLINE ")[0]
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(e).__name__)
    return first if len(first) <= EXCERPT else first[:EXCERPT] + "…"


@dataclass(frozen=True)
class CsvDialect:
    """How a delimited file is split: RFC 4180 quoting (``"``, doubled inside a field)."""

    delimiter: str
    header: bool
    names: tuple[str, ...]


@dataclass
class Source:
    """A source opened for ingest (see :func:`open_source`).

    Attributes:
        name: Name recorded in ``rejects`` (the path, or ``<dataframe>``).
        kind: ``table``, ``parquet``, ``jsonl`` or ``csv``.
        rel: SQL ``FROM`` expression: ``_row`` (1-based row number) and the source's columns.
        columns: The source's columns (what a mapping may name), in order.
        path: The file, if any.
        dialect: How a CSV is split.
        fallback: A CSV is read line by line in Python (:func:`parse_csv_lines`), not by
            DuckDB's reader (set when a quote left open would swallow lines).
        gaps: CSV rows are renumbered after lines the reader rejected (``_fw_gaps``).
        registered: Names registered on the connection, to unregister.
        temp: Temporary tables to drop.
        types: DuckDB type of each column of ``rel`` when known without asking DuckDB (an
            arrow table of plain types), else ``None`` (:func:`build_select` describes it).
    """

    name: str
    kind: str
    rel: str
    columns: list[str]
    path: Path | None = None
    dialect: CsvDialect | None = None
    fallback: bool = False
    gaps: bool = False
    registered: list[str] = dc_field(default_factory=list)
    temp: list[str] = dc_field(default_factory=list)
    types: dict[str, str] | None = None

    def ignored(self, mapping: Mapping[str, str]) -> tuple[str, ...]:
        """Source columns no event field reads (reported, so nothing is dropped unseen)."""
        used = {mapping.get(f, f) for f in EVENT_COLUMNS}
        return tuple(c for c in self.columns if c not in used)

    def raw_rel(self) -> str:
        """The relation a reject's raw text is read from (alias ``s``, key ``_row``)."""
        if self.kind == "jsonl":
            return "_fw_lines"
        if self.gaps:  # the same rows, numbered as the stage was
            return (f"(SELECT k + (SELECT count(*) FROM _fw_gaps g WHERE g.g < k) AS _row, "
                    f"* EXCLUDE (k, _row) FROM (SELECT row_number() OVER () AS k, * FROM "
                    f"{self.rel}))")
        return self.rel

    def raw(self, types: Mapping[str, str], user_col: str | None) -> str:
        """SQL (over ``s``) of a rejected row's raw text: the JSONL line, else a JSON object
        of the row's fields, each cut to :data:`EXCERPT` characters. With ``user_col``, that
        field holds the stored (pseudonymised) id ``r.user_id`` instead of the source's."""
        if self.kind == "jsonl":
            line = "s.line"
            if user_col is not None:
                line = f"CAST(json_merge_patch(s.line, json_object({_lit(user_col)}, " \
                       f"r.user_id)) AS VARCHAR)"
            return f"left({line}, {EXCERPT})"
        parts = []
        for c in self.columns:
            t = types.get(c, "VARCHAR").upper()
            v = f"s.{_q(c)}"
            if not (t in _JSON_SCALARS or t.startswith("DECIMAL")):
                v = f"left(CAST({v} AS VARCHAR), {EXCERPT})"
            parts.append(f"{_lit(c)}, {v}")
        obj = f"json_object({', '.join(parts)})" if parts else "json_object()"
        if user_col is not None and user_col in self.columns:
            obj = f"json_merge_patch({obj}, json_object({_lit(user_col)}, r.user_id))"
        return f"CAST({obj} AS VARCHAR)"


_JSON_SCALARS = frozenset({"BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT",
                           "USMALLINT", "UINTEGER", "FLOAT", "DOUBLE"})


def open_source(con: Any, source: Any, *, columns: list[str] | None = None,
                delimiter: str | None = None, header: bool | None = None,
                fmt: str | None = None, mapping: Mapping[str, str] | None = None) -> Source:
    """Open ``source`` for ingest (outside the ingest transaction: a reader that fails here
    leaves nothing behind).

    A path is read literally (glob characters in it are no pattern). A JSONL file is read
    as lines and each line parsed on its own, so a line that is not a JSON object is one
    reject. A CSV is split by RFC 4180 (the delimiter and header are sniffed, the quote is
    always ``"``), so a quote left open is a reject of its line, not part of an id.
    ``mapping`` (field -> column) says which JSONL keys to parse out of each line.

    Raises:
        DataError: The file does not exist, is empty or cannot be read at all.
    """
    if isinstance(source, pd.DataFrame | pa.Table):
        con.register("_fw_src", source)
        cols = (list(source.column_names) if isinstance(source, pa.Table) else  # as named
                [d[0] for d in con.execute("DESCRIBE SELECT * FROM _fw_src").fetchall()])
        return Source("<dataframe>", "table",
                      "(SELECT row_number() OVER () AS _row, * FROM _fw_src)",
                      [c for c in cols if c not in INTERNAL_COLUMNS], registered=["_fw_src"],
                      types=_arrow_types(source) if isinstance(source, pa.Table) else None)
    path = Path(os.fspath(source))
    if not path.is_file():
        raise DataError(f"{path}: file not found" if not path.exists() else
                        f"{path}: not a file")
    kind = (fmt or "").lower() or _FORMATS.get(path.suffix.lower(), "csv")
    lit = path_literal(path)
    try:
        if kind == "parquet":
            rel = f"(SELECT file_row_number + 1 AS _row, * FROM read_parquet({lit}, " \
                  f"file_row_number=true))"
            cols = [d[0] for d in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()]
            return Source(str(path), "parquet", rel,
                          [c for c in cols if c not in INTERNAL_COLUMNS], path)
        if kind == "jsonl":
            return _open_jsonl(con, path, lit, mapping or {})
        if kind not in ("csv", "tsv"):
            raise DataError(f"{path}: unknown format {fmt!r}; use csv, tsv, parquet or jsonl")
        return _open_csv(con, path, lit, kind, columns=columns, delimiter=delimiter,
                         header=header, mapping=mapping or {})
    except duckdb.Error as e:
        raise DataError(f"{path}: cannot read the file: {clean_error(e)}") from None


def _open_jsonl(con: Any, path: Path, lit: str, mapping: Mapping[str, str]) -> Source:
    """Lines of a JSONL file in ``_fw_lines`` (``_row`` = line number, blank lines left out,
    ``_bad`` = why a line is no event object), and the relation of the fields the events
    read (each line parsed once for them; a reject's raw text is its line)."""
    try:
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _fw_text AS
            SELECT unnest(range(1, len(l) + 1)) AS _row, unnest(l) AS line, TRUE AS utf8
            FROM (SELECT string_split(content, chr(10)) AS l FROM read_text({lit}))""")
    except duckdb.Error:
        # not UTF-8 somewhere (or too large for one string): split in Python, line by line
        rows, lines, ok = [], [], []
        with open(path, "rb") as f:
            for i, b in enumerate(f, 1):
                b = b.removesuffix(b"\n")
                try:
                    lines.append(b.decode("utf-8"))
                    ok.append(True)
                except UnicodeDecodeError:
                    lines.append(b.decode("utf-8", "replace"))
                    ok.append(False)
                rows.append(i)
        con.register("_fw_text_py", pa.table({"_row": pa.array(rows, pa.int64()),
                                              "line": pa.array(lines, pa.string()),
                                              "utf8": pa.array(ok, pa.bool_())}))
        try:
            con.execute("CREATE OR REPLACE TEMP TABLE _fw_text AS SELECT * FROM _fw_text_py")
        finally:
            con.unregister("_fw_text_py")
    ws = _lit(" " + chr(9) + chr(13))
    lines = f"FROM _fw_text WHERE trim(line, {ws}) <> ''"
    try:
        try:  # one parse per line: json_type raises on a line that is not JSON...
            con.execute(f"""CREATE OR REPLACE TEMP TABLE _fw_lines AS
                SELECT _row, line, CASE WHEN NOT utf8 THEN 'utf8'
                                        WHEN json_type(line) <> 'OBJECT' THEN 'object'
                                        END AS _bad {lines}""")
        except duckdb.Error:  # ...so then each line is parsed on its own (try: NULL), slower
            con.execute(f"""CREATE OR REPLACE TEMP TABLE _fw_lines AS
                SELECT _row, line, CASE WHEN NOT utf8 THEN 'utf8' WHEN t IS NULL THEN 'json'
                                        WHEN t <> 'OBJECT' THEN 'object' END AS _bad
                FROM (SELECT _row, line, utf8, CASE WHEN utf8 THEN try(json_type(line))
                                                    END AS t {lines})""")
    finally:
        con.execute("DROP TABLE IF EXISTS _fw_text")
    keys = [r[0] for r in con.execute(
        "SELECT k FROM (SELECT unnest(json_keys(line)) AS k, _row FROM _fw_lines "
        "WHERE _bad IS NULL) GROUP BY k ORDER BY min(_row), k").fetchall()
        if r[0] is not None and r[0] not in INTERNAL_COLUMNS]
    wanted = [mapping.get(f, f) for f in EVENT_COLUMNS]
    read = [k for k in keys if k in wanted]
    if not keys:  # no line is an event object: every line is a reject, not a missing column
        read = [k for k in wanted if not k.startswith("=")]
    paths = ", ".join(_lit('$."' + k.replace("\\", "\\\\").replace('"', '\\"') + '"')
                      for k in read)
    fields = "".join(f", v[{i}] AS {_q(k)}" for i, k in enumerate(read, 1))
    rel = (f"(SELECT _row, line AS _line{fields} FROM (SELECT _row, line, "
           f"{f'json_extract_string(line, [{paths}])' if read else 'NULL'} AS v "
           f"FROM _fw_lines WHERE _bad IS NULL))")
    return Source(str(path), "jsonl", rel, keys, path, temp=["_fw_lines"])


def _open_csv(con: Any, path: Path, lit: str, kind: str, *, columns: list[str] | None,
              delimiter: str | None, header: bool | None, mapping: Mapping[str, str]
              ) -> Source:
    head = _head(path)
    delim = delimiter or ("\t" if kind == "tsv" else None)
    sniff = None
    if delim is None or (header is None and not columns):
        opts = f", delim={_lit(delim)}" if delim else ""
        try:  # the sniffer may fail on a broken sample (a 10 MB line): then we guess
            sniff = con.execute(f"SELECT Delimiter, HasHeader, Columns FROM sniff_csv({lit}, "
                                f"null_padding=true{opts})").fetchone()
        except duckdb.Error:
            sniff = None
    if delim is None:  # the sniffer's, unless the first line does not hold it (odd rows
        # can mislead it): then the likeliest of , tab ; | in the first line
        first_line = head.split("\n", 1)[0]
        delim = sniff[0] if sniff and sniff[0] and sniff[0] in first_line else \
            _guess_delimiter(first_line)
    first = CsvLines(head, delim).first_record()
    if columns:
        names = list(columns)
        has_header = bool(header)
    else:
        if first is None:
            raise DataError(f"{path}: the file is empty")
        # a first line naming a column an event field reads is a header, whatever the
        # sniffer makes of rows of odd text; else the sniffer says (no sniff: a header)
        wanted = {mapping.get(f, f) for f in EVENT_COLUMNS}
        has_header = header if header is not None else (
            True if wanted & set(first) or not sniff else bool(sniff[1]))
        if has_header:
            names = _header_names(first)
        elif sniff and len(sniff[2]) == len(first):
            names = [c["name"] for c in sniff[2]]
        else:
            width = len(str(len(first) - 1))
            names = [f"column{i:0{width}d}" for i in range(len(first))]
    dialect = CsvDialect(delim, has_header, tuple(names))
    cols = "{" + ", ".join(f"{_lit(c)}: 'VARCHAR'" for c in names) + "}"
    rel = (f"(SELECT row_number() OVER () AS _row, * FROM read_csv({lit}, auto_detect=false, "
           f"delim={_lit(delim)}, quote='\"', escape='\"', header={str(has_header).lower()}, "
           f"columns={cols}, null_padding=true, parallel=false, store_rejects=true, "
           f"max_line_size={MAX_CSV_LINE}))")
    src = Source(str(path), "csv", rel, names, path, dialect)
    # DuckDB's reader takes a quote opened on the last line and never closed as the end of
    # the file, silently: an odd number of quotes in the file sends it to the careful reader
    if _open_quote_at_end(path):
        src.fallback = True
    return src


def _head(path: Path, size: int = 1 << 20) -> str:
    with open(path, "rb") as f:
        data = f.read(size)
    return data.decode("utf-8", "replace").removeprefix("\ufeff")


def _guess_delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def _header_names(first: list[str | None]) -> list[str]:
    """Header fields as column names (DuckDB's rules: an empty name is ``column<i>``, a
    repeated one gets ``_<n>``)."""
    names: list[str] = []
    seen: set[str] = set()
    for i, v in enumerate(first):
        name = v if v else f"column{i}"
        base, n = name, 0
        while name in seen:
            n += 1
            name = f"{base}_{n}"
        seen.add(name)
        names.append(name)
    return names


def has_inner_blank_line(path: Path) -> bool:
    """Whether a blank line comes before the file's last line of text (DuckDB's reader
    counts blank lines in a reject's line number but not as rows read, so rows after one
    cannot be numbered from its rejects)."""
    if path.stat().st_size == 0:
        return False
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        tail = mm[max(0, len(mm) - (1 << 16)):]  # where the text ends, from the tail
        last = len(mm) - len(tail) + len(tail.rstrip(b"\r\n \t"))
        for blank in (b"\n\n", b"\n\r\n"):
            i = mm.find(blank)
            if 0 <= i < last:
                return True
    return False


def _open_quote_at_end(path: Path, tail: int = 1 << 16) -> bool:
    """Whether the file holds an odd number of ``"`` (a quote left open), checked in full
    only when its last line holds an odd number of them (else it costs one small read)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - tail))
        last = f.read().rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
        if last.count(b'"') % 2 == 0:
            return False
        f.seek(0)
        n = 0
        while chunk := f.read(1 << 24):
            n += chunk.count(b'"')
    return n % 2 == 1


class CsvLines:
    """A careful RFC 4180 reader of CSV text, for files whose quotes DuckDB's reader cannot
    resolve line by line: a record whose quoting is broken (a quote never closed, text after
    a closing quote, longer than :data:`MAX_CSV_LINE`) is a reject of its first line, and
    reading resumes on the next line, so a stray quote never swallows the lines after it.
    """

    def __init__(self, text: str, delimiter: str) -> None:
        self.text = text
        self.n = len(text)
        self.d = delimiter
        self._q_from = self._q_at = -1  # text.find('"', _q_from) == _q_at (memo)

    def _next_quote(self, j: int) -> int:
        if not (self._q_from <= j and (self._q_at == -1 or j <= self._q_at)) \
                or self._q_from < 0:
            self._q_from, self._q_at = j, self.text.find('"', j)
        return self._q_at

    def record(self, pos: int) -> tuple[list[str | None] | None, int, str | None]:
        """The record starting at ``pos``: (fields, where the next one starts, error).

        A record with broken quoting gives (``None``, ``pos``, error): only its first line
        is known bad. One that is well-formed but longer than :data:`MAX_CSV_LINE` gives
        (``None``, its end, error): all of it is one reject.
        """
        t, n, d = self.text, self.n, self.d
        fields: list[str | None] = []
        i = pos
        while True:
            if i < n and t[i] == '"':
                j, parts = i + 1, []
                while True:
                    k = self._next_quote(j)
                    if k < 0:
                        return None, pos, "UNQUOTED VALUE"
                    if k + 1 < n and t[k + 1] == '"':
                        parts.append(t[j:k + 1])
                        j = k + 2
                        continue
                    parts.append(t[j:k])
                    i = k + 1
                    break
                fields.append("".join(parts))
                if i < n and t.startswith(d, i):
                    i += len(d)
                    continue
                if i >= n:
                    nxt = n
                elif t[i] == "\n":
                    nxt = i + 1
                elif t.startswith("\r\n", i):
                    nxt = i + 2
                else:
                    return None, pos, "UNQUOTED VALUE"
                break
            end = t.find("\n", i)
            end = n if end < 0 else end
            k = t.find(d, i, end)
            if k >= 0:
                fields.append(t[i:k] or None)
                i = k + len(d)
                continue
            fields.append(t[i:end].removesuffix("\r") or None)
            nxt = end + 1
            break
        if nxt - pos > MAX_CSV_LINE:
            return None, nxt, "LINE SIZE OVER MAXIMUM"
        return fields, nxt, None

    def first_record(self) -> list[str | None] | None:
        pos = 0
        while pos < self.n:
            end = self.text.find("\n", pos)
            end = self.n if end < 0 else end
            if self.text[pos:end].strip("\r"):
                fields, _, err = self.record(pos)
                return fields if err is None else self.text[pos:end].split(self.d)
            pos = end + 1
        return None

    def rows(self, header: bool, ncol: int) -> tuple[list[int], list[list[str | None]],
                                                     list[tuple[int, str, str]]]:
        """(row numbers, columns, bad lines as (row, error type, excerpt)). Blank lines
        are no rows; the header (when there is one) is not a row."""
        t, n = self.text, self.n
        rows: list[int] = []
        cols: list[list[str | None]] = [[] for _ in range(ncol)]
        bad: list[tuple[int, str, str]] = []
        pos, row, skip_header = 0, 0, header
        while pos < n:
            end = t.find("\n", pos)
            end = n if end < 0 else end
            line = t[pos:end]
            if not line.strip("\r"):
                pos = end + 1
                continue
            if '"' not in line:  # no quote: the line is the record
                fields: list[str | None] | None = [v or None for v in
                                                   line.removesuffix("\r").split(self.d)]
                nxt, err = end + 1, None
                if end - pos > MAX_CSV_LINE:
                    fields, err = None, "LINE SIZE OVER MAXIMUM"
            else:
                fields, nxt, err = self.record(pos)
            if skip_header:
                skip_header = False
                pos = end + 1 if err is not None and nxt == pos else nxt
                continue
            row += 1
            if err is not None:  # a record too long is skipped whole; broken quoting, the line
                bad.append((row, err, line[:EXCERPT]))
                pos = nxt if err == "LINE SIZE OVER MAXIMUM" else end + 1
                continue
            assert fields is not None
            if _SURROGATE.search(t, pos, nxt):
                bad.append((row, "INVALID ENCODING", line[:EXCERPT]))
            elif len(fields) > ncol:
                bad.append((row, "TOO MANY COLUMNS", t[pos:nxt][:EXCERPT]))
            else:
                fields.extend([None] * (ncol - len(fields)))
                for c, v in zip(cols, fields, strict=True):
                    c.append(v)
                rows.append(row)
            pos = nxt
        return rows, cols, bad


def parse_csv_lines(path: Path, dialect: CsvDialect) -> tuple[pa.Table, pa.Table]:
    """Read a CSV with :class:`CsvLines`: (rows as text columns with ``_row``, bad lines in
    the shape of DuckDB's ``reject_errors``: ``line``, ``column_name``, ``error_type``,
    ``csv_line``)."""
    text = path.read_bytes().decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    rows, cols, bad = CsvLines(text, dialect.delimiter).rows(dialect.header,
                                                             len(dialect.names))
    table = pa.table({"_row": pa.array(rows, pa.int64()),
                      **{name: pa.array(c, pa.string())
                         for name, c in zip(dialect.names, cols, strict=True)}})
    first = int(dialect.header)
    excerpt = [e.encode("utf-8", "replace").decode("utf-8") for _, _, e in bad]
    bad_t = pa.table({"line": pa.array([r + first for r, _, _ in bad], pa.int64()),
                      "column_name": pa.array([None] * len(bad), pa.string()),
                      "error_type": pa.array([k for _, k, _ in bad], pa.string()),
                      "csv_line": pa.array(excerpt, pa.string())})
    return table, bad_t


def _ts_expr(col: str, dtype: str, ts_unit: str) -> str:
    div = {"s": 1, "ms": 1_000, "us": 1_000_000}[ts_unit]
    # NaN is no time; a number too large for one is +-infinity (a reject for its range, see
    # RULES), never a conversion error
    num = (f"CASE WHEN NOT isfinite({{x}}) THEN NULL WHEN abs({{x}}) < 1e11 * {div} "
           f"THEN to_timestamp({{x}} / {div}) WHEN {{x}} > 0 THEN 'infinity'::TIMESTAMPTZ "
           "ELSE '-infinity'::TIMESTAMPTZ END")
    d = dtype.upper()
    if "TIME ZONE" in d or d == "TIMESTAMPTZ":
        return col
    if d.startswith("TIMESTAMP") or d == "DATE":
        return f"CAST({col} AS TIMESTAMPTZ)"
    if any(t in d for t in ("INT", "DOUBLE", "FLOAT", "DECIMAL", "REAL")):
        return num.format(x=f"CAST({col} AS DOUBLE)")
    s = f"CAST({col} AS VARCHAR)"
    return f"coalesce(TRY_CAST({s} AS TIMESTAMPTZ), {num.format(x=f'TRY_CAST({s} AS DOUBLE)')})"


@dataclass(frozen=True)
class Rule:
    """One rule every event keeps, in SQL over the parsed columns (see :func:`build_select`).

    Attributes:
        field: The field a row breaking it is rejected for.
        broken: Condition true when a row breaks the rule.
        reason: Expression of the reject reason (it may quote the raw value,
            ``raw_<field>``: the text of a text source, else the typed value).
        typed: Whether it applies to typed columns too (ingest of a typed source by the
            Spark engine, :func:`typed_valid`); ``False`` for rules about parsing text.
    """

    field: str
    broken: str
    reason: str
    typed: bool = True


_ALL_KINDS = ", ".join(EVENT_KINDS)
_FIX_TS = "give an ISO-8601 time or unix seconds"
#: Times an event may have: from the unix epoch to one day after the batch is ingested.
TS_RANGE = "[1970-01-01, now + 1 day]"
_Q = "''"  # a quote inside a SQL string literal
_PROPENSITY = (f"'propensity {_Q}' || coalesce(left(CAST(raw_propensity AS VARCHAR), 40), "
               f"CAST(propensity AS VARCHAR)) || '{_Q} outside (0, 1]: log the probability "
               "the policy had of showing the item'")

#: The namespace of the event ids the service builds itself (served impressions,
#: ``srv:<request id>:<position>``, see ``store/serving.py``): no client event may use it.
SERVED_ID_PREFIX = "srv:"

#: The rules of an event, in the order they are checked (a row is rejected for the first
#: it breaks). ``EventStore.ingest`` (files, tables and the HTTP API's batches) and the Spark
#: engine's ingest both check these.
RULES: tuple[Rule, ...] = (
    # not for Spark (typed=False): it reads the store's own exports, impressions included
    Rule("event_id", f"starts_with(p_event_id, {_lit(SERVED_ID_PREFIX)})",
         f"'event_id {_Q}' || left(p_event_id, 40) || '{_Q}: ids starting with "
         f"{SERVED_ID_PREFIX} are reserved for the impressions the service logs; use "
         "another id'", typed=False),
    Rule("user_id", "user_id IS NULL", "'missing user_id: every event needs a user'"),
    Rule("item_id", "item_id IS NULL", "'missing item_id: every event needs an item'"),
    Rule("kind", "kind IS NULL", f"'missing kind: use one of {_ALL_KINDS}'"),
    Rule("kind", f"kind NOT IN ({', '.join(_lit(k) for k in EVENT_KINDS)})",
         f"'unknown kind {_Q}' || left(CAST(raw_kind AS VARCHAR), 40) || '{_Q}: use one of "
         f"{_ALL_KINDS}'"),
    Rule("ts", "NOT ts_given", f"'missing ts: {_FIX_TS}'", typed=False),
    Rule("ts", "ts IS NULL",
         f"'unparsable ts {_Q}' || coalesce(left(CAST(raw_ts AS VARCHAR), 40), '') || "
         f"'{_Q}: {_FIX_TS}'"),
    # DuckDB and Spark SQL alike; now() is when the batch is ingested
    Rule("ts", "ts < TIMESTAMP '1970-01-01 00:00:00' OR ts > now() + INTERVAL 1 DAY",
         f"'ts {_Q}' || coalesce(left(CAST(raw_ts AS VARCHAR), 40), CAST(ts AS VARCHAR)) || "
         f"'{_Q} is outside {TS_RANGE}: {_FIX_TS} (numbers in the unit of --ts-unit)'"),
    Rule("dwell_ms", "dwell_ms IS NULL AND raw_dwell_ms IS NOT NULL",
         f"'dwell_ms {_Q}' || left(CAST(raw_dwell_ms AS VARCHAR), 40) || '{_Q} is not an "
         "integer (ms)'",
         typed=False),
    Rule("dwell_ms", "dwell_ms < 0", "'negative dwell_ms ' || dwell_ms || ': must be >= 0'"),
    Rule("value", "value IS NULL AND raw_value IS NOT NULL",
         f"'value {_Q}' || left(CAST(raw_value AS VARCHAR), 40) || '{_Q} is not a number'",
         typed=False),
    Rule("value", "isnan(value) OR abs(value) = CAST('Infinity' AS DOUBLE)",
         f"'value {_Q}' || coalesce(left(CAST(raw_value AS VARCHAR), 40), "
         f"CAST(value AS VARCHAR)) || '{_Q} is "
         "not a finite number: give a real number or leave value out'"),
    Rule("position", "position IS NULL AND raw_position IS NOT NULL",
         f"'position {_Q}' || left(CAST(raw_position AS VARCHAR), 40) || '{_Q} is not an "
         "integer'", typed=False),
    Rule("position", "position < 0", "'negative position: positions start at 0'"),
    Rule("propensity", "propensity IS NULL AND raw_propensity IS NOT NULL", _PROPENSITY,
         typed=False),
    Rule("propensity", "propensity <= 0 OR propensity > 1", _PROPENSITY),
    Rule("context", "context IS NOT NULL AND NOT json_valid(context)",
         "'context is not valid JSON'", typed=False),
    Rule("text", f"length(text) > {MAX_TEXT_CHARS}",
         f"'text of ' || length(text) || ' characters: at most {MAX_TEXT_CHARS}; "
         "split or shorten it'"),
)


def typed_valid() -> str:
    """SQL condition true for a row of typed event columns that keeps every typed rule
    (DuckDB and Spark SQL alike)."""
    return "NOT (" + " OR ".join(f"coalesce({r.broken}, FALSE)" for r in RULES if r.typed) + ")"


def derived_event_id(epoch_ms: str = "epoch_ms(ts)") -> str:
    """SQL of the id of an event sent without one: a digest of its content (distinct
    values, sessions or positions make distinct events). ``epoch_ms`` is the SQL of ``ts``
    in unix milliseconds (Spark: ``unix_millis(ts)``)."""
    return (f"md5(concat_ws('|', user_id, item_id, kind, CAST({epoch_ms} AS STRING), "
            "CAST(value AS STRING), session_id, CAST(position AS STRING)))")


def _arrow_types(table: pa.Table) -> dict[str, str] | None:
    """The DuckDB types of ``(SELECT row_number() OVER () AS _row, * FROM table)`` when
    every column has a plain type (strings, integers, floats, booleans), else ``None``."""
    plain = {pa.string(): "VARCHAR", pa.large_string(): "VARCHAR", pa.int64(): "BIGINT",
             pa.int32(): "INTEGER", pa.float64(): "DOUBLE", pa.bool_(): "BOOLEAN"}
    types = {"_row": "BIGINT"}
    for f in table.schema:
        if f.type not in plain or f.name in types:
            return None
        types[f.name] = plain[f.type]
    return types


def build_select(con: Any, src: str, mapping: dict[str, str], ts_unit: str = "s",
                 columns: list[str] | None = None, types: dict[str, str] | None = None
                 ) -> tuple[str, str, str, dict[str, str]]:
    """Return (parsed relation, event select list, reject-reason expression, source types).

    The parsed relation holds every field parsed once (plus ``_row`` and the raw value of
    fields whose parse can fail); the select list and the reason are expressions over it.
    The reason is NULL for a valid row, else ``'field|reason'``. ``columns`` names the
    source's columns in error messages (default: those of ``src``); ``types`` are its
    columns' DuckDB types when known (else ``src`` is described: a statement).
    """
    if types is None:
        desc = con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
        types = {r[0]: r[1] for r in desc}
    named = columns if columns is not None else [c for c in types
                                                 if c not in INTERNAL_COLUMNS]
    raw: dict[str, str] = {}
    for field in EVENT_COLUMNS:
        target = mapping.get(field, field)
        if target.startswith("="):
            raw[field] = _lit(target[1:])
        elif target in types:
            raw[field] = f"s.{_q(target)}"
        elif field in mapping:
            raise DataError(f"mapping {field}={target}: source has no column {target!r}; "
                            f"columns are {named[:50]}")
        else:
            raw[field] = "NULL"
    missing = [f for f in ("user_id", "item_id", "kind", "ts") if raw[f] == "NULL"]
    if missing:
        raise DataError(f"source has no column for required field(s) {missing}; map them with "
                        f"--mapping field=column (columns: {named[:50]})")

    src_type = {f: types.get(mapping.get(f, f), "VARCHAR").upper() for f in EVENT_COLUMNS}

    def txt(f: str) -> str:
        if raw[f] == "NULL":
            return "NULL"
        x = raw[f] if src_type[f] == "VARCHAR" else f"CAST({raw[f]} AS VARCHAR)"
        return f"nullif(trim({x}), '')"

    def num(f: str, t: str) -> str:
        return "NULL" if raw[f] == "NULL" else f"TRY_CAST({raw[f]} AS {t})"

    def whole(f: str, t: str) -> str:
        """An integer field: a whole number, never rounded (``TRY_CAST('1.5' AS BIGINT)`` is
        2, so a fraction makes it NULL here, and the row a reject)."""
        x, st = raw[f], src_type[f]
        if x == "NULL":
            return "NULL"
        if st in ("VARCHAR", "JSON"):
            d = f"TRY_CAST({x} AS DOUBLE)"
            return f"CASE WHEN {d} = trunc({d}) THEN TRY_CAST({x} AS {t}) END"
        if st in ("DOUBLE", "FLOAT", "REAL") or st.startswith("DECIMAL"):
            return f"CASE WHEN {x} = trunc({x}) THEN TRY_CAST({x} AS {t}) END"
        return f"TRY_CAST({x} AS {t})"

    def raw_val(f: str) -> str:
        """The source's value of a field whose parse can fail: its text (a text source),
        else the typed value (cast to text only in a reject's reason)."""
        if raw[f] == "NULL":
            return "NULL"
        return txt(f) if src_type[f] in ("VARCHAR", "JSON") else raw[f]

    ctx = "NULL"
    if raw["context"] != "NULL":
        ctx = (f"CAST(to_json({raw['context']}) AS VARCHAR)" if "STRUCT" in src_type["context"]
               or "MAP" in src_type["context"] else txt("context"))
    ts = _ts_expr(raw["ts"], src_type["ts"], ts_unit) if raw["ts"] != "NULL" else "NULL"
    fallible = ("kind", "ts", "dwell_ms", "value", "position", "propensity")
    # level 1: every field parsed once
    parsed = (f"s._row AS _row, {txt('event_id')} AS p_event_id, {txt('user_id')} AS user_id, "
              f"{txt('item_id')} AS item_id, lower({txt('kind')}) AS kind, {ts} AS ts, "
              f"{whole('dwell_ms', 'BIGINT')} AS dwell_ms, {num('value', 'DOUBLE')} AS value, "
              f"{whole('position', 'INTEGER')} AS position, {txt('surface')} AS surface, "
              f"{txt('session_id')} AS session_id, {num('propensity', 'DOUBLE')} AS propensity, "
              f"{ctx} AS context, {txt('text')} AS text, {txt('parent_id')} AS parent_id, "
              f"{raw['ts']} IS NOT NULL AS ts_given, "
              + ", ".join(f"{raw_val(f)} AS raw_{f}" for f in fallible))
    reason = ("CASE " + " ".join(f"WHEN {r.broken} THEN {_lit(r.field + '|')} || {r.reason}"
                                 for r in RULES) + " ELSE NULL END")
    cols = ", ".join(c for c in EVENT_COLUMNS if c != "event_id")
    eid = f"CASE WHEN p_event_id IS NOT NULL THEN p_event_id ELSE {derived_event_id()} END"
    return f"(SELECT {parsed} FROM {src} s)", f"{eid} AS event_id, {cols}", reason, types
