"""Answered questions read back from the traces: the raw material of drift, the batch judge, the report and the
feedback export. Traces are the request log of the RAG service — every question, what was retrieved, what was
answered, and the ratings and judge scores later attached to it.

    records = read_mlflow_records("sqlite:///.codesense/mlflow.db", "codesense", since=now - 7 * 86400)

Both tracing backends are read: MLflow traces (the embedded default, and an MLflow server) and Langfuse traces
(`monitoring/langfuse_traces.py`, the production backend); `read_records(cfg, ...)` picks the configured one.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from codesense_ray.errors import InvalidConfig
from codesense_ray.monitoring.feedback import FEEDBACK_NAME
from codesense_ray.monitoring.langfuse_traces import as_json_value


_SOURCE_LINE = re.compile(r"^\[\d+\] Source: \S+", re.M)


@dataclass
class QueryRecord:
    """One traced `ask`: the question, what retrieval found, the answer and what was later said about it."""

    trace_id: str
    timestamp: float
    question: str
    repos: list[str]
    top_score: float | None
    hits: int
    answer: str | None
    sourced: bool
    model: str | None
    contexts: list[str] = field(default_factory=list)
    error: str | None = None
    latency_s: float | None = None
    citation_valid: float | None = None
    feedback: list[dict[str, Any]] = field(default_factory=list)
    judge: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_sourced(answer: str | None) -> bool:
    """An answer is backed by a source when at least one verified `[n] Source: <link>` line was rendered."""
    return bool(answer and _SOURCE_LINE.search(answer))


def _retrieval_summary(rows: Any) -> tuple[float | None, int]:
    """(top score, number of hits) from the `retrieve` span's output rows."""
    if not isinstance(rows, list):
        return None, 0
    scores = [float(r["score"]) for r in rows if isinstance(r, dict) and r.get("score") is not None]
    return (max(scores) if scores else None), len(rows)


def _user_messages(inputs: Any) -> list[str]:
    """The user messages of the `generate` span's input: they carry the numbered context the model saw."""
    messages = (inputs.get("messages") if isinstance(inputs, dict) else None) or []
    return [m["content"] for m in messages if isinstance(m, dict) and m.get("role") == "user" and m.get("content")]


def record_from_mlflow_trace(trace: Any) -> QueryRecord | None:
    """A `QueryRecord` from an MLflow trace written by the answerer's tracer; None for other traces."""
    spans = trace.data.spans
    root = next((s for s in spans if s.parent_id is None), None)
    if root is None or root.name != "ask":
        return None
    inputs = as_json_value(root.inputs) or {}
    outputs = as_json_value(root.outputs) or {}
    question = inputs.get("question") if isinstance(inputs, dict) else None
    if not question:
        return None
    answer = outputs.get("answer") if isinstance(outputs, dict) else None
    top_score, hits, contexts = None, 0, []
    for span in spans:
        if span.name == "retrieve":
            top_score, hits = _retrieval_summary(as_json_value(span.outputs))
        elif span.name == "generate":
            contexts = _user_messages(as_json_value(span.inputs))
    info = trace.info
    feedback, judge = [], {}
    for a in getattr(info, "assessments", None) or []:
        value = getattr(a, "value", None)
        if a.name == FEEDBACK_NAME:
            meta = a.metadata or {}
            feedback.append(
                {"rating": value, "comment": getattr(a, "rationale", None), "correct_paths": json.loads(meta.get("correct_paths") or "[]"),
                 "at": (a.create_time_ms or 0) / 1000}
            )
        elif a.name.startswith("judge/") and isinstance(value, (int, float)):
            judge[a.name.removeprefix("judge/")] = float(value)
    status = str(getattr(info, "state", None) or getattr(info, "status", ""))
    error = root.attributes.get("error") if "ERROR" in status.upper() else None
    duration = getattr(info, "execution_duration", None)
    return QueryRecord(
        trace_id=info.trace_id,
        timestamp=info.request_time / 1000 if getattr(info, "request_time", None) else info.timestamp_ms / 1000,
        question=question,
        repos=list(inputs.get("repo") or []),
        top_score=top_score,
        hits=hits,
        answer=answer,
        sourced=is_sourced(answer),
        model=root.attributes.get("model"),
        contexts=contexts,
        error=error,
        latency_s=duration / 1000 if duration else None,
        citation_valid=root.attributes.get("citation_valid"),
        feedback=feedback,
        judge=judge,
    )


