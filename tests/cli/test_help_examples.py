"""Every command's ``--help`` shows an example that starts with ``feedwise <command>``."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from feedwise.cli import app

runner = CliRunner()


def leaves(cmd, path=()):
    if hasattr(cmd, "list_commands"):  # commands load on first use: ask the group for them
        ctx = cmd.make_context("feedwise", [], resilient_parsing=True)
        for name in cmd.list_commands(ctx):
            yield from leaves(cmd.get_command(ctx, name), (*path, name))
    else:
        yield path


def test_every_command_has_a_help_example():
    paths = list(leaves(typer.main.get_command(app)))
    assert len(paths) > 30
    missing = []
    for path in paths:
        res = runner.invoke(app, [*path, "--help"])
        assert res.exit_code == 0, (path, res.output)
        if f"feedwise {' '.join(path)}" not in " ".join(res.output.split()) or \
                "Example:" not in res.output:
            missing.append(" ".join(path))
    assert missing == []
