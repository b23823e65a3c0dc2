"""Build the bug-report dev set: real projects, one injected bug each, questions written from their own failing tests.

The other sets are saturated (file_hit@5 >= .96): questions scoped to one small library, reports that quote
the error message raised by the gold function. This one looks like what lands in an issue tracker of a
**whole repository** (sources, tests, docs, examples all indexed):

1. each project's source distribution (which ships its test suite) is fetched with `pip download` at a
   pinned version and unpacked into `<out>/bugs/repos/<project>/` — the indexed repository, whole;
2. a seeded sample of single-token mutations is drawn from the project's functions: a flipped comparison
   (`<` ↔ `<=`, `==` ↔ `!=`, `is` ↔ `is not`, `in` ↔ `not in`), `and` ↔ `or`, an off-by-one on an integer
   literal, swapped call arguments — each on one line, so line numbers do not move;
3. the mutation is applied in a scratch copy and the project's own tests run (`pytest -x --tb=native`,
   the test module named after the mutated module when there is one); a mutation that no test notices is
   dropped, like an equivalent mutant;
4. the first failure becomes the question, in one of three seeded shapes:
   * `traceback` — "`pytest tests/...::test_x` fails" and the native Python traceback (test frames and,
     when the error surfaces inside the library, its frames);
   * `reproducer` — a user-style description, the failing test's body as the snippet, and only the final
     error line (no traceback);
   * `symptom` — prose only: what stopped working (from the test's name and docstring) and the error.

Gold is the mutated function's span in the unmutated file (the index holds the released code: the bug is
one token, so the file and its line numbers are the same). The question never contains the mutated line's
original text (the fix). `bugs.meta.json` records versions, each bug's mutation and shape.

    python benchmarks/devsets/build_bug_set.py --out .codesense/devsets     # ~10-20 min on 2 cores
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DEFAULT_SEED, EVAL_DIR, ROOT, iter_functions, rel_to_root, write_json, write_jsonl  # noqa: E402

DEFAULT_PER_PROJECT = 6
SHAPES = ("traceback", "reproducer", "symptom")
SHAPE_WEIGHTS = (0.5, 0.25, 0.25)
TEST_TIMEOUT_S = 120
TRACEBACK_MAX_LINES = 60
CHECKOUT = "/home/dev/src"  # where the "reporter" has the repository checked out (paths in tracebacks)


@dataclass(frozen=True)
class Project:
    """A project whose sdist ships its tests: where its code and tests live inside the unpacked tree."""

    id: str
    requirement: str
    import_root: str  # directory put on PYTHONPATH
    source_dirs: tuple[str, ...]
    tests: str


PROJECTS = {
    p.id: p
    for p in (
        Project("click", "click==8.3.3", "src", ("src/click",), "tests"),
        Project("attrs", "attrs==26.1.0", "src", ("src/attr", "src/attrs"), "tests"),
        Project("itsdangerous", "itsdangerous==2.2.0", "src", ("src/itsdangerous",), "tests"),
        Project("markupsafe", "markupsafe==3.0.4", "src", ("src/markupsafe",), "tests"),
        Project("more-itertools", "more-itertools==11.2.1", ".", ("more_itertools",), "tests"),
        Project("h11", "h11==0.16.0", ".", ("h11",), "h11/tests"),
    )
}
DEFAULT_PROJECTS = tuple(PROJECTS)


# --- fetching -------------------------------------------------------------------------------------
def fetch_repository(project: Project, cache: Path, dest: Path) -> Path:
    """Unpack the project's sdist (downloaded once into `cache` with pip) into `dest`, the indexed repository."""
    cache.mkdir(parents=True, exist_ok=True)
    name, version = project.requirement.split("==")
    stem = f"{name.replace('-', '_')}-{version}"
    archives = [p for p in cache.glob("*.tar.gz") if p.name.lower() in (f"{stem}.tar.gz".lower(), f"{name}-{version}.tar.gz".lower())]
    if not archives:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", "-d", str(cache), project.requirement], check=True
        )
        archives = [p for p in cache.glob("*.tar.gz") if p.name.lower() in (f"{stem}.tar.gz".lower(), f"{name}-{version}.tar.gz".lower())]
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(archives[0]) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")[1:]
            if not parts or not (member.isfile() or member.isdir()) or any(p.endswith(".egg-info") for p in parts) or parts == ["PKG-INFO"]:
                continue
            target = dest.joinpath(*parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]
    return dest


