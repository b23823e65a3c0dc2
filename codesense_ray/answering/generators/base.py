"""The generator contract every LLM backend implements, and `build_generator` that picks one by configuration.

A generator turns chat messages (already rendered from the prompt registry) into text; it knows nothing about
retrieval or citations. Heavy SDKs (openai, google-genai, torch) are imported by the backend module that needs
them, only when that backend is built.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from codesense_ray.errors import CodesenseError
from codesense_ray.config.answering import GeneratorConfig

DEFAULT_GEMINI_MODEL = "gemini-2.5-pro"
DEFAULT_GEMINI_KEY_ENV = "GEMINI_API_KEY"


class GeneratorError(CodesenseError):
    """The model backend is down, timed out, or answered with an error. The HTTP layer maps it to 502.

    `backend` names the generator, `status` is the HTTP status the backend returned (None for connection
    errors and timeouts), `reason` is a short human-readable cause.
    """

    exit_code = 5

    def __init__(self, backend: str, reason: str, status: int | None = None) -> None:
        self.backend = backend
        self.reason = reason
        self.status = status
        super().__init__(f"generator `{backend}` failed: {reason}")


@dataclass
class Generation:
    """One completed answer from a model, with what the trace needs (model, tokens, latency)."""

    text: str
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    latency_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Generator(Protocol):
    """An LLM backend: `generate` returns the whole answer, `stream` yields text deltas as they arrive.

    Both raise `GeneratorError` for a backend that is down, slow or answers with an error.
    """

    name: str
    model: str

    def generate(self, messages: list[dict], *, max_tokens: int | None = None, temperature: float | None = None) -> Generation: ...

    def stream(self, messages: list[dict], *, max_tokens: int | None = None, temperature: float | None = None) -> Iterator[str]: ...


def read_api_key(env_name: str | None, backend: str, *, required: bool) -> str | None:
    """The API key from the env var named in config; a missing required key is a configuration error."""
    from codesense_ray.errors import InvalidConfig

    if not env_name:
        if required:
            raise InvalidConfig(f"generator.api_key_env: backend `{backend}` needs the name of the env var holding its API key")
        return None
    value = os.environ.get(env_name)
    if not value and required:
        raise InvalidConfig(f"environment variable {env_name} (generator.api_key_env) is not set")
    return value or None


def build_generator(cfg: GeneratorConfig, home: Path) -> Generator | None:
    """The configured LLM backend, or None for `extractive` (which needs no model).

    `home` is `$CODESENSE_HOME`: the `local` backend caches converted models under `home/models/`.
    Raises `InvalidConfig` when a required setting (base URL, API key env var) is missing.
    """
    from codesense_ray.errors import InvalidConfig

    if cfg.backend == "extractive":
        return None
    if cfg.backend == "openai":
        from codesense_ray.answering.generators.openai_compatible import OpenAIGenerator

        if not cfg.base_url:
            raise InvalidConfig("generator.base_url: backend `openai` needs the API root, e.g. http://vllm:8000/v1")
        if not cfg.model:
            raise InvalidConfig("generator.model: backend `openai` needs the served model name")
        key = read_api_key(cfg.api_key_env, "openai", required=False)
        return OpenAIGenerator(
            base_url=cfg.base_url,
            model=cfg.model,
            api_key=key,
            timeout_s=cfg.timeout_s,
            max_retries=cfg.max_retries,
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
        )
    if cfg.backend == "gemini":
        from codesense_ray.answering.generators.gemini import GeminiGenerator

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
    if cfg.backend == "local":
        from codesense_ray.answering.generators.local import LocalGenerator

        return LocalGenerator.from_config(cfg, home)
    raise InvalidConfig(f"generator.backend: unknown backend {cfg.backend!r} (known: extractive, openai, gemini, local)")
