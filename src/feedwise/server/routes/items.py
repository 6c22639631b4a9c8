"""``PUT/GET /v1/items``: the catalogue of posts and ad creatives."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from feedwise.schema import Item
from feedwise.server.deps import AdminKey, ReadKey, State
from feedwise.server.routes._common import ID_MAX, wait

router = APIRouter(prefix="/v1/items", tags=["items"])

ItemId = Annotated[str, Path(min_length=1, max_length=ID_MAX)]


class ItemBody(BaseModel):
    """An item's fields (its id is in the path)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["post", "ad"] = "post"
    author_id: str | None = Field(default=None, max_length=ID_MAX)
    created_at: datetime | None = None
    title: str | None = Field(default=None, max_length=1000)
    text: str | None = Field(default=None, max_length=100_000)
    tags: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list,
                                                              max_length=200)
    campaign_id: str | None = Field(default=None, max_length=ID_MAX)


class ItemOut(ItemBody):
    item_id: str


class ItemPage(BaseModel):
    items: list[ItemOut]
    limit: int
    offset: int


def _out(row: dict) -> ItemOut:
    row = dict(row)
    row["tags"] = list(row.get("tags") or [])
    return ItemOut(**row)


@router.put("/{item_id}", response_model=ItemOut, summary="Create or replace an item")
def put_item(item_id: ItemId, body: ItemBody, state: State, key: AdminKey) -> ItemOut:
    item = Item(item_id=item_id, **body.model_dump())
    wait(state.writer.call(lambda s: s.upsert_items([item]),
                           timeout=state.settings.write_timeout_s),
         state.settings.write_timeout_s)
    state.catalogue_changed(posts=[item] if item.kind == "post" else None)  # appended live
    return ItemOut(item_id=item_id, **body.model_dump())


@router.get("/{item_id}", response_model=ItemOut, responses={404: {"description": "Unknown"}},
            summary="One item")
def get_item(item_id: ItemId, state: State, key: ReadKey) -> ItemOut:
    row = state.store.get_item(item_id)
    if row is None:
        raise HTTPException(404, f"unknown item {item_id!r}")
    return _out(row)


@router.get("", response_model=ItemPage, summary="Items, a page at a time")
def list_items(state: State, key: ReadKey,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
               kind: Literal["post", "ad"] | None = None) -> ItemPage:
    rows = state.store.list_items(kind=kind, limit=limit, offset=offset)
    return ItemPage(items=[_out(r) for r in rows], limit=limit, offset=offset)
