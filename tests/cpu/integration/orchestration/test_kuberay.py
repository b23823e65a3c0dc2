"""`kuberay` backend: RayJobs built from config, valid against the real CRD, driven through the real kubernetes client."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from codesense_ray.config import config_from_dict
from codesense_ray.errors import JobFailed
from codesense_ray.orchestration.jobs import JobSpec, KubeRayBackend
from codesense_ray.orchestration.rayjob import build_rayjob_manifest
from codesense_ray.config.orchestration import HeadGroupConfig, JobsConfig, KubeRayConfig, WorkerGroupConfig
from codesense_ray.orchestration.submission import run_stage, stage_spec
from tests.cpu.integration.orchestration.conftest import rayjob_schema, unknown_fields, write_yaml

GPU_CLUSTER = KubeRayConfig(
    namespace="codesense",
    image="registry.example.com/codesense:0.1.0",
    config_map="codesense-config",
    config_path="/etc/codesense/codesense.yaml",
    env={"QDRANT_URL": "http://qdrant.qdrant:6333"},
    env_from_secrets=["codesense-dvc-s3"],
    data_volume_claim="codesense-data",
    service_account="codesense-ray",
    head=HeadGroupConfig(cpu="2", memory="6Gi"),
    workers=[
        WorkerGroupConfig(name="cpu", replicas=2, cpu="3500m", memory="8Gi"),
        WorkerGroupConfig(
            name="gpu-small", replicas=1, max_replicas=4, cpu="4", memory="16Gi", gpu=0.25, node_selector={"nvidia.com/device-plugin.config": "gpu-small"}
        ),
        WorkerGroupConfig(name="gpu-standard", replicas=0, max_replicas=1, cpu="8", memory="32Gi", gpu=1),
    ],
)
SPEC = JobSpec(
    name="index",
    entrypoint="python jobs/index.py --config /etc/codesense/codesense.yaml --json",
    runtime_env={"working_dir": "/work/main", "env_vars": {"HF_HUB_OFFLINE": "1"}, "excludes": ["data/"]},
    metadata={"data_version": "abc.dir"},
)


def validate(obj: dict) -> None:
    schema = rayjob_schema()
    jsonschema.Draft7Validator(schema).validate(obj)
    assert unknown_fields(obj, schema) == [], "fields the API server would prune"


def test_rayjob_manifest_is_valid_against_the_kuberay_crd():
    """The manifest for a CPU + time-sliced gpu-small + exclusive gpu-standard cluster passes the RayJob openAPIV3Schema."""
    body = build_rayjob_manifest(SPEC, GPU_CLUSTER, "codesense-index-1234abcd", active_deadline_s=3600)
    validate(body)
    spec = body["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] == 300 and spec["activeDeadlineSeconds"] == 3600
    assert yaml.safe_load(spec["runtimeEnvYAML"]) == {"env_vars": {"HF_HUB_OFFLINE": "1"}}  # nothing to upload: code is in the image
    groups = {g["groupName"]: g for g in spec["rayClusterSpec"]["workerGroupSpecs"]}
    small = groups["gpu-small"]
    container = small["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1  # one time-slice replica
    assert small["rayStartParams"]["num-gpus"] == "1" and small["template"]["metadata"]["labels"]["codesense.io/gpu-share"] == "0.25"
    assert small["template"]["spec"]["nodeSelector"] == {"nvidia.com/device-plugin.config": "gpu-small"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in small["template"]["spec"]["tolerations"]
    assert (small["minReplicas"], small["replicas"], small["maxReplicas"]) == (1, 1, 4)
    assert groups["cpu"]["rayStartParams"]["num-cpus"] == "3" and "nvidia.com/gpu" not in groups["cpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert groups["gpu-standard"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    head = spec["rayClusterSpec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    mounts = {m["mountPath"] for m in head["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert mounts == {"/app/data", "/etc/codesense"}
    assert head["template"]["spec"]["containers"][0]["envFrom"] == [{"secretRef": {"name": "codesense-dvc-s3"}}]


def test_rayjob_manifest_is_pure():
    """Same job and config, same manifest: the builder reads nothing but its arguments."""
    assert build_rayjob_manifest(SPEC, GPU_CLUSTER, "n") == build_rayjob_manifest(SPEC, GPU_CLUSTER, "n")


@pytest.mark.parametrize("bad", [{"gpu": 1.5}, {"replicas": 3, "max_replicas": 2}])
def test_worker_group_rejects_impossible_shapes(bad):
    """1.5 GPUs (neither whole cards nor a time-slice) and replicas above the ceiling are config errors."""
    with pytest.raises(ValueError):
        WorkerGroupConfig(**bad)


def test_kuberay_backend_creates_rayjob_and_reports_success(tmp_path, fake_kubernetes):
    """run_stage with the kuberay backend POSTs a CRD-valid RayJob, follows its status to Complete and parses the job's JSON summary."""
    summary = {"ok": True, "totals": {"chunks_total": 7}}
    logs = "Running entrypoint...\n" + json.dumps(summary, indent=2)
    state, api = fake_kubernetes(outcome="SUCCEEDED", logs=logs)
    cfg_path = write_yaml(tmp_path / "codesense.yaml", {"repositories": []})
    jobs = JobsConfig(backend="kuberay", poll_interval_s=0.05, kuberay=GPU_CLUSTER)
    backend = KubeRayBackend.from_config(jobs, api_client=api)
    seen = []

    from codesense_ray.config import load_config

    spec = stage_spec("index", load_config(cfg_path), cfg_path, "kuberay", jobs, metadata={"data_version": "abc.dir"})
    result = backend.run(spec, on_log=seen.append)
    report = run_stage("index", cfg_path, backend="kuberay", job_backend=KubeRayBackend.from_config(jobs, api_client=api))

    created = state.created[0]
    validate(created)
    assert created["spec"]["entrypoint"] == "python jobs/index.py --config /etc/codesense/codesense.yaml --json"
    assert created["metadata"]["namespace"] == "codesense" and created["metadata"]["annotations"]["codesense.io/data_version"] == "abc.dir"
    assert result.ok and result.details["jobDeploymentStatus"] == "Complete"
    assert any("jobDeploymentStatus=Running" in line for line in seen)
    assert report["status"] == "SUCCEEDED" and report["summary"] == summary and report["backend"] == "kuberay"
    assert ("GET", f"/apis/ray.io/v1/namespaces/codesense/rayjobs/{result.job_id}") in state.requests


