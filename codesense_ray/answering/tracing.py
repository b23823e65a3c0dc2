"""Tracing of the answer path: one trace per question, spans for retrieve and generate — distributed tracing
(think Jaeger/Tempo) for LLM calls, with the prompt version, model, tokens and citation validity attached.

    tracer = build_tracer(cfg.tracing, cfg.home)
    with tracer.trace("ask", inputs={"question": q}, metadata={"repo": "payments"}) as trace:
        with trace.span("retrieve", inputs={"query": q}) as span:
            hits = retriever.search(q)
            span.end(outputs={"hits": len(hits)}, k=10)
        with trace.span("generate", inputs={"messages": messages}) as span:
            gen = generator.generate(messages)
            span.end(outputs=gen.text, model=gen.model, prompt_tokens=gen.prompt_tokens, completion_tokens=gen.completion_tokens)
        trace.end(outputs={"answer": answer}, citation_valid=0.75)
    trace.id   # the id to return to the user ("trace_id")

Backends: `MlflowTracer` (MLflow tracing, SQLite by default, browse with `mlflow ui`), `LangfuseTracer` (Langfuse
SDK, which exports OpenTelemetry spans to `{host}/api/public/otel/v1/traces`), `NoopTracer`.

A tracing failure never fails a request: every backend call is guarded, logged once, and turns the rest of that
trace into a no-op. Exceptions raised by the traced code itself are recorded on the span and re-raised untouched.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Protocol

from codesense_ray.backends import BackendRegistry
from codesense_ray.errors import InvalidConfig
from codesense_ray.config.answering import TracingConfig, mlflow_artifact_location, resolve_mlflow_uri

log = logging.getLogger(__name__)

# Span names the answerer uses, mapped to each backend's span kinds (icons and columns in their UIs).
SPAN_KINDS = {"retrieve": "retriever", "search": "retriever", "generate": "llm", "rerank": "reranker", "embed": "embedding"}
TOKEN_ATTRIBUTES = ("prompt_tokens", "completion_tokens")


class _Backend(Protocol):
    """The primitive operations a tracing backend implements; the wrappers below add safety and lifecycle."""

    name: str

    def start_trace(self, name: str, inputs: Any, metadata: dict[str, Any]) -> Any: ...

    def trace_id(self, handle: Any) -> str | None: ...

    def start_span(self, parent: Any, name: str, inputs: Any, kind: str | None) -> Any: ...

    def end(self, handle: Any, outputs: Any, attributes: dict[str, Any], error: str | None) -> None: ...

    def flush(self) -> None: ...


class _Guard:
    """Runs backend calls; the first failure is logged with the backend's name and disables the rest of the trace."""

    def __init__(self, backend_name: str) -> None:
        self.backend_name = backend_name
        self.failed = False

    def call(self, what: str, fn: Callable[..., Any], *args: Any, cleanup: bool = False) -> Any:
        """Run `fn`; after a failure only `cleanup` calls (ending what was started) still run."""
        if self.failed and not cleanup:
            return None
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - tracing must never fail a request
            already, self.failed = self.failed, True
            if already:
                return None  # logged once per trace
            log.warning("tracing backend %s failed in %s (trace disabled for this request): %s: %s", self.backend_name, what, type(exc).__name__, exc)
            return None


class Span:
    """One step of a trace (retrieve, generate). Use as a context manager; `end()` records outputs and attributes."""

    def __init__(self, backend: _Backend | None, guard: _Guard, handle: Any) -> None:
        self._backend = backend
        self._guard = guard
        self._handle = handle
        self.ended = False

    def end(self, outputs: Any = None, *, error: str | None = None, **attributes: Any) -> None:
        """Close the span with its outputs and attributes (model, tokens, latency...). Later calls are ignored."""
        if self.ended:
            return
        self.ended = True
        if self._backend is not None and self._handle is not None:
            # Ending runs even after an earlier failure, so backends do not keep half-open spans in memory.
            self._guard.call("end", self._backend.end, self._handle, outputs, _clean(attributes), error, cleanup=True)

    def __enter__(self) -> "Span":
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        # Ended explicitly before an exception: keep what the caller recorded.
        if not self.ended:
            self.end(error=_describe(exc) if exc_type else None)


class Trace(Span):
    """One question's trace. `id` is what the API returns as `trace_id` (None when not traced)."""

    def __init__(self, backend: _Backend | None, guard: _Guard, handle: Any, trace_id: str | None) -> None:
        super().__init__(backend, guard, handle)
        self.id = trace_id

    @contextmanager
    def span(self, name: str, inputs: Any = None, *, kind: str | None = None) -> Iterator[Span]:
        """A child span; ended on exit (with the exception recorded if one escapes) unless `end()` was called."""
        handle = None
        if self._backend is not None and self._handle is not None and not self._guard.failed:
            handle = self._guard.call("start_span", self._backend.start_span, self._handle, name, _jsonable(inputs), kind or SPAN_KINDS.get(name))
        span = Span(self._backend if handle is not None else None, self._guard, handle)
        try:
            yield span
        except BaseException as exc:
            if not span.ended:
                span.end(error=_describe(exc))
            raise
        if not span.ended:
            span.end()


