"""Drift statistics on real MiniLM query embeddings: a shifted question set is flagged, a random split of one set
is not (fixed seeds, both asserted); the retrieval-side signals and the edge cases."""

from __future__ import annotations

import random

import numpy as np
import pytest

from codesense_ray.monitoring.drift import Window, classifier_auc, detect_drift, mmd_permutation_test, total_variation
from codesense_ray.config.monitoring import DriftConfig, parse_duration
from tests.cpu.integration.monitoring.querysets import backend, frontend


@pytest.fixture(scope="module")
def embed():
    from codesense_ray.config import EmbeddingConfig
    from codesense_ray.index.embedding import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(EmbeddingConfig(device="cpu"))
    return lambda texts: embedder.embed_queries(list(texts))


def _window(qs: list[str], score: float = 0.7, repo: str = "payments", sourced: float = 0.9, seed: int = 0) -> Window:
    rng = random.Random(seed)
    return Window(qs, [score + rng.gauss(0, 0.05) for _ in qs], [repo] * len(qs), [rng.random() < sourced for _ in qs])


CFG = DriftConfig(min_queries=10, permutations=300, seed=0)


@pytest.mark.slow
def test_shifted_questions_are_flagged(embed):
    """Backend questions as reference, frontend questions as the recent window: MMD p-value at its floor and a separable classifier."""
    result = detect_drift(_window(backend(60)), _window(frontend(40), seed=1), embed, CFG)
    assert result.drift and result.status == "drift"
    assert result.checks["embedding_mmd"]["flagged"] and result.p_value == pytest.approx(1 / 301)
    assert result.checks["classifier_auc"]["flagged"] and result.scores["classifier_auc"] > 0.95


@pytest.mark.slow
def test_random_split_of_one_set_is_not_flagged(embed):
    """A seeded random split of the same 80 questions: no signal crosses its threshold."""
    qs = backend(80)
    random.Random(7).shuffle(qs)
    result = detect_drift(_window(qs[:40]), _window(qs[40:], seed=1), embed, CFG)
    assert not result.drift and result.status == "ok", result.checks
    assert result.p_value > 0.05
    assert result.scores["classifier_auc"] < 0.75


def test_mmd_permutation_test_on_gaussians():
    """Pure statistics: same distribution → large p-value; a mean shift of one standard deviation → p at its floor."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(60, 8)), rng.normal(size=(60, 8))
    assert mmd_permutation_test(a, b, 200, seed=1)["p_value"] > 0.05
    assert mmd_permutation_test(a, b + 1.0, 200, seed=1)["p_value"] == pytest.approx(1 / 201)
    assert classifier_auc(a, b + 1.0) > 0.9


def test_retrieval_side_signals_flag_without_embedding_drift():
    """Same questions, but lower top scores, another repository mix and more answers without sources: each signal flags."""
    qs = [f"question {i}" for i in range(30)]
    ref = Window(qs, [0.8] * 30, ["payments"] * 30, [True] * 30)
    rec = Window(qs, [0.3] * 30, ["billing"] * 20 + ["payments"] * 10, [True] * 15 + [False] * 15)
    fixed = lambda texts: np.eye(len(texts), 4)[:, :4] * 0 + np.arange(len(texts))[:, None] % 3  # noqa: E731 - same embeddings both sides
    result = detect_drift(ref, rec, fixed, CFG)
    assert result.checks["top_score_ks"]["flagged"] and result.scores["top_score_ks"] == 1.0
    assert result.checks["repo_tv"]["flagged"] and result.scores["repo_tv"] == pytest.approx(2 / 3)
    assert result.checks["no_answer_delta"]["flagged"] and result.scores["no_answer_delta"] == pytest.approx(0.5)
    assert not result.checks["embedding_mmd"]["flagged"]


def test_too_few_questions_is_not_a_verdict():
    """Below min_queries neither window is tested: status insufficient_data, no drift (exit 0)."""
    result = detect_drift(Window(["a"] * 3), Window(["b"] * 3), lambda t: np.zeros((len(t), 2)), CFG)
    assert result.status == "insufficient_data" and not result.drift


def test_total_variation_and_durations():
    """TV distance of repository shares; durations like 7d/12h parse and bad ones name the accepted form."""
    assert total_variation({"a": 1.0}, {"b": 1.0}) == 1.0
    assert parse_duration("12h").total_seconds() == 43200
    with pytest.raises(ValueError, match="like 30m, 12h, 7d"):
        parse_duration("7 days")


def test_drift_gauges_are_pushed_to_a_pushgateway(tmp_path):
    """With monitoring.pushgateway_url set, the batch job's gauges are PUT to /metrics/job/<job> by prometheus-client."""
    from codesense_ray.config import config_from_dict
    from codesense_ray.monitoring.metrics import drift_gauge_values
    from codesense_ray.monitoring.publish import push_gauges
    from tests.cpu.integration.answering.fake_servers import Response, start

    seen = []

    def route_factory(state):
        def route(req):
            seen.append((req.method, req.path, req.body.decode()))
            return Response(status=200, body=b"")

        return route

    server, _ = start(route_factory)
    try:
        cfg = config_from_dict({"monitoring": {"pushgateway_url": server.url}}, tmp_path)
        result = {"scores": {"classifier_auc": 0.97}, "p_value": 0.002, "drift": True, "finished_at": 1700000000.0}
        assert push_gauges(cfg, "codesense-drift", drift_gauge_values(result)) == server.url
    finally:
        server.stop()
    (method, path, body), = seen
    assert method == "PUT" and path == "/metrics/job/codesense-drift"
    assert 'codesense_drift_score{signal="classifier_auc"} 0.97' in body and "codesense_drift_detected 1.0" in body
