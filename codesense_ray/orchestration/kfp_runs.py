"""Running the `codesense-rag` pipeline: locally with KFP's local runner, or on a schedule in Kubeflow.

- `run_pipeline_locally`: the whole DAG on this machine — `kfp.local.SubprocessRunner` runs each component
  in a subprocess, each component submits its Ray job to a local head (started for the run and stopped
  afterwards when no address is given). Same components, same jobs as on the cluster; only the backend
  (`ray-jobs`) and the addresses differ.
- `schedule_pipeline`: a nightly re-index as a KFP recurring run (think GitLab scheduled pipeline): compile,
  upload the pipeline (a new version only when the compiled spec changed), ensure the experiment, and
  create the recurring run — replacing one with the same name. The cron is validated before any call.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, TextIO

from codesense_ray.config import Config
from codesense_ray.errors import InvalidConfig
from codesense_ray.orchestration.cron import to_kfp_cron
from codesense_ray.errors import PipelineFailed, ServiceError, ServiceUnreachable
from codesense_ray.orchestration.jobs import probe_tcp
from codesense_ray.config.orchestration import JobsConfig, PipelineConfig, section
from codesense_ray.orchestration.submission import source_root


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _with_source_on_path() -> dict[str, str]:
    """Env for component subprocesses: they `import codesense_ray` / `kfp_wrappers` from this source tree."""
    root = source_root()
    if root is None:
        return {}
    current = os.environ.get("PYTHONPATH", "")
    parts = [str(root), *[p for p in current.split(os.pathsep) if p and p != str(root)]]
    return {"PYTHONPATH": os.pathsep.join(parts)}


@contextlib.contextmanager
def _patched_env(values: dict[str, str]):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_pipeline_locally(
    cfg: Config,
    config_file: str | Path,
    *,
    ray_address: str | None = None,
    eval_dataset: str = "",
    full: bool = False,
    log: TextIO | None = None,
    build_pipeline: Callable[[PipelineConfig], Any],
) -> dict[str, Any]:
    """Run `codesense-rag` with the KFP local runner against a Ray head; returns the index step's output.

    `build_pipeline(pipeline_config)` returns the KFP pipeline function (the caller passes
    `kfp_wrappers.pipeline.build_pipeline`: the library never imports the outer KFP wrappers).

    Without `ray_address` a private head is started (own ports and temp dir) and stopped afterwards;
    with one, that head is used and left running. Task logs go to `log` (default stderr), so `--json`
    keeps stdout for the result. Raises `PipelineFailed` when a task fails (its log above says why).
    """
    from kfp import local

    from codesense_ray.orchestration.local_ray import LocalRayHead

    pcfg = section(cfg, "pipeline", PipelineConfig)
    log = log or sys.stderr
    config_file = str(Path(config_file).resolve())
    head = None
    try:
        if not ray_address:
            print("starting a local Ray head for this run ...", file=log, flush=True)
            head = LocalRayHead(num_cpus=cfg.ray.num_cpus).start()
            ray_address = head.dashboard_url
            print(f"Ray dashboard: {ray_address}", file=log, flush=True)
        root = cfg.home / "kfp-local"
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root / "outputs"), raise_on_error=True)
        pipeline = build_pipeline(pcfg)
        with _patched_env(_with_source_on_path()), contextlib.redirect_stdout(log), warnings.catch_warnings():
            # The runner warns that our image name has no "python" in it (locally the "image" is this venv) and
            # that display names, secrets and images are cluster-only settings: expected here, not news.
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", UserWarning)
            try:
                task = pipeline(config=config_file, backend="ray-jobs", ray_address=ray_address, eval_dataset=eval_dataset, full_reindex=full)
            except RuntimeError as err:
                reason = _ANSI.sub("", str(err)).strip().splitlines()[0]
                raise PipelineFailed(f"pipeline {pcfg.name} failed: {reason} (its log is above)") from None
        output = _restore_ints(getattr(task, "output", None))
        return {"pipeline": pcfg.name, "ray_address": ray_address, "started_head": head is not None, "index": output}
    finally:
        if head is not None:
            head.stop()


def _restore_ints(value: Any) -> Any:
    """KFP passes dict outputs as protobuf Structs, where every number is a double: give counts back their int type."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _restore_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_ints(v) for v in value]
    return value


def _kfp_errors(what: str):
    """Context manager turning kfp_server_api / urllib3 failures into one-line codesense errors."""

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except (InvalidConfig, ServiceError, ServiceUnreachable):
            raise
        except Exception as err:
            status = getattr(err, "status", None)
            if status is not None and hasattr(err, "body"):
                body = getattr(err, "body", "") or ""
                try:
                    message = json.loads(body).get("message") or json.loads(body).get("error") or body
                except (ValueError, AttributeError):
                    message = body or getattr(err, "reason", "")
                raise ServiceError(f"KFP API refused to {what}: {status} {str(message).strip()[:300]}") from None
            text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ServiceUnreachable(f"KFP API failed to {what}: {text}") from None

    return guard()


