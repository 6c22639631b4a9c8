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
import os
import socket
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


class FairAcceptLoop(asyncio.SelectorEventLoop):
    """An event loop that takes at most ONE waiting connection per wake-up of a shared
    listening socket, then leaves the socket to its peers for :data:`ACCEPT_PAUSE_S`
    (asyncio's own loop takes up to ``backlog`` at once and comes straight back).

    The processes of ``serve --workers N`` accept on one socket. With the stock loop the
    first process to wake took every connection waiting — 16 keep-alive clients connecting
    together were split 13 : 3 or 14 : 2 between the owner and its worker, and the busier
    process then served most of the feeds. Taking one and stepping back, the processes take
    turns, and a busy one (its loop waits for the GIL while a feed is composed) takes fewer.
    A burst of connections waits at most ~``N x ACCEPT_PAUSE_S`` per connection for a
    process to take it; the listen backlog itself is unchanged.
    """

    def _accept_connection(self, protocol_factory: Any, sock: Any, sslcontext: Any = None,
                           server: Any = None, backlog: int = 100, *args: Any,
                           **kwargs: Any) -> None:
        super()._accept_connection(protocol_factory, sock, sslcontext, server, 1,
                                   *args, **kwargs)
        if server is None or not server.is_serving() or sock.fileno() < 0:
            return
        self._remove_reader(sock.fileno())

        def back() -> None:
            if server.is_serving() and sock.fileno() >= 0:
                self._start_serving(protocol_factory, sock, sslcontext, server, backlog,
                                    *args, **kwargs)

        self.call_later(ACCEPT_PAUSE_S, back)


#: what ``uvicorn.Config(loop=...)`` is given by the processes that share one socket
FAIR_LOOP = "feedwise.server.tcp:FairAcceptLoop"  # a loop factory: the class
