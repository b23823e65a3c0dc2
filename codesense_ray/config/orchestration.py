"""Configuration of converge, DVC, job submission and the KFP pipeline: four sections of `codesense.yaml`.

Example (production: S3-compatible DVC remote, RayJobs on KubeRay, a nightly pipeline on deployKF)::

    converge:
      depth: 1
    dvc:
      s3:
        bucket: ml-data
        endpoint_url: https://minio.example.com
        access_key_id_env: MINIO_ACCESS_KEY        # names of env vars, never the keys themselves
        secret_access_key_env: MINIO_SECRET_KEY
    jobs:
      backend: kuberay
      kuberay:
        namespace: codesense
        image: registry.example.com/codesense:0.1.0
        data_volume_claim: codesense-data
        workers:
          - name: gpu-small
            replicas: 2
            gpu: 0.25                               # a time-slice replica of a shared GPU
            node_selector: {nvidia.com/device-plugin.config: gpu-small}
    pipeline:
      host: https://kubeflow.example.com/pipeline
      schedule: "0 0 3 * * *"                       # KFP cron has a seconds field

The embedded default needs none of it: clones land in `data/raw/`, DVC pushes to a local directory
remote, jobs go to a Ray head on `127.0.0.1:8265`, and `codesense pipeline run --local` runs the DAG.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_IMAGE = "codesense:0.1.0"
"""The image built from the repository's Dockerfile; push it to your registry and set the full name."""

JOB_BACKENDS = ("ray-jobs", "kuberay")


class _Section(BaseModel):
    # Unknown keys are errors: a typo in YAML must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid")


def _installed_ray_version() -> str:
    """The Ray version installed here (image and driver must match)."""
    try:
        return metadata.version("ray")
    except metadata.PackageNotFoundError:  # pragma: no cover - ray is a core dependency
        return "2.60.0"


class ConvergeConfig(_Section):
    """How `codesense converge` checks out the `url:` repositories into `data/raw/<id>/`.

    The destination is fixed by the repository contract (`data/raw/<id>/`, where `codesense index` reads
    `url:` entries), so it is not configurable here.
    """

    depth: int = Field(1, ge=0, description="History depth of the clone; 1 is a snapshot (fast, small), 0 fetches full history.")
    history: int = Field(
        100, ge=0, le=10_000,
        description="Commit ids of upstream history recorded with each snapshot (commits only: a `--filter=tree:0` fetch), so monitoring "
        "can count how many commits the index is behind; 0 records none.",
    )
    timeout_s: float = Field(600.0, gt=0, description="Limit for each git command; a repository that exceeds it is reported as failed, the others converge.")
    parallel: int = Field(2, ge=1, le=32, description="Repositories cloned at the same time.")
    prune: bool = Field(
        True, description="Remove directories in `data/raw/` whose repository is no longer in the config (like `terraform apply` removing dropped resources)."
    )


class S3RemoteConfig(_Section):
    """An S3-compatible DVC remote (AWS S3, MinIO, Ceph RGW). Credentials are read from env vars at converge
    time and written to `.dvc/config.local`, which is never committed."""

    bucket: str = Field(..., min_length=1, description="Bucket that holds the DVC cache objects.")
    prefix: str = Field("codesense", description="Key prefix inside the bucket (one prefix per project).")
    endpoint_url: str | None = Field(None, description="S3 API endpoint for non-AWS stores, e.g. `https://minio.example.com`; None means AWS.")
    region: str | None = Field(None, description="Bucket region, e.g. `eu-central-1`.")
    access_key_id_env: str = Field("AWS_ACCESS_KEY_ID", description="Name of the env var holding the access key id.")
    secret_access_key_env: str = Field("AWS_SECRET_ACCESS_KEY", description="Name of the env var holding the secret access key.")
    session_token_env: str | None = Field(None, description="Name of the env var holding a session token (temporary credentials); None: not used.")

    @property
    def url(self) -> str:
        prefix = self.prefix.strip("/")
        return f"s3://{self.bucket}/{prefix}" if prefix else f"s3://{self.bucket}"


