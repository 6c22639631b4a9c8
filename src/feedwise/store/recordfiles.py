"""Records from files: items, users and campaigns as tables (``feedwise ingest --items``).

A record file is CSV/TSV (any delimiter), JSON Lines or Parquet, with a header or named
columns, read through a mapping ``field=column`` (``field==constant`` for a value every
row gets), like events. Every row is checked field by field; a bad row goes to the
``rejects`` table with the file, its 1-based row, the field and a reason that says how to
fix it, and the valid rows of the same file land. A file updates only the fields it maps:
an items file of titles keeps the stored tags, a users file of attributes keeps consent.

Fields by kind (see :mod:`feedwise.schema`):

* items: ``item_id`` (required), ``kind`` (``post`` or ``ad``; default post), ``author_id``,
  ``created_at`` (ISO-8601 or unix seconds), ``title``, ``text``, ``tags`` (a JSON list or
  values separated by ``|``, ``;`` or ``,``), ``campaign_id``.
* users: ``user_id`` (required), ``consent_personalization``, ``consent_ads``,
  ``consent_analytics`` (true/false, 1/0, yes/no), ``timezone`` (IANA name),
  ``attributes`` (a JSON object). Columns no field reads become ``attributes``.
* campaigns: ``campaign_id`` (required) and the columns of ``campaigns``; a caller may add
  its own check of each row (the CLI checks campaigns with the rules ``campaigns add``
  applies to YAML files).
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feedwise.errors import DataError
from feedwise.localtime import validate_zone
from feedwise.schema import CAMPAIGN_COLUMNS, ITEM_COLUMNS, MAX_TEXT_CHARS, USER_COLUMNS
from feedwise.store.base import StoreBase
from feedwise.store.ingest import EXCERPT, IngestReport

#: Kind of record -> (table, key, fields a file may map).
RECORD_KINDS: dict[str, tuple[str, str, dict[str, str]]] = {
    "items": ("items", "item_id", dict(ITEM_COLUMNS)),
    "users": ("users", "user_id", {c: t for c, t in USER_COLUMNS.items()
                                   if c not in ("consent_updated_at", "consent_source")}),
    "campaigns": ("campaigns", "campaign_id", dict(CAMPAIGN_COLUMNS)),
}
CONSENT_FIELDS = ("consent_personalization", "consent_ads", "consent_analytics")
#: MovieLens-100k's 19 genre flags of ``u.item``, in file order.
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy",
                 "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical",
                 "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")


@dataclass(frozen=True)
class RecordPreset:
    """A ready-made layout of a public data set's record file."""

    mapping: dict[str, str]
    columns: tuple[str, ...] | None = None
    delimiter: str | None = None
    encoding: str | None = None
    #: 0/1 columns whose names become the row's tags where the value is 1.
    flags: tuple[str, ...] = ()


#: ``kind -> preset name -> layout`` (``--mapping NAME``).
RECORD_PRESETS: dict[str, dict[str, RecordPreset]] = {
    "items": {
        "movielens-100k": RecordPreset(
            {"item_id": "movie_id", "title": "title", "created_at": "release_date"},
            ("movie_id", "title", "release_date", "video_release_date", "imdb_url",
             *ML100K_GENRES), "|", "latin-1", ML100K_GENRES),
        "movielens-latest": RecordPreset({"item_id": "movieId", "title": "title",
                                          "tags": "genres"}),
        "lastfm": RecordPreset({"item_id": "id", "title": "name"}, delimiter="\t"),
    },
    "users": {
        "movielens-100k": RecordPreset({"user_id": "user_id"},
                                       ("user_id", "age", "gender", "occupation", "zip"), "|"),
    },
    "campaigns": {},
}


@dataclass(frozen=True)
class RecordReport(IngestReport):
    """What one record file did: an :class:`IngestReport` (rows written, repeated ids — the
    last row of an id wins —, rejects, erased users' rows skipped, columns nothing read) for
    one ``kind`` of record, with notes."""

    kind: str = ""
    notes: tuple[str, ...] = ()