def test_kuberay_failed_job_surfaces_submitter_log_lines(fake_kubernetes):
    """A RayJob ending FAILED raises JobFailed with the reason and the last lines of the submitter pod's log."""
    logs = "\n".join(f"step {i}" for i in range(100)) + "\nValueError: embedding model not found"
    state, api = fake_kubernetes(outcome="FAILED", logs=logs)
    backend = KubeRayBackend(KubeRayConfig(), api_client=api, poll_interval_s=0.01, log_tail_lines=5)
    with pytest.raises(JobFailed) as info:
        backend.run(JobSpec(name="index", entrypoint="python jobs/index.py"))
    err = info.value
    assert err.status == "FAILED" and "exit code 1" in str(err)
    assert err.log_tail[-1] == "ValueError: embedding model not found" and len(err.log_tail) == 5


def test_kuberay_timeout_deletes_the_rayjob(fake_kubernetes):
    """A RayJob running past jobs.timeout_s is deleted and reported as TIMEOUT."""
    state, api = fake_kubernetes(outcome="SUCCEEDED", steps=10_000)
    backend = KubeRayBackend(KubeRayConfig(), api_client=api, poll_interval_s=0.01, timeout_s=0.2)
    with pytest.raises(JobFailed, match="TIMEOUT"):
        backend.run(JobSpec(name="index", entrypoint="python jobs/index.py"))
    assert state.deleted and state.deleted[0].startswith("codesense-index-")


def test_kuberay_stage_spec_uses_image_paths_not_local_ones(tmp_path):
    """For kuberay the entrypoint uses the config path inside the image and uploads nothing from this machine."""
    cfg = config_from_dict({"repositories": []}, tmp_path)
    jobs = JobsConfig(runtime_env={"env_vars": {"A": "1"}, "working_dir": "/local/path"})
    spec = stage_spec("converge", cfg, tmp_path / "codesense.yaml", "kuberay", jobs)
    assert spec.entrypoint == "python jobs/converge.py --config codesense.yaml --json"
    assert spec.runtime_env == {"env_vars": {"A": "1"}}
