"""Feedback stores (MLflow on SQLite, Langfuse through a local server speaking its API, real SDKs), the body
validation, the export rows, and the online judge's sampling and back-pressure."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from codesense_ray.config import config_from_dict
from codesense_ray.errors import InvalidConfig
from codesense_ray.monitoring.feedback import Feedback, LangfuseFeedbackStore, MlflowFeedbackStore, TraceNotFound, build_feedback_store, parse_gold_path
from codesense_ray.monitoring.metrics import RagMetrics
from tests.cpu.integration.monitoring.langfuse_server import start_langfuse


@pytest.fixture
def traced(tmp_path):
    """One answerer-shaped trace in a real MLflow SQLite store; yields (uri, trace id)."""
    from codesense_ray.answering.tracing import MlflowTracer

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracer = MlflowTracer(uri)
    with tracer.trace("ask", inputs={"question": "How are tokens verified?", "repo": ["payments"], "k": None}) as trace:
        with trace.span("retrieve", {"query": "q"}) as span:
            span.end([{"path": "app/auth/jwt.py", "lines": [1, 20], "score": 0.61}])
        trace.end({"answer": "In `verify` [1].\n\n[1] Source: https://github.com/acme/payments/blob/4f1c2ab/app/auth/jwt.py#L1-L20"})
    return uri, trace.id


def _scrape(registry) -> dict:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(generate_latest(registry).decode()) for s in f.samples}


def test_mlflow_store_records_on_the_trace_and_rejects_unknown_ids(traced):
    """A rating becomes a HUMAN assessment on the trace (read back via traces.py); an unknown id raises TraceNotFound."""
    from codesense_ray.monitoring.traces import read_mlflow_records

    uri, trace_id = traced
    store = MlflowFeedbackStore(uri)
    store.record(Feedback(trace_id=trace_id, rating=1, comment="spot on"))
    with pytest.raises(TraceNotFound, match="unknown trace_id"):
        store.record(Feedback(trace_id="tr-0123456789abcdef0123456789abcdef", rating=1))
    (rec,) = read_mlflow_records(uri, "codesense", since=time.time() - 600)
    assert rec.trace_id == trace_id and rec.top_score == 0.61 and rec.sourced and rec.repos == ["payments"]
    assert rec.feedback[0]["rating"] == 1 and rec.feedback[0]["comment"] == "spot on"


def test_langfuse_store_scores_the_trace_through_the_sdk():
    """Langfuse: the SDK checks the trace on the real-time observations API and posts a NUMERIC `user_rating` score; unknown → TraceNotFound."""
    server, state = start_langfuse(traces={"a" * 32})
    try:
        store = LangfuseFeedbackStore(server.url, "pk-lf-test", "sk-lf-test")
        store.record(Feedback(trace_id="a" * 32, rating=-1, comment="wrong file", correct_paths=["app/auth/jwt.py:10-42"]))
        with pytest.raises(TraceNotFound):
            store.record(Feedback(trace_id="b" * 32, rating=1))
        store.record_scores("a" * 32, {"faithfulness": {"score": 0.75, "reason": "ok"}, "answer_relevancy": {"score": None, "error": "x"}}, "judge")
    finally:
        server.stop()
    by_name = {s["name"]: s for s in state["scores"]}
    assert by_name["user_rating"]["value"] == -1.0 and by_name["user_rating"]["comment"] == "wrong file"
    assert by_name["user_rating"]["traceId"] == "a" * 32 and by_name["user_rating"]["metadata"]["correct_paths"] == ["app/auth/jwt.py:10-42"]
    assert by_name["judge/faithfulness"]["value"] == 0.75 and "judge/answer_relevancy" not in by_name
    assert state["lookups"] == ["a" * 32, "b" * 32]


@pytest.mark.parametrize(
    "body, field",
    [({"trace_id": "", "rating": 1}, "trace_id"), ({"trace_id": "a/b", "rating": 1}, "trace_id"), ({"trace_id": "t", "rating": 0}, "rating"),
     ({"trace_id": "t", "rating": 1, "correct_paths": ["x.py:9-3"]}, "correct_paths"), ({"trace_id": "t", "rating": 1, "x": 1}, "x")],
)
def test_feedback_body_validation_names_the_field(body, field):
    """Bad ids, ratings, line ranges and unknown fields are rejected, naming the field."""
    with pytest.raises(ValidationError) as err:
        Feedback.model_validate(body)
    assert err.value.errors()[0]["loc"][0] == field


def test_gold_paths_and_store_selection(tmp_path):
    """`repo:path:a-b` parses to a dataset gold entry; feedback follows tracing.backend, and `none` is a config error naming the key."""
    assert parse_gold_path("payments:app/a.py:3-9") == {"repo": "payments", "path": "app/a.py", "start_line": 3, "end_line": 9}
    assert parse_gold_path("app/a.py") == {"path": "app/a.py"}
    assert isinstance(build_feedback_store(config_from_dict({}, tmp_path)), MlflowFeedbackStore)
    with pytest.raises(InvalidConfig, match="monitoring.feedback_backend"):
        build_feedback_store(config_from_dict({"tracing": {"backend": "none"}}, tmp_path))
    with pytest.raises(InvalidConfig, match="tracing.langfuse_host"):
        build_feedback_store(config_from_dict({"monitoring": {"feedback_backend": "langfuse"}}, tmp_path))


def test_online_judge_grades_off_the_request_path_and_writes_back(traced, tmp_path):
    """The real DeepEval suite against the local judge server grades a queued answer on the background thread; scores land on the trace."""
    from prometheus_client import CollectorRegistry

    from codesense_ray.monitoring.judge import OnlineJudge, build_suite
    from tests.cpu.integration.evaluation.judge_server import JudgeServer

    uri, trace_id = traced
    judge = JudgeServer()
    try:
        cfg = config_from_dict({"evaluation": {"judge": {"backend": "openai", "base_url": judge.base_url, "model": "j", "max_retries": 0}}}, tmp_path)
        registry = CollectorRegistry()
        metrics = RagMetrics(registry)
        online = OnlineJudge(lambda: build_suite(cfg), MlflowFeedbackStore(uri), metrics, sample_rate=1.0)
        answer = SimpleNamespace(answer="Tokens are verified by `verify_bearer_token` [1].", trace_id=trace_id)
        assert online.offer("How are tokens verified?", answer, ["app/auth/jwt.py\ndef verify_bearer_token(token): ..."])
        assert online.wait_idle(120)
    finally:
        judge.stop()
    from mlflow.tracing.client import TracingClient

    scores = {a.name: a.value for a in TracingClient(uri).get_trace(trace_id).info.assessments}
    assert scores == {"judge/faithfulness": 0.75, "judge/answer_relevancy": 0.6, "judge/citation_format": 0.8}
    m = _scrape(registry)
    assert m[("codesense_judge_score_count", (("metric", "faithfulness"),))] == 1
    assert m[("codesense_judge_samples_total", (("status", "judged"),))] == 1


def test_online_judge_samples_and_drops_instead_of_blocking():
    """rate 0 never queues; with a busy judge and a full queue, offers return at once and count as dropped."""
    from prometheus_client import CollectorRegistry

    from codesense_ray.monitoring.judge import OnlineJudge

    release = threading.Event()

    class BusySuite:  # a judge that takes as long as the test says
        model_name = "busy"

        def evaluate(self, **_):
            release.wait(30)
            return {"faithfulness": {"score": 1.0}}

    registry = CollectorRegistry()
    metrics = RagMetrics(registry)
    answer = SimpleNamespace(answer="a", trace_id=None)
    assert not OnlineJudge(BusySuite, None, metrics, sample_rate=0.0).offer("q", answer, [])
    judge = OnlineJudge(BusySuite, None, metrics, sample_rate=1.0, queue_size=1)
    started = time.monotonic()
    results = [judge.offer("q", answer, []) for _ in range(5)]
    assert time.monotonic() - started < 5  # never waits for the judge
    release.set()
    assert judge.wait_idle(30)
    assert results[:2] == [True, True] or results[0] is True
    assert _scrape(registry)[("codesense_judge_samples_total", (("status", "dropped"),))] == results.count(False) >= 2
