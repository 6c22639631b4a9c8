"""``PUT/GET /v1/users/{user_id}``: consent flags and attributes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from feedwise.schema import Consent, User
from feedwise.server.deps import AdminKey, State
from feedwise.server.routes._common import ID_MAX, fetch_dicts, loads_json, wait

router = APIRouter(prefix="/v1/users", tags=["users"])

UserId = Annotated[str, Path(min_length=1, max_length=ID_MAX)]


class UserBody(BaseModel):
    """Consent flags (all granted by default) and free attributes."""

    model_config = ConfigDict(extra="forbid")

    consent: Consent = Field(default_factory=Consent)
    attributes: dict[str, Any] = Field(default_factory=dict, max_length=200)


class UserOut(UserBody):
    user_id: str
    consent_updated_at: datetime | None = None


@router.put("/{user_id}", response_model=UserOut, summary="Create or replace a user")
def put_user(user_id: UserId, body: UserBody, state: State, key: AdminKey) -> UserOut:
    """Consent applies from the next request: without ``personalization`` the user's feed
    and recommendations are not personal; without ``ads`` no ads are served."""
    user = User(user_id=user_id, consent=body.consent, attributes=body.attributes)

    def write(store):
        store.upsert_users([user])
        state.set_consent(user_id, body.consent.personalization, body.consent.ads)

    wait(state.writer.call(write, timeout=state.settings.write_timeout_s),
         state.settings.write_timeout_s)
    state.catalogue_changed()
    return get_user(user_id, state, key)


@router.get("/{user_id}", response_model=UserOut, responses={404: {"description": "Unknown"}},
            summary="One user")
def get_user(user_id: UserId, state: State, key: AdminKey) -> UserOut:
    rows = fetch_dicts(state.store, "SELECT * FROM users WHERE user_id = ?", [user_id])
    if not rows:
        raise HTTPException(404, f"unknown user {user_id!r}")
    r = rows[0]
    return UserOut(user_id=r["user_id"], consent_updated_at=r["consent_updated_at"],
                   consent=Consent(personalization=bool(r["consent_personalization"]),
                                   ads=bool(r["consent_ads"]),
                                   analytics=bool(r["consent_analytics"])),
                   attributes=loads_json(r["attributes"]) or {})
