"""Ingestion: read a source, validate every row in SQL, land valid rows, reject the rest.

Validation runs inside DuckDB (no per-row Python), so ingest stays close to the store's
bulk-insert speed. Each rejected row keeps its source, 1-based row number, the field at
fault and a reason that says how to fix it. The rules are written once, in :data:`RULES`:
files and tables from the CLI, the HTTP API's batches and the Spark engine's ingest
(:func:`typed_valid`) all check them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from feedwise.errors import DataError
from feedwise.schema import EVENT_COLUMNS, EVENT_KINDS

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


def source_relation(con: Any, source: Any, *, columns: list[str] | None = None,
                    delimiter: str | None = None, header: bool | None = None,
                    fmt: str | None = None) -> tuple[str, str]:
    """Register ``source`` and return (SQL ``FROM`` expression with a ``_row`` column, name)."""
    if isinstance(source, pd.DataFrame | pa.Table):
        con.register("_fw_src", source)
        return "(SELECT row_number() OVER () AS _row, * FROM _fw_src)", "<dataframe>"
    path = Path(os.fspath(source))
    if not path.exists():
        raise DataError(f"{path}: file not found")
    kind = (fmt or "").lower() or {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
                                   ".ndjson": "jsonl", ".json": "jsonl", ".tsv": "tsv",
                                   ".csv": "csv"}.get(path.suffix.lower(), "csv")
    p = _lit(str(path))
    if kind == "parquet":
        return f"(SELECT file_row_number + 1 AS _row, * FROM read_parquet({p}, " \
               f"file_row_number=true))", str(path)
    if kind == "jsonl":
        return (f"(SELECT row_number() OVER () AS _row, * FROM read_json({p}, "
                f"format='newline_delimited', union_by_name=true))", str(path))
    opts = ["all_varchar=true", "null_padding=true", "store_rejects=true"]
    delim = delimiter or ("\t" if kind == "tsv" else None)
    if delim:
        opts.append(f"delim={_lit(delim)}")
    if columns:
        opts.append("header=false")
        opts.append("names=[" + ",".join(_lit(c) for c in columns) + "]")
    elif header is not None:
        opts.append(f"header={str(header).lower()}")
    return (f"(SELECT row_number() OVER () AS _row, * FROM read_csv({p}, {', '.join(opts)}))",
            str(path))


def _ts_expr(col: str, dtype: str, ts_unit: str) -> str:
    div = {"s": 1, "ms": 1_000, "us": 1_000_000}[ts_unit]
    num = f"CASE WHEN abs({{x}}) < 1e11 * {div} THEN to_timestamp({{x}} / {div}) END"
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
        reason: Expression of the reject reason (it may quote the raw text, ``raw_<field>``).
        typed: Whether it applies to typed columns too (ingest of a typed source by the
            Spark engine, :func:`typed_valid`); ``False`` for rules about parsing text.
    """

    field: str
    broken: str
    reason: str
    typed: bool = True


_ALL_KINDS = ", ".join(EVENT_KINDS)
_FIX_TS = "give an ISO-8601 time or unix seconds"
_Q = "''"  # a quote inside a SQL string literal
_PROPENSITY = (f"'propensity {_Q}' || coalesce(left(raw_propensity, 40), "
               f"CAST(propensity AS VARCHAR)) || '{_Q} outside (0, 1]: log the probability "
               "the policy had of showing the item'")

