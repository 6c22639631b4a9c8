"""``/v1/models``: registry versions, the served one, and promotion (hot swap)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel

from feedwise.errors import NotFoundError
from feedwise.registry import ModelVersion
from feedwise.server.deps import AdminKey, ReadKey, State

router = APIRouter(prefix="/v1/models", tags=["models"])


class ServedOut(BaseModel):
    version: str | None
    promoted: str | None
    meta: ModelVersion | None


class VersionList(BaseModel):
    versions: list[ModelVersion]
    promoted: str | None


def _served(state: State) -> ServedOut:
    s = state.served
    return ServedOut(version=s.version if s else None,
                     promoted=state.registry.promoted_version(),
                     meta=s.meta if s else None)


@router.get("", response_model=VersionList, summary="Every registered version")
def list_versions(state: State, key: ReadKey) -> VersionList:
    return VersionList(versions=state.registry.versions(),
                       promoted=state.registry.promoted_version())


@router.get("/current", response_model=ServedOut, summary="The version being served")
def current(state: State, key: ReadKey) -> ServedOut:
    return _served(state)


@router.post("/{version}/promote", response_model=ServedOut,
             responses={404: {"description": "Unknown version"}},
             summary="Promote a version and swap to it")
def promote(version: Annotated[str, Path(pattern=r"^v\d{4,}$", max_length=32)], state: State,
            key: AdminKey) -> ServedOut:
    """Requests in flight finish on the old version; new requests get the new one."""
    try:
        state.registry.promote(version, reason="api")
    except NotFoundError:
        raise HTTPException(404, f"unknown model version {version!r}") from None
    state.reload()
    return _served(state)
