"""Hooks that the Serve ingress installs: stage timings, token and error counters, the online-judge sampler,
the gauges read at scrape time, and `POST /v1/feedback`.

The ingress builds one `ServeMonitor` and wraps what it already has, so the answer path itself stays unchanged —
like a sidecar that sees every request without the app knowing:

    monitor = ServeMonitor.from_config(cfg, registry=metrics.registry, observe_stage=metrics.stage)
    answerer = monitor.wrap_answerer(RagAnswerer(monitor.wrap_retriever(r), monitor.wrap_generator(g), ...))
    monitor.install_routes(api, status=lambda: retriever_handle.index_metadata.remote().result())
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

from codesense_ray.monitoring.metrics import RagMetrics

log = logging.getLogger("codesense.monitoring")


def error_reason(err: Any) -> str:
    """A low-cardinality label for a generator failure: `http_429`, `http_5xx`, `http_4xx`, `timeout`, `connection`, `other`."""
    status = getattr(err, "status", None)
    if status == 429:
        return "http_429"
    if isinstance(status, int):
        return f"http_{status // 100}xx"
    text = str(getattr(err, "reason", err)).lower()
    if "timed out" in text or "timeout" in text:
        return "timeout"
    if "connect" in text or "refused" in text or "unreachable" in text:
        return "connection"
    return "other"


class _InstrumentedRetriever:
    """Times `search` as the `retrieve` stage and keeps the last hits per question for the online judge."""

    def __init__(self, inner: Any, metrics: RagMetrics, keep: int = 64) -> None:
        self.inner = inner
        self.metrics = metrics
        self._recent: OrderedDict[str, list[Any]] = OrderedDict()
        self._keep = keep
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if name == "inner" or name.startswith("__"):  # copy/pickle probes before __init__ ran: no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def search(self, query: str, k: int | None = None, repo_ids=()):
        started = time.perf_counter()
        hits = self.inner.search(query, k=k, repo_ids=repo_ids)
        self.metrics.stage("retrieve", time.perf_counter() - started)
        with self._lock:
            self._recent[query] = hits
            self._recent.move_to_end(query)
            while len(self._recent) > self._keep:
                self._recent.popitem(last=False)
        return hits

    def recent_hits(self, query: str) -> list[Any]:
        with self._lock:
            return list(self._recent.get(query, []))


class _InstrumentedGenerator:
    """Times generation, counts tokens and failures, measures time to first token of streams."""

    def __init__(self, inner: Any, metrics: RagMetrics) -> None:
        self.inner = inner
        self.metrics = metrics

    def __getattr__(self, name: str) -> Any:
        if name == "inner" or name.startswith("__"):  # copy/pickle probes before __init__ ran: no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def model(self) -> str:
        return self.inner.model

    def _backend(self) -> str:
        try:
            return self.inner.name
        except Exception:  # noqa: BLE001 - a label must never fail the request
            return "unknown"

    def generate(self, messages, *, max_tokens=None, temperature=None):
        from codesense_ray.answering.generators.base import GeneratorError

        started = time.perf_counter()
        try:
            gen = self.inner.generate(messages, max_tokens=max_tokens, temperature=temperature)
        except GeneratorError as err:
            self.metrics.generator_error(err.backend, error_reason(err))
            raise
        self.metrics.stage("generate", time.perf_counter() - started)
        self.metrics.generation(self._backend(), gen.prompt_tokens, gen.completion_tokens)
        return gen

    def stream(self, messages, *, max_tokens=None, temperature=None):
        """Relays the deltas; the stream's return value (the `Generation`, with token usage when the backend
        reports it) is counted like a non-streamed answer's and passed on."""
        from codesense_ray.answering.generators.base import GeneratorError

        started = time.perf_counter()
        try:
            gen = yield from self._first_token_timed(self.inner.stream(messages, max_tokens=max_tokens, temperature=temperature), started)
        except GeneratorError as err:
            self.metrics.generator_error(err.backend, error_reason(err))
            raise
        self.metrics.stage("generate", time.perf_counter() - started)
        if gen is not None:
            self.metrics.generation(self._backend(), gen.prompt_tokens, gen.completion_tokens)
        return gen

    def _first_token_timed(self, deltas, started: float):
        first = True
        while True:
            try:
                delta = next(deltas)
            except StopIteration as done:
                return done.value
            if first:
                self.metrics.first_token(self._backend(), time.perf_counter() - started)
                first = False
            yield delta


class _MonitoredAnswerer:
    """Sees every finished answer: counts it and offers it to the online judge (never waits for the judge)."""

    def __init__(self, inner: Any, monitor: "ServeMonitor") -> None:
        self.inner = inner
        self.monitor = monitor

    def __copy__(self) -> "_MonitoredAnswerer":
        # A per-request variant (the chat route scopes retrieval to a conversation) gets its own inner answerer.
        return type(self)(copy.copy(self.inner), self.monitor)

    @property
    def retriever(self) -> Any:
        return self.inner.retriever

    @retriever.setter
    def retriever(self, value: Any) -> None:
        self.inner.retriever = value

    def __getattr__(self, name: str) -> Any:
        if name == "inner" or name.startswith("__"):  # copy/pickle probes before __init__ ran: no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def ask(self, question: str, k: int | None = None, repo_ids=()):
        answer = self.inner.ask(question, k=k, repo_ids=repo_ids)
        self.monitor.on_answer(question, answer)
        return answer

    def ask_events(self, question: str, k: int | None = None, repo_ids=(), *, stream: bool = True):
        for kind, value in self.inner.ask_events(question, k=k, repo_ids=repo_ids, stream=stream):
            if kind == "answer":
                self.monitor.on_answer(question, value)
            yield kind, value


