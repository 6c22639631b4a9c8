"""``PUT/PATCH/GET/DELETE /v1/users/{user_id}``: consent flags and attributes, erasure,
export.

``PUT`` replaces the whole user: every consent flag is required (a 422 names the missing
ones) and ``attributes`` replace the stored ones. ``PATCH`` changes only what it names:
the consent flags given, and the attribute keys given (``null`` removes a key). Either way
``consent_log`` gets a row for each flag whose value actually changed.

Ids in paths are external ids; with ``FEEDWISE_PSEUDONYM_KEY`` set the store only holds
their pseudonyms (:meth:`ServiceState.user_key`).
"""

from __future__ import annotations

import logging
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from feedwise.errors import DataError, FeedwiseError
from feedwise.privacy import ErasureReport, erase_user, export_user, set_consent
from feedwise.privacy.consent import CONSENT_FLAGS
from feedwise.privacy.erasure import DiskErasure, forget_on_disk
from feedwise.schema import Consent
from feedwise.server.bodies import MAX_JSON_DEPTH, depth_of, too_deep
from feedwise.server.deps import AdminKey, State
from feedwise.server.routes._common import ID_MAX, is_text, loads_json, stored_attributes, wait
from feedwise.store import EventStore

router = APIRouter(prefix="/v1/users", tags=["users"])

UserId = Annotated[str, Path(min_length=1, max_length=ID_MAX)]


ATTRIBUTES_MAX = 200  # keys of a user's attributes

_PARTIAL = ("PUT replaces the whole user, so it needs every consent flag ({flags}); "
            "missing: {missing}. Use PATCH /v1/users/{{id}} to change some flags and keep "
            "the others")


class FullConsent(BaseModel):
    """Every consent flag, each required (a ``PUT`` leaves none to a default)."""

    model_config = ConfigDict(extra="forbid")

    personalization: bool
    ads: bool
    analytics: bool

    @model_validator(mode="before")
    @classmethod
    def _every_flag(cls, v: Any) -> Any:
        if isinstance(v, dict):
            missing = [f for f in CONSENT_FLAGS if f not in v]
            if missing:
                raise ValueError(_PARTIAL.format(flags=", ".join(CONSENT_FLAGS),
                                                 missing=", ".join(missing)))
        return v


class ConsentPatch(BaseModel):
    """Some consent flags: those left out keep their value (``null`` is refused)."""

    model_config = ConfigDict(extra="forbid")

    personalization: bool | None = None
    ads: bool | None = None
    analytics: bool | None = None

    @field_validator(*CONSENT_FLAGS, mode="before")
    @classmethod
    def _not_null(cls, v: Any) -> Any:
        if v is None:
            raise ValueError("a consent flag is true or false; leave it out to keep its "
                             "value")
        return v


class UserBody(BaseModel):
    """``PUT``: the whole user. ``consent`` needs every flag; ``attributes`` replace the
    stored ones (none when left out)."""

    model_config = ConfigDict(extra="forbid")

    # validated when left out too, so the 422 says what a PUT needs (alongside any other
    # field's error)
    consent: FullConsent = Field(default=None, validate_default=True)
    attributes: dict[str, Any] = Field(default_factory=dict, max_length=ATTRIBUTES_MAX)

    @field_validator("consent", mode="before")
    @classmethod
    def _consent_given(cls, v: Any) -> Any:
        if v is None:
            raise ValueError(_PARTIAL.format(flags=", ".join(CONSENT_FLAGS),
                                             missing="the consent object, so all of them"))
        return v

    @field_validator("attributes")
    @classmethod
    def _text(cls, v: dict[str, Any]) -> dict[str, Any]:
        if depth_of(v) > MAX_JSON_DEPTH:  # stored values must serialise back (GET)
            raise ValueError(too_deep("attributes"))
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


class UserPatch(UserBody):
    """``PATCH``: what changes. Consent flags left out keep their value; ``attributes``
    are merged by key (a key given replaces that key's value, a key given as ``null`` is
    removed, keys left out are kept)."""

    consent: ConsentPatch = Field(default_factory=ConsentPatch)
    attributes: dict[str, Any] | None = Field(default=None, max_length=ATTRIBUTES_MAX)

    @field_validator("consent", mode="before")
    @classmethod
    def _consent_given(cls, v: Any) -> Any:  # replaces UserBody's: here it may be left out
        if v is None:
            raise ValueError("consent is an object of the flags to change; leave it out to "
                             "keep them all")
        return v


class UserOut(BaseModel):
    user_id: str
    consent: Consent
    attributes: dict[str, Any]
    consent_updated_at: datetime | None = None


@router.put("/{user_id}", response_model=UserOut, summary="Create or replace a user")
def put_user(user_id: UserId, body: UserBody, state: State, key: AdminKey) -> UserOut:
    """Replace the whole user: every consent flag is required, and ``attributes`` replace
    the stored ones (none when left out). Only the flags whose value changes are logged.

    Consent applies from the next request: without ``personalization`` the user's feed
    and recommendations are not personal; without ``ads`` no ads are served."""
    return _write_user(user_id, state, key, flags=body.consent.model_dump(),
                       attributes=lambda old: dict(body.attributes))


@router.patch("/{user_id}", response_model=UserOut, summary="Change some of a user's "
              "consent flags or attributes")
