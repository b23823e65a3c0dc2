"""The `codesense-rag` KFP pipeline: compiled IR, cron validation, and scheduling through the real kfp.Client."""

from __future__ import annotations

import json

import pytest
import yaml

from codesense_ray.orchestration.cron import to_kfp_cron
from codesense_ray.errors import InvalidSchedule, ServiceUnreachable
from codesense_ray.orchestration.kfp_runs import schedule_pipeline
from codesense_ray.orchestration.local_ray import free_port
from codesense_ray.config.orchestration import PipelineConfig, SecretEnvConfig
from kfp_wrappers.compile import compile_pipeline
from tests.cpu.integration.orchestration.conftest import run_cli, write_yaml


def test_compiled_pipeline_chains_stages_with_secrets_image_and_no_cache(tmp_path):
    """The IR has converge → index → (evaluate if a dataset is given), the configured image, secret env and caching off."""
    pcfg = PipelineConfig(
        image="registry.example.com/codesense:0.1.0",
        secrets=[SecretEnvConfig(secret="codesense-ray-token", keys={"token": "RAY_AUTH_TOKEN"}), SecretEnvConfig(secret="s3", keys={"key": "AWS_ACCESS_KEY_ID"})],
    )
    ir = yaml.safe_load_all(compile_pipeline(tmp_path / "p.yaml", pcfg).read_text())
    spec, platform = next(ir), next(ir)
    assert spec["pipelineInfo"]["name"] == "codesense-rag"
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"converge-repositories", "build-code-index", "condition-1", "condition-2"}
    index = tasks["build-code-index"]
    assert index["dependentTasks"] == ["converge-repositories"]
    assert index["inputs"]["parameters"]["data_version"]["taskOutputParameter"] == {"outputParameterKey": "data_version", "producerTask": "converge-repositories"}
    assert "eval_dataset" in tasks["condition-1"]["triggerPolicy"]["condition"]
    assert all(not t.get("cachingOptions", {}).get("enableCache") for t in tasks.values())
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {"registry.example.com/codesense:0.1.0"}
    assert not any("pip install" in " ".join(e["container"]["command"]) for e in executors.values())  # the image has everything
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["backend"]["defaultValue"] == "kuberay" and params["eval_dataset"]["defaultValue"] == ""
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for executor in k8s.values():
        names = {s["secretName"] for s in executor["secretAsEnv"]}
        assert names == {"codesense-ray-token", "s3"}


def test_pipeline_compile_command_writes_the_ir(tmp_path):
    """`codesense pipeline compile --output FILE --json` writes the YAML and reports its path."""
    cfg = write_yaml(tmp_path / "codesense.yaml", {"repositories": []})
    out = tmp_path / "out" / "codesense-rag.yaml"
    proc = run_cli(["pipeline", "compile", "--config", str(cfg), "--output", str(out), "--json"], cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"pipeline": "codesense-rag", "output": str(out)}
    assert yaml.safe_load_all(out.read_text()).__next__()["pipelineInfo"]["name"] == "codesense-rag"


@pytest.mark.parametrize(
    "expr, kfp",
    [("0 3 * * *", "0 0 3 * * *"), ("*/15 9-17 * * MON-FRI", "0 */15 9-17 * * MON-FRI"), ("0 0 3 ? * 1-5", "0 0 3 ? * 1-5"), ("@daily", "@daily"), ("@every 6h", "@every 6h")],
)
def test_valid_cron_is_converted_to_kfp_six_fields(expr, kfp):
    """Crontab's 5 fields get KFP's leading seconds; 6-field expressions and descriptors pass through."""
    assert to_kfp_cron(expr) == kfp


@pytest.mark.parametrize(
    "expr, fragment",
    [("61 * * * *", "minute value 61"), ("0 25 * * *", "hour value 25"), ("* * *", "has 3 fields"), ("0 0 9 ? * MON-XYZ", "day-of-week"), ("@sometimes", "descriptor"), ("0 5-2 * * *", "backwards"), ("", "empty")],
)
def test_invalid_cron_is_rejected(expr, fragment):
    """Out-of-range values, wrong field counts, unknown names and descriptors are InvalidSchedule errors."""
    with pytest.raises(InvalidSchedule, match=fragment):
        to_kfp_cron(expr)


