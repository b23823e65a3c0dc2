"""The real Serve app with monitoring: feedback stored on MLflow traces, per-stage metrics on a real `/metrics`
scrape, the online judge writing scores back, index freshness gauges, and `codesense feedback export`."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.cpu.integration.monitoring.conftest import scrape

pytestmark = pytest.mark.slow


def _trace(app, trace_id: str):
    from mlflow.tracing.client import TracingClient

    return TracingClient(app.mlflow_uri).get_trace(trace_id)


def _assessments(app, trace_id: str) -> list:
    """The trace's assessments, or [] while the server has not exported the trace yet (MLflow exports asynchronously)."""
    from mlflow.exceptions import MlflowException

    try:
        return _trace(app, trace_id).info.assessments
    except MlflowException:
        return []


def _ask(app, question: str = "How are bearer tokens verified?") -> dict:
    app.llm_state["words"] = ["Bearer tokens are verified by `verify_bearer_token` [1]."]
    r = app.client.post("/v1/ask", json={"question": question, "repo": "payments"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["trace_id"]
    return body


def test_feedback_is_stored_on_the_trace_and_counted(served):
    """POST /v1/feedback → 201; the rating, comment and correct paths are an MLflow assessment on that trace; the counter moves."""
    before = scrape(served.client).get('codesense_feedback_total{rating="down"}', 0.0)
    body = _ask(served)
    fb = {"trace_id": body["trace_id"], "rating": -1, "comment": "should cite the middleware", "correct_paths": ["app/auth/middleware.py:1-20"]}
    r = served.client.post("/v1/feedback", json=fb)
    assert r.status_code == 201, r.text
    assert r.json() == {"trace_id": body["trace_id"], "rating": -1, "stored": "mlflow"}
    ratings = [a for a in _trace(served, body["trace_id"]).info.assessments if a.name == "user_rating"]
    assert len(ratings) == 1
    assert ratings[0].value == -1 and ratings[0].rationale == "should cite the middleware"
    assert ratings[0].source.source_type == "HUMAN"
    assert json.loads(ratings[0].metadata["correct_paths"]) == ["app/auth/middleware.py:1-20"]
    assert scrape(served.client)['codesense_feedback_total{rating="down"}'] == before + 1


@pytest.mark.parametrize(
    "body, status, kind",
    [
        ({"trace_id": "tr-00000000000000000000000000000000", "rating": 1}, 404, "TraceNotFound"),
        ({"trace_id": "../../etc/passwd", "rating": 1}, 422, "InvalidRequest"),
        ({"trace_id": "tr-1", "rating": 5}, 422, "InvalidRequest"),
        ({"rating": 1}, 422, "InvalidRequest"),
        ({"trace_id": "tr-1", "rating": 1, "correct_paths": ["a b c"]}, 422, "InvalidRequest"),
        ({"trace_id": "tr-1", "rating": 1, "extra": True}, 422, "InvalidRequest"),
    ],
)
def test_feedback_bad_or_unknown_trace(served, body, status, kind):
    """An unknown trace id is 404; a malformed id, rating, path or an unknown field is 422 — JSON errors, nothing stored."""
    r = served.client.post("/v1/feedback", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["type"] == kind


def test_feedback_needs_the_api_token(served):
    """/v1/feedback is behind the same bearer auth as the rest of the API."""
    r = httpx.post(str(served.client.base_url) + "/v1/feedback", json={"trace_id": "tr-1", "rating": 1})
    assert r.status_code == 401


def test_stage_token_citation_and_error_metrics(served):
    """After an answer, a stream and a failed generation, /metrics shows every stage, tokens (the stream's too, from the
    server's usage chunk across the generator deployment), TTFT, citations and errors by reason."""
    _ask(served)
    before = scrape(served.client)
    with served.client.stream("POST", "/v1/ask", json={"question": "Where is the token checked?", "stream": True}) as r:
        assert r.status_code == 200
        "".join(r.iter_text())
    streamed = scrape(served.client)
    for direction, n in (("prompt", 42), ("completion", len(served.llm_state["words"]))):  # the fake's usage chunk
        key = f'codesense_tokens_total{{backend="openai",direction="{direction}"}}'
        assert streamed[key] - before.get(key, 0.0) == n, direction
    server_mode = served.llm_state["server"]
    server_mode.mode = "error500"
    try:
        assert served.client.post("/v1/ask", json={"question": "How are bearer tokens verified?"}).status_code == 502
    finally:
        server_mode.mode = "ok"
    m = scrape(served.client)
    for stage in ("embed_query", "retrieve", "generate", "answer"):
        assert m[f'codesense_stage_seconds_count{{stage="{stage}"}}'] >= 1, stage
    assert m['codesense_tokens_total{backend="openai",direction="prompt"}'] >= 42
    assert m['codesense_tokens_total{backend="openai",direction="completion"}'] >= 1
    assert m['codesense_time_to_first_token_seconds_count{backend="openai"}'] >= 1
    assert m['codesense_answers_total{outcome="sourced"}'] >= 1
    assert m["codesense_citations_kept_total{}"] >= 1
    assert m['codesense_generator_errors_total{backend="openai",reason="http_5xx"}'] >= 1


def test_index_freshness_gauges(served):
    """The live index's commit and age per repository are gauges; the configured ref equals the indexed one, so not behind."""
    m = scrape(served.client)
    assert m['codesense_index_info{ref="4f1c2ab",repo="payments"}'] == 1.0
    assert 0 <= m['codesense_index_age_seconds{repo="payments"}'] < 3600
    assert m['codesense_index_behind{repo="payments"}'] == 0.0


def test_online_judge_writes_scores_back_off_the_request_path(served):
    """A sampled answer is graded in the background by the judge server; scores land on the trace and in codesense_judge_score."""
    body = _ask(served, "How does the service verify bearer tokens?")
    deadline = time.time() + 120
    judged = {}
    while time.time() < deadline:
        judged = {a.name: a.value for a in _assessments(served, body["trace_id"]) if a.name.startswith("judge/")}
        if {"judge/faithfulness", "judge/answer_relevancy", "judge/citation_format"} <= set(judged):
            break
        time.sleep(1)
    # The judge server's scripted verdicts: faithfulness 3/4, relevancy 3/5, citation format 8/10.
    assert judged == {"judge/faithfulness": 0.75, "judge/answer_relevancy": 0.6, "judge/citation_format": 0.8}
    m = scrape(served.client)
    assert m['codesense_judge_score_count{metric="faithfulness"}'] >= 1
    assert m['codesense_judge_samples_total{status="judged"}'] >= 1
    assert "judge-model" in served.judge.state.models


def test_feedback_export_for_the_golden_set(served):
    """`codesense feedback export` turns a thumbs-down with correct paths into an evaluation-dataset line with gold lines."""
    body = _ask(served, "Which function verifies tokens?")
    fb = {"trace_id": body["trace_id"], "rating": -1, "comment": "wrong", "correct_paths": ["payments:app/auth/jwt.py:10-42"]}
    assert served.client.post("/v1/feedback", json=fb).status_code == 201
    rows = json.loads(served.cli("feedback", "export", "--rating", "down", "--json").stdout)["rows"]
    row = next(r for r in rows if r["trace_id"] == body["trace_id"])
    assert row["question"] == "Which function verifies tokens?" and row["repo"] == "payments"
    assert row["gold"] == [{"path": "app/auth/jwt.py", "repo": "payments", "start_line": 10, "end_line": 42}]
    assert row["rating"] == -1 and row["comment"] == "wrong" and "Source:" in row["model_answer"]


def test_every_codesense_metric_in_dashboards_and_alerts_is_scraped_from_the_running_app(served):
    """After a drift run, every codesense_* series the dashboard and alerts use is on the live /metrics; the rest are documented exporters."""
    from tests.cpu.integration.monitoring.dashboards import all_metric_names, base_name, documented_exporter_metrics

    proc = served.cli("monitor", "drift", "--window", "1d", "--json")
    assert json.loads(proc.stdout)["result"]["status"] == "insufficient_data"
    text = served.client.get("/metrics").text
    exported = {line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")}
    exported |= {line.split("{")[0].split()[0] for line in text.splitlines() if line and not line.startswith("#")}
    names = all_metric_names()
    ours = {n for n in names if n.startswith("codesense_")}
    missing = {n for n in ours if n not in exported and base_name(n) not in exported}
    assert not missing, missing
    assert names - ours <= set(documented_exporter_metrics())
    m = scrape(served.client)
    assert m["codesense_drift_detected{}"] == 0.0 and m["codesense_drift_last_run_timestamp_seconds{}"] > 0
