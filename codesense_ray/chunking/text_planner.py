"""The text planner: the fallback for files without a grammar here, or whose parse fails.

Splits at the boundaries `langchain-text-splitters` uses for the language where it knows one (``\\nclass ``,
``\\ndef ``, ...), else at blank lines, and always at whole lines; langchain loads on first use.
"""

from __future__ import annotations

import re
from typing import Callable

from codesense_ray.chunking.packing import Budget, Piece, Plan, merge

_LANGCHAIN_NAMES = {
    "python": "python",
    "javascript": "js",
    "typescript": "ts",
    "tsx": "ts",
    "go": "go",
    "java": "java",
    "kotlin": "kotlin",
    "rust": "rust",
    "c": "c",
    "cpp": "cpp",
    "csharp": "csharp",
    "ruby": "ruby",
    "php": "php",
    "markdown": "markdown",
    "scala": "scala",
    "swift": "swift",
    "lua": "lua",
    "perl": "perl",
    "haskell": "haskell",
    "elixir": "elixir",
    "r": "r",
    "proto": "proto",
    "html": "html",
    "latex": "latex",
    "rst": "rst",
    "sol": "sol",
    "powershell": "powershell",
}

LinePredicate = Callable[[list[str], int], bool]


def _blank_line_boundary(lines: list[str], row: int) -> bool:
    return not lines[row - 1].strip() and bool(lines[row].strip())


def _separator_predicates(language: str) -> list[LinePredicate]:
    """Line-start tests built from langchain's separators for `language`, best boundary first.

    Its separators are regexes over the text (``"\\nclass "``); here each becomes a test on a line, since
    chunks must be whole lines. The catch-all separators (``"\\n"``, ``" "``, ``""``) are left to the line
    windows that end the recursion.
    """
    predicates: list[LinePredicate] = []
    for sep in _langchain_separators(language):
        if sep in ("", " ", "\n"):
            continue
        if sep == "\n\n":
            continue  # added last, below
        body = sep[1:] if sep.startswith("\n") else sep
        whole_line = body.endswith("\n")
        body = body.rstrip("\n")
        if not body or "\n" in body:
            continue
        try:
            pattern = re.compile(body)
        except re.error:
            pattern = re.compile(re.escape(body))
        if whole_line:
            predicates.append(lambda lines, row, p=pattern: p.fullmatch(lines[row]) is not None)
        else:
            predicates.append(lambda lines, row, p=pattern: p.match(lines[row]) is not None)
    predicates.append(_blank_line_boundary)
    return predicates


def _langchain_separators(language: str) -> list[str]:
    """langchain's separators for `language`, or none when it has no splitter for it."""
    name = _LANGCHAIN_NAMES.get(language)
    if name is None:
        return []
    try:
        from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

        return RecursiveCharacterTextSplitter.get_separators_for_language(Language(name))
    except Exception:  # noqa: BLE001 - an unknown or changed langchain: blank lines still work
        return []


class TextPlanner:
    """Recursive splitting in langchain's manner, at whole lines: the best boundary kind that occurs
    in a too-large span splits it, each part is split further with the next kinds, then parts are packed."""

    def __init__(self, lines: list[str], language: str, budget: Budget, min_tokens: int) -> None:
        self.lines = lines
        self.budget = budget
        self.min_tokens = min_tokens
        self.predicates = _separator_predicates(language)

    def plan(self) -> Plan:
        lines = self.lines
        pieces: list[Piece] = []
        stack = [(0, len(lines) - 1, 0)]
        while stack:
            lo, hi, k = stack.pop()
            if self.budget.fits(lo, hi, self.budget.header(None)):
                pieces.append(Piece(lo, hi, None, False, 0, self.budget.size(lo, hi)))
                continue
            cuts: list[int] = []
            for j in range(k, len(self.predicates)):
                test = self.predicates[j]
                cuts = [row for row in range(lo + 1, hi + 1) if test(lines, row)]
                if cuts:
                    break
            if not cuts:
                pieces.extend(self.budget.windows(lo, hi, None))
                continue
            bounds = [lo, *cuts, hi + 1]
            stack.extend((a, b - 1, j + 1) for a, b in reversed(list(zip(bounds, bounds[1:]))))
        return Plan(merge(pieces, self.budget, self.min_tokens), [], "text")
