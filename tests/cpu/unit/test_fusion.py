"""Reciprocal-rank fusion."""

from codesense_ray.retrieval.fusion import fuse_rankings


def test_rrf_scores_match_hand_computation():
    """score = Σ w/(k+rank): an item ranked 1st and 2nd beats items ranked 1st once."""
    fused = dict(fuse_rankings({"a": ["x", "y"], "b": ["y", "z"]}, k=60))
    assert abs(fused["y"] - (1 / 62 + 1 / 61)) < 1e-12
    assert abs(fused["x"] - 1 / 61) < 1e-12
    assert fused["y"] > fused["x"] > fused["z"]


def test_rrf_weights_and_zero_weight_switch_off_a_signal():
    """A weight scales a signal's contribution; weight 0 removes it entirely."""
    out = fuse_rankings({"dense": ["a"], "sparse": ["b"]}, weights={"dense": 2.0, "sparse": 0.0})
    assert out == [("a", 2.0 / 61)]


def test_rrf_ties_keep_first_seen_order():
    """Equal scores are ordered by first appearance, so output is deterministic."""
    out = fuse_rankings({"a": ["p"], "b": ["q"]})
    assert [i for i, _ in out] == ["p", "q"]