def test_invalid_cron_is_rejected_before_any_kfp_call(tmp_path, fake_kfp):
    """`pipeline schedule --cron` with a bad expression exits 2 with one line and never contacts the KFP API."""
    state, url = fake_kfp
    cfg = write_yaml(tmp_path / "codesense.yaml", {"repositories": []})
    proc = run_cli(["pipeline", "schedule", "--config", str(cfg), "--cron", "0 0 31 2 8", "--host", url], cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["codesense: error: cron day-of-week value 8 out of range 0-6"]
    assert state.requests == []


def test_schedule_uploads_pipeline_and_creates_recurring_run(tmp_path, fake_kfp, monkeypatch):
    """kfp.Client against a local v2beta1 server: experiment, pipeline upload, recurring run with the KFP cron."""
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/kfp/context.json from the machine
    state, url = fake_kfp
    from codesense_ray.config import config_from_dict

    cfg = config_from_dict({"repositories": []}, tmp_path)
    result = schedule_pipeline(cfg, "0 3 * * *", host=url, compile_pipeline=compile_pipeline)

    assert result["cron"] == "0 0 3 * * *" and result["pipeline_version_uploaded"] is True
    run = state.recurring_runs[result["recurring_run_id"]]
    assert run["display_name"] == "codesense-rag-schedule" and run["mode"] == "ENABLE"
    assert run["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"
    assert run["pipeline_version_reference"] == {"pipeline_id": result["pipeline_id"], "pipeline_version_id": result["pipeline_version_id"]}
    assert run["experiment_id"] == result["experiment_id"] and state.experiments[result["experiment_id"]]["display_name"] == "codesense"
    assert int(run["max_concurrency"]) == 1 and run["no_catchup"] is True
    version = state.versions[result["pipeline_id"]][0]
    assert version["pipeline_spec"]["pipelineInfo"]["name"] == "codesense-rag"
    called = {(m, p) for m, p in state.requests}
    assert {
        ("GET", "/apis/v2beta1/healthz"),
        ("POST", "/apis/v2beta1/experiments"),
        ("POST", "/apis/v2beta1/pipelines"),
        ("POST", "/apis/v2beta1/pipelines/upload_version"),
        ("POST", "/apis/v2beta1/recurringruns"),
    } <= called
    assert len(state.versions[result["pipeline_id"]]) == 1 and version["display_name"].startswith("codesense-rag-")


def test_scheduling_again_reuses_the_version_and_replaces_the_run(tmp_path, fake_kfp, monkeypatch):
    """A second schedule with the same pipeline uploads nothing new and replaces the previous recurring run."""
    monkeypatch.setenv("HOME", str(tmp_path))
    state, url = fake_kfp
    from codesense_ray.config import config_from_dict

    cfg = config_from_dict({"repositories": []}, tmp_path)
    first = schedule_pipeline(cfg, "0 3 * * *", host=url, compile_pipeline=compile_pipeline)
    second = schedule_pipeline(cfg, "30 2 * * *", host=url, compile_pipeline=compile_pipeline)

    assert second["pipeline_version_uploaded"] is False and second["pipeline_version_id"] == first["pipeline_version_id"]
    assert second["replaced"] == [first["recurring_run_id"]]
    assert list(state.recurring_runs) == [second["recurring_run_id"]]
    assert len(state.experiments) == 1 and len(state.uploads) == 1


def test_schedule_against_unreachable_kfp_fails_fast(tmp_path):
    """An endpoint nobody listens on is a one-line ServiceUnreachable naming it, not a hang."""
    from codesense_ray.config import config_from_dict

    host = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServiceUnreachable, match=f"KFP API at {host} is unreachable"):
        schedule_pipeline(config_from_dict({"repositories": []}, tmp_path), "@daily", host=host, connect_timeout_s=1, compile_pipeline=compile_pipeline)
