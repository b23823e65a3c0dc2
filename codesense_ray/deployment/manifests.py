"""Every Kubernetes object codesense runs on, built as plain dicts from `codesense.yaml` — pure functions.

`render(cfg, env)` returns a `Rendered`: the objects grouped by component (what `infra/base/<component>/`
holds) and the Helm values files of the charts codesense does not template itself (Qdrant, Langfuse).
Nothing here talks to a cluster, reads the environment or resolves a secret: Secrets appear only as
references (`secretKeyRef`, `envFrom`), so the output is safe to commit and to diff in review.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from codesense_ray.deployment.serve_config import build_serve_config, serve_config_yaml
from codesense_ray.config.deployment import DeploymentConfig, NodeClassConfig
from codesense_ray.errors import InvalidConfig
from codesense_ray.orchestration.rayjob import _head_group, _worker_group
from codesense_ray.config.orchestration import KubeRayConfig, section

PART_OF = {"app.kubernetes.io/part-of": "codesense", "app.kubernetes.io/managed-by": "codesense"}
CONFIG_MOUNT = "/etc/codesense"
NODE_CLASS_LABEL = "nvidia.com/device-plugin.config"
NODE_CLASS_TAINT = "codesense.io/node-class"
MODELS_ROOT = "/mnt/models"


@dataclass
class Rendered:
    """Objects by component (`namespaces`, `gpu-operator`, `kuberay`, ...) and Helm values files by name."""

    components: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    helm_values: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def objects(self) -> list[dict[str, Any]]:
        return [obj for objs in self.components.values() for obj in objs]


# --- configuration --------------------------------------------------------------------------------
def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`: mappings merge key by key, everything else (lists too) is replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _validation_message(err: ValidationError, prefix: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(x) for x in (prefix, *first["loc"]) if x != "")
    if first["type"] == "extra_forbidden":
        return f"unknown key `{loc}`"
    return f"`{loc}`: {first['msg'].removeprefix('Value error, ')}"


def deployment_section(cfg: Any) -> DeploymentConfig:
    """The `deployment:` section of a root Config (its defaults while Config has no such field)."""
    return section(cfg, "deployment", DeploymentConfig)


def resolve_environment(cfg: Any, env: str | None) -> DeploymentConfig:
    """`deployment` with `deployment.environments.<env>` merged on top; bad keys name their full path."""
    dep = deployment_section(cfg)
    if env is None:
        return dep
    if env not in dep.environments:
        known = ", ".join(sorted(dep.environments)) or "none"
        raise InvalidConfig(f"`deployment.environments.{env}` is not defined (environments: {known})")
    merged = deep_merge(dep.model_dump(mode="json", exclude={"environments"}), dep.environments[env])
    merged["environments"] = dep.environments
    try:
        return DeploymentConfig.model_validate(merged)
    except ValidationError as err:
        raise InvalidConfig(_validation_message(err, f"deployment.environments.{env}")) from None


def inference_url(dep: DeploymentConfig) -> str:
    """In-cluster OpenAI API root of the InferenceService (the route that splits stable/canary traffic)."""
    return f"http://{dep.inference.name}.{dep.namespace}.svc.cluster.local/v1"


def cluster_config(cfg: Any, dep: DeploymentConfig) -> dict[str, Any]:
    """codesense.yaml as the pods read it: the local file pointed at the in-cluster services, plus `cluster_config`."""
    data = cfg.model_dump(mode="json", exclude={"deployment"})
    q = dep.qdrant
    defaults: dict[str, Any] = {
        "qdrant": {"url": f"http://{q.release}.{q.namespace}.svc.cluster.local:6333", "path": None, "api_key_env": "QDRANT_API_KEY"},
        "ray": {"address": "auto"},
        "serve": {"host": "0.0.0.0"},
    }
    # The student on KServe replaces only the no-network generators; an explicit remote backend (Gemini, another
    # OpenAI-compatible endpoint) in codesense.yaml is what the operator chose and stays.
    if dep.inference.enabled and cfg.generator.backend in ("extractive", "local"):
        model = dep.inference.adapter_name if dep.inference.adapter_uri else dep.inference.served_model_name
        defaults["generator"] = {"backend": "openai", "base_url": inference_url(dep), "model": model, "api_key_env": None}
    return deep_merge(deep_merge(data, defaults), dep.cluster_config)


def cluster_config_model(cfg: Any, dep: DeploymentConfig) -> Any:
    """`cluster_config` validated exactly as the pods will: a bad override fails here, not in a crash-looping pod."""
    from codesense_ray.config import config_from_dict

    return config_from_dict(cluster_config(cfg, dep), cfg.base_dir, source="deployment.cluster_config")


# --- helpers --------------------------------------------------------------------------------------
def _meta(name: str, namespace: str | None = None, component: str | None = None, **extra: Any) -> dict[str, Any]:
    labels = dict(PART_OF)
    if component:
        labels["app.kubernetes.io/component"] = component
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if namespace:
        meta["namespace"] = namespace
    meta.update(extra)
    return meta


def node_placement(node_class: NodeClassConfig) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """nodeSelector and tolerations that put a pod on `node_class` nodes (and only there, thanks to the taint)."""
    selector = {NODE_CLASS_LABEL: node_class.name}
    tolerations = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    if node_class.taint:
        tolerations.append({"key": NODE_CLASS_TAINT, "operator": "Equal", "value": node_class.name, "effect": "NoSchedule"})
    return selector, tolerations


def _resources(cpu: str, memory: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    amounts = {"cpu": cpu, "memory": memory, **(extra or {})}
    return {"requests": dict(amounts), "limits": dict(amounts)}


# --- namespaces and GPU operator ------------------------------------------------------------------
def namespaces(dep: DeploymentConfig) -> list[dict[str, Any]]:
    names = [dep.namespace, dep.qdrant.namespace, dep.mlflow.namespace, dep.gpu.operator_namespace]
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(n)} for n in dict.fromkeys(names)]


def time_slicing_config(node_class: NodeClassConfig) -> dict[str, Any]:
    """The device-plugin config of one class: N replicas per card when shared, none when exclusive."""
    conf: dict[str, Any] = {"version": "v1", "flags": {"migStrategy": "none"}}
    if node_class.shared:
        conf["sharing"] = {
            "timeSlicing": {
                "renameByDefault": False,
                # A pod asking for 2 replicas would get 2 slices of maybe the same card: refuse instead.
                "failRequestsGreaterThanOne": True,
                "resources": [{"name": node_class.gpu_resource, "replicas": node_class.time_slicing_replicas}],
            }
        }
    return conf


def gpu_operator(dep: DeploymentConfig) -> list[dict[str, Any]]:
    gpu = dep.gpu
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(gpu.config_map, gpu.operator_namespace, "gpu"),
        "data": {c.name: yaml.safe_dump(time_slicing_config(c), sort_keys=False) for c in gpu.classes},
    }
    policy = {
        "apiVersion": "nvidia.com/v1",
        "kind": "ClusterPolicy",
        "metadata": _meta("cluster-policy", component="gpu"),
        "spec": {
            "operator": {"defaultRuntime": "containerd"},
            "daemonsets": {"updateStrategy": "RollingUpdate", "tolerations": [{"key": NODE_CLASS_TAINT, "operator": "Exists", "effect": "NoSchedule"}]},
            "driver": {"enabled": gpu.install_driver},
            "toolkit": {"enabled": True},
            "devicePlugin": {"enabled": True, "config": {"name": gpu.config_map, "default": gpu.default_class}},
            "gfd": {"enabled": True},
            "dcgm": {"enabled": True},
            # The exporter's own ServiceMonitor stays off: codesense renders one with the shared scrape labels.
            "dcgmExporter": {"enabled": True, "serviceMonitor": {"enabled": False}},
            "nodeStatusExporter": {"enabled": True},
        },
    }
    return [config_map, policy]


# --- KubeRay --------------------------------------------------------------------------------------
def _kuberay_base(cfg: Any, dep: DeploymentConfig) -> KubeRayConfig:
    kcfg = section(cfg, "jobs").kuberay
    env = {**kcfg.env, "CODESENSE_CONFIG": f"{CONFIG_MOUNT}/codesense.yaml", "CODESENSE_HOME": "/tmp/codesense"}
    return kcfg.model_copy(
        update={
            "namespace": dep.namespace,
            "image": dep.image or kcfg.image,
            "config_map": dep.config_map,
            "env": env,
            "env_from_secrets": list(dict.fromkeys([*kcfg.env_from_secrets, *dep.app_secrets])),
        }
    )


def _place_gpu_groups(groups: list[dict[str, Any]], dep: DeploymentConfig, worker_cfgs: list) -> None:
    """GPU worker groups without an explicit nodeSelector go to the shared class (fractions) or the exclusive one."""
    shared = next((c for c in dep.gpu.classes if c.shared), None)
    exclusive = next((c for c in dep.gpu.classes if not c.shared), None)
    for group, wcfg in zip(groups, worker_cfgs):
        if wcfg.gpu <= 0 or wcfg.node_selector:
            continue
        node_class = shared if wcfg.gpu < 1 else exclusive
        if node_class is None:
            continue
        selector, tolerations = node_placement(node_class)
        spec = group["template"]["spec"]
        spec["nodeSelector"] = selector
        known = {t.get("key") for t in spec.get("tolerations", [])}
        spec["tolerations"] = [*spec.get("tolerations", []), *[t for t in tolerations if t["key"] not in known]]


def gate_files(cfg: Any, dep: DeploymentConfig) -> dict[str, str]:
    """The gate files codesense.yaml names relative to itself (`training.registry.gate`, `deployment.canary.eval_gate`),
    to ship beside it: pods read /etc/codesense/codesense.yaml, so `gate: gates-model.yaml` resolves to
    /etc/codesense/gates-model.yaml — like a values file that has to sit next to the chart that references it.
    Absolute or nested paths and files absent here are left to the image or a volume."""
    from codesense_ray.config.training import training_config

    files: dict[str, str] = {}
    for name in (training_config(cfg).registry.gate, dep.canary.eval_gate):
        local = cfg.resolve_path(name)
        if Path(name).name == name and local.is_file():
            files[name] = local.read_text(encoding="utf-8")
    return files


def config_map(cfg: Any, dep: DeploymentConfig) -> dict[str, Any]:
    cluster_config_model(cfg, dep)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(dep.config_map, dep.namespace, "config"),
        "data": {"codesense.yaml": yaml.safe_dump(cluster_config(cfg, dep), sort_keys=False), **gate_files(cfg, dep)},
    }


def ray_cluster(cfg: Any, dep: DeploymentConfig) -> dict[str, Any]:
    kcfg = _kuberay_base(cfg, dep)
    workers = [_worker_group(kcfg, g) for g in kcfg.workers]
    _place_gpu_groups(workers, dep, kcfg.workers)
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": _meta(dep.ray_cluster.name, dep.namespace, "ray-jobs"),
        "spec": {"rayVersion": kcfg.ray_version, "headGroupSpec": _head_group(kcfg, kcfg.head), "workerGroupSpecs": workers},
    }


def serve_service_name(dep: DeploymentConfig) -> str:
    return f"{dep.ray_service.name}-serve"


def ray_service(cfg: Any, dep: DeploymentConfig) -> dict[str, Any]:
    rs = dep.ray_service
    kcfg = _kuberay_base(cfg, dep)
    head = _head_group(kcfg, rs.head)
    ports = head["template"]["spec"]["containers"][0]["ports"]
    ports += [{"containerPort": 8000, "name": "serve"}, {"containerPort": 8080, "name": "metrics"}]
    workers = [_worker_group(kcfg, g) for g in rs.workers]
    _place_gpu_groups(workers, dep, rs.workers)
    for group in [head, *workers]:
        labels = group["template"].setdefault("metadata", {}).setdefault("labels", {})
        labels.update({"app.kubernetes.io/name": "codesense", "app.kubernetes.io/component": "rag-serve"})
        for c in group["template"]["spec"]["containers"]:
            if not any(p.get("name") == "metrics" for p in c.get("ports", [])):
                c.setdefault("ports", []).append({"containerPort": 8080, "name": "metrics"})
    pod_cfg = cluster_config_model(cfg, dep)
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": _meta(rs.name, dep.namespace, "rag-serve"),
        "spec": {
            "serveConfigV2": serve_config_yaml(build_serve_config(pod_cfg, config_path=f"{CONFIG_MOUNT}/codesense.yaml")),
            "serveService": {
                "metadata": {"name": serve_service_name(dep), "labels": {**PART_OF, "app.kubernetes.io/component": "rag-serve"}},
                "spec": {"ports": [{"name": "serve", "port": pod_cfg.serve.port, "targetPort": 8000}]},
            },
            "rayClusterConfig": {
                "rayVersion": kcfg.ray_version,
                "enableInTreeAutoscaling": rs.enable_autoscaling,
                "headGroupSpec": head,
                "workerGroupSpecs": workers,
            },
        },
    }


def pipeline_rbac(dep: DeploymentConfig) -> list[dict[str, Any]]:
    """What KFP component pods need: create RayJobs, read their pods' logs, patch the InferenceService."""
    name, ns = "codesense-pipeline", dep.namespace
    rules = [
        {"apiGroups": ["ray.io"], "resources": ["rayjobs", "rayclusters", "rayservices"], "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
        {"apiGroups": [""], "resources": ["pods", "pods/log", "configmaps"], "verbs": ["get", "list", "watch", "patch", "create"]},
        {"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"], "verbs": ["get", "list", "watch", "create", "patch"]},
    ]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, ns, "pipeline")},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta(name, ns, "pipeline"), "rules": rules},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(name, ns, "pipeline"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
        },
    ]


