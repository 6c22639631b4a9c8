"""Fast start (issue 27): ``feedwise --help`` and ``feedwise COMMAND --help`` load no
numerical stack; the lazy command index matches what the command modules register."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

import feedwise.cli as cli
from feedwise.cli import app
from feedwise.cli._index import COMMANDS
from feedwise.cli._reindex import build

HEAVY = {"numpy", "pandas", "pyarrow", "duckdb", "scipy", "sklearn", "torch", "fastapi",
         "starlette", "uvicorn", "plotly", "jinja2", "pyspark"}
# what a command module may import at its top: the standard library, the CLI toolkit and
# the light parts of feedwise; anything else is imported inside the command that needs it
LIGHT = {"typer", "click", "rich", "pydantic", "feedwise.cli", "feedwise.errors",
         "feedwise.deployment"}
CLI_DIR = Path(cli.__file__).parent


def test_the_index_is_what_the_modules_register():
    assert COMMANDS == build(), "run `python -m feedwise.cli._reindex --write`"


def test_every_command_is_reachable_and_has_its_options():
    runner = CliRunner()
    for name in COMMANDS:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage:" in result.output and "--help" in result.output


def _top_level_imports(tree: ast.Module) -> list[tuple[str, int]]:
    out = []
    for node in tree.body:
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` blocks never run
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            out.append((node.module or "", node.lineno))
    return out


def _light(module: str) -> bool:
    root = module.split(".")[0]
    return (module == "__future__" or root in sys.stdlib_module_names
            or any(module == m or module.startswith(m + ".") for m in LIGHT))


def _loaded_with_the_commands() -> list[Path]:
    """The command modules and the private ones their tops import (``_common``, ...);
    a private module a command imports inside its body (``_workers``) may be heavy."""
    todo = [p for p in CLI_DIR.glob("*.py") if not p.name.startswith("_")]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module, _ in _top_level_imports(ast.parse(path.read_text())):
            if module.startswith("feedwise.cli."):
                todo.append(CLI_DIR / (module.split(".")[2] + ".py"))
    return sorted(seen)


def test_command_modules_import_nothing_heavy_at_their_top():
    modules = _loaded_with_the_commands()
    assert CLI_DIR / "_common.py" in modules and CLI_DIR / "train.py" in modules
    offenders = [f"{path.name}:{line} imports {module}"
                 for path in modules
                 for module, line in _top_level_imports(ast.parse(path.read_text()))
                 if not _light(module)]
    assert not offenders, "import these inside the command that needs them: " + "; ".join(
        offenders)


def test_the_static_check_catches_a_heavy_import():
    tree = ast.parse("import typer\nimport pandas as pd\nfrom feedwise.models import x\n"
                     "if TYPE_CHECKING:\n    import numpy\n")
    assert [m for m, _ in _top_level_imports(tree) if not _light(m)] == [
        "pandas", "feedwise.models"]


def _loaded_by(*args: str) -> set[str]:
    code = ("import sys\nfrom feedwise.cli import app\ntry:\n    app(sys.argv[1:])\n"
            "except SystemExit:\n    pass\nprint(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         check=True).stdout.split()
    return {m.split(".")[0] for m in out} & HEAVY


def test_help_loads_no_numerical_stack():
    assert _loaded_by("--help") == set()
    assert _loaded_by("train", "--help") == set()
    assert _loaded_by("campaigns", "create", "--help") == set()
