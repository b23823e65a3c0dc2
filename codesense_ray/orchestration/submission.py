"""Pipeline stages as Ray jobs: which entrypoint each stage runs, with which runtime env, on which backend.

The KFP components and `codesense pipeline run` call `run_stage`; it is the one place that knows how a
stage becomes a job, so the local run and the cluster run differ only in configuration:

- `ray-jobs` uploads the codesense source tree as the job's `working_dir` and passes this machine's
  config path and `CODESENSE_HOME` (a head on the same disk); `jobs.config_path` overrides it for remote heads.
- `kuberay` runs the entrypoint inside the codesense image (/app) with `jobs.kuberay.config_path`.

    result = run_stage("index", "codesense.yaml")       # backend from jobs.backend
    result["summary"]["totals"]["chunks_total"]
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, Iterable

import codesense_ray
from codesense_ray.config import Config, load_config
from codesense_ray.errors import InvalidConfig
from codesense_ray.orchestration.jobs import JobBackend, JobSpec, LogSink, make_backend, new_job_id
from codesense_ray.config.orchestration import JOB_BACKENDS, JobsConfig, section

STAGES = {"converge": "jobs/converge.py", "index": "jobs/index.py", "evaluate": "jobs/evaluate.py",
          "golden": "jobs/golden.py", "distill": "jobs/distill.py", "train": "jobs/train.py", "compare": "jobs/compare_models.py"}
"""Stage → Ray job entrypoint script (relative to the job's working directory)."""

UPLOAD_EXCLUDES = ["data/", ".codesense/", ".dvc/", "local_outputs/", "**/__pycache__/", "*.pyc"]
"""Never uploaded with the working_dir: state and data travel through their own stores, not the job package."""


def source_root() -> Path | None:
    """The codesense source tree (the directory holding jobs/ and codesense_ray/), when running from one."""
    root = Path(codesense_ray.__file__).resolve().parent.parent
    return root if (root / "jobs").is_dir() and (root / "codesense_ray").is_dir() else None


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        elif isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = [*out[key], *[v for v in value if v not in out[key]]]
        else:
            out[key] = value
    return out


def stage_spec(
    stage: str,
    cfg: Config,
    config_path: str | Path,
    backend: str,
    jobs: JobsConfig | None = None,
    args: Iterable[str] = (),
    metadata: dict[str, str] | None = None,
) -> JobSpec:
    """The JobSpec that runs `stage` (`converge`, `index`, `evaluate`) for the given backend."""
    if stage not in STAGES:
        raise InvalidConfig(f"unknown stage {stage!r} (known: {', '.join(STAGES)})")
    if backend not in JOB_BACKENDS:
        raise InvalidConfig(f"unknown job backend {backend!r} (known: {', '.join(JOB_BACKENDS)})")
    jobs = jobs or section(cfg, "jobs", JobsConfig)
    if backend == "kuberay":
        job_config = jobs.kuberay.config_path
        runtime_env = _merge({}, {k: v for k, v in jobs.runtime_env.items() if k in ("env_vars", "pip", "uv", "conda", "py_modules")})
    else:
        shared_disk = jobs.config_path is None
        job_config = jobs.config_path or str(Path(config_path).resolve())
        working_dir = str(cfg.resolve_path(jobs.working_dir)) if jobs.working_dir else source_root()
        if working_dir is None:
            raise InvalidConfig("jobs.working_dir is not set and this codesense does not run from a source tree with jobs/")
        runtime_env: dict[str, Any] = {"working_dir": str(working_dir), "excludes": list(UPLOAD_EXCLUDES)}
        if shared_disk:
            # Same disk as the head: the job must see the same state directory as this process.
            runtime_env["env_vars"] = {"CODESENSE_HOME": str(cfg.home)}
        runtime_env = _merge(runtime_env, jobs.runtime_env)
    entrypoint = shlex.join(["python", STAGES[stage], "--config", job_config, "--json", *args])
    meta = {"codesense_stage": stage, **(metadata or {})}
    return JobSpec(name=stage, entrypoint=entrypoint, runtime_env=runtime_env, metadata=meta, submission_id=new_job_id(stage))


def last_json_document(text: str) -> Any | None:
    """The last top-level JSON object in a job's log (what `--json` printed), or None."""
    decoder = json.JSONDecoder()
    lines = text.splitlines(keepends=True)
    offsets = []
    pos = 0
    for line in lines:
        if line.startswith("{"):
            offsets.append(pos)
        pos += len(line)
    for start in reversed(offsets):
        try:
            value, _ = decoder.raw_decode(text[start:])
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def run_stage(
    stage: str,
    config_path: str | Path,
    *,
    backend: str | None = None,
    ray_address: str | None = None,
    args: Iterable[str] = (),
    metadata: dict[str, str] | None = None,
    on_log: LogSink | None = None,
    job_backend: JobBackend | None = None,
) -> dict[str, Any]:
    """Submit `stage` as a Ray job and wait for it. Returns the job result plus the stage's JSON summary.

    Raises `JobFailed` (with the job's last log lines) when the job fails, `RayUnreachable` when the head
    cannot be reached within `jobs.connect_timeout_s`.
    """
    cfg = load_config(config_path)
    jobs = section(cfg, "jobs", JobsConfig)
    name = backend or jobs.backend
    runner = job_backend or make_backend(jobs, name, ray_address=ray_address or None)
    spec = stage_spec(stage, cfg, config_path, name, jobs, args, metadata)
    result = runner.run(spec, on_log)
    report = result.to_dict()
    logs = report.pop("logs")
    return {"stage": stage, **report, "summary": last_json_document(logs)}


def run_stage_in_component(
    stage: str,
    config_path: str,
    backend: str = "",
    ray_address: str = "",
    args: Iterable[str] = (),
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`run_stage` as a KFP component needs it: empty strings mean "from config", the job's log streams to
    the step's stdout, and a codesense error becomes one stderr line plus the error's exit code (the step
    fails with the job's last log lines instead of a Python traceback)."""
    import sys

    from codesense_ray.errors import CodesenseError

    meta = {k: str(v) for k, v in (metadata or {}).items() if v}
    try:
        return run_stage(
            stage,
            config_path,
            backend=backend or None,
            ray_address=ray_address or None,
            args=args,
            metadata=meta,
            on_log=lambda line: print(line, flush=True),
        )
    except CodesenseError as err:
        print(f"codesense: error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(err.exit_code) from None
