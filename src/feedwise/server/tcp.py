"""Listening TCP sockets that asyncio marks ``TCP_NODELAY`` on every accepted connection.

asyncio turns Nagle's algorithm off for a connection only when the socket says it is TCP
(``family`` AF_INET/AF_INET6 *and* ``proto == IPPROTO_TCP``). A socket made with
``socket.socket(AF_INET)`` reports ``proto`` 0, and one rebuilt by uvicorn from a file
descriptor (``uvicorn.run(fd=...)``) reports AF_UNIX: connections accepted on either keep
Nagle on, and an answer written in two pieces (uvicorn sends the head, then the body) waits
for the client's delayed ACK, about 40 ms on Linux. That was the ~44 ms of every request of
``feedwise serve --workers 2`` at one client (docs/serving.md).
"""

from __future__ import annotations

import asyncio
import mmap
import os
import socket
import struct
from typing import Any


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A bound, listening TCP socket whose accepted connections get ``TCP_NODELAY``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


def adopt(fd: int) -> socket.socket:
    """The listening socket behind an inherited ``fd`` (a copy), with its real family and
    protocol read from the kernel (not assumed, as ``socket.fromfd`` does)."""
    return socket.socket(fileno=os.dup(fd))


def nodelay(sock: socket.socket) -> bool:
    """Whether ``sock`` has Nagle's algorithm off."""
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


#: Seconds a process of ``serve --workers N`` stays away from the shared socket after each
#: wake-up (its peers take the next connections meanwhile)
ACCEPT_PAUSE_S = 0.002

#: Most seconds a process holding more connections than a peer leaves the next one to it (a
#: peer too busy to accept, or gone, does not hold connections back longer)
MAX_DEFER_S = 0.05

#: Most seconds the owner of ``serve --workers N`` leaves a waiting connection to its
#: workers before it takes it itself (workers that accept nothing this long are stuck)
STANDBY_DEFER_S = 1.0

#: ``PATH:SLOT``: the :class:`AcceptBoard` file of ``serve --workers N`` and this process's
#: slot on it (the owner 0, its workers 1..)
BOARD_ENV = "FEEDWISE_ACCEPT_BOARD"


class AcceptBoard:
    """How many connections each process of ``serve --workers N`` holds open on the shared
    socket: one int32 per process in a small file every process maps (-1: not serving yet),
    after the shared socket's port. Each process writes its own slot.

    :class:`FairAcceptLoop` reads it before taking a connection: a worker that holds more
    connections than a serving peer leaves the next one to the peers (for at most
    :data:`MAX_DEFER_S`), so clients that keep their connections (load balancers,
    benchmark clients) spread evenly over the workers, whichever was busy when they
    connected. The owner (slot 0) serves until a worker is ready and then stands by: it
    leaves every connection to the workers (for at most :data:`STANDBY_DEFER_S`), and takes
    them again once none serves.
    """

    def __init__(self, path: str | os.PathLike, slot: int) -> None:
        with open(path, "r+b") as f:
            self._map = mmap.mmap(f.fileno(), 0)
        self.slot = slot
        self.n = len(self._map) // 4 - 1
        self.port = struct.unpack_from("<i", self._map, 0)[0]
        self.max_defer_s = STANDBY_DEFER_S if slot == 0 else MAX_DEFER_S
        self.open = 0

    @staticmethod
    def create(path: str | os.PathLike, processes: int, port: int) -> None:
        """The board of ``processes``: the owner's slot first, serving; the workers' not
        yet (each says :meth:`ready` once loaded)."""
        with open(path, "wb") as f:
            f.write(struct.pack(f"<{processes + 1}i", port, 0, *[-1] * (processes - 1)))

    @classmethod
    def from_env(cls) -> AcceptBoard | None:
        path, _, slot = os.environ.get(BOARD_ENV, "").rpartition(":")
        try:
            return cls(path, int(slot)) if path else None
        except (OSError, ValueError):  # no board: turns as before, no counting
            return None

    def counts(self) -> tuple[int, ...]:
        return struct.unpack_from(f"<{self.n}i", self._map, 4)

    def _publish(self) -> None:
        struct.pack_into("<i", self._map, 4 + 4 * self.slot, self.open)

    def ready(self) -> None:
        """This process serves from now on (its peers count it)."""
        self._publish()

    def gone(self) -> None:
        """This process stops serving (its peers no longer wait for it)."""
        struct.pack_into("<i", self._map, 4 + 4 * self.slot, -1)

    def add(self, d: int) -> None:
        self.open += d
        # a slot said gone stays gone (the worker's lifespan and its loop each map the
        # board: a connection closing during shutdown must not mark the worker serving)
        if struct.unpack_from("<i", self._map, 4 + 4 * self.slot)[0] >= 0:
            self._publish()

    def may_accept(self) -> bool:
        """Whether this process takes the next connection: the owner (slot 0) only while no
        worker serves (it stands by: its store's writer, the events' decoding and the lists'
        refresh keep its cores and its GIL); a worker while no serving worker holds fewer."""
        counts = self.counts()
        if self.slot == 0:
            return all(c < 0 for c in counts[1:])
        return all(c >= self.open for i, c in enumerate(counts)
                   if i and i != self.slot and c >= 0)

    def counted(self, factory: Any) -> Any:
        """``factory`` whose protocols count themselves on the board while connected."""
        def make() -> Any:
            protocol = factory()
            lost = protocol.connection_lost
            self.add(1)

            def connection_lost(exc: Exception | None) -> None:
                self.add(-1)
                lost(exc)

            protocol.connection_lost = connection_lost
            return protocol
        return make


