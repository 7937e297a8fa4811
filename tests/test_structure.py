"""The package's shape: no import cycle, and the torch-free wing stays torch-free.

Imports are read from the source with :mod:`ast`, function-level ones included (a lazy
import hides a cycle from the interpreter, not from the design); only ``if TYPE_CHECKING:``
blocks are left out, since they never run.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import inference_scale

PKG_DIR = Path(inference_scale.__file__).parent
PKG = PKG_DIR.name


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG_DIR.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PKG_DIR.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path) -> set[str]:
    """The package modules ``name`` imports, each resolved to a module of MODULES."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            anchor = base[: len(base) - node.level + 1] if node.level else []
            target = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return {m for m in found if m in MODULES and m != name}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path of names, or None (iterative DFS, three colours)."""
    state: dict[str, int] = {}
    for root in sorted(graph):
        if state.get(root):
            continue
        stack: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        path = [root]
        state[root] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                state[node] = 2
                stack.pop()
                path.pop()
                continue
            nxt = todo.pop()
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(graph[nxt])))
    return None


def test_the_import_graph_is_read_from_every_module() -> None:
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    # a known edge of each kind: relative, absolute, and a function-level one
    assert f"{PKG}.errors" in graph[f"{PKG}.atomic"]
    assert f"{PKG}.states.base" in graph[f"{PKG}.states.compound"]
    assert len(graph) > 50


def test_no_import_cycle_in_the_package() -> None:
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _fresh(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    "module",
    [f"{PKG}.verdicts", f"{PKG}.verdicts.runs", f"{PKG}.verdicts.compare", f"{PKG}.verdicts.history",
     f"{PKG}.verdicts.ab", f"{PKG}.reporting.report", f"{PKG}.reporting.advice", f"{PKG}.slugs"],
)  # fmt: skip
def test_the_verdicts_wing_loads_no_torch(module: str) -> None:
    done = _fresh(f"import sys, {module}; print('torch' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_every_lazy_name_of_the_package_resolves() -> None:
    done = _fresh("import inference_scale as m; missing = [n for n in m.__all__ if not hasattr(m, n)]; print(missing)")
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
