"""OpenAI-compatible and Gemini generators with their real SDKs against local servers speaking their wire formats."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from codesense_ray.errors import InvalidConfig
from codesense_ray.answering.generators import Generation, Generator, GeneratorConfig, GeneratorError, build_generator
from codesense_ray.answering.generators.gemini import GeminiGenerator, split_messages
from codesense_ray.answering.generators.openai_compatible import OpenAIGenerator

MESSAGES = [
    {"role": "system", "content": "Answer from the context only; cite blocks as [n]."},
    {"role": "user", "content": "How are tokens verified?\n\n[1] payments:app/auth/jwt.py:L10-L42\n```\ndef verify_token(t): {...}\n```"},
]


def _drain(gen):
    """Collect the yielded deltas and the generator's return value (the final Generation)."""
    deltas = []
    while True:
        try:
            deltas.append(next(gen))
        except StopIteration as stop:
            return deltas, stop.value


# --- OpenAI-compatible ----------------------------------------------------------------------------------
def test_openai_generate_speaks_chat_completions(openai_server, monkeypatch):
    """`generate` posts the messages to /v1/chat/completions with the key from the configured env var and returns text, model and usage."""
    server, _ = openai_server
    monkeypatch.setenv("VLLM_KEY", "secret-123")
    cfg = GeneratorConfig(backend="openai", base_url=server.url + "/v1", model="qwen2.5-coder", api_key_env="VLLM_KEY", max_tokens=77, temperature=0.0)
    gen = build_generator(cfg, Path("/nonexistent"))
    assert isinstance(gen, OpenAIGenerator) and isinstance(gen, Generator)
    out = gen.generate(MESSAGES)
    assert isinstance(out, Generation)
    assert out.text == "Tokens are verified in `verify_token` [1]."
    assert (out.model, out.prompt_tokens, out.completion_tokens, out.finish_reason) == ("qwen2.5-coder", 42, 6, "stop")
    req = server.requests[-1]
    assert req.headers["authorization"] == "Bearer secret-123"
    body = req.json()
    assert body["messages"] == MESSAGES and body["model"] == "qwen2.5-coder"
    assert body["max_tokens"] == 77 and body["temperature"] == 0.0


def test_openai_stream_yields_sse_deltas_and_usage(openai_server):
    """`stream` parses `data: {...}` chunks up to `data: [DONE]`, yields text deltas and returns the full Generation with usage."""
    server, _ = openai_server
    gen = OpenAIGenerator(base_url=server.url + "/v1", model="m")
    deltas, final = _drain(gen.stream(MESSAGES, max_tokens=5))
    assert "".join(deltas) == "Tokens are verified in `verify_token` [1]."
    assert len(deltas) == 6
    assert final.text == "".join(deltas) and final.completion_tokens == 6 and final.finish_reason == "stop"
    body = server.requests[-1].json()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True} and body["max_tokens"] == 5
    # No key configured: a placeholder is sent (vLLM/Ollama accept anything).
    assert server.requests[-1].headers["authorization"] == "Bearer not-needed"


def test_openai_http_500_is_generator_error(openai_server):
    """A 5xx from the server becomes GeneratorError carrying the status and the server's message (→ HTTP 502)."""
    server, _ = openai_server
    server.mode = "error500"
    gen = OpenAIGenerator(base_url=server.url + "/v1", model="m")
    with pytest.raises(GeneratorError) as err:
        gen.generate(MESSAGES)
    assert err.value.status == 500 and "model worker crashed" in err.value.reason and err.value.backend == "openai"
    with pytest.raises(GeneratorError):
        list(gen.stream(MESSAGES))


def test_openai_timeout_is_generator_error(openai_server):
    """A server slower than `timeout_s` fails fast with GeneratorError('request timed out'), no retries by default."""
    server, _ = openai_server
    server.mode = "slow"
    gen = OpenAIGenerator(base_url=server.url + "/v1", model="m", timeout_s=0.5)
    with pytest.raises(GeneratorError, match="timed out"):
        gen.generate(MESSAGES)
    assert len(server.requests) == 1  # no retry by default (how fast is measured in benchmarks, not here)


def test_openai_connection_refused_is_generator_error():
    """Nothing listening at base_url (backend down) becomes GeneratorError, not a raw SDK exception."""
    gen = OpenAIGenerator(base_url="http://127.0.0.1:9/v1", model="m", timeout_s=2)
    with pytest.raises(GeneratorError, match="cannot connect"):
        gen.generate(MESSAGES)


# --- Gemini ---------------------------------------------------------------------------------------------
def test_split_messages_maps_roles_to_gemini():
    """System messages become the system instruction; assistant turns become Gemini `model` turns."""
    system, contents = split_messages(MESSAGES + [{"role": "assistant", "content": "ok"}])
    assert system == MESSAGES[0]["content"]
    assert [c["role"] for c in contents] == ["user", "model"]