# --- KServe + vLLM --------------------------------------------------------------------------------
def adapter_mount(dep: DeploymentConfig) -> str:
    return f"{MODELS_ROOT}/adapters/{dep.inference.adapter_name}"


def vllm_args(dep: DeploymentConfig, adapter_uri: str | None = None) -> list[str]:
    """vLLM OpenAI-server flags of the predictor: base model, LoRA modules, prefix caching, memory share."""
    inf = dep.inference
    adapter = adapter_uri if adapter_uri is not None else inf.adapter_uri
    args = [
        f"--model={MODELS_ROOT}/base",
        f"--served-model-name={inf.served_model_name}",
        f"--max-model-len={inf.max_model_len}",
        f"--gpu-memory-utilization={inf.gpu_memory_utilization:g}",
    ]
    if inf.gpus > 1:
        args.append(f"--tensor-parallel-size={inf.gpus}")
    if inf.enable_prefix_caching:
        args.append("--enable-prefix-caching")
    if adapter:
        args += ["--enable-lora", f"--max-loras={inf.max_loras}", f"--max-lora-rank={inf.max_lora_rank}", f"--lora-modules={inf.adapter_name}={adapter_mount(dep)}"]
    return args + list(inf.extra_args)


def serving_runtime(dep: DeploymentConfig) -> dict[str, Any]:
    inf = dep.inference
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ClusterServingRuntime",
        "metadata": _meta(inf.runtime, component="llm"),
        "spec": {
            "supportedModelFormats": [{"name": "vllm", "version": "1", "autoSelect": True}],
            "protocolVersions": ["v1"],
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8080", "prometheus.io/path": "/metrics"},
            "containers": [
                {
                    "name": "kserve-container",
                    "image": inf.vllm_image,
                    "command": ["python3", "-m", "vllm.entrypoints.openai.api_server"],
                    "args": ["--port=8080", "--disable-log-requests"],
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": "HF_HOME", "value": "/tmp/hf"}, {"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "false"}],
                    "resources": _resources("2", "8Gi"),
                }
            ],
        },
    }


