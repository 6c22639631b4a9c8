"""The service's micro-batching of encoder decisions (``routes/messages._Decider``), with a
stand-in assistant: batches of at most ``ENCODE_MAX`` in arrival order, short texts decided
on the event loop and long ones on a worker thread, errors handed to each waiting request,
and an idle encoder thread that ends and comes back with the next message."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from feedwise.care.assistant import Embedded
from feedwise.server.routes import messages as messages_route


class Helper:
    """``embed_many`` / ``decide_many`` that record their batches and threads."""

    uses_encoder = True

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.batches: list[list] = []
        self.decided: list[tuple[list, str]] = []  # (a batch's texts, the deciding thread)

    def embed_many(self, texts):
        if self.fail:
            raise RuntimeError("encoder down")
        self.batches.append(list(texts))
        time.sleep(0.005)  # an encoder call: later messages queue meanwhile
        return Embedded(list(texts), {i: i for i in range(len(texts))}, None)

    @property
    def decided_on(self) -> list[str]:
        return [thread for _, thread in self.decided]

    def decide_many(self, batch):
        self.decided.append((list(batch.texts), threading.current_thread().name))
        return [{"text": t, "n": len(batch.texts)} for t in batch.texts]


def run(helper, texts, *, spread: float = 0.0):
    d = messages_route._Decider(helper)

    async def main():
        async def one(k, t):
            await asyncio.sleep(spread * k)
            return await d.decide(t)

        loop_thread = threading.current_thread().name
        out = await asyncio.gather(*(one(k, t) for k, t in enumerate(texts)),
                                   return_exceptions=True)
        return out, loop_thread

    return d, *asyncio.run(main())


def test_batches_in_order_each_message_gets_its_own_decision():
    h = Helper()
    texts = [f"message {k}" for k in range(11)]
    _, out, loop_thread = run(h, texts)
    assert [o["text"] for o in out] == texts
    assert sum(len(b) for b in h.batches) == len(texts)
    assert max(len(b) for b in h.batches) <= messages_route.ENCODE_MAX
    assert [t for b in h.batches for t in b] == texts  # arrival order
    assert set(h.decided_on) == {loop_thread}  # short texts: decided on the event loop


def test_a_long_text_is_decided_off_the_loop():
    h = Helper()
    long = "x" * (messages_route.INLINE_CHARS + 1)
    texts = ["short", long, "short again", long]
    _, out, loop_thread = run(h, texts)
    assert [o["text"] for o in out] == texts
    assert sum(len(b) for b, _ in h.decided) == len(texts)
    for batch, thread in h.decided:  # a batch with a long text is decided off the loop
        if any(len(t) > messages_route.INLINE_CHARS for t in batch):
            assert thread.startswith("feedwise-care")
        else:
            assert thread == loop_thread


def test_an_encoder_failure_reaches_every_waiting_request():
    _, out, _ = run(Helper(fail=True), ["a", "b", "c"])
    assert all(isinstance(o, RuntimeError) and "encoder down" in str(o) for o in out)


def test_an_idle_encoder_thread_ends_and_a_new_one_starts(monkeypatch):
    monkeypatch.setattr(messages_route, "ENCODE_IDLE_S", 0.05)
    h = Helper()
    d, out, _ = run(h, ["a"])
    assert out[0]["text"] == "a"
    deadline = time.monotonic() + 5
    while d.threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert d.threads == 0 and d.idle == 0

    async def again():
        return await d.decide("b")

    assert asyncio.run(again())["text"] == "b"


@pytest.mark.parametrize("jobs", [2])
def test_several_encoder_threads_share_the_queue(monkeypatch, jobs):
    monkeypatch.setattr(messages_route, "ENCODE_JOBS", jobs)
    h = Helper()
    texts = [f"m{k}" for k in range(20)]
    d, out, _ = run(h, texts, spread=0.001)
    assert [o["text"] for o in out] == texts
    assert d.threads <= jobs


def test_a_closed_loop_does_not_stop_the_encoder_thread():
    """Requests whose event loop closed before their batch was embedded (a client, or a test
    app, gone) are dropped; the thread goes on serving the next loop."""
    h = Helper()
    gate = threading.Event()
    real = h.embed_many

    def slow(texts):
        gate.wait(5)
        return real(texts)

    h.embed_many = slow
    d = messages_route._Decider(h)

    async def leave():  # queue a message, then let the loop close under it
        asyncio.ensure_future(d.decide("orphan"))
        await asyncio.sleep(0.05)

    asyncio.run(leave())
    gate.set()

    async def again():
        return await asyncio.wait_for(d.decide("next"), 5)

    assert asyncio.run(again())["text"] == "next"
    assert d.threads == 1
