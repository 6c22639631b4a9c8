"""The ``feedwise`` command.

Each module in this package is one command group or command (one noun per module) and
exposes ``register(app: typer.Typer) -> None`` that adds its module-level command functions
(or its group). A :class:`~feedwise.errors.FeedwiseError` from any command ends it as one
``error:`` line with exit code 2 (:class:`~feedwise.cli._common.CommandGroup`).

Commands load lazily: :data:`feedwise.cli._index.COMMANDS` names each command's module and
one-line help, so ``feedwise --help`` imports no command module and ``feedwise CMD`` imports
only ``CMD``'s. A new command module is added to the index with
``python -m feedwise.cli._reindex --write`` (``tests/cli/test_fast_start.py`` fails until it is).
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup

from feedwise.cli._common import CommandGroup
from feedwise.cli._index import COMMANDS

MARKUP = "markdown"


def load_module_commands(module: str) -> dict[str, Any]:
    """The click commands that ``feedwise.cli.<module>`` registers, by name."""
    sub = typer.Typer(cls=TyperGroup, rich_markup_mode=MARKUP, add_completion=False)
    importlib.import_module(f"{__name__}.{module}").register(sub)
    return dict(typer.main.get_group(sub).commands)


class LazyGroup(CommandGroup):
    """The top-level group: commands listed from the index, imported on first use."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: Any, name: str) -> Any:
        command = super().get_command(ctx, name)
        if command is not None or name not in COMMANDS:
            return command
        module, short_help = COMMANDS[name]
        if self._listing:  # `feedwise --help`: the index's line stands in for the command
            return typer.core.TyperCommand(name, help=short_help, short_help=short_help)
        for cmd_name, cmd in load_module_commands(module).items():
            self.add_command(cmd, cmd_name)
        return super().get_command(ctx, name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


# the listing renders with Rich markup, not Markdown: parsing 35 help lines as Markdown
# doubled the time `feedwise --help` takes (each command's own help keeps Markdown)
app = typer.Typer(name="feedwise", cls=LazyGroup, no_args_is_help=True, add_completion=False,
                  rich_markup_mode="rich",
                  help="feedwise: attention-aware social feeds (insight, recommenders, ads, "
                       "evidence, service).")


@app.callback()
def main() -> None:
    """feedwise: attention-aware social feeds (insight, recommenders, ads, evidence,
    service)."""
