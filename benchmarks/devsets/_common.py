"""Shared helpers of the dev-set builders: library sources, AST walking, docstring stripping, JSONL.

Nothing here needs Ray, a model or the network. The builders import this module as `_common` (they put
their own directory on `sys.path`).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from codesense_ray.config import IndexConfig  # noqa: E402
from codesense_ray.sources.files import decode_source, select_files  # noqa: E402

EVAL_DIR = ROOT / "data" / "eval"
DEFAULT_LIBRARIES = ("click", "jinja2", "werkzeug", "requests")
DEFAULT_SEED = 20240601
MANIFEST = "manifest.json"
TEST_DIR_NAMES = frozenset({"tests", "test", "testing", "testsuite"})


# --- libraries ------------------------------------------------------------------------------------
def package_dir(lib: str) -> Path:
    """Directory of an installed top-level package (the import name, e.g. `jinja2`)."""
    spec = importlib.util.find_spec(lib)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{lib}: not an installed package in this environment ({sys.executable})")
    return Path(list(spec.submodule_search_locations)[0])


def library_version(lib: str) -> str:
    """Version of the distribution that provides import name `lib` (`jinja2` → Jinja2's version)."""
    try:
        return importlib.metadata.version(lib)  # names are matched case- and separator-insensitively
    except importlib.metadata.PackageNotFoundError:
        dists = importlib.metadata.packages_distributions().get(lib) or [lib]  # slow: scans every distribution
        return importlib.metadata.version(dists[0])


def is_test_path(rel: str) -> bool:
    parts = rel.split("/")
    name = parts[-1]
    return any(p in TEST_DIR_NAMES for p in parts[:-1]) or name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"


def library_sources(lib: str) -> dict[str, str]:
    """`<lib>/<rel>.py` → normalised text for every non-test Python file of the installed package."""
    root = package_dir(lib)
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if "__pycache__" in rel.split("/") or is_test_path(rel):
            continue
        out[f"{lib}/{rel}"] = decode_source(path.read_bytes())
    return out


def indexable(repo_dir: Path) -> set[str]:
    """Paths codesense would index in `repo_dir` with the default index settings (gold must be among them)."""
    idx = IndexConfig()
    sel = select_files(repo_dir, max_file_bytes=idx.max_file_bytes, max_line_length=idx.max_line_length)
    return {sf.path for sf in sel.files}


def tree_hash(files: dict[str, str]) -> str:
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(path.encode() + b"\0" + files[path].encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


def write_tree(repo_dir: Path, files: dict[str, str]) -> None:
    """Replace `repo_dir` with exactly `files` (posix relative path → text, written with `\\n` newlines)."""
    if repo_dir.exists():
        shutil.rmtree(repo_dir)
    for rel, text in files.items():
        dest = repo_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(text.encode("utf-8", "surrogatepass"))


# --- AST ------------------------------------------------------------------------------------------
@dataclass
class Func:
    """A module-level function or a method (of a class at any depth), never a function nested in a function."""

    path: str
    qualname: str
    node: ast.FunctionDef | ast.AsyncFunctionDef
    class_name: str | None = None

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def start(self) -> int:
        return self.node.lineno  # the `def` line (decorators are separate nodes)

    @property
    def end(self) -> int:
        return self.node.end_lineno or self.node.lineno


def iter_functions(tree: ast.Module, path: str) -> Iterator[Func]:
    def walk(body: list[ast.stmt], prefix: str, cls: str | None) -> Iterator[Func]:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield Func(path, prefix + node.name, node, cls)
            elif isinstance(node, ast.ClassDef):
                yield from walk(node.body, f"{prefix}{node.name}.", node.name)
            elif isinstance(node, (ast.If, ast.Try)):
                # Definitions under `if TYPE_CHECKING:` / `try: ... except ImportError:` are still top level.
                blocks = [node.body, node.orelse] + ([h.body for h in node.handlers] if isinstance(node, ast.Try) else [])
                if isinstance(node, ast.Try):
                    blocks.append(node.finalbody)
                for block in blocks:
                    yield from walk(block, prefix, cls)

    yield from walk(tree.body, "", None)


def docstring_node(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.Expr | None:
    first = fn.body[0] if fn.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first
    return None


def strippable(fn: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> tuple[int, int] | None:
    """1-based line range of the docstring when it can be deleted as whole lines, leaving a valid body.

    The docstring must sit on lines of its own (nothing before it but indentation, nothing after it but a
    comment) and be followed by at least one more statement, on a later line.
    """
    doc = docstring_node(fn)
    if doc is None or len(fn.body) < 2:
        return None
    s, e = doc.lineno, doc.end_lineno or doc.lineno
    if s <= fn.lineno or fn.body[1].lineno <= e:
        return None
    if lines[s - 1][: doc.col_offset].strip():
        return None
    tail = lines[e - 1][doc.end_col_offset :].strip()
    if tail and not tail.startswith("#"):
        return None
    return s, e


def remove_lines(text: str, ranges: Iterable[tuple[int, int]]) -> str:
    """`text` without the given 1-based inclusive line ranges (which must not overlap)."""
    drop: set[int] = set()
    for s, e in ranges:
        drop.update(range(s, e + 1))
    lines = text.split("\n")
    return "\n".join(line for i, line in enumerate(lines, start=1) if i not in drop)


def new_line(old: int, removed: list[tuple[int, int]]) -> int:
    """Line number in the rewritten file of original line `old` (which must not itself be removed)."""
    shift = 0
    for s, e in removed:
        if e < old:
            shift += e - s + 1
        elif s <= old:
            raise ValueError(f"line {old} was removed")
    return old - shift


# --- datasets -------------------------------------------------------------------------------------
def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def rel_to_root(path: Path) -> str:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


@dataclass
class Corpus:
    """What `build_docstring_set` left in `<out>/corpus/<lib>` (read back from the manifest)."""

    out: Path
    libraries: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, out: Path) -> "Corpus":
        manifest = out / "corpus" / MANIFEST
        if not manifest.is_file():
            raise SystemExit(f"{manifest} not found: run benchmarks/devsets/build_docstring_set.py --out {out} first")
        return cls(out, json.loads(manifest.read_text(encoding="utf-8"))["libraries"])

    def repo_dir(self, lib: str) -> Path:
        return self.out / "corpus" / lib

    def removed(self, lib: str, path: str) -> list[tuple[int, int]]:
        return [tuple(r) for r in self.libraries[lib]["removed"].get(path, [])]  # type: ignore[misc]
