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

from codesense_ray.backends import BackendRegistry
from codesense_ray.errors import GeneratorError  # noqa: F401  (re-exported: the error every backend raises)
from codesense_ray.config.answering import GeneratorConfig

DEFAULT_GEMINI_MODEL = "gemini-2.5-pro"
DEFAULT_GEMINI_KEY_ENV = "GEMINI_API_KEY"




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


#: `generator.backend` → factory(cfg, home). `extractive` builds nothing: the RAG answerer answers without a model.
GENERATORS: BackendRegistry[Generator | None] = BackendRegistry("generator.backend")
GENERATORS.register("extractive", lambda cfg, home: None)
GENERATORS.register("openai", "codesense_ray.answering.generators.openai_compatible:from_config")
GENERATORS.register("gemini", "codesense_ray.answering.generators.gemini:from_config")
GENERATORS.register("local", "codesense_ray.answering.generators.local:from_config")


def build_generator(cfg: GeneratorConfig, home: Path) -> Generator | None:
    """The configured LLM backend, or None for `extractive` (which needs no model).

    `home` is `$CODESENSE_HOME`: the `local` backend caches converted models under `home/models/`.
    Raises `InvalidConfig` when a required setting (base URL, API key env var) is missing.
    """
    return GENERATORS.build(cfg.backend, cfg, home)
