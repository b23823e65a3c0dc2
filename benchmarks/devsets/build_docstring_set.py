"""Build the CodeSearchNet-style dev set: a docstring's first sentence as the query, its function as gold.

For each library (installed packages nobody here wrote):

1. the package's non-test `.py` files are copied to `<out>/corpus/<lib>/<lib>/...`;
2. functions and methods with a docstring whose first sentence has at least 6 words are collected (no
   dunder methods, no `@overload` stubs, no trivial one-statement wrappers, no sentence that also occurs
   elsewhere in the library — that would leak the answer), and a seeded sample is drawn;
3. the sampled docstrings are deleted from the copy (whole lines, the file stays valid Python), so the
   query cannot be matched against its own text;
4. gold = the function's path and `def`..end lines **in the rewritten copy**.

Writes `data/eval/docstring.jsonl`, `data/eval/docstring.meta.json` (library versions, counts, hashes),
`<out>/codesense.yaml` (one `path:` repository per library copy) and `<out>/corpus/manifest.json` (the
removed line ranges, used by `build_issue_set.py`). Same installed versions and seed → same output.

    python benchmarks/devsets/build_docstring_set.py --out .codesense/devsets
"""

from __future__ import annotations

import argparse
import ast
import platform
import random
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402

from _common import (  # noqa: E402
    DEFAULT_LIBRARIES,
    DEFAULT_SEED,
    EVAL_DIR,
    MANIFEST,
    ROOT,
    indexable,
    iter_functions,
    library_sources,
    library_version,
    new_line,
    rel_to_root,
    remove_lines,
    strippable,
    tree_hash,
    write_json,
    write_jsonl,
    write_tree,
)

MIN_WORDS = 6
MAX_WORDS = 60
DEFAULT_PER_LIBRARY = 75
_SKIP_OPENINGS = ("deprecated", "alias", "same as", "see ", "shortcut", "internal", "this is a", "this is an", ".. ", "used internally", "a convenience")
_DANGLING = frozenset("if as like when following the a an of to are is with for by and or that these this".split())
_ABBREVIATIONS = ("e.g", "i.e", "etc", "vs", "cf", "approx", "resp", "incl", "ca")


def _clean_rest(text: str) -> str:
    """reST/Sphinx markup → plain text with backticked names: :class:`~a.B` → `B`, ``x`` → `x`."""

    def role(m: re.Match) -> str:
        target = m.group(1).strip()
        titled = re.match(r"(.+?)\s*<[^>]+>$", target)
        if titled:
            return titled.group(1)
        if target.startswith("~"):
            target = target[1:].rsplit(".", 1)[-1]
        return f"`{target}`"

    text = re.sub(r":(rfc|pep):`(\d+)[^`]*`", lambda m: f"{m.group(1).upper()} {m.group(2)}", text, flags=re.I)
    text = re.sub(r":[A-Za-z]+(?::[A-Za-z]+)*:`([^`]+)`", role, text)
    text = re.sub(r"`([^`]+)`__?", r"\1", text)  # reST hyperlink references: `printf-style`_
    text = text.replace("``", "`")
    return text


def first_sentence(doc: str) -> str | None:
    """The first sentence of a docstring's first paragraph, whitespace-collapsed, or None if there is none."""
    para = doc.strip().split("\n\n", 1)[0]
    if para.lstrip().startswith((">>>", "..", ":")):
        return None
    text = " ".join(para.split())
    for m in re.finditer(r"[.!?](?=\s|$)", text):
        before = text[: m.start()]
        word = before.rsplit(" ", 1)[-1].lower()
        if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
            continue
        return text[: m.end()]
    # A paragraph without a final full stop counts only when it is short (a one-line summary). One that
    # introduces a list ("A value is considered missing if:") counts only when it reads as a sentence.
    if text.endswith(":"):
        text = text[:-1].rstrip()
        if text.rsplit(" ", 1)[-1].lower() in _DANGLING:
            return None
    return text if len(text.split()) <= 25 else None


