"""Privacy by design: pseudonymous ids, consent, erasure, export, retention, small groups.

The pieces and where they reach:

* :class:`Pseudonymizer` — a keyed hash (HMAC-SHA256) of external user ids. Given to
  :class:`~feedwise.store.EventStore` (``EventStore(path, pseudonymizer=p)``), it replaces
  every user id at ingestion (one HMAC per distinct id of a batch, joined back in SQL)
  and in :meth:`~feedwise.store.EventStore.upsert_users`, so the store never holds raw ids;
  lookups by raw id go through the same function (:meth:`EventStore.user_key`). The key
  comes from settings (``FEEDWISE_PSEUDONYM_KEY``, see :class:`PrivacySettings`) and never
  appears in ``repr``, logs or errors.
* Consent — :func:`set_consent` writes the three flags (``personalization``, ``ads``,
  ``analytics``) with time and source to ``users`` and appends each change to the
  ``consent_log`` table (the proof of consent). The feed engine reads the flags (no
  personal candidates or interests without ``personalization``; only non-targeted ads
  without ``ads``); analytics scopes drop users without ``analytics``;
  :func:`apply_consent` makes a change take effect on a running engine's next request.
* Erasure — :func:`erase_user` deletes the user's rows from every table that has a
  ``user_id`` column (events, users, consent log, profiles and segments, frequency-cap
  state, ...), records a tombstone so re-ingested old files do not bring the user back,
  and removes the user from loaded models (:meth:`Recommender.forget_user`) and engines
  (:func:`forget_in_engine`) at once. :func:`export_user` returns everything held about a
  user as JSON-ready data (the right of access).
* Retention — :func:`purge` deletes events (and other timed per-user rows) older than a
  number of days; :class:`RetentionScheduler` runs it periodically in the server.
* Aggregates — :func:`suppress` (re-exported from :mod:`feedwise.analytics.suppression`)
  blanks every reported cell describing fewer than ``k`` (default 10) users.

Nothing here logs a user id, a pseudonym or a key: log lines carry counts only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from feedwise.analytics.suppression import SUPPRESSED, suppress, suppress_matrix
from feedwise.errors import ConfigError, NotFoundError
from feedwise.schema import utc

log = logging.getLogger("feedwise.privacy")

#: The consent flags, in the order of the ``users`` columns.
CONSENT_FLAGS: tuple[str, ...] = ("personalization", "ads", "analytics")
#: Smallest group an aggregate may describe, unless configured otherwise.
DEFAULT_K = 10
#: Append-only record of every consent change (who, which flag, value, when, from where).
CONSENT_LOG_DDL = ("CREATE TABLE IF NOT EXISTS consent_log (user_id VARCHAR, flag VARCHAR, "
                   "granted BOOLEAN, source VARCHAR, recorded_at TIMESTAMPTZ)")
#: Length of a pseudonym in hex characters (128 bits of the HMAC-SHA256 digest).
PSEUDONYM_HEX = 32

__all__ = ["CONSENT_FLAGS", "DEFAULT_K", "SUPPRESSED", "ConsentRecord", "ErasureReport",
           "PrivacySettings", "Pseudonymizer", "RedactUserPaths", "RetentionScheduler",
           "apply_consent", "erase_user", "export_user", "forget_erased", "forget_in_engine",
           "get_consent", "purge",
           "set_consent", "suppress", "suppress_matrix"]


# ---------------------------------------------------------------------- settings
class PrivacySettings(BaseSettings):
    """Privacy settings read from ``FEEDWISE_*`` environment variables.

    Attributes:
        pseudonym_key: Secret of the user-id HMAC (``FEEDWISE_PSEUDONYM_KEY``); ``None``
            stores ids as given. At least 16 characters; keep it in a secret manager.
        retention_days: Events older than this are purged (``None``: kept).
        retention_interval_s: How often the server's scheduler purges.
        min_group_size: ``k`` of small-group suppression.
    """

    model_config = SettingsConfigDict(env_prefix="FEEDWISE_", extra="ignore")

    pseudonym_key: SecretStr | None = None
    retention_days: int | None = Field(default=None, gt=0)
    retention_interval_s: float = Field(default=3600.0, gt=0)
    min_group_size: int = Field(default=DEFAULT_K, ge=1)

    def pseudonymizer(self) -> Pseudonymizer | None:
        """The configured :class:`Pseudonymizer`, or ``None`` without a key."""
        return Pseudonymizer(self.pseudonym_key) if self.pseudonym_key is not None else None


# ---------------------------------------------------------------------- pseudonyms
class Pseudonymizer:
    """Keyed one-way pseudonyms of user ids: ``hex(HMAC-SHA256(key, id))[:32]``.

    The same id always maps to the same pseudonym under one key, so joins, models and
    lookups work on pseudonyms; without the key nobody can test a guessed id against the
    store. The object is a plain callable (``p("alice") -> "3f…"``), which is what
    :class:`~feedwise.store.EventStore` takes.

    Key rotation: pseudonyms cannot be inverted, so a new key cannot be applied to stored
    pseudonyms directly. Rotate by re-ingesting the retained raw sources into a fresh
    store opened with the new key (and re-erasing the ids on the erasure list), or, to
    rotate in place, chain the keys — ``Pseudonymizer(new_key, previous=old)`` computes
    ``HMAC(new, HMAC(old, id))`` — and rewrite the stored ids with ``HMAC(new, stored)``.
    See docs/privacy.md.

    Args:
        key: The secret (str, bytes or pydantic ``SecretStr``), at least 16 bytes.
        previous: The pseudonymizer of the previous key, when keys are chained.
    """

    def __init__(self, key: str | bytes | SecretStr, *, previous: Pseudonymizer | None = None
                 ) -> None:
        if isinstance(key, SecretStr):
            key = key.get_secret_value()
        raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
        if len(raw) < 16:
            raise ConfigError("the pseudonym key must be at least 16 bytes; generate one with "
                              "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
        self.__key = raw
        self.previous = previous
        self._cache: dict[str, str] = {}

    def __call__(self, user_id: str) -> str:
        uid = str(user_id)
        out = self._cache.get(uid)
        if out is None:
            base = self.previous(uid) if self.previous is not None else uid
            out = hmac.new(self.__key, base.encode("utf-8"), hashlib.sha256
                           ).hexdigest()[:PSEUDONYM_HEX]
            if len(self._cache) < 1_000_000:
                self._cache[uid] = out
        return out

    def rekey(self, stored_id: str) -> str:
        """The new pseudonym of an id stored under :attr:`previous` (in-place rotation)."""
        return hmac.new(self.__key, str(stored_id).encode("utf-8"), hashlib.sha256
                        ).hexdigest()[:PSEUDONYM_HEX]

    def __repr__(self) -> str:
        return "Pseudonymizer(key=<secret>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # never serialise the key by accident
        raise TypeError("a Pseudonymizer holds a secret and cannot be pickled")


# ---------------------------------------------------------------------- consent
class ConsentRecord(BaseModel):
    """A user's consent flags with the time and source of the last change."""

    model_config = ConfigDict(extra="forbid")

    personalization: bool = True
    ads: bool = True
    analytics: bool = True
    updated_at: datetime | None = None
    source: str | None = None