class DvcConfig(_Section):
    """Versioning of `data/raw` with DVC: git-lfs with a remote you own."""

    enabled: bool = Field(True, description="False: converge only clones; no `dvc add`/`dvc push`.")
    remote: str = Field("codesense", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Name of the DVC remote converge configures and pushes to.")
    url: str | None = Field(
        None,
        description="Remote location when not S3: a local directory or any DVC URL. Default (no `url`, no `s3`): `$CODESENSE_HOME/dvc-remote`.",
    )
    s3: S3RemoteConfig | None = Field(None, description="S3-compatible remote; mutually exclusive with `url`.")
    push: bool = Field(True, description="Run `dvc push` after `dvc add`; False keeps the new version in the local cache only.")
    timeout_s: float = Field(1800.0, gt=0, description="Limit for each dvc command (push of a large first version can take a while).")

    @model_validator(mode="after")
    def _one_remote(self) -> "DvcConfig":
        if self.url and self.s3:
            raise ValueError("give either `url` or `s3`, not both")
        return self


class WorkerGroupConfig(_Section):
    """One KubeRay worker group: identical pods that join the job's Ray cluster."""

    name: str = Field("cpu", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="Group name (DNS label), e.g. `cpu`, `gpu-small`.")
    replicas: int = Field(1, ge=0, description="Pods started with the cluster.")
    min_replicas: int | None = Field(None, ge=0, description="Autoscaling floor; default: `replicas`.")
    max_replicas: int | None = Field(None, ge=0, description="Autoscaling ceiling; default: `replicas`.")
    cpu: str = Field("4", description="CPU request and limit per pod (Kubernetes quantity); Ray advertises the same number of CPUs.")
    memory: str = Field("8Gi", description="Memory request and limit per pod (Kubernetes quantity).")
    gpu: float = Field(
        0,
        ge=0,
        description="GPUs per pod. 0: CPU only. 1, 2, ...: whole GPUs (exclusive `gpu-standard` nodes). A fraction such as 0.25: one "
        "time-slice replica of a shared card on a time-sliced `gpu-small` node (the GPU Operator advertises N replicas per card, so "
        "the pod gets ~1/N of it); Ray sees one GPU in the pod and actors pack onto it by their own `num_gpus` (e.g. embedding.num_gpus).",
    )
    gpu_resource: str = Field(
        "nvidia.com/gpu", description="Extended resource requested for GPUs; `nvidia.com/gpu.shared` when the time-slicing config renames replicas."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the pods must match, e.g. `{nvidia.com/device-plugin.config: gpu-small}`."
    )
    tolerations: list[dict[str, Any]] = Field(
        default_factory=list, description="Pod tolerations (Kubernetes objects); GPU groups also tolerate the `nvidia.com/gpu` taint automatically."
    )
    ray_start_params: dict[str, str] = Field(default_factory=dict, description="Extra `ray start` flags for these pods (values are strings).")

    @model_validator(mode="after")
    def _check(self) -> "WorkerGroupConfig":
        if self.gpu >= 1 and self.gpu != int(self.gpu):
            raise ValueError(f"`gpu` is {self.gpu}: use a whole number of GPUs, or a fraction below 1 for a time-sliced share")
        lo = self.min_replicas if self.min_replicas is not None else self.replicas
        hi = self.max_replicas if self.max_replicas is not None else self.replicas
        if not lo <= self.replicas <= hi:
            raise ValueError(f"need min_replicas <= replicas <= max_replicas, got {lo} <= {self.replicas} <= {hi}")
        return self


class HeadGroupConfig(_Section):
    """The KubeRay head pod: Ray's control plane (GCS, dashboard, job supervisor)."""

    cpu: str = Field("2", description="CPU request and limit of the head pod.")
    memory: str = Field("8Gi", description="Memory request and limit of the head pod.")
    num_cpus: int | None = Field(
        0, ge=0, description="CPUs Ray may schedule work on in the head; 0 keeps tasks on the workers (the head stays responsive). None: all."
    )
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node labels the head pod must match.")
    tolerations: list[dict[str, Any]] = Field(default_factory=list, description="Head pod tolerations.")
    ray_start_params: dict[str, str] = Field(default_factory=dict, description="Extra `ray start` flags for the head.")


class KubeRayConfig(_Section):
    """`kuberay` backend: each job is a `ray.io/v1` RayJob — a Kubernetes Job that brings its own Ray cluster."""

    namespace: str = Field("codesense", description="Namespace the RayJobs are created in.")
    image: str = Field(DEFAULT_IMAGE, description="Image of head and workers (built from the Dockerfile; code at /app, the job's working directory).")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field("IfNotPresent", description="Pod image pull policy.")
    ray_version: str = Field(default_factory=_installed_ray_version, description="Ray version in the image (KubeRay needs it to talk to the cluster).")
    config_path: str = Field("codesense.yaml", description="codesense.yaml as the job sees it (relative to /app, or inside `config_map`'s mount).")
    config_map: str | None = Field(
        None, description="ConfigMap holding codesense.yaml, mounted at /etc/codesense (then set `config_path: /etc/codesense/codesense.yaml`)."
    )
    service_account: str | None = Field(None, description="Service account of the Ray pods (e.g. for workload identity to S3).")
    env: dict[str, str] = Field(default_factory=dict, description="Plain env vars for head and workers (endpoints, not secrets).")
    env_from_secrets: list[str] = Field(
        default_factory=list, description="Secrets whose keys become env vars in head and workers (S3 keys for DVC, Qdrant API key)."
    )
    data_volume_claim: str | None = Field(
        None,
        description="PersistentVolumeClaim mounted at `data_mount_path` on head and workers, so `data/raw` written by the converge job is "
        "there for the index job (ReadWriteMany when workers read files). None: each job starts empty.",
    )
    data_mount_path: str = Field("/app/data", description="Where the data volume is mounted.")
    head: HeadGroupConfig = Field(default_factory=HeadGroupConfig, description="The head pod.")
    workers: list[WorkerGroupConfig] = Field(
        default_factory=lambda: [WorkerGroupConfig()], description="Worker groups (CPU pool, time-sliced `gpu-small`, exclusive `gpu-standard`)."
    )
    shutdown_after_job_finishes: bool = Field(True, description="Delete the job's Ray cluster when the job ends (no idle GPUs left behind).")
    ttl_seconds_after_finished: int = Field(300, ge=0, description="Seconds the finished cluster is kept for debugging before deletion.")
    submission_mode: Literal["K8sJobMode", "HTTPMode", "SidecarMode"] = Field(
        "K8sJobMode", description="How KubeRay submits the entrypoint: a submitter Kubernetes Job (its logs hold the job output), HTTP, or a head sidecar."
    )
    kube_context: str | None = Field(None, description="kubeconfig context to use outside the cluster; in a pod the in-cluster service account is used.")


class JobsConfig(_Section):
    """Where `codesense` sends its Ray jobs (converge, index, evaluate): a Ray head or KubeRay."""

    backend: Literal["ray-jobs", "kuberay"] = Field(
        "ray-jobs",
        description="`ray-jobs`: Ray Job Submission API of a running head (`ray start --head`, or a long-lived RayCluster's dashboard service). "
        "`kuberay`: a RayJob custom resource per job.",
    )
    ray_address: str = Field("http://127.0.0.1:8265", description="Dashboard URL of the Ray head for `ray-jobs` (the `ray job submit --address`).")
    connect_timeout_s: float = Field(10.0, gt=0, description="How long to wait for the Ray dashboard to accept a connection before failing.")
    poll_interval_s: float = Field(2.0, gt=0, description="Seconds between job status polls (and log streaming).")
    timeout_s: float = Field(3 * 3600.0, gt=0, description="Wall-clock limit of one job; it is stopped and reported as failed after it.")
    log_tail_lines: int = Field(40, ge=1, description="Last log lines quoted in the error when a job fails.")
    working_dir: str | None = Field(
        None,
        description="`ray-jobs`: directory uploaded as the job's working_dir (needs jobs/ and codesense_ray/; .gitignore is honoured). "
        "Default: the codesense source tree this process runs from.",
    )
    config_path: str | None = Field(
        None,
        description="`ray-jobs`: codesense.yaml as the job sees it. Default: this file's absolute path, right for a head on this machine; "
        "for a remote cluster give a path inside the working_dir, e.g. `codesense.yaml`.",
    )
    runtime_env: dict[str, Any] = Field(
        default_factory=dict, description="Extra Ray runtime env merged into every `ray-jobs` job (`env_vars`, `excludes`, `pip`, ...)."
    )
    kuberay: KubeRayConfig = Field(default_factory=KubeRayConfig, description="Settings of the `kuberay` backend.")


class SecretEnvConfig(_Section):
    """A Kubernetes Secret exposed to the pipeline's component pods as env vars (`kfp.kubernetes.use_secret_as_env`)."""

    secret: str = Field(..., description="Secret name in the pipeline's namespace.")
    keys: dict[str, str] = Field(..., min_length=1, description="Secret key → env var name, e.g. `{token: RAY_AUTH_TOKEN}`.")
    optional: bool = Field(True, description="True: the pod starts even when the secret is absent (the env var is then unset).")


class PipelineConfig(_Section):
    """The `codesense-rag` Kubeflow pipeline: compile, run locally, schedule on KFP."""

    host: str | None = Field(None, description="KFP API endpoint, e.g. `http://ml-pipeline.kubeflow:8888` or the deployKF gateway URL `/pipeline`.")
    namespace: str | None = Field(None, description="Kubeflow profile namespace (multi-user KFP); None for single-user installs.")
    experiment: str = Field("codesense", description="KFP experiment the recurring run belongs to (created when missing).")
    name: str = Field("codesense-rag", description="Pipeline name in KFP (new versions are uploaded under it).")
    backend: Literal["ray-jobs", "kuberay"] = Field(
        "kuberay", description="Default of the pipeline's `backend` parameter on the cluster (`pipeline run --local` always uses `ray-jobs`)."
    )
    image: str = Field(DEFAULT_IMAGE, description="Image of the component pods (the same codesense image the RayJobs use).")
    config_path: str = Field("codesense.yaml", description="codesense.yaml as the component pods see it (relative to the image's /app).")
    ray_address: str = Field("", description="Default of the pipeline's `ray_address` parameter; empty: `jobs.ray_address` from the config.")
    eval_dataset: str = Field("", description="Default evaluation dataset (JSONL) of the pipeline; empty: the pipeline ends at the index.")
    schedule: str | None = Field(None, description="Cron used by `codesense pipeline schedule` when --cron is omitted (5 fields, or 6 with seconds).")
    recurring_run_name: str = Field("codesense-rag-schedule", description="Name of the recurring run; scheduling again replaces it.")
    max_concurrency: int = Field(1, ge=1, description="Runs of the schedule allowed at the same time (1: an index run never overlaps another).")
    no_catchup: bool = Field(True, description="True: after a pause, run once instead of back-filling every missed slot.")
    service_account: str | None = Field(None, description="Service account of the runs (needs RBAC to create RayJobs in `jobs.kuberay.namespace`).")
    secrets: list[SecretEnvConfig] = Field(
        default_factory=lambda: [SecretEnvConfig(secret="codesense-ray-token", keys={"token": "RAY_AUTH_TOKEN"}, optional=True)],
        description="Secrets attached to every component pod as env vars (default: the Ray dashboard token used by `ray-jobs`).",
    )


SECTION_TYPES: dict[str, type[BaseModel]] = {"converge": ConvergeConfig, "dvc": DvcConfig, "jobs": JobsConfig, "pipeline": PipelineConfig}

_S = TypeVar("_S", bound=BaseModel)


def section(cfg: Any, name: str, cls: type[_S] | None = None) -> _S:
    """The `name` section of a root Config, or its defaults while the root Config has no such field."""
    cls = cls or SECTION_TYPES[name]  # type: ignore[assignment]
    value = getattr(cfg, name, None)
    if value is None:
        return cls()  # type: ignore[misc]
    if isinstance(value, dict):
        return cls.model_validate(value)  # type: ignore[union-attr]
    return value
