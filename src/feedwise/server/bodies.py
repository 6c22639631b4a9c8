"""Request bodies: read under limits while they stream in, checked before they are decoded.

One request must never stall the others: the service runs every request on one event loop,
so nothing proportional to a body's size may run there except reading it. The rules:

- **Bytes**: a body larger than ``max_body_bytes`` is refused (413) from its
  ``Content-Length`` or as soon as the stream passes the limit.
- **Lines** (NDJSON): newlines are counted chunk by chunk as the body arrives (``bytes.count``,
  C speed); past ``max_batch_events`` lines the rest is read and dropped unbuffered and the
  request answers 413 without decoding anything.
- **Depth and rows** (JSON): :func:`scan_json` finds the nesting depth of the body (or of each
  NDJSON line) and the number of elements of a top-level array with a handful of C-speed
  passes (``bytes.translate`` and numpy), before any Python object is built. Deeper than
  :data:`MAX_JSON_DEPTH` answers 400 (an NDJSON line: that row is reported, the rest land);
  more rows than ``max_batch_events`` answers 413.
- **Decoding and validation** run on a worker thread (``run_in_threadpool``), never on the
  event loop.

:class:`BodyGuard` applies the byte and depth limits to every other route's JSON body (items,
users, campaigns) before FastAPI decodes it, so a deep or huge body never reaches it:
FastAPI decodes bodies on the event loop, and before the route's key is checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool

#: Deepest nesting of objects and arrays a request body may have (an NDJSON line counts on
#: its own; ``{"a": {"b": [1]}}`` is 3 deep). Python's decoder recurses once per level and
#: pydantic refuses to serialise past a few hundred, so a documented, small limit keeps every
#: stored value readable back.
MAX_JSON_DEPTH = 32

_QUOTE, _COMMA, _NEWLINE = ord('"'), ord(","), ord("\n")
_OPENERS = np.zeros(256, np.int8)
_OPENERS[[ord("["), ord("{")]] = 1
_OPENERS[[ord("]"), ord("}")]] = -1
#: every byte but the ones structure is made of (brackets, commas, quotes, line ends)
_NOISE = bytes(sorted(set(range(256)) - set(b'[]{},"\n')))
_SCAN_BLOCK = 1 << 20  # numpy works on blocks of 1 Mi structural characters (~20 MB)


def too_deep(where: str = "the body") -> str:
    return (f"{where} nests objects/arrays deeper than {MAX_JSON_DEPTH} levels; send flatter "
            "JSON")


@dataclass(frozen=True)
class Structure:
    """What :func:`scan_json` found, before decoding."""

    #: Deepest nesting of the body (with ``lines``: of its deepest line).
    depth: int
    #: Elements of a top-level array (1 for any other value; 0 for ``[]`` or nothing).
    rows: int
    #: With ``lines``: 0-based numbers (``\\n``-separated) of the lines nested too deep.
    deep_lines: frozenset[int] = frozenset()


def scan_json(body: bytes, *, lines: bool = False, max_depth: int = MAX_JSON_DEPTH
              ) -> Structure:
    """Nesting depth and top-level row count of a JSON (or NDJSON) body, without decoding.

    Escaped backslashes, then escaped quotes are dropped (so an escaped quote never ends a
    string), then every byte but brackets, commas, quotes and line ends; what lies between
    two quotes of a line is a string and does not count; depth is the running sum of the
    brackets left. Linear in the body and in C (``bytes.translate``, numpy, in blocks of
    1 Mi characters): tens of ms per MiB at worst. Broken JSON gets some answer; the
    decoder rejects it afterwards.
    """
    s = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOISE)
    depth, commas, deep = 0, 0, set()
    level = 0  # depth before the block
    line_no, line_base, quotes = 0, 0, 0  # current line, its starting depth, quotes seen in it
    for start in range(0, len(s), _SCAN_BLOCK):
        a = np.frombuffer(s, np.uint8, count=min(_SCAN_BLOCK, len(s) - start), offset=start)
        nl = np.flatnonzero(a == _NEWLINE)
        # inside a string: an odd number of quotes since the line began (JSON strings never
        # hold a raw line end, so a broken line cannot swallow the next ones)
        qc = np.cumsum(a == _QUOTE, dtype=np.int32)
        line_of = np.cumsum(a == _NEWLINE, dtype=np.int32)
        q_base = np.concatenate((np.array([-quotes], np.int32), qc[nl]))[line_of]
        inside = ((qc - q_base) & 1).astype(bool)
        step = _OPENERS[a]
        step[inside] = 0
        d = np.cumsum(step, dtype=np.int32)
        d += level
        if lines:
            # each line's depth is relative to where it started (a broken line that leaves
            # brackets open does not make the next ones deep); a segment starting at a line
            # end holds that line end, whose depth is the new line's base
            bases = np.concatenate((np.array([line_base], np.int32), d[nl]))
            seg_max = np.maximum.reduceat(d, np.concatenate(([0], nl))) - bases
            over = np.flatnonzero(seg_max > max_depth)
            deep.update((line_no + over).tolist())
            depth = max(depth, int(seg_max.max()))
            line_no += len(nl)
            if len(nl):
                line_base = int(d[nl[-1]])
        else:
            depth = max(depth, int(d.max()))
            commas += int(np.count_nonzero((a == _COMMA) & ~inside & (d == 1)))
        level = int(d[-1])
        quotes = int(qc[-1] - q_base[-1])
        if depth > max_depth and not lines:
            break  # the answer is known: too deep
    if lines:
        return Structure(depth, 0, frozenset(deep))
    stripped = body.strip()
    if not stripped:
        rows = 0
    elif stripped[:1] == b"[":
        rows = commas + 1 if re.fullmatch(rb"\[\s*\]", stripped) is None else 0
    else:
        rows = 1
    return Structure(depth, rows)


def depth_of(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of a decoded value, counting no further than ``limit + 1``
    (iterative: a value too deep for recursion is measured too)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            children = v.values()
        elif isinstance(v, list | tuple):
            children = v
        else:
            continue
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        stack.extend((c, d + 1) for c in children)
    return deepest


def clip_depth(value: Any, limit: int = MAX_JSON_DEPTH,
               marker: str = f"<nested deeper than {MAX_JSON_DEPTH} levels>") -> Any:
    """``value`` with every object/array below ``limit`` levels replaced by ``marker``
    (for values stored before the limit existed; iterative)."""
    if depth_of(value, limit) <= limit:
        return value

    def copy(v: Any, d: int) -> Any:
        if not isinstance(v, dict | list):
            return v
        if d > limit:
            return marker
        if isinstance(v, dict):
            return {k: copy(x, d + 1) for k, x in v.items()}
        return [copy(x, d + 1) for x in v]

    return copy(value, 1)  # recursion depth is bounded by ``limit``


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_WS = re.compile(r"[ \t\n\r]*")
WHOLE_MAX = 256 * 1024  # characters decoded in one C call (holding the GIL ~2-4 ms)


def loads(text: str) -> Any:
    """``json.loads`` refusing ``NaN``/``Infinity`` (a recursion error counts as too deep).

    A top-level array is decoded one element at a time: one C call holds the GIL until it
    returns, so decoding a 16 MiB array in one call (on any thread) would stall the event
    loop for its whole length; element by element, the loop gets its turn in between. A
    body under :data:`WHOLE_MAX` characters (a batch of a few hundred events: about a
    millisecond in C) is decoded in one call, which is twice as fast.
    """
    try:
        i = _WS.match(text).end()
        if not text.startswith("[", i) or len(text) <= WHOLE_MAX:
            return _DECODER.decode(text)
        out: list[Any] = []
        i = _WS.match(text, i + 1).end()
        if text.startswith("]", i):
            i += 1
        else:
            while True:
                value, i = _DECODER.raw_decode(text, i)
                out.append(value)
                i = _WS.match(text, i).end()
                if text.startswith(",", i):
                    i = _WS.match(text, i + 1).end()
                elif text.startswith("]", i):
                    i += 1
                    break
                else:
                    raise json.JSONDecodeError("Expecting ',' delimiter", text, i)
        i = _WS.match(text, i).end()
        if i != len(text):
            raise json.JSONDecodeError("Extra data", text, i)
        return out
    except RecursionError:
        raise ValueError(too_deep()) from None


# ---------------------------------------------------------------------- reading
@dataclass
class Body:
    """A request body as read by :func:`read_body`."""

    data: bytes
    #: Lines seen (``\\n``-separated; counted only when ``max_lines`` was given).
    lines: int = 0
    #: Set when the body had more lines than allowed: ``data`` is then incomplete.
    too_many_lines: bool = False


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"the body is larger than {limit} bytes; send smaller batches")


async def read_body(chunks: AsyncIterator[bytes], content_length: str | None, max_bytes: int,
                    max_lines: int | None = None) -> Body:
    """Read a body under ``max_bytes`` (413), counting lines as they arrive.

    Past ``max_lines`` lines nothing more is buffered: the rest is read (so the client gets
    a clean answer rather than a reset connection) and dropped, and ``too_many_lines`` is
    set. Only ``bytes.count`` runs per chunk, so the event loop is never held.
    """
    if content_length is not None and content_length.isdigit() and int(content_length) > \
            max_bytes:
        raise _too_large(max_bytes)
    parts: list[bytes] = []
    size = newlines = 0
    last = b""
    over = False
    async for chunk in chunks:
        if not chunk:
            continue
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        if over:
            continue
        if max_lines is not None:
            newlines += chunk.count(b"\n")
            if newlines > max_lines:
                over, parts = True, []
                continue
            last = chunk
        parts.append(chunk)
    lines = newlines + (1 if last and not last.endswith(b"\n") else 0)
    if max_lines is not None and lines > max_lines:
        over, parts = True, []
    return Body(b"".join(parts), lines if not over else newlines, over)


# ---------------------------------------------------------------------- middleware
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyGuard:
    """Pure ASGI middleware: every request body except ``/v1/events`` (which streams its own,
    :func:`read_body`) is read under ``max_bytes`` and, when FastAPI would decode it as JSON,
    checked for depth on a worker thread before the app sees it.

    FastAPI decodes a JSON body on the event loop before the route's dependencies (the API
    key) run; the limits keep that decoding small for anyone, keyed or not.
    """

    def __init__(self, app: Any, max_bytes: Callable[[], int], skip: tuple[str, ...] = ()
                 ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.skip = skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in self.skip:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        length = headers.get(b"content-length")
        if length in (None, b"0") and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body (every GET): nothing to do
            return
        try:
            body = await read_body(_stream(receive), length.decode("latin-1") if length
                                   else None, self.max_bytes())
            ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if body.data and (not ctype or ctype == b"application/json"
                              or ctype.endswith(b"+json")):
                st = await run_in_threadpool(scan_json, body.data)
                if st.depth > MAX_JSON_DEPTH:
                    raise HTTPException(400, too_deep())
        except HTTPException as e:
            await _answer(send, e.status_code, e.detail)
            return
        except _Disconnected:
            return
        done = False

        async def replay() -> Message:
            nonlocal done
            if not done:
                done = True
                return {"type": "http.request", "body": body.data, "more_body": False}
            return await receive()  # a disconnect, when the client goes

        await self.app(scope, replay, send)


class _Disconnected(Exception):
    pass


async def _stream(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise _Disconnected
        yield msg.get("body", b"")
        if not msg.get("more_body", False):
            return


async def _answer(send: Send, status: int, detail: Any) -> None:
    body = json.dumps({"detail": detail}, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