class Tracer:
    """Creates traces on a backend, sampling `sample_rate` of them. `NoopTracer` is this with no backend."""

    def __init__(self, backend: _Backend | None, sample_rate: float = 1.0, rng: Callable[[], float] = random.random) -> None:
        self._backend = backend
        self.sample_rate = sample_rate
        self._rng = rng
        self.name = backend.name if backend is not None else "none"

    @contextmanager
    def trace(self, name: str, inputs: Any = None, metadata: dict[str, Any] | None = None) -> Iterator[Trace]:
        """One trace around a request. Yields a `Trace` (a no-op one when not sampled or when the backend failed)."""
        backend = self._backend
        guard = _Guard(self.name)
        handle = trace_id = None
        if backend is not None and (self.sample_rate >= 1.0 or self._rng() < self.sample_rate):
            handle = guard.call("start_trace", backend.start_trace, name, _jsonable(inputs), _clean(metadata or {}))
            if handle is not None:
                trace_id = guard.call("trace_id", backend.trace_id, handle)
        trace = Trace(backend if handle is not None else None, guard, handle, trace_id)
        try:
            yield trace
        except BaseException as exc:
            if not trace.ended:
                trace.end(error=_describe(exc))
            raise
        if not trace.ended:
            trace.end()

    def flush(self) -> None:
        """Export whatever is buffered (backends export asynchronously). Never raises."""
        if self._backend is not None:
            _Guard(self.name).call("flush", self._backend.flush)


class NoopTracer(Tracer):
    """Tracing switched off (`tracing.backend: none`): traces cost nothing and have no id."""

    def __init__(self) -> None:
        super().__init__(None)


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, GeneratorExit):
        return "cancelled: the consumer stopped reading (client disconnected)"
    return f"{type(exc).__name__}: {exc}"


def _jsonable(value: Any) -> Any:
    """Inputs/outputs as plain JSON-able data (dataclasses and objects become dicts or strings)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return _jsonable(to_dict())
    return str(value)


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: _jsonable(v) for k, v in attributes.items() if v is not None}


# --- MLflow -------------------------------------------------------------------------------------------
class _MlflowBackend:
    """MLflow tracing through the span API (`mlflow.start_span_no_context`), so spans need no ambient context and
    work across threads (Serve replicas, streaming)."""

    name = "mlflow"
    _SPAN_TYPES = {"retriever": "RETRIEVER", "llm": "LLM", "reranker": "RERANKER", "embedding": "EMBEDDING", "chain": "CHAIN"}

    # After a failed setup (tracking server down), requests skip tracing for this long instead of each one
    # waiting through the MLflow client's HTTP retries.
    RETRY_SETUP_AFTER_S = 60.0

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self._experiment_id: str | None = None
        self._failed_at: float | None = None
        self._lock = threading.Lock()

    def _setup(self) -> str:
        import time

        with self._lock:
            if self._experiment_id is None:
                if self._failed_at is not None and time.monotonic() - self._failed_at < self.RETRY_SETUP_AFTER_S:
                    raise RuntimeError(f"MLflow at {self.tracking_uri} failed recently; tracing paused")
                try:
                    import mlflow

                    # MLflow exports traces to the process-wide tracking URI; everything codesense logs shares it.
                    mlflow.set_tracking_uri(self.tracking_uri)
                    client = mlflow.MlflowClient(tracking_uri=self.tracking_uri)
                    exp = client.get_experiment_by_name(self.experiment)
                    if exp is None:
                        location = mlflow_artifact_location(self.tracking_uri, self.experiment)
                        self._experiment_id = client.create_experiment(self.experiment, artifact_location=location)
                    else:
                        self._experiment_id = exp.experiment_id
                except Exception:
                    self._failed_at = time.monotonic()
                    raise
            return self._experiment_id

    def start_trace(self, name: str, inputs: Any, metadata: dict[str, Any]) -> Any:
        import mlflow

        experiment_id = self._setup()
        # Trace metadata is string-valued in MLflow; it is what the trace list can filter on.
        meta = {k: v if isinstance(v, str) else _json(v) for k, v in metadata.items()}
        return mlflow.start_span_no_context(name, span_type="CHAIN", inputs=inputs, metadata=meta, experiment_id=experiment_id)

    def trace_id(self, handle: Any) -> str | None:
        return handle.trace_id

    def start_span(self, parent: Any, name: str, inputs: Any, kind: str | None) -> Any:
        import mlflow

        span_type = self._SPAN_TYPES.get(kind or "", "UNKNOWN")
        return mlflow.start_span_no_context(name, span_type=span_type, parent_span=parent, inputs=inputs)

    def end(self, handle: Any, outputs: Any, attributes: dict[str, Any], error: str | None) -> None:
        if attributes:
            handle.set_attributes(attributes)
        if outputs is not None:
            handle.set_outputs(outputs)
        if error:
            handle.set_status("ERROR")
            handle.set_attribute("error", error)
        handle.end()

    def flush(self) -> None:
        import mlflow

        mlflow.flush_trace_async_logging()


def _json(value: Any) -> str:
    import json

    return json.dumps(value, default=str)


class MlflowTracer(Tracer):
    """Traces into MLflow (default: SQLite under `$CODESENSE_HOME`, visible in `mlflow ui --backend-store-uri ...`)."""

    def __init__(self, tracking_uri: str, experiment: str = "codesense", sample_rate: float = 1.0) -> None:
        super().__init__(_MlflowBackend(tracking_uri, experiment), sample_rate)
        self.tracking_uri = tracking_uri
        self.experiment = experiment


# --- Langfuse -----------------------------------------------------------------------------------------
def open_langfuse(host: str, public_key: str, secret_key: str) -> Any:
    """A Langfuse SDK client on its own TracerProvider: the SDK would otherwise install itself as the process-global
    OpenTelemetry provider and export every library's spans to Langfuse."""
    from langfuse import Langfuse
    from opentelemetry.sdk.trace import TracerProvider

    return Langfuse(public_key=public_key, secret_key=secret_key, base_url=host, tracer_provider=TracerProvider())