# --- mutations ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mutation:
    """Replace `original` by `mutated` at one place of one line (1-based line, 0-based columns)."""

    path: str
    function: str
    func_start: int
    func_end: int
    line: int
    col: int
    end_col: int
    original: str
    mutated: str
    operator: str

    def apply(self, text: str) -> str:
        lines = text.split("\n")
        line = lines[self.line - 1]
        assert line[self.col : self.end_col] == self.original, (self, line)
        lines[self.line - 1] = line[: self.col] + self.mutated + line[self.end_col :]
        return "\n".join(lines)


_FLIP = {ast.Lt: "<=", ast.LtE: "<", ast.Gt: ">=", ast.GtE: ">", ast.Eq: "!=", ast.NotEq: "==", ast.Is: "is not", ast.IsNot: "is", ast.In: "not in", ast.NotIn: "in"}
_OP_TEXT = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}


def _segment(lines: list[str], node: ast.AST) -> str | None:
    if getattr(node, "lineno", None) is None or node.lineno != node.end_lineno:  # type: ignore[attr-defined]
        return None
    return lines[node.lineno - 1].encode()[node.col_offset : node.end_col_offset].decode()  # type: ignore[attr-defined]


def _col(line: str, byte_col: int) -> int:
    return len(line.encode()[:byte_col].decode())


def function_mutations(path: str, text: str) -> list[Mutation]:
    """Every single-line mutation the operators find in the module's functions (docstrings skipped)."""
    tree = ast.parse(text)
    lines = text.split("\n")
    out: list[Mutation] = []
    for fn in iter_functions(tree, path):
        start = min([fn.node.lineno] + [d.lineno for d in fn.node.decorator_list])
        end = fn.node.end_lineno or fn.node.lineno
        body = fn.node.body[1:] if (fn.node.body and isinstance(fn.node.body[0], ast.Expr) and isinstance(getattr(fn.node.body[0], "value", None), ast.Constant)) else fn.node.body

        def add(node: ast.AST, original: str, mutated: str, operator: str) -> None:
            line = lines[node.lineno - 1]  # type: ignore[attr-defined]
            col, end_col = _col(line, node.col_offset), _col(line, node.end_col_offset)  # type: ignore[attr-defined]
            out.append(Mutation(path, fn.qualname, start, end, node.lineno, col, end_col, original, mutated, operator))  # type: ignore[attr-defined]

        for stmt in body:
            for node in ast.walk(stmt):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                    continue
                seg = _segment(lines, node)
                if seg is None:
                    continue
                if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _FLIP:
                    left, right = _segment(lines, node.left), _segment(lines, node.comparators[0])
                    if left is not None and right is not None and seg == f"{left} {_OP_TEXT[type(node.ops[0])]} {right}":
                        add(node, seg, f"{left} {_FLIP[type(node.ops[0])]} {right}", "flip_comparison")
                elif isinstance(node, ast.BoolOp) and len(node.values) == 2:
                    a, b = (_segment(lines, v) for v in node.values)
                    op, other = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
                    if a is not None and b is not None and seg == f"{a} {op} {b}":
                        add(node, seg, f"{a} {other} {b}", "swap_boolean")
                elif isinstance(node, ast.Constant) and type(node.value) is int and seg == str(node.value) and 0 <= node.value <= 64:
                    add(node, seg, str(node.value + 1), "off_by_one")
                elif isinstance(node, ast.Call) and len(node.args) >= 2 and not node.keywords and not any(isinstance(a, ast.Starred) for a in node.args):
                    a, b = _segment(lines, node.args[0]), _segment(lines, node.args[1])
                    func = _segment(lines, node.func)
                    if a and b and func and a != b and seg.startswith(f"{func}({a}, {b}"):
                        add(node, seg, seg.replace(f"{func}({a}, {b}", f"{func}({b}, {a}", 1), "swap_arguments")
        del end
    return out