def _ensure_consent_log(store: Any) -> None:
    with store._lock:
        store.con.execute(CONSENT_LOG_DDL)


def get_consent(store: Any, user_id: str) -> ConsentRecord | None:
    """The stored consent of ``user_id`` (external id), or ``None`` for an unknown user
    (whose consent is the schema's default: granted)."""
    df = store.query("SELECT consent_personalization, consent_ads, consent_analytics, "
                     "consent_updated_at, consent_source FROM users WHERE user_id = ?",
                     [store.user_key(user_id)])
    if df.empty:
        return None
    r = df.iloc[0]

    def flag(v: Any) -> bool:
        return True if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA \
            else bool(v)

    ts = r["consent_updated_at"]
    return ConsentRecord(personalization=flag(r["consent_personalization"]),
                         ads=flag(r["consent_ads"]), analytics=flag(r["consent_analytics"]),
                         updated_at=None if pd.isna(ts) else pd.Timestamp(ts).to_pydatetime(),
                         source=None if pd.isna(r["consent_source"]) else r["consent_source"])


def set_consent(store: Any, user_id: str, *, now: datetime, source: str,
                personalization: bool | None = None, ads: bool | None = None,
                analytics: bool | None = None) -> ConsentRecord:
    """Change some of a user's consent flags; the others keep their value.

    The ``users`` row gets the new flags, ``consent_updated_at = now`` and
    ``consent_source = source`` (created, with the other flags granted, if the user is
    new); every changed flag is appended to ``consent_log``.

    Args:
        store: The :class:`~feedwise.store.EventStore`.
        user_id: External id (pseudonymised by the store when it has a key).
        now: Time of the change (tz-aware).
        source: Where the consent was given: ``banner``, ``settings``, ``api``, ``cli`` ...
        personalization, ads, analytics: New values; ``None`` leaves a flag unchanged.

    Returns:
        The record after the change.
    """
    if not source:
        raise ConfigError("a consent change needs its source (e.g. 'settings', 'banner')")
    if store.is_erased(user_id):
        raise NotFoundError("this user was erased; a new consent needs a new account id")
    new = {"personalization": personalization, "ads": ads, "analytics": analytics}
    old = get_consent(store, user_id) or ConsentRecord()
    merged = {f: (getattr(old, f) if new[f] is None else bool(new[f])) for f in CONSENT_FLAGS}
    when = utc(now)
    key = store.user_key(user_id)
    _ensure_consent_log(store)
    with store._lock:
        c = store.con
        c.execute("BEGIN TRANSACTION")
        try:
            c.execute("""INSERT INTO users (user_id, consent_personalization, consent_ads,
                    consent_analytics, consent_updated_at, consent_source)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (user_id) DO UPDATE SET
                    consent_personalization = excluded.consent_personalization,
                    consent_ads = excluded.consent_ads,
                    consent_analytics = excluded.consent_analytics,
                    consent_updated_at = excluded.consent_updated_at,
                    consent_source = excluded.consent_source""",
                      [key, merged["personalization"], merged["ads"], merged["analytics"],
                       when, source])
            for f in CONSENT_FLAGS:
                if new[f] is not None:
                    c.execute("INSERT INTO consent_log VALUES (?, ?, ?, ?, ?)",
                              [key, f, merged[f], source, when])
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
    log.info("consent changed (%s) from %s", ", ".join(
        f"{f}={merged[f]}" for f in CONSENT_FLAGS if new[f] is not None), source)
    return ConsentRecord(**merged, updated_at=when, source=source)


