"""`codesense.yaml`, modelled with pydantic: one model per concern, YAML is only the serialised form.

Example (the embedded default needs nothing but the repositories)::

    repositories:
      - url: https://github.com/google-gemini/gemini-cli
      - id: payments
        path: ../payments-service
        web_url: https://gitlab.example.com/team/payments
    embedding:
      model: Qwen/Qwen3-Embedding-0.6B   # production: GPU embedding
      device: cuda
    qdrant:
      url: http://qdrant.qdrant.svc:6333
      api_key_env: QDRANT_API_KEY

Secrets are never values in this file: fields ending in ``_env`` name the environment variable that holds
them, resolved by the entrypoint that needs them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from codesense_ray.config.deployment import DeploymentConfig
from codesense_ray.errors import InvalidConfig
from codesense_ray.config.evaluation import EvaluationConfig
from codesense_ray.config.answering import GeneratorConfig, PromptsConfig, TracingConfig
from codesense_ray.config.orchestration import ConvergeConfig, DvcConfig, JobsConfig, PipelineConfig
from codesense_ray.config.interfaces import ChatConfig
from codesense_ray.config.monitoring import MonitoringConfig
from codesense_ray.config.training import TrainingConfig
from codesense_ray.config.secrets import SecretsConfig

DEFAULT_CONFIG = "codesense.yaml"
_COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
PACKAGED_MINILM = "all-MiniLM-L6-v2"
QWEN3_EMBEDDING = "Qwen/Qwen3-Embedding-0.6B"


class _Section(BaseModel):
    # Unknown keys are errors: a typo in YAML must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid")


class RepositoryConfig(_Section):
    """One entry of `repositories:` (contract): either a remote `url` or a local `path`."""

    url: str | None = Field(None, description="Clone URL (https or ssh). Indexed from data/raw/<id>/ after `codesense converge`.")
    id: str | None = Field(None, description="Stable repository id used in filters and links; derived from the URL when omitted.")
    path: str | None = Field(None, description="Local directory indexed in place, relative to this file.")
    web_url: str | None = Field(None, description="Where links point (GitHub/GitLab project page); derived from `url` when omitted.")
    ref: str | None = Field(None, description="Commit or branch used in links; a git work tree defaults to its HEAD commit.")

    @model_validator(mode="after")
    def _one_source(self) -> "RepositoryConfig":
        if bool(self.url) == bool(self.path):
            raise ValueError("give exactly one of `url` or `path`")
        if self.path and not self.id:
            raise ValueError("a `path` entry needs an `id`")
        return self


class IndexConfig(_Section):
    """How files become chunks and how index versions are kept."""

    collection: str = Field(
        "codesense",
        description="Alias that search reads; versions are `<collection>__<timestamp>` behind it. Letters, digits, `_` and `-` "
        "(at most 64, starting with a letter or digit, no `__`).",
    )

    @field_validator("collection")
    @classmethod
    def _safe_collection(cls, value: str) -> str:
        # `__` separates the alias from the version timestamp: an alias containing it would claim another's versions.
        if not _COLLECTION_NAME.fullmatch(value) or "__" in value:
            raise ValueError(f"{value!r} is not a safe collection name (letters, digits, '_', '-'; starts with a letter or digit; no '__'; at most 64)")
        return value
    max_chunk_tokens: int = Field(
        512, ge=32, description="Upper bound of a chunk in embedding-model tokens (header included); capped by the model's own limit so nothing is truncated."
    )
    min_chunk_tokens: int = Field(48, ge=0, description="Neighbouring definitions smaller than this are merged into one chunk.")
    max_file_bytes: int = Field(1_000_000, ge=1, description="Files larger than this are skipped (reason `too_large`).")
    max_line_length: int = Field(1000, ge=80, description="A file whose longest line exceeds this is treated as minified/generated.")
    exclude: list[str] = Field(default_factory=list, description="Extra gitignore-style patterns skipped in every repository.")
    retention: int = Field(2, ge=0, description="How many previous index versions to keep after an alias swap (rollback targets).")
    parse_concurrency: int = Field(2, ge=1, description="Ray actors parsing and chunking files in parallel (at most half the CPUs: chunking is cheap next to embedding).")
    in_process_max_files: int = Field(
        8, ge=0, description="Runs that embed at most this many files skip Ray and call the same stages in-process (small incremental deltas); 0: always Ray."
    )


class EmbeddingConfig(_Section):
    """The embedding model: the packaged MiniLM on CPU by default, Qwen3-Embedding on GPU in production."""

    model: str = Field(
        PACKAGED_MINILM,
        description="`all-MiniLM-L6-v2` (packaged, offline), `Qwen/Qwen3-Embedding-0.6B`, a Hugging Face id in the local cache, or a model directory.",
    )
    device: str = Field("auto", description="`auto` (cuda when available, else cpu), `cpu`, `cuda`, `cuda:1`, `mps`.")
    batch_size: int = Field(32, ge=1, description="Chunks per forward pass; larger batches use the GPU better and need more memory.")
    concurrency: int = Field(1, ge=1, description="Embedding actors in the Ray Data pool (one model copy each).")
    num_gpus: float = Field(
        0.25, gt=0, le=8, description="GPU share per embedding actor when on GPU; fractions pack several actors onto a time-sliced GPU."
    )
    query_instruction: str | None = Field(
        None,
        description="Instruction prefixed to queries (not documents). Defaults to the Qwen3 code-retrieval instruction for Qwen3 models, none otherwise.",
    )
    max_seq_length: int | None = Field(None, ge=16, description="Override of the model's token limit (else read from the model).")
    query_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Precision of the query encoder (search, Serve, evaluation; documents are always embedded in float32). "
        "`auto`: bfloat16 on a CPU with native bfloat16 instructions (AVX512_BF16, AMX, Arm BF16) — 1.5-1.7x faster "
        "per query, cosine to float32 above 0.9999 — else float32.",
    )


class QdrantConfig(_Section):
    """Vector store: embedded (a directory, one process) or a Qdrant server."""

    path: str | None = Field(None, description="Embedded storage directory; default `$CODESENSE_HOME/qdrant`. Ignored when `url` is set.")
    url: str | None = Field(None, description="Qdrant server URL, e.g. `http://qdrant:6333`. Set it to share the index between processes.")
    api_key_env: str | None = Field(None, description="Name of the env var holding the server API key (never the key itself).")
    timeout_s: float = Field(30.0, gt=0, description="Server request timeout in seconds.")
    write_concurrency: int = Field(2, ge=1, description="Parallel writers with a server (embedded mode always uses one writer).")
    write_batch_size: int = Field(256, ge=1, description="Points per upsert request.")


class RayConfig(_Section):
    """Where index jobs run."""

    address: str | None = Field(
        None, description="`None` starts a local Ray in-process; `auto` joins a running head (`ray start --head`, or inside a RayJob); `ray://host:10001` for a remote cluster."
    )
    num_cpus: int | None = Field(None, ge=1, description="CPUs for a locally started Ray (default: all).")


class SearchConfig(_Section):
    """Retrieval defaults used by `search`, `ask` and the HTTP API."""

    k: int = Field(10, ge=1, le=200, description="Hits returned by default.")
    max_query_chars: int = Field(
        4000, ge=10, description="Longer search queries are rejected (HTTP 422, CLI one-line error) instead of costing unbounded CPU."
    )
    candidates: int = Field(50, ge=1, description="Hits fetched from each signal (dense, sparse, symbol) before fusion.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant: larger flattens the rank bonus.")
    passage_chars: int = Field(
        1200, ge=100, description="A longer query is embedded in passages of whole paragraphs up to this many characters and their dense rankings fused (a bug report's prose and its traceback are matched separately)."
    )
    memory_index: bool = Field(
        True, description="Embedded Qdrant: long-lived processes (Serve, eval, benchmarks) answer queries from an in-memory read replica of the live version, loaded on the first query and reloaded when the alias moves; one-shot CLI searches read Qdrant directly."
    )
    query_cache_size: int = Field(
        1024, ge=0, description="Long-lived processes (Serve, MCP, eval): vectors of this many recent distinct queries are kept (LRU), so a repeated query skips the embedding model; 0 turns the cache off."
    )
    weights: dict[str, float] = Field(
        default_factory=lambda: {"dense": 1.0, "sparse": 1.0, "symbol": 1.0, "path": 1.0},
        description="Per-signal weight in the fusion: `dense`, `sparse`, `symbol` (definitions), `path` (files the query names). 0 switches one off.",
    )


class AnswerConfig(_Section):
    """How a question becomes an answer: context budget, limits, behaviour when the generator fails."""

    k: int = Field(8, ge=1, le=50, description="Chunks retrieved per question before the context is assembled.")
    context_tokens: int = Field(3000, ge=100, description="Budget of the numbered context shown to the model (approximate tokens, 4 chars each).")
    max_blocks_per_file: int = Field(2, ge=1, description="At most this many blocks from one file, so the context covers distinct files.")
    max_question_chars: int = Field(4000, ge=10, description="Longer questions are rejected (HTTP 422) instead of silently truncated.")
    sources_on_generator_error: bool = Field(True, description="When the generator is down, still return the retrieved sources with the 502 error.")


class ServeConfig(_Section):
    """The Ray Serve HTTP app (`codesense serve`)."""

    host: str = Field("127.0.0.1", description="Listen address; 0.0.0.0 inside a container.")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port of the Serve proxy.")
    auth_token_env: str | None = Field(None, description="Env var holding a bearer token; when set, every endpoint but /healthz requires `Authorization: Bearer <token>`.")
    request_timeout_s: float = Field(120.0, gt=0, description="Upper bound for one request end to end (the Serve proxy's `request_timeout_s`; `codesense serve` applies it).")
    ingress_replicas: int = Field(1, ge=1, description="Ingress (FastAPI) replicas.")
    retriever_replicas: int = Field(1, ge=1, description="Retriever replicas; embedded Qdrant allows exactly 1 (one process), a Qdrant server any number.")
    generator_replicas: int = Field(1, ge=1, description="Generator replicas (each loads the local model, or holds a client to the remote one).")
    retriever_num_cpus: float = Field(1.0, gt=0, description="CPUs reserved per retriever replica (it runs the query embedding).")
    direct_ingress: bool | None = Field(
        None,
        description=(
            "`codesense serve`: the ingress replica answers HTTP on `serve.port` itself (Ray Serve's direct ingress), without "
            "the hop through the Serve proxy. Default (null): on when `codesense serve` starts its own Ray and there is one "
            "ingress replica; off when joining a cluster (`ray.address`), where Ray's HAProxy mode is the equivalent."
        ),
    )
    colocate_retriever: bool | None = Field(
        None,
        description=(
            "Run the retriever inside the ingress replica instead of as its own deployment: one handle hop less per request. "
            "Default (null): yes with embedded Qdrant (one process anyway), no with `qdrant.url` (the retriever scales on its own)."
        ),
    )
    generator_num_cpus: float | None = Field(
        None, gt=0, description="CPUs per generator replica; default 1 for `local` (the model runs there), 0.25 for remote backends (a client only)."
    )
    generator_num_gpus: float = Field(0.0, ge=0, description="GPU share per generator replica for the `local` backend on GPU (fractions pack replicas).")
    autoscaling: bool = Field(False, description="Serve autoscaling for retriever and generator (server mode): replicas between min and max by ongoing requests.")
    min_replicas: int = Field(1, ge=0, description="Autoscaling lower bound.")
    max_replicas: int = Field(4, ge=1, description="Autoscaling upper bound.")
    target_ongoing_requests: float = Field(4.0, gt=0, description="Autoscaling target of in-flight requests per replica.")
    max_ongoing_requests: int = Field(
        64, ge=1, description="Requests one ingress or retriever replica accepts at once (both are async: waiting requests cost no thread). Ray's default of 5 left the rest polling in the proxy's router with backoff."
    )
    query_batch_size: int = Field(
        16, ge=1, description="Retriever: at most this many concurrent searches are served as one batch (one model call; the batch is formed when the model frees up, at most half the recent concurrency); 1 turns batching off."
    )
    query_batch_wait_ms: float = Field(
        10.0,
        ge=0,
        description=(
            "Retriever: how long the first query of a batch waits for others to join before the model runs (milliseconds). "
            "Only while other requests are in flight: a lone query never waits."
        ),
    )


class Config(_Section):
    """The whole `codesense.yaml`."""

    repositories: list[RepositoryConfig] = Field(default_factory=list, description="What to index (contract).")
    index: IndexConfig = Field(default_factory=IndexConfig)
    secrets: SecretsConfig = Field(default_factory=SecretsConfig, description="Secret files never indexed; secrets in text redacted.")
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    qdrant: QdrantConfig = Field(default_factory=QdrantConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    answer: AnswerConfig = Field(default_factory=AnswerConfig)
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    prompts: PromptsConfig = Field(default_factory=PromptsConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig, description="`codesense eval`: metrics, MLflow run, judge.")
    converge: ConvergeConfig = Field(default_factory=ConvergeConfig, description="`codesense converge`: cloning `url:` repositories.")
    dvc: DvcConfig = Field(default_factory=DvcConfig, description="Data versioning of data/raw with DVC.")
    jobs: JobsConfig = Field(default_factory=JobsConfig, description="How Ray jobs are submitted (ray-jobs or kuberay).")
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig, description="The KFP pipeline codesense-rag.")
    chat: ChatConfig = Field(default_factory=ChatConfig, description="`/v1/chat/completions`: the `model` ids (answer profiles) OpenAI clients pick.")
    deployment: DeploymentConfig = Field(default_factory=DeploymentConfig, description="Kubernetes delivery: `infra/`, `codesense deploy`, `codesense rollout`.")
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig, description="Feedback, online judge, query drift, monitoring report.")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="The student model: golden set, distillation, fine-tuning, registry.")

    # Not part of the YAML: where the file was read from (relative paths resolve against it).
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    @property
    def home(self) -> Path:
        """Local state directory: `$CODESENSE_HOME`, else `.codesense/` beside the config file."""
        env = os.environ.get("CODESENSE_HOME")
        return Path(env).resolve() if env else (self.base_dir / ".codesense")

    @property
    def qdrant_path(self) -> Path:
        """Embedded storage directory; a relative `qdrant.path` resolves against the config file's directory."""
        return self.resolve_path(self.qdrant.path) if self.qdrant.path else self.home / "qdrant"

    def resolve_path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base_dir / p).resolve()