def pick_mutations(candidates: list[Mutation], rng: random.Random) -> list[Mutation]:
    """A seeded order over candidates that spreads bugs over files and functions (one try per function first)."""
    by_function: dict[tuple[str, str], list[Mutation]] = {}
    for m in candidates:
        by_function.setdefault((m.path, m.function), []).append(m)
    keys = sorted(by_function)
    rng.shuffle(keys)
    return [rng.choice(by_function[k]) for k in keys]


# --- running the tests ----------------------------------------------------------------------------
@dataclass
class Failure:
    """The first failing test of a run: its node id and the native traceback pytest printed."""

    nodeid: str
    traceback: str
    error: str


_SECTION = re.compile(r"^_{3,} (\S.*?) _{3,}$", re.M)


def parse_first_failure(output: str) -> Failure | None:
    """The first FAILURES section of `pytest --tb=native` output, with the failing test's node id."""
    summary = re.search(r"^FAILED (\S+?)(?: - (.*))?$", output, re.M)
    if "= FAILURES =" not in output or summary is None:
        return None
    body = output.split("= FAILURES =", 1)[1].split("\n", 1)[1]
    heads = list(_SECTION.finditer(body))
    if not heads:
        return None
    end = heads[1].start() if len(heads) > 1 else len(body)
    end = min(end, *(i for i in (body.find("\n= short test summary"), body.find("\n- Captured")) if i >= 0), len(body))
    section = body[heads[0].end() : end].strip("\n")
    tb_at = section.find("Traceback (most recent call last):")
    if tb_at < 0:
        return None
    tb_lines: list[str] = []
    for ln in section[tb_at:].split("\n"):
        if ln.startswith(("FAILED ", "ERROR ", "!!!!", "=", "-----", "____")) or re.match(r"^\d+ (failed|passed|error)", ln):
            break  # pytest's own summary lines follow the traceback
        tb_lines.append(ln)
    tb_lines = drop_runner_frames(tb_lines)
    traceback = "\n".join(tb_lines).rstrip()
    error = next((ln for ln in reversed(tb_lines) if ln and not ln.startswith(" ")), "")
    return Failure(summary.group(1), traceback, error)


_RUNNER_FRAME = re.compile(r'^  File "[^"]*/(?:_pytest|pluggy)/')


def drop_runner_frames(lines: list[str]) -> list[str]:
    """A native traceback without pytest's and pluggy's own frames and without the `^^^^` marker lines."""
    out: list[str] = []
    skipping = False
    for ln in lines:
        if ln.startswith("  File "):
            skipping = bool(_RUNNER_FRAME.match(ln))
        elif not ln.startswith("    "):
            skipping = False
        if skipping or (ln.strip() and set(ln.strip()) <= {"^", "~"}):
            continue
        out.append(ln)
    return out


def tests_for(project: Project, repo: Path, mutated_path: str) -> list[str]:
    """The test module named after the mutated module (`core.py` → `tests/test_core.py`) first, else the whole suite."""
    stem = Path(mutated_path).stem.lstrip("_")
    named = [p for p in (repo / project.tests).rglob(f"test_{stem}*.py")]
    return [str(p.relative_to(repo)) for p in sorted(named)] or [project.tests]


def run_tests(project: Project, repo: Path, targets: list[str]) -> tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=str(repo / project.import_root), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", PYTHONHASHSEED="0", COLUMNS="100")
    env.pop("PYTEST_ADDOPTS", None)
    # `-o addopts=`: a project's own options may name plugins that are not loaded here (`--strict-config`).
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "--tb=native", "-p", "no:cacheprovider", "-o", "addopts=", "-W", "ignore::DeprecationWarning", *targets]
    try:
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=TEST_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return -1, ""
    return proc.returncode, proc.stdout + proc.stderr


def normalise(text: str, scratch: Path, project: Project) -> str:
    """Paths as in the reporter's checkout, memory addresses and temp dirs stable (byte-identical rebuilds)."""
    text = text.replace(str(scratch), f"{CHECKOUT}/{project.id}")
    text = text.replace(sys.prefix, "/home/dev/.venv").replace(sys.base_prefix, "/usr")
    text = re.sub(r"0x[0-9a-f]{6,16}", "0x7f2a9c3e1d50", text)
    text = re.sub(r"/tmp/pytest-of-[^/\s]+/pytest-\d+", "/tmp/pytest-of-dev/pytest-0", text)
    return re.sub(r"python3\.\d+", "python3.11", text)


