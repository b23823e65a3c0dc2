"""The golden set: real answered requests, filtered to the good ones, as an evaluation dataset.

Like promoting production incidents into regression tests: every trace `codesense ask` / the HTTP API wrote
carries the question, the answer, the verified citations and (when the feedback/judge stages ran) scores. Traces
that pass the rule in `training.golden` become `data/golden/<name>.jsonl` in the evaluation contract, with
gold = the files and lines the answer cited. Near-duplicate questions are dropped (the newest is kept).

Reads the configured tracing backend: MLflow traces (`tracing.backend: mlflow`, the embedded default) or Langfuse
traces (`langfuse`, production). With Langfuse the kept answers are also written as a Langfuse Dataset of the same
name (one item per trace, linked to its source trace; re-runs update the same items).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codesense_ray.errors import InvalidConfig
from codesense_ray.training.data import write_jsonl
from codesense_ray.config.training import GoldenConfig

log = logging.getLogger(__name__)

FEEDBACK_NAMES = ("user_rating", "user_feedback", "feedback", "rating")  # user_rating: what `POST /v1/feedback` stores
JUDGE_PREFIX = "judge/"  # the online and batch judge store `judge/<metric>`
_WORD = re.compile(r"[a-z0-9_]+")


@dataclass
class TracedAnswer:
    """What the golden set needs from one trace."""

    trace_id: str
    timestamp_ms: int
    question: str
    answer: str
    repo_filter: list[str]
    citation_valid: float | None
    cited: list[dict[str, Any]]
    error: bool = False
    scores: dict[str, Any] = field(default_factory=dict)  # assessments and tags by name


@dataclass
class GoldenReport:
    path: str
    read: int
    kept: int
    dropped: dict[str, int]
    skipped: dict[str, int] = field(default_factory=dict)  # traces that are not codesense answers, by reason
    langfuse_dataset: str | None = None
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "read": self.read, "kept": self.kept, "dropped": self.dropped, "skipped": self.skipped,
                "langfuse_dataset": self.langfuse_dataset, "run_id": self.run_id}


# --- selection (pure) ------------------------------------------------------------------------------------
def _feedback(scores: dict[str, Any]) -> bool | None:
    """True (positive), False (negative) or None (no feedback) from the first feedback-like score."""
    for name in FEEDBACK_NAMES:
        if name in scores:
            v = scores[name]
            if isinstance(v, bool):
                return v
            if isinstance(v, (int, float)):
                return v > 0
            text = str(v).strip().lower()
            if text in ("positive", "up", "thumbs_up", "good", "true", "1", "yes"):
                return True
            if text in ("negative", "down", "thumbs_down", "bad", "false", "0", "-1", "no"):
                return False
    return None


def _judge_score(scores: dict[str, Any], names: list[str]) -> float | None:
    for name in names:
        for key in (name, JUDGE_PREFIX + name):
            if key in scores:
                try:
                    return float(scores[key])
                except (TypeError, ValueError):
                    continue
    return None


def rejection_reason(t: TracedAnswer, rule: GoldenConfig) -> str | None:
    """Why a trace is not golden (None: keep it)."""
    if t.error or not t.answer:
        return "error"
    if not t.cited:
        return "no_citation"
    if t.citation_valid is None or t.citation_valid < rule.min_citation_valid:
        return "invalid_citation"
    feedback = _feedback(t.scores)
    if feedback is False:
        return "negative_feedback"
    if rule.require_positive_feedback and feedback is not True:
        return "no_positive_feedback"
    if rule.min_judge_score is not None:
        score = _judge_score(t.scores, rule.judge_score_names)
        if score is None:
            return "no_judge_score"
        if score < rule.min_judge_score:
            return "low_judge_score"
    return None


def word_set(question: str) -> frozenset[str]:
    return frozenset(_WORD.findall(question.lower()))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def select_golden(traces: list[TracedAnswer], rule: GoldenConfig) -> tuple[list[TracedAnswer], Counter[str]]:
    """The kept traces (newest first, near-duplicates removed) and the drop counts by reason."""
    dropped: Counter[str] = Counter()
    kept: list[TracedAnswer] = []
    seen: list[frozenset[str]] = []
    for t in sorted(traces, key=lambda t: t.timestamp_ms, reverse=True):
        reason = rejection_reason(t, rule)
        if reason is None:
            words = word_set(t.question)
            if any(jaccard(words, s) >= rule.dedup_threshold for s in seen):
                reason = "near_duplicate"
            else:
                seen.append(words)
        if reason:
            dropped[reason] += 1
        else:
            kept.append(t)
    return kept, dropped


def to_eval_row(t: TracedAnswer) -> dict[str, Any]:
    """The evaluation contract line: gold = the cited files and lines (of the first cited repository)."""
    repo = t.repo_filter[0] if len(t.repo_filter) == 1 else t.cited[0]["repo"]
    gold, seen = [], set()
    for c in t.cited:
        key = (c["path"], c["start_line"], c["end_line"])
        if c.get("repo", repo) == repo and key not in seen:
            seen.add(key)
            gold.append({"path": c["path"], "start_line": c["start_line"], "end_line": c["end_line"]})
    return {"id": t.trace_id, "question": t.question, "repo": repo, "gold": gold, "answer": t.answer}


# --- reading MLflow traces -------------------------------------------------------------------------------
def _attr(span: Any, name: str) -> Any:
    value = span.attributes.get(name) if hasattr(span, "attributes") else None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def traced_answer(trace: Any) -> TracedAnswer | None:
    """A `TracedAnswer` from an MLflow `Trace` written by the answerer (None for other traces)."""
    spans = trace.data.spans
    root = next((s for s in spans if s.parent_id is None), None)
    if root is None or root.name != "ask":
        return None
    inputs = root.inputs or {}
    outputs = root.outputs or {}
    scores: dict[str, Any] = dict(trace.info.tags or {})
    for a in getattr(trace.info, "assessments", None) or []:
        value = getattr(a, "value", None)
        if value is None and getattr(a, "feedback", None) is not None:
            value = a.feedback.value
        scores[a.name] = value
    status = str(getattr(trace.info, "state", None) or getattr(trace.info, "status", "")).upper()
    return TracedAnswer(
        trace_id=trace.info.trace_id,
        timestamp_ms=int(getattr(trace.info, "request_time", None) or getattr(trace.info, "timestamp_ms", 0) or 0),
        question=str(inputs.get("question") or ""),
        answer=str(outputs.get("answer") or "") if isinstance(outputs, dict) else str(outputs),
        repo_filter=list(inputs.get("repo") or []),
        citation_valid=_attr(root, "citation_valid"),
        cited=list(_attr(root, "cited") or []),
        error="ERROR" in status or bool(_attr(root, "error")),
        scores=scores,
    )


def read_mlflow_traces(tracking_uri: str, experiment: str, limit: int) -> list[TracedAnswer]:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    mlflow.set_tracking_uri(tracking_uri)
    traces = mlflow.search_traces(locations=[exp.experiment_id], max_results=limit, order_by=["timestamp_ms DESC"], return_type="list")
    return [t for t in (traced_answer(tr) for tr in traces) if t is not None]


# --- reading Langfuse traces -----------------------------------------------------------------------------
def traced_answer_from_langfuse(trace: Any) -> TracedAnswer:
    """A `TracedAnswer` from a `LangfuseTrace`: root input/output/metadata as the tracer wrote them, scores by name."""
    outputs, meta = trace.outputs, trace.metadata
    return TracedAnswer(
        trace_id=trace.trace_id,
        timestamp_ms=int(trace.timestamp * 1000),
        question=str(trace.inputs.get("question") or ""),
        answer=str(outputs.get("answer") or "") if isinstance(outputs, dict) else str(outputs or ""),
        repo_filter=list(trace.inputs.get("repo") or []),
        citation_valid=meta.get("citation_valid"),
        cited=list(meta.get("cited") or []),
        error=trace.error is not None,
        scores={s.name: s.value for s in trace.scores},
    )


def read_langfuse_traces(cfg, limit: int) -> tuple[list[TracedAnswer], dict[str, int]]:
    """The newest `limit` codesense traces in Langfuse, and the count of other traces skipped by reason."""
    import time

    from codesense_ray.monitoring.langfuse_traces import LangfuseTraceReader

    reader = LangfuseTraceReader.from_config(cfg)
    traces = reader.traces(since=0.0, until=time.time() + 1, limit=limit)
    return [traced_answer_from_langfuse(t) for t in traces], dict(reader.skipped)


def write_langfuse_dataset(cfg, name: str, kept: list[TracedAnswer], rule: GoldenConfig) -> str:
    """The kept answers as the Langfuse Dataset `name`: input = question and repository, expected output = the answer
    and its gold lines, linked to the source trace. Item ids derive from (dataset, trace): a re-run updates, never duplicates."""
    import uuid

    from codesense_ray.answering.tracing import open_langfuse
    from codesense_ray.monitoring.langfuse_traces import call_langfuse, langfuse_settings

    host, public_key, secret_key = langfuse_settings(cfg, "the golden dataset")
    client = open_langfuse(host, public_key, secret_key)
    call_langfuse(host, f"creating dataset {name!r}", client.create_dataset, name=name, description="codesense golden set: answered requests kept by training.golden",
                  metadata={"source": "codesense dataset golden", "min_citation_valid": rule.min_citation_valid, "min_judge_score": rule.min_judge_score,
                            "require_positive_feedback": rule.require_positive_feedback})
    for t in kept:
        row = to_eval_row(t)
        call_langfuse(host, f"creating an item of dataset {name!r}", client.create_dataset_item, dataset_name=name,
                      id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"codesense-golden/{name}/{t.trace_id}")),
                      input={"question": row["question"], "repo": row["repo"]}, expected_output={"answer": row["answer"], "gold": row["gold"]},
                      metadata={"citation_valid": t.citation_valid}, source_trace_id=t.trace_id)
    return name


def build_golden_set(cfg, *, name: str | None = None, limit: int | None = None) -> GoldenReport:
    """`codesense dataset golden`: read traces, select, write `data/golden/<name>.jsonl` (and, on Langfuse, a Langfuse
    Dataset of that name), log counts to MLflow."""
    from codesense_ray.config.answering import resolve_mlflow_uri
    from codesense_ray.config.training import training_config

    rule = training_config(cfg).golden
    backend = cfg.tracing.backend
    skipped: dict[str, int] = {}
    if backend == "langfuse":
        traces, skipped = read_langfuse_traces(cfg, limit or rule.max_traces)
    elif backend == "mlflow":
        uri = resolve_mlflow_uri(cfg.tracing.mlflow_tracking_uri, cfg.home)
        traces = read_mlflow_traces(uri, rule.experiment or cfg.tracing.experiment, limit or rule.max_traces)
    else:
        raise InvalidConfig(f"tracing.backend: `{backend}` records no traces; `dataset golden` reads mlflow or langfuse traces")
    kept, dropped = select_golden(traces, rule)
    set_name = name or rule.name
    path = cfg.resolve_path(rule.output_dir) / f"{set_name}.jsonl"
    write_jsonl(path, [to_eval_row(t) for t in kept])
    report = GoldenReport(str(path), len(traces), len(kept), dict(dropped), skipped=skipped)
    if backend == "langfuse":
        report.langfuse_dataset = write_langfuse_dataset(cfg, set_name, kept, rule)
    log.info("golden set %s: kept %d of %d traces; dropped %s; Langfuse dataset %s", path, len(kept), len(traces), dict(dropped), report.langfuse_dataset)
    report.run_id = _log_golden(cfg, path, report)
    return report


def _log_golden(cfg, path: Path, report: GoldenReport) -> str | None:
    from codesense_ray.training.registry import StudentRegistry, ensure_experiment

    registry = StudentRegistry.from_config(cfg)
    exp_id = ensure_experiment(registry.client, registry.tracking_uri, registry.experiment)
    run = registry.client.create_run(exp_id, run_name=f"golden-{path.stem}", tags={"codesense.stage": "golden"})
    rid = run.info.run_id
    registry.client.log_metric(rid, "traces_read", report.read)
    registry.client.log_metric(rid, "kept", report.kept)
    for reason, n in report.dropped.items():
        registry.client.log_metric(rid, f"dropped_{reason}", n)
    if report.langfuse_dataset:
        registry.client.set_tag(rid, "langfuse_dataset", report.langfuse_dataset)
    registry.client.log_artifact(rid, str(path))
    registry.client.set_terminated(rid)
    return rid
