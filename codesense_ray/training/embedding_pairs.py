"""Training pairs for the embedding model, mined from the indexed repositories themselves (no labels, no LLM).

Contrastive fine-tuning needs (anchor, positive) pairs: text a user would write, and the code it should find.
A repository already holds three kinds of such pairs, the way a service's own runbooks and alerts already say
which component each symptom belongs to:

* `docstring` — a function's docstring ↔ its body without the docstring;
* `test` — a test function (the reproducer a user pastes) ↔ the source function it calls;
* `raise` — an error a function raises, as a user would quote it (`ValueError: bad header`) ↔ that function.

Evaluation data never leaks in: a pair whose positive overlaps a gold span of any evaluation set, or whose
anchor is a test named in an evaluation question, is dropped (counted as `excluded_gold`).
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from codesense_ray.retrieval.file_ranking import path_role

KINDS = ("docstring", "test", "raise")
MIN_DOCSTRING_CHARS = 24
MIN_BODY_LINES = 2
QUOTE_CHARS = 60
MAX_CHARS = 1500  # about the model's 256 tokens of code; longer texts would be truncated anyway


@dataclass(frozen=True)
class Pair:
    """One (anchor, positive) example and where the positive lives."""

    kind: str
    anchor: str
    positive: str
    repo: str
    path: str
    start_line: int
    end_line: int


@dataclass
class MiningReport:
    """Pairs kept, counted by kind, and what was dropped by reason."""

    pairs: list[Pair] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)

    def counts(self) -> dict[str, int]:
        return dict(Counter(p.kind for p in self.pairs))


@dataclass(frozen=True)
class Function:
    repo: str
    path: str
    name: str
    start_line: int
    end_line: int
    docstring: str | None
    code: str  # the definition's source without its docstring
    calls: tuple[str, ...]
    raises: tuple[str, ...]


@dataclass(frozen=True)
class GoldSpan:
    repo: str | None
    path: str
    start_line: int | None
    end_line: int | None


class EvalExclusions:
    """Gold spans and test names of evaluation sets: pairs touching them are never trained on."""

    def __init__(self, spans: Sequence[GoldSpan] = (), questions: Sequence[str] = ()) -> None:
        self.spans = list(spans)
        self.text = "\n".join(questions)
        self.flat = _normalise(self.text)

    @classmethod
    def from_datasets(cls, paths: Iterable[Path]) -> "EvalExclusions":
        spans, questions = [], []
        for path in paths:
            for line in Path(path).read_text().splitlines():
                if not line.strip():
                    continue
                row = json.loads(line)
                questions.append(row.get("question", ""))
                for g in row.get("gold") or []:
                    spans.append(GoldSpan(row.get("repo"), g["path"], g.get("start_line"), g.get("end_line")))
        return cls(spans, questions)

    def covers(self, fn: Function) -> bool:
        """True when `fn` overlaps a gold span (a span without lines covers the whole file)."""
        for s in self.spans:
            if s.path != fn.path or (s.repo and s.repo != fn.repo):
                continue
            if s.start_line is None or (s.start_line <= fn.end_line and fn.start_line <= (s.end_line or s.start_line)):
                return True
        return False

    def quotes(self, anchor: str) -> bool:
        """True when an evaluation question quotes `anchor` (a docstring set asks with the docstring's own words,
        possibly about another copy of the same library)."""
        head = _normalise(anchor)[:QUOTE_CHARS]
        return len(head) >= MIN_DOCSTRING_CHARS and head in self.flat

    def names(self, fn: Function) -> bool:
        """True when an evaluation question names `fn` (a failing test quoted in a bug report)."""
        return bool(self.text) and re.search(rf"\b{re.escape(fn.name)}\b", self.text) is not None


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def _call_name(node: ast.Call) -> str | None:
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def _raised(node: ast.Raise, source: str) -> str | None:
    """`ValueError: the message` for `raise ValueError("the message")` (literal messages only)."""
    exc = node.exc
    if not (isinstance(exc, ast.Call) and exc.args and isinstance(exc.args[0], (ast.Constant, ast.JoinedStr))):
        return None
    name = _call_name(exc)
    msg = exc.args[0]
    text = msg.value if isinstance(msg, ast.Constant) else ast.get_source_segment(source, msg)
    if not name or not isinstance(text, str) or len(text) < 8:
        return None
    return f"{name}: {text.strip(chr(34) + chr(39)).removeprefix('f').strip(chr(34) + chr(39))}"


def _without_docstring(lines: list[str], node: ast.AST) -> str:
    body = node.body
    start, end = node.lineno, node.end_lineno
    if ast.get_docstring(node) is not None and len(body) > 1:
        doc = body[0]
        kept = lines[start - 1 : doc.lineno - 1] + lines[doc.end_lineno : end]
    else:
        kept = lines[start - 1 : end]
    return "\n".join(kept)


def python_functions(repo: str, path: str, source: str) -> Iterator[Function]:
    """Every function and method of a Python file (nested ones included)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return
    lines = source.splitlines()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        calls = tuple(dict.fromkeys(n for c in ast.walk(node) if isinstance(c, ast.Call) for n in [_call_name(c)] if n))
        raises = tuple(dict.fromkeys(r for c in ast.walk(node) if isinstance(c, ast.Raise) for r in [_raised(c, source)] if r))
        yield Function(repo, path, node.name, node.lineno, node.end_lineno or node.lineno, ast.get_docstring(node),
                       _without_docstring(lines, node), calls, raises)


