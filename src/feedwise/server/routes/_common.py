"""Helpers shared by the route modules (JSON columns, text checks, waiting on the writer)."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from fastapi import HTTPException

from feedwise.server.bodies import MAX_JSON_DEPTH, clip_depth

ID_MAX = 256


def plain_value(value: Any) -> Any:
    """msgspec's ``enc_hook``: what it does not encode itself, as ``json.dumps`` would
    have it (a ``str`` subclass, e.g. a request id, as a ``str``; a numpy scalar as its
    Python value)."""
    if isinstance(value, str):
        return str(value)
    item = getattr(value, "item", None)
    if item is None:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")
    return item()


def loads_json(text: str | None) -> Any:
    """Decode a JSON column (``None`` stays ``None``; broken JSON, or JSON nested too deep
    to decode, is returned as text)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def stored_attributes(text: str | None) -> dict[str, Any]:
    """A stored ``attributes`` column as an object the API can always send back.

    Values written before bodies had a depth limit may nest deeper than
    :data:`~feedwise.server.bodies.MAX_JSON_DEPTH`: the levels below it are shown as a
    marker string (a ``PUT`` replaces them); a column that is not an object at all is
    shown as ``{"_unreadable": <why>}``, never as a server error.
    """
    value = loads_json(text)
    if value is None:
        return {}
    if not isinstance(value, dict):
        return {"_unreadable": f"the stored attributes are not a JSON object nested at most "
                               f"{MAX_JSON_DEPTH} levels deep; replace them with PUT"}
    return clip_depth(value)


def is_text(s: str) -> bool:
    """Whether ``s`` can be stored and sent as text: a JSON escape of a lone UTF-16
    surrogate (``"\\ud800"``) parses, but no UTF-8 encoder takes it."""
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def wait(fut: Future, timeout: float) -> Any:
    """Block a worker thread on a writer job (503 if the writer is too slow)."""
    try:
        return fut.result(timeout)
    except FutureTimeout:
        raise HTTPException(503, "the store is busy; retry", headers={"Retry-After": "1"}
                            ) from None


async def await_future(fut: Future, timeout: float) -> Any:
    """Await a writer job from the event loop (no worker thread is held)."""
    try:
        return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
    except TimeoutError:
        raise HTTPException(503, "the store is busy; retry", headers={"Retry-After": "1"}
                            ) from None
