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
from concurrent.futures import Future, ThreadPoolExecutor
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

    def submit(self, row: dict, reply: dict | None, *, wait: bool = True) -> Future:
        """Queue a message's row; ``wait=False`` when the requests that may join it are
        already running on the loop (those decided in one encoder batch resume together):
        the job is then scheduled behind them, with no timer."""
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
            if loop is None:
                self._schedule()
            elif wait and BATCH_WAIT_S > 0:
                loop.call_later(BATCH_WAIT_S, self._schedule)
            else:
                loop.call_soon(self._schedule)
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


#: Concurrent messages for an assistant that runs the sentence encoder are decided together,
#: off the event loop, in two steps. The encoder step (:meth:`CareAssistant.embed_many`: one
#: encoder call a batch) runs on a thread of its own, one batch after another: a batch holds
#: at most :data:`ENCODE_MAX` messages, and the first message after an idle spell waits
#: :data:`ENCODE_WAIT_S` for the others of its round. The rest of each message's decision
#: (:meth:`CareAssistant.decide_many`, about 0.8 ms a message) runs on the event loop, as a
#: TF-IDF model's does, beside the next batch's encoder call (on a worker thread when a
#: text is longer than :data:`INLINE_CHARS`, so no request stalls the loop). The encoder
#: releases the GIL, so on 2 cores it keeps one busy while the event loop and the writer
#: share the other; deciding on a thread pool instead measured about 10 % fewer messages/s
#: (thread hand-offs). Batches of 4 measured more messages/s at 8 clients than batches of 8
#: or 16 (docs/care.md). ``FEEDWISE_CARE_ENCODE_JOBS`` runs that many encoder threads (two
#: measured about 15 % fewer messages/s on 2 cores).
ENCODE_WAIT_S = 0.002
ENCODE_MAX = 4
ENCODE_JOBS = max(1, int(os.environ.get("FEEDWISE_CARE_ENCODE_JOBS") or 1))
#: An encoder thread with nothing to do for this long ends (a new one starts with the next
#: message), so replaced assistants leave no threads behind.
ENCODE_IDLE_S = 30.0

# the decisions' step: a small pool shared by every decider (the GIL bounds it anyway)
_decisions = ThreadPoolExecutor(max_workers=2, thread_name_prefix="feedwise-care")


class _Decider:
    """Micro-batches the decisions of one encoder assistant (see :data:`ENCODE_MAX`)."""

    def __init__(self, helper: CareAssistant) -> None:
        self.helper = helper
        self.cond = threading.Condition()
        self.queue: list[tuple[Any, asyncio.Future, asyncio.AbstractEventLoop]] = []
        self.threads = 0  # encoder threads alive
        self.idle = 0  # of which waiting for messages

    async def decide(self, text: Any) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        with self.cond:
            self.queue.append((text, fut, loop))
            start = self.idle == 0 and self.threads < ENCODE_JOBS
            if start:
                self.threads += 1
            else:
                self.cond.notify()
        if start:
            threading.Thread(target=self._encode, name="feedwise-encoder", daemon=True).start()
        return await fut

    def _take(self, first: bool) -> list | None:
        """The next batch; ``None`` when the thread has been idle for :data:`ENCODE_IDLE_S`
        (it is then no longer counted)."""
        with self.cond:
            waited = first
            while not self.queue:
                self.idle += 1
                try:
                    woken = self.cond.wait(ENCODE_IDLE_S)
                finally:
                    self.idle -= 1
                if not woken and not self.queue:
                    self.threads -= 1
                    return None
                waited = True
            waited = waited and len(self.queue) < ENCODE_MAX
        if waited:  # an idle spell ends: let the rest of this round arrive
            time.sleep(ENCODE_WAIT_S)
        with self.cond:
            batch, self.queue = self.queue[:ENCODE_MAX], self.queue[ENCODE_MAX:]
        return batch

    def _encode(self) -> None:
        first = True
        while (batch := self._take(first)) is not None:
            first = False
            if not batch:  # another encoder thread took them
                continue
            try:
                embedded: Any = self.helper.embed_many([t for t, _, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                embedded = exc
            loops = {id(loop) for _, _, loop in batch}
            try:
                if len(loops) == 1 and all(_short(t) for t, _, _ in batch):
                    batch[0][2].call_soon_threadsafe(self._decide, batch, embedded)
                else:  # a long text (or several loops): not on an event loop
                    _decisions.submit(self._decide, batch, embedded)
            except RuntimeError:  # the loop closed under its requests: nobody waits
                continue

    def _decide(self, batch: list, embedded: Any) -> None:
        results = embedded
        if not isinstance(results, BaseException):
            try:
                results = self.helper.decide_many(embedded)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                results = exc
        for k, (_, fut, loop) in enumerate(batch):
            got = results if isinstance(results, BaseException) else results[k]
            if _on(loop):
                _settle(fut, got)
                continue
            try:
                loop.call_soon_threadsafe(_settle, fut, got)
            except RuntimeError:  # the loop closed under this request: nobody waits
                pass


def _short(text: Any) -> bool:
    return text is None or len(text) <= INLINE_CHARS


def _on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _settle(fut: asyncio.Future, got: Any) -> None:
    if fut.done():  # the request was cancelled (its client went away)
        return
    if isinstance(got, BaseException):
        fut.set_exception(got)
    else:
        fut.set_result(got)


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
    if built.uses_encoder:  # the encoder's first call builds its sessions (OpenVINO:
        built.embed(["warm up"])  # about 0.4 s): here, not in a customer's message
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
    said = dumps(decision)  # stored with the message and sent back: encoded once
    row = {"message_id": body.message_id, "user_id": body.user_id, "channel": body.channel,
           "text": None if decision["problem"] else text,
           "language": decision["language"], "ts": ts, "intent": decision["intent"],
           "kind": decision["kind"], "confidence": decision["confidence"],
           "routing": r["decision"], "reason": "; ".join(r["reasons"]),
           "answer_id": decision["answer_id"], "decision": said}

    reply = ({"reply_id": f"{body.message_id}:auto", "agent": "auto",
              "text": decision["reply"], "ts": ts, "auto": True, "resolves": True,
              "answer_id": decision["answer_id"]} if r["decision"] == "auto" else None)
    # the duplicate check is the insert itself (nothing written twice); an erased user's
    # message is not stored
    # (batched at once when the messages were decided together: they resume together)
    stored, created = await await_future(
        batcher(state).submit(row, reply, wait=not helper.uses_encoder),
        state.settings.write_timeout_s)
    if stored is not None and not created:  # the id is already stored: answer as stored
        return Response(dumps(_existing(body, stored).model_dump()),
                        media_type="application/json")
    # the body is written here (MessageOut's fields, in its order; not stored: an erased
    # user's message): validating the decision again on the way out would cost more than
    # reading the message
    head = {"message_id": body.message_id, "stored": stored is not None, "duplicate": False}
    return Response(f"{dumps(head)[:-1]},\"decision\":{said}}}",
                    media_type="application/json")


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
