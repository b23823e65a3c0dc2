"""The layering rules of docs/architecture.md, enforced over the package's AST.

1. Pure packages never import ray, qdrant_client, fastapi or torch at module level: those load inside the
   adapter function or backend that needs them (so `import codesense_ray...` stays light and testable).
2. No import cycles between modules, counting imports inside functions too (a lazy import still couples).
3. Only `codesense_ray.app` imports argparse, fastapi or ray.serve; `orchestration` never imports `kfp_wrappers`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "codesense_ray"
HEAVY = ("ray", "qdrant_client", "fastapi", "torch")
# Packages (or modules) of pure logic and services; `store` and `app` are adapters by design, and the Ray
# Data graph (`index/pipeline.py`) is the one adapter module inside `index`.
PURE = ("sources", "chunking", "index", "retrieval", "answering", "evaluation", "config", "errors.py", "backends.py", "offline.py")
PURE_EXCEPTIONS = {"index/pipeline.py"}
APP_ONLY = ("argparse", "fastapi", "ray.serve")


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(path: Path, module_level_only: bool) -> list[tuple[str, int]]:
    """(imported module, line) for each import; `module_level_only` skips imports inside functions."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import) and not (module_level_only and in_function):
                found.extend((a.name, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0 and not (module_level_only and in_function):
                found.append((child.module, child.lineno))
                found.extend((f"{child.module}.{a.name}", child.lineno) for a in child.names)
            elif isinstance(child, ast.If) and _is_type_checking(child):
                continue  # annotations only
            visit(child, nested)

    visit(tree, False)
    return found


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _is_pure(path: Path) -> bool:
    rel = path.relative_to(PACKAGE).as_posix()
    return rel.split("/")[0] in PURE and rel not in PURE_EXCEPTIONS


def _matches(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == r or name.startswith(r + ".") for r in roots)


def test_pure_packages_import_no_heavy_library_at_module_level():
    """Pure modules import none of ray / qdrant_client / fastapi / torch at module level."""
    offenders = [
        f"{p.relative_to(ROOT)}:{line} imports {name}"
        for p in modules().values()
        if _is_pure(p)
        for name, line in imports(p, module_level_only=True)
        if _matches(name, HEAVY)
    ]
    assert offenders == []


def test_only_the_app_layer_imports_argparse_fastapi_or_serve():
    """argparse, FastAPI and Ray Serve appear only under codesense_ray/app (anywhere in a module)."""
    offenders = [
        f"{p.relative_to(ROOT)}:{line} imports {name}"
        for p in modules().values()
        if not p.relative_to(PACKAGE).as_posix().startswith("app/")
        for name, line in imports(p, module_level_only=False)
        if _matches(name, APP_ONLY)
    ]
    assert offenders == []


def test_library_never_imports_kfp_wrappers():
    """Below the app layer, nothing reaches into the outer KFP wrappers (they import the library, not the reverse)."""
    offenders = [
        f"{p.relative_to(ROOT)}:{line}"
        for p in modules().values()
        if not p.relative_to(PACKAGE).as_posix().startswith("app/")
        for name, line in imports(p, module_level_only=False)
        if _matches(name, ("kfp_wrappers",))
    ]
    assert offenders == []


def _graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for name, _ in imports(path, module_level_only=False):
            # `from a.b import c` may name module a.b.c or attribute c of a.b: take the longest known module.
            target = name
            while target and target not in mods:
                target = target.rpartition(".")[0]
            # Importing a submodule runs its package's __init__ too, but we only count the edge to the module named.
            if target and target != mod and not mod.startswith(target + "."):
                graph[mod].add(target)
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


def test_no_import_cycles_between_modules():
    """The module import graph (lazy imports included) is acyclic."""
    cycle = _find_cycle(_graph())
    assert cycle is None, " -> ".join(cycle)


def test_cycle_finder_finds_a_planted_cycle():
    """The checker itself works: a planted a → b → a cycle is reported."""
    assert _find_cycle({"a": {"b"}, "b": {"a"}, "c": set()}) in (["a", "b", "a"], ["b", "a", "b"])


@pytest.mark.parametrize("package", ["sources", "chunking", "index", "store", "retrieval", "answering", "evaluation", "orchestration", "config", "app"])
def test_each_stage_package_says_what_it_owns(package):
    """Every stage package's __init__ has a docstring (a newcomer finds the part from the folder names)."""
    init = PACKAGE / package / "__init__.py"
    assert init.exists(), f"{package} is not a package"
    assert ast.get_docstring(ast.parse(init.read_text())), f"{package}/__init__.py has no docstring"