def inference_service(dep: DeploymentConfig, adapter_uri: str | None = None, adapter_version: str | None = None, canary_percent: int | None = None) -> dict[str, Any]:
    """The student's InferenceService. `adapter_uri`/`canary_percent` are what `codesense rollout` changes."""
    inf = dep.inference
    node_class = dep.gpu.node_class(inf.node_class)
    if node_class.shared:
        share = 1 / node_class.time_slicing_replicas
        if inf.gpus > 1:
            raise InvalidConfig(f"`deployment.inference.gpus`: {inf.gpus} on time-sliced class {node_class.name}: a pod gets one slice; use an exclusive class")
        if inf.gpu_memory_utilization > share + 1e-9:
            raise InvalidConfig(
                f"`deployment.inference.gpu_memory_utilization`: {inf.gpu_memory_utilization:g} on {node_class.name} "
                f"({node_class.time_slicing_replicas} pods per card) would take other pods' memory: use at most {share:.2f}"
            )
    adapter = adapter_uri if adapter_uri is not None else inf.adapter_uri
    version = adapter_version if adapter_version is not None else inf.adapter_version
    a = inf.autoscaling
    annotations = {
        "serving.kserve.io/deploymentMode": "Serverless",
        # Tag routes (`latest-…`, `prev-…`) let the canary gate talk to the new revision alone.
        "serving.kserve.io/enable-tag-routing": "true",
        "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
        "autoscaling.knative.dev/metric": "concurrency",
        "autoscaling.knative.dev/target": str(a.target_concurrency),
        "autoscaling.knative.dev/scale-down-delay": a.scale_down_delay,
    }
    if adapter:
        annotations["codesense.io/adapter-uri"] = adapter
    if version:
        annotations["codesense.io/adapter-version"] = str(version)
    selector, tolerations = node_placement(node_class)
    model: dict[str, Any] = {
        "modelFormat": {"name": "vllm"},
        "runtime": inf.runtime,
        "args": vllm_args(dep, adapter),
        "resources": _resources(inf.cpu, inf.memory, {node_class.gpu_resource: inf.gpus}),
    }
    if inf.hf_token_secret:
        model["env"] = [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": inf.hf_token_secret.name, "key": inf.hf_token_secret.key}}}]
    storage = [{"uri": inf.base_model_uri, "mountPath": f"{MODELS_ROOT}/base"}]
    if adapter:
        storage.append({"uri": adapter, "mountPath": adapter_mount(dep)})
    predictor: dict[str, Any] = {
        "minReplicas": a.min_replicas,
        "maxReplicas": a.max_replicas,
        "scaleMetric": "concurrency",
        "scaleTarget": a.target_concurrency,
        "nodeSelector": selector,
        "tolerations": tolerations,
        "storageUris": storage,
        "model": model,
    }
    if canary_percent is not None:
        predictor["canaryTrafficPercent"] = canary_percent
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": _meta(inf.name, dep.namespace, "llm", annotations=annotations),
        "spec": {"predictor": predictor},
    }


