"""``feedwise serve --workers N``: the owner process's side of the feed workers.

The owner listens on the shared public socket and a private one (127.0.0.1, any port) that
only its workers use (:mod:`feedwise.server.workers`), and takes each worker's event batches
and the impressions it served through a socket pair of its own (:mod:`feedwise.server.relay`).
It answers public connections only until a worker is ready, or when none is left
(:class:`~feedwise.server.tcp.AcceptBoard`): while they serve, its cores and its GIL are left
to its writer, the events' decoding and the lists' refresh.
It starts the workers once its store and model are up, and on SIGINT / SIGTERM stops them
first (each sends the impressions it holds) and only then shuts itself down, landing
everything.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feedwise.server.relay import RelayOwner
from feedwise.server.routes.workers import relay_handler
from feedwise.server.settings import Settings
from feedwise.server.tcp import BOARD_ENV, FAIR_LOOP, AcceptBoard, listen

if TYPE_CHECKING:
    from feedwise.server.deps import ServiceState

log = logging.getLogger("feedwise.server.workers")


class WorkerPool:
    """``n`` worker processes of one owner."""

    def __init__(self, n: int, settings: Settings, log_level: str = "warning") -> None:
        self.n = n
        self.settings = settings
        self.log_level = log_level
        self.procs: list[subprocess.Popen] = []
        self.private: socket.socket | None = None
        self.owner_url = ""
        self._stopping = threading.Lock()
        self._stopped = False
        self.board = ""  # the AcceptBoard file (server/tcp.py), made by run()

    def start(self, public: socket.socket, key_file: Path, state: ServiceState) -> None:
        """Start the workers on ``public``; each hands the event batches it reads and the
        impressions it served to this process (``state``: stored by its writer) through a
        socket pair of its own (:mod:`feedwise.server.relay`)."""
        relay = RelayOwner(relay_handler(state))
        env = {**os.environ, "FEEDWISE_DB": str(self.settings.db),
               "FEEDWISE_REGISTRY": str(self.settings.registry),
               "FEEDWISE_WORKERS": str(self.n)}
        if self.settings.keys_file:
            env["FEEDWISE_KEYS_FILE"] = str(self.settings.keys_file)
        for i in range(self.n):
            env[BOARD_ENV] = f"{self.board}:{i + 1}"
            mine, theirs = socket.socketpair()
            cmd = [sys.executable, "-m", "feedwise.server.workers", "--fd",
                   str(public.fileno()), "--relay-fd", str(theirs.fileno()), "--owner",
                   self.owner_url, "--admin-key-file", str(key_file), "--log-level",
                   self.log_level]
            try:
                self.procs.append(subprocess.Popen(
                    cmd, env=env, pass_fds=(public.fileno(), theirs.fileno())))
            except BaseException:
                mine.close()
                raise
            finally:
                theirs.close()
            relay.serve(mine)

    def stop(self, timeout: float = 60.0) -> None:
        """SIGINT every worker and wait for them (graceful: they flush to the owner)."""
        with self._stopping:
            if self._stopped:
                return
            self._stopped = True
            for p in self.procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            for p in self.procs:
                try:
                    p.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.error("worker %d did not stop in %.0fs; killed", p.pid, timeout)
                    p.kill()

    def run(self, app: Any, public: socket.socket, *, log_level: str, access_log: bool,
            loop: str) -> None:
        """Serve ``app`` on the public and the private socket until told to stop."""
        import uvicorn

        self.private = listen("127.0.0.1", 0, 512)  # TCP_NODELAY on accepted connections
        self.owner_url = f"http://127.0.0.1:{self.private.getsockname()[1]}"
        # the connections each process holds, so that they take equal shares (slot 0: here)
        fd, self.board = tempfile.mkstemp(prefix="feedwise-accept-")
        os.close(fd)
        AcceptBoard.create(self.board, self.n + 1, public.getsockname()[1])
        os.environ[BOARD_ENV] = f"{self.board}:0"
        pool = self

        class Owner(uvicorn.Server):
            def handle_exit(self, sig: int, frame: Any) -> None:
                # the workers go first, through this server: stop them off the loop
                if pool._stopped:
                    return super().handle_exit(sig, frame)

                def then() -> None:
                    pool.stop()
                    uvicorn.Server.handle_exit(self, sig, None)

                threading.Thread(target=then, name="feedwise-workers-stop",
                                 daemon=True).start()

        # asyncio: connections spread evenly over the processes (server/tcp.py)
        config = uvicorn.Config(app, log_level=log_level, access_log=access_log,
                                timeout_graceful_shutdown=30,
                                loop=FAIR_LOOP if loop == "asyncio" else loop)
        try:
            Owner(config).run(sockets=[public, self.private])
        finally:
            self.stop()
            self.private.close()
            os.environ.pop(BOARD_ENV, None)
            Path(self.board).unlink(missing_ok=True)