def test_gemini_generate_speaks_generate_content(gemini_server, monkeypatch):
    """`generate` calls {v1,v1beta}/models/{model}:generateContent with x-goog-api-key from the env var, systemInstruction and generationConfig."""
    server, _ = gemini_server
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-test")
    cfg = GeneratorConfig(backend="gemini", base_url=server.url, max_tokens=300, temperature=0.2)
    gen = build_generator(cfg, Path("/nonexistent"))
    assert isinstance(gen, GeminiGenerator) and gen.model == "gemini-2.5-pro"
    out = gen.generate(MESSAGES)
    assert out.text == "Tokens are verified in `verify_token` [1]."
    assert (out.model, out.prompt_tokens, out.completion_tokens, out.finish_reason) == ("gemini-2.5-pro", 42, 3, "STOP")
    req = server.requests[-1]
    assert req.path.endswith("/models/gemini-2.5-pro:generateContent")
    assert req.headers["x-goog-api-key"] == "AIza-test"
    body = req.json()
    assert body["systemInstruction"]["parts"][0]["text"] == MESSAGES[0]["content"]
    assert body["contents"] == [{"role": "user", "parts": [{"text": MESSAGES[1]["content"]}]}]
    assert body["generationConfig"]["maxOutputTokens"] == 300 and body["generationConfig"]["temperature"] == 0.2


def test_gemini_stream_reads_sse(gemini_server):
    """`stream` uses :streamGenerateContent?alt=sse and yields each chunk's text; usage comes from the last chunk."""
    server, _ = gemini_server
    gen = GeminiGenerator(model="gemini-2.5-flash", api_key="k", base_url=server.url)
    deltas, final = _drain(gen.stream(MESSAGES))
    assert deltas == ["Tokens are ", "verified in ", "`verify_token` [1]."]
    assert final.completion_tokens == 3 and final.finish_reason == "STOP" and final.model == "gemini-2.5-flash"
    req = server.requests[-1]
    assert req.path.endswith("/models/gemini-2.5-flash:streamGenerateContent") and req.query["alt"] == ["sse"]


@pytest.mark.parametrize("mode,status", [("error500", 500), ("error403", 403)])
def test_gemini_http_errors_are_generator_errors(gemini_server, mode, status):
    """4xx/5xx answers become GeneratorError with the status and Gemini's error message, without retry storms."""
    server, _ = gemini_server
    server.mode = mode
    gen = GeminiGenerator(api_key="k", base_url=server.url)
    with pytest.raises(GeneratorError) as err:
        gen.generate(MESSAGES)
    assert err.value.status == status and err.value.backend == "gemini"
    assert len(server.requests) == 1
    with pytest.raises(GeneratorError):
        list(gen.stream(MESSAGES))


def test_gemini_timeout_is_generator_error(gemini_server):
    """A Gemini endpoint slower than `timeout_s` raises GeneratorError('request timed out')."""
    server, _ = gemini_server
    server.mode = "slow"
    gen = GeminiGenerator(api_key="k", base_url=server.url, timeout_s=0.5)
    with pytest.raises(GeneratorError, match="timed out"):
        gen.generate(MESSAGES)
    assert len(server.requests) == 1


# --- build_generator ------------------------------------------------------------------------------------
def test_extractive_builds_no_generator():
    """`extractive` needs no model: build_generator returns None (the answerer implements it)."""
    assert build_generator(GeneratorConfig(), Path("/nonexistent")) is None


def test_missing_settings_are_config_errors(monkeypatch):
    """Missing base URL, model or API key env var are InvalidConfig errors naming the key, raised at build time."""
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    with pytest.raises(InvalidConfig, match="generator.base_url"):
        build_generator(GeneratorConfig(backend="openai", model="m"), Path("."))
    with pytest.raises(InvalidConfig, match="generator.model"):
        build_generator(GeneratorConfig(backend="openai", base_url="http://x/v1"), Path("."))
    with pytest.raises(InvalidConfig, match="GEMINI_API_KEY"):
        build_generator(GeneratorConfig(backend="gemini"), Path("."))


def test_generator_config_rejects_unknown_keys():
    """A typo in `generator:` is an error, not a silent default (extra='forbid')."""
    with pytest.raises(Exception, match="extra"):
        GeneratorConfig.model_validate({"backend": "openai", "base_ur": "http://x"})


def test_streams_can_be_abandoned_early(openai_server, gemini_server):
    """A consumer that stops after the first delta (client disconnected) closes the stream without errors."""
    o_server, _ = openai_server
    g_server, _ = gemini_server
    for gen in (OpenAIGenerator(base_url=o_server.url + "/v1", model="m"), GeminiGenerator(api_key="k", base_url=g_server.url)):
        stream = gen.stream(MESSAGES)
        assert next(stream)
        stream.close()
        assert gen.generate(MESSAGES).text  # the client is still usable
