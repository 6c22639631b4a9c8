"""``POST /v1/messages`` and ``POST /v1/messages/{id}/reply``: the customer-care assistant.

``POST /v1/messages`` takes one customer message (a comment or a direct message) and
answers with the recognised intent, the suggested answers (each with its score and why)
and the routing decision (``auto`` with the reply, or ``human`` with the queue and the
reasons); the message and the decision are stored, and an automatic reply is stored as a
reply by agent ``auto``. ``POST /v1/messages/{id}/reply`` records what was sent and by
whom; ``POST /v1/messages/{id}/rating`` a follow-up satisfaction rating (1-5).

Idempotent: a message id already stored gets the stored decision back (``duplicate:
true``), nothing is written twice; the same message id with another text is a 409. A reply
id already stored is likewise returned as it is.

Privacy: messages and replies carry the customer's (stored) user id, so erasure, export
and retention cover them. A message from an erased user is answered but not stored
(``stored: false``). The assistant uses no personal data (only the text of the message),
so a ``personalization`` objection changes nothing here; users who withdrew ``analytics``
consent are left out of the care KPIs.

The intent model is the file named by ``FEEDWISE_CARE_MODEL`` (``feedwise intents train
--out``); without it only the default classes are recognised and nothing is sent
automatically. A model that reads sentence embeddings (e.g. ``--recipe all-data``) decides
concurrent messages together on a worker thread, one encoder call a batch
(:data:`ENCODE_WAIT_S`); a TF-IDF model decides each message on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from feedwise.care.assistant import CareAssistant
from feedwise.server.deps import IngestKey, ServiceState, State, dumps
from feedwise.server.routes._common import ID_MAX, await_future, is_text, wait
from feedwise.store import EventStore

router = APIRouter(prefix="/v1/messages", tags=["messages"])

MessageId = Annotated[str, Path(min_length=1, max_length=ID_MAX)]
MODEL_ENV = "FEEDWISE_CARE_MODEL"

#: How long a knowledge-base version is trusted before the store is asked again (s).
KB_CHECK_S = 1.0

# per service state: (knowledge-base version, when it was checked, the assistant)
_assistants: dict[int, tuple[int, float, CareAssistant]] = {}
_lock = threading.Lock()


#: How long the first message of a batch waits for others before the batch is handed to
#: the writer (s): a write costs about 2 ms of CPU per transaction plus a little per row,
#: so under load a short wait buys larger batches and less CPU per message.
BATCH_WAIT_S = 0.005


class _Batcher:
    """Messages of concurrent requests written in one writer job and one transaction
    (``store.add_messages``): a request queues its row and waits; the first one of a
    batch schedules the job (after :data:`BATCH_WAIT_S` when called on the event loop),
    which takes every row queued by the time it runs."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state
        self.lock = threading.Lock()
        self.queue: list[tuple[dict, dict | None, Future]] = []
        self.scheduled = False

    def submit(self, row: dict, reply: dict | None) -> Future:
        fut: Future = Future()
        with self.lock:
            self.queue.append((row, reply, fut))
            first = not self.scheduled
            self.scheduled = True
        if first:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on an event loop: hand it over now
                loop = None
            if loop is not None and BATCH_WAIT_S > 0:
                loop.call_later(BATCH_WAIT_S, self._schedule)
            else:
                self._schedule()
        return fut

    def _schedule(self) -> None:
        try:
            self.state.writer.call(self._drain, timeout=self.state.settings.write_timeout_s)
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting request
            with self.lock:
                batch, self.queue, self.scheduled = self.queue, [], False
            for _, _, f in batch:
                f.set_exception(exc)

    def _drain(self, store: EventStore) -> None:
        with self.lock:
            batch, self.queue, self.scheduled = self.queue, [], False
        try:
            results = store.add_messages([b[0] for b in batch], [b[1] for b in batch])
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting request
            for _, _, f in batch:
                f.set_exception(exc)
            return
        for (_, _, f), res in zip(batch, results, strict=True):
            f.set_result(res)


_batchers: dict[int, _Batcher] = {}


def batcher(state: ServiceState) -> _Batcher:
    with _lock:
        b = _batchers.get(id(state))
        if b is None or b.state is not state:
            b = _batchers[id(state)] = _Batcher(state)
        return b


#: Concurrent messages for an assistant that runs the sentence encoder are decided together
#: (:meth:`CareAssistant.handle_many`: one encoder call) on worker threads, off the event
#: loop: a batch starts after at most :data:`ENCODE_WAIT_S`, holds at most
#: :data:`ENCODE_MAX` messages (one ONNX Runtime thread each batch, see
#: ``feedwise.text.embeddings.threads_for``; texts of similar length run together, which
#: costs about a quarter less a message than one by one), and at most :data:`ENCODE_JOBS`
#: batches run at once (``FEEDWISE_CARE_ENCODE_JOBS``). One: ONNX Runtime releases the GIL,
#: so the batch runs on one core while the event loop, the writer and the next batch's
#: messages use the other, and batches grow under load (cheaper a message); two batches
#: at once measured about 15 % fewer messages/s on 2 cores (benchmarks/care.py, docs/care.md).
ENCODE_WAIT_S = 0.002
ENCODE_MAX = 16
ENCODE_JOBS = max(1, int(os.environ.get("FEEDWISE_CARE_ENCODE_JOBS") or 1))


