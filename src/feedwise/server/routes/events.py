"""``POST /v1/events``: a batch of events as a JSON array or NDJSON.

Every row is checked; valid rows are stored and each invalid row is reported with its index
in the batch, the field at fault and the reason. Events are idempotent by ``event_id``: a
row without one gets an id derived from its content, so a client that retries a batch
(after a timeout, say) never stores an event twice — the retry answers ``duplicates`` to an
``admin`` key and ``accepted`` to any other (an ingest key must not learn which ids exist).

A body is never decoded on the event loop. A JSON array of plain events (known fields,
strings or numbers, a flat ``context``: what clients send) under 256 KiB is checked from
its bytes in one pass (:func:`plain_columns`, msgspec) and makes exactly the rows the
checked path would, already as the columns the writer lands. Any other body takes the
checked path, which never decodes a body that breaks a limit that can be checked first
(bytes and NDJSON lines while it streams in, depth and array rows by a C-speed scan: see
:mod:`feedwise.server.bodies`) and reports each bad row.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from feedwise.schema import EVENT_COLUMNS, MAX_TEXT_CHARS, Event
from feedwise.server.bodies import (
    MAX_JSON_DEPTH,
    WHOLE_MAX,
    loads,
    read_body,
    scan_json,
    too_deep,
)
from feedwise.server.deps import IngestKey, State
from feedwise.server.routes._common import ID_MAX, await_future, is_text
from feedwise.server.settings import Settings
from feedwise.server.writer import (
    ERASED_REASON,
    EventColumns,
    EventRow,
    EventsResult,
    RowError,
    Writer,
    WriterClosedError,
    columns_of,
)
from feedwise.store.ingest import STORED_CONFLICT

router = APIRouter(prefix="/v1/events", tags=["events"])
#: A worker's ``POST /v1/events`` (server/workers.py): the owner stores what it reads.
relay_router = APIRouter(prefix="/v1/events", tags=["events"])

_FIELDS = tuple(EVENT_COLUMNS)
_TEXT_MAX = 4096
NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines",
                "application/ndjson")


class RowErrorOut(BaseModel):
    """One row that was not stored."""

    index: int
    field: str
    reason: str


class EventsAccepted(BaseModel):
    """What happened to a batch."""

    received: int
    accepted: int
    duplicates: int
    rejected: int
    errors: list[RowErrorOut]


def _inline(schema: dict) -> dict:
    defs = schema.pop("$defs", {})

    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            if "$ref" in x:
                return walk(defs[x["$ref"].split("/")[-1]])
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x

    return walk(schema)


_EVENT_SCHEMA = _inline(Event.model_json_schema())

#: Batches are decoded and checked on this one thread, in turn. On the default pool (40
#: threads) sixteen concurrent batches took the GIL in turns with each other, the writer and
#: the event loop: a batch of 500 rows (3.5 ms of CPU) waited ~115 ms for its slices, and the
#: writer's every statement waited behind them too.
_DECODER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feedwise-events-decode")


def parse_body(body: bytes, content_type: str, max_rows: int | None = None
               ) -> tuple[list[Any], list[RowError]]:
    """The batch's rows (JSON array or NDJSON) and NDJSON lines that are not JSON.

    Linear C-speed checks come first (:func:`~feedwise.server.bodies.scan_json`): a JSON body
    nested deeper than :data:`~feedwise.server.bodies.MAX_JSON_DEPTH` is refused (400), an
    array of more than ``max_rows`` elements too (413), both before anything is decoded; an
    NDJSON line nested too deep is reported as that row's error. Runs on a worker thread.
    """
    ndjson = any(t in content_type for t in NDJSON_TYPES)
    st = scan_json(body, lines=ndjson)  # before anything is decoded
    if not ndjson:
        if st.depth > MAX_JSON_DEPTH:
            raise HTTPException(400, too_deep())
        if max_rows is not None and st.rows > max_rows:
            raise HTTPException(413, f"{st.rows} events in one batch; the limit is {max_rows}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "the body is not UTF-8") from None
    if not ndjson:
        try:
            data = loads(text)
        except ValueError as e:
            raise HTTPException(400, f"the body is not valid JSON ({e}); send a JSON array of "
                                     "events or NDJSON with Content-Type application/x-ndjson"
                                ) from None
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise HTTPException(422, "the body must be a JSON array of event objects")
        return data, []
    deep = st.deep_lines
    rows: list[Any] = []
    errors: list[RowError] = []
    for n, line in enumerate(text.split("\n")):  # NDJSON lines end with \n only
        if not line.strip():
            continue
        if n in deep:
            errors.append(RowError(len(rows), "", too_deep("the line")))
            rows.append(None)
            continue
        try:
            rows.append(loads(line))
        except ValueError as e:
            errors.append(RowError(len(rows), "", f"line is not valid JSON: {e}"))
            rows.append(None)
    return rows, errors


_FIELD_SET = frozenset(_FIELDS)
_MAX_LEN = {f: ID_MAX if f.endswith("_id") else _TEXT_MAX for f in _FIELDS}
_MAX_LEN["text"] = MAX_TEXT_CHARS  # a comment's text: the store's limit (schema)


def prepare_row(obj: Any, index: int) -> EventRow | RowError:
    """One client row as store text columns, or why it cannot be stored."""
    if not isinstance(obj, dict):
        return RowError(index, "", "each event must be a JSON object")
    if not _FIELD_SET.issuperset(obj):
        unknown = str(next(k for k in obj if k not in _FIELD_SET))[:64]
        unknown = unknown.encode("utf-8", "backslashreplace").decode("utf-8")  # surrogates
        return RowError(index, unknown, f"unknown field {unknown!r}; fields are {list(_FIELDS)}")
    row: EventRow = dict.fromkeys(_FIELDS)
    for f, v in obj.items():  # only the fields sent; the rest stay None
        if v is None:
            continue
        if f == "context":
            if not isinstance(v, dict):
                return RowError(index, f, "context must be a JSON object")
            row[f] = json.dumps(v, separators=(",", ":"))
            continue
        if type(v) is str:
            s = v
        elif isinstance(v, dict | list | bool):
            return RowError(index, f, f"{f} must be a string or a number, not "
                                      f"{type(v).__name__}")
        else:
            s = str(v)
        if len(s) > _MAX_LEN[f]:
            return RowError(index, f, f"{f} is too long ({len(s)} characters)")
        if not is_text(s):
            return RowError(index, f, f"{f} holds a lone UTF-16 surrogate (an unpaired "
                                      "\\ud800-\\udfff escape); send valid Unicode text")
        row[f] = s
    if not (row["event_id"] or "").strip():
        row["event_id"] = _derived_id(obj)
    else:
        row["event_id"] = row["event_id"].strip()
    return row


_Scalar = str | int | float | None


def _plain(f: str) -> Any:
    return Annotated[str, msgspec.Meta(max_length=_MAX_LEN[f])] | int | float | None


#: A batch every row of which is plain: known fields only, strings or numbers (a flat
#: ``context`` object), nothing too long. msgspec checks and decodes it from the bytes in
#: one pass, and the columns are read off its objects a column at a time (C-speed maps):
#: well under a microsecond a row, against 2.4-3.3 us for the scan, the decode and
#: :func:`prepare_row`, whose rows the writer would transpose again.
_PLAIN_BATCH = msgspec.json.Decoder(list[msgspec.defstruct(  # type: ignore[misc]
    "PlainEvent",
    [(f, dict[str, _Scalar | bool] | None if f == "context" else _plain(f), None)
     for f in _FIELDS],
    forbid_unknown_fields=True)])
_AS_SENT = msgspec.json.Decoder()
_VALUES = msgspec.structs.astuple  # an event's values in the order of _FIELDS
_TEXT = frozenset((str, type(None)))
_COMPACT = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps(v, separators=...)


def plain_columns(body: bytes) -> EventColumns | None:
    """The events of a JSON array of plain events as columns, exactly as
    :func:`prepare_row` makes their rows, or None when any row is not plain (the batch then
    takes the checked path, which reports each row's fault). Bodies over
    :data:`~feedwise.server.bodies.WHOLE_MAX` bytes are left to that path too: it decodes
    them element by element, never holding the GIL for long."""
    if len(body) > WHOLE_MAX:
        return None
    try:
        events = _PLAIN_BATCH.decode(body)
    except msgspec.MsgspecError:  # not JSON, not plain, a lone surrogate...
        return None
    if not events:
        return {f: [] for f in _FIELDS}
    values = zip(*map(_VALUES, events), strict=True)  # transposed in C
    cols: EventColumns = dict(zip(_FIELDS, map(list, values), strict=True))
    for f, col in cols.items():
        if col.count(None) == len(col) or (f != "context" and _TEXT.issuperset(map(type, col))):
            continue  # nothing sent, or text only: as it is
        if f == "context":
            col[:] = [None if v is None else _COMPACT(v) for v in col]
            continue
        col[:] = [v if v is None or type(v) is str else str(v) for v in col]  # numbers
        if max(map(len, filter(None, col)), default=0) > _MAX_LEN[f]:
            return None
    ids = cols["event_id"]
    ids[:] = [e.strip() if e is not None else "" for e in ids]
    if not all(ids):  # no id: one derived from the row as sent
        sent = _AS_SENT.decode(body)
        for n, e in enumerate(ids):
            if not e:
                ids[n] = _derived_id(sent[n])
    return cols


def _derived_id(obj: dict) -> str:
    """The id of an event sent without one: from its content, so a retry repeats it."""
    return "api-" + hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()
                                   ).hexdigest()[:32]


def _prepare(body: bytes, content_type: str, max_rows: int
             ) -> tuple[int, EventColumns, list[int], list[RowError]]:
    """Decode and check a batch (on a worker thread): rows read, valid rows as columns and
    their indices, errors."""
    ndjson = any(t in content_type for t in NDJSON_TYPES)
    plain = None if ndjson else plain_columns(body)
    if plain is None:
        n, rows, indices, errors = checked_rows(body, content_type, max_rows)
        return n, columns_of(rows), indices, errors
    n = len(plain["event_id"])
    if n > max_rows:
        raise HTTPException(413, f"{n} events in one batch; the limit is {max_rows}")
    return n, plain, list(range(n)), []


def checked_rows(body: bytes, content_type: str, max_rows: int
                 ) -> tuple[int, list[EventRow], list[int], list[RowError]]:
    """:func:`_prepare` for any body, as rows: scan, decode, then check row by row."""
    data, errors = parse_body(body, content_type, max_rows)
    if len(data) > max_rows:
        raise HTTPException(413, f"{len(data)} events in one batch; the limit is {max_rows}")
    bad_lines = {e.index for e in errors}
    rows: list[EventRow] = []
    indices: list[int] = []
    for i, obj in enumerate(data):
        if i in bad_lines:
            continue
        r = prepare_row(obj, i)
        if isinstance(r, RowError):
            errors.append(r)
        else:
            rows.append(r)
            indices.append(i)
    return len(data), rows, indices, errors


def _answer_for_ingest_key(ids: list[Any], indices: list[int], stored: list[RowError]
                           ) -> tuple[int, int, list[RowError]]:
    """``accepted``, ``duplicates`` and the store's errors as a key without ``admin`` sees
    them: nothing in the answer depends on what the store held before.

    A row already stored (a retry, or someone else's event with that id), a row whose id
    clashes with a stored event of other content, and a row of an erased user all count as
    ``accepted`` (the store holds that id, or dropped the row on purpose; the clash is kept
    in ``rejects`` for the operator). ``duplicates`` counts only rows that repeat an earlier
    row of the same batch, and a clash with an earlier row of the batch is still reported.
    """
    if not stored:  # the usual batch: one set of its ids, no per-row dicts
        unique = len(set(ids))
        return unique, len(ids) - unique, []
    id_of = dict(zip(indices, ids, strict=True))
    first: dict[str | None, int] = {}
    for i in indices:
        first.setdefault(id_of[i], i)

    def hidden(e: RowError) -> bool:
        if e.reason == ERASED_REASON:
            return True
        # an id stored with other content: told only when nothing earlier in the batch has it
        return e.field == "event_id" and STORED_CONFLICT in e.reason and \
            first.get(id_of.get(e.index), e.index) >= e.index

    errors = [e for e in stored if not hidden(e)]
    failed = {e.index for e in errors}
    ids = [id_of[i] for i in indices if i not in failed]
    unique = len(set(ids))
    return unique, len(ids) - unique, errors


@router.post("", response_model=EventsAccepted, summary="Ingest a batch of events",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"type": "array", "items": _EVENT_SCHEMA}},
                 "application/x-ndjson": {"schema": {"type": "string"}}}}},
             responses={400: {"description": "The body is not JSON, or nests too deep"},
                        413: {"description": "Too many events, lines or bytes"}})
async def post_events(request: Request, state: State, key: IngestKey) -> EventsAccepted:
    """Store a batch of events; report invalid rows by index, field and reason.

    Send a JSON array of events, or NDJSON with ``Content-Type: application/x-ndjson``.
    Retrying a batch is safe: rows already stored (same ``event_id``, or same content when
    no id is given) are not stored again. An ``admin`` key sees them as ``duplicates``; any
    other key sees them, and rows of erased users, as ``accepted``, so the answer never
    tells whether an id was stored before.
    """
    s = state.settings
    body, content_type = await _read_batch(request, s)
    # decoding and validation never run on the event loop
    received, cols, indices, errors = await asyncio.wrap_future(_DECODER.submit(
        _prepare, body, content_type, s.max_batch_events))
    del body
    result = None
    if indices:
        # never block the event loop: a full writer queue answers 503 at once
        fut = state.writer.submit_events(cols, indices, timeout=0)
        result = await await_future(fut, s.write_timeout_s)
    return _answer(received, cols["event_id"], indices, errors, result, _sees_stored(key))


@relay_router.post("", response_model=EventsAccepted, include_in_schema=False)
async def post_events_to_a_worker(request: Request, state: State, key: IngestKey
                                  ) -> EventsAccepted:
    """``POST /v1/events`` answered by a worker (``feedwise serve --workers``): the key and
    the body's limits are checked here, the body is decoded, checked and stored by the
    owner (:func:`relayed`, through :mod:`feedwise.server.relay`)."""
    s = state.settings
    body, content_type = await _read_batch(request, s)
    fut = state.writer.relay_batch((body, content_type, s.max_batch_events,
                                    _sees_stored(key)))
    del body
    out = await await_future(fut, s.write_timeout_s)
    if isinstance(out, EventsAccepted):
        return out
    raise HTTPException(*out)


async def _read_batch(request: Request, s: Settings) -> tuple[bytes, str]:
    """The body under the byte limit (and the NDJSON line limit), read as it streams in,
    nothing decoded; its content type."""
    content_type = request.headers.get("content-type", "")
    ndjson = any(t in content_type for t in NDJSON_TYPES)
    body = await read_body(request.stream(), request.headers.get("content-length"),
                           s.max_body_bytes, s.max_batch_events if ndjson else None)
    if body.too_many_lines:
        raise HTTPException(413, f"more than {s.max_batch_events} lines in one NDJSON batch; "
                                 f"the limit is {s.max_batch_events} events")
    return body.data, content_type


def _sees_stored(key: Any) -> bool:
    """Whether the answer may tell which ids were stored before (no key, or ``admin``)."""
    return key is None or key.allows("admin")


def _answer(received: int, ids: list[Any], indices: list[int],
            errors: list[RowError], result: EventsResult | None, sees_stored: bool
            ) -> EventsAccepted:
    accepted = duplicates = 0
    if result is not None:
        if sees_stored:
            accepted, duplicates = result.accepted, result.duplicates
            errors.extend(result.errors)
        else:
            accepted, duplicates, stored = _answer_for_ingest_key(ids, indices, result.errors)
            errors.extend(stored)
    errors.sort(key=lambda e: e.index)
    return EventsAccepted(received=received, accepted=accepted, duplicates=duplicates,
                          rejected=len(errors),
                          errors=[RowErrorOut(index=e.index, field=e.field, reason=e.reason)
                                  for e in errors])


def relayed(writer: Writer) -> Callable[[Any, Callable[[Any], None]], None]:
    """The owner's side of a batch a worker read (:func:`post_events_to_a_worker`): decode
    and check it as :func:`post_events` does, on the same decoding thread (one batch
    decoded at a time in this process, whichever way it came), hand the rows to ``writer``
    and reply the answer, or ``(status, detail)`` for an HTTP error."""

    def handle(payload: Any, reply: Callable[[Any], None]) -> None:
        body, content_type, max_rows, sees_stored = payload
        _DECODER.submit(_prepare, body, content_type, max_rows).add_done_callback(
            lambda f: _store(f, writer, sees_stored, reply))

    return handle


def _store(decoded: Future, writer: Writer, sees_stored: bool,
           reply: Callable[[Any], None]) -> None:
    got = _result(decoded, reply, "decoding the events")
    if got is None:
        return
    received, cols, indices, errors = got
    ids = cols["event_id"]
    if not indices:
        return reply(_answer(received, ids, indices, errors, None, sees_stored))
    try:
        fut = writer.submit_events(cols, indices, timeout=0)
    except WriterClosedError as e:
        return reply((503, str(e)))

    def done(f: Future) -> None:
        result = _result(f, reply, "storing the events")
        if result is not None:
            reply(_answer(received, ids, indices, errors, result, sees_stored))

    fut.add_done_callback(done)
    return None


def _result(fut: Future, reply: Callable[[Any], None], what: str) -> Any:
    """``fut``'s result, or None once the HTTP error it raised is replied."""
    try:
        return fut.result()
    except HTTPException as e:
        reply((e.status_code, e.detail))
    except WriterClosedError as e:
        reply((503, str(e)))
    except Exception as e:  # noqa: BLE001 - the worker answers it
        reply((500, str(e) or f"{what} failed"))
    return None
