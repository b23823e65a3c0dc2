"""Metric functions against hand-computed cases."""

from __future__ import annotations

import pytest

from codesense_ray.evaluation import metrics as M
from codesense_ray.evaluation.metrics import Span


def ranks(keys, gold, scores=None):
    return M.gold_ranks(keys, gold, scores)


def test_hit_all_and_mrr_single_gold():
    """A gold file at rank 3 counts for hit@3 and hit@5 but not hit@1, and MRR is 1/3."""
    r = ranks(["a", "b", "g", "c"], ["g"])
    assert r == {"g": 3}
    assert [M.hit_at_k(r, k) for k in (1, 3, 5)] == [0.0, 1.0, 1.0]
    assert [M.all_at_k(r, k) for k in (1, 3, 5)] == [0.0, 1.0, 1.0]
    assert M.reciprocal_rank(r) == pytest.approx(1 / 3)


def test_multiple_gold_files_hit_uses_first_all_uses_last():
    """With gold at ranks 2 and 5: hit@2 = 1, all@2 = 0, all@5 = 1, MRR = 1/2."""
    r = ranks(["x", "g1", "y", "z", "g2"], ["g1", "g2"])
    assert r == {"g1": 2, "g2": 5}
    assert M.hit_at_k(r, 2) == 1.0 and M.hit_at_k(r, 1) == 0.0
    assert M.all_at_k(r, 2) == 0.0 and M.all_at_k(r, 4) == 0.0 and M.all_at_k(r, 5) == 1.0
    assert M.reciprocal_rank(r) == 0.5


def test_gold_file_not_retrieved_fails_all_at_k():
    """One of two gold files never retrieved: hit can succeed, all@k never does."""
    r = ranks(["g1", "a"], ["g1", "g2"])
    assert r == {"g1": 1, "g2": None}
    assert M.hit_at_k(r, 1) == 1.0 and M.all_at_k(r, 10) == 0.0


def test_no_hits_scores_zero():
    """An empty ranking (or one without gold) gives 0 for hit, all and MRR."""
    for keys in ([], ["a", "b"]):
        r = ranks(keys, ["g"])
        assert M.hit_at_k(r, 10) == 0.0 and M.all_at_k(r, 10) == 0.0 and M.reciprocal_rank(r) == 0.0


def test_ties_are_pessimistic():
    """A gold file sharing its score with non-gold files ranks after them: [a=.5, g=.5, b=.5] puts g at rank 3."""
    r = ranks(["g", "a", "b"], ["g"], [0.5, 0.5, 0.5])
    assert r == {"g": 3}
    assert M.hit_at_k(r, 1) == 0.0 and M.hit_at_k(r, 3) == 1.0
    assert M.reciprocal_rank(r) == pytest.approx(1 / 3)


def test_ties_only_reorder_within_equal_scores():
    """Higher-scored items stay ahead; the tie group of 0.4 puts gold last; ties within float noise count as ties."""
    keys = ["top", "g", "t1", "low"]
    scores = [0.9, 0.4 + 1e-12, 0.4, 0.1]
    assert ranks(keys, ["g"], scores) == {"g": 3}
    # Without scores the given order is taken as-is.
    assert ranks(keys, ["g"]) == {"g": 2}


def test_two_gold_files_tied_with_each_other_keep_order():
    """Gold items tied with each other and one non-gold item rank 2 and 3 (non-gold first)."""
    assert ranks(["g1", "g2", "a"], ["g1", "g2"], [1.0, 1.0, 1.0]) == {"g1": 2, "g2": 3}


def test_duplicate_keys_count_once():
    """A file appearing twice in a ranking counts at its first position; later items move up."""
    assert ranks(["a", "a", "g"], ["g"]) == {"g": 2}


def test_mrr_depth_cuts_off():
    """A gold file ranked past `depth` contributes 0 to MRR."""
    r = ranks(["a", "b", "c", "g"], ["g"])
    assert M.reciprocal_rank(r, depth=3) == 0.0 and M.reciprocal_rank(r, depth=4) == 0.25


