"""The workers of ``serve --workers N`` take equal shares of the connections they keep, and
the owner stands by while they serve (server/tcp.py AcceptBoard).

Nothing is timed: the board's slots and which queued connections a loop takes are asserted.
"""

from __future__ import annotations

import asyncio
import socket
import sys

import pytest

from feedwise.server import tcp


def _board(tmp_path, processes: int, slot: int, port: int = 1) -> tcp.AcceptBoard:
    path = tmp_path / "board"
    if not path.exists():
        tcp.AcceptBoard.create(path, processes, port)
    return tcp.AcceptBoard(path, slot)


def test_a_worker_with_more_connections_than_a_serving_peer_leaves_the_next_one(tmp_path):
    owner = _board(tmp_path, 3, slot=0)
    w1, w2 = (tcp.AcceptBoard(tmp_path / "board", s) for s in (1, 2))
    assert owner.counts() == (0, -1, -1)  # the owner serves; workers not yet
    owner.add(1)
    assert owner.may_accept()  # no worker serves yet: nobody to leave it to
    w1.ready()
    assert w1.may_accept()  # the owner's connections are not the workers' measure
    w1.add(1)
    w2.ready()
    assert not w1.may_accept() and w2.may_accept()
    w2.add(1)
    assert w1.may_accept() and w2.may_accept()  # 1 : 1
    w2.gone()  # a worker that stopped is nobody's peer
    assert w1.may_accept()
    owner.add(-1)
    assert owner.counts() == (0, 1, -1)


def test_the_owner_stands_by_while_a_worker_serves(tmp_path):
    owner = _board(tmp_path, 3, slot=0)
    w1, w2 = (tcp.AcceptBoard(tmp_path / "board", s) for s in (1, 2))
    assert owner.may_accept()  # start-up: it serves alone
    w1.ready()
    w1.add(5)
    assert not owner.may_accept()  # however many connections the worker holds
    w2.ready()
    w1.gone()
    assert not owner.may_accept()
    w2.gone()  # no worker left: the owner serves again
    assert owner.may_accept()
    assert owner.max_defer_s == tcp.STANDBY_DEFER_S and w1.max_defer_s == tcp.MAX_DEFER_S


def _queued_after_wake_up(loop: tcp.FairAcceptLoop, lst: socket.socket, waiting: int,
                          run_s: float) -> int:
    """Connect ``waiting`` clients, let ``loop`` handle one wake-up of ``lst`` and run for
    ``run_s``; how many connections are still queued then."""
    clients = [socket.create_connection(lst.getsockname()) for _ in range(waiting)]
    made: list[asyncio.BaseTransport] = []

    class P(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            made.append(transport)

    async def serve() -> int:
        server = await loop.create_server(P, sock=lst)
        loop._remove_reader(lst.fileno())  # the wake-up below is the only one
        loop._accept_connection(P, lst, server=server, backlog=100)
        await asyncio.sleep(run_s)
        loop._remove_reader(lst.fileno())
        left = 0
        while True:  # what the loop left queued (it runs nothing while this does)
            try:
                c, _ = lst.accept()
            except BlockingIOError:
                break
            c.close()
            left += 1
        server.close()
        return left

    try:
        return loop.run_until_complete(serve())
    finally:
        for t in made:
            t.close()
        for c in clients:
            c.close()
        loop.close()


@pytest.mark.parametrize("least", [True, False])
def test_the_loop_takes_a_connection_only_while_no_peer_holds_fewer(tmp_path, least):
    lst = tcp.listen("127.0.0.1", 0)
    port = lst.getsockname()[1]
    _board(tmp_path, 3, slot=0, port=port)
    board = tcp.AcceptBoard(tmp_path / "board", 1)
    board.ready()
    peer = tcp.AcceptBoard(tmp_path / "board", 2)
    peer.ready()
    if not least:
        board.add(1)  # one more than the peer: leave the next connection to it
    board.max_defer_s = 10.0  # the peer never takes it: wait on
    loop = tcp.FairAcceptLoop()
    loop._board = board
    left = _queued_after_wake_up(loop, lst, 1, 0.05)
    assert left == (0 if least else 1)
    lst.close()


def test_the_standing_by_owner_leaves_a_waiting_connection_to_the_workers(tmp_path):
    lst = tcp.listen("127.0.0.1", 0)
    board = _board(tmp_path, 2, slot=0, port=lst.getsockname()[1])
    worker = tcp.AcceptBoard(tmp_path / "board", 1)
    worker.ready()
    worker.add(3)  # it holds more than the owner: the owner still leaves the next one
    loop = tcp.FairAcceptLoop()
    loop._board = board
    assert _queued_after_wake_up(loop, lst, 1, 0.1) == 1
    lst.close()


def test_a_connection_left_waiting_past_the_defer_limit_is_taken(tmp_path, monkeypatch):
    lst = tcp.listen("127.0.0.1", 0)
    _board(tmp_path, 3, slot=0, port=lst.getsockname()[1])
    tcp.AcceptBoard(tmp_path / "board", 2).ready()  # a worker serves, but never accepts
    monkeypatch.setenv(tcp.BOARD_ENV, f"{tmp_path / 'board'}:1")
    loop = tcp.FairAcceptLoop()
    board = loop._board_for(lst)  # read from the environment, as in a served process
    assert board is not None and board.max_defer_s == tcp.MAX_DEFER_S
    board.ready()
    board.add(1)  # one connection held already: the idle worker holds none
    assert not board.may_accept()
    assert _queued_after_wake_up(loop, lst, 1, 0.5) == 0  # taken after MAX_DEFER_S
    lst.close()


if sys.platform != "linux":  # pragma: no cover - shared sockets as the service uses them
    pytestmark = pytest.mark.skip("Linux only")