def read_mlflow_records(tracking_uri: str, experiment: str, since: float, until: float | None = None, limit: int = 50_000) -> list[QueryRecord]:
    """Traced questions with `since <= start < until` (Unix seconds), oldest first."""
    from mlflow.tracing.client import TracingClient
    from mlflow.tracking import MlflowClient

    exp = MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(experiment)
    if exp is None:
        return []
    until = time.time() + 1 if until is None else until
    flt = f"trace.timestamp_ms >= {int(since * 1000)} AND trace.timestamp_ms < {int(until * 1000)}"
    client = TracingClient(tracking_uri)
    out: list[QueryRecord] = []
    token = None
    while len(out) < limit:
        page = client.search_traces(experiment_ids=[exp.experiment_id], filter_string=flt, max_results=500, page_token=token, order_by=["timestamp_ms ASC"])
        for trace in page:
            rec = record_from_mlflow_trace(trace)
            if rec is not None:
                out.append(rec)
        token = page.token
        if not token:
            break
    out.sort(key=lambda r: r.timestamp)
    return out[:limit]


def record_from_langfuse_trace(trace: Any) -> QueryRecord:
    """A `QueryRecord` from a `LangfuseTrace` (the `ask` root, its children and its scores)."""
    inputs, outputs, meta = trace.inputs, trace.outputs, trace.metadata
    answer = outputs.get("answer") if isinstance(outputs, dict) else None
    top_score, hits, contexts = None, 0, []
    retrieve, generate = trace.child("retrieve"), trace.child("generate")
    if retrieve is not None:
        top_score, hits = _retrieval_summary(as_json_value(retrieve.output))
    if generate is not None:
        contexts = _user_messages(as_json_value(generate.input))
    feedback, judge = [], {}
    for score in trace.scores:
        numeric = isinstance(score.value, (int, float)) and not isinstance(score.value, bool)
        if score.name == FEEDBACK_NAME and numeric:
            extra = score.metadata or {}
            feedback.append({"rating": int(score.value), "comment": score.comment, "correct_paths": list(as_json_value(extra.get("correct_paths")) or []),
                             "at": score.timestamp.timestamp()})
        elif score.name.startswith("judge/") and numeric:
            judge[score.name.removeprefix("judge/")] = float(score.value)
    return QueryRecord(
        trace_id=trace.trace_id,
        timestamp=trace.timestamp,
        question=str(inputs["question"]),
        repos=list(inputs.get("repo") or []),
        top_score=top_score,
        hits=hits,
        answer=answer,
        sourced=is_sourced(answer),
        model=meta.get("model"),
        contexts=contexts,
        error=trace.error,
        latency_s=trace.latency_s,
        citation_valid=meta.get("citation_valid"),
        feedback=feedback,
        judge=judge,
    )


def read_langfuse_records(cfg, since: float, until: float | None = None) -> "RecordList":
    """Traced questions from Langfuse with `since <= start < until`, oldest first; `.skipped` counts the rest."""
    from codesense_ray.monitoring.langfuse_traces import LangfuseTraceReader

    reader = LangfuseTraceReader.from_config(cfg)
    traces = reader.traces(since, time.time() + 1 if until is None else until)
    return RecordList((record_from_langfuse_trace(t) for t in traces), skipped=reader.skipped)


class RecordList(list):
    """Records plus `skipped`: traces in the window that were not codesense answers, counted by reason."""

    def __init__(self, records: Any = (), skipped: dict[str, int] | None = None) -> None:
        super().__init__(records)
        self.skipped = dict(skipped or {})


def read_records(cfg, since: float, until: float | None = None) -> list[QueryRecord]:
    """Traced questions from the configured tracing backend (MLflow or Langfuse)."""
    from codesense_ray.config.answering import resolve_mlflow_uri

    t = cfg.tracing
    if t.backend == "langfuse":
        return read_langfuse_records(cfg, since, until)
    if t.backend != "mlflow":
        raise InvalidConfig(f"tracing.backend: `{t.backend}` records no traces to read back; set mlflow or langfuse")
    return read_mlflow_records(resolve_mlflow_uri(t.mlflow_tracking_uri, cfg.home), t.experiment, since, until)
