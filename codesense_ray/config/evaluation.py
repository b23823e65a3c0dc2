"""Configuration of `codesense eval`: cut-offs, where results go, the MLflow experiment, the LLM judge.

Lives in `codesense.yaml` under `evaluation:`. Example (production: Gemini as the judge, a shared MLflow)::

    evaluation:
      ks: [1, 3, 5, 10]
      experiment: codesense-eval
      mlflow_tracking_uri: http://mlflow.mlflow.svc:5000
      judge:
        backend: gemini
        model: gemini-2.5-flash
        api_key_env: GEMINI_API_KEY

Example (a self-hosted judge behind an OpenAI-compatible route, e.g. vLLM on KServe)::

    evaluation:
      judge:
        backend: openai
        base_url: http://judge-llm.kserve.svc/openai/v1
        model: qwen2.5-32b-instruct

The judge is only called with `codesense eval --judge`: each judged question costs about a dozen LLM calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

JudgeMetricName = Literal["faithfulness", "answer_relevancy", "contextual_precision", "contextual_recall", "citation_format", "no_hallucination"]
JUDGE_METRICS: tuple[str, ...] = ("faithfulness", "answer_relevancy", "contextual_precision", "contextual_recall", "citation_format", "no_hallucination")
DEFAULT_EXPERIMENT = "codesense-eval"


class _Section(BaseModel):
    # Unknown keys are errors: a typo in YAML must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid")


class JudgeConfig(_Section):
    """The LLM that grades answers (LLM-as-judge) through DeepEval. `none` switches judged metrics off.

    Use a model at least as strong as the one that answers: a weak judge gives noisy scores, like a flaky test.
    """

    backend: Literal["none", "openai", "gemini"] = Field(
        "none",
        description="`none`: judged metrics are skipped (and reported as skipped, never estimated). `openai`: any "
        "OpenAI-compatible endpoint (vLLM, KServe, Ollama, OpenAI). `gemini`: Google Gemini through google-genai.",
    )
    model: str | None = Field(
        None, description="Model name sent to the API (`openai`: required, the served model name; `gemini`: default `gemini-2.5-pro`)."
    )
    base_url: str | None = Field(
        None, description="API root. `openai`: e.g. `http://vllm:8000/v1` (required). `gemini`: optional proxy or gateway; unset talks to Google."
    )
    api_key_env: str | None = Field(
        None, description="Name of the env var holding the judge's API key (never the key). `gemini` defaults to `GEMINI_API_KEY`."
    )
    timeout_s: float = Field(120.0, gt=0, description="Per-call timeout; a judge call past it fails that metric for that question (recorded, not fatal).")
    max_retries: int = Field(2, ge=0, le=5, description="SDK retries on connection errors and 429/5xx: a long run should survive a rate-limit blip.")
    max_tokens: int = Field(4096, ge=64, description="Upper bound on one judge reply; verdict lists for long answers (and thinking models) need room.")
    metrics: list[JudgeMetricName] = Field(
        default_factory=lambda: list(JUDGE_METRICS),
        description="Judged metrics to compute. `contextual_precision` and `contextual_recall` need a reference `answer` in the "
        "dataset; `faithfulness`, `answer_relevancy`, `citation_format`, `no_hallucination` need full answers (not `--retrieval-only`).",
    )

    @model_validator(mode="after")
    def _endpoint(self) -> "JudgeConfig":
        if self.backend == "openai" and not (self.base_url and self.model):
            raise ValueError("backend `openai` needs `base_url` (e.g. http://vllm:8000/v1) and `model`")
        return self


class EvaluationConfig(_Section):
    """How `codesense eval` measures quality against a dataset of questions with gold files and line spans.

    Think of it as the SLO definition of retrieval: which percentiles (cut-offs `k`) are reported, where the
    per-question evidence is kept, and where each run is recorded (MLflow), so every change is compared
    against the same gold standard.
    """

    ks: list[int] = Field(
        default_factory=lambda: [1, 3, 5, 10],
        description="Cut-offs reported as `file_hit@k`, `file_all@k`, `chunk_hit@k` (overridden by `codesense eval -k 1,3,5`).",
    )
    depth: int = Field(
        10,
        ge=1,
        le=200,
        description="Files ranked per question (at least the largest k). `file_mrr` scores a gold file found within this depth; "
        "deeper gold files count as misses, so MRR numbers are comparable only at the same depth.",
    )
    output_dir: str | None = Field(
        None,
        description="Where each run writes `results.jsonl`, `summary.json` and plots (a sub-directory per run); "
        "unset: `$CODESENSE_HOME/eval/`. `--output DIR` writes into DIR itself.",
    )
    log_to_mlflow: bool = Field(True, description="Record each run in MLflow (params, metrics, artifacts); `--no-mlflow` turns it off for one run.")
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; unset: `$MLFLOW_TRACKING_URI`, else `sqlite:///$CODESENSE_HOME/mlflow.db` (browse with `mlflow ui`)."
    )
    experiment: str = Field(DEFAULT_EXPERIMENT, description="MLflow experiment holding evaluation runs (kept apart from the request traces).")
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="The LLM judge used by `codesense eval --judge`.")
    dataset: str | None = Field(
        None,
        description="Default evaluation set (JSONL, relative to this file) for `codesense index --gate`: the candidate index is "
        "scored on it before the alias moves. `--dataset` overrides it for one run.",
    )

    @field_validator("ks")
    @classmethod
    def _ks(cls, value: list[int]) -> list[int]:
        return normalize_ks(value)

    def resolve_output_dir(self, base_dir: Path, home: Path) -> Path:
        """The parent directory of per-run result folders."""
        if self.output_dir:
            p = Path(self.output_dir).expanduser()
            return p if p.is_absolute() else (base_dir / p).resolve()
        return Path(home) / "eval"


def normalize_ks(values) -> list[int]:
    """Sorted, de-duplicated cut-offs; each must be a positive integer."""
    ks = sorted({int(v) for v in values})
    if not ks:
        raise ValueError("give at least one cut-off k")
    if ks[0] < 1:
        raise ValueError(f"cut-offs must be positive integers, got {ks[0]}")
    return ks


def parse_ks(text: str) -> list[int]:
    """`"1,3,5,10"` → `[1, 3, 5, 10]` (the `-k` option)."""
    try:
        return normalize_ks(int(part) for part in text.split(",") if part.strip())
    except ValueError as err:
        raise ValueError(f"-k expects comma-separated positive integers like 1,3,5,10, got {text!r}") from err


def evaluation_config(cfg) -> EvaluationConfig:
    """`cfg.evaluation` when the config has that section, else the defaults."""
    return getattr(cfg, "evaluation", None) or EvaluationConfig()