@pytest.mark.parametrize(
    ("chunk", "hit"),
    [
        ((10, 20), True),  # inside
        ((1, 10), True),  # ends on the gold's first line
        ((30, 40), True),  # starts on the gold's last line
        ((1, 9), False),  # ends just before
        ((31, 50), False),  # starts just after
        ((1, 100), True),  # contains the gold range
    ],
)
def test_chunk_overlap_edges(chunk, hit):
    """Line ranges overlap inclusively at both ends and not one line apart."""
    gold = Span("r", "f.py", 10, 30)
    assert M.spans_overlap(Span("r", "f.py", *chunk), gold) is hit


def test_chunk_overlap_needs_same_file_and_repo():
    """Same lines in another file or repository do not count; a gold span without a repo matches any repo."""
    gold = Span("r", "f.py", 1, 5)
    assert not M.spans_overlap(Span("r", "g.py", 1, 5), gold)
    assert not M.spans_overlap(Span("other", "f.py", 1, 5), gold)
    assert M.spans_overlap(Span("other", "f.py", 1, 5), Span(None, "f.py", 1, 5))


def test_chunk_hit_at_k():
    """The first overlapping chunk at rank 2 gives chunk_hit@1 = 0, @2 = 1; no line gold gives None."""
    chunks = [Span("r", "a.py", 1, 10), Span("r", "f.py", 25, 40), Span("r", "f.py", 1, 3)]
    gold = [Span("r", "f.py", 20, 30)]
    assert M.first_chunk_rank(chunks, gold) == 2
    assert M.chunk_hit_at_k(chunks, gold, 1) == 0.0 and M.chunk_hit_at_k(chunks, gold, 2) == 1.0
    assert M.chunk_hit_at_k(chunks, [], 5) is None
    # Tied with the non-gold chunk after it, the gold chunk ranks behind that chunk.
    assert M.first_chunk_rank(chunks, gold, [0.9, 0.5, 0.5]) == 3


def test_citation_metrics():
    """citation_valid is valid/(valid+invalid) or None without citations; citation_gold is 1 when a gold file is cited."""
    assert M.citation_valid(3, 1) == 0.75 and M.citation_valid(0, 0) is None and M.citation_valid(0, 2) == 0.0
    assert M.citation_gold([("r", "a.py"), ("r", "g.py")], [("r", "g.py")]) == 1.0
    assert M.citation_gold([("r", "a.py")], [("r", "g.py")]) == 0.0
    assert M.citation_gold([], [("r", "g.py")]) == 0.0


def test_per_question_and_aggregate():
    """Two questions (gold at rank 1; gold missed) give hit@1 = 0.5, MRR = 0.5; chunk_hit averages only where defined."""
    q1 = M.retrieval_metrics({"g": 1}, chunk_rank=4, has_line_gold=True, ks=[1, 5], depth=10)
    q2 = M.retrieval_metrics({"g": None}, chunk_rank=None, has_line_gold=False, ks=[1, 5], depth=10)
    assert q1 == {"file_hit@1": 1.0, "file_hit@5": 1.0, "file_all@1": 1.0, "file_all@5": 1.0, "file_mrr": 1.0, "chunk_hit@1": 0.0, "chunk_hit@5": 1.0}
    assert q2["chunk_hit@5"] is None and q2["file_hit@5"] == 0.0
    agg = M.aggregate([q1, q2], ["file_hit@1", "file_mrr", "chunk_hit@5", "citation_gold"])
    assert agg == {"file_hit@1": 0.5, "file_mrr": 0.5, "chunk_hit@5": 1.0, "citation_gold": None}


def test_hit_curve_and_percentile():
    """The hit@k curve counts first ranks at or under each k; p95 is the nearest-rank value."""
    assert M.hit_curve([1, 3, None, 2], 4) == [0.25, 0.5, 0.75, 0.75]
    assert M.percentile([0.1, 0.2, 0.3, 0.4], 95) == 0.4 and M.percentile([0.1, 0.2, 0.3, 0.4], 50) == 0.2
    assert M.percentile([], 95) is None


def test_metric_names():
    """Contract names use `@`; MLflow names replace it with `_at_`."""
    assert M.metric_name("file_hit", 5) == "file_hit@5"
    assert M.mlflow_metric_name("file_hit@5") == "file_hit_at_5" and M.mlflow_metric_name("file_mrr") == "file_mrr"
