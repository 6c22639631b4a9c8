"""Item 13: raw user ids in logs at trace level.

At ``--log-level trace`` uvicorn logs every request's ASGI scope (``uvicorn.asgi``: the
path and the raw path, which hold the user id of ``/v1/users/<id>/...``); the redaction
filter sat on ``uvicorn.access`` only. Now it sits on every logger a request path reaches
(``uvicorn``, ``uvicorn.error``, ``uvicorn.access``, ``uvicorn.asgi``) and redacts text,
bytes, scope objects and tracebacks. A live uvicorn with uvicorn's own logging setup at
``trace`` level and its access log on serves user routes; its whole output holds no raw id.
"""

from __future__ import annotations

import logging
import sys

import httpx
from service_world import LiveServer, make_world

from feedwise.privacy import RedactUserPaths
from feedwise.server.app import create_app

IDS = ["trace-secret-alice", "trace-secret-bob", "trace secret carol", "trace-secret-dan"]
NEEDLES = ("trace-secret", "trace secret", "trace%20secret", "secret-alice", "secret-bob")
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def test_trace_level_output_of_a_live_server_holds_no_raw_user_id(tmp_path, capfd):
    world = make_world(tmp_path)
    levels = {n: logging.getLogger(n).level for n in UVICORN_LOGGERS}
    try:
        with (LiveServer(create_app(world.settings), log_level="trace", access_log=True)
              as srv, httpx.Client(base_url=srv.url, timeout=10) as c):
            admin, read = world.headers(world.admin), world.headers(world.read)
            alice, bob, carol, dan = IDS
            flags = {"personalization": True, "ads": True, "analytics": True}
            assert c.put(f"/v1/users/{alice}", json={"consent": flags},
                         headers=admin).status_code == 200
            assert c.get(f"/v1/users/{alice}", headers=admin).status_code == 200
            assert c.get(f"/v1/users/{alice}/export", headers=admin).status_code == 200
            assert c.get(f"/v1/users/{bob}/feed?n=3", headers=read).status_code == 200
            assert c.get(f"/v1/users/{carol}/recommendations", headers=read
                         ).status_code == 200
            assert c.get(f"/v1/users/{dan}/feed", headers={}).status_code == 401
            assert c.get(f"/v1/users/{dan}/nothing-here", headers=read).status_code == 404
            assert c.delete(f"/v1/users/{alice}", headers=admin).status_code == 200
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)
    out = capfd.readouterr()
    text = out.out + out.err
    found = [n for n in NEEDLES if n in text]
    lines = [ln for ln in text.splitlines() if any(n in ln for n in NEEDLES)]
    assert not found, f"raw ids in the logs: {found}: {lines[:3]}"
    # the capture holds the trace lines (scopes included) and the access log
    assert "Started scope=" in text and "'raw_path': b'/v1/users/<user>/feed'" in text
    assert "/v1/users/<user>/export" in text and "/v1/users/<user>/recommendations" in text


def test_the_filter_redacts_every_shape_of_argument():
    f = RedactUserPaths()

    def render(msg, *args, exc=None):
        r = logging.LogRecord("uvicorn.asgi", 5, "", 0, msg, args, exc)
        f.filter(r)
        text = r.getMessage()
        if r.exc_info:
            text += logging.Formatter().formatException(r.exc_info) + (r.exc_text or "")
        return text

    scope = {"type": "http", "path": "/v1/users/al ice/feed", "query_string": b"n=3",
             "raw_path": b"/v1/users/al%20ice/feed", "headers": "<...>"}
    assert "al ice" not in render("%s [%d] Started scope=%s", "127.0.0.1:1 - ASGI", 1, scope)
    assert "al%20ice" not in render("%s", b"/v1/users/al%20ice/feed")
    mapping = logging.LogRecord("x", 20, "", 0, "%(p)s", (), None)
    mapping.args = {"p": "/v1/users/bob/feed"}
    f.filter(mapping)
    assert "bob" not in mapping.getMessage()
    try:
        raise KeyError("/v1/users/carol/export")
    except KeyError:
        r = logging.LogRecord("uvicorn.error", 40, "", 0, "boom", (), sys.exc_info())
    f.filter(r)
    assert "carol" not in logging.Formatter().format(r)
    # uvicorn's access formatter reads its arguments one by one: they stay a 5-tuple
    r = logging.LogRecord("uvicorn.access", 20, "", 0, '%s - "%s %s HTTP/%s" %d',
                          ("127.0.0.1:1", "GET", "/v1/users/dan/feed?n=3", "1.1", 200), None)
    f.filter(r)
    assert isinstance(r.args, tuple) and len(r.args) == 5 and "dan" not in r.getMessage()
