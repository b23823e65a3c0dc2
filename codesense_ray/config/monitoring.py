"""Configuration of production monitoring: feedback, the online judge, query drift, the report.

Lives in `codesense.yaml` under `monitoring:`. Example (production: feedback as Langfuse scores, a tenth of the
answers judged by a self-hosted judge, drift checked nightly by a CronJob that pushes its gauges)::

    monitoring:
      feedback_backend: langfuse          # follows tracing.backend when unset
      judge_sample_rate: 0.1              # the judge itself is evaluation.judge
      drift:
        window: 7d
        reference: 28d
        max_p_value: 0.01
      pushgateway_url: http://prometheus-pushgateway.monitoring.svc:9091

Every threshold here is an alerting rule for data: crossing one makes `codesense monitor drift` exit 1, so a
scheduled job fails and the usual "job failed" alert fires.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MONITORING_EXPERIMENT = "codesense-monitoring"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """`"7d"` → 7 days. Units: s, m, h, d, w. Raises ValueError naming the accepted form."""
    m = _DURATION.match(str(text))
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"expected a positive duration like 30m, 12h, 7d or 2w, got {text!r}")
    return timedelta(seconds=float(m.group(1)) * _UNIT_SECONDS[m.group(2)])


class _Section(BaseModel):
    # Unknown keys are errors: a typo in YAML must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid")


class DriftConfig(_Section):
    """`codesense monitor drift`: which windows are compared and where the alerting thresholds sit.

    Drift is configuration drift for data: the index and the model were built (and evaluated) for the questions
    people asked then; when today's questions move away from that, quality can drop with every dashboard green.
    """

    window: str = Field("7d", description="Recent window of questions (`--window` overrides): 30m, 12h, 7d, 2w.")
    reference: str = Field(
        "28d", description="Reference window, immediately before the recent one: the questions the system was last known good on."
    )
    min_queries: int = Field(
        20, ge=2, description="Fewer questions than this in either window: the test is not run (reported as `insufficient_data`, exit 0)."
    )
    max_queries: int = Field(
        2000, ge=10, description="Each window is subsampled (seeded) to at most this many questions; the permutation test is O(n²) in memory."
    )
    permutations: int = Field(500, ge=50, description="Permutations of the MMD test; the smallest reachable p-value is 1/(permutations+1).")
    max_p_value: float = Field(
        0.01, gt=0, lt=1, description="Significance level of every test: embedding drift is flagged when the MMD permutation p-value is at or below this (false-alarm rate per run); retrieval-side shifts must also be significant at this level."
    )
    max_classifier_auc: float = Field(
        0.75, gt=0.5, le=1, description="Also flagged when a classifier tells recent from reference questions with a cross-validated AUC above this."
    )
    max_top_score_shift: float = Field(
        0.25, gt=0, le=1, description="Flag when the KS statistic between the windows' top retrieval scores exceeds this (and its p-value is at or below `max_p_value`)."
    )
    max_repo_shift: float = Field(
        0.3, gt=0, le=1, description="Flag when the total-variation distance between the windows' repository mixes exceeds this (and a chi-square test agrees at `max_p_value`)."
    )
    max_no_answer_increase: float = Field(
        0.1, gt=0, le=1, description="Flag when the share of answers without a verified source rose by more than this (absolute; a two-proportion test agrees at `max_p_value`)."
    )
    seed: int = Field(0, description="Seed of subsampling, permutations and the classifier's folds: the same data gives the same verdict.")

    @field_validator("window", "reference")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class MonitoringConfig(_Section):
    """Production monitoring and the feedback loop: user ratings on traces, the sampled online judge, drift, the report."""

    feedback_backend: Literal["mlflow", "langfuse"] | None = Field(
        None,
        description="Where `POST /v1/feedback` stores ratings: `mlflow` (assessments on the MLflow trace) or `langfuse` (scores on "
        "the Langfuse trace). Unset: the `tracing.backend` (feedback lives on the trace it rates).",
    )
    judge_sample_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of answered requests judged in the background by `evaluation.judge` (synthetic monitoring). 0: off. Each "
        "judged answer costs several judge calls; the request never waits for them.",
    )
    judge_metrics: list[Literal["faithfulness", "answer_relevancy", "citation_format", "no_hallucination"]] = Field(
        default_factory=lambda: ["faithfulness", "answer_relevancy", "citation_format"],
        description="Judged metrics written back onto traces (as `judge/<metric>`) and exported as `codesense_judge_score`.",
    )
    judge_queue_size: int = Field(
        32, ge=1, description="Answers waiting for the online judge; beyond this new samples are dropped (counted) instead of piling up."
    )
    experiment: str = Field(MONITORING_EXPERIMENT, description="MLflow experiment of drift and judge batch runs (kept apart from traces and evals).")
    output_dir: str | None = Field(None, description="Where drift and monitoring reports are written; unset: `$CODESENSE_HOME/monitoring/`.")
    report_days: int = Field(7, ge=1, description="Days covered by `codesense monitor report` unless `--days` says otherwise.")
    pushgateway_url: str | None = Field(
        None,
        description="Prometheus Pushgateway the batch commands (`monitor drift`, `monitor judge`) push their gauges to, e.g. "
        "`http://pushgateway:9091`. Unset: gauges are only exposed by the Serve app's `/metrics` (read from the last MLflow run).",
    )
    state_refresh_s: float = Field(
        60.0, ge=0, description="How long the Serve app caches the drift and freshness gauges between scrapes (0: every scrape)."
    )
    drift: DriftConfig = Field(default_factory=DriftConfig, description="`codesense monitor drift`: windows and thresholds.")


def monitoring_config(cfg) -> MonitoringConfig:
    """`cfg.monitoring` when the config has that section, else the defaults."""
    return getattr(cfg, "monitoring", None) or MonitoringConfig()