# --- MLflow ---------------------------------------------------------------------------------------
def mlflow(dep: DeploymentConfig) -> list[dict[str, Any]]:
    m = dep.mlflow
    ns, db = m.namespace, "mlflow-postgres"
    db_labels = {"app.kubernetes.io/name": db}
    secret_env = [
        {"name": "POSTGRES_USER", "valueFrom": {"secretKeyRef": {"name": m.database_secret, "key": "username"}}},
        {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": m.database_secret, "key": "password"}}},
    ]
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(db, ns, "mlflow-db"),
        "spec": {
            "serviceName": db,
            "replicas": 1,
            "selector": {"matchLabels": db_labels},
            "template": {
                "metadata": {"labels": {**db_labels, **PART_OF}},
                "spec": {
                    "containers": [
                        {
                            "name": "postgres",
                            "image": m.postgres_image,
                            "env": [*secret_env, {"name": "POSTGRES_DB", "value": "mlflow"}, {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"}],
                            "ports": [{"containerPort": 5432, "name": "postgres"}],
                            "readinessProbe": {"exec": {"command": ["pg_isready", "-U", "$(POSTGRES_USER)", "-d", "mlflow"]}, "periodSeconds": 10},
                            "resources": _resources("1", "2Gi"),
                            "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
                        }
                    ]
                },
            },
            "volumeClaimTemplates": [
                {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": m.database_storage}}}}
            ],
        },
    }
    db_service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(db, ns, "mlflow-db"),
        "spec": {"selector": db_labels, "ports": [{"name": "postgres", "port": 5432, "targetPort": 5432}]},
    }
    labels = {"app.kubernetes.io/name": "mlflow"}
    env = [
        {"name": "DB_USER", "valueFrom": {"secretKeyRef": {"name": m.database_secret, "key": "username"}}},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": m.database_secret, "key": "password"}}},
    ]
    if m.s3_endpoint_url:
        env.append({"name": "MLFLOW_S3_ENDPOINT_URL", "value": m.s3_endpoint_url})
    server = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta("mlflow", ns, "mlflow"),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": {**labels, **PART_OF}},
                "spec": {
                    "containers": [
                        {
                            "name": "mlflow",
                            "image": m.image,
                            "command": ["mlflow", "server"],
                            "args": [
                                "--host=0.0.0.0",
                                "--port=5000",
                                f"--backend-store-uri=postgresql://$(DB_USER):$(DB_PASSWORD)@{db}.{ns}.svc.cluster.local:5432/mlflow",
                                f"--artifacts-destination={m.artifacts_destination}",
                                "--serve-artifacts",
                            ],
                            "env": env,
                            "envFrom": [{"secretRef": {"name": m.s3_secret}}],
                            "ports": [{"containerPort": 5000, "name": "http"}],
                            "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10},
                            "resources": _resources("1", "2Gi"),
                        }
                    ]
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta("mlflow", ns, "mlflow"),
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 5000, "targetPort": "http"}]},
    }
    return [statefulset, db_service, server, service]


