"""Raw model output: a user's recommendations and an item's similar items."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel

from feedwise.errors import NotFoundError
from feedwise.itemlist import ItemList
from feedwise.server.deps import ServingDeps, State
from feedwise.server.routes._common import ID_MAX

router = APIRouter(tags=["recommendations"])

Id = Annotated[str, Path(min_length=1, max_length=ID_MAX)]
N = Annotated[int, Query(ge=1, le=1000)]


class Ranked(BaseModel):
    rank: int
    item_id: str
    score: float
    reason: str


class RankedList(BaseModel):
    model_version: str
    items: list[Ranked]


def _out(version: str, items: ItemList) -> RankedList:
    return RankedList(model_version=version,
                      items=[Ranked(**r) for r in items.to_records()])


def _check_n(n: int, state: State) -> None:
    if n > state.settings.max_n:
        raise HTTPException(422, f"n={n} is above the limit {state.settings.max_n}")


@router.get("/v1/users/{user_id}/recommendations", response_model=RankedList,
            summary="A user's top-n items from the served model")
async def recommendations(user_id: Id, deps: ServingDeps, n: N = 10) -> RankedList:
    """Top-``n`` items (users unknown to the model get popular items, reason says so)."""
    state, served = deps.state, deps.served
    _check_n(n, state)
    uid = state.user_key(user_id)  # the pseudonym when ids are pseudonymised
    personal = uid not in state.no_personalization
    user = uid if personal else "\x00anonymous"
    return _out(served.version, served.model.recommend([user], n, exclude_seen=personal)[0])


@router.get("/v1/items/{item_id}/similar", response_model=RankedList,
            responses={404: {"description": "Unknown item"}},
            summary="Items similar to an item")
async def similar(item_id: Id, deps: ServingDeps, n: N = 10) -> RankedList:
    """Items most similar to ``item_id`` under the served model (404 if it does not know it)."""
    state, served = deps.state, deps.served
    _check_n(n, state)
    try:
        items = served.model.similar_items(item_id, n)
    except NotFoundError:
        raise HTTPException(404, f"unknown item {item_id!r}") from None
    return _out(served.version, items)