def apply_consent(engine: Any, stored_id: str, record: ConsentRecord) -> bool:
    """Make a consent change effective on a running :class:`FeedEngine` from its next
    request (the engine otherwise reads consent when it is built).

    Args:
        engine: The engine.
        stored_id: The user's stored id (``store.user_key(raw_id)``).
        record: The new consent.

    Returns:
        ``True`` if the engine knew the user (unknown users are covered by passing
        ``consent_*`` in the request context, as the HTTP service does).
    """
    users = getattr(engine, "users", None)
    if users is None:
        return False
    with getattr(engine, "_lock", None) or nullcontext():
        r = users.row(stored_id)
        if r < 0:
            return False
        users.consent_ads[r] = record.ads
        users.consent_personalization[r] = record.personalization
    return True


# ---------------------------------------------------------------------- erasure
class ErasureReport(BaseModel):
    """What an erasure removed (counts only: the report never repeats the id)."""

    deleted: dict[str, int]
    models: int = 0
    engines: int = 0
    erased_at: datetime

    @property
    def rows(self) -> int:
        return sum(self.deleted.values())


def _drop_user_rows(m: Any, r: int, columns: bool = False) -> Any:
    if m is None or not sp.issparse(m) or r >= m.shape[0]:
        return m
    keep = np.ones(m.shape[0], np.float32)
    keep[r] = 0
    out = sp.diags(keep) @ sp.csr_matrix(m)
    if columns and m.shape[0] == m.shape[1]:
        out = out @ sp.diags(keep)
    out = sp.csr_matrix(out, dtype=m.dtype)
    out.eliminate_zeros()
    return out


def forget_in_engine(engine: Any, stored_id: str) -> bool:
    """Remove a user from a running :class:`~feedwise.feed.engine.FeedEngine`: its
    recommender's state, the user table row (interests, segments, follows, affinity,
    consent) and the cross-request state (frequency caps, exposure, served posts, hidden
    posts, fatigue, pending ad-impression writes).

    Returns:
        ``True`` if the engine held anything about the user.
    """
    with getattr(engine, "_lock", None) or nullcontext():  # not in the middle of a compose
        return _forget_in_engine(engine, stored_id)


def _forget_in_engine(engine: Any, stored_id: str) -> bool:
    found = False
    for src in getattr(engine, "sources", ()):
        model = getattr(src, "recommender", None)
        if model is not None and hasattr(model, "forget_user"):
            found = bool(model.forget_user(stored_id)) or found
        index = getattr(src, "user_index", None)  # FactorSource
        if isinstance(index, dict) and stored_id in index:
            r = index.pop(stored_id)
            src.user_factors = np.array(src.user_factors, copy=True)
            src.user_factors[r] = 0
            found = True
    users = getattr(engine, "users", None)
    if users is not None and stored_id in users.index:
        r = users.index.pop(stored_id)
        users.user_ids = np.array(users.user_ids, dtype=object, copy=True)
        users.user_ids[r] = ""
        users.consent_ads[r] = False
        users.consent_personalization[r] = False
        for name in ("interests", "segments", "follows", "affinity"):
            setattr(users, name, _drop_user_rows(getattr(users, name), r))
        found = True
    state = getattr(engine, "state", None)
    if state is not None:
        for d in (state.served, state.hidden, state.fatigue.authors, state.fatigue.topics,
                  state.ads.freq, state.ads.exposure):
            if stored_id in d:
                del d[stored_id]
                found = True
        pending = state.ads._pending
        kept = [p for p in pending if p.user_id != stored_id]
        if len(kept) != len(pending):
            state.ads._pending = kept
            found = True
    return found


