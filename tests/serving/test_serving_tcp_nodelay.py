"""Connections accepted by the service have Nagle's algorithm off (server/tcp.py).

Before, the sockets of ``serve --workers N`` (the shared public socket, rebuilt by uvicorn's
``fd=`` path as AF_UNIX in the workers; the owner's private socket, made with proto 0) kept
Nagle on: every answer waited ~40 ms for the client's delayed ACK at one client. Nothing is
timed here: the socket option itself is asserted.
"""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from feedwise.server import tcp
from feedwise.server import workers as worker_mod


def _accepted_nodelay(listener: socket.socket) -> bool:
    """Serve ``listener`` with asyncio, connect once, and read TCP_NODELAY of the server's
    side of that connection."""

    async def go() -> bool:
        got: asyncio.Future = asyncio.get_running_loop().create_future()

        class P(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                got.set_result(tcp.nodelay(transport.get_extra_info("socket")))
                transport.close()

        server = await asyncio.get_running_loop().create_server(P, sock=listener)
        port = listener.getsockname()[1]
        _, w = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await asyncio.wait_for(got, 10)
        finally:
            w.close()
            server.close()

    return asyncio.run(go())


def test_listen_gives_tcp_nodelay_connections():
    sock = tcp.listen("127.0.0.1", 0)
    assert sock.proto == socket.IPPROTO_TCP
    assert _accepted_nodelay(sock)


def test_an_inherited_fd_is_adopted_as_tcp():
    parent = tcp.listen("127.0.0.1", 0)
    child = tcp.adopt(parent.fileno())  # what a worker does with --fd
    assert child.family == socket.AF_INET and child.proto == socket.IPPROTO_TCP
    assert _accepted_nodelay(child)
    parent.close()


def test_worker_main_serves_the_adopted_socket(monkeypatch, tmp_path):
    """The worker process hands uvicorn the socket as TCP (not ``fd=``, which uvicorn turns
    into an AF_UNIX socket object: asyncio then leaves Nagle on)."""
    seen: list[socket.socket] = []
    loops: list[str] = []

    def run(self, sockets=None):  # noqa: ANN001, ANN202
        seen.extend(sockets)
        loops.append(self.config.loop)

    monkeypatch.setattr(worker_mod, "create_worker_app", lambda *a, **k: object())
    monkeypatch.setattr(uvicorn.Server, "run", run)
    parent = tcp.listen("127.0.0.1", 0)
    key = tmp_path / "key"
    key.write_text("fw_admin_x")
    worker_mod.main(["--fd", str(parent.fileno()), "--owner", "http://127.0.0.1:1",
                     "--admin-key-file", str(key)])
    assert len(seen) == 1
    assert seen[0].family == socket.AF_INET and seen[0].proto == socket.IPPROTO_TCP
    assert _accepted_nodelay(seen[0])
    assert loops == [tcp.FAIR_LOOP]
    parent.close()


def _run_accept(loop: asyncio.AbstractEventLoop, waiting: int) -> int:
    """Let ``loop`` handle one wake-up of a listening socket with ``waiting`` connections
    queued; how many are still queued afterwards."""
    lst = tcp.listen("127.0.0.1", 0)
    lst.setblocking(False)
    clients = [socket.create_connection(lst.getsockname()) for _ in range(waiting)]
    try:
        loop._accept_connection(asyncio.Protocol, lst, backlog=100)  # one wake-up
        loop.run_until_complete(asyncio.sleep(0))
        left = 0
        while True:
            try:
                c, _ = lst.accept()
            except BlockingIOError:
                return left
            c.close()
            left += 1
    finally:
        for c in clients:
            c.close()
        lst.close()
        loop.close()


def test_fair_loop_takes_one_waiting_connection_per_wake_up():
    """The processes sharing a socket then take connections in turn (by load), instead of
    the first one awake taking all 16 clients' connections at once."""
    assert _run_accept(tcp.FairAcceptLoop(), 3) == 2
    from uvicorn.config import Config

    assert Config(object(), loop=tcp.FAIR_LOOP).get_loop_factory() is tcp.FairAcceptLoop
