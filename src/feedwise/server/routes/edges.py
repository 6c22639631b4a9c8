"""``POST /v1/edges`` (follow, unfollow, friend, unfriend, block, unblock, trust) and
``GET /v1/users/{user_id}/suggested`` (people you may know).

Edges go through the store's one edge validator (:meth:`EventStore.add_edges`) on the
writer thread: a bad row is answered with its row number, field and fix, and the valid
rows of the batch still land. Ids are external ids (pseudonymised by the store when
``FEEDWISE_PSEUDONYM_KEY`` is set).

Suggestions come from :class:`~feedwise.graph.pymk.PeopleYouMayKnow` fitted on the graph
standing now and the training view (both without the users who withdrew personalisation
consent), refitted when the store's edges or events change. A user who withdrew that
consent gets no suggestions (and is suggested to no one).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from feedwise.graph.pymk import PeopleYouMayKnow
from feedwise.server.deps import IngestKey, ReadKey, State
from feedwise.server.routes._common import ID_MAX, wait
from feedwise.store import EventStore

router = APIRouter(tags=["graph"])

MAX_EDGES = 10_000


class EdgeIn(BaseModel):
    """One act of the social graph: ``src_id`` follows (befriends, blocks, ...) ``dst_id``."""

    model_config = ConfigDict(extra="forbid")

    src_id: str = Field(min_length=1, max_length=ID_MAX)
    dst_id: str = Field(min_length=1, max_length=ID_MAX)
    kind: Literal["follow", "unfollow", "friend", "unfriend", "block", "unblock", "trust"]
    ts: datetime | None = None
    edge_id: str | None = Field(default=None, max_length=ID_MAX)


class EdgesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    edges: list[EdgeIn] = Field(min_length=1, max_length=MAX_EDGES)


class EdgeReject(BaseModel):
    row: int
    field: str
    reason: str


class EdgesOut(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    erased_users_skipped: int
    rejects: list[EdgeReject] = Field(default_factory=list)


@router.post("/v1/edges", response_model=EdgesOut, summary="Add social-graph edges")
def post_edges(body: EdgesIn, state: State, key: IngestKey) -> EdgesOut:
    """Land follow / unfollow / friend / unfriend / block / unblock / trust acts. A time
    left out is the time of the request (an edge is dated, so a replay at an earlier time
    does not see it)."""
    now = datetime.now().astimezone()
    rows = [{**e.model_dump(), "ts": e.ts or now} for e in body.edges]
    source = f"api:edges:{now.isoformat()}"

    def land(store: EventStore) -> tuple[Any, Any]:
        rep = store.add_edges(rows, source_name=source)
        bad = store.rejects(source) if rep.rejected else None
        return rep, bad

    rep, bad = wait(state.writer.call(land, timeout=state.settings.write_timeout_s),
                    state.settings.write_timeout_s)
    if rep.accepted:
        state.catalogue_changed()  # the feed engine reads the graph: rebuild it
    rejects = [] if bad is None else [EdgeReject(row=int(r.row), field=str(r.field),
                                                 reason=str(r.reason))
                                      for r in bad.itertuples()]
    return EdgesOut(accepted=rep.accepted, duplicates=rep.duplicates, rejected=rep.rejected,
                    erased_users_skipped=rep.erased, rejects=rejects)


class Suggestion(BaseModel):
    user_id: str
    score: float
    common: int
    reason: str


class SuggestionsOut(BaseModel):
    user_id: str
    suggestions: list[Suggestion]
    note: str | None = None


_CACHE: dict[int, tuple[tuple, PeopleYouMayKnow]] = {}
_LOCK = threading.Lock()


def suggester(store: EventStore) -> PeopleYouMayKnow | None:
    """The fitted suggester of ``store`` (refitted when its edges or events changed);
    ``None`` when the graph is too small to learn from."""
    sig = (len(store.edge_log()), store.count_events())
    with _LOCK:
        hit = _CACHE.get(id(store))
        if hit is not None and hit[0] == sig:
            return hit[1]
        edges = store.edges_as_of(exclude_objectors=True)
        try:
            model = PeopleYouMayKnow().fit(edges, store.interactions())
        except Exception:  # noqa: BLE001 - too few edges (or none): no suggestions
            model = None
        if model is not None:
            _CACHE[id(store)] = (sig, model)
        return model


@router.get("/v1/users/{user_id}/suggested", response_model=SuggestionsOut,
            summary="People the user may know")
def get_suggested(user_id: Annotated[str, Path(min_length=1, max_length=ID_MAX)],
                  state: State, key: ReadKey,
                  n: Annotated[int, Query(ge=1, le=100)] = 10) -> SuggestionsOut:
    """Up to ``n`` people to follow or befriend, best first, each with the reason (common
    connections, shared taste). Never someone already followed, befriended or trusted,
    nor anyone blocked in either direction."""
    store = state.store
    stored = state.user_key(user_id)
    objectors = store.opted_out_users()
    if stored in objectors:
        return SuggestionsOut(user_id=user_id, suggestions=[],
                              note="personalisation consent withdrawn: no suggestions")
    model = suggester(store)
    if model is None:
        return SuggestionsOut(user_id=user_id, suggestions=[],
                              note="the social graph is too small to suggest from")
    df = model.suggest(stored, n, exclude=objectors)
    return SuggestionsOut(user_id=user_id, suggestions=[
        Suggestion(user_id=str(r.suggested_id), score=float(r.score), common=int(r.common),
                   reason=str(r.reason)) for r in df.itertuples()])