def erase_user(store: Any, user_id: str, *, now: datetime,
               models: Iterable[Any] = (), engines: Iterable[Any] = ()) -> ErasureReport:
    """Erase a user everywhere (the right to erasure).

    Deletes every stored row about the user and records a tombstone
    (:meth:`EventStore.erase_user`: events, users and consent, consent log, profiles and
    segments, frequency-cap state, rejects), then removes the user from each loaded model
    (:meth:`Recommender.forget_user`) and engine (:func:`forget_in_engine`), so the next
    request is already non-personal. The next retrain excludes the user because their
    events are gone and cannot be re-ingested.

    Args:
        store: The :class:`~feedwise.store.EventStore`.
        user_id: External id.
        now: Time of the erasure (tz-aware).
        models: Loaded recommenders to remove the user from.
        engines: Running feed engines to remove the user from.
    """
    when = utc(now)
    key = store.user_key(user_id)
    deleted = store.erase_user(user_id, now=when)
    n_models = sum(bool(m.forget_user(key)) for m in models if hasattr(m, "item_ids_"))
    n_engines = sum(forget_in_engine(e, key) for e in engines)
    report = ErasureReport(deleted=deleted, models=n_models, engines=n_engines, erased_at=when)
    log.info("erased a user: %d rows deleted, removed from %d model(s) and %d engine(s)",
             report.rows, n_models, n_engines)
    return report


def forget_erased(store: Any, model: Any, *, opted_out: bool = True) -> int:
    """Remove from a loaded model every user erased after it was trained (a registry
    version, a hot swap), checked against the store's tombstones, and (with
    ``opted_out``) every user who withdrew ``personalization`` consent, so no profile of
    theirs is used. Returns the number of users removed."""
    from feedwise.store.privacy import tombstone_digest

    if not hasattr(model, "user_index_"):
        return 0
    stones = set(store.query("SELECT digest FROM tombstones")["digest"])
    out = set(store.query("SELECT user_id FROM users WHERE consent_personalization = false"
                          )["user_id"]) if opted_out else set()
    if not stones and not out:
        return 0
    gone = [u for u in list(model.user_index_) if u in out or tombstone_digest(u) in stones]
    for u in gone:
        model.forget_user(u)
    if gone:
        log.info("removed %d erased or opted-out user(s) from a loaded model", len(gone))
    return len(gone)


class RedactUserPaths(logging.Filter):
    """Replaces the id in ``/v1/users/<id>`` of log messages (e.g. uvicorn's access log)
    with ``<user>``, so request logs never carry user ids."""

    _pattern = re.compile(r"(/v1/users/)[^/\s?\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(self._pattern.sub(r"\1<user>", a) if isinstance(a, str) else a
                                for a in (record.args if isinstance(record.args, tuple)
                                          else (record.args,)))
        if isinstance(record.msg, str):
            record.msg = self._pattern.sub(r"\1<user>", record.msg)
        return True


