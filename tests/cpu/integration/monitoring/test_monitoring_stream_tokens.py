"""Streamed answers count tokens like non-streamed ones: the stream's `Generation` (usage from the server's last SSE
chunk) reaches the metrics and the trace, through the monitoring wrapper and the answerer."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from codesense_ray.answering.generators.openai_compatible import OpenAIGenerator
from codesense_ray.app.serve.instrumentation import _InstrumentedGenerator
from codesense_ray.monitoring.metrics import RagMetrics
from tests.cpu.integration.answering.fake_servers import openai_route, start


def _tokens(registry: CollectorRegistry, direction: str) -> float | None:
    return registry.get_sample_value("codesense_tokens_total", {"backend": "openai", "direction": direction})


def test_streamed_tokens_are_counted_and_returned():
    """A stream through the monitoring wrapper adds the server-reported usage (42 in, 6 out) to codesense_tokens_total
    and still returns the `Generation` to the caller (the answerer puts it on the trace)."""
    server, _ = start(openai_route)
    try:
        registry = CollectorRegistry()
        generator = _InstrumentedGenerator(OpenAIGenerator(base_url=server.url + "/v1", model="qwen"), RagMetrics(registry))
        deltas = generator.stream([{"role": "user", "content": "hi"}])
        text = []
        while True:
            try:
                text.append(next(deltas))
            except StopIteration as done:
                gen = done.value
                break
    finally:
        server.stop()
    assert "".join(text) == "Tokens are verified in `verify_token` [1]." == gen.text
    assert (gen.prompt_tokens, gen.completion_tokens) == (42, 6)
    assert _tokens(registry, "prompt") == 42 and _tokens(registry, "completion") == 6
    assert registry.get_sample_value("codesense_time_to_first_token_seconds_count", {"backend": "openai"}) == 1