class ServeMonitor:
    """Everything monitoring adds to the Serve ingress. Built once per ingress replica."""

    def __init__(self, metrics: RagMetrics, feedback_store: Any = None, judge: Any = None, state: Any = None) -> None:
        self.metrics = metrics
        self.feedback_store = feedback_store
        self.judge = judge
        self.state = state
        self._retriever: _InstrumentedRetriever | None = None

    @classmethod
    def from_config(cls, cfg: Any, registry: Any, observe_stage: Callable[[str, float], None], index_metadata: Callable[[], dict] | None = None) -> "ServeMonitor":
        from codesense_ray.errors import InvalidConfig
        from codesense_ray.monitoring.feedback import build_feedback_store
        from codesense_ray.monitoring.metrics import MonitoringStateCollector
        from codesense_ray.config.monitoring import monitoring_config
        from codesense_ray.monitoring.state import read_monitoring_state

        mcfg = monitoring_config(cfg)
        metrics = RagMetrics(registry)
        metrics.bind_stage(observe_stage)
        try:
            store = build_feedback_store(cfg)
        except InvalidConfig as err:
            log.warning("feedback disabled: %s", err)  # POST /v1/feedback answers 503 with this reason
            store = err
        judge = None
        if mcfg.judge_sample_rate > 0:
            from codesense_ray.monitoring.judge import OnlineJudge

            judge = OnlineJudge.from_config(cfg, metrics, None if isinstance(store, Exception) else store)
        state = MonitoringStateCollector(lambda: read_monitoring_state(cfg, index_metadata), ttl_s=mcfg.state_refresh_s)
        registry.register(state)
        return cls(metrics, store, judge, state)

    # --- wrapping ------------------------------------------------------------------------------------
    def wrap_retriever(self, retriever: Any) -> Any:
        self._retriever = _InstrumentedRetriever(retriever, self.metrics)
        return self._retriever

    def wrap_generator(self, generator: Any) -> Any:
        return None if generator is None else _InstrumentedGenerator(generator, self.metrics)

    def wrap_answerer(self, answerer: Any) -> Any:
        return _MonitoredAnswerer(answerer, self)

    def on_timings(self, timings: dict[str, float]) -> None:
        """Stage timings measured inside another deployment (the retriever's query embedding)."""
        for stage, seconds in timings.items():
            self.metrics.stage(stage, seconds)

    def on_answer(self, question: str, answer: Any) -> None:
        try:
            self.metrics.answer(answer)
            if self.judge is not None and answer.trace_id:
                self.judge.offer(question, answer, self._contexts(question, answer))
        except Exception as exc:  # noqa: BLE001 - monitoring never fails a request
            log.warning("monitoring hook failed: %s: %s", type(exc).__name__, exc)

    def _contexts(self, question: str, answer: Any) -> list[str]:
        """The retrieved text the answer was generated from (what faithfulness is judged against)."""
        if self._retriever is None:
            return []
        hits = self._retriever.recent_hits(question.strip())
        cited = {(s.get("repo"), s.get("path")) for s in answer.sources}
        chosen = [h for h in hits if (h.repo, h.path) in cited] or hits
        return [f"{h.repo}:{h.path}:L{h.start_line}-L{h.end_line}\n{h.text}" for h in chosen if getattr(h, "text", "")]

    # --- HTTP --------------------------------------------------------------------------------------
    def install_routes(self, api: Any) -> None:
        """`POST /v1/feedback` on the ingress app (its auth middleware and 422 handler apply)."""
        from fastapi.responses import JSONResponse

        from codesense_ray.monitoring.feedback import Feedback, TraceNotFound

        monitor = self

        def feedback(body):
            store = monitor.feedback_store
            if store is None or isinstance(store, Exception):
                reason = str(store) if store is not None else "no feedback store configured"
                return JSONResponse({"error": {"type": "FeedbackUnavailable", "message": reason}}, status_code=503)
            try:
                store.record(body)
            except TraceNotFound as err:
                return JSONResponse({"error": {"type": "TraceNotFound", "message": str(err)}}, status_code=404)
            except Exception as err:  # noqa: BLE001 - the store is down: tell the client, keep serving
                log.warning("feedback store %s failed: %s: %s", store.name, type(err).__name__, err)
                return JSONResponse({"error": {"type": "FeedbackUnavailable", "message": f"{store.name}: {type(err).__name__}"}}, status_code=503)
            monitor.metrics.feedback(body.rating)
            return {"trace_id": body.trace_id, "rating": body.rating, "stored": store.name}

        # The body model is imported here (lazily), so the annotation is set as an object, not a string FastAPI can't resolve.
        feedback.__annotations__ = {"body": Feedback}
        api.post("/v1/feedback", status_code=201)(feedback)