# ---------------------------------------------------------------------- access
def _jsonable(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, datetime | date | pd.Timestamp):
        return v.isoformat()
    if isinstance(v, np.generic):
        return _jsonable(v.item())
    if isinstance(v, np.ndarray | list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


def _rows(store: Any, sql: str, params: list) -> list[dict[str, Any]]:
    cur = store.cursor()
    try:
        res = cur.execute(sql, params)
        names = [d[0] for d in res.description]
        return [{n: _jsonable(x) for n, x in zip(names, row, strict=True)}
                for row in res.fetchall()]
    finally:
        cur.close()


def export_user(store: Any, user_id: str, *, now: datetime) -> dict[str, Any]:
    """Everything the store holds about ``user_id`` as JSON-ready data (right of access).

    Returns:
        ``{"user_id", "stored_id", "exported_at", "consent", "tables": {table: rows}}``
        where ``tables`` has the user's rows of every table with a ``user_id`` column
        (``events``, ``users``, ``consent_log``, profiles, ad impressions, ...) and the
        ``rejects`` rows that mention the id. ``stored_id`` is the pseudonym (``None``
        when ids are stored as given).
    """
    key = store.user_key(user_id)
    ids = list(dict.fromkeys([key, str(user_id)]))
    tables: dict[str, list[dict[str, Any]]] = {}
    for t in store.user_tables():
        order = " ORDER BY ts" if t == "events" else ""
        tables[t] = _rows(store, f'SELECT * FROM "{t}" WHERE user_id IN (SELECT unnest(?))'
                                 f"{order}", [ids])
    from feedwise.store.privacy import _token_pattern

    # the patterns erasure deletes by: raw text holds an id as given or JSON-escaped
    pats = list(dict.fromkeys(_token_pattern(v) for i in ids
                              for v in (i, json.dumps(i)[1:-1])))
    cond = " OR ".join("regexp_matches(raw, ?)" for _ in pats)
    tables["rejects"] = _rows(store, f"SELECT * FROM rejects WHERE raw IS NOT NULL AND ({cond})",
                              pats)
    consent = get_consent(store, user_id)
    return {"user_id": str(user_id), "stored_id": key if key != str(user_id) else None,
            "exported_at": utc(now).isoformat(),
            "consent": _jsonable(consent.model_dump()) if consent else None,
            "erased": store.is_erased(user_id), "tables": tables}


def dumps_export(export: Mapping[str, Any]) -> str:
    """The export as indented JSON text."""
    return json.dumps(export, indent=2, default=str)


# ---------------------------------------------------------------------- retention
def purge(store: Any, older_than_days: float, *, now: datetime) -> dict[str, int]:
    """Delete per-user rows older than ``older_than_days`` (retention).

    Every table with both a ``user_id`` and a ``ts`` column is purged (``events``, ad
    impressions, ...; a numeric ``ts`` is taken as unix seconds), and ``rejects`` by
    ``rejected_at``. Reports computed before keep their aggregates; erasure tombstones
    and the consent log are kept (they prove what was done and agreed).

    Returns:
        Rows deleted per table.
    """
    if older_than_days <= 0:
        raise ConfigError(f"--older-than-days must be positive, got {older_than_days}")
    cutoff = utc(now) - timedelta(days=older_than_days)
    types = store.query("""SELECT table_name, data_type FROM information_schema.columns
        WHERE column_name = 'ts' AND table_schema = 'main'
          AND table_catalog = current_database()""")
    ts_type = dict(zip(types["table_name"], types["data_type"], strict=True))
    out: dict[str, int] = {}
    with store._lock:
        c = store.con
        c.execute("BEGIN TRANSACTION")
        try:
            for t in store.user_tables():
                dtype = str(ts_type.get(t, ""))
                if not dtype:
                    continue
                if "TIMESTAMP" in dtype.upper() or dtype.upper() == "DATE":
                    n = c.execute(f'DELETE FROM "{t}" WHERE ts < ?', [cutoff]).fetchone()[0]
                else:
                    n = c.execute(f'DELETE FROM "{t}" WHERE ts < ?',
                                  [cutoff.timestamp()]).fetchone()[0]
                out[t] = int(n)
            out["rejects"] = int(c.execute("DELETE FROM rejects WHERE rejected_at < ?",
                                           [cutoff]).fetchone()[0])
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
    log.info("retention purge before %s: %d rows deleted", cutoff.isoformat(),
             sum(out.values()))
    return out


class RetentionScheduler:
    """Runs :func:`purge` every ``interval_s`` seconds on a daemon thread (server use).

    Args:
        store: The store.
        days: Retention in days.
        interval_s: Seconds between purges (the first runs at :meth:`start`).
        clock: Returns the current time (tz-aware); the edge of the app reads the clock.
    """

    def __init__(self, store: Any, days: float, interval_s: float = 3600.0, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if days <= 0 or interval_s <= 0:
            raise ConfigError("retention days and interval must be positive")
        self.store, self.days, self.interval_s, self.clock = store, days, interval_s, clock
        self.runs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> dict[str, int]:
        out = purge(self.store, self.days, now=self.clock())
        self.runs += 1
        return out

    def start(self) -> RetentionScheduler:
        def loop() -> None:
            while True:
                try:
                    self.run_once()
                except Exception:  # noqa: BLE001 - keep the schedule alive
                    log.exception("retention purge failed; retrying next interval")
                if self._stop.wait(self.interval_s):
                    return

        self._thread = threading.Thread(target=loop, name="feedwise-retention", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