# --- questions ------------------------------------------------------------------------------------
def test_source(repo: Path, nodeid: str) -> tuple[str, str]:
    """(docstring first line, dedented body without the docstring) of the failing test function."""
    path, _, name = nodeid.partition("::")
    name = name.split("::")[-1].split("[")[0]
    try:
        tree = ast.parse((repo / path).read_text())
    except (OSError, SyntaxError):
        return "", ""
    text = (repo / path).read_text().split("\n")
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            doc = (ast.get_docstring(node) or "").strip().split("\n")[0]
            first = node.body[1] if doc and len(node.body) > 1 else node.body[0]
            body = "\n".join(text[first.lineno - 1 : node.end_lineno])
            return doc, textwrap.dedent(body).strip("\n")
    return "", ""


def humanise(nodeid: str) -> str:
    name = nodeid.split("::")[-1]
    params = re.search(r"\[(.*)\]$", name)
    words = name.split("[")[0].removeprefix("test_").replace("_", " ").strip()
    return f"{words} (case `{params.group(1)}`)" if params else words


def write_question(project: Project, failure: Failure, shape: str, repo: Path, rng: random.Random) -> str:
    what = humanise(failure.nodeid)
    doc, body = test_source(repo, failure.nodeid)
    error = failure.error if len(failure.error) <= 300 else failure.error[:300] + " ..."
    if shape == "traceback":
        lines = failure.traceback.split("\n")
        if len(lines) > TRACEBACK_MAX_LINES:
            lines = lines[:4] + ["  ..."] + lines[-(TRACEBACK_MAX_LINES - 5) :]
        opener = rng.choice(["Test failure on main", "CI is red", "Regression in the test suite", "Failing test after pulling main"])
        return f"{opener}: `{failure.nodeid}`\n\nRunning `pytest {failure.nodeid}` on a fresh checkout of {project.id} fails:\n\n```\n" + "\n".join(lines) + "\n```\n"
    if shape == "reproducer" and body:
        intro = rng.choice([f"{what} seems broken in {project.id}.", f"Unexpected behaviour in {project.id}: {what}.", f"{project.id}: {what} does not work any more."])
        extra = f" {doc}" if doc else ""
        return f"{intro}{extra}\n\nThis snippet reproduces it:\n\n```python\n{body}\n```\n\nIt fails with `{error}` instead of passing.\n"
    detail = f" ({doc.rstrip('.')})" if doc else ""
    return (
        rng.choice([f"In {project.id}, {what}{detail} stopped working.", f"{project.id} bug: {what}{detail} gives the wrong result.", f"Something is off with {what}{detail} in {project.id}."])
        + f" We get `{error.split(chr(10))[0][:200]}`. Which code is responsible?\n"
    )