def patch_user(user_id: UserId, body: UserPatch, state: State, key: AdminKey) -> UserOut:
    """Change only what the body names: the consent flags given (the others keep their
    value) and the attribute keys given (``null`` removes a key; the others are kept). An
    unknown user is created (flags not given: granted by default). Only the flags whose
    value changes are logged."""
    flags = body.consent.model_dump(exclude_unset=True)
    patch = body.attributes

    def merge(old: dict[str, Any]) -> dict[str, Any] | None:
        if patch is None:
            return None
        out = {**old, **patch}
        out = {k: v for k, v in out.items() if not (k in patch and patch[k] is None)}
        if len(out) > ATTRIBUTES_MAX:
            raise DataError(f"attributes would hold {len(out)} keys after this PATCH; at "
                            f"most {ATTRIBUTES_MAX} (remove keys with null)")
        return out

    return _write_user(user_id, state, key, flags=flags, attributes=merge)


def _write_user(user_id: str, state: State, key: AdminKey, *, flags: dict[str, bool],
                attributes: Any) -> UserOut:
    """Write consent ``flags`` (some or all) and ``attributes(old) -> new | None`` (None:
    unchanged) in one writer job, then make the consent effective on the served model."""

    def write(store: EventStore) -> tuple[bool, bool]:
        # set_consent refuses an erased id, and logs only the flags that change
        old = store.get_user(state.user_key(user_id))
        stored = loads_json(old["attributes"]) if old is not None else None
        new_attrs = attributes(stored if isinstance(stored, dict) else {})
        rec = set_consent(store, user_id, now=datetime.now(UTC), source="api",
                          attributes=new_attrs, **flags)
        state.set_consent(state.user_key(user_id), rec.personalization, rec.ads)
        return rec.personalization, rec.ads

    # no swap in between: one that read the consents before this write would otherwise
    # go on to serve a model that still holds the profile
    with state.swaps_paused():
        personal, _ = wait(state.writer.call(write, timeout=state.settings.write_timeout_s),
                           state.settings.write_timeout_s)
        served = state.served
        if not personal and served is not None:  # objection: profile not used
            for m in served.models:  # the served model and experiment arms' models
                m.forget_user(state.user_key(user_id))
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
                   attributes=stored_attributes(r["attributes"]))


class ErasureOut(BaseModel):
    """What an erasure removed (counts only): rows per table, other users' rows rewritten,
    the loaded model and engine it reached, the files on disk, and the store file."""

    erased: bool = True
    deleted: dict[str, int]
    scrubbed: dict[str, int] = Field(default_factory=dict)
    models: int
    engines: int
    files: DiskErasure = Field(default_factory=DiskErasure)
    #: The database file was rewritten (``False``: ``FEEDWISE_ERASURE_COMPACT`` is off, or
    #: the rewrite is still running on the writer after ``write_timeout_s``).
    compacted: bool = False
    erased_at: datetime


@router.delete("/{user_id}", response_model=ErasureOut, summary="Erase a user")
def delete_user(user_id: UserId, state: State, key: AdminKey) -> ErasureOut:
    """The right to erasure: delete the user's rows everywhere in the store (events,
    profile, segment membership, frequency-cap state, consent, rejected rows, the posts they
    authored, their id in other users' follow lists and event contexts), remove them from
    the served model and feed engine at once, record a tombstone so re-ingested old files
    never bring them back, rewrite every registry version and the saved models and exports
    under ``FEEDWISE_ERASURE_PATHS`` without them, and rewrite the database file
    (``FEEDWISE_ERASURE_COMPACT``). docs/privacy.md lists each place."""
    # no swap in between: one that read the tombstones before this erasure would otherwise
    # go on to serve a model (and engine) that still holds the user
    with state.swaps_paused():
        served = state.served
        models = served.models if served is not None else []  # with experiment arms' models
        engines = [served.policy] if served is not None and hasattr(served.policy, "state") \
            else []

        def run(store: EventStore) -> ErasureReport:
            return erase_user(store, user_id, now=datetime.now(UTC), models=models,
                              engines=engines)

        rep = wait(state.writer.call(run, timeout=state.settings.write_timeout_s),
                   state.settings.write_timeout_s)
    stored = state.user_key(user_id)
    state.set_consent(stored, True, True)  # no per-user entries left
    # files on disk, off the writer thread: a rewritten model file replaces the old one
    # atomically, and a version loaded later is cleaned against the tombstones anyway
    files = forget_on_disk([stored, user_id], registries=[state.registry],
                           folders=state.privacy.erasure_folders(), now=rep.erased_at)
    compacted = False
    if state.privacy.erasure_compact:
        job = state.writer.call(lambda store: store.compact(),
                                timeout=state.settings.write_timeout_s)
        try:
            compacted = bool(job.result(state.settings.write_timeout_s))
        except FutureTimeout:  # still rewriting on the writer: the erasure itself is done
            compacted = False
        except FeedwiseError as e:  # e.g. another connection holds the file: say so
            logging.getLogger("feedwise.privacy").warning(
                "the store file was not compacted after an erasure: %s", e)
            compacted = False
    return ErasureOut(deleted=rep.deleted, scrubbed=rep.scrubbed, models=rep.models,
                      engines=rep.engines, files=files, compacted=compacted,
                      erased_at=rep.erased_at)


@router.get("/{user_id}/export", summary="Everything held about a user")
def export(user_id: UserId, state: State, key: AdminKey) -> dict[str, Any]:
    """The right of access: every stored row about the user (events, consent and its log,
    profile, ad impressions, rejected rows) as JSON."""
    return export_user(state.store, user_id, now=datetime.now(UTC))