@dataclass
class _Batch:
    rows: list[dict[str, Any]] = dc_field(default_factory=list)   # valid, typed
    row_no: list[int] = dc_field(default_factory=list)
    rejects: list[tuple[int, str, str, str, str | None]] = dc_field(default_factory=list)
    notes: list[str] = dc_field(default_factory=list)


def parse_record_mapping(kind: str, spec: str | Mapping[str, str] | None
                         ) -> tuple[dict[str, str], RecordPreset | None]:
    """``"item_id=id,title=name,kind==post"`` (or a preset name) -> (mapping, preset)."""
    if kind not in RECORD_KINDS:
        raise DataError(f"unknown kind of record {kind!r}; kinds are {list(RECORD_KINDS)}")
    fields = RECORD_KINDS[kind][2]
    preset = None
    if spec is None:
        mapping: dict[str, str] = {}
    elif isinstance(spec, Mapping):
        mapping = dict(spec)
    elif spec in RECORD_PRESETS[kind]:
        preset = RECORD_PRESETS[kind][spec]
        mapping = dict(preset.mapping)
    else:
        mapping = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            if "=" not in part:
                presets = ", ".join(RECORD_PRESETS[kind]) or "none"
                raise DataError(f"mapping entry {part!r} must look like field=column (or "
                                f"field==constant); {kind} presets: {presets}")
            k, v = part.split("=", 1)
            mapping[k.strip()] = v.strip()
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise DataError(f"mapping names unknown {kind} field(s) {unknown}; fields are "
                        f"{list(fields)}")
    return mapping, preset


# ---------------------------------------------------------------------------- reading
def _decode(path: Path, encoding: str | None, notes: list[str]) -> str:
    data = path.read_bytes()
    if encoding:
        return data.decode(encoding, "replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        notes.append(f"{path}: not UTF-8; read as latin-1")
        return data.decode("latin-1")


def _guess_delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in ("\t", ",", ";", "|")}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def read_table(path: Path, *, columns: list[str] | None = None, delimiter: str | None = None,
               encoding: str | None = None, batch: _Batch
               ) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """The file's column names and its rows as ``(row number, {column: value})``; lines
    that are no row (a wrong number of fields, a JSONL line that is no object) become
    rejects of ``batch``."""
    if not path.is_file():
        raise DataError(f"{path}: file not found" if not path.exists() else
                        f"{path}: not a file")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # noqa: BLE001 - one clean line
            raise DataError(f"{path}: cannot read the Parquet file ({e})") from None
        names = [str(c) for c in df.columns]
        return names, [(i + 1, dict(zip(names, r, strict=True)))
                       for i, r in enumerate(df.itertuples(index=False, name=None))]
    text = _decode(path, encoding, batch.notes)
    if suffix in (".jsonl", ".ndjson", ".json"):
        names: list[str] = []
        out = []
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                batch.rejects.append((i, "(line)", "line is not a JSON object: each line must "
                                      "be one record object", line[:EXCERPT], None))
                continue
            for k in obj:
                if k not in names:
                    names.append(str(k))
            out.append((i, obj))
        return names, out
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise DataError(f"{path}: the file is empty")
    delim = delimiter or ("\t" if suffix == ".tsv" else _guess_delimiter(lines[0]))
    # tab- and |-separated files (MovieLens, HetRec) quote nothing: a quote is text there
    quoting = csv.QUOTE_NONE if delim in ("\t", "|") else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO("\n".join(lines)), delimiter=delim, quoting=quoting)
    records = list(reader)
    if columns:
        names = list(columns)
    else:
        names = [c.strip() or f"column{i}" for i, c in enumerate(records[0])]
        records = records[1:]
    out = []
    for i, rec in enumerate(records, 1):
        if len(rec) != len(names):
            batch.rejects.append((i, "(row)", f"{len(rec)} fields where the header has "
                                  f"{len(names)}: quote a field that holds the delimiter "
                                  f"{delim!r} (or pass --columns)",
                                  delim.join(rec)[:EXCERPT], None))
            continue
        out.append((i, dict(zip(names, rec, strict=True))))
    return names, out