# --- the build ------------------------------------------------------------------------------------
def build_project(project: Project, repo: Path, scratch: Path, per_project: int, max_tries: int, rng: random.Random, log) -> list[dict]:
    """Mutate, test and write up to `per_project` bugs of one project (`repo` stays pristine)."""
    if scratch.exists():
        shutil.rmtree(scratch)
    shutil.copytree(repo, scratch)
    sources: dict[str, str] = {}
    for d in project.source_dirs:
        for p in sorted((repo / d).rglob("*.py")):
            rel = p.relative_to(repo).as_posix()
            if "/tests/" not in f"/{rel}" and not Path(rel).name.startswith("test_"):
                sources[rel] = p.read_text()
    candidates = [m for rel, text in sources.items() for m in function_mutations(rel, text)]
    # Modules with a test module of their own first: a focused run is seconds, the whole suite is minutes.
    focused = [m for m in candidates if tests_for(project, repo, m.path) != [project.tests]]
    candidates = focused or candidates
    bugs: list[dict] = []
    tries = 0
    for m in pick_mutations(candidates, rng):
        if len(bugs) >= per_project or tries >= max_tries:
            break
        tries += 1
        target = scratch / m.path
        target.write_text(m.apply(sources[m.path]))
        try:
            rc, output = run_tests(project, scratch, tests_for(project, scratch, m.path))
        finally:
            target.write_text(sources[m.path])
        failure = parse_first_failure(normalise(output, scratch, project)) if rc == 1 else None
        log(f"  {project.id} {m.path}:{m.line} {m.operator} `{m.original}` -> `{m.mutated}`: {'bug ' + failure.nodeid if failure else 'no failing test (rc=%s)' % rc}")
        if failure is None:
            continue
        shape = rng.choices(SHAPES, SHAPE_WEIGHTS)[0]
        question = write_question(project, failure, shape, scratch, rng)
        original_line = sources[m.path].split("\n")[m.line - 1].strip()
        if original_line and original_line in question:
            continue  # the fix would be quoted (the mutated line is not what the question shows)
        bugs.append(
            {
                "id": f"bug-{project.id}-{len(bugs) + 1:02d}",
                "question": question,
                "repo": project.id,
                "gold": [{"path": m.path, "start_line": m.func_start, "end_line": m.func_end}],
                "shape": shape,
                "_mutation": {"function": m.function, "line": m.line, "operator": m.operator, "original": m.original, "mutated": m.mutated, "failing_test": failure.nodeid},
            }
        )
    shutil.rmtree(scratch, ignore_errors=True)
    return bugs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / ".codesense" / "devsets", help="where repos/, the sdist cache and codesense.yaml go")
    ap.add_argument("--projects", nargs="+", default=list(DEFAULT_PROJECTS), choices=sorted(PROJECTS))
    ap.add_argument("--per-project", type=int, default=DEFAULT_PER_PROJECT)
    ap.add_argument("--max-tries", type=int, default=None, help="mutations tried per project (default 3x --per-project)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--jobs", type=int, default=3, help="projects mutated and tested in parallel")
    ap.add_argument("--dataset", type=Path, default=EVAL_DIR / "bugs.jsonl")
    ap.add_argument("--meta", type=Path, default=EVAL_DIR / "bugs.meta.json")
    args = ap.parse_args(argv)
    out = args.out.resolve()
    base = out / "bugs"
    rows: list[dict] = []
    meta: dict = {"seed": args.seed, "projects": {}, "shapes": {}}
    for pid in args.projects:  # sequential: pip shares one download cache
        fetch_repository(PROJECTS[pid], base / "sdists", base / "repos" / pid)

    def build_one(pid: str) -> list[dict]:
        # Each project has its own seeded RNG, so running them in parallel changes nothing in the output.
        rng = random.Random(f"{args.seed}:{pid}")
        repo = base / "repos" / pid
        return build_project(PROJECTS[pid], repo, base / "scratch" / pid, args.per_project, args.max_tries or 3 * args.per_project, rng, lambda s: print(s, file=sys.stderr))

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        built = dict(zip(args.projects, pool.map(build_one, args.projects)))
    for pid in args.projects:
        project = PROJECTS[pid]
        bugs = built[pid]
        meta["projects"][pid] = {
            "requirement": project.requirement,
            "bugs": len(bugs),
            "mutations": {b["id"]: b.pop("_mutation") for b in bugs},
        }
        rows.extend(bugs)
        print(f"{pid}: {len(bugs)} bugs", file=sys.stderr)
    for row in rows:
        meta["shapes"][row["id"]] = row["shape"]
    write_jsonl(args.dataset, rows)
    write_json(args.meta, meta)
    import yaml

    repos = [{"id": pid, "path": str(base / "repos" / pid)} for pid in args.projects]
    (out / "bugs.codesense.yaml").write_text(
        yaml.safe_dump({"repositories": repos, "index": {"collection": "bugs", "in_process_max_files": 100000}, "qdrant": {"path": str(out / "bugs-qdrant")}, "tracing": {"backend": "none"}}, sort_keys=False)
    )
    digest = hashlib.sha256(args.dataset.read_bytes()).hexdigest()[:12]
    print(f"{len(rows)} questions -> {rel_to_root(args.dataset)} (sha256 {digest}); config {out / 'bugs.codesense.yaml'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
