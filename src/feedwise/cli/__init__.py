"""The ``feedwise`` command.

Each module in this package is one command group or command (one noun per module) and
exposes ``register(app: typer.Typer) -> None`` that adds its module-level command functions
(or its group); they are discovered here, so adding a command never edits this file. A
:class:`~feedwise.errors.FeedwiseError` from any command ends it as one ``error:`` line with
exit code 2 (:class:`~feedwise.cli._common.CommandGroup`).
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

from feedwise.cli._common import CommandGroup

app = typer.Typer(name="feedwise", cls=CommandGroup, no_args_is_help=True, add_completion=False,
                  rich_markup_mode="markdown",
                  help="feedwise: attention-aware social feeds (insight, recommenders, ads, "
                       "evidence, service).")

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_mod}").register(app)
