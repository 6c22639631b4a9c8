"""Privacy by design: pseudonymous ids, consent, erasure, export, retention, small groups.

The pieces, the module each lives in, and where they reach:

* :class:`Pseudonymizer` (:mod:`~feedwise.privacy.pseudonyms`) — a keyed hash
  (HMAC-SHA256) of external user ids. Given to :class:`~feedwise.store.EventStore`
  (``EventStore(path, pseudonymizer=p)``), it replaces every user id at ingestion (one HMAC
  per distinct id of a batch, joined back in SQL) and in
  :meth:`~feedwise.store.EventStore.upsert_users`, so the store never holds raw ids;
  lookups by raw id go through the same function (:meth:`EventStore.user_key`). The key
  comes from settings (``FEEDWISE_PSEUDONYM_KEY``, see :class:`PrivacySettings` in
  :mod:`~feedwise.privacy.settings`) and never appears in ``repr``, logs or errors.
* Consent (:mod:`~feedwise.privacy.consent`) — :func:`set_consent` writes the three flags
  (``personalization``, ``ads``, ``analytics``) with time and source to ``users`` and
  appends each change to the ``consent_log`` table (the proof of consent). The feed engine
  reads the flags (no personal candidates or interests without ``personalization``; only
  non-targeted ads without ``ads``); analytics scopes drop users without ``analytics``;
  :func:`apply_consent` makes a change take effect on a running engine's next request.
* Erasure (:mod:`~feedwise.privacy.erasure`) — :func:`erase_user` deletes the user's rows
  from every table that has a ``user_id`` column (events, users, consent log, profiles and
  segments, frequency-cap state, ...), records a tombstone so re-ingested old files do not
  bring the user back, and removes the user from loaded models
  (:meth:`Recommender.forget_user`) and engines (:func:`forget_in_engine`) at once.
  :func:`export_user` (:mod:`~feedwise.privacy.export`) returns everything held about a
  user as JSON-ready data (the right of access).
* Retention (:mod:`~feedwise.privacy.retention`) — :func:`purge` deletes events (and other
  timed per-user rows) older than a number of days; :class:`RetentionScheduler` runs it
  periodically in the server.
* Aggregates — :func:`suppress` (re-exported from :mod:`feedwise.analytics.suppression`)
  blanks every reported cell describing fewer than ``k`` (default 10) users.
* Logs — :class:`RedactUserPaths` (:mod:`~feedwise.privacy.redaction`) keeps user ids out
  of request logs.

The SQL behind all of it is the store's (:class:`~feedwise.store.privacy.PrivacyRecords`).
Nothing here logs a user id, a pseudonym or a key: log lines carry counts only.
"""

from feedwise.analytics.suppression import SUPPRESSED, suppress, suppress_matrix
from feedwise.privacy.consent import (
    CONSENT_FLAGS,
    ConsentRecord,
    apply_consent,
    get_consent,
    set_consent,
)
from feedwise.privacy.erasure import ErasureReport, erase_user, forget_erased, forget_in_engine
from feedwise.privacy.export import dumps_export, export_user
from feedwise.privacy.pseudonyms import Pseudonymizer
from feedwise.privacy.redaction import RedactUserPaths
from feedwise.privacy.retention import RetentionScheduler, purge
from feedwise.privacy.settings import DEFAULT_K, PrivacySettings

__all__ = ["CONSENT_FLAGS", "DEFAULT_K", "SUPPRESSED", "ConsentRecord", "ErasureReport",
           "PrivacySettings", "Pseudonymizer", "RedactUserPaths", "RetentionScheduler",
           "apply_consent", "dumps_export", "erase_user", "export_user", "forget_erased",
           "forget_in_engine", "get_consent", "purge", "set_consent", "suppress",
           "suppress_matrix"]
