"""Erasure: delete a user everywhere, and keep erased or opted-out users out of models."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel

from feedwise.feed.engine import FeedEngine
from feedwise.models.base import Recommender
from feedwise.schema import utc
from feedwise.store import EventStore

log = logging.getLogger("feedwise.privacy")


class ErasureReport(BaseModel):
    """What an erasure removed (counts only: the report never repeats the id)."""

    deleted: dict[str, int]
    models: int = 0
    engines: int = 0
    erased_at: datetime

    @property
    def rows(self) -> int:
        return sum(self.deleted.values())


def forget_in_engine(engine: FeedEngine, stored_id: str) -> bool:
    """Remove a user from a running :class:`~feedwise.feed.engine.FeedEngine` through
    :meth:`~feedwise.feed.engine.FeedEngine.forget_user` (its recommender, its user table
    row and its cross-request state).

    Returns:
        ``True`` if the engine held anything about the user.
    """
    return engine.forget_user(stored_id)


def erase_user(store: EventStore, user_id: str, *, now: datetime,
               models: Iterable[Recommender] = (), engines: Iterable[FeedEngine] = ()
               ) -> ErasureReport:
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


def forget_erased(store: EventStore, model: Recommender, *, opted_out: bool = True) -> int:
    """Remove from a loaded model every user erased after it was trained (a registry
    version, a hot swap), checked against the store's tombstones, and (with
    ``opted_out``) every user who withdrew ``personalization`` consent, so no profile of
    theirs is used. Returns the number of users removed."""
    if not hasattr(model, "user_index_"):
        return 0
    users = list(model.user_index_)
    gone_ids = store.erased_ids(users) | (store.opted_out_users() if opted_out else set())
    gone = [u for u in users if u in gone_ids]
    for u in gone:
        model.forget_user(u)
    if gone:
        log.info("removed %d erased or opted-out user(s) from a loaded model", len(gone))
    return len(gone)
