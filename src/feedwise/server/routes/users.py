"""``PUT/GET/DELETE /v1/users/{user_id}``: consent flags and attributes, erasure, export.

Ids in paths are external ids; with ``FEEDWISE_PSEUDONYM_KEY`` set the store only holds
their pseudonyms (:meth:`ServiceState.user_key`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field, field_validator

from feedwise.privacy import ErasureReport, erase_user, export_user, set_consent
from feedwise.schema import Consent, User
from feedwise.server.deps import AdminKey, State
from feedwise.server.routes._common import ID_MAX, is_text, loads_json, wait
from feedwise.store import EventStore

router = APIRouter(prefix="/v1/users", tags=["users"])

UserId = Annotated[str, Path(min_length=1, max_length=ID_MAX)]


class UserBody(BaseModel):
    """Consent flags (all granted by default) and free attributes."""

    model_config = ConfigDict(extra="forbid")

    consent: Consent = Field(default_factory=Consent)
    attributes: dict[str, Any] = Field(default_factory=dict, max_length=200)

    @field_validator("attributes")
    @classmethod
    def _text(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = _broken_text(v, "attributes")
        if bad:
            raise ValueError(f"{bad} holds a lone UTF-16 surrogate (an unpaired "
                             "\\ud800-\\udfff escape); send valid Unicode text")
        return v


def _broken_text(v: Any, path: str) -> str | None:
    """The path of the first key or string under ``v`` that is not valid Unicode text."""
    if isinstance(v, str):
        return None if is_text(v) else path
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
    for k, x in items:
        sub = f"{path}.{k}" if isinstance(k, str) else f"{path}[{k}]"
        if isinstance(k, str) and not is_text(k):
            return sub.encode("utf-8", "backslashreplace").decode("utf-8")
        bad = _broken_text(x, sub)
        if bad:
            return bad.encode("utf-8", "backslashreplace").decode("utf-8")
    return None


class UserOut(UserBody):
    user_id: str
    consent_updated_at: datetime | None = None


@router.put("/{user_id}", response_model=UserOut, summary="Create or replace a user")
def put_user(user_id: UserId, body: UserBody, state: State, key: AdminKey) -> UserOut:
    """Consent applies from the next request: without ``personalization`` the user's feed
    and recommendations are not personal; without ``ads`` no ads are served."""
    user = User(user_id=user_id, consent=body.consent, attributes=body.attributes)
    c = body.consent

    def write(store: EventStore) -> None:
        # consent first: it refuses an erased id, and it appends to the consent log
        set_consent(store, user_id, now=datetime.now(UTC), source="api",
                    personalization=c.personalization, ads=c.ads, analytics=c.analytics)
        store.upsert_users([user])
        state.set_consent(state.user_key(user_id), c.personalization, c.ads)

    # no swap in between: one that read the consents before this write would otherwise
    # go on to serve a model that still holds the profile
    with state.swaps_paused():
        wait(state.writer.call(write, timeout=state.settings.write_timeout_s),
             state.settings.write_timeout_s)
        served = state.served
        if not c.personalization and served is not None:  # objection: profile not used
            served.model.forget_user(state.user_key(user_id))
    state.catalogue_changed()
    return get_user(user_id, state, key)


@router.get("/{user_id}", response_model=UserOut, responses={404: {"description": "Unknown"}},
            summary="One user")
def get_user(user_id: UserId, state: State, key: AdminKey) -> UserOut:
    r = state.store.get_user(state.user_key(user_id))
    if r is None:
        raise HTTPException(404, f"unknown user {user_id!r}")

    def flag(v: Any) -> bool:  # NULL is granted, as the service applies it (get_consent)
        return True if v is None else bool(v)

    return UserOut(user_id=user_id, consent_updated_at=r["consent_updated_at"],
                   consent=Consent(personalization=flag(r["consent_personalization"]),
                                   ads=flag(r["consent_ads"]),
                                   analytics=flag(r["consent_analytics"])),
                   attributes=loads_json(r["attributes"]) or {})


class ErasureOut(BaseModel):
    """What an erasure removed (rows per table; the loaded model and engine it reached)."""

    erased: bool = True
    deleted: dict[str, int]
    models: int
    engines: int
    erased_at: datetime


@router.delete("/{user_id}", response_model=ErasureOut, summary="Erase a user")
def delete_user(user_id: UserId, state: State, key: AdminKey) -> ErasureOut:
    """The right to erasure: delete the user's events, profile, segment membership,
    frequency-cap state and consent, remove them from the served model and feed engine at
    once, and record a tombstone so re-ingested old files never bring them back."""
    # no swap in between: one that read the tombstones before this erasure would otherwise
    # go on to serve a model (and engine) that still holds the user
    with state.swaps_paused():
        served = state.served
        models = [served.model] if served is not None else []
        engines = [served.policy] if served is not None and hasattr(served.policy, "state") \
            else []

        def run(store: EventStore) -> ErasureReport:
            return erase_user(store, user_id, now=datetime.now(UTC), models=models,
                              engines=engines)

        rep = wait(state.writer.call(run, timeout=state.settings.write_timeout_s),
                   state.settings.write_timeout_s)
    state.set_consent(state.user_key(user_id), True, True)  # no per-user entries left
    return ErasureOut(deleted=rep.deleted, models=rep.models, engines=rep.engines,
                      erased_at=rep.erased_at)


@router.get("/{user_id}/export", summary="Everything held about a user")
def export(user_id: UserId, state: State, key: AdminKey) -> dict[str, Any]:
    """The right of access: every stored row about the user (events, consent and its log,
    profile, ad impressions, rejected rows) as JSON."""
    return export_user(state.store, user_id, now=datetime.now(UTC))
