"""``POST /v1/events``: a batch of events as a JSON array or NDJSON.

Every row is checked; valid rows are stored and each invalid row is reported with its index
in the batch, the field at fault and the reason. Events are idempotent by ``event_id``: a
row without one gets an id derived from its content, so a client that retries a batch
(after a timeout, say) never stores an event twice — the retry answers ``duplicates``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from feedwise.schema import EVENT_COLUMNS, Event
from feedwise.server.deps import IngestKey, State
from feedwise.server.routes._common import ID_MAX, await_future, is_text
from feedwise.server.writer import EventRow, RowError

router = APIRouter(prefix="/v1/events", tags=["events"])

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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_body(body: bytes, content_type: str) -> tuple[list[Any], list[RowError]]:
    """The batch's rows (JSON array or NDJSON) and NDJSON lines that are not JSON."""
    ndjson = any(t in content_type for t in NDJSON_TYPES)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "the body is not UTF-8") from None
    if not ndjson:
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except ValueError as e:
            raise HTTPException(400, f"the body is not valid JSON ({e}); send a JSON array of "
                                     "events or NDJSON with Content-Type application/x-ndjson"
                                ) from None
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise HTTPException(422, "the body must be a JSON array of event objects")
        return data, []
    rows: list[Any] = []
    errors: list[RowError] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line, parse_constant=_reject_constant))
        except ValueError as e:
            errors.append(RowError(len(rows), "", f"line is not valid JSON: {e}"))
            rows.append(None)
    return rows, errors


_FIELD_SET = frozenset(_FIELDS)
_MAX_LEN = {f: ID_MAX if f.endswith("_id") else _TEXT_MAX for f in _FIELDS}


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
        digest = hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
        row["event_id"] = "api-" + digest[:32]
    else:
        row["event_id"] = row["event_id"].strip()
    return row


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise HTTPException(413, f"the body is larger than {limit} bytes; send smaller batches")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body is larger than {limit} bytes; send smaller "
                                     "batches")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("", response_model=EventsAccepted, summary="Ingest a batch of events",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"type": "array", "items": _EVENT_SCHEMA}},
                 "application/x-ndjson": {"schema": {"type": "string"}}}}},
             responses={400: {"description": "The body is not JSON"},
                        413: {"description": "Too many events or bytes"}})
async def post_events(request: Request, state: State, key: IngestKey) -> EventsAccepted:
    """Store a batch of events; report invalid rows by index, field and reason.

    Send a JSON array of events, or NDJSON with ``Content-Type: application/x-ndjson``.
    Retrying a batch is safe: rows already stored (same ``event_id``, or same content when
    no id is given) count as ``duplicates`` and are not stored again.
    """
    s = state.settings
    body = await _read_body(request, s.max_body_bytes)
    data, errors = parse_body(body, request.headers.get("content-type", ""))
    if len(data) > s.max_batch_events:
        raise HTTPException(413, f"{len(data)} events in one batch; the limit is "
                                 f"{s.max_batch_events}")
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
    accepted = duplicates = 0
    if rows:
        # never block the event loop: a full writer queue answers 503 at once
        fut = state.writer.submit_events(rows, indices, timeout=0)
        result = await await_future(fut, s.write_timeout_s)
        accepted, duplicates = result.accepted, result.duplicates
        errors.extend(result.errors)
    errors.sort(key=lambda e: e.index)
    return EventsAccepted(received=len(data), accepted=accepted, duplicates=duplicates,
                          rejected=len(errors),
                          errors=[RowErrorOut(index=e.index, field=e.field, reason=e.reason)
                                  for e in errors])
