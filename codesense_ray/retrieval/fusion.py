"""Reciprocal-rank fusion: merge ranked lists from different signals without calibrating their scores.

Dense cosine similarities, BM25 scores and symbol-match counts live on different scales; RRF only looks at
ranks — like merging alert lists from several monitors by how high each put an item, not by raw values.
"""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence


def fuse_rankings(
    rankings: Mapping[str, Sequence[Hashable]],
    weights: Mapping[str, float] | None = None,
    k: int = 60,
) -> list[tuple[Hashable, float]]:
    """Fuse ranked id lists: score(id) = Σ weight_s / (k + rank_s(id)), ranks starting at 1.

    Ties keep the order in which ids were first seen (deterministic output for equal scores).
    """
    scores: dict[Hashable, float] = {}
    for signal, ids in rankings.items():
        w = 1.0 if weights is None else weights.get(signal, 1.0)
        if w == 0:
            continue
        for rank, item in enumerate(ids, start=1):
            scores[item] = scores.get(item, 0.0) + w / (k + rank)
    order = {item: i for i, item in enumerate(scores)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))
