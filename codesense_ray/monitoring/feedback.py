"""User feedback stored on the trace it rates: MLflow assessments (embedded default) or Langfuse scores.

A thumbs-down with a comment and the paths that really answer the question is a postmortem note attached to the
incident's trace: `codesense feedback export` collects them for the golden-set builder, so the next training and
evaluation cycle learns from what went wrong — the runbook grows from postmortems.

    store = build_feedback_store(cfg)
    store.record(Feedback(trace_id="tr-…", rating=-1, comment="wrong file", correct_paths=["app/auth/jwt.py:10-42"]))

`record` raises `TraceNotFound` for an id the backend does not know (HTTP 404).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from codesense_ray.errors import CodesenseError, InvalidConfig, TraceNotFound  # noqa: F401

log = logging.getLogger(__name__)

TRACE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
FEEDBACK_NAME = "user_rating"
"""Assessment (MLflow) / score (Langfuse) name of a user rating; comments and correct paths ride along."""




class Feedback(BaseModel):
    """`POST /v1/feedback` body: a rating of one answer, identified by the `trace_id` that `/v1/ask` returned."""

    model_config = ConfigDict(extra="forbid")

    trace_id: str = Field(..., description="The `trace_id` of the answer being rated.")
    rating: Literal[1, -1] = Field(..., description="1: helpful (thumbs up), -1: not helpful (thumbs down).")
    comment: str | None = Field(None, max_length=4000, description="What was wrong or right, in the user's words.")
    correct_paths: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Files that really answer the question: `path`, `path:10-42` or `repo:path:10-42`; they become gold in the golden set.",
    )

    @field_validator("trace_id")
    @classmethod
    def _trace_id(cls, value: str) -> str:
        if not TRACE_ID.match(value):
            raise ValueError("must be the trace id returned by /v1/ask (letters, digits, `-_.:`, at most 128 characters)")
        return value

    @field_validator("correct_paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        for p in value:
            parse_gold_path(p)
        return value


_LINES = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_gold_path(text: str) -> dict[str, Any]:
    """`repo:path:10-42` / `path:10-42` / `repo:path` / `path` → a gold entry of the evaluation dataset contract."""
    problem = f"correct_paths: expected `path`, `path:10-42` or `repo:path:10-42`, got {text!r}"
    if not isinstance(text, str) or not text.strip() or any(c.isspace() for c in text.strip()):
        raise ValueError(problem)
    parts = text.strip().split(":")
    lines = _LINES.match(parts[-1]) if len(parts) > 1 else None
    if lines:
        parts = parts[:-1]
    if len(parts) > 2 or not all(parts):
        raise ValueError(problem)
    gold: dict[str, Any] = {"path": parts[-1]}
    if len(parts) == 2:
        gold["repo"] = parts[0]
    if lines:
        start, end = int(lines.group(1)), int(lines.group(2) or lines.group(1))
        if end < start:
            raise ValueError(f"correct_paths: line range ends before it starts in {text!r}")
        gold |= {"start_line": start, "end_line": end}
    return gold


class FeedbackStore(Protocol):
    name: str

    def record(self, feedback: Feedback, source_id: str = "api") -> None: ...


# --- MLflow -----------------------------------------------------------------------------------------
class MlflowFeedbackStore:
    """Feedback as an MLflow assessment (`user_rating`, HUMAN source) on the trace; visible in the trace UI."""

    name = "mlflow"

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._client = None
        self._lock = threading.Lock()

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                from mlflow.tracing.client import TracingClient

                self._client = TracingClient(self.tracking_uri)
            return self._client

    def exists(self, trace_id: str, attempts: int = 3) -> bool:
        """Whether MLflow knows the trace. A trace this process answered a moment ago may still sit in MLflow's async
        export queue: flush it and look again before answering "unknown"."""
        import time

        import mlflow
        from mlflow.exceptions import MlflowException

        for i in range(attempts):
            try:
                self.client.get_trace_info(trace_id)
                return True
            except MlflowException as err:
                if err.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                    raise
            if i < attempts - 1:
                mlflow.flush_trace_async_logging()
                time.sleep(0.2 * (i + 1))
        return False

    def record(self, feedback: Feedback, source_id: str = "api") -> None:
        from mlflow.entities import AssessmentSource
        from mlflow.entities import Feedback as MlflowFeedback

        if not self.exists(feedback.trace_id):
            raise TraceNotFound(f"unknown trace_id {feedback.trace_id!r}: no such trace in MLflow at {self.tracking_uri}")
        metadata = {"correct_paths": json.dumps(feedback.correct_paths)} if feedback.correct_paths else None
        self._log(
            feedback.trace_id,
            MlflowFeedback(
                name=FEEDBACK_NAME,
                value=feedback.rating,
                source=AssessmentSource(source_type="HUMAN", source_id=source_id),
                rationale=feedback.comment,
                metadata=metadata,
                trace_id=feedback.trace_id,
            ),
        )

    def _log(self, trace_id: str, assessment: Any, attempts: int = 10) -> None:
        """MLflow exports traces asynchronously: a trace this process just answered may still sit in the export queue.
        Flush it, and retry briefly, before giving up."""
        import time

        import mlflow
        from mlflow.exceptions import MlflowException

        for i in range(attempts):
            try:
                self.client.log_assessment(trace_id, assessment)
                return
            except MlflowException as err:
                if "not found" not in str(err).lower() or i == attempts - 1:
                    raise
                mlflow.flush_trace_async_logging()
                time.sleep(0.2 * (i + 1))

    def record_scores(self, trace_id: str, scores: dict[str, dict[str, Any]], judge_model: str) -> None:
        """Judge scores as LLM_JUDGE assessments named `judge/<metric>` (score, or the error that prevented one)."""
        from mlflow.entities import AssessmentSource
        from mlflow.entities import Feedback as MlflowFeedback

        for metric, result in scores.items():
            if result.get("skipped"):
                continue
            self._log(
                trace_id,
                MlflowFeedback(
                    name=f"judge/{metric}",
                    value=result.get("score"),
                    error=result.get("error"),
                    rationale=result.get("reason"),
                    source=AssessmentSource(source_type="LLM_JUDGE", source_id=judge_model),
                    trace_id=trace_id,
                ),
            )


# --- Langfuse -----------------------------------------------------------------------------------------
class LangfuseFeedbackStore:
    """Feedback as a Langfuse score (`user_rating`, NUMERIC) with the comment; correct paths in its metadata."""

    name = "langfuse"

    def __init__(self, host: str, public_key: str, secret_key: str, client: Any = None) -> None:
        self.host = host.rstrip("/")
        self._keys = (public_key, secret_key)
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                from codesense_ray.answering.tracing import open_langfuse

                self._client = open_langfuse(self.host, *self._keys)
            return self._client

    def exists(self, trace_id: str) -> bool:
        # The v2 observations endpoint is Langfuse's real-time read path (the trace endpoints lag by minutes).
        page = self.client.api.observations.get_many(trace_id=trace_id, limit=1, fields="core")
        return bool(page.data)

    def record(self, feedback: Feedback, source_id: str = "api") -> None:
        if not self.exists(feedback.trace_id):
            raise TraceNotFound(f"unknown trace_id {feedback.trace_id!r}: no such trace in Langfuse at {self.host}")
        metadata = {"source": source_id} | ({"correct_paths": feedback.correct_paths} if feedback.correct_paths else {})
        self.client.create_score(
            name=FEEDBACK_NAME, value=float(feedback.rating), trace_id=feedback.trace_id, data_type="NUMERIC", comment=feedback.comment, metadata=metadata
        )
        self.client.flush()

    def record_scores(self, trace_id: str, scores: dict[str, dict[str, Any]], judge_model: str) -> None:
        for metric, result in scores.items():
            if result.get("score") is None:
                continue
            self.client.create_score(
                name=f"judge/{metric}", value=float(result["score"]), trace_id=trace_id, data_type="NUMERIC", comment=result.get("reason"),
                metadata={"judge": judge_model},
            )
        self.client.flush()


def feedback_backend(cfg) -> str:
    from codesense_ray.config.monitoring import monitoring_config

    chosen = monitoring_config(cfg).feedback_backend or cfg.tracing.backend
    if chosen == "none":
        raise InvalidConfig("monitoring.feedback_backend: tracing.backend is `none`, so answers have no trace to rate; set mlflow or langfuse")
    return chosen


def build_feedback_store(cfg, home: Path | None = None):
    """The configured store (`monitoring.feedback_backend`, else `tracing.backend`). Raises InvalidConfig naming the key."""
    from codesense_ray.config.answering import resolve_mlflow_uri
    from codesense_ray.monitoring.langfuse_traces import langfuse_settings

    backend = feedback_backend(cfg)
    t = cfg.tracing
    if backend == "mlflow":
        return MlflowFeedbackStore(resolve_mlflow_uri(t.mlflow_tracking_uri, home or cfg.home))
    return LangfuseFeedbackStore(*langfuse_settings(cfg, "feedback backend `langfuse`"))