class _Decider:
    """Micro-batches the decisions of one encoder assistant (see :data:`ENCODE_WAIT_S`)."""

    def __init__(self, helper: CareAssistant) -> None:
        self.helper = helper
        self.lock = threading.Lock()
        self.queue: list[tuple[Any, asyncio.Future]] = []
        self.running = 0
        self.timer = False

    async def decide(self, text: Any) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        with self.lock:
            self.queue.append((text, fut))
            go = not self.timer and self.running < ENCODE_JOBS
            self.timer = self.timer or go
        if go:
            loop.call_later(ENCODE_WAIT_S, self._launch, loop)
        return await fut

    def _launch(self, loop: asyncio.AbstractEventLoop) -> None:
        with self.lock:
            self.timer = False
            if not self.queue or self.running >= ENCODE_JOBS:
                return
            batch, self.queue = self.queue[:ENCODE_MAX], self.queue[ENCODE_MAX:]
            self.running += 1
            again = bool(self.queue) and self.running < ENCODE_JOBS
            self.timer = again
        loop.run_in_executor(None, self._run, loop, batch)
        if again:
            loop.call_soon(self._launch, loop)

    def _run(self, loop: asyncio.AbstractEventLoop, batch: list) -> None:
        try:
            results: Any = self.helper.handle_many([t for t, _ in batch])
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting request
            results = exc
        with self.lock:
            self.running -= 1
            again = bool(self.queue) and not self.timer
            self.timer = self.timer or again
        loop.call_soon_threadsafe(self._settle, batch, results)
        if again:
            loop.call_soon_threadsafe(self._launch, loop)

    @staticmethod
    def _settle(batch: list, results: Any) -> None:
        for k, (_, fut) in enumerate(batch):
            if fut.done():
                continue
            if isinstance(results, BaseException):
                fut.set_exception(results)
            else:
                fut.set_result(results[k])


_deciders: dict[int, _Decider] = {}


def decider(helper: CareAssistant) -> _Decider:
    with _lock:
        d = _deciders.get(id(helper))
        if d is None or d.helper is not helper:
            if len(_deciders) > 16:  # assistants rebuilt for new knowledge bases
                _deciders.clear()
            d = _deciders[id(helper)] = _Decider(helper)
        return d


def fresh_assistant(state: ServiceState) -> CareAssistant | None:
    """The cached assistant if its knowledge-base version was checked within
    :data:`KB_CHECK_S`, else ``None``."""
    got = _assistants.get(id(state))
    if got is not None and time.monotonic() - got[1] < KB_CHECK_S:
        return got[2]
    return None


def assistant(state: ServiceState) -> CareAssistant:
    """The state's assistant over the latest knowledge base (rebuilt when it changes; the
    version is looked up at most once per :data:`KB_CHECK_S`)."""
    now = time.monotonic()
    with _lock:
        got = _assistants.get(id(state))
    if got is not None and now - got[1] < KB_CHECK_S:
        return got[2]
    version = state.store.answers_version()
    if got is not None and got[0] == version:
        with _lock:
            _assistants[id(state)] = (version, now, got[2])
        return got[2]
    model = os.environ.get(MODEL_ENV) or None
    built = CareAssistant.from_store(state.store, model=model)
    with _lock:
        _assistants[id(state)] = (version, now, built)
    return built


def _text_only(v: str | None) -> str | None:
    if v is not None and not is_text(v):
        raise ValueError("holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff "
                         "escape); send valid Unicode text")
    return v


class MessageIn(BaseModel):
    """One customer message. ``text`` is not validated beyond JSON: whatever it holds
    (empty, binary, huge, another language) gets a decision, routed to a person if it
    cannot be read."""

    model_config = ConfigDict(extra="forbid")

    message_id: str = Field(min_length=1, max_length=ID_MAX)
    user_id: str = Field(min_length=1, max_length=ID_MAX)
    text: str | None = None
    channel: str = Field(default="dm", min_length=1, max_length=64)
    ts: datetime | None = None

    _ids_are_text = field_validator("message_id", "user_id", "channel")(_text_only)


class MessageOut(BaseModel):
    message_id: str
    stored: bool
    duplicate: bool = False
    decision: dict[str, Any]


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reply_id: str = Field(min_length=1, max_length=ID_MAX)
    agent: str = Field(min_length=1, max_length=ID_MAX)
    text: str = Field(max_length=10_000)
    ts: datetime | None = None
    resolves: bool = True
    answer_id: str | None = Field(default=None, max_length=ID_MAX)

    _text = field_validator("reply_id", "agent", "text", "answer_id")(_text_only)


class ReplyOut(BaseModel):
    reply_id: str
    message_id: str
    agent: str
    auto: bool
    resolves: bool
    ts: datetime
    duplicate: bool = False


class RatingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: float = Field(ge=1, le=5)
    ts: datetime | None = None


