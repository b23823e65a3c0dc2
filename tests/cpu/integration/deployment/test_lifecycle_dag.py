"""The full lifecycle DAG in kfp_wrappers/lifecycle.py: compiled order, pass-through steps, and an end-to-end run with the
KFP local runner — Ray jobs on a private head, the canary steps against the local Kubernetes API and Prometheus."""

from __future__ import annotations

import shutil
import warnings

import pytest
import yaml

from codesense_ray.config import config_from_dict
from codesense_ray.deployment.apply import apply_objects
from codesense_ray.deployment.manifests import inference_service, resolve_environment
from codesense_ray.config.orchestration import PipelineConfig
from kfp_wrappers.lifecycle import build_lifecycle_pipeline, compile_lifecycle, deploy_canary, golden_set_step, promote_canary
from tests.conftest import PAYMENTS

V1 = "s3://mlflow/artifacts/7/run-v1/artifacts/adapter"
V2 = "s3://mlflow/artifacts/7/run-v2/artifacts/adapter"
ORDER = ["converge-repositories", "build-code-index", "gate-index", "golden-set-step", "distill-step", "finetune-step", "compare-step", "deploy-canary", "promote-canary"]


def test_compiled_dag_runs_the_stages_in_lifecycle_order(tmp_path):
    """Each stage depends on the one before it (converge → … → promote); image from config, caching off everywhere."""
    pcfg = PipelineConfig(image="registry.example.com/codesense:0.2.0")
    spec = next(yaml.safe_load_all(open(compile_lifecycle(str(tmp_path / "lc.yaml"), pcfg))))
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == set(ORDER)
    for before, after in zip(ORDER, ORDER[1:]):
        assert before in tasks[after].get("dependentTasks", []), f"{after} does not wait for {before}"
    assert tasks["deploy-canary"]["inputs"]["parameters"]["trained"]["taskOutputParameter"]["producerTask"] == "finetune-step"
    assert all(not t.get("cachingOptions", {}).get("enableCache") for t in tasks.values())
    assert {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()} == {"registry.example.com/codesense:0.2.0"}
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["train_student"]["defaultValue"] is True and params["adapter_uri"]["defaultValue"] == ""


def test_disabled_and_adapterless_steps_pass_through():
    """train_student=false skips training steps; no adapter skips the canary and its promotion — without touching anything."""
    assert golden_set_step.python_func(config="/nonexistent.yaml", enabled=False) == {"skipped": "train_student is false"}
    skipped = deploy_canary.python_func(config="/nonexistent.yaml", adapter_uri="", trained={"skipped": "train_student is false"})
    assert "no adapter" in skipped["skipped"]
    assert promote_canary.python_func(config="/nonexistent.yaml", canary=skipped) == skipped


@pytest.mark.slow
def test_lifecycle_runs_end_to_end_with_the_kfp_local_runner(tmp_path, cluster, prometheus, monkeypatch):
    """KFP local runner: converge and index as Ray jobs, gate passes through, canary 10 → 50 → 100 of v2 on the local
    Kubernetes API with Prometheus gates, promoted; the InferenceService ends on v2 with no canary split."""
    from kfp import local

    from codesense_ray.orchestration.kfp_runs import _patched_env, _with_source_on_path
    from codesense_ray.orchestration.local_ray import LocalRayHead

    prom, prom_url = prometheus(lambda q: 0.0 if "5xx" in q else 1.0)
    state, api = cluster(ready_after=1)
    project = tmp_path / "project"
    shutil.copytree(PAYMENTS, project / "payments")
    data = {
        "repositories": [{"id": "payments", "path": "payments", "web_url": "https://gitlab.example.com/team/payments"}],
        "dvc": {"enabled": False},
        "ray": {"num_cpus": 2},
        "index": {"in_process_max_files": 1000},  # stages in-process: the Ray Data path is tested in test_indexing
        "deployment": {
            "inference": {"adapter_uri": V1, "adapter_version": "1"},
            "canary": {"prometheus_url": prom_url, "soak_s": 0, "poll_interval_s": 0.05, "readiness_timeout_s": 60},
        },
    }
    cfg_file = project / "codesense.yaml"
    cfg_file.write_text(yaml.safe_dump(data))
    cfg = config_from_dict(data, project)
    apply_objects([inference_service(resolve_environment(cfg, None))], api, timeout_s=30, poll_interval_s=0.01)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "t", "cluster": {"server": api.configuration.host}}],
        "users": [{"name": "t", "user": {}}], "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
    }))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("CODESENSE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.chdir(project)

    head = LocalRayHead(num_cpus=2).start()
    try:
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp"), raise_on_error=True)
        with _patched_env(_with_source_on_path()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            task = build_lifecycle_pipeline()(
                config=str(cfg_file), backend="ray-jobs", ray_address=head.dashboard_url, eval_dataset="", train_student=False, adapter_uri=V2, adapter_version="2"
            )
    finally:
        head.stop()

    result = task.output
    assert result["phase"] == "Promoted" and result["stable_uri"] == V2
    isvc = state.find("InferenceService", "codesense-llm")
    predictor = isvc["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor and any(s["uri"] == V2 for s in predictor["storageUris"])
    steps = [o["spec"]["predictor"].get("canaryTrafficPercent") for o in state.applied_specs("InferenceService", "codesense-llm")]
    assert steps == [None, 10, 50, 100, None]
    assert any("predictor-00002" in q for q in prom.queries)
    assert (tmp_path / "home").is_dir()  # the index job wrote its embedded Qdrant under CODESENSE_HOME


from tests.cpu.integration.orchestration.conftest import fake_kfp  # noqa: E402,F401 - the local KFP v2beta1 API fixture


def test_lifecycle_is_scheduled_on_kfp(tmp_path, fake_kfp, monkeypatch):  # noqa: F811
    """`schedule_lifecycle` uploads codesense-lifecycle through the real kfp.Client and creates its own recurring run."""
    from kfp_wrappers.lifecycle import schedule_lifecycle

    monkeypatch.setenv("HOME", str(tmp_path))
    state, url = fake_kfp
    result = schedule_lifecycle(config_from_dict({"repositories": []}, tmp_path), "0 4 * * 0", host=url)

    run = state.recurring_runs[result["recurring_run_id"]]
    assert run["display_name"] == "codesense-lifecycle-schedule" and run["trigger"]["cron_schedule"]["cron"] == "0 0 4 * * 0"
    version = state.versions[result["pipeline_id"]][0]
    assert version["pipeline_spec"]["pipelineInfo"]["name"] == "codesense-lifecycle"
    assert set(version["pipeline_spec"]["root"]["dag"]["tasks"]) == set(ORDER)
