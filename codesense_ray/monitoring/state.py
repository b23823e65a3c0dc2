"""State behind the scrape-time gauges: the last drift run (MLflow) and index freshness (live index metadata vs
the refs the configuration and the last converge resolve to, and the commit history converge recorded — how many
commits the index is behind).

A batch job (`codesense monitor drift`, a CronJob in production) writes its verdict to MLflow; the Serve app reads
the newest one when Prometheus scrapes — the job's result outlives the job's pod, like a textfile collector.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

log = logging.getLogger(__name__)

DRIFT_RUN_TAG = "codesense.monitor"
DRIFT_SIGNAL_PREFIX = "drift."


def latest_drift_metrics(tracking_uri: str, experiment: str) -> dict[str, Any] | None:
    """The newest drift run's verdict as `{"scores", "p_value", "drift", "finished_at"}`; None when there is none."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{DRIFT_RUN_TAG}` = 'drift'", order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        return None
    m = runs[0].data.metrics
    return {
        "scores": {k.removeprefix(DRIFT_SIGNAL_PREFIX): v for k, v in m.items() if k.startswith(DRIFT_SIGNAL_PREFIX)},
        "p_value": m.get("p_value"),
        "drift": bool(m.get("drift_detected")),
        "finished_at": m.get("finished_at"),
    }


def _repositories(cfg: Any) -> list[Any]:
    from codesense_ray.sources.repositories import resolve_repositories

    try:
        return resolve_repositories(cfg)
    except Exception as exc:  # noqa: BLE001 - freshness is best effort; the index gauges still export
        log.warning("cannot resolve repository refs for freshness: %s", exc)
        return []


def current_refs(cfg: Any) -> dict[str, str | None]:
    """Per repository, the ref indexing would use now: the pinned `ref`, the SHA of the last converge, or the work tree's HEAD."""
    return {info.id: info.ref for info in _repositories(cfg)}


def converged_histories(cfg: Any) -> dict[str, list[str]]:
    """Per converged repository, the commits its last converge recorded (the snapshot's first, then its ancestors)."""
    from codesense_ray.sources.repositories import read_ref_history

    return {info.id: history for info in _repositories(cfg) if info.path is not None and (history := read_ref_history(info.path))}


def read_monitoring_state(cfg: Any, index_metadata: Callable[[], dict] | None) -> dict[str, list]:
    """`{gauge name: [(labels, value)]}` for `MonitoringStateCollector`."""
    from codesense_ray.config.answering import resolve_mlflow_uri
    from codesense_ray.monitoring.metrics import drift_gauge_values, freshness_gauge_values
    from codesense_ray.config.monitoring import monitoring_config

    values: dict[str, list] = {}
    if index_metadata is not None:
        values |= freshness_gauge_values(index_metadata() or {}, current_refs(cfg), histories=converged_histories(cfg))
    uri = resolve_mlflow_uri(cfg.evaluation.mlflow_tracking_uri or cfg.tracing.mlflow_tracking_uri, cfg.home)
    drift = latest_drift_metrics(uri, monitoring_config(cfg).experiment)
    if drift is not None:
        values |= drift_gauge_values(drift)
    return values