# --- monitoring -----------------------------------------------------------------------------------
def monitors(dep: DeploymentConfig) -> list[dict[str, Any]]:
    mon = dep.monitoring
    labels = {**PART_OF, **mon.release_label}

    def meta(name: str, ns: str) -> dict[str, Any]:
        return {"name": name, "namespace": ns, "labels": dict(labels)}

    return [
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": meta("codesense-ray", dep.namespace),
            "spec": {
                # Ray's own metrics (ray_serve_* request counts and latencies, object store, GPUs per actor).
                "selector": {"matchLabels": {"app.kubernetes.io/name": "codesense", "app.kubernetes.io/component": "rag-serve"}},
                "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": mon.interval}],
            },
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": meta("codesense-serve", dep.namespace),
            "spec": {
                # The app's /metrics (codesense_* counters: answers, citations, generator errors) behind the Serve proxy.
                "selector": {"matchLabels": {"app.kubernetes.io/component": "rag-serve", "app.kubernetes.io/part-of": "codesense"}},
                "endpoints": [{"port": "serve", "path": "/metrics", "interval": mon.interval}],
            },
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": meta("codesense-vllm", dep.namespace),
            "spec": {
                "selector": {"matchLabels": {"serving.kserve.io/inferenceservice": dep.inference.name}},
                "podMetricsEndpoints": [
                    # vLLM: tokens/s, KV-cache usage, prefix-cache hit rate, time to first token.
                    {"port": "user-port", "path": "/metrics", "interval": mon.interval},
                    # Knative queue-proxy: revision_app_request_* (per revision: what the canary gates read).
                    {"port": "http-usermetric", "path": "/metrics", "interval": mon.interval},
                ],
            },
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": meta("qdrant", dep.qdrant.namespace),
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": "qdrant", "app.kubernetes.io/instance": dep.qdrant.release}},
                "endpoints": [
                    {
                        "port": "http",
                        "path": "/metrics",
                        "interval": mon.interval,
                        "authorization": {"type": "Bearer", "credentials": {"name": dep.qdrant.api_key_secret.name, "key": dep.qdrant.api_key_secret.key}},
                    }
                ],
            },
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": meta("nvidia-dcgm-exporter", dep.gpu.operator_namespace),
            "spec": {
                "selector": {"matchLabels": {"app": "nvidia-dcgm-exporter"}},
                "endpoints": [{"port": "gpu-metrics", "path": "/metrics", "interval": mon.interval}],
            },
        },
    ]


