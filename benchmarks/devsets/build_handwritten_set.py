"""Resolve the hand-written question specs into dataset JSONL with exact gold line ranges.

The questions are written by hand in `data/eval/*.questions.yaml`; their gold spans name *what* answers
them instead of line numbers, so that edits to the code move the numbers, not the questions:

    gold:
      - {path: app/auth/jwt.py, symbol: verify_bearer_token}         # Python: function/class/method/assignment
      - {path: app/auth/jwt.py, symbol: Principal.is_service}        #   (decorators included)
      - {path: gateway/middleware/auth.go, anchor: "func signHeaders(", end: block}   # up to the matching }
      - {path: docs/authorization.md, anchor: "## Tenant isolation", end: section}    # up to the next heading
      - {path: deploy/k8s/deployment.yaml, anchor: "readinessProbe:", end_anchor: "periodSeconds: 20"}
      - {path: web/src/auth/session.ts, anchor: "/**", lines: 7}     # a fixed number of lines

An anchor must occur exactly once in the file (on the start line); `end_anchor` is the first line at or
after the start that contains it. `--check` exits 1 when a JSONL file is out of date with its spec (the
test suite runs the same check), so after editing code under a gold span, rerun this script.

    python benchmarks/devsets/build_handwritten_set.py            # writes data/eval/handwritten.jsonl, issues_payments.jsonl
    python benchmarks/devsets/build_handwritten_set.py --check
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402

from _common import EVAL_DIR, ROOT, read_jsonl, write_jsonl  # noqa: E402

SPECS = {
    EVAL_DIR / "handwritten.questions.yaml": EVAL_DIR / "handwritten.jsonl",
    EVAL_DIR / "issues_payments.questions.yaml": EVAL_DIR / "issues_payments.jsonl",
}
REPO_ROOTS = {"payments": ROOT / "tests" / "fixtures" / "payments-service", "codesense": ROOT}


class SpecError(Exception):
    pass


def _python_symbol(text: str, symbol: str, where: str) -> tuple[int, int]:
    """Lines of `symbol` (`f`, `Cls`, `Cls.method`, `CONSTANT`) in Python source, decorators included."""
    body = ast.parse(text).body
    parts = symbol.split(".")
    node: ast.AST | None = None
    for i, part in enumerate(parts):
        found = None
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and stmt.name == part:
                found = stmt
            elif isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == part for t in stmt.targets):
                found = stmt
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == part:
                found = stmt
        if found is None:
            raise SpecError(f"{where}: symbol {symbol!r} not found")
        node = found
        if i < len(parts) - 1:
            if not isinstance(found, ast.ClassDef):
                raise SpecError(f"{where}: {'.'.join(parts[: i + 1])} is not a class")
            body = found.body
    assert node is not None
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return start, node.end_lineno or node.lineno


def _anchor_line(lines: list[str], anchor: str, where: str) -> int:
    hits = [i for i, line in enumerate(lines, start=1) if anchor in line]
    if len(hits) != 1:
        raise SpecError(f"{where}: anchor {anchor!r} found {len(hits)} times (must be exactly once)")
    return hits[0]


def _block_end(lines: list[str], start: int, where: str) -> int:
    depth, opened = 0, False
    for i in range(start - 1, len(lines)):
        for ch in lines[i]:
            if ch == "{":
                depth += 1
                opened = True
            elif ch == "}":
                depth -= 1
        if opened and depth <= 0:
            return i + 1
    raise SpecError(f"{where}: no closing brace after line {start}")


def _section_end(lines: list[str], start: int) -> int:
    level = len(lines[start - 1]) - len(lines[start - 1].lstrip("#"))
    end = len(lines)
    for i in range(start, len(lines)):
        m = re.match(r"^(#+)\s", lines[i])
        if m and len(m.group(1)) <= level:
            end = i
            break
    while end > start and not lines[end - 1].strip():
        end -= 1
    return end


def resolve_gold(repo: str, gold: dict, where: str) -> dict:
    """One spec gold entry → `{"path", "start_line", "end_line"}` checked against the file."""
    root = REPO_ROOTS.get(repo)
    if root is None:
        raise SpecError(f"{where}: unknown repo {repo!r}")
    path = gold["path"]
    file = root / path
    if not file.is_file():
        raise SpecError(f"{where}: {repo}:{path} does not exist")
    text = file.read_text(encoding="utf-8")
    lines = text.split("\n")
    if text.endswith("\n"):
        lines = lines[:-1]
    where = f"{where} ({path})"
    if "symbol" in gold:
        start, end = _python_symbol(text, gold["symbol"], where)
    elif "anchor" in gold:
        start = _anchor_line(lines, gold["anchor"], where)
        if gold.get("end") == "block":
            end = _block_end(lines, start, where)
        elif gold.get("end") == "section":
            end = _section_end(lines, start)
        elif "end_anchor" in gold:
            after = [i for i in range(start, len(lines) + 1) if gold["end_anchor"] in lines[i - 1]]
            if not after:
                raise SpecError(f"{where}: end_anchor {gold['end_anchor']!r} not found after line {start}")
            end = after[0]
        elif "lines" in gold:
            end = start + int(gold["lines"]) - 1
        else:
            end = start
    elif "start_line" in gold and "end_line" in gold:
        start, end = int(gold["start_line"]), int(gold["end_line"])
    else:
        raise SpecError(f"{where}: a gold entry needs `symbol`, `anchor` or `start_line`/`end_line`")
    if not 1 <= start <= end <= len(lines):
        raise SpecError(f"{where}: lines {start}-{end} outside the file (1-{len(lines)})")
    return {"path": path, "start_line": start, "end_line": end}


# Backticks, snake_case / SCREAMING_CASE, camelCase / PascalCase, dotted names and file names, header names.
_CODE_LIKE = re.compile(
    r"`[^`]+`|\b\w+_\w+\b|\b[a-z]+[A-Z]\w*\b|\b[A-Z][a-z]+[A-Z]\w*\b|\b[A-Za-z_]\w*\.[A-Za-z_]\w*\b|\b[A-Z][a-z]*(?:-[A-Z][a-z]+)+\b"
)


def auto_tags(row: dict) -> list[str]:
    """`identifiers` when the question names code (backticks, snake/camel case, dotted or file names), else
    `conceptual`; `multi_file` when the gold spans more than one file."""
    tags = ["identifiers" if _CODE_LIKE.search(row["question"]) else "conceptual"]
    if len({g["path"] for g in row["gold"]}) > 1:
        tags.append("multi_file")
    return tags


def resolve_spec(spec_path: Path) -> list[dict]:
    spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    rows = []
    seen: set[str] = set()
    for i, q in enumerate(spec["questions"]):
        where = f"{spec_path.name}[{i}] {q.get('id')}"
        for key in ("id", "question", "repo", "gold"):
            if not q.get(key):
                raise SpecError(f"{where}: missing `{key}`")
        if q["id"] in seen:
            raise SpecError(f"{where}: duplicate id")
        seen.add(q["id"])
        row = {
            "id": q["id"],
            "question": " ".join(q["question"].split()) if "\n" not in q["question"].strip() else q["question"].strip(),
            "repo": q["repo"],
            "gold": [resolve_gold(q["repo"], g, where) for g in q["gold"]],
        }
        if q.get("answer"):
            row["answer"] = " ".join(q["answer"].split())
        # Extra keys are allowed by the dataset contract and sliced on by the eval harness.
        for key, value in q.items():
            if key not in row and key not in ("tags",):
                row[key] = value
        row["tags"] = sorted(set(q.get("tags") or []) | set(auto_tags(row)))
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when a JSONL file is stale")
    args = ap.parse_args(argv)
    stale = []
    for spec, out in SPECS.items():
        try:
            rows = resolve_spec(spec)
        except SpecError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if args.check:
            if not out.is_file() or read_jsonl(out) != rows:
                stale.append(out)
            continue
        write_jsonl(out, rows)
        print(f"{len(rows)} questions → {out.relative_to(ROOT)}")
    if stale:
        print("stale (rerun benchmarks/devsets/build_handwritten_set.py): " + ", ".join(str(p.relative_to(ROOT)) for p in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
