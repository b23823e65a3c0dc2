"""Prompt registry: the RAG prompt `rag-code-assistant` as versioned configuration (file, MLflow or Langfuse)."""

from codesense_ray.answering.prompts.registry import (
    FilePromptRegistry,
    LangfusePromptRegistry,
    MlflowPromptRegistry,
    Prompt,
    PromptNotFound,
    PromptRegistryError,
    PromptRegistry,
    build_prompt_registry,
    load_prompt_file,
    push_prompt,
    resolve_mlflow_uri,
)

__all__ = [
    "FilePromptRegistry",
    "LangfusePromptRegistry",
    "MlflowPromptRegistry",
    "Prompt",
    "PromptNotFound",
    "PromptRegistryError",
    "PromptRegistry",
    "build_prompt_registry",
    "load_prompt_file",
    "push_prompt",
    "resolve_mlflow_uri",
]