def _aware(ts: datetime | None) -> datetime:
    if ts is None:
        return datetime.now(UTC)
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


#: Messages up to this many characters are read on the event loop (about 2 ms of CPU);
#: longer ones on a worker thread, so a long text never stalls other requests.
INLINE_CHARS = 1000


@router.post("", response_model=MessageOut, summary="A customer message in: intent, "
             "suggested answers and a routing decision out")
async def post_message(body: MessageIn, state: State, key: IngestKey) -> Response:
    """Recognise the intent, suggest answers and route the message (module doc)."""
    text: str | bytes | None = body.text
    if text is not None and not is_text(text):  # lone surrogates: not UTF-8, unreadable
        text = text.encode("utf-8", "surrogatepass")
    helper = fresh_assistant(state)
    if helper is None:  # a version check or a rebuild touches the store: off the loop
        helper = await run_in_threadpool(assistant, state)
    if helper.uses_encoder:  # batched with concurrent messages, off the event loop
        decision = await decider(helper).decide(text)
    elif text is None or len(text) <= INLINE_CHARS:
        decision = helper.handle(text)
    else:
        decision = await run_in_threadpool(helper.handle, text)
    ts = _aware(body.ts)
    r = decision["routing"]
    row = {"message_id": body.message_id, "user_id": body.user_id, "channel": body.channel,
           "text": None if decision["problem"] else text,
           "language": decision["language"], "ts": ts, "intent": decision["intent"],
           "kind": decision["kind"], "confidence": decision["confidence"],
           "routing": r["decision"], "reason": "; ".join(r["reasons"]),
           "answer_id": decision["answer_id"], "decision": json.dumps(decision)}

    reply = ({"reply_id": f"{body.message_id}:auto", "agent": "auto",
              "text": decision["reply"], "ts": ts, "auto": True, "resolves": True,
              "answer_id": decision["answer_id"]} if r["decision"] == "auto" else None)
    # the duplicate check is the insert itself (nothing written twice); an erased user's
    # message is not stored
    stored, created = await await_future(batcher(state).submit(row, reply),
                                         state.settings.write_timeout_s)
    if stored is None:  # an erased user: answered, not stored
        out = {"message_id": body.message_id, "stored": False, "duplicate": False,
               "decision": decision}
    elif not created:  # the id is already stored: answer as it was stored
        out = _existing(body, stored).model_dump()
    else:
        out = {"message_id": body.message_id, "stored": True, "duplicate": False,
               "decision": decision}
    # the body is written here (MessageOut's fields, in its order): validating the decision
    # again on the way out would cost more than reading the message
    return Response(dumps(out), media_type="application/json")


def _existing(body: MessageIn, old: dict[str, Any]) -> MessageOut:
    stored_text = old.get("text")
    if stored_text is not None and body.text is not None and stored_text != body.text:
        raise HTTPException(409, f"message {body.message_id!r} is already stored with another "
                                 "text; give a new message id")
    try:
        decision = json.loads(old.get("decision") or "{}")
    except ValueError:
        decision = {}
    return MessageOut(message_id=body.message_id, stored=True, duplicate=True,
                      decision=decision)


@router.post("/{message_id}/reply", response_model=ReplyOut,
             responses={404: {"description": "Unknown message"}},
             summary="Record a reply that was sent, and by whom")
def post_reply(message_id: MessageId, body: ReplyIn, state: State, key: IngestKey
               ) -> ReplyOut:
    """Store what was sent to the customer (idempotent by ``reply_id``); a reply that
    ``resolves`` sets the message's resolution time."""
    if state.store.get_message(message_id) is None:
        raise HTTPException(404, f"unknown message {message_id!r}")
    row = {"reply_id": body.reply_id, "message_id": message_id, "agent": body.agent,
           "text": body.text, "ts": _aware(body.ts), "auto": False,
           "resolves": body.resolves, "answer_id": body.answer_id}
    stored, created = wait(state.writer.call(lambda s: s.add_reply(row),
                                             timeout=state.settings.write_timeout_s),
                           state.settings.write_timeout_s)
    if stored["message_id"] != message_id:
        raise HTTPException(409, f"reply {body.reply_id!r} is already stored for another "
                                 "message; give a new reply id")
    return ReplyOut(reply_id=stored["reply_id"], message_id=stored["message_id"],
                    agent=stored["agent"], auto=bool(stored["auto"]),
                    resolves=bool(stored["resolves"]), ts=stored["ts"], duplicate=not created)


@router.post("/{message_id}/rating", responses={404: {"description": "Unknown message"}},
             summary="A follow-up satisfaction rating (1-5)")
def post_rating(message_id: MessageId, body: RatingIn, state: State, key: IngestKey
                ) -> dict[str, Any]:
    """Record the customer's rating; the first one stands (a repeat changes nothing)."""
    if state.store.get_message(message_id) is None:
        raise HTTPException(404, f"unknown message {message_id!r}")
    written = wait(state.writer.call(
        lambda s: s.rate_message(message_id, body.rating, now=_aware(body.ts)),
        timeout=state.settings.write_timeout_s), state.settings.write_timeout_s)
    return {"message_id": message_id, "recorded": bool(written)}