def query_for(doc: str) -> tuple[str, str] | None:
    """(raw first sentence, cleaned query) when the docstring qualifies."""
    raw = first_sentence(doc)
    if raw is None:
        return None
    query = _clean_rest(raw)
    words = query.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return None
    if query.lower().startswith(_SKIP_OPENINGS) or "deprecated" in query.lower():
        return None
    return raw, query


def _is_overload(fn: ast.AST) -> bool:
    for d in getattr(fn, "decorator_list", []):
        name = d.attr if isinstance(d, ast.Attribute) else getattr(d, "id", "")
        if name in ("overload", "abstractmethod"):
            return True
    return False


def _trivial(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A wrapper whose body (without the docstring) is one short statement: `return self._x(...)`, `pass`."""
    rest = fn.body[1:]
    if len(rest) != 1:
        return False
    stmt = rest[0]
    one_line = (stmt.end_lineno or stmt.lineno) == stmt.lineno
    return one_line and isinstance(stmt, (ast.Return, ast.Expr, ast.Pass, ast.Raise, ast.Assign))


def _norm(text: str) -> str:
    return " ".join(text.split())


def candidates(files: dict[str, str], allowed: set[str]) -> list[dict]:
    """Every function that qualifies as a query/gold pair, sorted by (path, line)."""
    found: list[dict] = []
    corpus_text = _norm("\n".join(files[p] for p in sorted(files)))
    for path in sorted(files):
        if path not in allowed:
            continue
        text = files[path]
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        lines = text.split("\n")
        for fn in iter_functions(tree, path):
            name = fn.name
            if name.startswith("__") and name.endswith("__"):
                continue
            if _is_overload(fn.node) or _trivial(fn.node):
                continue
            doc = ast.get_docstring(fn.node)
            if not doc:
                continue
            span = strippable(fn.node, lines)
            if span is None:
                continue
            q = query_for(doc)
            if q is None:
                continue
            raw, query = q
            # The sentence must occur exactly once in the library (its own docstring): a copy in another
            # docstring or comment would let retrieval match the text instead of the code.
            if corpus_text.count(_norm(raw)) != 1:
                continue
            found.append({"path": path, "func": fn, "doc_lines": span, "query": query})
    return found


def build_library(lib: str, out: Path, per_library: int, seed: int) -> tuple[list[dict], dict]:
    """Copy, sample, strip, write one library's corpus; returns (dataset rows, meta/manifest entry)."""
    files = library_sources(lib)
    repo_dir = out / "corpus" / lib
    write_tree(repo_dir, files)
    allowed = indexable(repo_dir)
    cands = candidates(files, allowed)
    # Duplicated sentences were already excluded; exclude duplicate (path, qualname) too (conditional defs).
    counts = Counter((c["path"], c["func"].qualname) for c in cands)
    cands = [c for c in cands if counts[(c["path"], c["func"].qualname)] == 1]
    rng = random.Random(f"{seed}/{lib}")
    chosen = rng.sample(cands, min(per_library, len(cands)))
    chosen.sort(key=lambda c: (c["path"], c["func"].start))

    removed: dict[str, list[tuple[int, int]]] = {}
    for c in chosen:
        removed.setdefault(c["path"], []).append(c["doc_lines"])
    for path in removed:
        removed[path].sort()
        files[path] = remove_lines(files[path], removed[path])
        ast.parse(files[path], filename=path)  # must stay valid Python
    write_tree(repo_dir, files)

    rows = []
    for c in chosen:
        fn = c["func"]
        gaps = removed[c["path"]]
        start, end = new_line(fn.start, gaps), new_line(fn.end, gaps)
        rows.append(
            {
                "id": f"doc/{lib}/{c['path']}:{fn.qualname}",
                "question": c["query"],
                "repo": lib,
                "gold": [{"path": c["path"], "start_line": start, "end_line": end}],
                "answer": f"`{fn.qualname}` in {c['path']}",
            }
        )
    _verify(repo_dir, rows)
    entry = {
        "version": library_version(lib),
        "package": lib,
        "files": len(files),
        "indexable_files": len(allowed),
        "candidates": len(cands),
        "sampled": len(rows),
        "removed": {p: [list(r) for r in rs] for p, rs in sorted(removed.items())},
        "corpus_sha256": tree_hash(files),
    }
    return rows, entry


def _verify(repo_dir: Path, rows: list[dict]) -> None:
    """Each gold span starts at its function's `def` line, ends at its last line, and has no docstring."""
    trees: dict[str, ast.Module] = {}
    for row in rows:
        g = row["gold"][0]
        tree = trees.get(g["path"])
        if tree is None:
            tree = trees[g["path"]] = ast.parse((repo_dir / g["path"]).read_text(encoding="utf-8"))
        qual = row["id"].rsplit(":", 1)[1]
        match = [f for f in iter_functions(tree, g["path"]) if f.qualname == qual and f.start == g["start_line"] and f.end == g["end_line"]]
        if len(match) != 1 or ast.get_docstring(match[0].node) is not None:
            raise AssertionError(f"gold of {row['id']} does not match the rewritten file")


def write_config(out: Path, libs: list[str]) -> Path:
    data = {
        "repositories": [{"id": lib, "path": f"corpus/{lib}"} for lib in libs],
        "index": {"collection": "devsets"},
    }
    path = out / "codesense.yaml"
    header = (
        "# Generated by benchmarks/devsets/build_docstring_set.py: copies of installed libraries with the sampled\n"
        "# docstrings removed (data/eval/docstring.jsonl, data/eval/issues.jsonl). Regenerate, don't edit.\n"
    )
    path.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def build(
    libs: list[str],
    out: Path,
    *,
    per_library: int = DEFAULT_PER_LIBRARY,
    seed: int = DEFAULT_SEED,
    dataset: Path = EVAL_DIR / "docstring.jsonl",
    meta: Path = EVAL_DIR / "docstring.meta.json",
) -> dict:
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    libs = sorted(set(libs))  # canonical order: the output does not depend on how --libs was spelled
    rows: list[dict] = []
    entries: dict[str, dict] = {}
    for lib in libs:
        lib_rows, entry = build_library(lib, out, per_library, seed)
        rows.extend(lib_rows)
        entries[lib] = entry
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate ids"
    write_jsonl(dataset, rows)
    write_config(out, libs)
    write_json(out / "corpus" / MANIFEST, {"seed": seed, "libraries": entries})
    summary = {
        "dataset": rel_to_root(dataset),
        "builder": "benchmarks/devsets/build_docstring_set.py",
        "seed": seed,
        "per_library": per_library,
        "python": platform.python_version(),
        "queries": len(rows),
        "libraries": {lib: {k: v for k, v in e.items() if k != "removed"} for lib, e in entries.items()},
        "corpus": "copies under <out>/corpus/<lib>; index them with <out>/codesense.yaml",
        "caveat": "gold line ranges refer to the rewritten copies of exactly these library versions",
    }
    write_json(meta, summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / ".codesense" / "devsets", help="corpus + codesense.yaml directory")
    ap.add_argument("--libs", nargs="+", default=list(DEFAULT_LIBRARIES), help="import names of installed packages")
    ap.add_argument("--per-library", type=int, default=DEFAULT_PER_LIBRARY)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--dataset", type=Path, default=EVAL_DIR / "docstring.jsonl")
    ap.add_argument("--meta", type=Path, default=EVAL_DIR / "docstring.meta.json")
    args = ap.parse_args(argv)
    summary = build(args.libs, args.out, per_library=args.per_library, seed=args.seed, dataset=args.dataset, meta=args.meta)
    for lib, e in summary["libraries"].items():
        print(f"{lib} {e['version']}: {e['sampled']} queries ({e['candidates']} candidates, {e['files']} files)")
    print(f"{summary['queries']} queries → {summary['dataset']}; config → {args.out / 'codesense.yaml'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
