"""The relay: a worker's event batches and impressions reach the owner without HTTP.

With ``feedwise serve --workers N`` only the owner writes to the store. A worker checks an
event batch's key and the body's limits itself and hands the body to the owner over a
private socket pair made when the worker is started; the owner decodes and checks it as
its own ``POST /v1/events`` does (on the same decoding thread), puts the rows on its
:class:`~feedwise.server.writer.Writer` and sends back the answer
(:func:`feedwise.server.routes.events.relayed`). Forwarding the request over HTTP cost the
owner a whole request (parsing, routing, the answer) and the worker an HTTP client's
exchange.

The impressions of the feeds a worker served (and its ad impressions) take the same way
(:class:`ServedBatch`, every ``impressions_flush_s``, one frame each), and so do its polls
(:class:`DeltaAsk`, every ``worker_poll_s``): as HTTP requests they were a dozen chunks a
flush and two polls a second through an HTTP client, whose objects the worker's collector
then walked, and as many requests parsed and routed by the owner.

Frames on the socket are a header (payload length, job id) and a pickle. Only the owner's
own child holds the other end (inherited, never bound to a name), so a frame is trusted as
the worker's.
"""

from __future__ import annotations

import functools
import itertools
import logging
import pickle
import queue
import socket
import struct
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from feedwise.server.writer import WriterClosedError

log = logging.getLogger("feedwise.server.relay")

_HEAD = struct.Struct("!IQ")  # payload bytes, job id
_MAX_FRAME = 256 << 20  # a frame larger than any batch the body limits let through
_GONE = "the owner process is gone; retry"


@dataclass(frozen=True)
class ServedBatch:
    """A worker's impressions (event column -> one value per row) and its numbered batches
    of ad impressions (:mod:`feedwise.feed.adshare`), for the owner's writer and ad state;
    answered with the rows taken."""

    columns: dict[str, list[Any]]
    ads: Any = None


@dataclass(frozen=True)
class DeltaAsk:
    """A worker's poll: what landed after these positions (the engagement, posts, ad log
    and recomputed lists), answered with the JSON of ``GET /v1/workers/delta``."""

    since: int
    since_post: int = -1
    since_ad: int = -1
    worker: str = ""
    limit: int = 50_000
    since_lists: int = 0


def _read(sock: socket.socket) -> tuple[int, bytearray] | None:
    """One frame (job id, payload), or None at the end of the stream."""
    head = _exactly(sock, _HEAD.size)
    if head is None:
        return None
    n, job = _HEAD.unpack(head)
    if n > _MAX_FRAME:
        raise ValueError(f"relay frame of {n} bytes (most: {_MAX_FRAME})")
    body = _exactly(sock, n)
    if body is None:
        return None
    return job, body


def _exactly(sock: socket.socket, n: int) -> bytearray | None:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            return None
        got += k
    return buf  # struct and pickle read it as it is: no copy


def _frame(job: int, payload: Any) -> bytes:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEAD.pack(len(data), job) + data


class _Sender:
    """Frames sent in order by one thread (a writer callback or the event loop never
    waits on a full socket)."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock = sock
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, job: int, payload: Any) -> None:
        self._q.put((job, payload))

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            try:
                self.sock.sendall(_frame(*item))
            except OSError:
                return  # the reader sees the end of the stream and fails what waits

    def stop(self) -> None:
        self._q.put(None)
        self._thread.join(5)


class RelayOwner:
    """The owner's end: ``handle(payload, reply)`` is called on the relay's thread for
    every frame; ``reply(answer)`` may be called later, from any thread (the writer's)."""

    def __init__(self, handle: Callable[[Any, Callable[[Any], None]], None]) -> None:
        self.handle = handle

    def serve(self, sock: socket.socket) -> None:
        """Take frames from one worker's socket (a thread, until the worker closes it)."""
        threading.Thread(target=self._run, args=(sock,), name="feedwise-relay",
                         daemon=True).start()

    def _run(self, sock: socket.socket) -> None:
        sender = _Sender(sock, "feedwise-relay-answer")
        try:
            while True:
                got = _read(sock)
                if got is None:
                    return
                job, body = got
                reply = functools.partial(sender.put, job)
                try:
                    self.handle(pickle.loads(body), reply)
                except Exception as e:  # noqa: BLE001 - answered, and the relay goes on
                    log.exception("a relayed batch failed")
                    reply(Failure(str(e) or type(e).__name__))
        except (OSError, ValueError):
            log.exception("the event relay from a worker broke")
        finally:
            sender.stop()
            sock.close()


class Failure(str):
    """The answer to a frame the owner could not handle (what waits on it fails with
    :class:`WriterClosedError`: a request answers 503)."""


class RelayWorker:
    """The worker's end: :meth:`submit` a payload, get the owner's answer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._ids = itertools.count(1)
        self._waiting: dict[int, Future] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._sender = _Sender(sock, "feedwise-relay-send")
        self._reader = threading.Thread(target=self._run, name="feedwise-relay-read",
                                        daemon=True)
        self._reader.start()

    def submit(self, payload: Any) -> Future:
        """Send ``payload`` to the owner; the future resolves to its answer, or fails with
        :class:`WriterClosedError` when the owner is gone."""
        fut: Future = Future()
        with self._lock:
            if self._closed:
                raise WriterClosedError(_GONE)
            job = next(self._ids)
            self._waiting[job] = fut
        self._sender.put(job, payload)
        return fut

    def _run(self) -> None:
        try:
            while True:
                got = _read(self.sock)
                if got is None:
                    break
                job, body = got
                answer = pickle.loads(body)
                with self._lock:
                    fut = self._waiting.pop(job, None)
                if fut is None:
                    continue
                with suppress(InvalidStateError):  # the request gave up waiting
                    if isinstance(answer, Failure):
                        fut.set_exception(WriterClosedError(str(answer)))
                    else:
                        fut.set_result(answer)
        except (OSError, ValueError, pickle.UnpicklingError):
            log.exception("the event relay to the owner broke")
        finally:
            with self._lock:
                self._closed = True
                waiting, self._waiting = self._waiting, {}
            for fut in waiting.values():
                with suppress(InvalidStateError):
                    fut.set_exception(WriterClosedError(_GONE))

    def close(self) -> None:
        """Stop sending; what was sent is still answered until the owner closes its end."""
        self._sender.stop()
        with suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
        self._reader.join(10)
        self.sock.close()
