"""From a file to its chunks: `chunk_file` picks a planner, then assembles the plan's pieces into `Chunk`s.

Assembly writes the headers (path, enclosing definitions, signature), trims blank edge lines, checks each
chunk once with the real token counter (shortening the header, or halving the chunk, when it is over) and
lists the definitions that start inside each chunk.
"""

from __future__ import annotations

import bisect
import logging
from typing import Iterable

from codesense_ray.chunking.definitions import LANGUAGES, Def
from codesense_ray.chunking.packing import Budget, Plan, TokenCounter, approx_token_count
from codesense_ray.chunking.records import Chunk
from codesense_ray.chunking.syntax_planner import SyntaxPlanner
from codesense_ray.chunking.text_planner import TextPlanner

log = logging.getLogger(__name__)


def chunk_file(
    text: str,
    path: str,
    language: str,
    *,
    max_tokens: int,
    min_tokens: int = 48,
    count_tokens: TokenCounter | None = None,
) -> list[Chunk]:
    """Chunks of `text` (the file at `path`), sorted, non-overlapping, covering every non-blank line.

    Newlines: the caller normalises ``\\r\\n`` and ``\\r`` to ``\\n`` first (as `files.read_text` does).
    The file's lines are ``text.split("\\n")`` and each chunk's `text` is exactly
    ``"\\n".join(lines[start_line - 1:end_line])``; a stray ``\\r`` simply stays part of its line.
    Blank lines at the edges of a chunk are left out.

    Token bound: ``count_tokens(chunk.embed_text) <= max_tokens`` for every chunk (the header is shortened
    or dropped to make room), except a chunk of one line that alone exceeds the bound, which is returned
    with ``oversized=True``. Planning uses per-line counts (each line is counted once, so the cost stays
    linear in the file size); each finished chunk is then counted once with `count_tokens` and split
    further if the real count is over. `count_tokens` defaults to `approx_token_count`, for which the
    per-line sum is exact and the final check is skipped.

    Never raises on bad input: unparsable, binary-looking or unknown-language text is chunked as text.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    if not text or text.isspace():
        return []
    lines = text.split("\n")
    budget = Budget(
        lines,
        count_tokens or approx_token_count,
        max_tokens,
        exact=count_tokens is None,
        header_for=lambda anchor: header_options(path, anchor)[0],
    )
    plan: Plan | None = None
    if language in LANGUAGES:
        try:
            plan = SyntaxPlanner(lines, text, language, budget, min_tokens).plan()
        except Exception:  # noqa: BLE001 - any grammar or tree surprise falls back to text chunking
            log.debug("tree-sitter chunking failed for %s; chunking as text", path, exc_info=True)
    if plan is None:
        try:
            plan = TextPlanner(lines, language, budget, min_tokens).plan()
        except Exception:  # noqa: BLE001 - last resort: token-bounded line windows
            log.debug("text chunking failed for %s; using line windows", path, exc_info=True)
            plan = Plan(budget.windows(0, len(lines) - 1, None), [], "text")
    return _build_chunks(plan, lines, path, language, budget)


def _context(anchor: Def | None) -> list[str]:
    """Header parts after the path: enclosing definitions by kind and name, then the anchor's signature."""
    if anchor is None:
        return []
    chain = []
    parent = anchor.parent
    while parent is not None:
        chain.append(f"{parent.kind} {parent.name}")
        parent = parent.parent
    chain.reverse()
    chain.append(anchor.signature or f"{anchor.kind} {anchor.name}")
    return chain


def header_options(path: str, anchor: Def | None) -> list[str]:
    """Headers from most to least informative; the first that fits is used."""
    parts = _context(anchor)
    options = []
    if parts:
        options.append("# " + " · ".join([path, *parts]))
        if len(parts) > 1:
            options.append("# " + " · ".join([path, parts[-1]]))
        options.append("# " + " · ".join(parts[-1:]))
    options.append(f"# {path}")
    options.append("")
    seen: set[str] = set()
    return [o for o in options if not (o in seen or seen.add(o))]


def _build_chunks(plan: Plan, lines: list[str], path: str, language: str, budget: Budget) -> list[Chunk]:
    starts = [d.lo for d in plan.defs]
    chunks: list[Chunk] = []
    for piece in plan.pieces:
        lo, hi = piece.lo, piece.hi
        while lo <= hi and not lines[lo].strip():
            lo += 1
        while hi >= lo and not lines[hi].strip():
            hi -= 1
        if lo > hi:
            continue
        chunks.extend(_finish(lo, hi, piece.anchor, lines, path, language, budget, plan, starts))
    return chunks


def _finish(
    lo: int,
    hi: int,
    anchor: Def | None,
    lines: list[str],
    path: str,
    language: str,
    budget: Budget,
    plan: Plan,
    starts: list[int],
) -> Iterable[Chunk]:
    """One chunk for lines lo..hi with the longest header that fits, checked with the real counter;
    halved (recursively) in the rare case the real count is over the estimate."""
    pending = [(lo, hi)]
    while pending:
        lo, hi = pending.pop()
        text = "\n".join(lines[lo : hi + 1])
        options = header_options(path, anchor)
        chosen = None
        for header in options:
            if budget.fits(lo, hi, header) and (budget.exact or _real(budget, header, text) <= budget.max_tokens):
                chosen = header
                break
        oversized = False
        if chosen is None:
            if lo < hi:
                pending.extend(reversed(_halves(lo, hi, lines)))
                continue
            chosen = options[0]
            oversized = True
        i = bisect.bisect_left(starts, lo)
        j = bisect.bisect_right(starts, hi)
        yield Chunk(
            path=path,
            start_line=lo + 1,
            end_line=hi + 1,
            language=language,
            text=text,
            header=chosen,
            symbol=anchor.qualified if anchor is not None else None,
            kind=anchor.kind if anchor is not None else plan.default_kind,
            definitions=[d.public() for d in plan.defs[i:j]],
            oversized=oversized,
        )


def _halves(lo: int, hi: int, lines: list[str]) -> tuple[tuple[int, int], tuple[int, int]]:
    """lo..hi cut in the middle, each half trimmed so that no chunk starts or ends on a blank line."""
    mid = (lo + hi) // 2
    left_hi, right_lo = mid, mid + 1
    while left_hi > lo and not lines[left_hi].strip():
        left_hi -= 1
    while right_lo < hi and not lines[right_lo].strip():
        right_lo += 1
    return (lo, left_hi), (right_lo, hi)


def _real(budget: Budget, header: str, text: str) -> int:
    return int(budget.count(f"{header}\n{text}" if header else text))
