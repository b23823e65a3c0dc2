"""The `deployment:` section of `codesense.yaml`: what `codesense deploy render|apply` and `codesense rollout` build.

Think of it as the `values.yaml` of an umbrella Helm chart: every Kubernetes object under `infra/` is rendered
from it (and from the rest of `codesense.yaml`), so the cluster and the laptop read one source of truth.

Example (a prod cluster with a fine-tuned student on an exclusive GPU, scale-to-zero in dev)::

    deployment:
      namespace: codesense
      image: registry.example.com/codesense:0.1.0
      inference:
        base_model_uri: hf://Qwen/Qwen2.5-Coder-1.5B-Instruct
        adapter_uri: s3://mlflow/artifacts/7/abc123/artifacts/adapter   # the registered LoRA version
        adapter_name: codesense-student
        node_class: gpu-standard
      canary:
        steps: [10, 50, 100]
        prometheus_url: http://prometheus-operated.monitoring.svc:9090
        max_error_rate: 0.02
      environments:
        dev: {inference: {autoscaling: {min_replicas: 0}}}     # scale to zero when idle
        prod: {inference: {autoscaling: {min_replicas: 1, max_replicas: 4}}}

`environments` holds per-environment overrides of this very section (deep-merged, then validated again), like a
Kustomize overlay on a base: `codesense deploy render --env prod` applies `environments.prod`. Secrets are only
ever *names* of Kubernetes Secrets (and keys inside them), never values.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from codesense_ray.config.orchestration import HeadGroupConfig, WorkerGroupConfig

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$"


class _Section(BaseModel):
    # Unknown keys are errors: a typo in YAML must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid")


class SecretKeyRef(_Section):
    """A key inside a Kubernetes Secret: the object is created out of band (kubectl, External Secrets, Vault)."""

    name: str = Field(..., pattern=DNS_LABEL, description="Secret name in the consuming object's namespace.")
    key: str = Field(..., min_length=1, description="Key inside the Secret.")


class NodeClassConfig(_Section):
    """A class of GPU nodes: a label the GPU Operator reads to pick the device-plugin config, and a taint."""

    name: str = Field(..., pattern=DNS_LABEL, description="Class name, also the node label value `nvidia.com/device-plugin.config=<name>`.")
    time_slicing_replicas: int = Field(
        1,
        ge=1,
        le=64,
        description="1: exclusive cards (guaranteed QoS, each pod owns whole GPUs). N > 1: the device plugin advertises every card "
        "N times (time-slicing: overcommitted QoS, no memory isolation) so N small pods share one card.",
    )
    taint: bool = Field(True, description="Nodes carry the taint `codesense.io/node-class=<name>:NoSchedule`; only pods placed on the class tolerate it.")
    gpu_resource: str = Field("nvidia.com/gpu", description="Extended resource name pods of this class request.")

    @property
    def shared(self) -> bool:
        return self.time_slicing_replicas > 1


def _default_node_classes() -> list[NodeClassConfig]:
    return [NodeClassConfig(name="gpu-small", time_slicing_replicas=4), NodeClassConfig(name="gpu-standard", time_slicing_replicas=1)]


class GpuConfig(_Section):
    """NVIDIA GPU Operator: the `ClusterPolicy` and the device-plugin time-slicing ConfigMap."""

    operator_namespace: str = Field("gpu-operator", pattern=DNS_LABEL, description="Namespace of the GPU Operator (its Helm release).")
    config_map: str = Field("time-slicing-config", pattern=DNS_LABEL, description="ConfigMap with one device-plugin config per node class.")
    default_class: str = Field("gpu-standard", description="Device-plugin config used by GPU nodes that carry no class label.")
    classes: list[NodeClassConfig] = Field(default_factory=_default_node_classes, description="GPU node classes (`gpu-small` shared, `gpu-standard` exclusive).")
    install_driver: bool = Field(True, description="False on nodes whose image already has the NVIDIA driver (many managed clusters).")

    @model_validator(mode="after")
    def _check(self) -> "GpuConfig":
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate node class names: {names}")
        if self.default_class not in names:
            raise ValueError(f"`default_class` {self.default_class!r} is not one of the classes {names}")
        return self

    def node_class(self, name: str) -> NodeClassConfig:
        for c in self.classes:
            if c.name == name:
                return c
        raise KeyError(name)


class RayServiceConfig(_Section):
    """The KubeRay `RayService` that runs the RAG Serve app (ingress → retriever → generator)."""

    name: str = Field("codesense-rag", pattern=DNS_LABEL, description="RayService name; KubeRay creates `<name>-serve-svc` for the HTTP app.")
    head: HeadGroupConfig = Field(default_factory=lambda: HeadGroupConfig(cpu="2", memory="8Gi", num_cpus=0), description="Head pod (num_cpus 0: no replicas on the head).")
    workers: list[WorkerGroupConfig] = Field(
        default_factory=lambda: [WorkerGroupConfig(name="cpu", replicas=1, min_replicas=1, max_replicas=4, cpu="4", memory="8Gi")],
        description="Worker groups the Serve replicas run on (a `gpu-small` group for on-GPU query embedding, if wanted).",
    )
    enable_autoscaling: bool = Field(True, description="KubeRay autoscaler adds worker pods when Serve replicas do not fit.")


class RayClusterConfig(_Section):
    """A long-lived KubeRay `RayCluster` for ad-hoc `ray job submit` and the `ray-jobs` backend (shape: `jobs.kuberay`)."""

    enabled: bool = Field(True, description="Render the `RayCluster`; RayJobs bring their own clusters and do not need it.")
    name: str = Field("codesense-jobs", pattern=DNS_LABEL, description="RayCluster name; its dashboard is `<name>-head-svc:8265`.")


class QdrantDeployConfig(_Section):
    """Qdrant through its official Helm chart: the values file rendered into `infra/`."""

    namespace: str = Field("qdrant", pattern=DNS_LABEL, description="Namespace of the Qdrant release.")
    release: str = Field("qdrant", pattern=DNS_LABEL, description="Helm release name; the Service is `<release>.<namespace>.svc:6333`.")
    replicas: int = Field(1, ge=1, description="Qdrant nodes (distributed mode from 2).")
    storage_size: str = Field("20Gi", pattern=QUANTITY, description="PersistentVolumeClaim size per node (vectors + payload).")
    storage_class: str | None = Field(None, description="StorageClass of the volume; None: the cluster default.")
    cpu: str = Field("2", pattern=QUANTITY, description="CPU request and limit per node.")
    memory: str = Field("8Gi", pattern=QUANTITY, description="Memory request and limit per node (HNSW graphs live in RAM).")
    api_key_secret: SecretKeyRef = Field(
        default_factory=lambda: SecretKeyRef(name="qdrant-api-key", key="api-key"),
        description="Secret holding the API key (in the Qdrant namespace, and a copy in `deployment.namespace` for the app).",
    )


class MlflowDeployConfig(_Section):
    """MLflow tracking server + model registry with its PostgreSQL database."""

    enabled: bool = Field(True, description="Render MLflow (Deployment, Service) and its PostgreSQL (StatefulSet, Service).")
    namespace: str = Field("mlops", pattern=DNS_LABEL, description="Namespace for MLflow, Langfuse and their databases.")
    image: str = Field("ghcr.io/mlflow/mlflow:v3.1.1", description="MLflow server image (needs psycopg2 and boto3 for this setup).")
    postgres_image: str = Field("postgres:16", description="PostgreSQL image of the backend store.")
    database_storage: str = Field("10Gi", pattern=QUANTITY, description="Volume size of the PostgreSQL data directory.")
    artifacts_destination: str = Field("s3://mlflow/artifacts", description="Where MLflow stores artifacts (LoRA adapters, plots): an S3-compatible URL.")
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint for MinIO/Ceph; None: AWS.")
    s3_secret: str = Field("mlflow-s3", pattern=DNS_LABEL, description="Secret with `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` for the artifact store.")
    database_secret: str = Field("mlflow-postgres", pattern=DNS_LABEL, description="Secret with `username` and `password` of the MLflow database.")


class LangfuseDeployConfig(_Section):
    """Langfuse (prompts, traces, datasets) through its official Helm chart, with its bundled databases."""

    enabled: bool = Field(True, description="Render the values file for the `langfuse/langfuse` chart.")
    release: str = Field("langfuse", pattern=DNS_LABEL, description="Helm release name (in the MLflow namespace).")
    secret: str = Field(
        "langfuse", pattern=DNS_LABEL, description="Secret with `salt`, `encryption-key`, `nextauth-secret`, `postgres-password`, `clickhouse-password`, `redis-password`."
    )
    hostname: str = Field("langfuse.example.com", description="Public host name of the Langfuse UI (NEXTAUTH_URL).")


class AutoscalingConfig(_Section):
    """Knative Pod Autoscaler (KPA) for the InferenceService: an HPA on in-flight requests that can scale to zero."""

    target_concurrency: int = Field(
        8, ge=1, description="In-flight requests per replica the KPA aims for (vLLM batches them; higher fills the GPU, raises latency)."
    )
    min_replicas: int = Field(1, ge=0, description="Replicas kept when idle; 0 scales to zero (the first request then waits for a cold start).")
    max_replicas: int = Field(2, ge=1, description="Upper bound (one GPU each on `gpu-standard`).")
    scale_down_delay: str = Field("15m", pattern=r"^[0-9]+[smh]$", description="How long a replica idles before removal; long: a model load costs minutes.")

    @model_validator(mode="after")
    def _check(self) -> "AutoscalingConfig":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"`min_replicas` {self.min_replicas} is above `max_replicas` {self.max_replicas}")
        return self


class InferenceConfig(_Section):
    """The student model on KServe + vLLM: `ClusterServingRuntime` and `InferenceService`."""

    enabled: bool = Field(True, description="Render the vLLM runtime and the InferenceService.")
    name: str = Field("codesense-llm", pattern=DNS_LABEL, description="InferenceService name; the OpenAI API is `http://<name>.<namespace>.svc.cluster.local/v1`.")
    runtime: str = Field("codesense-vllm", pattern=DNS_LABEL, description="Name of the ClusterServingRuntime running vLLM's OpenAI server.")
    vllm_image: str = Field("vllm/vllm-openai:v0.11.0", description="vLLM image (OpenAI-compatible server).")
    base_model_uri: str = Field(
        "hf://Qwen/Qwen2.5-Coder-1.5B-Instruct", description="Base model weights for KServe's storage initializer (`hf://`, `s3://`, `pvc://`)."
    )
    served_model_name: str = Field("codesense-base", description="Name of the base model in the OpenAI API (`model` field).")
    adapter_name: str = Field(
        "codesense-student",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Stable name of the LoRA adapter in the OpenAI API; each rollout swaps the weights behind it, clients keep asking for it.",
    )
    adapter_uri: str | None = Field(
        None, description="LoRA adapter of the registered student version (`s3://...` artifact of the MLflow registry); None serves the base model only."
    )
    adapter_version: str | None = Field(None, description="Registry version of `adapter_uri`, recorded on the object for rollbacks and dashboards.")
    max_model_len: int = Field(8192, ge=256, description="Longest prompt + answer in tokens; caps the KV-cache a single request may hold.")
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="Share of the card's memory vLLM takes (weights + PagedAttention KV cache); lower it when pods share a card."
    )
    enable_prefix_caching: bool = Field(True, description="Reuse KV-cache blocks of identical prompt prefixes (the system prompt + instructions).")
    max_loras: int = Field(4, ge=1, description="LoRA adapters resident in GPU memory at once.")
    max_lora_rank: int = Field(16, ge=1, description="Largest adapter rank vLLM reserves memory for (must be ≥ the trained rank).")
    node_class: str = Field("gpu-standard", description="GPU node class (from `gpu.classes`) the predictor runs on.")
    gpus: int = Field(1, ge=1, description="GPUs per predictor replica (tensor parallelism above 1).")
    cpu: str = Field("4", pattern=QUANTITY, description="CPU request and limit of the predictor.")
    memory: str = Field("24Gi", pattern=QUANTITY, description="Memory request and limit of the predictor.")
    hf_token_secret: SecretKeyRef | None = Field(None, description="Secret with a Hugging Face token for gated models; None: public weights.")
    extra_args: list[str] = Field(default_factory=list, description="Additional vLLM flags appended verbatim.")
    autoscaling: AutoscalingConfig = Field(default_factory=AutoscalingConfig, description="KPA settings.")


class MonitoringConfig(_Section):
    """ServiceMonitor / PodMonitor objects for the Prometheus Operator."""

    enabled: bool = Field(True, description="Render monitors for Serve, Ray, vLLM, Qdrant and DCGM.")
    release_label: dict[str, str] = Field(
        default_factory=lambda: {"release": "kube-prometheus-stack"}, description="Labels the Prometheus instance selects monitors by."
    )
    interval: str = Field("30s", pattern=r"^[0-9]+[smh]$", description="Scrape interval.")


class CanaryConfig(_Section):
    """`codesense rollout`: traffic steps of a new student version and the gates between them."""

    steps: list[int] = Field(default_factory=lambda: [10, 50, 100], description="canaryTrafficPercent steps; the last must be 100 (full promotion).")
    prometheus_url: str = Field("http://prometheus-operated.monitoring.svc:9090", description="Prometheus HTTP API read by the gates.")
    window: str = Field("5m", pattern=r"^[0-9]+[smh]$", description="Range of the rate() windows in the gate queries.")
    soak_s: float = Field(300.0, ge=0, description="Seconds each step serves traffic before its gate is read (metrics need samples).")
    max_error_rate: float = Field(0.02, ge=0, le=1, description="Gate: share of 5xx responses of the canary revision above which it is rolled back.")
    max_p95_latency_s: float = Field(20.0, gt=0, description="Gate: p95 request latency of the canary revision (seconds).")
    require_metrics: bool = Field(
        True, description="True: a step whose error rate or latency has no samples yet (no traffic reached the canary) fails its gate instead of passing blind."
    )
    min_judge_score: float | None = Field(None, ge=0, le=1, description="Gate: LLM-judge score of canary answers, when the metric exists; None: not gated.")
    error_rate_query: str = Field(
        'sum(rate(revision_app_request_count{{namespace_name="{namespace}",revision_name="{revision}",response_code_class="5xx"}}[{window}]))'
        ' / sum(rate(revision_app_request_count{{namespace_name="{namespace}",revision_name="{revision}"}}[{window}]))',
        description="PromQL template of the error rate (Knative queue-proxy metrics); `{namespace}`, `{revision}`, `{window}`, `{name}` are filled in.",
    )
    latency_query: str = Field(
        'histogram_quantile(0.95, sum by (le) (rate(revision_app_request_latencies_bucket{{namespace_name="{namespace}",revision_name="{revision}"}}[{window}]))) / 1000',
        description="PromQL template of the p95 latency in seconds.",
    )
    judge_query: str = Field(
        'sum(rate(codesense_judge_score_sum{{metric="faithfulness"}}[{window}])) / sum(rate(codesense_judge_score_count{{metric="faithfulness"}}[{window}]))',
        description="PromQL template of the online judge's score (the RAG app's histogram, all traffic); an empty result skips the gate.",
    )
    eval_dataset: str | None = Field(None, description="Evaluation JSONL run against the canary endpoint at every step; None: metrics gates only.")
    eval_gate: str = Field("gates.yaml", description="Thresholds for that evaluation (as `codesense eval --gate`).")
    canary_url: str = Field(
        "http://latest-{name}-predictor.{namespace}.svc.cluster.local/v1",
        description="OpenAI API of the canary revision only (KServe tag routing), used by the evaluation gate.",
    )
    readiness_timeout_s: float = Field(900.0, gt=0, description="How long a new revision may take to become Ready (model download + load).")
    poll_interval_s: float = Field(5.0, gt=0, description="Seconds between status reads.")

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[int]) -> list[int]:
        if not steps or steps[-1] != 100:
            raise ValueError("the last step must be 100 (full promotion)")
        if any(not 0 < s <= 100 for s in steps) or steps != sorted(set(steps)):
            raise ValueError(f"steps must be strictly increasing percentages in 1..100, got {steps}")
        return steps


def _default_environments() -> dict[str, dict[str, Any]]:
    return {
        "dev": {
            "inference": {"autoscaling": {"min_replicas": 0, "max_replicas": 1}},
            "qdrant": {"storage_size": "5Gi", "memory": "4Gi", "cpu": "1"},
            "ray_service": {"workers": [{"name": "cpu", "replicas": 1, "min_replicas": 1, "max_replicas": 2, "cpu": "2", "memory": "6Gi"}]},
            "canary": {"soak_s": 60},
        },
        "prod": {
            "inference": {"autoscaling": {"min_replicas": 1, "max_replicas": 4}},
            "qdrant": {"replicas": 3, "storage_size": "100Gi"},
        },
    }


class DeploymentConfig(_Section):
    """Kubernetes delivery: the objects under `infra/`, `codesense deploy render|apply`, `codesense rollout`."""

    namespace: str = Field("codesense", pattern=DNS_LABEL, description="Namespace of the RayService, RayCluster and InferenceService.")
    image: str | None = Field(None, description="codesense image of the Ray pods; None: `jobs.kuberay.image`.")
    config_map: str = Field("codesense-config", pattern=DNS_LABEL, description="ConfigMap holding the in-cluster codesense.yaml (mounted at /etc/codesense).")
    cluster_config: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides merged into codesense.yaml for the in-cluster copy (defaults point Qdrant, the generator and Ray at the "
        "in-cluster services); validated like the file itself.",
    )
    app_secrets: list[str] = Field(
        default_factory=lambda: ["codesense-app"],
        description="Secrets whose keys become env vars of the Ray pods (QDRANT_API_KEY, GEMINI_API_KEY, LANGFUSE_*, ...). Names only.",
    )
    gpu: GpuConfig = Field(default_factory=GpuConfig, description="GPU Operator and node classes.")
    ray_service: RayServiceConfig = Field(default_factory=RayServiceConfig, description="The RAG app on KubeRay.")
    ray_cluster: RayClusterConfig = Field(default_factory=RayClusterConfig, description="Long-lived RayCluster for jobs.")
    qdrant: QdrantDeployConfig = Field(default_factory=QdrantDeployConfig, description="Qdrant Helm values.")
    mlflow: MlflowDeployConfig = Field(default_factory=MlflowDeployConfig, description="MLflow and its database.")
    langfuse: LangfuseDeployConfig = Field(default_factory=LangfuseDeployConfig, description="Langfuse Helm values.")
    inference: InferenceConfig = Field(default_factory=InferenceConfig, description="KServe + vLLM for the student model.")
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig, description="Prometheus Operator monitors.")
    canary: CanaryConfig = Field(default_factory=CanaryConfig, description="Gated canary rollout.")
    environments: dict[str, dict[str, Any]] = Field(
        default_factory=_default_environments,
        description="Per-environment overrides of this section (`dev`, `prod`, ...), deep-merged like a Kustomize overlay.",
    )
    kube_context: str | None = Field(None, description="kubeconfig context for apply/rollout outside the cluster; in a pod the service account is used.")

    @model_validator(mode="after")
    def _check(self) -> "DeploymentConfig":
        names = [c.name for c in self.gpu.classes]
        if self.inference.node_class not in names:
            raise ValueError(f"inference.node_class {self.inference.node_class!r} is not a GPU class; classes: {names}")
        for env in self.environments:
            if not re.match(DNS_LABEL, env):
                raise ValueError(f"environment name {env!r} must be a DNS label")
        return self