def _positive(fn: Function) -> str:
    return f"{fn.path}\n{fn.code}"[:MAX_CHARS]


def _first_paragraph(doc: str) -> str:
    return doc.strip().split("\n\n")[0].replace("\n", " ").strip()


def _under_test(test: Function, sources: dict[str, list[Function]]) -> Function | None:
    """The source function a test exercises: among the unique source definitions it calls, the one whose name
    shares most words with the test's name (`test_make_env_none` → `make_env`); none when no name shares a word
    (a test calling only `echo` says nothing about `echo`)."""
    words = set(test.name.lower().removeprefix("test_").split("_")) - {""}
    called = [sources[n][0] for n in test.calls if len(sources.get(n, ())) == 1]
    scored = [(len(words & set(f.name.lower().strip("_").split("_"))), i, f) for i, f in enumerate(called)]
    best = max(scored, key=lambda t: (t[0], -t[1]), default=None)
    return best[2] if best and best[0] > 0 else None


def mine_pairs(functions: Sequence[Function], exclusions: EvalExclusions | None = None, kinds: Sequence[str] = KINDS) -> MiningReport:
    """Pairs of `kinds` from the functions of one or more repositories, without anything `exclusions` covers."""
    exclusions = exclusions or EvalExclusions()
    report = MiningReport()
    sources: dict[str, list[Function]] = {}
    for fn in functions:
        if path_role(fn.path) == "source":
            sources.setdefault(fn.name, []).append(fn)
    candidates: list[tuple[str, str, Function, Function | None]] = []
    for fn in functions:
        role = path_role(fn.path)
        if role == "source" and fn.code.count("\n") + 1 >= MIN_BODY_LINES:
            if "docstring" in kinds and fn.docstring and len(_first_paragraph(fn.docstring)) >= MIN_DOCSTRING_CHARS:
                candidates.append(("docstring", _first_paragraph(fn.docstring), fn, None))
            if "raise" in kinds:
                candidates.extend(("raise", r, fn, None) for r in fn.raises)
        elif role == "test" and "test" in kinds and fn.name.startswith("test"):
            target = _under_test(fn, sources)
            if target is not None:
                candidates.append(("test", fn.code[:MAX_CHARS], target, fn))
    seen: set[str] = set()
    for kind, anchor, positive, anchor_fn in candidates:
        if exclusions.covers(positive) or exclusions.quotes(anchor) or (anchor_fn is not None and (exclusions.covers(anchor_fn) or exclusions.names(anchor_fn))):
            report.dropped["excluded_gold"] += 1
            continue
        key = hashlib.sha256(f"{anchor}\0{positive.path}:{positive.start_line}".encode()).hexdigest()
        if key in seen:
            report.dropped["duplicate"] += 1
            continue
        seen.add(key)
        report.pairs.append(Pair(kind, anchor, _positive(positive), positive.repo, positive.path, positive.start_line, positive.end_line))
    return report


def write_pairs(pairs: Sequence[Pair], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(asdict(p)) + "\n" for p in pairs))


def read_pairs(path: Path) -> list[Pair]:
    return [Pair(**json.loads(line)) for line in Path(path).read_text().splitlines() if line.strip()]
