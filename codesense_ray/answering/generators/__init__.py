"""Answer generators: one contract (`Generator`), four backends chosen by `generator.backend` in config.

`extractive` (no LLM) is built by the RAG answerer itself; `openai`, `gemini` and `local` live here and load
their SDKs only when built.
"""

from codesense_ray.answering.generators.base import Generation, Generator, GeneratorError, build_generator
from codesense_ray.config.answering import GeneratorConfig, PromptsConfig, TracingConfig

__all__ = ["Generation", "Generator", "GeneratorConfig", "GeneratorError", "PromptsConfig", "TracingConfig", "build_generator"]
