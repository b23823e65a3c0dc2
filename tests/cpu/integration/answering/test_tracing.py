"""Tracing: MLflow traces stored in SQLite and read back, Langfuse OTLP export to a local server, failure isolation."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from codesense_ray.errors import InvalidConfig
from codesense_ray.config.answering import TracingConfig
from codesense_ray.answering.tracing import LangfuseTracer, MlflowTracer, NoopTracer, Tracer, build_tracer


def _ask(tracer: Tracer, fail_generate: bool = False) -> str | None:
    """The answerer's tracing pattern: a trace per question with retrieve and generate spans."""
    with tracer.trace("ask", inputs={"question": "How is auth done?"}, metadata={"repo": "payments", "prompt_version": "1"}) as trace:
        with trace.span("retrieve", inputs={"query": "How is auth done?", "k": 5}) as span:
            span.end(outputs={"hits": ["app/auth/jwt.py:10-42"]}, hits=1)
        try:
            with trace.span("generate", inputs={"messages": [{"role": "user", "content": "..."}]}) as span:
                if fail_generate:
                    raise RuntimeError("backend down")
                span.end(outputs="Tokens are verified [1].", model="gemini-2.5-pro", prompt_tokens=120, completion_tokens=8)
        except RuntimeError:
            pass
        trace.end(outputs={"answer": "Tokens are verified [1]."}, citation_valid=1.0, prompt_name="rag-code-assistant")
    return trace.id


# --- MLflow ----------------------------------------------------------------------------------------------
def test_mlflow_trace_is_stored_with_spans(mlflow_uri, tmp_path):
    """A trace with retrieve/generate spans lands in the SQLite store: read back with inputs, outputs, attributes and metadata."""
    from mlflow import MlflowClient

    experiment = f"exp-{uuid.uuid4().hex[:6]}"
    tracer = build_tracer(TracingConfig(backend="mlflow", mlflow_tracking_uri=mlflow_uri, experiment=experiment), tmp_path)
    assert isinstance(tracer, MlflowTracer)
    trace_id = _ask(tracer)
    tracer.flush()
    assert trace_id and trace_id.startswith("tr-")

    client = MlflowClient(tracking_uri=mlflow_uri)
    stored = client.get_trace(trace_id)
    assert stored.info.trace_metadata["repo"] == "payments" and stored.info.trace_metadata["prompt_version"] == "1"
    assert stored.info.experiment_id == client.get_experiment_by_name(experiment).experiment_id
    spans = {s.name: s for s in stored.data.spans}
    assert set(spans) == {"ask", "retrieve", "generate"}
    assert spans["retrieve"].parent_id == spans["ask"].span_id
    assert spans["retrieve"].span_type == "RETRIEVER" and spans["generate"].span_type == "LLM"
    assert spans["generate"].attributes["model"] == "gemini-2.5-pro" and spans["generate"].attributes["completion_tokens"] == 8
    assert spans["ask"].outputs == {"answer": "Tokens are verified [1]."} and spans["ask"].attributes["citation_valid"] == 1.0
    assert spans["retrieve"].inputs == {"query": "How is auth done?", "k": 5}
    # Trace payloads live beside the SQLite file, not in ./mlruns of whatever directory the test ran in.
    location = client.get_experiment_by_name(experiment).artifact_location
    assert location.startswith("file://") and "/mlartifacts/" in location


def test_mlflow_records_failed_span_as_error(mlflow_uri, tmp_path):
    """An exception inside a span is recorded as an ERROR span and re-raised to the caller unchanged."""
    from mlflow import MlflowClient

    tracer = MlflowTracer(mlflow_uri, experiment=f"exp-{uuid.uuid4().hex[:6]}")
    trace_id = _ask(tracer, fail_generate=True)
    tracer.flush()
    spans = {s.name: s for s in MlflowClient(tracking_uri=mlflow_uri).get_trace(trace_id).data.spans}
    assert spans["generate"].status.status_code == "ERROR"
    assert "backend down" in spans["generate"].attributes["error"]


def test_mlflow_server_down_pauses_tracing_without_failing(monkeypatch, caplog):
    """A failing MLflow server: requests still complete (no trace id), and later ones skip tracing instead of asking again."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import mlflow

    hits: list[str] = []

    class Down(BaseHTTPRequestHandler):
        def _fail(self) -> None:
            hits.append(self.path)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PATCH = _fail

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Down)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    previous = mlflow.get_tracking_uri()
    try:
        tracer = MlflowTracer(f"http://127.0.0.1:{server.server_address[1]}", experiment="down")
        with caplog.at_level(logging.WARNING, logger="codesense_ray.answering.tracing"):
            assert _ask(tracer) is None
            asked = len(hits)
            assert asked > 0  # the first request did try the server
            assert _ask(tracer) is None
        assert len(hits) == asked  # the second one did not wait on it again
        assert "tracing paused" in caplog.records[-1].getMessage()
    finally:
        mlflow.set_tracking_uri(previous)
        server.shutdown()


def test_default_mlflow_uri_is_sqlite_under_home(tmp_path, monkeypatch):
    """Without a configured URI, traces go to sqlite:///$CODESENSE_HOME/mlflow.db."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracer = build_tracer(TracingConfig(), tmp_path / "home")
    assert tracer.tracking_uri == f"sqlite:///{(tmp_path / 'home' / 'mlflow.db').resolve()}"


