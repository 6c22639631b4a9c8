"""Console sessions: a signed cookie naming the API key that logged in, and CSRF tokens.

The cookie holds ``{"k": key id, "s": scopes, "c": csrf token, "t": issued at}`` as
base64 JSON followed by an HMAC-SHA256 of it under the deployment's console secret (see
:func:`secret`); sessions last 12 hours. It is ``HttpOnly`` and ``SameSite=Lax`` (``Secure`` behind
https). Every request checks the key id against the key ring again, so a revoked key ends
its console sessions within the ring's reload interval; scopes are re-read from the ring
too (a cookie cannot widen them).

CSRF: each session carries its own token; every form posts it in a hidden field and the
server compares it in constant time (a session-bound synchronizer token). The login form,
before any session exists, uses a double-submit token (a cookie and the same value in the
form).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request

from feedwise.server.auth import ApiKey

COOKIE = "fw_console"
LOGIN_COOKIE = "fw_console_login"
MAX_AGE_S = 12 * 3600


@dataclass(frozen=True)
class Session:
    """A logged-in console user: the key id, its scopes now and the session's CSRF token."""

    key_id: str
    scopes: frozenset[str]
    csrf: str

    @property
    def admin(self) -> bool:
        return "admin" in self.scopes

    @property
    def role(self) -> str:
        return "admin" if self.admin else "read-only"


def secret(request: Request) -> bytes:
    """The signing secret: ``FEEDWISE_CONSOLE_SECRET`` if set, else a random one kept in
    ``<store file>.console-secret`` (mode 0600, made on first use), so every worker
    process serving the store signs alike; a memory store gets one per app."""
    st = request.app.state
    if not hasattr(st, "console_secret"):
        st.console_secret = _load_secret(str(st.feedwise.settings.db))
    return st.console_secret


def _load_secret(db: str) -> bytes:
    env = os.environ.get("FEEDWISE_CONSOLE_SECRET")
    if env:
        return hashlib.sha256(env.encode()).digest()
    if not db or db == ":memory:":
        return secrets.token_bytes(32)
    path = Path(db).expanduser().with_name(Path(db).name + ".console-secret")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(20):  # another worker may be writing it this moment
            data = path.read_bytes()
            if len(data) >= 32:
                return data[:32]
            time.sleep(0.05)
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)  # a broken file: write a new one
    except OSError:
        return secrets.token_bytes(32)  # a read-only folder: sessions per process
    value = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as f:
        f.write(value)
    return value


def _sign(key: bytes, payload: bytes) -> str:
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def make_cookie(request: Request, key: ApiKey, now: float | None = None) -> tuple[str, str]:
    """``(cookie value, csrf token)`` for a key that just logged in."""
    csrf = secrets.token_urlsafe(24)
    doc = {"k": key.key_id, "s": sorted(key.scopes), "c": csrf,
           "t": int(now if now is not None else time.time())}
    payload = base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode())
    return payload.decode() + "." + _sign(secret(request), payload), csrf


def read_session(request: Request, now: float | None = None) -> Session | None:
    """The request's session, or ``None`` (no cookie, a bad signature, expired, or a key
    that is no longer in the key ring)."""
    raw = request.cookies.get(COOKIE)
    if not raw or "." not in raw:
        return None
    payload, _, mac = raw.rpartition(".")
    if not hmac.compare_digest(_sign(secret(request), payload.encode()), mac):
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(payload.encode()))
        key_id, csrf, issued = str(doc["k"]), str(doc["c"]), float(doc["t"])
    except (ValueError, KeyError, TypeError):
        return None
    if (now if now is not None else time.time()) - issued > MAX_AGE_S:
        return None
    state = request.app.state.feedwise
    if not state.settings.auth_enabled:
        return Session(key_id, frozenset({"admin"}), csrf)
    state.keys.refresh()
    key = next((k for k in state.keys.keys if k.key_id == key_id), None)
    if key is None:
        return None  # revoked since
    return Session(key_id, key.scopes, csrf)


def csrf_ok(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of CSRF tokens (both present)."""
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


def cookie_args(request: Request) -> dict:
    """Attributes of the console's cookies."""
    return {"httponly": True, "samesite": "lax", "secure": request.url.scheme == "https",
            "path": "/console"}
