"""OpenAI-compatible chat backend: vLLM, KServe's OpenAI route, llama.cpp server, Ollama, or OpenAI itself.

Uses the official `openai` SDK with `base_url` pointing at the server. `/v1/chat/completions` is the one
endpoint every OpenAI-compatible server implements, so the same code talks to a GPU pod in the cluster and to
a laptop's Ollama.
"""

from __future__ import annotations

import time
from collections.abc import Generator as PyGenerator
from typing import Any

from pathlib import Path

from codesense_ray.answering.generators.base import Generation, GeneratorError, read_api_key
from codesense_ray.config.answering import GeneratorConfig
from codesense_ray.errors import InvalidConfig

# Servers without auth (vLLM, Ollama) still need *some* key: the SDK refuses to start without one.
PLACEHOLDER_KEY = "not-needed"


def _error(exc: Exception, backend: str = "openai") -> GeneratorError:
    """Map an SDK exception to a `GeneratorError` with a short reason and the HTTP status when there is one."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return GeneratorError(backend, "request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return GeneratorError(backend, f"cannot connect: {exc.__cause__ or exc}")
    if isinstance(exc, openai.APIStatusError):
        detail = exc.message or ""
        return GeneratorError(backend, f"HTTP {exc.status_code}: {detail}".strip().rstrip(":"), status=exc.status_code)
    if isinstance(exc, openai.OpenAIError):
        return GeneratorError(backend, str(exc) or type(exc).__name__)
    return GeneratorError(backend, f"{type(exc).__name__}: {exc}")


class OpenAIGenerator:
    """Chat completions against any OpenAI-compatible server.

    >>> gen = OpenAIGenerator(base_url="http://vllm:8000/v1", model="qwen2.5-coder-7b")  # doctest: +SKIP
    >>> gen.generate([{"role": "user", "content": "Hi"}]).text                            # doctest: +SKIP
    """

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 0,
        max_tokens: int = 1024,
        temperature: float = 0.1,
        client: Any = None,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.max_tokens = max_tokens
        self.temperature = temperature
        if client is None:
            import openai

            client = openai.OpenAI(base_url=base_url, api_key=api_key or PLACEHOLDER_KEY, timeout=timeout_s, max_retries=max_retries)
        self._client = client

    def _params(self, messages: list[dict], max_tokens: int | None, temperature: float | None) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens or self.max_tokens,
            "temperature": self.temperature if temperature is None else temperature,
        }

    def generate(self, messages: list[dict], *, max_tokens: int | None = None, temperature: float | None = None) -> Generation:
        """The whole answer in one request. Raises `GeneratorError` on connection errors, timeouts and HTTP errors."""
        started = time.perf_counter()
        try:
            resp = self._client.chat.completions.create(**self._params(messages, max_tokens, temperature))
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes one domain error
            raise _error(exc) from exc
        if not resp.choices:
            raise GeneratorError(self.name, "the server returned no choices")
        choice = resp.choices[0]
        usage = resp.usage
        return Generation(
            text=choice.message.content or "",
            model=resp.model or self.model,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            finish_reason=choice.finish_reason,
            latency_s=time.perf_counter() - started,
        )

    def stream(
        self, messages: list[dict], *, max_tokens: int | None = None, temperature: float | None = None
    ) -> PyGenerator[str, None, Generation]:
        """Yield text deltas as the server streams them (SSE). The generator's return value (`yield from`) is
        the complete `Generation` with token usage when the server reports it."""
        started = time.perf_counter()
        parts: list[str] = []
        finish_reason = None
        model = self.model
        prompt_tokens = completion_tokens = None
        stream = None
        try:
            stream = self._client.chat.completions.create(
                **self._params(messages, max_tokens, temperature), stream=True, stream_options={"include_usage": True}
            )
            for chunk in stream:
                model = chunk.model or model
                if chunk.usage is not None:
                    prompt_tokens = chunk.usage.prompt_tokens
                    completion_tokens = chunk.usage.completion_tokens
                for choice in chunk.choices or ():
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
                    delta = choice.delta.content if choice.delta else None
                    if delta:
                        parts.append(delta)
                        yield delta
        except GeneratorExit:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _error(exc) from exc
        finally:
            # A consumer that stops early (client disconnected) must not leave the HTTP response open.
            if stream is not None:
                try:
                    stream.close()
                except Exception:  # noqa: BLE001
                    pass
        return Generation(
            text="".join(parts),
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=finish_reason,
            latency_s=time.perf_counter() - started,
        )


def from_config(cfg: GeneratorConfig, home: Path) -> OpenAIGenerator:
    """`generator.backend: openai` — any OpenAI-compatible server (vLLM on KServe, llama.cpp, Ollama)."""
    if not cfg.base_url:
        raise InvalidConfig("generator.base_url: backend `openai` needs the API root, e.g. http://vllm:8000/v1")
    if not cfg.model:
        raise InvalidConfig("generator.model: backend `openai` needs the served model name")
    return OpenAIGenerator(
        base_url=cfg.base_url,
        model=cfg.model,
        api_key=read_api_key(cfg.api_key_env, "openai", required=False),
        timeout_s=cfg.timeout_s,
        max_retries=cfg.max_retries,
        max_tokens=cfg.max_tokens,
        temperature=cfg.temperature,
    )
