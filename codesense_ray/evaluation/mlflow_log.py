"""One MLflow run per evaluation: what was measured (params), the numbers (metrics), the evidence (artifacts).

Like a CI build record: params pin what ran (config hash, models, prompt version, dataset hash, cut-offs),
metrics are the results, artifacts are the per-question results and plots. Compare runs side by side in
`mlflow ui --backend-store-uri sqlite:///.codesense/mlflow.db`.

MLflow metric names cannot contain `@`, so `file_hit@5` is logged as `file_hit_at_5` (`mlflow_metric_name`).
The hit@k curve is also logged as the stepped metric `file_hit_curve` (step = k).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from codesense_ray.evaluation.metrics import mlflow_metric_name

ARTIFACT_DIR = "evaluation"


def config_hash(cfg) -> str:
    """sha256 of the effective configuration (defaults included), so two runs with equal hashes ran the same setup."""
    data = cfg.model_dump(mode="json") if hasattr(cfg, "model_dump") else cfg
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def run_params(cfg, report, retriever=None) -> dict[str, str]:
    """The MLflow params of a run (all strings, as MLflow stores them)."""
    from codesense_ray.config.evaluation import evaluation_config

    gen = cfg.generator
    generator_model = gen.model or (gen.local_model if gen.backend == "local" else None) or "-"
    if report.prompt:
        prompt_name, prompt_version = str(report.prompt.get("name")), str(report.prompt.get("version"))
    else:
        prompt_name, prompt_version = cfg.prompts.name, "unused (retrieval-only)"
    judge = evaluation_config(cfg).judge
    collection = None
    try:
        collection = retriever.store.live_collection() if retriever is not None else None
    except Exception:  # noqa: BLE001 - a param, not worth failing the run over
        collection = None
    return {
        "config_hash": config_hash(cfg),
        "embedding_model": cfg.embedding.model,
        "generator_backend": gen.backend,
        "generator_model": generator_model,
        "prompt_name": prompt_name,
        "prompt_version": prompt_version,
        "dataset_path": str(report.dataset.path),
        "dataset_sha256": report.dataset.sha256,
        "dataset_questions": str(len(report.dataset)),
        "ks": ",".join(str(k) for k in report.ks),
        "depth": str(report.depth),
        "mode": report.mode,
        "index_collection": str(collection or "-"),
        "judge": report.judge.model or ("none" if report.judge.status != "ok" else judge.backend),
    }


def _artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Beside the SQLite file (MLflow's own default is `./mlruns` of whatever directory the command ran in)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(unquote(urlparse(tracking_uri).path))
    return (db.parent / "mlartifacts" / experiment).resolve().as_uri()


def log_evaluation(report, out_dir: Path, *, params: dict[str, str], tracking_uri: str, experiment: str, client=None) -> dict[str, Any]:
    """Create a finished MLflow run for `report`: params, metrics, and every file in `out_dir` as artifacts
    (under `evaluation/`). Returns the run id, experiment id and tracking URI."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    for name in ("alembic", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)
    client = client or MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    experiment_id = exp.experiment_id if exp is not None else client.create_experiment(experiment, artifact_location=_artifact_location(tracking_uri, experiment))
    run_name = f"{report.dataset.name}-{report.mode}"
    run = client.create_run(experiment_id, run_name=run_name, tags={"codesense.dataset": report.dataset.name, "codesense.mode": report.mode})
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        metrics = [Metric(mlflow_metric_name(k), float(v), now, 0) for k, v in report.metrics.items() if v is not None]
        metrics += [Metric(k, float(v), now, 0) for k, v in report.counts.items()]
        metrics += [Metric("file_hit_curve", float(v), now, k) for k, v in enumerate(report.hit_curve, start=1)]
        tags = [RunTag("codesense.judge", report.judge.status), RunTag("mlflow.note.content", _note(report))]
        client.log_batch(run_id, metrics=metrics, params=[Param(k, v) for k, v in params.items()], tags=tags)
        client.log_artifacts(run_id, str(out_dir), artifact_path=ARTIFACT_DIR)
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return {"run_id": run_id, "experiment_id": experiment_id, "experiment": experiment, "tracking_uri": tracking_uri, "run_name": run_name}


def _note(report) -> str:
    """The run description shown in the MLflow UI."""
    shown = {k: v for k, v in report.metrics.items() if v is not None and not k.startswith("file_all")}
    body = ", ".join(f"{k}={v:.3f}" for k, v in list(shown.items())[:8])
    return f"codesense eval of {report.dataset.name} ({report.mode}, {len(report.dataset)} questions): {body}"