# --- Langfuse --------------------------------------------------------------------------------------------
def test_langfuse_exports_otlp_spans(langfuse_server, monkeypatch, tmp_path):
    """Langfuse tracing POSTs OTLP protobuf to /api/public/otel/v1/traces with Basic auth: chain → retriever + generation with model and usage."""
    server, keys = langfuse_server
    monkeypatch.setenv("LF_PK", keys.public_key)
    monkeypatch.setenv("LF_SK", keys.secret_key)
    cfg = TracingConfig(backend="langfuse", langfuse_host=server.url, langfuse_public_key_env="LF_PK", langfuse_secret_key_env="LF_SK")
    tracer = build_tracer(cfg, tmp_path)
    assert isinstance(tracer, LangfuseTracer)
    trace_id = _ask(tracer)
    tracer.flush()

    posts = [r for r in server.requests if r.path == "/api/public/otel/v1/traces"]
    assert posts and posts[0].headers["content-type"] == "application/x-protobuf"
    spans = {a["name"]: a for a in keys.span_attributes}
    assert set(spans) == {"ask", "retrieve", "generate"}
    assert {a["trace_id"] for a in spans.values()} == {trace_id}
    assert spans["retrieve"]["parent_span_id"] == spans["ask"]["span_id"]
    assert spans["ask"]["langfuse.observation.type"] == "chain"
    assert spans["retrieve"]["langfuse.observation.type"] == "retriever"
    gen = spans["generate"]
    assert gen["langfuse.observation.type"] == "generation" and gen["langfuse.observation.model.name"] == "gemini-2.5-pro"
    assert json.loads(gen["langfuse.observation.usage_details"]) == {"input": 120, "output": 8}
    assert json.loads(spans["ask"]["langfuse.observation.output"]) == {"answer": "Tokens are verified [1]."}
    assert json.loads(spans["retrieve"]["langfuse.observation.input"])["k"] == 5


def test_langfuse_outage_never_fails_the_request(langfuse_server, monkeypatch, caplog):
    """With Langfuse returning 503 the traced request completes normally; the export failure is only logged."""
    server, keys = langfuse_server
    server.mode = "down"
    tracer = LangfuseTracer(server.url, keys.public_key, keys.secret_key)
    with caplog.at_level(logging.WARNING):
        trace_id = _ask(tracer)
        tracer.flush()
    assert trace_id  # the trace id is still returned to the user
    assert not keys.span_attributes


# --- failure isolation, sampling, noop -------------------------------------------------------------------
class ExplodingBackend:
    """A backend whose every call fails — stands in for a broken tracking server or SDK bug."""

    name = "exploding"

    def __init__(self, fail_on: str) -> None:
        self.fail_on = fail_on
        self.calls: list[str] = []

    def _maybe(self, what: str):
        self.calls.append(what)
        if what == self.fail_on:
            raise ConnectionError(f"{what} failed")

    def start_trace(self, name, inputs, metadata):
        self._maybe("start_trace")
        return object()

    def trace_id(self, handle):
        self._maybe("trace_id")
        return "t-1"

    def start_span(self, parent, name, inputs, kind):
        self._maybe("start_span")
        return object()

    def end(self, handle, outputs, attributes, error):
        self._maybe("end")

    def flush(self):
        self._maybe("flush")


@pytest.mark.parametrize("fail_on", ["start_trace", "trace_id", "start_span", "end", "flush"])
def test_backend_failures_are_swallowed_and_logged(fail_on, caplog):
    """Whatever backend call fails, the request code runs to the end, no exception escapes, and a warning names the backend."""
    backend = ExplodingBackend(fail_on)
    tracer = Tracer(backend)
    with caplog.at_level(logging.WARNING, logger="codesense_ray.answering.tracing"):
        _ask(tracer)
        tracer.flush()
    warnings = [r for r in caplog.records if "exploding" in r.getMessage()]
    assert warnings and fail_on in warnings[0].getMessage()
    assert len([w for w in warnings if "in flush" not in w.getMessage()]) <= 1  # logged once per trace
    if fail_on != "start_trace":
        assert backend.calls[-2:] == ["end", "flush"]  # what was started is still ended


def test_request_exceptions_propagate_through_traces():
    """Tracing never swallows the request's own exceptions: they reach the caller, and the trace is ended."""
    backend = ExplodingBackend("none")
    with pytest.raises(ValueError, match="bad question"):
        with Tracer(backend).trace("ask") as trace:
            with trace.span("retrieve"):
                raise ValueError("bad question")
    assert backend.calls.count("end") == 2  # span and trace both closed


def test_sampling_and_noop():
    """sample_rate 0 traces nothing (id None, no backend calls); the Noop tracer yields usable no-op traces."""
    backend = ExplodingBackend("none")
    assert _ask(Tracer(backend, sample_rate=0.0)) is None and backend.calls == []
    assert _ask(Tracer(backend, sample_rate=0.5, rng=lambda: 0.1)) == "t-1"
    assert _ask(NoopTracer()) is None
    assert isinstance(build_tracer(TracingConfig(backend="none"), None), NoopTracer)


def test_langfuse_tracer_config_errors(tmp_path):
    """backend=langfuse without a host is an InvalidConfig at startup, not a silent no-op."""
    with pytest.raises(InvalidConfig, match="langfuse_host"):
        build_tracer(TracingConfig(backend="langfuse"), tmp_path)
