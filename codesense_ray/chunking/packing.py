"""Token accounting and packing: what a span of lines costs, and pieces merged up to the bound.

`Budget` prices line spans from per-line counts computed once; `Piece` is a run of lines headed for one
chunk and `Plan` what a planner hands to assembly; `merge` packs neighbouring pieces while they fit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from codesense_ray.chunking.definitions import Def

TokenCounter = Callable[[str], int]

_APPROX_TOKEN = re.compile(r"\w+|[^\w\s]")


def approx_token_count(text: str) -> int:
    """Cheap stand-in for a tokenizer: words and punctuation marks (subword tokenizers give more)."""
    return len(_APPROX_TOKEN.findall(text))


@dataclass
class Piece:
    """A run of lines (0-based, inclusive) headed for one chunk.

    `anchor` names the chunk (symbol, kind, header); `whole` says the piece holds a complete definition
    rather than a fragment of one or code between definitions.
    """

    lo: int
    hi: int
    anchor: Def | None
    whole: bool
    anchor_size: int
    size: int
    cuts: tuple[int, ...] = ()  # rows inside the piece where the pieces merged into it began


@dataclass
class Plan:
    pieces: list[Piece]
    defs: list[Def]
    default_kind: str  # kind of chunks no definition names: "code" between definitions, "text" in fallback


class Budget:
    """Token costs of line spans, from per-line counts computed once.

    The estimate of a span is ``overhead + sum(line counts) + newline cost per line break`` (plus the
    header and its line break), where `overhead` is what the counter charges for empty text (special
    tokens such as ``[CLS]``/``[SEP]``) and the newline cost is measured once. For word-level and WordPiece
    counters the estimate is exact; for others it can be off by a little, which the final per-chunk check
    in assembly catches. `header_for` gives the full header of a chunk named by an anchor (assembly writes
    headers; the budget only prices them).
    """

    def __init__(
        self,
        lines: list[str],
        count: TokenCounter,
        max_tokens: int,
        *,
        exact: bool,
        header_for: Callable[[Def | None], str],
    ) -> None:
        self.count = count
        self.max_tokens = max_tokens
        self.exact = exact
        self.overhead = max(0, int(count("")))
        self.newline = max(0, int(count("x\nx")) - 2 * int(count("x")) + self.overhead)
        cache: dict[str, int] = {}
        prefix = [0]
        total = 0
        for line in lines:
            cost = cache.get(line)
            if cost is None:
                cost = 0 if not line else max(0, int(count(line)) - self.overhead)
                cache[line] = cost
            total += cost + self.newline
            prefix.append(total)
        self._prefix = prefix
        self._header_for = header_for
        self._header_costs: dict[str, int] = {}
        self._headers: dict[int, str] = {}

    def size(self, lo: int, hi: int) -> int:
        """Estimated tokens of lines lo..hi (0-based, inclusive) without overhead or header."""
        return self._prefix[hi + 1] - self._prefix[lo] - self.newline

    def header_cost(self, header: str) -> int:
        if not header:
            return 0
        cost = self._header_costs.get(header)
        if cost is None:
            cost = max(0, int(self.count(header)) - self.overhead) + self.newline
            self._header_costs[header] = cost
        return cost

    def total(self, lo: int, hi: int, header: str) -> int:
        return self.overhead + self.size(lo, hi) + self.header_cost(header)

    def fits(self, lo: int, hi: int, header: str) -> bool:
        return self.total(lo, hi, header) <= self.max_tokens

    def header(self, anchor: Def | None) -> str:
        """The full header of a chunk named by `anchor` (planning assumes it; building may shorten it)."""
        key = id(anchor)
        header = self._headers.get(key)
        if header is None:
            header = self._headers[key] = self._header_for(anchor)
        return header

    def windows(self, lo: int, hi: int, anchor: Def | None) -> list[Piece]:
        """Greedy runs of whole lines under the bound; a line over the bound on its own is its own run."""
        header = self.header(anchor)
        pieces = []
        start = lo
        while start <= hi:
            end = start
            while end < hi and self.fits(start, end + 1, header):
                end += 1
            pieces.append(Piece(start, end, anchor, whole=False, anchor_size=0, size=self.size(start, end)))
            start = end + 1
        return pieces


def merge(pieces: list[Piece], budget: Budget, min_tokens: int) -> list[Piece]:
    """Packs neighbours while the result fits the bound: fragments of one split definition (or code
    between definitions) into runs, and any piece smaller than `min_tokens` into a related neighbour.

    The head of a split definition (`class Foo:` and its docstring) joins what follows it when it can; a
    fragment never joins an unrelated definition (the last lines of one function do not open the next).
    """
    out: list[Piece] = []
    for i, piece in enumerate(pieces):
        if out:
            prev = out[-1]
            same_run = not prev.whole and not piece.whole and prev.anchor is piece.anchor
            small = (prev.size < min_tokens or piece.size < min_tokens) and _related(prev, piece)
            if small and not same_run and prev.size >= min_tokens and _opens(piece) and i + 1 < len(pieces):
                small = _combine(piece, pieces[i + 1], budget) is None  # joins the next piece instead
            if same_run or small:
                combined = _combine(prev, piece, budget)
                if combined is not None:
                    out[-1] = combined
                    continue
        out.append(piece)
    _rebalance_tails(out, budget, min_tokens)
    return out


def _combine(a: Piece, b: Piece, budget: Budget) -> Piece | None:
    """`a` and `b` as one piece named after the more substantial one, or None when that would not fit."""
    main = a if (a.whole, a.anchor_size, a.size) >= (b.whole, b.anchor_size, b.size) else b
    if not budget.fits(a.lo, b.hi, budget.header(main.anchor)):
        return None
    size = budget.size(a.lo, b.hi)
    return Piece(a.lo, b.hi, main.anchor, a.whole or b.whole, main.anchor_size, size, (*a.cuts, b.lo, *b.cuts))


def _related(a: Piece, b: Piece) -> bool:
    """False when one is a fragment of a split definition and the other lies outside that definition."""
    for fragment, other in ((a, b), (b, a)):
        if not fragment.whole and fragment.anchor is not None and not _lineage(fragment.anchor, other.anchor):
            return False
    return True


def _lineage(a: Def, b: Def | None) -> bool:
    """True when `b` is `a`, inside `a`, or encloses `a`."""
    if b is None:
        return False
    for x, y in ((a, b), (b, a)):
        node: Def | None = y
        while node is not None:
            if node is x:
                return True
            node = node.parent
    return False


def _rebalance_tails(pieces: list[Piece], budget: Budget, min_tokens: int) -> None:
    """A small last run of a split definition takes statements from the run before it, so a function
    does not end in a chunk holding only `return result`."""
    for k in range(1, len(pieces)):
        a, b = pieces[k - 1], pieces[k]
        if b.size >= min_tokens or a.whole or b.whole or a.anchor is not b.anchor or not a.cuts:
            continue
        header = budget.header(b.anchor)
        best, best_score = None, b.size
        for cut in a.cuts:
            if not budget.fits(cut, b.hi, header):
                continue
            score = min(budget.size(a.lo, cut - 1), budget.size(cut, b.hi))
            if score > best_score:
                best, best_score = cut, score
        if best is None:
            continue
        kept = tuple(c for c in a.cuts if c < best)
        pieces[k - 1] = Piece(a.lo, best - 1, a.anchor, False, 0, budget.size(a.lo, best - 1), kept)
        moved = tuple(c for c in a.cuts if c > best)
        pieces[k] = Piece(best, b.hi, b.anchor, False, 0, budget.size(best, b.hi), (*moved, b.lo, *b.cuts))


def _opens(piece: Piece) -> bool:
    return not piece.whole and piece.anchor is not None and piece.lo <= piece.anchor.lo
