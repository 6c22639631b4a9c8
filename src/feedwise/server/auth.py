"""API keys with scopes: stored hashed, compared in constant time, sent as a bearer token.

A key looks like ``fw_<key id>_<secret>``. Only ``sha256(key)`` is stored (in the keys file
written by ``feedwise keys create`` or in ``FEEDWISE_API_KEYS``); the plain key is shown
once at creation and never logged. Checking a token hashes it and compares the digest with
*every* stored digest using :func:`hmac.compare_digest`, so the time taken says nothing
about which key (if any) came close.

Scopes: ``read`` (feeds, recommendations, catalogue, reports), ``ingest`` (``POST
/v1/events``), ``metrics`` (``GET /metrics`` only, for a Prometheus scraper) and ``admin``
(catalogue, campaigns, users, models; implies the others).

The keys file is re-read when it changes (:meth:`KeyRing.refresh`): a revoked key stops
working within ``keys_reload_s`` (0.5 s) of ``feedwise keys revoke``, without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from feedwise.errors import AuthError, ConfigError

SCOPES: tuple[str, ...] = ("read", "ingest", "admin", "metrics")

log = logging.getLogger("feedwise.server.auth")


def hash_key(key: str) -> str:
    """The stored form of a key: its sha256 hex digest."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One stored key: its id, digest and scopes (never the key itself)."""

    key_id: str
    digest: str
    scopes: frozenset[str]
    name: str = ""
    created_at: str = ""

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def to_json(self) -> dict:
        return {"key_id": self.key_id, "sha256": self.digest, "scopes": sorted(self.scopes),
                "name": self.name, "created_at": self.created_at}


def _check_scopes(scopes: list[str] | set[str] | frozenset[str]) -> frozenset[str]:
    bad = sorted(set(scopes) - set(SCOPES))
    if bad or not scopes:
        raise ConfigError(f"unknown or missing scope(s) {bad}; scopes are {list(SCOPES)}")
    return frozenset(scopes)


def parse_key_spec(spec: str) -> ApiKey:
    """Parse ``"<sha256 hex>:<scope>[+<scope>...]"`` (the ``FEEDWISE_API_KEYS`` form)."""
    digest, _, scopes = spec.strip().partition(":")
    digest = digest.lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ConfigError("an api_keys entry must look like '<sha256 hex>:read+ingest' "
                          "(the hash from `feedwise keys hash`, never the key itself)")
    return ApiKey(key_id="env:" + digest[:8], digest=digest,
                  scopes=_check_scopes(scopes.replace(",", "+").split("+")))


@dataclass
class KeyRing:
    """The set of accepted keys: fixed ones (``FEEDWISE_API_KEYS``) and the keys file's,
    re-read when the file changes.

    At most every ``reload_s`` seconds, checking a token first looks at the keys file's
    inode, size and times (one ``stat``); when they changed the file is read again, so
    ``feedwise keys revoke`` (or ``create``) takes effect within ``reload_s`` without a
    restart. A keys file that disappears revokes all its keys. One that cannot be read or
    parsed any more keeps the keys read before (logged as an error each time it changes):
    a half-edited file must not lock every client out.
    """

    keys: list[ApiKey] = field(default_factory=list)
    keys_file: Path | None = None
    fixed: list[ApiKey] = field(default_factory=list)
    reload_s: float = 0.5
    _signature: tuple | None = field(default=None, repr=False)
    _next_check: float = field(default=0.0, repr=False)

    @classmethod
    def load(cls, keys_file: str | os.PathLike | None = None,
             specs: list[str] | None = None, reload_s: float = 0.5) -> KeyRing:
        """Keys from a keys file and/or ``"<sha256>:<scopes>"`` specs.

        A keys file that does not exist yet holds no keys (until it is written); one that
        exists but cannot be read is a :class:`ConfigError`.
        """
        fixed = [parse_key_spec(s) for s in specs or []]
        ring = cls(list(fixed), Path(keys_file) if keys_file else None, fixed, reload_s)
        ring.refresh(force=True)
        return ring

    def refresh(self, force: bool = False) -> bool:
        """Re-read the keys file if it changed (checked at most every ``reload_s``);
        ``True`` if the keys were replaced."""
        if self.keys_file is None:
            return False
        now = time.monotonic()
        if not force and now < self._next_check:
            return False
        self._next_check = now + self.reload_s
        try:
            st = os.stat(self.keys_file)
            signature: tuple | None = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except FileNotFoundError:
            signature = None
        except OSError as e:
            signature = ("unreadable", e.errno)
        if signature == self._signature and not force:
            return False
        self._signature = signature
        if signature is None:
            file_keys: list[ApiKey] = []  # the file is gone: so are its keys
        else:
            try:
                file_keys = read_keys_file(self.keys_file)
            except ConfigError as e:
                if force:
                    raise
                log.error("%s; still accepting the %d keys read before", e, len(self.keys))
                return False
        self.keys = [*self.fixed, *file_keys]  # one assignment: readers see old or new
        return True

    def authenticate(self, token: str | None) -> ApiKey:
        """The key matching ``token``; :class:`AuthError` if none does (constant-time).

        A changed keys file is picked up first (see :meth:`refresh`).
        """
        self.refresh()
        digest = hash_key(token or "")
        found: ApiKey | None = None
        for k in self.keys:  # no early exit: every digest is compared
            if hmac.compare_digest(k.digest, digest) and token:
                found = k
        if found is None:
            raise AuthError("invalid API key")
        return found


def read_keys_file(path: str | os.PathLike) -> list[ApiKey]:
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{p}: cannot read keys file: {e}") from None
    out = []
    for i, k in enumerate(data.get("keys", [])):
        try:
            out.append(ApiKey(key_id=k["key_id"], digest=k["sha256"],
                              scopes=_check_scopes(k["scopes"]), name=k.get("name", ""),
                              created_at=k.get("created_at", "")))
        except (KeyError, TypeError):
            raise ConfigError(f"{p}: key #{i + 1} needs key_id, sha256 and scopes") from None
    return out


def create_key(keys_file: str | os.PathLike, scopes: list[str], name: str = "",
               now: datetime | None = None) -> tuple[str, ApiKey]:
    """Create a key, store its hash in ``keys_file`` and return ``(plain key, record)``.

    The plain key is returned once and stored nowhere.
    """
    scopeset = _check_scopes(scopes)
    key_id = secrets.token_hex(4)
    key = f"fw_{key_id}_{secrets.token_urlsafe(32)}"
    created = (now or datetime.now(UTC)).isoformat()
    record = ApiKey(key_id=key_id, digest=hash_key(key), scopes=scopeset, name=name,
                    created_at=created)
    p = Path(keys_file)
    existing = read_keys_file(p) if p.exists() else []
    _write_keys(p, [*existing, record])
    return key, record


def revoke_key(keys_file: str | os.PathLike, key_id: str) -> bool:
    """Remove the key with ``key_id``; ``False`` if there was none."""
    p = Path(keys_file)
    keys = read_keys_file(p) if p.exists() else []
    kept = [k for k in keys if k.key_id != key_id]
    if len(kept) == len(keys):
        return False
    _write_keys(p, kept)
    return True


def _write_keys(p: Path, keys: list[ApiKey]) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps({"keys": [k.to_json() for k in keys]}, indent=2))
    os.chmod(tmp, 0o600)
    os.replace(tmp, p)
