"""Gemini backend through `google-genai`: the project's quality baseline (default `gemini-2.5-pro`).

The API key comes from the env var named in config. `base_url` points the SDK at a proxy or gateway (and, in
tests, at a local server speaking the Gemini REST protocol) via `types.HttpOptions(base_url=...)`.
"""

from __future__ import annotations

import time
from collections.abc import Generator as PyGenerator
from typing import Any

from pathlib import Path

from codesense_ray.answering.generators.base import DEFAULT_GEMINI_KEY_ENV, DEFAULT_GEMINI_MODEL, Generation, GeneratorError, read_api_key
from codesense_ray.config.answering import GeneratorConfig


def split_messages(messages: list[dict]) -> tuple[str | None, list[dict[str, Any]]]:
    """OpenAI-style messages → (system instruction, Gemini `contents`). Gemini names the assistant `model`
    and takes the system prompt as a separate field."""
    system = [m["content"] for m in messages if m.get("role") == "system" and m.get("content")]
    contents = [
        {"role": "model" if m.get("role") == "assistant" else "user", "parts": [{"text": m.get("content") or ""}]}
        for m in messages
        if m.get("role") != "system"
    ]
    return ("\n\n".join(system) or None), contents


def _error(exc: Exception) -> GeneratorError:
    import httpx
    from google.genai import errors

    if isinstance(exc, errors.APIError):
        reason = f"HTTP {exc.code}: {exc.message or exc.status or ''}".strip().rstrip(":")
        return GeneratorError("gemini", reason, status=exc.code)
    if isinstance(exc, httpx.TimeoutException):
        return GeneratorError("gemini", "request timed out")
    if isinstance(exc, httpx.TransportError):
        return GeneratorError("gemini", f"cannot connect: {exc}")
    return GeneratorError("gemini", f"{type(exc).__name__}: {exc}")


def _finish_reason(response: Any) -> str | None:
    candidates = getattr(response, "candidates", None) or []
    reason = getattr(candidates[0], "finish_reason", None) if candidates else None
    return getattr(reason, "value", reason)


class GeminiGenerator:
    """Gemini through `google-genai`.

    >>> gen = GeminiGenerator(model="gemini-2.5-pro", api_key=os.environ["GEMINI_API_KEY"])  # doctest: +SKIP
    >>> gen.generate([{"role": "system", "content": "..."}, {"role": "user", "content": "..."}])  # doctest: +SKIP
    """

    name = "gemini"

    def __init__(
        self,
        *,
        model: str = "gemini-2.5-pro",
        api_key: str,
        base_url: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 0,
        max_tokens: int = 1024,
        temperature: float = 0.1,
        client: Any = None,
    ) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        if client is None:
            from google import genai
            from google.genai import types

            http_options = types.HttpOptions(
                base_url=base_url,
                timeout=int(timeout_s * 1000),  # milliseconds
                # attempts counts the first request; explicit options also switch off the SDK's implicit retries.
                retry_options=types.HttpRetryOptions(attempts=max_retries + 1),
            )
            client = genai.Client(api_key=api_key, http_options=http_options)
        self._client = client

    def _request(self, messages: list[dict], max_tokens: int | None, temperature: float | None) -> dict[str, Any]:
        from google.genai import types

        system, contents = split_messages(messages)
        config = types.GenerateContentConfig(
            system_instruction=system,
            max_output_tokens=max_tokens or self.max_tokens,
            temperature=self.temperature if temperature is None else temperature,
        )
        return {"model": self.model, "contents": contents, "config": config}

    def generate(self, messages: list[dict], *, max_tokens: int | None = None, temperature: float | None = None) -> Generation:
        """The whole answer in one `generateContent` call. Raises `GeneratorError` on HTTP errors and timeouts."""
        started = time.perf_counter()
        try:
            resp = self._client.models.generate_content(**self._request(messages, max_tokens, temperature))
            text = resp.text or ""
        except Exception as exc:  # noqa: BLE001
            raise _error(exc) from exc
        usage = resp.usage_metadata
        return Generation(
            text=text,
            model=resp.model_version or self.model,
            prompt_tokens=getattr(usage, "prompt_token_count", None),
            completion_tokens=getattr(usage, "candidates_token_count", None),
            finish_reason=_finish_reason(resp),
            latency_s=time.perf_counter() - started,
        )

    def stream(
        self, messages: list[dict], *, max_tokens: int | None = None, temperature: float | None = None
    ) -> PyGenerator[str, None, Generation]:
        """Yield text deltas from `streamGenerateContent?alt=sse`; the return value is the complete `Generation`."""
        started = time.perf_counter()
        parts: list[str] = []
        model = self.model
        finish_reason = None
        prompt_tokens = completion_tokens = None
        chunks = None
        try:
            chunks = self._client.models.generate_content_stream(**self._request(messages, max_tokens, temperature))
            for chunk in chunks:
                model = chunk.model_version or model
                finish_reason = _finish_reason(chunk) or finish_reason
                if chunk.usage_metadata is not None:
                    prompt_tokens = chunk.usage_metadata.prompt_token_count or prompt_tokens
                    completion_tokens = chunk.usage_metadata.candidates_token_count or completion_tokens
                text = chunk.text
                if text:
                    parts.append(text)
                    yield text
        except GeneratorExit:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _error(exc) from exc
        finally:
            close = getattr(chunks, "close", None)  # the SDK's generator closes its HTTP response
            if close is not None:
                try:
                    close()
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


def from_config(cfg: GeneratorConfig, home: Path) -> GeminiGenerator:
    """`generator.backend: gemini` — Gemini through google-genai; the key comes from `generator.api_key_env`."""
    key = read_api_key(cfg.api_key_env or DEFAULT_GEMINI_KEY_ENV, "gemini", required=True)
    return GeminiGenerator(
        model=cfg.model or DEFAULT_GEMINI_MODEL,
        api_key=key or "",
        base_url=cfg.base_url,
        timeout_s=cfg.timeout_s,
        max_retries=cfg.max_retries,
        max_tokens=cfg.max_tokens,
        temperature=cfg.temperature,
    )