# ---------------------------------------------------------------------------- values
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def _blank(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and not v.strip()


def _convert(field: str, dtype: str, v: Any) -> Any:
    """The typed value of ``v`` for ``field``; raises ValueError with the fix."""
    if _blank(v):
        return None
    if dtype == "VARCHAR":
        if isinstance(v, dict | list):
            return json.dumps(v)
        return str(v).strip()
    if dtype == "DOUBLE":
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{str(v)[:40]!r} is not a number") from None
        if not math.isfinite(x):
            raise ValueError(f"{str(v)[:40]!r} is not a finite number")
        return x
    if dtype == "BOOLEAN":
        if isinstance(v, bool | np.bool_):
            return bool(v)
        s = str(v).strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise ValueError(f"{str(v)[:40]!r} is not true or false (write true/false, 1/0 or "
                         "yes/no)")
    if dtype == "TIMESTAMPTZ":
        return _time(v)
    if dtype == "VARCHAR[]":
        if isinstance(v, list | tuple | np.ndarray):
            return [str(x).strip() for x in v if not _blank(x)]
        s = str(v).strip()
        if s.startswith("["):
            try:
                got = json.loads(s)
            except ValueError:
                raise ValueError(f"{s[:40]!r} is not a JSON list") from None
            if not isinstance(got, list):
                raise ValueError(f"{s[:40]!r} is not a JSON list")
            return [str(x).strip() for x in got if not _blank(x)]
        sep = next((d for d in ("|", ";", ",") if d in s), None)
        return [p.strip() for p in (s.split(sep) if sep else [s]) if p.strip()]
    raise ValueError(f"no reader for type {dtype}")


def _time(v: Any) -> datetime:
    fix = "write ISO-8601 (2026-01-31 or 2026-01-31T12:00:00Z) or unix seconds"
    if isinstance(v, datetime | pd.Timestamp):
        ts = pd.Timestamp(v)
    else:
        s = str(v).strip()
        try:
            ts = pd.Timestamp(float(s), unit="s")
        except (TypeError, ValueError, OverflowError):
            try:
                ts = pd.Timestamp(s)
            except (TypeError, ValueError, OverflowError):
                raise ValueError(f"{s[:40]!r} is not a time: {fix}") from None
    if pd.isna(ts):
        raise ValueError(f"{str(v)[:40]!r} is not a time: {fix}")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if not pd.Timestamp("1900-01-01", tz="UTC") <= ts <= pd.Timestamp("2200-01-01", tz="UTC"):
        raise ValueError(f"{str(v)[:40]!r} is outside 1900..2200: {fix}")
    return ts.to_pydatetime()


def _rules(kind: str, row: dict[str, Any]) -> tuple[str, str] | None:
    """A rule of the kind the typed row breaks: (field, reason with the fix)."""
    if kind == "items":
        if row.get("kind") is not None and row["kind"] not in ("post", "ad"):
            return "kind", f"kind {row['kind'][:40]!r} is not post or ad"
        if row.get("text") is not None and len(row["text"]) > MAX_TEXT_CHARS:
            return "text", f"text of {len(row['text'])} characters: at most {MAX_TEXT_CHARS}"
    if kind == "users":
        if row.get("timezone") is not None:
            try:
                validate_zone(row["timezone"])
            except DataError as e:
                return "timezone", str(e)
        if row.get("attributes") is not None:
            try:
                attrs = json.loads(row["attributes"])
            except ValueError:
                attrs = None
            if not isinstance(attrs, dict):
                return "attributes", "attributes must be a JSON object ({\"age\": 30})"
    if kind == "campaigns":
        for f in ("bid", "daily_budget", "total_budget"):
            if row.get(f) is not None and row[f] <= 0:
                return f, f"{f} {row[f]:g} must be above 0"
    return None


def parse_records(kind: str, path: Path, mapping: dict[str, str], *,
                  preset: RecordPreset | None = None, columns: list[str] | None = None,
                  delimiter: str | None = None) -> tuple[_Batch, tuple[str, ...], list[str]]:
    """Read and check a record file: (batch, ignored columns, mapped fields)."""
    table, key, fields = RECORD_KINDS[kind]
    batch = _Batch()
    cols = columns or (list(preset.columns) if preset and preset.columns else None)
    delim = delimiter or (preset.delimiter if preset else None)
    names, rows = read_table(path, columns=cols, delimiter=delim,
                             encoding=preset.encoding if preset else None, batch=batch)
    for f, col in mapping.items():
        if not col.startswith("=") and col not in names:
            raise DataError(f"{path}: mapping {f}={col}: the file has no column {col!r}; "
                            f"columns are {names[:50]}")
    # fields read from a column of the same name, unless mapped elsewhere
    source = {f: mapping.get(f, f) for f in fields if mapping.get(f, f) in names
              or mapping.get(f, "").startswith("=")}
    flags = tuple(c for c in (preset.flags if preset else ()) if c in names)
    if flags:
        source.pop("tags", None)
    if key not in source:
        raise DataError(f"{path}: no column for {key}, which every {kind[:-1]} needs; map it "
                        f"with --mapping {key}=COLUMN (columns: {names[:50]})")
    used = set(source.values()) | set(flags)
    extra = [c for c in names if c not in used]
    attrs_from_extra = kind == "users" and "attributes" not in source and bool(extra)
    ignored = () if attrs_from_extra else tuple(extra)
    mapped = list(source) + (["tags"] if flags else []) + \
        (["attributes"] if attrs_from_extra else [])
    for no, raw in rows:
        out: dict[str, Any] = {}
        bad: tuple[str, str] | None = None
        for f, col in source.items():
            v = col[1:] if col.startswith("=") else raw.get(col)
            try:
                out[f] = _convert(f, fields[f], v)
            except ValueError as e:
                bad = (f, f"{e} (column {col!r})")
                break
        if bad is None and out.get(key) is None:
            bad = (key, f"no {key}: every row needs one (column {source[key]!r})")
        if bad is None and flags:
            out["tags"] = [c for c in flags if str(raw.get(c, "")).strip() in ("1", "1.0")]
        if bad is None and attrs_from_extra:
            out["attributes"] = json.dumps({c: _jsonable(raw.get(c)) for c in extra
                                            if not _blank(raw.get(c))})
        if bad is None:
            bad = _rules(kind, out)
        if bad is not None:
            rawtext = json.dumps({str(k): _jsonable(v) for k, v in raw.items()},
                                 default=str)[:EXCERPT]
            batch.rejects.append((no, bad[0], bad[1], rawtext,
                                  out.get("user_id") if kind == "users" else None))
            continue
        batch.rows.append(out)
        batch.row_no.append(no)
    return batch, ignored, mapped


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


# ---------------------------------------------------------------------------- store part
class RecordFiles(StoreBase):
    """Items, users and campaigns from files (part of :class:`~feedwise.store.EventStore`)."""

    def ingest_records(self, kind: str, source: str | Path, *,
                       mapping: str | Mapping[str, str] | None = None,
                       columns: list[str] | None = None, delimiter: str | None = None,
                       check: Callable[[dict[str, Any]], tuple[str, str] | None] | None = None,
                       source_name: str | None = None) -> RecordReport:
        """Validate and upsert ``kind`` records (``items``, ``users``, ``campaigns``) from a
        file: each valid row inserts its record or updates the fields the file maps; each
        bad row is a reject naming file, row, field and fix; rows of erased users skip.

        Args:
            kind: ``items``, ``users`` or ``campaigns``.
            source: CSV/TSV/JSONL/Parquet file.
            mapping: ``field=column`` pairs (``field==constant``) or a preset of the kind
                (:data:`RECORD_PRESETS`).
            columns: Column names of a headerless delimited file.
            delimiter: Field delimiter (default: ``.tsv`` tab, else guessed from line 1).
            check: Called with each typed row; a ``(field, reason)`` makes it a reject (and
                may fill the row in, e.g. a campaign's ``spec``).
            source_name: Name recorded in ``rejects`` (default: the path).

        Raises:
            DataError: The file cannot be read, or the mapping names an unknown field or a
                missing column; never for a bad row.
        """
        t0 = time.perf_counter()
        path = Path(source)
        name = source_name or str(path)
        m, preset = parse_record_mapping(kind, mapping)
        batch, ignored, mapped = parse_records(kind, path, m, preset=preset,
                                               columns=columns, delimiter=delimiter)
        table, key, fields = RECORD_KINDS[kind]
        if check is not None:
            keep_rows, keep_no = [], []
            for no, row in zip(batch.row_no, batch.rows, strict=True):
                bad = check(row)
                if bad is None:
                    keep_rows.append(row)
                    keep_no.append(no)
                else:
                    batch.rejects.append((no, bad[0], bad[1],
                                          json.dumps(row, default=str)[:EXCERPT], None))
            batch.rows, batch.row_no = keep_rows, keep_no
            mapped = list(dict.fromkeys(mapped + [c for r in batch.rows[:1] for c in r]))
        erased = 0
        if kind == "users":
            for r in batch.rows:
                r["user_id"] = self.user_key(r["user_id"])
            gone = self.erased_ids({r["user_id"] for r in batch.rows})  # type: ignore[attr-defined]
            if gone:
                before = len(batch.rows)
                batch.rows = [r for r in batch.rows if r["user_id"] not in gone]
                erased = before - len(batch.rows)
            batch.rejects = [(no, f, why, raw, self.user_key(u) if u else None)
                             for no, f, why, raw, u in batch.rejects]
        # the last row of an id wins; earlier ones count as duplicates
        last = {r[key]: r for r in batch.rows}
        duplicates = len(batch.rows) - len(last)
        rows = list(last.values())
        now = datetime.now(UTC)
        cols = [f for f in fields if f in mapped]
        consent = [f for f in CONSENT_FIELDS if f in cols]
        if kind == "users" and consent:
            cols += ["consent_updated_at", "consent_source"]
            for r in rows:
                r["consent_updated_at"] = now
                r["consent_source"] = f"ingest:{name}"[:200]
        with self.transaction() as c:
            if rows:
                types = {**fields, "consent_updated_at": "TIMESTAMPTZ",
                         "consent_source": "VARCHAR"}
                df = pd.DataFrame([{col: r.get(col) for col in cols} for r in rows],
                                  columns=cols).astype(object)
                df = df.where(pd.notna(df), None)
                c.register("_fw_records", df)
                try:
                    names = ", ".join(f'"{col}"' for col in cols)
                    casts = ", ".join(f'CAST("{col}" AS {types[col]})' for col in cols)
                    sets = ", ".join(f'"{col}" = excluded."{col}"' for col in cols
                                     if col != key)
                    action = f"DO UPDATE SET {sets}" if sets else "DO NOTHING"
                    c.execute(f"INSERT INTO {table} ({names}) SELECT {casts} FROM _fw_records "
                              f"ON CONFLICT ({key}) {action}")
                    for flag in consent:
                        c.execute(f"""INSERT INTO consent_log SELECT user_id, '{flag}',
                            CAST("{flag}" AS BOOLEAN), consent_source, consent_updated_at
                            FROM _fw_records WHERE "{flag}" IS NOT NULL""")
                finally:
                    c.unregister("_fw_records")
            if batch.rejects:
                rej = pd.DataFrame(
                    [{"source": name, "row": no, "field": f, "reason": why, "raw": raw,
                      "rejected_at": now, "user_id": u}
                     for no, f, why, raw, u in sorted(batch.rejects, key=lambda x: x[0])])
                c.register("_fw_rec_rejects", rej)
                try:
                    c.execute("""INSERT INTO rejects (source, "row", field, reason, raw,
                        rejected_at, user_id) SELECT source, CAST("row" AS BIGINT),
                        field, reason, raw, CAST(rejected_at AS TIMESTAMPTZ), user_id
                        FROM _fw_rec_rejects""")
                finally:
                    c.unregister("_fw_rec_rejects")
        return RecordReport(name, len(rows), duplicates, len(batch.rejects),
                            time.perf_counter() - t0, erased=erased, ignored_columns=ignored,
                            kind=kind, notes=tuple(batch.notes))
