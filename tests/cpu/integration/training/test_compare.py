"""`codesense models compare` end to end on the indexed payments fixture: a registered challenger (a real peft
adapter on a tiny local base model), the bare base, the teacher (OpenAI wire protocol) and extractive, on a golden
set; one MLflow run with table and plot; the challenger's numbers gate `models promote`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from codesense_ray.app.cli.main import main
from codesense_ray.training.ray_train import TrainResult
from codesense_ray.training.registry import StudentRegistry
from codesense_ray.training.trainer import ADAPTER_META
from teacher_servers import openai_teacher, start
from tests.cpu.integration.training.conftest import tiny_llama

ROOT = Path(__file__).resolve().parents[4]
QUESTIONS = ROOT / "tests" / "cpu" / "integration" / "evaluation" / "fixture_questions.jsonl"


def _tiny_base_and_adapter(root: Path) -> tuple[Path, Path]:
    """The tiny Llama and a non-trivial LoRA adapter for it."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    base = tiny_llama(root)
    adapter = root / "run" / "adapter"
    peft = get_peft_model(LlamaForCausalLM.from_pretrained(base), LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft.save_pretrained(adapter)
    (adapter / ADAPTER_META).write_text(json.dumps({"base_model": str(base), "gguf_file": None}))
    return base, adapter


@pytest.mark.slow
def test_compare_candidates_then_promote(indexed_project, tmp_path, monkeypatch, capsys):
    """Every candidate gets a row (citation metrics, latency; tokens/s for LLM candidates); champion is skipped with
    a reason; the run has the table and plot; the challenger's eval.* tags make `models promote` pass."""
    import mlflow

    project = tmp_path / "proj"
    shutil.copytree(indexed_project, project, symlinks=True)
    home = project / ".codesense"
    monkeypatch.setenv("CODESENSE_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    base, adapter = _tiny_base_and_adapter(tmp_path)
    registry = StudentRegistry(f"sqlite:///{home / 'mlflow.db'}", "codesense-student", "codesense-training")
    run_id = registry.log_training_run(TrainResult(adapter_dir=adapter, metrics={}, history=[], spec={"base_model": str(base)}))
    registry.register(run_id)
    golden = project / "data" / "golden" / "golden.jsonl"
    golden.parent.mkdir(parents=True, exist_ok=True)
    golden.write_text("".join(QUESTIONS.read_text().splitlines(keepends=True)[:2]))

    server, state = start(openai_teacher)
    try:
        data = yaml.safe_load((project / "codesense.yaml").read_text())
        data["qdrant"]["path"] = str(home / "qdrant")
        data["generator"] = {"device": "cpu"}
        data["training"] = {"teacher": {"backend": "openai", "base_url": server.url + "/v1", "model": "teacher-xl"},
                            "train": {"base_model": str(base)}}
        (project / "codesense.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        (project / "gates-model.yaml").write_text("citation_valid: 0.5\n")
        cfg = str(project / "codesense.yaml")
        rc = main(["models", "compare", "--config", cfg, "--json", "--candidates", "champion,challenger,base,teacher,extractive",
                   "--max-new-tokens", "4"])
        out = capsys.readouterr()
        assert rc == 0, out.err
        doc = json.loads(out.out)
    finally:
        server.stop()
    rows = {r["candidate"]: r for r in doc["rows"]}
    assert set(rows) == {"challenger", "base", "teacher", "extractive"} and doc["questions"] == 2
    assert doc["skipped"] == [{"candidate": "champion", "reason": "codesense-student has no `champion` alias"}]
    assert rows["teacher"]["citation_valid"] == 1.0 and rows["teacher"]["model"] == "openai:teacher-xl" and state["calls"] == 2
    assert rows["extractive"]["citation_valid"] == 1.0 and rows["extractive"]["citation_gold"] > 0
    assert rows["challenger"]["version"] == 1 and rows["challenger"]["model"] == "local:models:/codesense-student@challenger"
    for name in ("challenger", "base", "teacher"):
        assert rows[name]["tokens_per_s"] > 0 and rows[name]["latency_p50_s"] > 0 and rows[name]["answer_errors"] == 0
    run = mlflow.MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}").get_run(doc["run_id"])
    assert run.data.metrics["teacher.citation_valid"] == 1.0
    artifacts = {a.path for a in mlflow.MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}").list_artifacts(doc["run_id"])}
    assert {"comparison.json", "comparison.png", "per_question.json"} <= artifacts

    tagged = registry.get(1).eval_metrics
    challenger_valid = rows["challenger"]["citation_valid"]
    # The tiny random model writes no citations: citation_valid is missing, so the gate refuses; then a model that
    # has the number recorded passes.
    if challenger_valid is None:
        assert "citation_valid" not in tagged
        assert main(["models", "promote", "--config", cfg]) == 1
        assert "citation_valid: not computed" in capsys.readouterr().err
        registry.record_evaluation(1, {"citation_valid": 1.0})
    else:
        assert tagged["citation_valid"] == pytest.approx(challenger_valid, rel=1e-4)
    assert main(["models", "promote", "--config", cfg, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["champion"] == 1


@pytest.mark.slow
def test_compare_with_judge_scores_faithfulness_and_relevancy(indexed_project, tmp_path, monkeypatch, capsys):
    """With `evaluation.judge` pointing at a local judge (OpenAI wire protocol) and `--judge`, each candidate's row
    carries the DeepEval faithfulness and answer relevancy the judge's verdicts imply (0.75 and 0.6)."""
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "cpu" / "integration" / "evaluation"))
    from judge_server import JudgeServer

    project = tmp_path / "proj"
    shutil.copytree(indexed_project, project, symlinks=True)
    monkeypatch.setenv("CODESENSE_HOME", str(project / ".codesense"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    dataset = tmp_path / "golden.jsonl"
    dataset.write_text(QUESTIONS.read_text().splitlines(keepends=True)[0])
    judge = JudgeServer()
    try:
        data = yaml.safe_load((project / "codesense.yaml").read_text())
        data["qdrant"]["path"] = str(project / ".codesense" / "qdrant")
        data["evaluation"] = {"judge": {"backend": "openai", "base_url": judge.base_url, "model": "judge-7b", "max_retries": 0,
                                        "metrics": ["faithfulness", "answer_relevancy"]}}
        (project / "codesense.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        rc = main(["models", "compare", "--config", str(project / "codesense.yaml"), "--json", "--candidates", "extractive",
                   "--dataset", str(dataset), "--judge"])
        out = capsys.readouterr()
        assert rc == 0, out.err
    finally:
        judge.stop()
    row = json.loads(out.out)["rows"][0]
    assert row["candidate"] == "extractive"
    assert row["faithfulness"] == pytest.approx(0.75) and row["answer_relevancy"] == pytest.approx(0.6)