def _display_name_filter(name: str) -> str:
    return json.dumps({"predicates": [{"operation": 1, "key": "display_name", "stringValue": name}]})


def schedule_pipeline(
    cfg: Config,
    cron: str | None = None,
    *,
    host: str | None = None,
    experiment: str | None = None,
    connect_timeout_s: float | None = None,
    client_factory: Callable[..., Any] | None = None,
    compile_pipeline: Callable[[Path, PipelineConfig], Path],
) -> dict[str, Any]:
    """Create (or replace) the recurring run of `codesense-rag` on KFP. Returns the ids involved.

    `compile_pipeline(path, pipeline_config)` writes the pipeline package (the caller passes
    `kfp_wrappers.compile.compile_pipeline`).

    Raises `InvalidSchedule` for a bad cron before any network call, `ServiceUnreachable` when the KFP API
    does not accept a connection within the bounded timeout, `ServiceError` when it refuses a request.
    """
    pcfg = section(cfg, "pipeline", PipelineConfig)
    kfp_cron = to_kfp_cron(cron or pcfg.schedule or "")
    host = (host or pcfg.host or "").rstrip("/")
    if not host:
        raise InvalidConfig("no KFP endpoint: set pipeline.host in codesense.yaml or pass --host")
    experiment_name = experiment or pcfg.experiment
    timeout = connect_timeout_s or section(cfg, "jobs", JobsConfig).connect_timeout_s
    probe_tcp(host if "://" in host else f"https://{host}", timeout, ServiceUnreachable, "KFP API", "check pipeline.host / --host")

    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
        warnings.simplefilter("ignore", FutureWarning)  # "This client only works with KFP v2.0.0-beta.2 and later"
        package = Path(compile_pipeline(Path(tmp) / f"{pcfg.name}.yaml", pcfg))
        version_name = f"{pcfg.name}-{hashlib.sha256(package.read_bytes()).hexdigest()[:12]}"
        with _kfp_errors(f"connect to {host}"):
            if client_factory is None:
                import kfp

                client_factory = kfp.Client
            kwargs = {"namespace": pcfg.namespace} if pcfg.namespace else {}
            client = client_factory(host=host, **kwargs)
        with _kfp_errors(f"ensure experiment {experiment_name!r}"):
            exp = client.create_experiment(experiment_name, namespace=pcfg.namespace)
        with _kfp_errors(f"upload pipeline {pcfg.name!r}"):
            pipeline_id, version_id, uploaded = _ensure_pipeline_version(client, package, pcfg, version_name)
        replaced = []
        with _kfp_errors(f"replace recurring run {pcfg.recurring_run_name!r}"):
            existing = client.list_recurring_runs(
                experiment_id=exp.experiment_id, page_size=100, filter=_display_name_filter(pcfg.recurring_run_name)
            )
            for rr in existing.recurring_runs or []:
                if rr.display_name == pcfg.recurring_run_name:
                    client.delete_recurring_run(rr.recurring_run_id)
                    replaced.append(rr.recurring_run_id)
        with _kfp_errors("create the recurring run"):
            run = client.create_recurring_run(
                experiment_id=exp.experiment_id,
                job_name=pcfg.recurring_run_name,
                description=f"{pcfg.name} on cron {kfp_cron}",
                cron_expression=kfp_cron,
                max_concurrency=pcfg.max_concurrency,
                no_catchup=pcfg.no_catchup,
                pipeline_id=pipeline_id,
                version_id=version_id,
                enabled=True,
                service_account=pcfg.service_account,
            )
    return {
        "host": host,
        "cron": kfp_cron,
        "experiment_id": exp.experiment_id,
        "pipeline_id": pipeline_id,
        "pipeline_version_id": version_id,
        "pipeline_version_uploaded": uploaded,
        "recurring_run_id": run.recurring_run_id,
        "replaced": replaced,
    }


def _ensure_pipeline_version(client: Any, package: Path, pcfg: PipelineConfig, version_name: str) -> tuple[str, str, bool]:
    """(pipeline id, version id, uploaded?) — one version per distinct compiled spec, named by its hash.

    A missing pipeline is created empty (the generated `client.pipelines` API) so that its first version
    carries the hash name too; re-scheduling an unchanged pipeline then uploads nothing.
    """
    pipeline_id = client.get_pipeline_id(pcfg.name)
    if pipeline_id is None:
        import kfp_server_api

        body = kfp_server_api.V2beta1Pipeline(display_name=pcfg.name, description="codesense: converge → index → evaluate as Ray jobs", namespace=pcfg.namespace)
        pipeline_id = client.pipelines.pipeline_service_create_pipeline(pipeline=body).pipeline_id
    found = client.list_pipeline_versions(pipeline_id, page_size=100, filter=_display_name_filter(version_name)).pipeline_versions or []
    for version in found:
        if version.display_name == version_name:
            return pipeline_id, version.pipeline_version_id, False
    version = client.upload_pipeline_version(str(package), version_name, pipeline_id=pipeline_id)
    return pipeline_id, version.pipeline_version_id, True
