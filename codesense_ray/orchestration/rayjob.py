"""The KubeRay `RayJob` manifest (`ray.io/v1`) for a job — a pure function of the job and the config.

A RayJob is a Kubernetes Job that brings its own cluster: KubeRay creates the RayCluster described in
`rayClusterSpec` (a head and worker groups), submits the entrypoint, and — with `shutdownAfterJobFinishes` —
deletes the cluster `ttlSecondsAfterFinished` seconds after the job ends. Keeping the builder pure lets
tests validate it against the CRD's openAPIV3Schema and lets people diff it without a cluster.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import yaml

from codesense_ray.config.orchestration import HeadGroupConfig, KubeRayConfig, WorkerGroupConfig

if TYPE_CHECKING:
    from codesense_ray.orchestration.jobs import JobSpec

RAYJOB_GROUP, RAYJOB_VERSION, RAYJOB_PLURAL = "ray.io", "v1", "rayjobs"
CONFIG_MAP_MOUNT = "/etc/codesense"
DATA_VOLUME, CONFIG_VOLUME = "codesense-data", "codesense-config"


def _resources(cpu: str, memory: str, gpu: float = 0, gpu_resource: str = "nvidia.com/gpu") -> dict[str, Any]:
    amounts: dict[str, Any] = {"cpu": str(cpu), "memory": str(memory)}
    if gpu > 0:
        # A fraction asks for one time-slice replica; whole numbers ask for dedicated cards.
        amounts[gpu_resource] = 1 if gpu < 1 else int(gpu)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _ray_cpus(cpu: str) -> str | None:
    """Ray's CPU count for a pod from its Kubernetes quantity (`"4"`, `"3500m"` → 3); None if unparsable."""
    text = str(cpu).strip()
    try:
        value = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        return None
    return str(max(int(value), 1))


def _container(name: str, image: str, kcfg: KubeRayConfig, resources: dict, ports: list | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": image, "imagePullPolicy": kcfg.image_pull_policy, "resources": resources}
    if ports:
        container["ports"] = ports
    if kcfg.env:
        container["env"] = [{"name": k, "value": v} for k, v in sorted(kcfg.env.items())]
    if kcfg.env_from_secrets:
        container["envFrom"] = [{"secretRef": {"name": s}} for s in kcfg.env_from_secrets]
    mounts = []
    if kcfg.data_volume_claim:
        mounts.append({"name": DATA_VOLUME, "mountPath": kcfg.data_mount_path})
    if kcfg.config_map:
        mounts.append({"name": CONFIG_VOLUME, "mountPath": CONFIG_MAP_MOUNT, "readOnly": True})
    if mounts:
        container["volumeMounts"] = mounts
    return container


def _pod_spec(container: dict, kcfg: KubeRayConfig, node_selector: dict, tolerations: list) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [container]}
    volumes = []
    if kcfg.data_volume_claim:
        volumes.append({"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": kcfg.data_volume_claim}})
    if kcfg.config_map:
        volumes.append({"name": CONFIG_VOLUME, "configMap": {"name": kcfg.config_map}})
    if volumes:
        spec["volumes"] = volumes
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if tolerations:
        spec["tolerations"] = [dict(t) for t in tolerations]
    if kcfg.service_account:
        spec["serviceAccountName"] = kcfg.service_account
    return spec


def _head_group(kcfg: KubeRayConfig, head: HeadGroupConfig) -> dict[str, Any]:
    params = {"dashboard-host": "0.0.0.0"}
    if head.num_cpus is not None:
        params["num-cpus"] = str(head.num_cpus)
    params.update(head.ray_start_params)
    ports = [{"containerPort": 6379, "name": "gcs-server"}, {"containerPort": 8265, "name": "dashboard"}, {"containerPort": 10001, "name": "client"}]
    container = _container("ray-head", kcfg.image, kcfg, _resources(head.cpu, head.memory), ports)
    return {"rayStartParams": params, "template": {"spec": _pod_spec(container, kcfg, head.node_selector, head.tolerations)}}


def _worker_group(kcfg: KubeRayConfig, group: WorkerGroupConfig) -> dict[str, Any]:
    params: dict[str, str] = {}
    cpus = _ray_cpus(group.cpu)
    if cpus:
        params["num-cpus"] = cpus
    tolerations = list(group.tolerations)
    labels = {"codesense.io/worker-group": group.name}
    if group.gpu > 0:
        # Ray sees one GPU per time-slice replica (`ray start --num-gpus` takes whole numbers); actors then
        # pack onto it with fractional num_gpus. The share itself is recorded for people and dashboards.
        params["num-gpus"] = str(1 if group.gpu < 1 else int(group.gpu))
        labels["codesense.io/gpu-share"] = f"{group.gpu:g}"
        if not any(t.get("key") == "nvidia.com/gpu" for t in tolerations):
            tolerations.append({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})
    params.update(group.ray_start_params)
    container = _container("ray-worker", kcfg.image, kcfg, _resources(group.cpu, group.memory, group.gpu, group.gpu_resource))
    return {
        "groupName": group.name,
        "replicas": group.replicas,
        "minReplicas": group.min_replicas if group.min_replicas is not None else group.replicas,
        "maxReplicas": group.max_replicas if group.max_replicas is not None else group.replicas,
        "rayStartParams": params,
        "template": {"metadata": {"labels": labels}, "spec": _pod_spec(container, kcfg, group.node_selector, tolerations)},
    }


def build_rayjob_manifest(spec: "JobSpec", kcfg: KubeRayConfig, name: str, *, active_deadline_s: float | None = None) -> dict[str, Any]:
    """The `ray.io/v1` RayJob for `spec` — pure: same inputs, same manifest; no cluster needed.

    The job runs in the image's working directory (/app, where jobs/ lives). A local `working_dir` in the
    runtime env is dropped (nothing is uploaded to KubeRay; the code is baked into the image), other runtime
    env keys are sent as `runtimeEnvYAML`.
    """
    runtime_env = {k: v for k, v in spec.runtime_env.items() if not (k == "working_dir" and "://" not in str(v)) and k != "excludes"}
    labels = {"app.kubernetes.io/name": "codesense", "app.kubernetes.io/component": re.sub(r"[^a-z0-9-]", "-", spec.name.lower())[:63]}
    body: dict[str, Any] = {
        "apiVersion": f"{RAYJOB_GROUP}/{RAYJOB_VERSION}",
        "kind": "RayJob",
        "metadata": {"name": name, "namespace": kcfg.namespace, "labels": labels},
        "spec": {
            "entrypoint": spec.entrypoint,
            "submissionMode": kcfg.submission_mode,
            "shutdownAfterJobFinishes": kcfg.shutdown_after_job_finishes,
            "ttlSecondsAfterFinished": kcfg.ttl_seconds_after_finished,
            "backoffLimit": 0,
            "rayClusterSpec": {
                "rayVersion": kcfg.ray_version,
                "headGroupSpec": _head_group(kcfg, kcfg.head),
                "workerGroupSpecs": [_worker_group(kcfg, g) for g in kcfg.workers],
            },
        },
    }
    if spec.metadata:
        body["metadata"]["annotations"] = {f"codesense.io/{k}": str(v) for k, v in sorted(spec.metadata.items())}
        body["spec"]["metadata"] = {k: str(v) for k, v in sorted(spec.metadata.items())}
    if runtime_env:
        body["spec"]["runtimeEnvYAML"] = yaml.safe_dump(runtime_env, sort_keys=True)
    if active_deadline_s:
        body["spec"]["activeDeadlineSeconds"] = int(active_deadline_s)
    return body
