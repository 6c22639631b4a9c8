"""The ``feedwise`` command.

Each module in this package is one command group or command (one noun per module) and
exposes ``register(app: typer.Typer) -> None``; they are discovered here, so adding a
command never edits this file.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

app = typer.Typer(name="feedwise", no_args_is_help=True, add_completion=False,
                  rich_markup_mode="markdown",
                  help="feedwise: attention-aware social feeds (insight, recommenders, ads, "
                       "evidence, service).")

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_mod}").register(app)
