"""``feedwise serve``: the HTTP service (uvicorn; feeds on more processes with --workers)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from feedwise.cli._common import DbOption
from feedwise.deployment import Deployment
from feedwise.errors import ConfigError


def serve(host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
          db: DbOption = None,
          registry: Annotated[str | None, typer.Option(
              envvar="FEEDWISE_REGISTRY", help="Model registry folder.")] = None,
          keys_file: Annotated[str | None, typer.Option(
              envvar="FEEDWISE_KEYS_FILE", help="Hashed API keys (feedwise keys create)."
          )] = None,
          log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
          access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
          loop: Annotated[str, typer.Option(
              help="Event loop: asyncio (default: requests are served in arrival order) "
                   "or uvloop (about 3% more throughput in the serve benchmark, but it "
                   "served some connections a round late under load: p99 52 vs 42 ms)."
          )] = "asyncio",
          workers: Annotated[int, typer.Option(
              envvar="FEEDWISE_WORKERS", min=1, max=64,
              help="Processes serving requests: 1 is this one alone; with N > 1, N feed "
                   "workers share its port and this one owns the store, landing what they "
                   "send, and serves only until they are up (docs/serving.md).")] = 1,
          ) -> None:
    """Serve feeds, recommendations and event collection over HTTP.

    Settings come from FEEDWISE_* variables and FEEDWISE_SETTINGS_FILE; the options
    here override them. The store has a single writer: with --workers N (N > 1), this
    process owns it and N feed workers serve on the port (docs/serving.md). The registry and
    keys are the deployment's (beside the store: STORE.models, STORE.keys.json) unless
    given. While it runs, `feedwise` commands on the same store work through it
    (reads on snapshots, writes through its admin API: docs/service.md).

    Example: `feedwise serve --db deploy/feedwise.duckdb --port 8000`

    Example, feeds on two cores: `feedwise serve --db deploy/feedwise.duckdb --workers 2`
    """
    import uvicorn

    from feedwise.cli._live import check_servable, install_routing, run_command
    from feedwise.server.app import create_app
    from feedwise.server.auth import hash_key
    from feedwise.server.settings import Settings
    from feedwise.server.tcp import listen

    if loop not in ("asyncio", "uvloop"):
        raise ConfigError(f"--loop must be asyncio or uvloop, not {loop!r}")
    overrides = {k: v for k, v in {"db": db, "registry": registry,
                                   "keys_file": keys_file}.items() if v is not None}
    settings = Settings(**overrides)
    settings.workers = workers
    # one deployment: the registry and keys beside the store unless given
    dep = Deployment.for_store(settings.db)
    if "registry" not in settings.model_fields_set:  # not given by option, env or file
        settings.registry = str(dep.registry_dir)
    if settings.keys_file is None and dep.keys_path.is_file():
        settings.keys_file = str(dep.keys_path)
    # one line, exit 2, when something else holds the store or its model is another's
    check_servable(settings.db, settings.registry)
    # the admin key the CLI uses while this service holds the store (docs/service.md)
    admin_key = f"fw_admin_{secrets.token_urlsafe(32)}"
    settings.api_keys = [*settings.api_keys, f"{hash_key(admin_key)}:admin"]
    key_file = dep.dir / f".{dep.stem}.admin-key"
    app_ = create_app(settings)
    app_.state.admin_runner = run_command
    install_routing()

    sock = None
    if port == 0 or workers > 1:  # bound here: the state file names it, workers share it
        sock = listen(host, port)  # a TCP socket: accepted connections get TCP_NODELAY
    bound = sock.getsockname()[1] if sock is not None else port
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown  # an IPv6 address
    inner = app_.router.lifespan_context
    pool = None
    if workers > 1:
        from feedwise.cli._workers import WorkerPool

        pool = WorkerPool(workers, settings, log_level)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with inner(app) as value:  # the store is open and the model loaded
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(admin_key)
            dep.write_server_state({"url": f"http://{shown}:{bound}", "pid": os.getpid(),
                                    "db": str(Path(settings.db).resolve()),
                                    "registry": str(settings.registry),
                                    "admin_key_file": str(key_file.resolve()),
                                    "started_at": datetime.now(UTC).isoformat()})
            if pool is not None:
                pool.start(sock, key_file, app.state.feedwise)
            try:
                yield value
            finally:  # no command is sent here any more once shutting down
                if pool is not None:
                    pool.stop()  # their last impressions reach this process first
                dep.clear_server_state(pid=os.getpid())
                key_file.unlink(missing_ok=True)

    app_.router.lifespan_context = lifespan
    if pool is not None:
        try:
            pool.run(app_, sock, log_level=log_level, access_log=access_log, loop=loop)
        finally:
            dep.clear_server_state(pid=os.getpid())
            key_file.unlink(missing_ok=True)
            sock.close()
        return
    try:
        # uvicorn's own access log prints paths and status only, never headers or keys
        if sock is not None:  # the socket itself: uvicorn's fd= path would make it AF_UNIX
            uvicorn.Server(uvicorn.Config(
                app_, log_level=log_level, access_log=access_log,
                timeout_graceful_shutdown=30, loop=loop)).run(sockets=[sock])
        else:
            uvicorn.run(app_, host=host, port=port, log_level=log_level, access_log=access_log,
                        timeout_graceful_shutdown=30, loop=loop)
    finally:
        dep.clear_server_state(pid=os.getpid())
        key_file.unlink(missing_ok=True)
        if sock is not None:
            sock.close()


def register(app: typer.Typer) -> None:
    app.command()(serve)
