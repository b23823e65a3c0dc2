"""Where batch monitoring results go: an MLflow run (the record; the Serve app reads gauges from it) and, when
configured, a Prometheus Pushgateway (batch jobs cannot be scraped: they push, as any CronJob would)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def monitoring_tracking_uri(cfg: Any) -> str:
    from codesense_ray.config.answering import resolve_mlflow_uri

    return resolve_mlflow_uri(cfg.evaluation.mlflow_tracking_uri or cfg.tracing.mlflow_tracking_uri, cfg.home)


def log_monitoring_run(cfg: Any, kind: str, params: dict[str, Any], metrics: dict[str, float], artifacts: list[Path] = ()) -> dict[str, str]:
    """One MLflow run tagged `codesense.monitor=<kind>` in `monitoring.experiment`; returns its ids."""
    from mlflow.tracking import MlflowClient

    from codesense_ray.config.answering import mlflow_artifact_location
    from codesense_ray.config.monitoring import monitoring_config
    from codesense_ray.monitoring.state import DRIFT_RUN_TAG

    uri = monitoring_tracking_uri(cfg)
    experiment = monitoring_config(cfg).experiment
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment, artifact_location=mlflow_artifact_location(uri, experiment))
    run = client.create_run(exp_id, tags={DRIFT_RUN_TAG: kind, "mlflow.runName": f"monitor-{kind}"})
    rid = run.info.run_id
    for k, v in params.items():
        client.log_param(rid, k, v if isinstance(v, (str, int, float)) else json.dumps(v, default=str))
    for k, v in metrics.items():
        if v is not None:
            client.log_metric(rid, k, float(v))
    for path in artifacts:
        client.log_artifact(rid, str(path))
    client.set_terminated(rid)
    return {"run_id": rid, "experiment": experiment, "tracking_uri": uri}


def push_gauges(cfg: Any, job: str, values: dict[str, list[tuple[dict[str, str], float]]]) -> str | None:
    """Push gauges (`{name: [(labels, value)]}`) to `monitoring.pushgateway_url`; returns the URL or None when unset.

    A failing push is logged, not fatal: the MLflow run is the record, the push only speeds up alerting.
    """
    from codesense_ray.monitoring.metrics import CATALOGUE
    from codesense_ray.config.monitoring import monitoring_config

    url = monitoring_config(cfg).pushgateway_url
    if not url:
        return None
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    helps = {m.name: m.help for m in CATALOGUE}
    for name, rows in values.items():
        labels = sorted({k for labels, _ in rows for k in labels})
        gauge = Gauge(name, helps.get(name, name), labels, registry=registry)
        for lbls, value in rows:
            (gauge.labels(**lbls) if labels else gauge).set(value)
    try:
        push_to_gateway(url, job=job, registry=registry, timeout=10)
    except Exception as exc:  # noqa: BLE001
        log.warning("push to %s failed: %s: %s", url, type(exc).__name__, exc)
        return None
    return url
