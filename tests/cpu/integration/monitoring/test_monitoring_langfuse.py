"""The Langfuse read path: answers written through the real tracer (OTLP) and feedback/judge scores written through
the real SDK to a local Langfuse, read back by the monitoring commands and `dataset golden` (which also writes a
Langfuse Dataset) — pagination, the time window, skipped foreign/malformed traces, and server errors."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml

from codesense_ray.answering.tracing import LangfuseTracer, open_langfuse
from codesense_ray.config import load_config
from codesense_ray.errors import ServiceError
from codesense_ray.monitoring.feedback import Feedback, LangfuseFeedbackStore
from codesense_ray.monitoring.traces import read_records
from tests.conftest import CODESENSE_BIN, write_config
from tests.cpu.integration.monitoring.langfuse_server import start_langfuse_api

DAY = 86400.0
CITED = [{"repo": "payments", "path": "app/auth/jwt.py", "start_line": 1, "end_line": 20}]
SOURCE = "\n\n[1] Source: https://github.com/acme/payments/blob/4f1c2ab/app/auth/jwt.py#L1-L20"


@pytest.fixture
def langfuse(tmp_path, monkeypatch):
    """A local Langfuse (fresh keys: the SDK keeps one client per public key) and a project configured to trace into it."""
    keys = (f"pk-lf-{uuid.uuid4().hex[:8]}", f"sk-lf-{uuid.uuid4().hex[:8]}")
    server, state = start_langfuse_api(*keys)
    monkeypatch.setenv("LF_PK", keys[0])
    monkeypatch.setenv("LF_SK", keys[1])
    monkeypatch.setenv("CODESENSE_HOME", str(tmp_path / ".codesense"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracing = {"backend": "langfuse", "langfuse_host": server.url, "langfuse_public_key_env": "LF_PK", "langfuse_secret_key_env": "LF_SK"}
    write_config(tmp_path, [{"id": "payments", "path": "payments", "web_url": "https://github.com/acme/payments", "ref": "4f1c2ab"}], tracing=tracing)
    (tmp_path / "payments").mkdir()
    yield server, state, keys, tmp_path / "codesense.yaml"
    server.stop()


def answer(tracer: LangfuseTracer, question: str, *, score: float = 0.7, sourced: bool = True, repo: str = "payments", fail: bool = False) -> str:
    """One traced question shaped exactly as `Answerer.ask_events` traces it; returns the trace id."""
    with tracer.trace("ask", inputs={"question": question, "repo": [repo], "k": None}) as trace:
        with trace.span("retrieve", {"query": question, "k": 5, "repo": [repo]}) as span:
            span.end([{"path": "app/auth/jwt.py", "lines": [1, 20], "score": score}, {"path": "app/x.py", "lines": [1, 5], "score": score / 2}], hits=2)
        with trace.span("generate", {"messages": [{"role": "system", "content": "cite"}, {"role": "user", "content": f"[1] jwt.py\n{question}"}]}) as span:
            if fail:
                span.end(error="GeneratorError: upstream 503")
                trace.end(error="GeneratorError: upstream 503")
                return trace.id
            span.end("verified [1]", model="qwen", prompt_tokens=50, completion_tokens=5)
        text = "The token is verified in `verify` [1]." + (SOURCE if sourced else "")
        trace.end({"answer": text}, citation_valid=1.0 if sourced else 0.0, model="openai:qwen", cited=CITED if sourced else [])
    return trace.id


def write_answers(server, keys, questions: list[str], **kw) -> list[str]:
    tracer = LangfuseTracer(server.url, *keys)
    ids = [answer(tracer, q, **kw) for q in questions]
    tracer.flush()
    return ids


def write_foreign_traces(server, keys) -> None:
    """Traces another application (and a broken client) wrote into the same Langfuse project."""
    client = open_langfuse(server.url, *keys)
    client.start_observation(name="summarise-ticket", as_type="span", input={"ticket": 7}).end()
    client.start_observation(name="ask", as_type="chain", input={"prompt": "no question field"}).end()
    client.flush()


def test_round_trip_reads_answers_feedback_and_judge_scores(langfuse):
    """Answers, a rating with correct paths and judge scores written through the real SDK are read back as records;
    the error trace keeps its message and foreign/malformed traces are skipped with a count."""
    server, state, keys, config = langfuse
    ok = write_answers(server, keys, ["How are JWT tokens verified?"])[0]
    unsourced = write_answers(server, keys, ["Where are refunds issued?"], sourced=False, score=0.3)[0]
    failed = write_answers(server, keys, ["Who retries payments?"], fail=True)[0]
    write_foreign_traces(server, keys)
    store = LangfuseFeedbackStore(server.url, *keys)
    store.record(Feedback(trace_id=ok, rating=1, comment="spot on", correct_paths=["payments:app/auth/jwt.py:1-20"]))
    store.record_scores(unsourced, {"faithfulness": {"score": 0.25, "reason": "unsupported"}, "answer_relevancy": {"score": None, "error": "timeout"}}, "judge-model")

    records = read_records(load_config(config), since=time.time() - 3600)
    by_id = {r.trace_id: r for r in records}
    assert [r.trace_id for r in records] == [ok, unsourced, failed]  # oldest first
    assert records.skipped == {"unknown": 1, "malformed": 1}
    first = by_id[ok]
    assert first.question == "How are JWT tokens verified?" and first.repos == ["payments"] and first.sourced and first.citation_valid == 1.0
    assert first.top_score == pytest.approx(0.7) and first.hits == 2 and first.model == "openai:qwen" and first.error is None
    assert first.contexts == ["[1] jwt.py\nHow are JWT tokens verified?"] and first.latency_s is not None and first.latency_s >= 0
    assert [(f["rating"], f["comment"], f["correct_paths"]) for f in first.feedback] == [(1, "spot on", ["payments:app/auth/jwt.py:1-20"])]
    assert by_id[unsourced].judge == {"faithfulness": 0.25} and not by_id[unsourced].sourced and by_id[unsourced].top_score == pytest.approx(0.3)
    assert by_id[failed].error == "GeneratorError: upstream 503" and by_id[failed].answer is None


def test_pages_through_observations_and_scores(langfuse, monkeypatch):
    """With pages of 2, seven answers and their scores are all read by following the cursors (several requests)."""
    from codesense_ray.monitoring import langfuse_traces

    server, state, keys, config = langfuse
    monkeypatch.setattr(langfuse_traces, "OBSERVATION_PAGE", 2)
    monkeypatch.setattr(langfuse_traces, "SCORE_PAGE", 2)
    ids = write_answers(server, keys, [f"question number {i} about tokens" for i in range(7)])
    store = LangfuseFeedbackStore(server.url, *keys)
    for trace_id in ids:
        store.record_scores(trace_id, {"faithfulness": {"score": 0.9}}, "judge-model")
    records = read_records(load_config(config), since=time.time() - 3600)
    assert [r.trace_id for r in records] == ids and all(r.judge == {"faithfulness": 0.9} for r in records)
    roots = [q for q in state["observation_queries"] if q.get("isRootObservation") == "true"]
    assert len(roots) == 4 and all(q["limit"] == "2" for q in roots) and sum("cursor" in q for q in roots) == 3
    score_pages = [r for r in server.requests if r.path == "/api/public/v3/scores"]
    assert len(score_pages) == 4


def test_time_window_selects_by_root_start_time(langfuse):
    """Traces moved two days back are outside `since = now - 1d` and are the only ones in the window two to three days ago."""
    server, state, keys, config = langfuse
    old = write_answers(server, keys, ["old question one", "old question two"])
    new = write_answers(server, keys, ["new question"])
    state["shift_s"] = {trace_id: -2 * DAY for trace_id in old}
    cfg = load_config(config)
    t = time.time()
    assert [r.trace_id for r in read_records(cfg, since=t - DAY)] == new
    window = read_records(cfg, since=t - 3 * DAY, until=t - DAY)
    assert [r.trace_id for r in window] == old and abs(window[0].timestamp - (t - 2 * DAY)) < 600


def test_server_error_is_one_line(langfuse):
    """An HTTP 401 from the scores list surfaces as a ServiceError naming the host, the query and the status."""
    server, state, keys, config = langfuse
    write_answers(server, keys, ["How are JWT tokens verified?"])
    state["fail"] = {"/api/public/v3/scores": 401}
    with pytest.raises(ServiceError, match=r"Langfuse at http://127\.0\.0\.1:\d+ answered HTTP 401 to listing scores: injected failure 401"):
        read_records(load_config(config), since=time.time() - 3600)


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"MLFLOW_ENABLE_TELEMETRY": "false"}
    return subprocess.run([CODESENSE_BIN, *args, "--config", str(config)], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_feedback_export_report_and_outage(langfuse, tmp_path):
    """`feedback export` and `monitor report` read Langfuse; with Langfuse down (503) `monitor report` exits 5 with one error line."""
    server, state, keys, config = langfuse
    ids = write_answers(server, keys, ["How are JWT tokens verified?", "Where are refunds issued?"])
    LangfuseFeedbackStore(server.url, *keys).record(Feedback(trace_id=ids[0], rating=1))
    proc = _cli(config, "feedback", "export", "--since", "1d")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["trace_id"], r["rating"]) for r in rows] == [(ids[0], 1)] and rows[0]["gold"] == [{"path": "app/auth/jwt.py", "start_line": 1, "end_line": 20}]
    report = tmp_path / "report.html"
    proc = _cli(config, "monitor", "report", "--days", "1", "--output", str(report), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["questions"] == 2 and report.is_file()
    server.mode = "down"
    proc = _cli(config, "monitor", "report", "--days", "1", "--output", str(report))
    assert proc.returncode == 5
    errors = [line for line in proc.stderr.splitlines() if line.startswith("codesense: error:")]
    assert len(errors) == 1 and "Langfuse at" in errors[0] and "HTTP 503" in errors[0], proc.stderr


@pytest.mark.slow
def test_batch_judge_writes_langfuse_scores_once(langfuse):
    """`monitor judge` on Langfuse grades the unjudged answers through the judge server, writes `judge/<metric>`
    scores onto their traces, and a second run finds nothing left to grade."""
    from codesense_ray.monitoring.judge import judge_recent
    from tests.cpu.integration.evaluation.judge_server import JudgeServer

    server, state, keys, config = langfuse
    ids = write_answers(server, keys, ["How are JWT tokens verified?", "Where are refunds issued?"])
    judge = JudgeServer()
    try:
        raw = yaml.safe_load(config.read_text())
        raw["evaluation"] = {"judge": {"backend": "openai", "base_url": judge.base_url, "model": "judge-model", "max_retries": 0}}
        raw["monitoring"] = {"judge_metrics": ["answer_relevancy", "citation_format"]}
        config.write_text(yaml.safe_dump(raw))
        cfg = load_config(config)
        summary = judge_recent(cfg, since=time.time() - DAY)
        assert summary["candidates"] == 2 and summary["judged"] == 2 and set(summary["traces"]) == set(ids)
        written = {(s["traceId"], s["name"]): s["value"] for s in state["scores"]}
        assert written == {(t, m): v for t in ids for m, v in (("judge/answer_relevancy", 0.6), ("judge/citation_format", 0.8))}
        assert judge_recent(cfg, since=time.time() - DAY)["candidates"] == 0
    finally:
        judge.stop()


@pytest.mark.slow
def test_golden_set_from_langfuse_writes_jsonl_and_a_langfuse_dataset(langfuse, capsys):
    """`dataset golden` on Langfuse keeps the sourced, well-rated answer, drops the thumbs-down and the unsourced one,
    counts the foreign traces, and writes the kept answer as a Langfuse Dataset item linked to its trace (re-runs upsert)."""
    from codesense_ray.app.cli.main import main

    server, state, keys, config = langfuse
    good, bad = write_answers(server, keys, ["How are JWT tokens verified?", "Where are refunds issued?"])
    write_answers(server, keys, ["Who retries failed payments?"], sourced=False)
    write_foreign_traces(server, keys)
    store = LangfuseFeedbackStore(server.url, *keys)
    store.record(Feedback(trace_id=good, rating=1))
    store.record(Feedback(trace_id=bad, rating=-1, comment="wrong file"))

    for _ in range(2):
        assert main(["dataset", "golden", "--config", str(config), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
    assert report["read"] == 3 and report["kept"] == 1 and report["langfuse_dataset"] == "golden"
    assert report["dropped"] == {"negative_feedback": 1, "no_citation": 1} and report["skipped"] == {"unknown": 1, "malformed": 1}
    rows = [json.loads(line) for line in open(report["path"])]
    assert [r["id"] for r in rows] == [good] and rows[0]["gold"] == [{"path": "app/auth/jwt.py", "start_line": 1, "end_line": 20}]
    assert list(state["datasets"]) == ["golden"]
    (item,) = state["items"].values()  # the second run updated the item instead of adding one
    assert item["sourceTraceId"] == good and item["input"] == {"question": "How are JWT tokens verified?", "repo": "payments"}
    assert item["expectedOutput"]["gold"] == rows[0]["gold"]