def _format_validation_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(x) for x in first["loc"] if x != "__root__") or "<root>"
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"{source}: unknown key `{loc}`"
    msg = first["msg"].removeprefix("Value error, ")
    return f"{source}: `{loc}`: {msg}"


def config_from_dict(data: dict[str, Any], base_dir: Path, source: str = "config") -> Config:
    """Validate a parsed YAML mapping; errors name the key path (`index.retention: ...`)."""
    if not isinstance(data, dict):
        raise InvalidConfig(f"{source}: top level must be a mapping, got {type(data).__name__}")
    try:
        cfg = Config.model_validate(data)
    except ValidationError as err:
        raise InvalidConfig(_format_validation_error(err, source)) from None
    cfg.base_dir = base_dir.resolve()
    if not cfg.qdrant.url and cfg.qdrant_path.exists() and not cfg.qdrant_path.is_dir():
        raise InvalidConfig(f"{source}: `qdrant.path`: {cfg.qdrant_path} is a file, not a directory")
    return cfg


def config_path(explicit: str | None = None) -> Path:
    """`--config`, else `$CODESENSE_CONFIG`, else `./codesense.yaml`."""
    return Path(explicit or os.environ.get("CODESENSE_CONFIG") or DEFAULT_CONFIG)


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Read and validate `codesense.yaml`. Raises `InvalidConfig` with a one-line reason."""
    p = config_path(str(path) if path else None)
    if not p.is_file():
        raise InvalidConfig(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise InvalidConfig(f"{p}: invalid YAML{where}: {problem}") from None
    return config_from_dict(data, p.resolve().parent, source=str(p))


def resolve_secret(env_name: str | None) -> str | None:
    """Read a secret from the env var named in config; `None` when no name is configured."""
    if not env_name:
        return None
    value = os.environ.get(env_name)
    if value is None:
        raise InvalidConfig(f"environment variable {env_name} (named in config) is not set")
    return value
