"""Streamed answers count tokens like non-streamed ones: the stream's `Generation` (usage from the server's last SSE
chunk) reaches the metrics and the trace, through the monitoring wrapper and the answerer."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry

from codesense_ray.answering.generators.openai_compatible import OpenAIGenerator
from codesense_ray.app.serve.instrumentation import _InstrumentedGenerator
from codesense_ray.monitoring.metrics import RagMetrics
from tests.cpu.integration.answering.fake_servers import openai_route, start


def _tokens(registry: CollectorRegistry, direction: str) -> float | None:
    return registry.get_sample_value("codesense_tokens_total", {"backend": "openai", "direction": direction})


def _returning(stream, into: dict):
    """Relays a stream's deltas and keeps its return value in `into["value"]`."""
    into["value"] = yield from stream


def test_streamed_tokens_are_counted_and_returned():
    """A stream through the monitoring wrapper adds the server-reported usage (42 in, 6 out) to codesense_tokens_total
    and still returns the `Generation` to the caller (the answerer puts it on the trace)."""
    server, _ = start(openai_route)
    try:
        registry = CollectorRegistry()
        generator = _InstrumentedGenerator(OpenAIGenerator(base_url=server.url + "/v1", model="qwen"), RagMetrics(registry))
        returned: dict = {}
        text = "".join(_returning(generator.stream([{"role": "user", "content": "hi"}]), returned))
    finally:
        server.stop()
    gen = returned["value"]
    assert text == "Tokens are verified in `verify_token` [1]." == gen.text
    assert (gen.prompt_tokens, gen.completion_tokens) == (42, 6)
    assert _tokens(registry, "prompt") == 42 and _tokens(registry, "completion") == 6
    assert registry.get_sample_value("codesense_time_to_first_token_seconds_count", {"backend": "openai"}) == 1


def test_streamed_answer_records_token_usage_on_the_trace():
    """A streamed `ask_events` through the monitoring wrapper puts the server's usage on the `generate` span
    (Langfuse usage_details), as a non-streamed answer does."""
    from codesense_ray.answering.answerer import RagAnswerer
    from codesense_ray.answering.prompts.registry import FilePromptRegistry
    from codesense_ray.answering.tracing import LangfuseTracer
    from tests.cpu.integration.monitoring.langfuse_server import start_langfuse_api
    from tests.cpu.unit.test_answering import FakeRetriever, hit

    llm, _ = start(openai_route)
    langfuse, state = start_langfuse_api("pk-lf-stream", "sk-lf-stream")
    try:
        generator = _InstrumentedGenerator(OpenAIGenerator(base_url=llm.url + "/v1", model="qwen"), RagMetrics(CollectorRegistry()))
        tracer = LangfuseTracer(langfuse.url, "pk-lf-stream", "sk-lf-stream")
        answerer = RagAnswerer(FakeRetriever([hit("app/auth/jwt.py", 1, 20)]), generator, FilePromptRegistry(), tracer=tracer)
        kinds = [kind for kind, _ in answerer.ask_events("Where is the token verified?", stream=True)]
        tracer.flush()
    finally:
        llm.stop()
        langfuse.stop()
    assert "token" in kinds and kinds[-1] == "answer"
    (generate,) = [a for a in state["langfuse"].span_attributes if a["name"] == "generate"]
    assert json.loads(generate["langfuse.observation.usage_details"]) == {"input": 42, "output": 6}
