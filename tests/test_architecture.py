"""The house rules of docs/architecture.md, checked on the code (standard library ``ast`` only).

* The store owns its data: outside ``store/``, ``analytics/`` (its KPI SQL) and ``engines/``
  (the Spark backend) no module holds SQL text or touches another object's ``con``/``_lock``.
* Layers: every module belongs to a layer listed in docs/architecture.md; an import (at module
  level or inside a function) goes to the same layer or a lower one, and never closes a cycle.
* Every parameter or attribute named ``store`` is typed with the store (``EventStore``).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
#: Packages allowed to hold SQL and use the connection.
SQL_OWNERS = ("feedwise.store", "feedwise.analytics", "feedwise.engines")
SQL = re.compile(r"\b(?:SELECT\s+[\w*(]|INSERT\s+(OR\s+\w+\s+)?INTO|DELETE\s+FROM|"
                 r"UPDATE\s+\w+\s+SET|CREATE\s+(OR\s+REPLACE\s+)?(TEMP\s+)?(TABLE|VIEW)|ALTER\s+TABLE|"
                 r"DROP\s+(TABLE|VIEW)|BEGIN\s+TRANSACTION)")


def _modules() -> dict[str, tuple[Path, ast.Module]]:
    out = {}
    for path in sorted((SRC / "feedwise").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = (path, ast.parse(path.read_text(), filename=str(path)))
    return out


MODULES = _modules()


def _owned(module: str, owners: tuple[str, ...]) -> bool:
    return any(module == o or module.startswith(o + ".") for o in owners)


def _docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _where(module: str, node: ast.AST) -> str:
    return f"{MODULES[module][0].relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"


def sql_violations() -> list[str]:
    found = []
    for module, (_, tree) in MODULES.items():
        if _owned(module, SQL_OWNERS):
            continue
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in docs and SQL.search(node.value)):
                found.append(f"{_where(module, node)}: SQL text {node.value[:60]!r}")
            elif (isinstance(node, ast.Attribute) and node.attr in ("con", "_lock")
                  and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                found.append(f"{_where(module, node)}: touches .{node.attr} of another object")
    return found


def test_sql_and_the_connection_stay_in_the_store():
    assert sql_violations() == [], (
        "SQL or the store's connection outside store/, analytics/ and engines/: give the "
        "store a named method instead")


def test_the_sql_check_catches_sql():
    tree = ast.parse('q = "SELECT user_id FROM events"\nstore.con.execute(q)\n')
    MODULES["feedwise.probe"] = (SRC / "feedwise" / "probe.py", tree)
    try:
        assert len(sql_violations()) == 2
    finally:
        del MODULES["feedwise.probe"]


# ---------------------------------------------------------------------------- layers
def layers() -> dict[str, int]:
    """Module prefix -> layer number, from the ``layer N name: modules`` lines of the doc."""
    out = {}
    for m in re.finditer(r"^layer (\d+) [\w -]+: (.+)$", ARCHITECTURE.read_text(), re.M):
        for name in m.group(2).split():
            out[name.strip(",")] = int(m.group(1))
    return out


def layer_of(module: str, table: dict[str, int]) -> int | None:
    best = None
    for prefix, n in table.items():
        if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > len(best[0])):
            best = (prefix, n)
    return best[1] if best else None


def imports(module: str, tree: ast.Module) -> list[tuple[str, ast.AST]]:
    """Every feedwise module ``module`` imports anywhere in its body, with the parent
    packages an import runs (importing ``a.b.c`` runs ``a.b`` first), but not the root nor
    ``module``'s own packages (they are already running when it is imported)."""
    package = module if MODULES[module][0].name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names
                              if f"{base}.{a.name}" in MODULES]
        else:
            continue
        for name in names:
            parts = name.split(".")
            for i in range(2, len(parts) + 1):
                target = ".".join(parts[:i])
                if (target in MODULES and target != module
                        and not module.startswith(target + ".")):
                    out.append((target, node))
    return out


def graph() -> dict[str, set[str]]:
    g: dict[str, set[str]] = defaultdict(set)
    for module, (_, tree) in MODULES.items():
        for target, _node in imports(module, tree):
            g[module].add(target)
    return g


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(set(g) | {w for ws in g.values() for w in ws}):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer():
    table = layers()
    assert table, "docs/architecture.md lists no layers (lines 'layer N name: modules')"
    missing = [m for m in MODULES if m != "feedwise" and layer_of(m, table) is None]
    assert missing == [], "modules in no layer of docs/architecture.md"


def test_imports_never_run_up_the_layers():
    table = layers()
    upward = []
    for module, (_, tree) in MODULES.items():
        if module == "feedwise":
            continue
        mine = layer_of(module, table)
        for target, node in imports(module, tree):
            theirs = layer_of(target, table)
            if mine is not None and theirs is not None and theirs > mine:
                upward.append(f"{_where(module, node)}: {module} (layer {mine}) imports "
                              f"{target} (layer {theirs})")
    assert upward == []


def test_no_import_cycles():
    g = graph()
    assert cycles(g) == []
    packages: dict[str, set[str]] = defaultdict(set)
    for a, targets in g.items():
        for b in targets:
            pa, pb = ".".join(a.split(".")[:2]), ".".join(b.split(".")[:2])
            if pa != pb and "feedwise" not in (pa, pb):
                packages[pa].add(pb)
    assert cycles(packages) == [], "packages import each other"


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"feedwise.a": {"feedwise.b"}, "feedwise.b": {"feedwise.a"}}) == [
        ["feedwise.a", "feedwise.b"]]


# ---------------------------------------------------------------------------- typing
STORE_TYPES = ("EventStore", "Storage")


def _untyped_store(module: str, tree: ast.Module) -> list[str]:
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            a = node.args
            for arg in a.posonlyargs + a.args + a.kwonlyargs:
                if arg.arg == "store" and not (
                        arg.annotation is not None
                        and any(t in ast.unparse(arg.annotation) for t in STORE_TYPES)):
                    bad.append(f"{_where(module, node)}: {node.name}(store) is not typed "
                               "EventStore")
        elif (isinstance(node, ast.AnnAssign) and ast.unparse(node.target).endswith("store")
              and not any(t in ast.unparse(node.annotation) for t in STORE_TYPES)):
            bad.append(f"{_where(module, node)}: {ast.unparse(node.target)} is typed "
                       f"{ast.unparse(node.annotation)}")
    return bad


@pytest.mark.parametrize("module", sorted(MODULES))
def test_the_store_is_typed(module):
    assert _untyped_store(module, MODULES[module][1]) == []


def test_nothing_points_outside_the_repository():
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    outside = [f"{p.relative_to(ROOT)}:{i}" for p in texts
               for i, line in enumerate(p.read_text().splitlines(), 1)
               if "../shared" in line or "DESIGN.md" in line]
    assert outside == []
