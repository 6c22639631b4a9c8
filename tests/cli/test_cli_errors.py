"""The one error wrapper: a FeedwiseError from any command is one ``error:`` line, exit 2."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.cli._common import CommandGroup, fails_on
from feedwise.errors import ConfigError, NotFoundError

runner = CliRunner()


def _app() -> typer.Typer:
    """A command and a subgroup's command under the feedwise group class."""
    root = typer.Typer(cls=CommandGroup)
    sub = typer.Typer()
    root.add_typer(sub, name="sub")

    @root.command()
    def top(kind: str = "config") -> None:
        if kind == "config":
            raise ConfigError("--thing 'x' is not a number; use e.g. --thing 3")
        raise ValueError("an unexpected bug")

    @sub.command()
    @fails_on(ValueError)
    def deep(fail_as: str = "not-found") -> None:
        """Deep help."""
        if fail_as == "not-found":
            raise NotFoundError("no user 'u9'; see feedwise users export")
        raise ValueError("--rate must be in (0, 1)")

    return root


@pytest.mark.parametrize("args, line, code", [
    (["top"], "error: --thing 'x' is not a number; use e.g. --thing 3", 2),
    (["sub", "deep"], "error: no user 'u9'; see feedwise users export", 2),
    (["sub", "deep", "--fail-as", "value"], "error: --rate must be in (0, 1)", 1),
])
def test_errors_become_one_line_and_an_exit_code(args: list[str], line: str, code: int) -> None:
    res = runner.invoke(_app(), args)
    assert res.exit_code == code
    assert res.output.splitlines() == [line]
    assert isinstance(res.exception, SystemExit)


def test_other_errors_are_not_hidden() -> None:
    """Only FeedwiseError (and what a command declares with fails_on) is a clean exit."""
    res = runner.invoke(_app(), ["top", "--kind", "bug"])
    assert res.exit_code == 1 and isinstance(res.exception, ValueError)


def test_fails_on_keeps_the_command_signature_and_help() -> None:
    res = runner.invoke(_app(), ["sub", "deep", "--help"])
    assert res.exit_code == 0 and "--fail-as" in res.output and "Deep help." in res.output


def test_feedwise_commands_raise_through_the_group(tmp_path) -> None:
    res = runner.invoke(app, ["recommend", "--db", str(tmp_path / "x.duckdb")])
    assert res.exit_code == 2
    assert res.output.splitlines() == ["error: give one USER or --all"]
    res = runner.invoke(app, ["keys", "revoke", "nope", "--keys-file",
                              str(tmp_path / "keys.json")])
    assert res.exit_code == 2 and len(res.output.splitlines()) == 1
    assert res.output.startswith("error: ") and "Traceback" not in res.output
