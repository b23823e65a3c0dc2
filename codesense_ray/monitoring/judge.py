"""The online judge — synthetic monitoring for answer quality — and its batch twin `codesense monitor judge`.

A blackbox probe checks that the service answers; the online judge checks that it answers *well*: a sampled
share of real answers (`monitoring.judge_sample_rate`) is graded by the configured judge (`evaluation.judge`,
DeepEval faithfulness / answer relevancy / the citation-format criterion). Grading happens on a background
thread with a bounded queue, never on the request path: a slow or failing judge drops samples (counted in
`codesense_judge_samples_total{status="dropped"}`) instead of slowing users down. Scores are written back onto
the trace (`judge/<metric>`) and observed in `codesense_judge_score{metric}`.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from typing import Any, Callable

log = logging.getLogger("codesense.monitoring.judge")


def build_suite(cfg: Any):
    """A DeepEval `JudgeSuite` over `evaluation.judge` with the metrics in `monitoring.judge_metrics`."""
    from codesense_ray.errors import InvalidConfig
    from codesense_ray.config.monitoring import monitoring_config

    jcfg = cfg.evaluation.judge
    if jcfg.backend == "none":
        raise InvalidConfig("evaluation.judge.backend is `none`: set a judge (openai or gemini) to use the online or batch judge")
    from codesense_ray.evaluation.deepeval_metrics import JudgeSuite, build_judge_model

    return JudgeSuite(build_judge_model(jcfg, cfg.home), monitoring_config(cfg).judge_metrics)


def _record_with_retry(store: Any, trace_id: str, results: dict, model: str, attempts: int = 20, delay_s: float = 0.5) -> None:
    """Traces are exported asynchronously by some backends: the trace may land a moment after the answer."""
    for i in range(attempts):
        try:
            store.record_scores(trace_id, results, model)
            return
        except Exception:  # noqa: BLE001 - retried, then re-raised
            if i == attempts - 1:
                raise
            time.sleep(delay_s)


class OnlineJudge:
    """Samples answers and grades them on one daemon thread. `offer` never blocks."""

    def __init__(self, suite_factory: Callable[[], Any], store: Any, metrics: Any, sample_rate: float, queue_size: int = 32,
                 rng: Callable[[], float] = random.random) -> None:
        self.suite_factory = suite_factory
        self.store = store
        self.metrics = metrics
        self.sample_rate = sample_rate
        self.rng = rng
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._suite = None
        self._thread = threading.Thread(target=self._run, name="codesense-online-judge", daemon=True)
        self._thread.start()

    @classmethod
    def from_config(cls, cfg: Any, metrics: Any, store: Any) -> "OnlineJudge":
        from codesense_ray.config.monitoring import monitoring_config

        mcfg = monitoring_config(cfg)
        build_suite(cfg)  # fail at startup on a bad judge configuration, not on the first sample
        return cls(lambda: build_suite(cfg), store, metrics, mcfg.judge_sample_rate, mcfg.judge_queue_size)

    def offer(self, question: str, answer: Any, contexts: list[str]) -> bool:
        """Queue the answer for grading with probability `sample_rate`; True when queued."""
        if self.rng() >= self.sample_rate:
            return False
        try:
            self._queue.put_nowait((question, answer.answer, answer.trace_id, contexts))
        except queue.Full:
            self.metrics.judge_dropped()
            return False
        return True

    def _run(self) -> None:
        while True:
            question, text, trace_id, contexts = self._queue.get()
            try:
                self.judge_one(question, text, trace_id, contexts)
            except Exception as exc:  # noqa: BLE001 - the judge thread must survive any one failure
                log.warning("online judge failed on trace %s: %s: %s", trace_id, type(exc).__name__, exc)
                self.metrics.judged({})
            finally:
                self._queue.task_done()

    def judge_one(self, question: str, text: str, trace_id: str | None, contexts: list[str]) -> dict[str, dict]:
        if self._suite is None:
            self._suite = self.suite_factory()
        results = self._suite.evaluate(question=question, answer=text, expected=None, contexts=contexts)
        self.metrics.judged({m: r.get("score") for m, r in results.items() if not r.get("skipped")})
        if self.store is not None and trace_id:
            _record_with_retry(self.store, trace_id, results, self._suite.model_name)
        return results

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Block until every queued answer is graded (tests, graceful shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self._queue.unfinished_tasks


def judge_recent(cfg: Any, since: float, sample: float = 1.0, limit: int | None = None, rejudge: bool = False, seed: int = 0) -> dict[str, Any]:
    """`codesense monitor judge`: grade answered traces since `since` (Unix seconds); scores go onto the traces."""
    from codesense_ray.monitoring.feedback import build_feedback_store
    from codesense_ray.monitoring.publish import log_monitoring_run
    from codesense_ray.monitoring.traces import read_records

    suite = build_suite(cfg)
    store = build_feedback_store(cfg)
    records = [r for r in read_records(cfg, since=since) if r.answer and r.error is None and (rejudge or not r.judge)]
    rng = random.Random(seed)
    chosen = [r for r in records if sample >= 1.0 or rng.random() < sample][: limit or None]
    totals: dict[str, list[float]] = {}
    failed = 0
    for r in chosen:
        results = suite.evaluate(question=r.question, answer=r.answer, expected=None, contexts=r.contexts)
        scores = {m: x["score"] for m, x in results.items() if x.get("score") is not None}
        if not scores:
            failed += 1
        for m, v in scores.items():
            totals.setdefault(m, []).append(v)
        store.record_scores(r.trace_id, results, suite.model_name)
    summary = {
        "judge": suite.model_name,
        "candidates": len(records),
        "judged": len(chosen) - failed,
        "failed": failed,
        "mean": {m: sum(v) / len(v) for m, v in totals.items()},
        "traces": [r.trace_id for r in chosen],
    }
    summary["mlflow"] = log_monitoring_run(cfg, "judge", params={"since": since, "sample": sample, "judge": suite.model_name},
                                           metrics={f"judge.{m}": v for m, v in summary["mean"].items()} | {"judged": summary["judged"]})
    return summary