#: The rules of an event, in the order they are checked (a row is rejected for the first
#: it breaks). ``EventStore.ingest`` (files, tables and the HTTP API's batches) and the Spark
#: engine's ingest both check these.
RULES: tuple[Rule, ...] = (
    Rule("user_id", "user_id IS NULL", "'missing user_id: every event needs a user'"),
    Rule("item_id", "item_id IS NULL", "'missing item_id: every event needs an item'"),
    Rule("kind", "kind IS NULL", f"'missing kind: use one of {_ALL_KINDS}'"),
    Rule("kind", f"kind NOT IN ({', '.join(_lit(k) for k in EVENT_KINDS)})",
         f"'unknown kind {_Q}' || left(raw_kind, 40) || '{_Q}: use one of {_ALL_KINDS}'"),
    Rule("ts", "NOT ts_given", f"'missing ts: {_FIX_TS}'", typed=False),
    Rule("ts", "ts IS NULL",
         f"'unparsable ts {_Q}' || coalesce(left(raw_ts, 40), '') || '{_Q}: {_FIX_TS}'"),
    Rule("dwell_ms", "dwell_ms IS NULL AND raw_dwell_ms IS NOT NULL",
         f"'dwell_ms {_Q}' || left(raw_dwell_ms, 40) || '{_Q} is not an integer (ms)'",
         typed=False),
    Rule("dwell_ms", "dwell_ms < 0", "'negative dwell_ms ' || dwell_ms || ': must be >= 0'"),
    Rule("value", "value IS NULL AND raw_value IS NOT NULL",
         f"'value {_Q}' || left(raw_value, 40) || '{_Q} is not a number'", typed=False),
    Rule("value", "isnan(value) OR abs(value) = CAST('Infinity' AS DOUBLE)",
         f"'value {_Q}' || coalesce(left(raw_value, 40), CAST(value AS VARCHAR)) || '{_Q} is "
         "not a finite number: give a real number or leave value out'"),
    Rule("position", "position IS NULL AND raw_position IS NOT NULL",
         f"'position {_Q}' || left(raw_position, 40) || '{_Q} is not an integer'", typed=False),
    Rule("position", "position < 0", "'negative position: positions start at 0'"),
    Rule("propensity", "propensity IS NULL AND raw_propensity IS NOT NULL", _PROPENSITY,
         typed=False),
    Rule("propensity", "propensity <= 0 OR propensity > 1", _PROPENSITY),
    Rule("context", "context IS NOT NULL AND NOT json_valid(context)",
         "'context is not valid JSON'", typed=False),
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


def build_select(con: Any, src: str, mapping: dict[str, str], ts_unit: str = "s"
                 ) -> tuple[str, str, str]:
    """Return (parsed relation, event select list, reject-reason expression).

    The parsed relation holds every field parsed once (plus ``_row`` and the raw text of
    fields whose parse can fail); the select list and the reason are expressions over it.
    The reason is NULL for a valid row, else ``'field|reason'``.
    """
    desc = con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
    types = {r[0]: r[1] for r in desc}
    raw: dict[str, str] = {}
    for field in EVENT_COLUMNS:
        target = mapping.get(field, field)
        if target.startswith("="):
            raw[field] = _lit(target[1:])
        elif target in types:
            raw[field] = f"s.{_q(target)}"
        elif field in mapping:
            raise DataError(f"mapping {field}={target}: source has no column {target!r}; "
                            f"columns are {[c for c in types if c != '_row']}")
        else:
            raw[field] = "NULL"
    missing = [f for f in ("user_id", "item_id", "kind", "ts") if raw[f] == "NULL"]
    if missing:
        raise DataError(f"source has no column for required field(s) {missing}; map them with "
                        f"--mapping field=column (columns: {[c for c in types if c != '_row']})")

    src_type = {f: types.get(mapping.get(f, f), "VARCHAR").upper() for f in EVENT_COLUMNS}

    def txt(f: str) -> str:
        if raw[f] == "NULL":
            return "NULL"
        x = raw[f] if src_type[f] == "VARCHAR" else f"CAST({raw[f]} AS VARCHAR)"
        return f"nullif(trim({x}), '')"

    def num(f: str, t: str) -> str:
        return "NULL" if raw[f] == "NULL" else f"TRY_CAST({raw[f]} AS {t})"

    def raw_txt(f: str) -> str:
        """Raw text of a field whose parse can fail; typed (non-text) columns cannot."""
        return txt(f) if src_type[f] in ("VARCHAR", "JSON") else "NULL"

    ctx = "NULL"
    if raw["context"] != "NULL":
        ctx = (f"CAST(to_json({raw['context']}) AS VARCHAR)" if "STRUCT" in src_type["context"]
               or "MAP" in src_type["context"] else txt("context"))
    ts = _ts_expr(raw["ts"], src_type["ts"], ts_unit) if raw["ts"] != "NULL" else "NULL"
    fallible = ("kind", "ts", "dwell_ms", "value", "position", "propensity")
    # level 1: every field parsed once
    parsed = (f"s._row AS _row, {txt('event_id')} AS p_event_id, {txt('user_id')} AS user_id, "
              f"{txt('item_id')} AS item_id, lower({txt('kind')}) AS kind, {ts} AS ts, "
              f"{num('dwell_ms', 'BIGINT')} AS dwell_ms, {num('value', 'DOUBLE')} AS value, "
              f"{num('position', 'INTEGER')} AS position, {txt('surface')} AS surface, "
              f"{txt('session_id')} AS session_id, {num('propensity', 'DOUBLE')} AS propensity, "
              f"{ctx} AS context, {raw['ts']} IS NOT NULL AS ts_given, "
              + ", ".join(f"{raw_txt(f)} AS raw_{f}" for f in fallible))
    reason = ("CASE " + " ".join(f"WHEN {r.broken} THEN {_lit(r.field + '|')} || {r.reason}"
                                 for r in RULES) + " ELSE NULL END")
    cols = ", ".join(c for c in EVENT_COLUMNS if c != "event_id")
    eid = f"CASE WHEN p_event_id IS NOT NULL THEN p_event_id ELSE {derived_event_id()} END"
    return f"(SELECT {parsed} FROM {src} s)", f"{eid} AS event_id, {cols}", reason