class FairAcceptLoop(asyncio.SelectorEventLoop):
    """An event loop that takes at most ONE waiting connection per wake-up of a shared
    listening socket, then leaves the socket to its peers for :data:`ACCEPT_PAUSE_S`
    (asyncio's own loop takes up to ``backlog`` at once and comes straight back), and
    takes none while a peer holds fewer connections (:class:`AcceptBoard`).

    The processes of ``serve --workers N`` accept on one socket (the owner only while no
    worker serves). With the stock loop the first process to wake took every connection
    waiting — 16 keep-alive clients connecting
    together were split 13 : 3 or 14 : 2 between the owner and its worker, and the busier
    process then served most of the feeds. Taking one and stepping back, the processes
    took turns, but a process busy when the clients connected still took fewer and kept
    that share for as long as they stayed connected (about 12 : 4 in one measurement,
    whose larger share waited several times as long at the median). With the board the
    processes hold equal shares. A burst of connections waits at most
    ~``N x ACCEPT_PAUSE_S`` per connection for a process to take it (:data:`MAX_DEFER_S`
    if the least loaded one is busy); the listen backlog itself is unchanged.
    """

    _board: Any = False  # False: the environment not read yet; then an AcceptBoard or None

    def _board_for(self, sock: Any) -> AcceptBoard | None:
        if self._board is False:
            self._board = AcceptBoard.from_env()
        board = self._board
        try:
            return board if board is not None and sock.getsockname()[1] == board.port \
                else None
        except OSError:
            return None

    def _accept_connection(self, protocol_factory: Any, sock: Any, sslcontext: Any = None,
                           server: Any = None, backlog: int = 100, *args: Any,
                           **kwargs: Any) -> None:
        board = self._board_for(sock)

        def take() -> None:
            factory = protocol_factory if board is None else board.counted(protocol_factory)
            super(FairAcceptLoop, self)._accept_connection(factory, sock, sslcontext,
                                                           server, 1, *args, **kwargs)

        if board is None or board.may_accept():
            take()
        if server is None or not server.is_serving() or sock.fileno() < 0:
            return
        self._remove_reader(sock.fileno())

        def back(waited: float = 0.0) -> None:
            if not server.is_serving() or sock.fileno() < 0:
                return
            if board is not None and not board.may_accept():
                if waited < board.max_defer_s:
                    self.call_later(ACCEPT_PAUSE_S, back, waited + ACCEPT_PAUSE_S)
                    return
                take()  # left waiting by the peers this long: take it (if one still waits)
            self._start_serving(protocol_factory, sock, sslcontext, server, backlog,
                                *args, **kwargs)

        self.call_later(ACCEPT_PAUSE_S, back)


#: what ``uvicorn.Config(loop=...)`` is given by the processes that share one socket
FAIR_LOOP = "feedwise.server.tcp:FairAcceptLoop"  # a loop factory: the class
