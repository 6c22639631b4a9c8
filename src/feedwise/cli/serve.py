"""``feedwise serve``: the HTTP service (uvicorn, one process)."""

from __future__ import annotations

from typing import Annotated

import typer

from feedwise.cli._common import DbOption
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
          ) -> None:
    """Serve feeds, recommendations and event collection over HTTP.

    Settings come from FEEDWISE_* variables and FEEDWISE_SETTINGS_FILE; the options
    here override them. One process: the store has a single writer.
    """
    import uvicorn

    from feedwise.server.app import create_app
    from feedwise.server.settings import Settings

    if loop not in ("asyncio", "uvloop"):
        raise ConfigError(f"--loop must be asyncio or uvloop, not {loop!r}")
    overrides = {k: v for k, v in {"db": db, "registry": registry,
                                   "keys_file": keys_file}.items() if v is not None}
    settings = Settings(**overrides)
    app_ = create_app(settings)
    # uvicorn's own access log prints paths and status only, never headers or keys
    uvicorn.run(app_, host=host, port=port, log_level=log_level, access_log=access_log,
                timeout_graceful_shutdown=30, loop=loop)


def register(app: typer.Typer) -> None:
    app.command()(serve)