# --- Helm values ----------------------------------------------------------------------------------
def qdrant_values(dep: DeploymentConfig) -> dict[str, Any]:
    """Values for the official `qdrant/qdrant` chart (keys as in its values.yaml)."""
    q = dep.qdrant
    persistence: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "size": q.storage_size}
    if q.storage_class:
        persistence["storageClassName"] = q.storage_class
    return {
        "replicaCount": q.replicas,
        "resources": _resources(q.cpu, q.memory),
        "persistence": persistence,
        "apiKey": {"valueFrom": {"secretKeyRef": {"name": q.api_key_secret.name, "key": q.api_key_secret.key}}},
        "config": {"cluster": {"enabled": q.replicas > 1}},
        # codesense renders its own ServiceMonitor (shared labels, bearer auth from the same Secret).
        "metrics": {"serviceMonitor": {"enabled": False}},
        "podDisruptionBudget": {"enabled": q.replicas > 1, "maxUnavailable": 1},
    }


def langfuse_values(dep: DeploymentConfig) -> dict[str, Any]:
    """Values for the `langfuse/langfuse` chart (v1.x): every secret from the one pre-created Secret."""
    lf = dep.langfuse
    ref = lambda key: {"secretKeyRef": {"name": lf.secret, "key": key}}  # noqa: E731
    return {
        "langfuse": {
            "salt": ref("salt"),
            "encryptionKey": ref("encryption-key"),
            "nextauth": {"url": f"https://{lf.hostname}", "secret": ref("nextauth-secret")},
        },
        "postgresql": {"deploy": True, "auth": {"username": "langfuse", "existingSecret": lf.secret, "secretKeys": {"userPasswordKey": "postgres-password"}}},
        "clickhouse": {"deploy": True, "auth": {"existingSecret": lf.secret, "existingSecretKey": "clickhouse-password"}},
        "redis": {"deploy": True, "auth": {"existingSecret": lf.secret, "existingSecretPasswordKey": "redis-password"}},
        "s3": {"deploy": True},
    }


# --- everything -----------------------------------------------------------------------------------
def render(cfg: Any, env: str | None = None) -> Rendered:
    """All objects and values for `env` (None: the base, no environment overrides)."""
    dep = resolve_environment(cfg, env)
    out = Rendered()
    out.components["namespaces"] = namespaces(dep)
    out.components["gpu-operator"] = gpu_operator(dep)
    kuberay = [config_map(cfg, dep), ray_service(cfg, dep), *pipeline_rbac(dep)]
    if dep.ray_cluster.enabled:
        kuberay.insert(1, ray_cluster(cfg, dep))
    out.components["kuberay"] = kuberay
    if dep.inference.enabled:
        out.components["kserve"] = [serving_runtime(dep), inference_service(dep)]
    if dep.mlflow.enabled:
        out.components["mlflow"] = mlflow(dep)
    if dep.monitoring.enabled:
        out.components["monitoring"] = monitors(dep)
    out.helm_values["qdrant-values.yaml"] = qdrant_values(dep)
    if dep.langfuse.enabled:
        out.helm_values["langfuse-values.yaml"] = langfuse_values(dep)
    return out