class _LangfuseBackend:
    """Langfuse SDK observations; the SDK batches them as OpenTelemetry spans to `/api/public/otel/v1/traces`."""

    name = "langfuse"

    def __init__(self, host: str, public_key: str, secret_key: str, client: Any = None) -> None:
        self.host = host.rstrip("/")
        self._public_key = public_key
        self._secret_key = secret_key
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = open_langfuse(self.host, self._public_key, self._secret_key)
            return self._client

    # Handles are (observation, observation type): only generations take a model and token usage.
    def start_trace(self, name: str, inputs: Any, metadata: dict[str, Any]) -> Any:
        return self.client.start_observation(name=name, as_type="chain", input=inputs, metadata=metadata or None), "chain"

    def trace_id(self, handle: Any) -> str | None:
        return handle[0].trace_id

    def start_span(self, parent: Any, name: str, inputs: Any, kind: str | None) -> Any:
        as_type = {"llm": "generation", "retriever": "retriever", "embedding": "embedding"}.get(kind or "", "span")
        return parent[0].start_observation(name=name, as_type=as_type, input=inputs), as_type

    def end(self, handle: Any, outputs: Any, attributes: dict[str, Any], error: str | None) -> None:
        observation, as_type = handle
        attrs = dict(attributes)
        update: dict[str, Any] = {}
        if outputs is not None:
            update["output"] = outputs
        if as_type == "generation":
            if "model" in attrs:
                update["model"] = str(attrs.pop("model"))
            usage = {k.removesuffix("_tokens").replace("prompt", "input").replace("completion", "output"): int(attrs.pop(k)) for k in TOKEN_ATTRIBUTES if k in attrs}
            if usage:
                update["usage_details"] = usage
        if error:
            update["level"] = "ERROR"
            update["status_message"] = error
        if attrs:
            update["metadata"] = attrs
        if update:
            observation.update(**update)
        observation.end()

    def flush(self) -> None:
        self.client.flush()


class LangfuseTracer(Tracer):
    """Traces into Langfuse (observations: a `chain` per question, `retriever` and `generation` children)."""

    def __init__(self, host: str, public_key: str, secret_key: str, sample_rate: float = 1.0, client: Any = None) -> None:
        super().__init__(_LangfuseBackend(host, public_key, secret_key, client), sample_rate)
        self.host = host


def _langfuse_tracer(cfg: TracingConfig, home: Path) -> Tracer:
    from codesense_ray.config import resolve_secret

    if not cfg.langfuse_host:
        raise InvalidConfig("tracing.langfuse_host: backend `langfuse` needs the Langfuse base URL")
    public = resolve_secret(cfg.langfuse_public_key_env) or ""
    secret = resolve_secret(cfg.langfuse_secret_key_env) or ""
    return LangfuseTracer(cfg.langfuse_host, public, secret, cfg.sample_rate)


#: `tracing.backend` → factory(cfg, home).
TRACERS: BackendRegistry[Tracer] = BackendRegistry("tracing.backend")
TRACERS.register("mlflow", lambda cfg, home: MlflowTracer(resolve_mlflow_uri(cfg.mlflow_tracking_uri, home), cfg.experiment, cfg.sample_rate))
TRACERS.register("langfuse", _langfuse_tracer)
TRACERS.register("none", lambda cfg, home: NoopTracer())


def build_tracer(cfg: TracingConfig, home: Path) -> Tracer:
    """The configured tracer. Raises `InvalidConfig` at startup for missing settings; never fails later."""
    return TRACERS.build(cfg.backend, cfg, home)
