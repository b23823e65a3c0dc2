"""The MLflow Model Registry on SQLite: versions, the challenger/champion aliases, a gate that refuses a
promotion, rollback, and `models:/...@alias` resolved to a local adapter directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codesense_ray.app.cli.main import main
from codesense_ray.evaluation.gate import parse_gates
from codesense_ray.training.ray_train import TrainResult
from codesense_ray.training.registry import PromotionRefused, RegistryError, StudentRegistry, parse_model_uri, resolve_registered_student
from codesense_ray.training.trainer import ADAPTER_META
from tests.conftest import write_config

GATE = parse_gates({"citation_valid": 0.9, "citation_gold": 0.5})


def _fake_training(tmp_path: Path, n: int) -> TrainResult:
    """A finished training run's output: adapter files (peft layout) and its metric history."""
    adapter = tmp_path / f"run{n}" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    (adapter / "adapter_model.safetensors").write_bytes(b"weights-%d" % n)
    (adapter / ADAPTER_META).write_text(json.dumps({"base_model": "packaged-gemma3-270m", "gguf_file": None}))
    history = [{"step": 2, "loss": 3.0, "probe_loss": 2.9, "tokens_per_s": 100.0, "peak_memory_mb": 900.0},
               {"step": 4, "loss": 2.0, "probe_loss": 2.1, "tokens_per_s": 110.0, "peak_memory_mb": 910.0}]
    return TrainResult(adapter_dir=adapter, metrics={**history[-1], "probe_loss_before": 3.2}, history=history, seconds=5.0,
                       spec={"base_model": "packaged-gemma3-270m", "max_steps": 4, "lora_r": 8})


@pytest.fixture
def registry(mlflow_home) -> StudentRegistry:
    return StudentRegistry(f"sqlite:///{mlflow_home / 'mlflow.db'}", "codesense-student")


def test_register_versions_aliases_promote_gate_and_rollback(registry, tmp_path):
    """Each training run becomes a version with alias challenger; promote is refused until the recorded comparison
    passes the gate; promotion moves champion; rollback returns to the previous champion."""
    run1 = registry.log_training_run(_fake_training(tmp_path, 1))
    v1 = registry.register(run1, tags={"base_model": "packaged-gemma3-270m"})
    assert v1.version == 1 and v1.aliases == ["challenger"]
    run = registry.client.get_run(run1)
    assert run.data.params["base_model"] == "packaged-gemma3-270m" and run.data.metrics["probe_loss"] == pytest.approx(2.1)
    loss_curve = registry.client.get_metric_history(run1, "loss")
    assert [(m.step, m.value) for m in loss_curve] == [(2, 3.0), (4, 2.0)]

    with pytest.raises(PromotionRefused, match="no comparison recorded"):
        registry.promote(GATE)
    registry.record_evaluation(1, {"citation_valid": 0.95, "citation_gold": 0.2})
    with pytest.raises(PromotionRefused, match=r"citation_gold = 0\.2000 < minimum 0\.5"):
        registry.promote(GATE)
    assert registry.by_alias("champion") is None  # a refused promotion moves nothing

    registry.record_evaluation(1, {"citation_gold": 0.8})
    assert registry.promote(GATE) == {"model": "codesense-student", "champion": 1, "previous": None}
    assert registry.by_alias("champion").version == 1 and registry.by_alias("challenger") is None

    v2 = registry.register(registry.log_training_run(_fake_training(tmp_path, 2)))
    assert v2.version == 2 and registry.by_alias("challenger").version == 2
    registry.record_evaluation(2, {"citation_valid": 1.0, "citation_gold": 0.9})
    assert registry.promote(GATE)["champion"] == 2
    assert [(v.version, v.aliases) for v in registry.versions()] == [(2, ["champion"]), (1, [])]

    assert registry.rollback() == {"model": "codesense-student", "champion": 1, "previous": 2}
    assert registry.by_alias("champion").version == 1
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback()
    assert registry.rollback(to=2)["champion"] == 2
    with pytest.raises(RegistryError, match="has no version 9"):
        registry.rollback(to=9)


def test_registered_adapter_resolves_to_local_files(registry, tmp_path, mlflow_home):
    """`models:/codesense-student@challenger` downloads the adapter once and names the base model it was trained on."""
    registry.register(registry.log_training_run(_fake_training(tmp_path, 1)))
    base, gguf, adapter = resolve_registered_student("models:/codesense-student@challenger", mlflow_home)
    assert base == "packaged-gemma3-270m" and gguf is None
    assert (adapter / "adapter_model.safetensors").read_bytes() == b"weights-1"
    assert adapter.is_relative_to(mlflow_home / "models" / "registry")
    with pytest.raises(RegistryError, match="has no alias `champion`"):
        resolve_registered_student("models:/codesense-student@champion", mlflow_home)


@pytest.mark.parametrize("uri", ["models:/x", "runs:/abc/adapter", "models:/@champion", "models:/name/v3"])
def test_malformed_registry_uri(uri):
    """A registry URI that is neither models:/name@alias nor models:/name/<version> is a one-line error."""
    with pytest.raises(RegistryError, match="registry URI"):
        parse_model_uri(uri)


def test_models_cli_list_promote_rollback(registry, tmp_path, mlflow_home, capsys):
    """`codesense models list --json` shows versions with aliases; promote reads the gate file and exits 1 when it
    fails; rollback without a champion exits 2 with one line."""
    cfg = write_config(tmp_path, [])
    gate = tmp_path / "gates-model.yaml"
    gate.write_text("citation_valid: 0.9\n")
    registry.register(registry.log_training_run(_fake_training(tmp_path, 1)))

    assert main(["models", "list", "--config", str(cfg), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"] == "codesense-student" and [(v["version"], v["aliases"]) for v in doc["versions"]] == [(1, ["challenger"])]

    assert main(["models", "promote", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "codesense: error: gate failed for version 1 (no comparison recorded: run `codesense models compare` first): citation_valid: not computed by this run"
    assert main(["models", "rollback", "--config", str(cfg)]) == 2
    assert "has no `champion` yet" in capsys.readouterr().err

    registry.record_evaluation(1, {"citation_valid": 1.0})
    assert main(["models", "promote", "--config", str(cfg), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["champion"] == 1
    assert main(["models", "promote", "--config", str(cfg), "--gate", str(tmp_path / "nope.yaml")]) == 2
    assert "gates file not found" in capsys.readouterr().err
