"""Retrieval and citation metrics (contract names), per question and aggregated. Pure functions, no I/O.

Definitions (also in docs/evaluation.md):

- `file_hit@k`: 1 when any gold file is among the top-k ranked files, else 0. Mean over questions.
- `file_all@k`: 1 when every gold file is among the top-k ranked files, else 0. Mean over questions.
- `file_mrr`: 1 / rank of the first gold file among the ranked files (0 when none within the ranking depth).
  Mean over questions.
- `chunk_hit@k`: 1 when a top-k chunk overlaps a gold line range (same repository and path, line ranges
  intersect, both ends inclusive). Mean over the questions whose gold has line ranges only.
- `citation_valid`: share of the citations in an answer that resolve to an indexed file and line range
  (undefined for an answer without citations). Aggregated over all citations of the run.
- `citation_gold`: 1 when an answer cites (a source from) a gold file, else 0. Mean over answered questions.

Ties: when scores are given, an item sharing its score with others is ranked *after* the non-gold items of
that score (pessimistic), so a lucky order among equals never raises a metric.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

# Scores are compared at this precision: fused scores that are equal in exact arithmetic can differ in the last bits.
TIE_DECIMALS = 9


def metric_name(base: str, k: int) -> str:
    """`("file_hit", 5)` → `"file_hit@5"` (the contract spelling)."""
    return f"{base}@{k}"


def mlflow_metric_name(name: str) -> str:
    """MLflow metric names cannot contain `@`: `file_hit@5` → `file_hit_at_5`."""
    return name.replace("@", "_at_")


def ranked_order(keys: Sequence[Hashable], relevant: Iterable[Hashable], scores: Sequence[float] | None = None) -> list[Hashable]:
    """The ranking the metrics score: duplicates dropped (first occurrence wins) and, when `scores` are
    given, every group of equal scores reordered so its relevant items come last (pessimistic ties)."""
    relevant = set(relevant)
    seen: set[Hashable] = set()
    items: list[tuple[Hashable, float | None, int]] = []
    for i, key in enumerate(keys):
        if key in seen:
            continue
        seen.add(key)
        items.append((key, None if scores is None else round(float(scores[i]), TIE_DECIMALS), i))
    if scores is None:
        return [key for key, _, _ in items]
    items.sort(key=lambda t: (-t[1], t[0] in relevant, t[2]))
    return [key for key, _, _ in items]


def gold_ranks(keys: Sequence[Hashable], gold: Iterable[Hashable], scores: Sequence[float] | None = None) -> dict[Hashable, int | None]:
    """1-based rank of each gold item in the ranking (None when it was not retrieved)."""
    gold = list(dict.fromkeys(gold))
    order = ranked_order(keys, gold, scores)
    position = {key: i for i, key in enumerate(order, start=1)}
    return {g: position.get(g) for g in gold}


def first_rank(ranks: Mapping[Hashable, int | None]) -> int | None:
    found = [r for r in ranks.values() if r is not None]
    return min(found) if found else None


def hit_at_k(ranks: Mapping[Hashable, int | None], k: int) -> float:
    """1.0 when any gold item is ranked within the top k."""
    r = first_rank(ranks)
    return 1.0 if r is not None and r <= k else 0.0


def all_at_k(ranks: Mapping[Hashable, int | None], k: int) -> float:
    """1.0 when every gold item is ranked within the top k (an empty gold set never counts as found)."""
    if not ranks:
        return 0.0
    return 1.0 if all(r is not None and r <= k for r in ranks.values()) else 0.0


def reciprocal_rank(ranks: Mapping[Hashable, int | None], depth: int | None = None) -> float:
    """1 / rank of the first gold item; 0 when none is ranked (within `depth`, when given)."""
    r = first_rank(ranks)
    if r is None or (depth is not None and r > depth):
        return 0.0
    return 1.0 / r


@dataclass(frozen=True)
class Span:
    """A line range of one file (1-based, inclusive)."""

    repo: str | None
    path: str
    start_line: int
    end_line: int


def spans_overlap(chunk: Span, gold: Span) -> bool:
    """Same file (a gold span without a repository matches any) and intersecting line ranges, ends inclusive."""
    if chunk.path != gold.path or (gold.repo is not None and chunk.repo != gold.repo):
        return False
    return chunk.start_line <= gold.end_line and gold.start_line <= chunk.end_line


def first_chunk_rank(chunks: Sequence[Span], gold: Sequence[Span], scores: Sequence[float] | None = None) -> int | None:
    """1-based rank of the first chunk overlapping any gold span (None when none does); ties as in `ranked_order`."""
    relevant = [i for i, c in enumerate(chunks) if any(spans_overlap(c, g) for g in gold)]
    order = ranked_order(list(range(len(chunks))), relevant, scores)
    relevant_set = set(relevant)
    for rank, i in enumerate(order, start=1):
        if i in relevant_set:
            return rank
    return None


def chunk_hit_at_k(chunks: Sequence[Span], gold: Sequence[Span], k: int, scores: Sequence[float] | None = None) -> float | None:
    """1.0 when one of the top-k chunks overlaps a gold span; None when the gold has no line ranges."""
    if not gold:
        return None
    r = first_chunk_rank(chunks, gold, scores)
    return 1.0 if r is not None and r <= k else 0.0


def citation_valid(valid: int, invalid: int) -> float | None:
    """Share of an answer's citations that verified; None when it cited nothing."""
    total = valid + invalid
    return valid / total if total else None


def citation_gold(cited: Iterable[Hashable], gold: Iterable[Hashable]) -> float:
    """1.0 when any cited file is a gold file."""
    return 1.0 if set(cited) & set(gold) else 0.0


def retrieval_metrics(ranks: Mapping[Hashable, int | None], chunk_rank: int | None, has_line_gold: bool, ks: Sequence[int], depth: int) -> dict[str, float | None]:
    """Per-question retrieval metrics under their contract names."""
    out: dict[str, float | None] = {}
    for k in ks:
        out[metric_name("file_hit", k)] = hit_at_k(ranks, k)
    for k in ks:
        out[metric_name("file_all", k)] = all_at_k(ranks, k)
    out["file_mrr"] = reciprocal_rank(ranks, depth)
    for k in ks:
        out[metric_name("chunk_hit", k)] = (1.0 if chunk_rank is not None and chunk_rank <= k else 0.0) if has_line_gold else None
    return out


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the defined values; None when there are none."""
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of the values; None when empty."""
    vals = sorted(values)
    if not vals:
        return None
    idx = max(0, math.ceil(q / 100 * len(vals)) - 1)
    return vals[idx]


def aggregate(per_question: Sequence[Mapping[str, float | None]], names: Iterable[str]) -> dict[str, float | None]:
    """Mean of each named metric over the questions where it is defined (None when it is defined for none)."""
    return {name: mean(q.get(name) for q in per_question) for name in names}


def hit_curve(first_ranks: Sequence[int | None], depth: int) -> list[float]:
    """`file_hit@k` for every k in 1..depth (the hit@k curve)."""
    n = len(first_ranks)
    if not n:
        return [0.0] * depth
    return [sum(1 for r in first_ranks if r is not None and r <= k) / n for k in range(1, depth + 1)]
